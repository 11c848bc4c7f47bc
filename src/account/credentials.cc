#include "account/credentials.h"

#include "oauth/oauth_client.h"
#include "util/log.h"

namespace mailmirror::account {

Result<Credentials> Credentials::Resolve(const AccountConfig& account) {
  Credentials credentials(account);
  const bool oauth_only =
      account.auth == AuthMechanism::kXoauth2 || account.auth == AuthMechanism::kOauthBearer;
  const bool password_only =
      account.auth == AuthMechanism::kPlain || account.auth == AuthMechanism::kLogin;
  if (!password_only && HasTokenSource(account)) {
    Result<std::string> token = credentials.FetchToken(/*force_refresh=*/false);
    if (!token.ok()) return token.error();
    credentials.token_ = std::move(token).value();
  }
  if (!oauth_only && HasPasswordSource(account)) {
    Result<std::string> password = ResolvePassword(account);
    if (!password.ok()) return password.error();
    credentials.password_ = std::move(password).value();
    credentials.has_password_ = true;
  }
  return credentials;
}

Credentials Credentials::WithPassword(const AccountConfig& account, std::string password) {
  Credentials credentials(account);
  credentials.password_ = std::move(password);
  credentials.has_password_ = true;
  return credentials;
}

Result<std::string> Credentials::FetchToken(bool force_refresh) const {
  if (!account_->oauth_token_cmd.empty()) {
    return RunSecretCommand(*account_, "oauth_token_cmd", account_->oauth_token_cmd);
  }
  return oauth::AccessToken(*account_, force_refresh);
}

imap::LoginCredentials Credentials::ForLogin() const {
  imap::LoginCredentials login;
  login.user = account_->user;
  login.password = password_;
  login.has_password = has_password_;
  login.token = token_;
  login.mechanism = account_->auth;
  login.host = account_->host;
  login.port = account_->port;
  return login;
}

Result<bool> Credentials::Renew(const std::string& refused) {
  if (token_.empty()) return false;
  if (token_ != refused) return true;  // another session renewed it already
  if (renewed_) return false;
  renewed_ = true;
  Log(LogLevel::kInfo,
      "account " + account_->name + ": the server refused the access token; getting a fresh one");
  Result<std::string> token = FetchToken(/*force_refresh=*/true);
  if (!token.ok()) return token.error();
  if (*token == token_) return false;  // the same token again would be refused again
  token_ = std::move(token).value();
  return true;
}

}  // namespace mailmirror::account
