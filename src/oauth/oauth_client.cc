#include "oauth/oauth_client.h"

#include <ctime>
#include <fstream>
#include <nlohmann/json.hpp>
#include <ostream>
#include <sstream>
#include <utility>
#include <vector>

#include "oauth/http_client.h"
#include "util/fs.h"

namespace mailmirror::oauth {
namespace {

using Json = nlohmann::json;
using Fields = std::vector<std::pair<std::string, std::string>>;

int64_t Now() { return static_cast<int64_t>(std::time(nullptr)); }

std::string StringField(const Json& json, const char* key) {
  auto it = json.find(key);
  return it != json.end() && it->is_string() ? it->get<std::string>() : std::string();
}

int64_t IntegerField(const Json& json, const char* key, int64_t fallback) {
  auto it = json.find(key);
  if (it == json.end()) return fallback;
  if (it->is_number_integer()) return it->get<int64_t>();
  if (it->is_string()) {  // some platforms send numbers as strings
    const std::string text = it->get<std::string>();
    char* end = nullptr;
    long long value = std::strtoll(text.c_str(), &end, 10);  // NOLINT(google-runtime-int)
    if (end != text.c_str() && *end == '\0') return value;
  }
  return fallback;
}

HttpOptions Http(const AccountConfig& account) {
  HttpOptions options;
  options.ca_file = account.ca_file;
  return options;
}

Fields ClientFields(const AccountConfig& account) {
  Fields fields{{"client_id", account.oauth.client_id}};
  if (!account.oauth_client_secret.empty()) {
    fields.emplace_back("client_secret", account.oauth_client_secret);
  }
  return fields;
}

// The endpoint's JSON answer, or an error naming the endpoint.
Result<Json> PostJson(const std::string& url, const Fields& fields, const HttpOptions& options) {
  Result<HttpResponse> response = PostForm(url, fields, options);
  if (!response.ok()) return response.error();
  Json json = Json::parse(response->body, nullptr, /*allow_exceptions=*/false);
  if (!json.is_object()) {
    return MakeError(
        ErrorKind::kProtocol,
        url + " answered HTTP " + std::to_string(response->status) + " without a JSON object");
  }
  return json;
}

// "invalid_grant: AADSTS70000 ..." for an OAuth error response.
std::string DescribeError(const Json& json) {
  std::string text = StringField(json, "error");
  std::string description = StringField(json, "error_description");
  if (!description.empty()) text += ": " + description.substr(0, description.find('\n'));
  return text;
}

Result<TokenSet> TokensFrom(const Json& json, const std::string& previous_refresh) {
  TokenSet tokens;
  tokens.access_token = StringField(json, "access_token");
  if (tokens.access_token.empty()) {
    return MakeError(ErrorKind::kProtocol, "the token endpoint sent no access_token");
  }
  // Platforms that rotate refresh tokens send a new one; the others none.
  tokens.refresh_token = StringField(json, "refresh_token");
  if (tokens.refresh_token.empty()) tokens.refresh_token = previous_refresh;
  int64_t lifetime = IntegerField(json, "expires_in", 0);
  tokens.expires_at = lifetime > 0 ? Now() + lifetime : 0;
  return tokens;
}

Status CheckClient(const AccountConfig& account, bool device) {
  if (account.oauth.client_id.empty()) {
    return MakeError(ErrorKind::kConfig,
                     "account " + account.name +
                         ": set oauth_client_id (the id of an OAuth 2.0 application registered "
                         "with the mail provider) to use the built-in OAuth client");
  }
  if (account.oauth.token_url.empty() ||
      (device && account.oauth.device_authorization_url.empty())) {
    return MakeError(ErrorKind::kConfig, "account " + account.name + ": set oauth_token_url" +
                                             (device ? " and oauth_device_url" : "") +
                                             " (or a provider with OAuth 2.0 endpoints)");
  }
  if (account.state_dir.empty()) {
    return MakeError(ErrorKind::kConfig, "account " + account.name +
                                             ": set maildir or state_dir, where the OAuth "
                                             "tokens are kept");
  }
  return Status::Ok();
}

}  // namespace

std::string TokenFilePath(const AccountConfig& account) {
  return account.state_dir + "/oauth-token.json";
}

Result<TokenSet> LoadTokens(const AccountConfig& account) {
  const std::string path = TokenFilePath(account);
  std::ifstream in(path);
  if (!in) {
    return MakeError(ErrorKind::kConfig, "account " + account.name + ": no OAuth 2.0 tokens in " +
                                             path + "; run `mailmirror auth " + account.name +
                                             "` once to sign in");
  }
  std::stringstream text;
  text << in.rdbuf();
  Json json = Json::parse(text.str(), nullptr, /*allow_exceptions=*/false);
  TokenSet tokens;
  if (json.is_object()) {
    tokens.access_token = StringField(json, "access_token");
    tokens.refresh_token = StringField(json, "refresh_token");
    tokens.expires_at = IntegerField(json, "expires_at", 0);
  }
  if (tokens.refresh_token.empty() && tokens.access_token.empty()) {
    return MakeError(ErrorKind::kConfig, "account " + account.name + ": " + path +
                                             " holds no tokens; run `mailmirror auth " +
                                             account.name + "` to sign in again");
  }
  return tokens;
}

Status SaveTokens(const AccountConfig& account, const TokenSet& tokens) {
  if (Status made = MakeDirectories(account.state_dir, 0700); !made.ok()) return made;
  Json json = {{"access_token", tokens.access_token},
               {"refresh_token", tokens.refresh_token},
               {"expires_at", tokens.expires_at}};
  // Durable: a rotated refresh token lost in a crash would sign the user out.
  return WriteFileAtomically(TokenFilePath(account), json.dump(2) + "\n", 0600,
                             /*durable=*/true);
}

Result<TokenSet> RunDeviceFlow(const AccountConfig& account, std::ostream& out,
                               const Sleeper& sleep) {
  if (Status client = CheckClient(account, /*device=*/true); !client.ok()) return client.error();
  const HttpOptions http = Http(account);
  Fields ask = ClientFields(account);
  ask.emplace_back("scope", account.oauth.scope);
  Result<Json> device = PostJson(account.oauth.device_authorization_url, ask, http);
  if (!device.ok()) return device.error();
  const std::string device_code = StringField(*device, "device_code");
  const std::string user_code = StringField(*device, "user_code");
  // RFC 8628 says verification_uri; Google sends verification_url.
  std::string uri = StringField(*device, "verification_uri");
  if (uri.empty()) uri = StringField(*device, "verification_url");
  if (device_code.empty() || user_code.empty() || uri.empty()) {
    std::string why = DescribeError(*device);
    return MakeError(ErrorKind::kConfig, "account " + account.name + ": " +
                                             account.oauth.device_authorization_url +
                                             " refused the device authorization request" +
                                             (why.empty() ? "" : ": " + why) +
                                             " (check oauth_client_id and oauth_scope)");
  }
  int64_t interval = std::max<int64_t>(1, IntegerField(*device, "interval", 5));
  const int64_t deadline = Now() + IntegerField(*device, "expires_in", 900);
  out << "To sign in account " << account.name << ", open\n  " << uri << "\nand enter the code\n  "
      << user_code << "\n";
  const std::string complete = StringField(*device, "verification_uri_complete");
  if (!complete.empty()) out << "(or open " << complete << ")\n";
  out << "Waiting for the sign-in to finish..." << std::endl;

  Fields poll = ClientFields(account);
  poll.emplace_back("grant_type", "urn:ietf:params:oauth:grant-type:device_code");
  poll.emplace_back("device_code", device_code);
  for (;;) {
    sleep(interval);
    Result<Json> answer = PostJson(account.oauth.token_url, poll, http);
    if (!answer.ok()) return answer.error();
    const std::string error = StringField(*answer, "error");
    if (error.empty()) {
      Result<TokenSet> tokens = TokensFrom(*answer, "");
      if (!tokens.ok()) return tokens.error();
      if (Status saved = SaveTokens(account, *tokens); !saved.ok()) return saved.error();
      return tokens;
    }
    if (error == "authorization_pending" && Now() < deadline) continue;
    if (error == "slow_down" && Now() < deadline) {
      interval += 5;  // RFC 8628 §3.5
      continue;
    }
    if (error == "access_denied") {
      return MakeError(ErrorKind::kAuth, "account " + account.name + ": the sign-in was declined");
    }
    if (error == "expired_token" || error == "authorization_pending" || error == "slow_down") {
      return MakeError(ErrorKind::kAuth, "account " + account.name +
                                             ": the code expired before the sign-in finished; "
                                             "run `mailmirror auth " +
                                             account.name + "` again");
    }
    return MakeError(ErrorKind::kConfig, "account " + account.name + ": the token endpoint " +
                                             account.oauth.token_url +
                                             " refused: " + DescribeError(*answer));
  }
}

Result<std::string> AccessToken(const AccountConfig& account, bool force_refresh) {
  if (Status client = CheckClient(account, /*device=*/false); !client.ok()) return client.error();
  Result<TokenSet> stored = LoadTokens(account);
  if (!stored.ok()) return stored.error();
  if (!force_refresh && !stored->access_token.empty() && stored->expires_at > Now() + 60) {
    return stored->access_token;
  }
  if (stored->refresh_token.empty()) {
    return MakeError(ErrorKind::kAuth, "account " + account.name +
                                           ": the access token expired and there is no refresh "
                                           "token; run `mailmirror auth " +
                                           account.name + "`");
  }
  Fields refresh = ClientFields(account);
  refresh.emplace_back("grant_type", "refresh_token");
  refresh.emplace_back("refresh_token", stored->refresh_token);
  if (!account.oauth.scope.empty()) refresh.emplace_back("scope", account.oauth.scope);
  Result<Json> answer = PostJson(account.oauth.token_url, refresh, Http(account));
  if (!answer.ok()) return answer.error();
  const std::string error = StringField(*answer, "error");
  if (!error.empty()) {
    // invalid_grant: revoked, expired or already rotated away.
    return MakeError(ErrorKind::kAuth, "account " + account.name + ": " + account.oauth.token_url +
                                           " refused the refresh token (" + DescribeError(*answer) +
                                           "); run `mailmirror auth " + account.name +
                                           "` to sign in again");
  }
  Result<TokenSet> tokens = TokensFrom(*answer, stored->refresh_token);
  if (!tokens.ok()) return tokens.error();
  if (Status saved = SaveTokens(account, *tokens); !saved.ok()) return saved.error();
  return tokens->access_token;
}

}  // namespace mailmirror::oauth
