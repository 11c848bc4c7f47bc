#include "imap/throttle.h"

#include <array>
#include <cctype>

#include "util/strings.h"

namespace mailmirror::imap {
namespace {

// Case-insensitive find of an ASCII needle; npos when absent.
size_t FindIgnoreCase(std::string_view haystack, std::string_view needle) {
  if (needle.size() > haystack.size()) return std::string_view::npos;
  for (size_t i = 0; i + needle.size() <= haystack.size(); ++i) {
    if (EqualsIgnoreCase(haystack.substr(i, needle.size()), needle)) return i;
  }
  return std::string_view::npos;
}

// "Suggested Backoff Time: 299961 milliseconds" and the like: a number after
// "backoff", in milliseconds unless seconds are named.
uint64_t SuggestedDelayMs(std::string_view text) {
  size_t at = FindIgnoreCase(text, "backoff");
  if (at == std::string_view::npos) return 0;
  std::string_view rest = text.substr(at);
  size_t digit = 0;
  while (digit < rest.size() && std::isdigit(static_cast<unsigned char>(rest[digit])) == 0) {
    if (rest[digit] == '.' && digit > 0) return 0;  // the sentence ended without a number
    ++digit;
  }
  uint64_t value = 0;
  size_t end = digit;
  constexpr uint64_t kDay = 24ULL * 3600 * 1000;
  while (end < rest.size() && std::isdigit(static_cast<unsigned char>(rest[end])) != 0) {
    value = value * 10 + static_cast<uint64_t>(rest[end] - '0');
    if (value > kDay) return kDay;  // nonsense; a day is plenty
    ++end;
  }
  if (end == digit) return 0;
  while (end < rest.size() && rest[end] == ' ') ++end;
  std::string_view unit = rest.substr(end);
  bool seconds = (unit.size() >= 3 && EqualsIgnoreCase(unit.substr(0, 3), "sec")) ||
                 (unit.size() == 1 && (unit[0] == 's' || unit[0] == 'S')) ||
                 (unit.size() > 1 && (unit[0] == 's' || unit[0] == 'S') &&
                  std::isalpha(static_cast<unsigned char>(unit[1])) == 0);
  return seconds ? value * 1000 : value;
}

}  // namespace

std::optional<uint64_t> ThrottleDelayMs(std::string_view code, std::string_view text) {
  constexpr std::array<std::string_view, 4> kCodes = {"UNAVAILABLE", "LIMIT", "INUSE", "THROTTLED"};
  bool throttled = false;
  for (std::string_view name : kCodes) throttled = throttled || EqualsIgnoreCase(code, name);
  constexpr std::array<std::string_view, 4> kPhrases = {
      "throttled", "bandwidth limit", "too many simultaneous connections", "try again later"};
  for (std::string_view phrase : kPhrases) {
    throttled = throttled || FindIgnoreCase(text, phrase) != std::string_view::npos;
  }
  if (!throttled) return std::nullopt;
  return SuggestedDelayMs(text);
}

bool IsOverQuota(std::string_view code) { return EqualsIgnoreCase(code, "OVERQUOTA"); }

}  // namespace mailmirror::imap
