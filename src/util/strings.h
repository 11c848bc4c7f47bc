// Small ASCII string helpers. IMAP keywords, flags and capability names are
// case-insensitive ASCII; these never look at locale.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace mailmirror {

bool EqualsIgnoreCase(std::string_view a, std::string_view b);
std::string ToUpperAscii(std::string_view text);

// `text` made safe to print in one line of a log or error message: bytes
// outside printable ASCII become \xNN, CR and LF become \r and \n, and the
// result is cut after `max_length` input bytes with "...".
std::string Printable(std::string_view text, size_t max_length = 200);

// `text` with every control character escaped (C0 and DEL as \n, \r, \t or
// \xNN, the UTF-8 encoded C1 controls U+0080..U+009F as \u0080..) and other
// UTF-8 kept: what goes into a log line or a line of output, so that a
// file name or a server string can neither split the line nor drive the
// terminal.
std::string EscapeControls(std::string_view text);

// Terminal columns taken by UTF-8 text, counting one per code point: good
// enough for aligning European folder names in tables.
size_t DisplayWidth(std::string_view text);

// Milliseconds as seconds for messages, exactly and without trailing
// zeros: "0.05", "1.5", "120", "299.961".
std::string FormatSeconds(uint64_t ms);

// "1 message", "3 messages": `n` and the noun that fits it.
std::string CountOf(uint64_t n, std::string_view one, std::string_view many);

// `text` without leading and trailing blanks (spaces, tabs, CR, LF).
std::string_view Trim(std::string_view text);

// `when` (Unix time) in the local time zone, formatted by strftime's
// `format`, e.g. "%Y-%m-%d %H:%M".
std::string FormatLocalTime(int64_t when, const char* format)
    __attribute__((format(strftime, 2, 0)));

}  // namespace mailmirror
