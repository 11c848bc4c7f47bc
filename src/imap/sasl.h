// SASL messages for AUTHENTICATE: the client's initial responses for
// PLAIN (RFC 4616), XOAUTH2 (Google's and Microsoft's) and OAUTHBEARER
// (RFC 7628), unencoded, and what a server's OAuth error challenge says.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace mailmirror::imap {

// authzid NUL authcid NUL password, with an empty authzid.
std::string PlainResponse(std::string_view user, std::string_view password);

// "user=" USER ^A "auth=Bearer " TOKEN ^A ^A
std::string Xoauth2Response(std::string_view user, std::string_view token);

// The GS2 header "n,a=USER," (',' and '=' in USER escaped as =2C and =3D),
// then ^A host=HOST ^A port=PORT ^A auth=Bearer TOKEN ^A ^A.
std::string OAuthBearerResponse(std::string_view user, std::string_view host, uint16_t port,
                                std::string_view token);

// What the client answers to an OAuth error challenge before the server
// sends its tagged NO: an empty response for XOAUTH2, a single ^A for
// OAUTHBEARER (RFC 7628 §3.2.3).
inline constexpr std::string_view kXoauth2ErrorAck;
inline constexpr std::string_view kOAuthBearerErrorAck = "\x01";

// The JSON error of a server's OAuth challenge (RFC 7628 §3.2.2; XOAUTH2
// sends the same with HTTP-like status codes), as a clause for the user,
// e.g. "the token is invalid or expired (status 401, scope
// https://mail.google.com/)". Empty when `challenge` (already decoded from
// base64) is not such JSON.
std::string DescribeOAuthError(std::string_view challenge);

// Whether the challenge says the token was refused as such (invalid or
// expired), so that a fresh token may help, rather than a missing scope or
// a malformed request.
bool OAuthErrorIsInvalidToken(std::string_view challenge);

}  // namespace mailmirror::imap
