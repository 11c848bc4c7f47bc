// IMAP date-time values (RFC 3501 §9 date-time): "17-Jul-1996 02:44:25 -0700".
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace mailmirror::imap {

// Seconds since the epoch (UTC) for an INTERNALDATE. The day may be space-
// padded (" 7-Jul-2024 ..."); month names are case-insensitive. Returns
// nullopt for anything malformed.
std::optional<int64_t> ParseInternalDate(std::string_view text);

// The INTERNALDATE form of `seconds` in UTC ("+0000"), for APPEND.
std::string FormatInternalDate(int64_t seconds);

}  // namespace mailmirror::imap
