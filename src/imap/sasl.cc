#include "imap/sasl.h"

#include <nlohmann/json.hpp>

namespace mailmirror::imap {

std::string PlainResponse(std::string_view user, std::string_view password) {
  std::string message;
  message += '\0';
  message += user;
  message += '\0';
  message += password;
  return message;
}

std::string Xoauth2Response(std::string_view user, std::string_view token) {
  std::string message = "user=";
  message += user;
  message +=
      "\x01"
      "auth=Bearer ";
  message += token;
  message += "\x01\x01";
  return message;
}

std::string OAuthBearerResponse(std::string_view user, std::string_view host, uint16_t port,
                                std::string_view token) {
  // RFC 5801 §4: saslname escapes ',' and '='.
  std::string escaped;
  for (char c : user) {
    if (c == ',') {
      escaped += "=2C";
    } else if (c == '=') {
      escaped += "=3D";
    } else {
      escaped += c;
    }
  }
  std::string message = "n,a=" + escaped + ",\x01host=";
  message += host;
  message += "\x01port=" + std::to_string(port) + "\x01" + "auth=Bearer ";
  message += token;
  message += "\x01\x01";
  return message;
}

namespace {

// The challenge as a JSON object, or a discarded value.
nlohmann::json ParseChallenge(std::string_view challenge) {
  nlohmann::json json = nlohmann::json::parse(challenge, nullptr, /*allow_exceptions=*/false);
  if (!json.is_object()) return nlohmann::json(nlohmann::json::value_t::discarded);
  return json;
}

std::string StringField(const nlohmann::json& json, const char* key) {
  auto it = json.find(key);
  if (it == json.end()) return "";
  if (it->is_string()) return it->get<std::string>();
  if (it->is_number_integer()) return std::to_string(it->get<int64_t>());
  return "";
}

}  // namespace

bool OAuthErrorIsInvalidToken(std::string_view challenge) {
  nlohmann::json json = ParseChallenge(challenge);
  if (json.is_discarded()) return false;
  const std::string status = StringField(json, "status");
  return status == "invalid_token" || status == "401";
}

std::string DescribeOAuthError(std::string_view challenge) {
  nlohmann::json json = ParseChallenge(challenge);
  if (json.is_discarded()) return "";
  const std::string status = StringField(json, "status");
  const std::string scope = StringField(json, "scope");
  std::string what;
  if (status == "invalid_token" || status == "401") {
    what = "the access token is invalid or expired";
  } else if (status == "insufficient_scope" || status == "403") {
    what = "the access token lacks the scope the server needs" +
           (scope.empty() ? std::string() : " (" + scope + ")");
  } else if (status == "invalid_request" || status == "400") {
    what =
        "the server found the OAuth request malformed (check user: it must be the account "
        "the token was issued for)";
  } else if (!status.empty()) {
    what = "the server refused the access token";
  } else {
    return "";
  }
  std::string details = status.empty() ? "" : "status " + status;
  if (!scope.empty()) details += (details.empty() ? "" : ", ") + std::string("scope ") + scope;
  return what + " (" + details + ")";
}

}  // namespace mailmirror::imap
