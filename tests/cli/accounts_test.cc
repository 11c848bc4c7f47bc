// Choosing accounts: names, and --shard's stable split.
#include "cli/accounts.h"

#include <gtest/gtest.h>

#include <set>
#include <string>

namespace mailmirror::cli {
namespace {

TEST(ShardTest, ParsesIndexOverCount) {
  Result<Shard> shard = ParseShard("2/5");
  ASSERT_TRUE(shard.ok());
  EXPECT_EQ(shard->index, 2u);
  EXPECT_EQ(shard->count, 5u);
  EXPECT_TRUE(ParseShard("0/1").ok());
  for (const char* bad : {"", "/", "1", "1/", "/2", "2/2", "3/2", "0/0", "a/2", "-1/2", "1/2/3",
                          " 1/2", "0/10000000", "1.5/2"}) {
    Result<Shard> refused = ParseShard(bad);
    ASSERT_FALSE(refused.ok()) << bad;
    EXPECT_EQ(refused.error().kind, ErrorKind::kUsage) << bad;
  }
  EXPECT_NE(ParseShard("4/4").error().message.find("0 <= I < N"), std::string::npos);
}

TEST(ShardTest, EveryAccountInExactlyOneShardStablyAndEvenly) {
  constexpr uint32_t kShards = 8;
  uint32_t per_shard[kShards] = {};
  for (int i = 0; i < 8000; ++i) {
    const std::string name = "user" + std::to_string(i) + "@example.com";
    int found = 0;
    for (uint32_t s = 0; s < kShards; ++s) {
      if (InShard(name, {s, kShards})) {
        ++found;
        ++per_shard[s];
      }
    }
    ASSERT_EQ(found, 1) << name;
  }
  for (uint32_t count : per_shard) {
    EXPECT_GT(count, 850u);
    EXPECT_LT(count, 1150u);
  }
  // FNV-1a is fixed: the same names land in the same shards in every
  // release (a scheduler's split must not move when mailmirror upgrades).
  EXPECT_TRUE(InShard("", {0xcbf29ce484222325ull % 7, 7}));
  EXPECT_TRUE(InShard("a", {0xaf63dc4c8601ec8cull % 1000, 1000}));
}

}  // namespace
}  // namespace mailmirror::cli
