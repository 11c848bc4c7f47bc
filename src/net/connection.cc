#include "net/connection.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>
#include <sys/socket.h>
#include <uv.h>

#include <algorithm>
#include <climits>
#include <cstdio>
#include <cstring>
#include <utility>
#include <vector>

#include "net/event_loop.h"
#include "net/tls_context.h"
#include "util/strings.h"

namespace mailmirror::net {

namespace {

constexpr size_t kReadBufferSize = 64 * 1024;
// Plaintext handed to one SSL_write: large enough to amortize the uv_write
// per call, small enough that a big Write does not double its memory at once.
constexpr size_t kTlsWriteChunk = 256 * 1024;
// How long Close() waits for queued bytes (and close_notify) to leave.
constexpr uint64_t kGracefulCloseMs = 2000;
constexpr unsigned kKeepAliveDelaySeconds = 60;

bool IsIpv6Literal(const std::string& host) {
  unsigned char addr[sizeof(struct in6_addr)];
  return uv_inet_pton(AF_INET6, host.c_str(), addr) == 0;
}

bool IsIpLiteral(const std::string& host) {
  unsigned char addr[sizeof(struct in6_addr)];
  return uv_inet_pton(AF_INET, host.c_str(), addr) == 0 || IsIpv6Literal(host);
}

std::string FormatEndpoint(const std::string& host, uint16_t port) {
  return (IsIpv6Literal(host) ? "[" + host + "]" : host) + ":" + std::to_string(port);
}

std::string FormatAddress(const sockaddr_storage& addr) {
  char buf[INET6_ADDRSTRLEN] = "?";
  if (addr.ss_family == AF_INET6) {
    uv_ip6_name(reinterpret_cast<const sockaddr_in6*>(&addr), buf, sizeof(buf));
  } else {
    uv_ip4_name(reinterpret_cast<const sockaddr_in*>(&addr), buf, sizeof(buf));
  }
  return buf;
}

}  // namespace

// The state machine behind Connection.
//
// Lifetime: the Impl owns a timer (always open from Connect until the end)
// and, while connecting or connected, a TCP handle. OnClosed is delivered
// from the last close callback, so it always comes from the loop and after
// libuv is done with our memory. If the Connection is destroyed while the
// handles are still open (a caller bug, tolerated), the Impl detaches from
// its observer and frees itself in that last close callback instead.
struct Connection::Impl {
  enum class State {
    kIdle,         // Connect not called yet
    kResolving,    // uv_getaddrinfo in flight
    kConnecting,   // uv_tcp_connect in flight, trying addresses in order
    kHandshaking,  // TCP up, TLS handshake in flight (implicit TLS or StartTls)
    kOpen,         // bytes flow
    kClosing,      // handles closing (or flushing, after Close)
    kClosed,       // OnClosed delivered or about to be
  };

  // A resolve request outlives the Impl if the connection gives up on it
  // (uv_cancel cannot stop a lookup already running in the thread pool), so
  // it is allocated separately and frees itself in its callback.
  struct ResolveRequest {
    uv_getaddrinfo_t req;
    Impl* impl;  // null once abandoned
  };

  struct WriteRequest {
    uv_write_t req;
    std::string bytes;
    Impl* impl;
  };

  Impl(uv_loop_t* loop, ConnectionObserver* observer) : loop_(loop), observer_(observer) {}

  ~Impl() {
    if (ssl_ != nullptr) SSL_free(ssl_);
  }

  // --- Entry points from Connection -------------------------------------

  void Connect(const ConnectOptions& options) {
    if (state_ != State::kIdle) return;  // one connection per object
    options_ = options;
    // Accept "[::1]" as well as "::1"; the brackets are URL syntax.
    std::string& host = options_.host;
    if (host.size() > 2 && host.front() == '[' && host.back() == ']') {
      host = host.substr(1, host.size() - 2);
    }
    host_is_ip_ = IsIpLiteral(host);
    endpoint_ = FormatEndpoint(host, options_.port);

    // The timer is opened first and stays open until the end: every failure
    // from here on closes at least one handle, which is what makes OnClosed
    // arrive from the loop rather than from inside this call.
    OpenTimer();
    if (options_.connect_timeout_ms > 0) {
      uv_timer_start(&timer_, OnTimer, options_.connect_timeout_ms, 0);
    }
    state_ = State::kResolving;
    if (host.empty()) {
      Fail(ErrorKind::kConfig, "no server host name given");
      return;
    }
    if (options_.implicit_tls) {
      // Load the CA file before touching the network: a configuration error
      // should not look like a network one.
      if (Status st = PrepareTls(); !st.ok()) {
        Fail(st.error());
        return;
      }
    }

    auto* request = new ResolveRequest{};
    request->impl = this;
    request->req.data = request;
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_protocol = IPPROTO_TCP;
    // No AI_ADDRCONFIG: it hides ::1 and 127.0.0.1 on hosts without
    // non-loopback addresses of that family.
    hints.ai_flags = AI_NUMERICSERV | (host_is_ip_ ? AI_NUMERICHOST : 0);
    std::string port = std::to_string(options_.port);
    int rc = uv_getaddrinfo(loop_, &request->req, OnResolved, host.c_str(), port.c_str(), &hints);
    if (rc != 0) {
      delete request;
      Fail(ErrorKind::kUnavailable, "cannot resolve " + host + ": " + uv_strerror(rc));
      return;
    }
    resolve_request_ = request;
  }

