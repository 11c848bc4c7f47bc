// Presets for the mail services people back up most: `provider = "NAME"`
// in an account fills in the server, its TLS mode and the way to log in, and
// for OAuth 2.0 the identity platform's endpoints and scope. Any key the
// account sets itself wins over the preset. See mailmirror.conf(5).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace mailmirror {

// How the session logs in (`auth`).
enum class AuthMechanism {
  kAuto,         // the strongest the server offers that the config can satisfy
  kPlain,        // SASL PLAIN (RFC 4616) with the password
  kLogin,        // the IMAP LOGIN command with the password
  kXoauth2,      // SASL XOAUTH2 (Google, Microsoft) with an OAuth 2.0 access token
  kOauthBearer,  // SASL OAUTHBEARER (RFC 7628) with an OAuth 2.0 access token
};

const char* AuthMechanismName(AuthMechanism mechanism);

// Where `mailmirror auth` gets tokens: the OAuth 2.0 device authorization
// grant (RFC 8628) and the token endpoint that also refreshes them.
struct OAuthEndpoints {
  std::string device_authorization_url;
  std::string token_url;
  std::string scope;      // space-separated
  std::string client_id;  // empty: the user registers an application
};

struct Provider {
  const char* name;
  const char* description;
  const char* host;
  uint16_t port;
  AuthMechanism auth;
  OAuthEndpoints oauth;    // empty URLs: the service has no OAuth preset
  uint32_t max_upload_mb;  // the largest message it accepts by APPEND; 0: no known limit
  const char* notes;       // one line: what the user must know
};

// Every preset, in the order `mailmirror providers` lists them.
const std::vector<Provider>& Providers();

// The preset called `name`, or nullptr.
const Provider* FindProvider(const std::string& name);

}  // namespace mailmirror
