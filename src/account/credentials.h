// What an account logs in with, resolved once per run and shared by its
// sessions: the password (password or password_cmd) and the OAuth 2.0
// access token (oauth_token_cmd, or the built-in client's stored tokens),
// each only when `auth` may use it.
#pragma once

#include <string>

#include "imap/session.h"
#include "mailmirror/config.h"
#include "mailmirror/status.h"

namespace mailmirror::account {

// Loop thread only (Renew may block on a command or an HTTPS request, as
// password_cmd does).
class Credentials {
 public:
  // Runs the commands or refreshes the stored token as the account needs.
  static Result<Credentials> Resolve(const AccountConfig& account);

  // Just a password (tests and tools).
  static Credentials WithPassword(const AccountConfig& account, std::string password);

  // Everything Session::Login needs.
  imap::LoginCredentials ForLogin() const;
  bool has_token() const { return !token_.empty(); }
  const std::string& token() const { return token_; }

  // The server refused `refused` (invalid or expired): a fresh token, got
  // at most once per run (oauth_token_cmd run again, or a refresh). True
  // when token() is now another one worth a second login.
  Result<bool> Renew(const std::string& refused);

 private:
  explicit Credentials(const AccountConfig& account) : account_(&account) {}
  Result<std::string> FetchToken(bool force_refresh) const;

  const AccountConfig* account_;
  std::string password_;
  bool has_password_ = false;
  std::string token_;
  bool renewed_ = false;
};

}  // namespace mailmirror::account
