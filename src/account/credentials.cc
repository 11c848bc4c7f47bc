#include "account/credentials.h"

#include <memory>
#include <optional>
#include <utility>

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

void Credentials::ResolveInPool(net::EventLoop* loop, const AccountConfig& account,
                                std::function<void(Result<Credentials>)> done) {
  auto result = std::make_shared<std::optional<Result<Credentials>>>();
  loop->RunInPool([result, &account] { result->emplace(Resolve(account)); },
                  [result, done = std::move(done)] { done(std::move(**result)); });
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

void Credentials::Renew(net::EventLoop* loop, const std::string& refused,
                        std::function<void(Result<bool>)> done) {
  if (token_.empty()) return done(false);
  if (!renew_waiters_.empty()) {  // under way: its outcome is this one's
    renew_waiters_.push_back(std::move(done));
    return;
  }
  if (token_ != refused) return done(true);  // another session renewed it already
  if (renewed_) return done(false);
  renewed_ = true;
  renew_waiters_.push_back(std::move(done));
  Log(LogLevel::kInfo,
      "account " + account_->name + ": the server refused the access token; getting a fresh one");
  auto fetched = std::make_shared<std::optional<Result<std::string>>>();
  loop->RunInPool([this, fetched] { fetched->emplace(FetchToken(/*force_refresh=*/true)); },
                  [this, fetched] {
                    Result<bool> outcome = false;
                    if (!(*fetched)->ok()) {
                      outcome = (*fetched)->error();
                    } else if (***fetched != token_) {
                      // The same token again would be refused again.
                      token_ = std::move(**fetched).value();
                      outcome = true;
                    }
                    std::vector<std::function<void(Result<bool>)>> waiters;
                    waiters.swap(renew_waiters_);
                    for (auto& waiter : waiters) waiter(outcome);
                  });
}

}  // namespace mailmirror::account
