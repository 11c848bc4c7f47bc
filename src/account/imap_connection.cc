#include "account/imap_connection.h"

#include <utility>

#include "util/log.h"

namespace mailmirror::account {
namespace {

imap::SessionOptions MakeSessionOptions(const AccountConfig& account, const std::string& label) {
  imap::SessionOptions options;
  // "[work#2] C: ..." at -vvv: which account and which of its sessions.
  options.trace_label = account.name + (label.empty() ? "" : "#" + label);
  options.server = account.host + ":" + std::to_string(account.port);
  switch (account.tls) {
    case TlsMode::kImplicit:
      options.security = imap::Security::kTls;
      break;
    case TlsMode::kStartTls:
      options.security = imap::Security::kStartTls;
      break;
    case TlsMode::kNone:
      options.security = imap::Security::kNone;
      break;
  }
  return options;
}

}  // namespace

ImapConnection::ImapConnection(net::EventLoop* loop, const AccountConfig& account,
                               const std::string& label)
    : loop_(loop),
      account_(account),
      connection_(loop, this),
      session_(this, MakeSessionOptions(account, label)) {}

ImapConnection::~ImapConnection() = default;

std::string ImapConnection::server() const {
  return account_.host + ":" + std::to_string(account_.port);
}

void ImapConnection::Open(Credentials* credentials, std::function<void(Status)> ready,
                          std::function<void()> closed) {
  credentials_ = credentials;
  ready_ = std::move(ready);
  closed_ = std::move(closed);
  // Login waits for the greeting, so it can be queued before connecting.
  Login();
  net::ConnectOptions options;
  options.host = account_.host;
  options.port = account_.port;
  options.implicit_tls = account_.tls == TlsMode::kImplicit;
  options.ca_file = account_.ca_file;
  options.pinned_sha256 = account_.tls_fingerprint;
  options.connect_timeout_ms = account_.connect_timeout_seconds * 1000;
  options.read_timeout_ms = account_.timeout_seconds * 1000;
  options.min_rate = account_.min_rate;
  connection_.Connect(options);
  // However the server dribbles its greeting and answers, logging in ends
  // in bounded time. The check holds no reference to a destroyed object.
  const uint64_t deadline_ms =
      (uint64_t{account_.connect_timeout_seconds} + account_.timeout_seconds) * 1000;
  loop_->PostIdle(
      [this, alive = std::weak_ptr<bool>(alive_)] {
        if (alive.expired() || !ready_ || closing_) return;
        connection_.Abort(MakeError(
            ErrorKind::kTemporary,
            "logging in to " + server() + " did not finish within " +
                std::to_string(account_.connect_timeout_seconds + account_.timeout_seconds) +
                " s"));
      },
      deadline_ms);
}

void ImapConnection::Login() {
  token_sent_ = credentials_->token();
  session_.Login(credentials_->ForLogin(), [this](Status status) { OnLogin(std::move(status)); });
}

void ImapConnection::OnLogin(Status status) {
  if (!status.ok() && status.error().kind == ErrorKind::kAuth && session_.token_refused()) {
    credentials_->Renew(loop_, token_sent_,
                        [this, alive = std::weak_ptr<bool>(alive_), status](Result<bool> renewed) {
                          if (alive.expired()) return;
                          if (!renewed.ok()) {
                            return Ready(renewed.error().Wrap(status.error().message +
                                                              "; getting a fresh token failed"));
                          }
                          if (*renewed && !closing_)
                            return Login();  // a refused login leaves the session open
                          AfterLogin(status);
                        });
    return;
  }
  AfterLogin(std::move(status));
}

void ImapConnection::AfterLogin(Status status) {
  if (status.ok() && WantsCompression()) {
    session_.Compress([this](const Result<bool>& compressed) {
      if (compressed.ok() && *compressed) {
        Log(LogLevel::kDebug, "session to " + server() + " is compressed (COMPRESS=DEFLATE)");
      }
      Ready(compressed.status());
    });
    return;
  }
  Ready(std::move(status));
}

bool ImapConnection::WantsCompression() const {
  if (!session_.capabilities().Has("COMPRESS=DEFLATE")) return false;
  switch (account_.compress) {
    case CompressMode::kYes:
      return true;
    case CompressMode::kNo:
      return false;
    case CompressMode::kAuto:
      // On loopback the bandwidth is free and deflate only burns CPU.
      return !connection_.peer_is_loopback();
  }
  return false;
}

void ImapConnection::Ready(Status status) {
  auto on_ready = std::move(ready_);
  ready_ = nullptr;
  if (on_ready) on_ready(std::move(status));
}

void ImapConnection::Finish() {
  if (closing_) return;
  if (session_.authenticated()) {
    session_.Logout([](const Status&) {});  // the session closes the transport
  } else {
    Close();
  }
}

void ImapConnection::OnConnected() {}  // the greeting arrives as data

void ImapConnection::OnData(std::string_view data) {
  session_.OnData(data);
  connection_.SetMidResponse(session_.mid_response());
}

void ImapConnection::OnTlsStarted() { session_.OnTlsStarted(); }

void ImapConnection::OnClosed(Status status) {
  closing_ = true;
  session_.OnClosed(status);
  // The connection may not be destroyed from its own callback: report the
  // close on a later loop turn, where the owner may delete us.
  if (closed_) {
    loop_->Post([closed = std::move(closed_)] { closed(); });
    closed_ = nullptr;
  }
}

void ImapConnection::OnDrained() { session_.OnTransportDrained(); }

void ImapConnection::Send(std::string_view bytes) { connection_.Write(bytes); }

size_t ImapConnection::queued_bytes() const { return connection_.queued_bytes(); }

void ImapConnection::StartTls() { connection_.StartTls(); }

void ImapConnection::Close() {
  closing_ = true;
  connection_.Close();
}

}  // namespace mailmirror::account
