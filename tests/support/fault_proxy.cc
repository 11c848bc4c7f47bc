#include "support/fault_proxy.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>

#include <gtest/gtest.h>

namespace mailmirror::testing {
namespace {

constexpr size_t kMaxBuffered = 1 << 20;  // stop reading a side that is this far ahead

void SetNonBlocking(int fd) { ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK); }

void CloseSocket(int fd, bool reset) {
  if (fd < 0) return;
  if (reset) {
    linger hard{1, 0};  // close() then sends RST
    ::setsockopt(fd, SOL_SOCKET, SO_LINGER, &hard, sizeof hard);
  }
  ::close(fd);
}

}  // namespace

// One proxied connection: the client's socket, the server's, and what is
// waiting to be written to each.
struct FaultProxy::Link {
  int client = -1;
  int server = -1;
  FaultPlan plan;
  std::string to_client;  // from the server, after faults
  std::string to_server;
  std::string partial_line;  // server bytes held back for rewriting
  uint64_t down = 0;         // server bytes passed on (or dropped by a stall)
  uint64_t up = 0;
  bool stalled = false;
  bool closing = false;  // flush what is buffered, then close both
  // With a rate limit: no reading from the server before this.
  std::chrono::steady_clock::time_point read_server_at;
};

FaultProxy::FaultProxy(int upstream_port) : upstream_port_(upstream_port) {
  listener_ = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  int one = 1;
  ::setsockopt(listener_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (::bind(listener_, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0 ||
      ::listen(listener_, 16) != 0 || ::pipe(wake_) != 0) {
    ADD_FAILURE() << "fault proxy: cannot listen: " << std::strerror(errno);
    return;
  }
  socklen_t length = sizeof address;
  ::getsockname(listener_, reinterpret_cast<sockaddr*>(&address), &length);
  port_ = ntohs(address.sin_port);
  SetNonBlocking(listener_);
  thread_ = std::thread([this] { Serve(); });
}

FaultProxy::~FaultProxy() {
  if (wake_[1] >= 0) (void)::write(wake_[1], "x", 1);
  if (thread_.joinable()) thread_.join();
  ::close(listener_);
  ::close(wake_[0]);
  ::close(wake_[1]);
}

void FaultProxy::Plan(FaultPlan plan) {
  std::lock_guard<std::mutex> lock(mutex_);
  plans_.push_back(std::move(plan));
}

void FaultProxy::ClearPlans() {
  std::lock_guard<std::mutex> lock(mutex_);
  plans_.clear();
}

bool FaultProxy::Accept(std::vector<Link>& links) {
  int client = ::accept(listener_, nullptr, nullptr);
  if (client < 0) return false;
  int server = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  address.sin_port = htons(static_cast<uint16_t>(upstream_port_));
  if (::connect(server, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) {
    ::close(server);
    ::close(client);
    return true;
  }
  SetNonBlocking(client);
  SetNonBlocking(server);
  Link link;
  link.client = client;
  link.server = server;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (!plans_.empty()) {
      link.plan = std::move(plans_.front());
      plans_.pop_front();
    }
  }
  ++accepted_;
  links.push_back(std::move(link));
  return true;
}

void FaultProxy::Serve() {
  std::vector<Link> links;
  // Passes server bytes through the link's faults into to_client.
  auto from_server = [this](Link& link, std::string_view bytes) {
    if (link.plan.delay_ms > 0) {
      std::this_thread::sleep_for(std::chrono::milliseconds(link.plan.delay_ms));
    }
    std::string data;
    if (link.plan.rewrites.empty()) {
      // A line held back while rules were pending goes first.
      data = std::move(link.partial_line) + std::string(bytes);
      link.partial_line.clear();
    } else {
      link.partial_line.append(bytes);
      size_t end = link.partial_line.rfind('\n');
      if (end == std::string::npos) return;
      data = link.partial_line.substr(0, end + 1);
      link.partial_line.erase(0, end + 1);
      for (auto it = link.plan.rewrites.begin(); it != link.plan.rewrites.end();) {
        size_t at = data.find(it->first);
        if (at == std::string::npos) {
          ++it;
          continue;
        }
        if (link.plan.rewrite_whole_lines) {
          const size_t previous = data.rfind('\n', at);
          const size_t begin = previous == std::string::npos ? 0 : previous + 1;
          const size_t line_end = data.find('\n', at);
          data.replace(begin, line_end + 1 - begin, it->second + "\r\n");
          at = begin;
        } else {
          data.replace(at, it->first.size(), it->second);
        }
        ++faults_;
        it = link.plan.rewrites.erase(it);
        if (link.plan.rewrites.empty() && link.plan.cut_after_rewrites) {
          data.erase(data.find('\n', at) + 1);  // nothing after the rewritten line
          link.closing = true;
        }
      }
    }
    if (link.plan.stall_down_after && link.down + data.size() > *link.plan.stall_down_after) {
      data.resize(static_cast<size_t>(*link.plan.stall_down_after - link.down));
      link.stalled = true;
      ++faults_;
    }
    if (link.plan.cut_down_after && link.down + data.size() >= *link.plan.cut_down_after) {
      data.resize(static_cast<size_t>(*link.plan.cut_down_after - link.down));
      link.closing = true;
      ++faults_;
    }
    link.down += data.size();
    link.to_client += data;
  };
  auto from_client = [this](Link& link, std::string_view bytes) {
    std::string data(bytes);
    if (link.plan.cut_up_after && link.up + data.size() >= *link.plan.cut_up_after) {
      data.resize(static_cast<size_t>(*link.plan.cut_up_after - link.up));
      link.closing = true;
      ++faults_;
    }
    link.up += data.size();
    link.to_server += data;
  };
  // Writes what it can of `out` to `fd`; false when the peer is gone.
  auto flush = [](int fd, std::string& out) {
    while (!out.empty()) {
      ssize_t n = ::send(fd, out.data(), out.size(), MSG_NOSIGNAL);
      if (n > 0) {
        out.erase(0, static_cast<size_t>(n));
        continue;
      }
      return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR);
    }
    return true;
  };

  using Clock = std::chrono::steady_clock;
  for (;;) {
    std::vector<pollfd> fds;
    fds.push_back({wake_[0], POLLIN, 0});
    fds.push_back({listener_, POLLIN, 0});
    const Clock::time_point now = Clock::now();
    int timeout_ms = -1;
    for (Link& link : links) {
      short client_events = 0;
      short server_events = 0;
      if (!link.closing && link.to_server.size() < kMaxBuffered) client_events |= POLLIN;
      const bool rate_limited = link.read_server_at > now;
      if (rate_limited) {
        auto wait = std::chrono::ceil<std::chrono::milliseconds>(link.read_server_at - now);
        timeout_ms = timeout_ms < 0 ? int(wait.count()) : std::min(timeout_ms, int(wait.count()));
      }
      if (!link.closing && !link.stalled && !rate_limited && link.to_client.size() < kMaxBuffered) {
        server_events |= POLLIN;
      }
      if (!link.to_client.empty()) client_events |= POLLOUT;
      if (!link.to_server.empty()) server_events |= POLLOUT;
      fds.push_back({link.client, client_events, 0});
      fds.push_back({link.server, server_events, 0});
    }
    if (::poll(fds.data(), fds.size(), timeout_ms) < 0) {
      if (errno == EINTR) continue;
      break;
    }
    if ((fds[0].revents & POLLIN) != 0) break;
    if ((fds[1].revents & POLLIN) != 0) {
      while (Accept(links)) {
      }
    }
    char buffer[65536];
    for (size_t i = 0; i < links.size() && 2 + 2 * i + 1 < fds.size(); ++i) {
      Link& link = links[i];
      const pollfd& client = fds[2 + 2 * i];
      const pollfd& server = fds[2 + 2 * i + 1];
      bool gone = false;
      if ((client.revents & (POLLIN | POLLHUP | POLLERR)) != 0 && (client.events & POLLIN) != 0) {
        ssize_t n = ::recv(link.client, buffer, sizeof buffer, 0);
        if (n > 0) {
          from_client(link, std::string_view(buffer, static_cast<size_t>(n)));
        } else if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
          gone = true;
        }
      }
      if ((server.revents & (POLLIN | POLLHUP | POLLERR)) != 0 && (server.events & POLLIN) != 0) {
        const uint64_t rate =
            link.down >= link.plan.slow_down_after ? link.plan.down_bytes_per_second : 0;
        // A rate-limited link reads a 20th of a second's worth at a time.
        const size_t most =
            rate > 0 ? std::clamp<size_t>(rate / 20, 1, sizeof buffer) : sizeof buffer;
        ssize_t n = ::recv(link.server, buffer, most, 0);
        if (n > 0) {
          if (rate > 0) {
            link.read_server_at = std::max(link.read_server_at, Clock::now()) +
                                  std::chrono::microseconds(uint64_t(n) * 1000000 / rate);
          }
          from_server(link, std::string_view(buffer, static_cast<size_t>(n)));
        } else if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
          // The server closed: pass on what it sent, then close.
          link.to_client += link.partial_line;
          link.partial_line.clear();
          link.closing = true;
        }
      }
      if (!flush(link.client, link.to_client) || !flush(link.server, link.to_server)) gone = true;
      if (link.stalled && (client.revents & (POLLHUP | POLLERR)) != 0) gone = true;
      if (gone || (link.closing && link.to_client.empty() && link.to_server.empty())) {
        const bool reset = link.plan.reset && !gone;
        CloseSocket(link.client, reset);
        CloseSocket(link.server, reset);
        link.client = link.server = -1;
      }
    }
    std::erase_if(links, [](const Link& link) { return link.client < 0; });
  }
  for (Link& link : links) {
    CloseSocket(link.client, false);
    CloseSocket(link.server, false);
  }
}

}  // namespace mailmirror::testing
