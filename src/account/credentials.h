// What an account logs in with, resolved once per run and shared by its
// sessions: the password (password or password_cmd) and the OAuth 2.0
// access token (oauth_token_cmd, or the built-in client's stored tokens),
// each only when `auth` may use it.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "imap/session.h"
#include "mailmirror/config.h"
#include "mailmirror/status.h"
#include "net/event_loop.h"

namespace mailmirror::account {

// Resolve blocks (commands, HTTPS): call it before the loop runs, or use
// ResolveInPool. Otherwise loop thread only; Renew never blocks the loop.
class Credentials {
 public:
  // Runs the commands or refreshes the stored token as the account needs.
  static Result<Credentials> Resolve(const AccountConfig& account);
  // The same on a thread of the loop's pool (a password_cmd that sleeps or
  // prompts holds up no other account's sessions); `done` runs on the loop.
  static void ResolveInPool(net::EventLoop* loop, const AccountConfig& account,
                            std::function<void(Result<Credentials>)> done);

  // Just a password (tests and tools).
  static Credentials WithPassword(const AccountConfig& account, std::string password);

  // Everything Session::Login needs.
  imap::LoginCredentials ForLogin() const;
  bool has_token() const { return !token_.empty(); }
  const std::string& token() const { return token_; }

  // The server refused `refused` (invalid or expired): a fresh token, got
  // at most once per run (oauth_token_cmd run again, or a refresh) on a
  // pool thread of `loop`. `done` (on the loop) gets true when token() is
  // now another one worth a second login. Sessions that ask while a renewal
  // runs wait for it.
  void Renew(net::EventLoop* loop, const std::string& refused,
             std::function<void(Result<bool>)> done);

 private:
  explicit Credentials(const AccountConfig& account) : account_(&account) {}
  Result<std::string> FetchToken(bool force_refresh) const;

  const AccountConfig* account_;
  std::string password_;
  bool has_password_ = false;
  std::string token_;
  bool renewed_ = false;
  // Sessions waiting for the renewal under way (the first started it).
  std::vector<std::function<void(Result<bool>)>> renew_waiters_;
};

}  // namespace mailmirror::account
