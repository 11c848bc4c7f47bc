// Which stored messages a migration copies: the date bounds (on
// INTERNALDATE), the size limit and the flags to skip of [migrations.NAME].
#pragma once

#include <cstdint>
#include <string>

#include "mailmirror/config.h"
#include "store/index.h"

namespace mailmirror::migrate {

class MessageFilter {
 public:
  // `max_bytes`: the size limit in force (the migration's, else the target
  // account's), 0 for none.
  MessageFilter(const MigrationConfig& migration, uint64_t max_bytes);

  // Why `message` is not copied, for the report (e.g. "larger than
  // max_size (35 MB)"); empty when it is.
  std::string SkipReason(const store::MessageRecord& message) const;

 private:
  const MigrationConfig& migration_;
  uint64_t max_bytes_;
};

// "2015-01-31" for a time at that date's UTC midnight.
std::string FormatDate(int64_t seconds);

}  // namespace mailmirror::migrate
