// An IMAP session on a network connection, opened for one configured
// account: the glue between net::Connection and imap::Session.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "account/credentials.h"
#include "imap/session.h"
#include "mailmirror/config.h"
#include "mailmirror/status.h"
#include "net/connection.h"
#include "net/event_loop.h"

namespace mailmirror::account {

// Lifetime: owned by the caller; destroy it only after the `closed`
// callback given to Open has run (or before Open). Loop thread only.
class ImapConnection : private net::ConnectionObserver, private imap::Transport {
 public:
  // `label` tells this session apart from the account's others in the
  // protocol trace ("" for none).
  ImapConnection(net::EventLoop* loop, const AccountConfig& account, const std::string& label = "");
  ~ImapConnection() override;
  ImapConnection(const ImapConnection&) = delete;
  ImapConnection& operator=(const ImapConnection&) = delete;

  // Connects, upgrades to TLS as configured and logs in; an access token
  // the server refuses as invalid or expired is renewed once (shared by the
  // account's sessions through `credentials`, which must outlive this) and
  // tried again. `ready` runs once when the session is authenticated or
  // failed; `closed` runs once, last, when the connection is gone, from its
  // own loop turn (so the owner may destroy this object there).
  void Open(Credentials* credentials, std::function<void(Status)> ready,
            std::function<void()> closed);

  imap::Session& session() { return session_; }

  // Logs out politely if the session is usable, then closes.
  void Finish();

  std::string server() const;

 private:
  // COMPRESS=DEFLATE after login: offered, and allowed by `compress`.
  bool WantsCompression() const;
  void Login();
  void OnLogin(Status status);
  void AfterLogin(Status status);  // compression, then Ready
  void Ready(Status status);

  // net::ConnectionObserver
  void OnConnected() override;
  void OnData(std::string_view data) override;
  void OnTlsStarted() override;
  void OnClosed(Status status) override;
  void OnDrained() override;
  // imap::Transport
  void Send(std::string_view bytes) override;
  size_t queued_bytes() const override;
  void StartTls() override;
  void Close() override;

  net::EventLoop* loop_;
  const AccountConfig& account_;
  net::Connection connection_;
  imap::Session session_;
  Credentials* credentials_ = nullptr;
  std::string token_sent_;  // the access token of the login in progress
  std::function<void(Status)> ready_;
  std::function<void()> closed_;
  bool closing_ = false;
  // Expires with this object: the login deadline's check looks at it.
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace mailmirror::account
