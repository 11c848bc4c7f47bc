// The built-in OAuth 2.0 client: the device authorization grant (RFC 8628)
// that `mailmirror auth` runs once, and the refresh-token grant (RFC 6749
// §6) that gives `sync` fresh access tokens. The tokens are kept in
// <state_dir>/oauth-token.json, mode 0600.
#pragma once

#include <cstdint>
#include <functional>
#include <iosfwd>
#include <string>

#include "mailmirror/config.h"
#include "mailmirror/status.h"

namespace mailmirror::oauth {

struct TokenSet {
  std::string access_token;
  std::string refresh_token;
  int64_t expires_at = 0;  // Unix time; 0: unknown
};

// Where an account's tokens are stored.
std::string TokenFilePath(const AccountConfig& account);

// Reads the stored tokens; kConfig (naming `mailmirror auth`) when none.
Result<TokenSet> LoadTokens(const AccountConfig& account);

// Writes the tokens atomically with mode 0600 (the directory 0700).
Status SaveTokens(const AccountConfig& account, const TokenSet& tokens);

// How the client waits between polls (tests pass one that does not sleep).
using Sleeper = std::function<void(int64_t seconds)>;

// Runs the device authorization grant: asks for a device code, prints the
// URL and code the user must visit and enter (to `out`), polls the token
// endpoint as fast as the server allows (authorization_pending, slow_down),
// and stores the tokens. Errors: kAuth when the user declines or the code
// expires, kConfig for a refused client or scope, kUnavailable when the
// endpoints cannot be reached.
Result<TokenSet> RunDeviceFlow(const AccountConfig& account, std::ostream& out,
                               const Sleeper& sleep);

// An access token for the account: the stored one while it is valid for
// another minute (unless `force_refresh`), else one got with the refresh
// token, stored together with any new (rotated) refresh token.
Result<std::string> AccessToken(const AccountConfig& account, bool force_refresh);

}  // namespace mailmirror::oauth