  void Write(std::string_view data) {
    if (state_ == State::kClosing || state_ == State::kClosed || data.empty()) return;
    // Until the stream is open (and, with TLS, the server verified), bytes
    // wait here: nothing may reach an unverified server.
    out_.append(data);
    if (state_ == State::kOpen) Flush();
  }

  void StartTls() {
    if (state_ == State::kClosing || state_ == State::kClosed) return;
    if (state_ != State::kOpen || ssl_ != nullptr) {
      Fail(ErrorKind::kInternal, "StartTls on " + endpoint_ +
                                     (ssl_ != nullptr ? ", which already uses TLS"
                                                      : " before the connection was established"));
      return;
    }
    if (Status st = PrepareTls(); !st.ok()) {
      Fail(st.error());
      return;
    }
    // Received bytes are delivered as soon as they arrive, so none are
    // pending in plaintext: the TLS layer starts on a clean stream. Bytes
    // arriving from now on are the server's handshake (or an attack, which
    // then fails the handshake).
    starttls_ = true;
    state_ = State::kHandshaking;
    if (options_.connect_timeout_ms > 0) {
      uv_timer_start(&timer_, OnTimer, options_.connect_timeout_ms, 0);
    }
    // Only sends the ClientHello: the handshake cannot finish without the
    // server's reply, so no observer callback can happen inside StartTls.
    ContinueHandshake();
  }

  void Close() {
    switch (state_) {
      case State::kClosing:
      case State::kClosed:
        return;
      case State::kOpen:
        BeginClose(Status::Ok(), /*graceful=*/true);
        return;
      default:
        BeginClose(Status::Ok(), /*graceful=*/false);
        return;
    }
  }

  // Called by ~Connection. Returns true if the Impl now owns itself and will
  // be freed by its last close callback.
  bool Abandon() {
    if (state_ == State::kIdle || state_ == State::kClosed) return false;
    observer_ = nullptr;
    abandoned_ = true;
    if (state_ != State::kClosing) BeginClose(Status::Ok(), /*graceful=*/false);
    // Stop a graceful close from waiting for the peer on our behalf.
    CloseHandles();
    return true;
  }

  bool tls_active() const { return tls_active_; }

  bool peer_is_loopback() const {
    if (!tcp_connected_) return false;
    sockaddr_storage peer{};
    int length = sizeof(peer);
    if (uv_tcp_getpeername(&tcp_, reinterpret_cast<sockaddr*>(&peer), &length) != 0) return false;
    if (peer.ss_family == AF_INET) {
      const auto* v4 = reinterpret_cast<const sockaddr_in*>(&peer);
      return (ntohl(v4->sin_addr.s_addr) >> 24) == 127;  // 127.0.0.0/8
    }
    if (peer.ss_family == AF_INET6) {
      const in6_addr& address = reinterpret_cast<const sockaddr_in6*>(&peer)->sin6_addr;
      if (IN6_IS_ADDR_LOOPBACK(&address)) return true;
      return IN6_IS_ADDR_V4MAPPED(&address) && address.s6_addr[12] == 127;
    }
    return false;
  }

  void SetMidResponse(bool mid_response) {
    if (mid_response == mid_response_) return;
    mid_response_ = mid_response;
    if (!RateApplies() || state_ != State::kOpen) return;
    // A new window from now; the timer must fire by its end.
    window_start_ms_ = uv_now(loop_);
    window_bytes_ = 0;
    if (uv_timer_get_due_in(&timer_) > options_.read_timeout_ms) {
      uv_timer_start(&timer_, OnTimer, options_.read_timeout_ms, 0);
    }
  }

  void Abort(const Error& error) {
    if (state_ == State::kIdle || state_ == State::kClosed) return;
    Fail(error);
  }

  size_t queued_bytes() const { return out_.size() + in_transit_; }

 private:
  // --- Setup ------------------------------------------------------------

  void OpenTimer() {
    uv_timer_init(loop_, &timer_);  // cannot fail for timers
    timer_.data = this;
    timer_open_ = true;
  }

