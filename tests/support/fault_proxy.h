// A TCP proxy on 127.0.0.1 that sits between mailmirror and a real server
// and injects network faults: cut the stream after N bytes (FIN or RST),
// stall it, delay it, or rewrite the server's lines (plaintext sessions).
//
// Faults are planned per connection, in the order the proxy accepts them;
// connections without a plan pass through untouched. One thread serves all
// connections with poll() and non-blocking sockets, so neither side can
// block the other.
//
// Not for production code. Threading: the public methods may be called
// from any thread while the proxy runs.
#pragma once

#include <atomic>
#include <cstdint>
#include <deque>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace mailmirror::testing {

struct FaultPlan {
  // Close both sides once this many bytes went from the server to the
  // client (the byte at this offset is never delivered).
  std::optional<uint64_t> cut_down_after;
  // The same for bytes from the client to the server.
  std::optional<uint64_t> cut_up_after;
  bool reset = false;  // cut with a TCP RST instead of a FIN
  // Stop forwarding the server's bytes after this many (the connection
  // stays open, silent, until the client gives up).
  std::optional<uint64_t> stall_down_after;
  int delay_ms = 0;  // before each chunk forwarded from the server (stalls every link)
  // Forwards the server's bytes at most this fast (0: as fast as they come),
  // without holding up the other links: a slow line for one session.
  uint64_t down_bytes_per_second = 0;
  // ... once this many bytes went down at full speed (a body that slows).
  uint64_t slow_down_after = 0;
  // Server lines (CRLF-terminated): the first line containing `first` gets
  // that text replaced by `second`; each rule applies once.
  std::vector<std::pair<std::string, std::string>> rewrites;
  // Rewrites replace the whole line (CRLF added), e.g. a tagged reply by an
  // untagged BYE.
  bool rewrite_whole_lines = false;
  // Cut the connection (after delivering the rewritten line) once every
  // rewrite rule has applied, as a server does after "* BYE".
  bool cut_after_rewrites = false;
};

class FaultProxy {
 public:
  // Listens on an ephemeral port of 127.0.0.1 and forwards to
  // 127.0.0.1:upstream_port.
  explicit FaultProxy(int upstream_port);
  ~FaultProxy();
  FaultProxy(const FaultProxy&) = delete;
  FaultProxy& operator=(const FaultProxy&) = delete;

  int port() const { return port_; }

  // The plan for the next connection accepted (queued: one per call).
  void Plan(FaultPlan plan);
  // Drops plans not yet used.
  void ClearPlans();

  int connections() const { return accepted_.load(); }
  int faults() const { return faults_.load(); }  // cuts, stalls and rewrites done

 private:
  struct Link;
  void Serve();
  bool Accept(std::vector<Link>& links);

  int upstream_port_;
  int listener_ = -1;
  int wake_[2] = {-1, -1};  // a pipe that ends the poll loop
  int port_ = 0;
  std::mutex mutex_;
  std::deque<FaultPlan> plans_;
  std::atomic<int> accepted_{0};
  std::atomic<int> faults_{0};
  std::thread thread_;
};

}  // namespace mailmirror::testing
