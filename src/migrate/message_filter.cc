#include "migrate/message_filter.h"

#include <cstdio>
#include <ctime>

#include "store/maildir.h"
#include "util/strings.h"

namespace mailmirror::migrate {

MessageFilter::MessageFilter(const MigrationConfig& migration, uint64_t max_bytes)
    : migration_(migration), max_bytes_(max_bytes) {}

std::string MessageFilter::SkipReason(const store::MessageRecord& message) const {
  if (migration_.since != 0 && message.internaldate < migration_.since) {
    return "older than since (" + FormatDate(migration_.since) + ")";
  }
  if (migration_.before != 0 && message.internaldate >= migration_.before) {
    return "not before " + FormatDate(migration_.before);
  }
  // RFC822.SIZE is what the target counts; the file (LF) is smaller.
  const uint64_t size = message.remote_size != 0 ? message.remote_size : message.size;
  if (max_bytes_ != 0 && size > max_bytes_) {
    char limit[32];
    (void)std::snprintf(limit, sizeof limit, "%g", static_cast<double>(max_bytes_) / 1e6);
    return std::string("larger than max_size (") + limit + " MB)";
  }
  if (!migration_.skip_flags.empty()) {
    std::vector<std::string> flags = store::ImapFlagsFromBits(message.flags);
    flags.insert(flags.end(), message.keywords.begin(), message.keywords.end());
    for (const std::string& skip : migration_.skip_flags) {
      for (const std::string& flag : flags) {
        if (EqualsIgnoreCase(flag, skip)) return "flagged " + skip;
      }
    }
  }
  return "";
}

std::string FormatDate(int64_t seconds) {
  const auto when = static_cast<time_t>(seconds);
  struct tm utc {};
  (void)gmtime_r(&when, &utc);
  char text[16];
  (void)std::strftime(text, sizeof text, "%Y-%m-%d", &utc);
  return text;
}

}  // namespace mailmirror::migrate
