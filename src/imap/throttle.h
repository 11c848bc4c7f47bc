// Recognising a server that asks to be left alone for a while.
//
// Servers say it in several ways: RFC 5530 response codes ([UNAVAILABLE],
// [LIMIT], [INUSE]), Gmail's [THROTTLED] and "Account exceeded command or
// bandwidth limits", Office 365's "Request is throttled. Suggested Backoff
// Time: 299961 milliseconds" (in a tagged NO or a BYE). A run that sees one
// waits and goes on with fewer sessions instead of failing.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

namespace mailmirror::imap {

// Whether a response with this code (name only, any case; may be empty) and
// human-readable text signals throttling or overload, and if so how long the
// server asked to wait in milliseconds (0: it did not say).
std::optional<uint64_t> ThrottleDelayMs(std::string_view code, std::string_view text);

// [OVERQUOTA] (RFC 5530): the mailbox is full; waiting within the run does
// not help.
bool IsOverQuota(std::string_view code);

}  // namespace mailmirror::imap
