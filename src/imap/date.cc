#include "imap/date.h"

#include <array>
#include <cstdio>

#include "util/strings.h"

namespace mailmirror::imap {
namespace {

constexpr std::array<const char*, 12> kMonths = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                                 "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};

// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's
// days_from_civil), valid for every year we can meet.
int64_t DaysFromCivil(int64_t year, unsigned month, unsigned day) {
  year -= month <= 2 ? 1 : 0;
  const int64_t era = (year >= 0 ? year : year - 399) / 400;
  const auto year_of_era = static_cast<unsigned>(year - era * 400);
  const unsigned day_of_year = (153 * (month > 2 ? month - 3 : month + 9) + 2) / 5 + day - 1;
  const unsigned day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
  return era * 146097 + static_cast<int64_t>(day_of_era) - 719468;
}

bool ReadDigits(std::string_view text, size_t pos, size_t count, int& out) {
  if (pos + count > text.size()) return false;
  out = 0;
  for (size_t i = pos; i < pos + count; ++i) {
    if (text[i] < '0' || text[i] > '9') return false;
    out = out * 10 + (text[i] - '0');
  }
  return true;
}

}  // namespace

std::optional<int64_t> ParseInternalDate(std::string_view text) {
  // Normalize a space-padded day: " 7-Jul-..." and "7-Jul-..." both occur.
  if (!text.empty() && text[0] == ' ') text.remove_prefix(1);
  if (text.size() >= 2 && text[1] == '-') {
    static thread_local std::string padded;
    padded = "0";
    padded += text;
    text = padded;
  }
  // dd-Mon-yyyy hh:mm:ss +zzzz
  if (text.size() != 26 || text[2] != '-' || text[6] != '-' || text[11] != ' ' || text[14] != ':' ||
      text[17] != ':' || text[20] != ' ' || (text[21] != '+' && text[21] != '-')) {
    return std::nullopt;
  }
  int day = 0, year = 0, hour = 0, minute = 0, second = 0, zone = 0;
  if (!ReadDigits(text, 0, 2, day) || !ReadDigits(text, 7, 4, year) ||
      !ReadDigits(text, 12, 2, hour) || !ReadDigits(text, 15, 2, minute) ||
      !ReadDigits(text, 18, 2, second) || !ReadDigits(text, 22, 4, zone)) {
    return std::nullopt;
  }
  unsigned month = 0;
  for (unsigned i = 0; i < kMonths.size(); ++i) {
    if (EqualsIgnoreCase(text.substr(3, 3), kMonths[i])) month = i + 1;
  }
  if (month == 0 || day < 1 || day > 31 || hour > 23 || minute > 59 || second > 60) {
    return std::nullopt;
  }
  int64_t seconds = DaysFromCivil(year, month, static_cast<unsigned>(day)) * 86400 + hour * 3600 +
                    minute * 60 + second;
  int64_t offset = (zone / 100) * 3600 + (zone % 100) * 60;
  return text[21] == '+' ? seconds - offset : seconds + offset;
}

std::string FormatInternalDate(int64_t seconds) {
  int64_t days = seconds >= 0 ? seconds / 86400 : (seconds - 86399) / 86400;
  int64_t rest = seconds - days * 86400;
  // civil_from_days (H. Hinnant).
  days += 719468;
  const int64_t era = (days >= 0 ? days : days - 146096) / 146097;
  const auto day_of_era = static_cast<unsigned>(days - era * 146097);
  const unsigned year_of_era =
      (day_of_era - day_of_era / 1460 + day_of_era / 36524 - day_of_era / 146096) / 365;
  const unsigned day_of_year =
      day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
  const unsigned mp = (5 * day_of_year + 2) / 153;
  const unsigned day = day_of_year - (153 * mp + 2) / 5 + 1;
  const unsigned month = mp < 10 ? mp + 3 : mp - 9;
  const int64_t year = static_cast<int64_t>(year_of_era) + era * 400 + (month <= 2 ? 1 : 0);
  char buffer[64];
  (void)std::snprintf(buffer, sizeof buffer, "%02u-%s-%04lld %02lld:%02lld:%02lld +0000", day,
                      kMonths[month - 1], static_cast<long long>(year),
                      static_cast<long long>(rest / 3600), static_cast<long long>(rest / 60 % 60),
                      static_cast<long long>(rest % 60));
  return buffer;
}

}  // namespace mailmirror::imap
