#include "migrate/message_filter.h"

#include <gtest/gtest.h>

#include "store/maildir.h"

namespace mailmirror::migrate {
namespace {

constexpr int64_t k2015 = 1420070400;  // 2015-01-01T00:00:00Z
constexpr int64_t k2020 = 1577836800;  // 2020-01-01T00:00:00Z

store::MessageRecord Message(int64_t internaldate, uint64_t size, uint32_t flags = 0,
                             std::vector<std::string> keywords = {}) {
  store::MessageRecord message;
  message.uid = 1;
  message.internaldate = internaldate;
  message.size = size - 10;  // the file (LF) is smaller than RFC822.SIZE
  message.remote_size = size;
  message.flags = flags;
  message.keywords = std::move(keywords);
  return message;
}

TEST(MessageFilterTest, NoFiltersSkipNothing) {
  MigrationConfig migration;
  const MessageFilter filter(migration, 0);
  EXPECT_EQ(filter.SkipReason(Message(0, 1 << 30, store::kFlagDeleted)), "");
}

TEST(MessageFilterTest, DatesBoundTheInternalDate) {
  MigrationConfig migration;
  migration.since = k2015;
  migration.before = k2020;
  const MessageFilter filter(migration, 0);
  EXPECT_EQ(filter.SkipReason(Message(k2015 - 1, 100)), "older than since (2015-01-01)");
  EXPECT_EQ(filter.SkipReason(Message(k2015, 100)), "");  // since is inclusive
  EXPECT_EQ(filter.SkipReason(Message(k2020 - 1, 100)), "");
  EXPECT_EQ(filter.SkipReason(Message(k2020, 100)), "not before 2020-01-01");
}

TEST(MessageFilterTest, SizeLimitCountsTheServersSize) {
  MigrationConfig migration;
  const MessageFilter filter(migration, 35'000'000);
  EXPECT_EQ(filter.SkipReason(Message(k2015, 35'000'000)), "");
  EXPECT_EQ(filter.SkipReason(Message(k2015, 35'000'001)), "larger than max_size (35 MB)");
}

TEST(MessageFilterTest, SkipFlagsMatchSystemFlagsAndKeywordsInAnyCase) {
  MigrationConfig migration;
  migration.skip_flags = {"\\Deleted", "$Junk"};
  const MessageFilter filter(migration, 0);
  EXPECT_EQ(filter.SkipReason(Message(k2015, 10, store::kFlagDeleted | store::kFlagSeen)),
            "flagged \\Deleted");
  EXPECT_EQ(filter.SkipReason(Message(k2015, 10, 0, {"$junk"})), "flagged $Junk");
  EXPECT_EQ(filter.SkipReason(Message(k2015, 10, store::kFlagSeen, {"$NotJunk"})), "");
}

}  // namespace
}  // namespace mailmirror::migrate