  Status PrepareTls() {
    Result<std::shared_ptr<TlsContext>> ctx = TlsContext::ForCaFile(options_.ca_file);
    if (!ctx.ok()) return ctx.error();
    tls_context_ = *ctx;

    ERR_clear_error();
    ssl_ = SSL_new(tls_context_->get());
    BIO* rbio = BIO_new(BIO_s_mem());
    BIO* wbio = BIO_new(BIO_s_mem());
    if (ssl_ == nullptr || rbio == nullptr || wbio == nullptr) {
      BIO_free(rbio);
      BIO_free(wbio);
      return MakeError(ErrorKind::kInternal, "cannot set up TLS: " + OpenSslErrorText());
    }
    SSL_set_bio(ssl_, rbio, wbio);  // ssl_ owns both now
    rbio_ = rbio;
    wbio_ = wbio;
    SSL_set_connect_state(ssl_);

    const std::string& host = options_.host;
    bool ok = true;
    if (!host_is_ip_) {
      // SNI is a DNS name by definition (RFC 6066 §3); IP literals go without.
      ok &= SSL_ctrl(ssl_, SSL_CTRL_SET_TLSEXT_HOSTNAME, TLSEXT_NAMETYPE_host_name,
                     const_cast<char*>(host.c_str())) == 1;
    }
    if (options_.verify_certificate && options_.pinned_sha256.empty()) {
      SSL_set_verify(ssl_, SSL_VERIFY_PEER, nullptr);
      if (host_is_ip_) {
        ok &= X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl_), host.c_str()) == 1;
      } else {
        // RFC 9525: DNS-IDs from subjectAltName only, wildcard only as the
        // whole left-most label, never the subject CN.
        SSL_set_hostflags(
            ssl_, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS | X509_CHECK_FLAG_NEVER_CHECK_SUBJECT);
        ok &= SSL_set1_host(ssl_, host.c_str()) == 1;
      }
    } else {
      SSL_set_verify(ssl_, SSL_VERIFY_NONE, nullptr);
    }
    if (!ok) {
      return MakeError(ErrorKind::kConfig,
                       "cannot use \"" + host + "\" as a TLS server name: " + OpenSslErrorText());
    }
    return Status::Ok();
  }

  // --- Resolve and connect ------------------------------------------------

  static void OnResolved(uv_getaddrinfo_t* req, int status, addrinfo* res) {
    auto* request = static_cast<ResolveRequest*>(req->data);
    Impl* impl = request->impl;
    if (impl != nullptr) {
      impl->resolve_request_ = nullptr;
      impl->HandleResolved(status, res);
    }
    uv_freeaddrinfo(res);
    delete request;
  }

  void HandleResolved(int status, const addrinfo* res) {
    if (state_ != State::kResolving) return;
    if (status != 0) {
      Fail(ErrorKind::kUnavailable, "cannot resolve " + options_.host + ": " + uv_strerror(status) +
                                        " (check the host name and the network)");
      return;
    }
    for (const addrinfo* ai = res; ai != nullptr; ai = ai->ai_next) {
      if ((ai->ai_family != AF_INET && ai->ai_family != AF_INET6) ||
          ai->ai_addrlen > sizeof(sockaddr_storage)) {
        continue;
      }
      sockaddr_storage addr{};
      std::memcpy(&addr, ai->ai_addr, ai->ai_addrlen);
      addresses_.push_back(addr);
    }
    state_ = State::kConnecting;
    ConnectNext();
  }

  // Tries addresses_[next_address_]. A failed attempt closes its TCP handle
  // (libuv leaves a failed socket in an unspecified state) and the close
  // callback comes back here for the next address.
  void ConnectNext() {
    if (next_address_ >= addresses_.size()) {
      std::string message = "connect to " + endpoint_ + " failed: ";
      if (attempt_errors_.empty()) {
        message += "no usable address";
      } else if (attempt_errors_.size() == 1) {
        message += attempt_errors_[0].second;
      } else {
        for (size_t i = 0; i < attempt_errors_.size(); ++i) {
          if (i > 0) message += ", ";
          message += attempt_errors_[i].second + " (" + attempt_errors_[i].first + ")";
        }
      }
      Fail(ErrorKind::kUnavailable, message);
      return;
    }
    const sockaddr_storage& addr = addresses_[next_address_];
    uv_tcp_init(loop_, &tcp_);
    tcp_.data = this;
    tcp_open_ = true;
    connect_req_.data = this;
    int rc =
        uv_tcp_connect(&connect_req_, &tcp_, reinterpret_cast<const sockaddr*>(&addr), OnConnect);
    if (rc != 0) ConnectAttemptFailed(rc);
  }

  void ConnectAttemptFailed(int error) {
    attempt_errors_.emplace_back(FormatAddress(addresses_[next_address_]), uv_strerror(error));
    ++next_address_;
    uv_close(reinterpret_cast<uv_handle_t*>(&tcp_), OnHandleClosed);
  }

  static void OnConnect(uv_connect_t* req, int status) {
    auto* impl = static_cast<Impl*>(req->data);
    // ECANCELED: we closed the handle (timeout, Close); the close callback
    // that follows does the bookkeeping.
    if (status == UV_ECANCELED || impl->state_ != State::kConnecting) return;
    if (status != 0) {
      impl->ConnectAttemptFailed(status);
      return;
    }
    impl->HandleConnected();
  }

  void HandleConnected() {
    tcp_connected_ = true;
    // IMAP is request/response with small commands: Nagle would add a
    // round trip of delay to every pipelined burst.
    uv_tcp_nodelay(&tcp_, 1);
    // Long idle sessions behind NAT: let the kernel notice a dead peer.
    uv_tcp_keepalive(&tcp_, 1, kKeepAliveDelaySeconds);
    int rc = uv_read_start(reinterpret_cast<uv_stream_t*>(&tcp_), OnAlloc, OnRead);
    if (rc != 0) {
      Fail(ErrorKind::kUnavailable, "cannot read from " + endpoint_ + ": " + uv_strerror(rc));
      return;
    }
    if (ssl_ != nullptr) {
      state_ = State::kHandshaking;
      ContinueHandshake();
      return;
    }
    state_ = State::kOpen;
    StartReadTimer();
    Flush();
    if (state_ == State::kOpen) observer_->OnConnected();
  }

  // --- Reading ------------------------------------------------------------

  static void OnAlloc(uv_handle_t* handle, size_t /*suggested*/, uv_buf_t* buf) {
    // One read is in flight at a time and its bytes are consumed before the
    // callback returns, so a single buffer serves every read.
    auto* impl = static_cast<Impl*>(handle->data);
    *buf = uv_buf_init(impl->read_buffer_, sizeof(impl->read_buffer_));
  }

  static void OnRead(uv_stream_t* stream, ssize_t nread, const uv_buf_t* buf) {
    auto* impl = static_cast<Impl*>(stream->data);
    if (nread == 0) return;  // EAGAIN
    if (nread < 0) {
      impl->HandleReadError(static_cast<int>(nread));
      return;
    }
    impl->last_read_ms_ = uv_now(impl->loop_);
    impl->window_bytes_ += static_cast<uint64_t>(nread);
    impl->HandleBytes(std::string_view(buf->base, static_cast<size_t>(nread)));
  }

  void HandleReadError(int error) {
    if (state_ == State::kClosing) {
      // While Close() flushes: a FIN only means the server is done sending
      // (it may still read), so let the flush finish; a reset ends it.
      if (error == UV_EOF) {
        uv_read_stop(reinterpret_cast<uv_stream_t*>(&tcp_));
      } else {
        CloseHandles();
      }
      return;
    }
    if (state_ == State::kHandshaking) {
      std::string why = error == UV_EOF ? "the server closed the connection"
                                        : std::string("connection lost: ") + uv_strerror(error);
      Fail(ErrorKind::kUnavailable, "TLS handshake with " + endpoint_ + " failed: " + why +
                                        (starttls_ ? "" : " (does this port speak TLS?)"));
      return;
    }
    if (error == UV_EOF) {
      // With TLS, an EOF without close_notify could be a truncation attack;
      // either way the stream is gone mid-session.
      Fail(ErrorKind::kUnavailable, "connection to " + endpoint_ + " closed by the server" +
                                        (tls_active_ ? " (without TLS close_notify)" : ""));
    } else {
      Fail(ErrorKind::kUnavailable, "connection to " + endpoint_ + " lost: " + uv_strerror(error));
    }
  }

  void HandleBytes(std::string_view bytes) {
    if (state_ == State::kClosing || state_ == State::kClosed) return;  // after Close: discard
    if (ssl_ == nullptr) {
      observer_->OnData(bytes);
      return;
    }
    // Memory BIOs grow as needed, so BIO_write takes everything at once.
    if (BIO_write(rbio_, bytes.data(), static_cast<int>(bytes.size())) !=
        static_cast<int>(bytes.size())) {
      Fail(ErrorKind::kInternal, "cannot buffer TLS input: " + OpenSslErrorText());
      return;
    }
    PumpTls();
  }

  // Advances the handshake and decrypts whatever the read BIO holds.
  void PumpTls() {
    if (state_ == State::kHandshaking) {
      if (!ContinueHandshake()) return;
      if (!CheckVerifiedPeer()) return;
      tls_active_ = true;
      state_ = State::kOpen;
      StartReadTimer();
      // Bytes queued during the handshake go first, before anything the
      // observer writes from its callback.
      Flush();
      if (state_ != State::kOpen) return;
      if (starttls_) {
        observer_->OnTlsStarted();
      } else {
        observer_->OnConnected();
      }
      // The server may have sent data in the same flight as its Finished;
      // it is already in the read BIO, so fall through and decrypt it.
    }
    while (state_ == State::kOpen) {
      ERR_clear_error();
      int n = SSL_read(ssl_, plain_buffer_, sizeof(plain_buffer_));
      int error = n > 0 ? SSL_ERROR_NONE : SSL_get_error(ssl_, n);
      DrainTlsOutput();  // e.g. a KeyUpdate reply
      if (state_ != State::kOpen) return;
      if (n > 0) {
        // The observer may Close, Write or misuse StartTls from here; the
        // loop condition re-checks the state after every call.
        observer_->OnData(std::string_view(plain_buffer_, static_cast<size_t>(n)));
        continue;
      }
      if (error == SSL_ERROR_WANT_READ) break;
      if (error == SSL_ERROR_ZERO_RETURN) {
        Fail(ErrorKind::kUnavailable, "connection to " + endpoint_ + " closed by the server");
      } else {
        std::string reason = OpenSslErrorText();
        Fail(ErrorKind::kUnavailable, "TLS error on the connection to " + endpoint_ + ": " +
                                          (reason.empty() ? "unknown error" : reason));
      }
      return;
    }
    // A write that stalled on a renegotiation can proceed now.
    if (state_ == State::kOpen && !out_.empty()) Flush();
  }

  // One handshake step. Returns true once the handshake is complete; false
  // while it waits for the server or after failing the connection.
  bool ContinueHandshake() {
    ERR_clear_error();
    int rc = SSL_do_handshake(ssl_);
    int error = rc == 1 ? SSL_ERROR_NONE : SSL_get_error(ssl_, rc);
    std::string reason = error == SSL_ERROR_NONE || error == SSL_ERROR_WANT_READ
                             ? std::string()
                             : OpenSslErrorText();
    DrainTlsOutput();  // ClientHello, Finished, or the alert that ends a failure
    if (state_ != State::kHandshaking) return false;
    if (error == SSL_ERROR_NONE) return true;
    if (error != SSL_ERROR_WANT_READ) FailHandshake(error, reason);
    return false;
  }

  // Belt and braces after a successful handshake: SSL_VERIFY_PEER already
  // aborted it on any verification failure.
  bool CheckVerifiedPeer() {
    if (!options_.pinned_sha256.empty()) return CheckPinnedPeer();
    if (!options_.verify_certificate) return true;
    X509* peer = SSL_get1_peer_certificate(ssl_);
    const bool has_peer = peer != nullptr;
    X509_free(peer);
    long result = SSL_get_verify_result(ssl_);
    if (has_peer && result == X509_V_OK) return true;
    Error failure = MakeError(ErrorKind::kUnavailable,
                              "TLS handshake with " + endpoint_ + " failed: " +
                                  (!has_peer ? std::string("the server sent no certificate")
                                             : std::string("certificate verify failed: ") +
                                                   X509_verify_cert_error_string(result)));
    failure.lasting = true;
    Fail(failure);
    return false;
  }

  // With a pinned fingerprint, the certificate itself is the trust anchor:
  // its SHA-256 must match, whatever signed it and whatever names it lists.
  bool CheckPinnedPeer() {
    X509* peer = SSL_get1_peer_certificate(ssl_);
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int length = 0;
    const bool digested = peer != nullptr && X509_digest(peer, EVP_sha256(), digest, &length) == 1;
    X509_free(peer);
    const std::string actual(reinterpret_cast<const char*>(digest), digested ? length : 0);
    if (digested && actual == options_.pinned_sha256) return true;
    auto hex = [](const std::string& bytes) {
      std::string out;
      char pair[4];
      for (unsigned char byte : bytes) {
        (void)std::snprintf(pair, sizeof pair, out.empty() ? "%02X" : ":%02X", byte);
        out += pair;
      }
      return out;
    };
    Error failure =
        MakeError(ErrorKind::kUnavailable,
                  "TLS handshake with " + endpoint_ + " failed: " +
                      (!digested ? std::string("the server sent no certificate")
                                 : "the certificate's SHA-256 fingerprint is " + hex(actual) +
                                       ", not the pinned " + hex(options_.pinned_sha256)));
    failure.lasting = true;
    Fail(failure);
    return false;
  }

  void FailHandshake(int error, std::string reason) {
    std::string why;
    bool dropped = false;
    long verify = SSL_get_verify_result(ssl_);
    if (options_.verify_certificate && verify != X509_V_OK) {
      why = std::string("certificate verify failed: ") + X509_verify_cert_error_string(verify);
      if (verify == X509_V_ERR_HOSTNAME_MISMATCH || verify == X509_V_ERR_IP_ADDRESS_MISMATCH) {
        why += " (the certificate is not valid for " + options_.host +
               "; connect with a name the certificate lists)";
      } else {
        why += " (add the server's CA with ca_file, or check the host name)";
      }
    } else {
      why = std::move(reason);
      // The classic symptom of TLS spoken to a plaintext port (or the reverse).
      if (why == "wrong version number" || why == "packet length too long") {
        why += starttls_ ? " (the server did not start TLS after agreeing to)"
                         : " (does this port speak TLS? implicit TLS is usually port 993; "
                           "port 143 needs STARTTLS)";
      }
      if (why.empty()) {
        dropped = error == SSL_ERROR_ZERO_RETURN || error == SSL_ERROR_SYSCALL;
        why = dropped ? "the server closed the connection" : "unknown error";
      }
    }
    Error failure =
        MakeError(ErrorKind::kUnavailable, "TLS handshake with " + endpoint_ + " failed: " + why);
    // A refused certificate or protocol stays refused; only a connection
    // that dropped mid-handshake may fare better when tried again.
    failure.lasting = !dropped;
    Fail(failure);
  }

  // --- Writing ------------------------------------------------------------

  // Sends out_ (state kOpen only): encrypted when TLS is on, else as is.
  void Flush() {
    if (ssl_ == nullptr) {
      if (!out_.empty()) SendRaw(std::exchange(out_, std::string()));
      return;
    }
    size_t done = 0;
    while (done < out_.size() && state_ == State::kOpen) {
      size_t chunk = std::min(out_.size() - done, kTlsWriteChunk);
      ERR_clear_error();
      int n = SSL_write(ssl_, out_.data() + done, static_cast<int>(chunk));
      int error = n > 0 ? SSL_ERROR_NONE : SSL_get_error(ssl_, n);
      DrainTlsOutput();
      if (n > 0) {
        done += static_cast<size_t>(n);
        continue;
      }
      // WANT_READ: the peer started a renegotiation; PumpTls retries after
      // the next read. The same bytes must be passed again, so keep them.
      if (error == SSL_ERROR_WANT_READ) break;
      std::string reason = OpenSslErrorText();
      Fail(ErrorKind::kUnavailable, "TLS error on the connection to " + endpoint_ + ": " +
                                        (reason.empty() ? "cannot write" : reason));
      return;
    }
    // Failing (in SendRaw) already emptied out_.
    if (state_ == State::kOpen) out_.erase(0, done);
  }

  // Moves whatever OpenSSL produced into a uv_write.
  void DrainTlsOutput() {
    size_t pending = BIO_ctrl_pending(wbio_);
    if (pending == 0) return;
    std::string bytes(pending, '\0');
    size_t got = 0;
    while (got < pending) {
      int n = BIO_read(wbio_, bytes.data() + got,
                       static_cast<int>(std::min<size_t>(pending - got, INT_MAX)));
      if (n <= 0) break;
      got += static_cast<size_t>(n);
    }
    bytes.resize(got);
    SendRaw(std::move(bytes));
  }

  void SendRaw(std::string bytes) {
    if (!tcp_connected_ || !tcp_open_ || bytes.empty() ||
        uv_is_closing(reinterpret_cast<uv_handle_t*>(&tcp_))) {
      return;
    }
    auto* request = new WriteRequest{};
    request->bytes = std::move(bytes);
    request->impl = this;
    in_transit_ += request->bytes.size();
    if (queued_bytes() > Connection::kDrainedBytes) above_drained_ = true;
    request->req.data = request;
    uv_buf_t buf = uv_buf_init(request->bytes.data(), static_cast<unsigned>(request->bytes.size()));
    int rc = uv_write(&request->req, reinterpret_cast<uv_stream_t*>(&tcp_), &buf, 1, OnWritten);
    if (rc != 0) {
      delete request;
      Fail(ErrorKind::kUnavailable, "cannot write to " + endpoint_ + ": " + uv_strerror(rc));
    }
  }

  static void OnWritten(uv_write_t* req, int status) {
    auto* request = static_cast<WriteRequest*>(req->data);
    // Safe to use: libuv completes a stream's writes before its close
    // callback, and the Impl lives at least until that callback.
    Impl* impl = request->impl;
    impl->in_transit_ -= request->bytes.size();
    delete request;
    if (status == 0) impl->last_read_ms_ = uv_now(impl->loop_);
    if (status == 0 && impl->above_drained_ && impl->state_ == State::kOpen &&
        impl->queued_bytes() <= Connection::kDrainedBytes) {
      impl->above_drained_ = false;
      impl->observer_->OnDrained();
      return;
    }
    if (status == 0 || status == UV_ECANCELED) return;
    impl->Fail(ErrorKind::kUnavailable,
               "connection to " + impl->endpoint_ + " lost: " + uv_strerror(status));
  }

  // --- Timers ---------------------------------------------------------------

  void StartReadTimer() {
    last_read_ms_ = uv_now(loop_);
    if (options_.read_timeout_ms > 0) {
      uv_timer_start(&timer_, OnTimer, options_.read_timeout_ms, 0);
    } else {
      uv_timer_stop(&timer_);
    }
  }

  bool RateApplies() const {
    return mid_response_ && options_.min_rate > 0 && options_.read_timeout_ms > 0;
  }

  static void OnTimer(uv_timer_t* timer) {
    auto* impl = static_cast<Impl*>(timer->data);
    impl->HandleTimer();
  }

  void HandleTimer() {
    const std::string timeout = FormatSeconds(options_.connect_timeout_ms);
    switch (state_) {
      case State::kResolving:
        Fail(ErrorKind::kTemporary,
             "resolving " + options_.host + " timed out after " + timeout + " s");
        return;
      case State::kConnecting:
        Fail(ErrorKind::kTemporary,
             "connect to " + endpoint_ + " timed out after " + timeout + " s");
        return;
      case State::kHandshaking:
        Fail(ErrorKind::kTemporary,
             "TLS handshake with " + endpoint_ + " timed out after " + timeout + " s");
        return;
      case State::kOpen: {
        // The timer is not restarted on every read (that would be a heap
        // operation per packet); it checks the last read time when it fires.
        const uint64_t now = uv_now(loop_);
        const uint64_t idle = now - last_read_ms_;
        if (idle >= options_.read_timeout_ms) {
          Fail(ErrorKind::kTemporary, "no data from " + endpoint_ + " for " +
                                          FormatSeconds(options_.read_timeout_ms) + " s");
          return;
        }
        uint64_t next = options_.read_timeout_ms - idle;
        if (RateApplies()) {
          const uint64_t window = options_.read_timeout_ms;
          if (now - window_start_ms_ >= window) {
            const uint64_t floor = uint64_t{options_.min_rate} * window / 1000;
            if (window_bytes_ < floor) {
              Fail(ErrorKind::kTemporary,
                   endpoint_ + " sent only " + std::to_string(window_bytes_) + " bytes in " +
                       FormatSeconds(window) + " s while answering (min_rate is " +
                       std::to_string(options_.min_rate) + " bytes/s)");
              return;
            }
            window_start_ms_ = now;
            window_bytes_ = 0;
          }
          next = std::min(next, window - (now - window_start_ms_));
        }
        uv_timer_start(&timer_, OnTimer, std::max<uint64_t>(next, 1), 0);
        return;
      }
      case State::kClosing:
        CloseHandles();  // graceful close took too long
        return;
      case State::kIdle:
      case State::kClosed:
        return;
    }
  }

  // --- Closing ------------------------------------------------------------

  void Fail(ErrorKind kind, std::string message) { Fail(MakeError(kind, std::move(message))); }

  void Fail(const Error& error) {
    if (state_ == State::kClosing) {
      // Flushing after Close() failed: the user asked to close, so the
      // outcome stays ok; just stop waiting.
      CloseHandles();
      return;
    }
    BeginClose(error, /*graceful=*/false);
  }

  // The one way to the end. The first status wins; OnClosed follows from
  // the last close callback.
  void BeginClose(Status status, bool graceful) {
    if (state_ == State::kClosing || state_ == State::kClosed) return;
    // Before Connect nothing is open, but OnClosed must still come from the
    // loop: open the timer just to have a close callback that delivers it.
    if (!timer_open_) OpenTimer();
    close_status_ = std::move(status);
    state_ = State::kClosing;
    if (resolve_request_ != nullptr) {
      // Either cancelled (callback runs with UV_EAI_CANCELED) or already
      // running; in both cases the request frees itself later.
      uv_cancel(reinterpret_cast<uv_req_t*>(&resolve_request_->req));
      resolve_request_->impl = nullptr;
      resolve_request_ = nullptr;
    }
    out_.clear();  // never sent to a server we give up on (or did not verify)
    if (graceful && tcp_connected_) {
      // Let queued bytes leave, with close_notify after them, then FIN.
      if (tls_active_) {
        ERR_clear_error();
        SSL_shutdown(ssl_);
        DrainTlsOutput();
      }
      shutdown_req_.data = this;
      int rc = uv_shutdown(&shutdown_req_, reinterpret_cast<uv_stream_t*>(&tcp_), OnShutdown);
      if (rc == 0) {
        uv_timer_start(&timer_, OnTimer, kGracefulCloseMs, 0);
        return;
      }
    }
    CloseHandles();
  }

  static void OnShutdown(uv_shutdown_t* req, int /*status*/) {
    // Whatever the status, our side is done. Don't wait for the server's
    // FIN: the user asked to close, not to drain the server.
    static_cast<Impl*>(req->data)->CloseHandles();
  }

  void CloseHandles() {
    if (timer_open_ && !uv_is_closing(reinterpret_cast<uv_handle_t*>(&timer_))) {
      uv_close(reinterpret_cast<uv_handle_t*>(&timer_), OnHandleClosed);
    }
    if (tcp_open_ && !uv_is_closing(reinterpret_cast<uv_handle_t*>(&tcp_))) {
      uv_close(reinterpret_cast<uv_handle_t*>(&tcp_), OnHandleClosed);
    }
  }

  static void OnHandleClosed(uv_handle_t* handle) {
    auto* impl = static_cast<Impl*>(handle->data);
    if (handle == reinterpret_cast<uv_handle_t*>(&impl->timer_)) {
      impl->timer_open_ = false;
    } else {
      impl->tcp_open_ = false;
      impl->tcp_connected_ = false;
    }
    if (impl->state_ == State::kConnecting) {
      impl->ConnectNext();  // a failed attempt's handle is gone; next address
    } else if (impl->state_ == State::kClosing) {
      impl->MaybeFinish();
    }
  }

  void MaybeFinish() {
    if (timer_open_ || tcp_open_) return;
    state_ = State::kClosed;
    if (ssl_ != nullptr) {
      SSL_free(ssl_);
      ssl_ = nullptr;
    }
    tls_context_.reset();
    if (abandoned_) {
      delete this;
      return;
    }
    // Last act: the observer may destroy the Connection (and with it this
    // Impl) once OnClosed has run, so nothing here touches `this` after it.
    ConnectionObserver* observer = observer_;
    observer->OnClosed(std::move(close_status_));
  }

  uv_loop_t* loop_;
  ConnectionObserver* observer_;  // null once abandoned
  ConnectOptions options_;
  bool host_is_ip_ = false;
  std::string endpoint_;  // "host:port" for messages
  State state_ = State::kIdle;
  Status close_status_;
  bool abandoned_ = false;

  uv_timer_t timer_{};  // connect deadline, then read timeout, then close grace
  bool timer_open_ = false;
  // The last read, or the last write the kernel took (a long upload is no
  // silence): the read timeout counts from here.
  uint64_t last_read_ms_ = 0;
  // The rate floor (ConnectOptions::min_rate): while a response is under
  // way, bytes received since the window began.
  bool mid_response_ = false;
  uint64_t window_start_ms_ = 0;
  uint64_t window_bytes_ = 0;
  // Written to the socket and not yet completed; OnDrained is owed once
  // the queue went above Connection::kDrainedBytes.
  size_t in_transit_ = 0;
  bool above_drained_ = false;

  ResolveRequest* resolve_request_ = nullptr;
  std::vector<sockaddr_storage> addresses_;
  size_t next_address_ = 0;
  std::vector<std::pair<std::string, std::string>> attempt_errors_;  // address, error

  uv_tcp_t tcp_{};
  bool tcp_open_ = false;
  bool tcp_connected_ = false;
  uv_connect_t connect_req_{};
  uv_shutdown_t shutdown_req_{};

  std::shared_ptr<TlsContext> tls_context_;
  SSL* ssl_ = nullptr;   // owns rbio_ and wbio_
  BIO* rbio_ = nullptr;  // network -> OpenSSL
  BIO* wbio_ = nullptr;  // OpenSSL -> network
  bool starttls_ = false;
  bool tls_active_ = false;

  std::string out_;  // plaintext not yet handed to the socket or OpenSSL
  char read_buffer_[kReadBufferSize];
  char plain_buffer_[kReadBufferSize];
};

Connection::Connection(EventLoop* loop, ConnectionObserver* observer)
    : impl_(std::make_unique<Impl>(static_cast<uv_loop_t*>(loop->raw()), observer)) {}

Connection::~Connection() {
  if (impl_ && impl_->Abandon()) (void)impl_.release();  // frees itself when closed
}

void Connection::Connect(const ConnectOptions& options) { impl_->Connect(options); }

void Connection::Write(std::string_view data) { impl_->Write(data); }

void Connection::StartTls() { impl_->StartTls(); }

void Connection::Close() { impl_->Close(); }

void Connection::Abort(const Error& error) { impl_->Abort(error); }

void Connection::SetMidResponse(bool mid_response) { impl_->SetMidResponse(mid_response); }

bool Connection::tls_active() const { return impl_->tls_active(); }

size_t Connection::queued_bytes() const { return impl_->queued_bytes(); }

bool Connection::peer_is_loopback() const { return impl_->peer_is_loopback(); }

}  // namespace mailmirror::net
