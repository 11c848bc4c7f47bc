#include "imap/sequence_set.h"

#include <gtest/gtest.h>

namespace mailmirror::imap {
namespace {

TEST(SequenceSetTest, CompressesRuns) {
  EXPECT_EQ(FormatSequenceSet({}), "");
  EXPECT_EQ(FormatSequenceSet({5}), "5");
  EXPECT_EQ(FormatSequenceSet({1, 2, 3, 7, 9, 10, 11, 12}), "1:3,7,9:12");
  EXPECT_EQ(FormatSequenceSet({4294967294u, 4294967295u}), "4294967294:4294967295");
}

TEST(SequenceSetTest, OpenSetSkipsKnownUids) {
  EXPECT_EQ(FormatSetExcluding(1, 0, {}), "1:*");
  EXPECT_EQ(FormatSetExcluding(0, 0, {}), "1:*");
  EXPECT_EQ(FormatSetExcluding(1, 0, {3, 4, 9}), "1:2,5:8,10:*");
  EXPECT_EQ(FormatSetExcluding(5, 0, {1, 2, 5, 6}), "7:*");
  EXPECT_EQ(FormatSetExcluding(5, 0, {1, 7}), "5:6,8:*");
  EXPECT_EQ(FormatSetExcluding(1, 0, {1}), "2:*");
}

TEST(SequenceSetTest, ContainsFindsUidsInRangesOnly) {
  const UidRanges ranges = {{2, 4}, {9, 9}, {20, 30}};
  for (uint32_t uid : {2u, 3u, 4u, 9u, 20u, 25u, 30u}) EXPECT_TRUE(Contains(ranges, uid)) << uid;
  for (uint32_t uid : {0u, 1u, 5u, 8u, 10u, 19u, 31u}) EXPECT_FALSE(Contains(ranges, uid)) << uid;
  EXPECT_FALSE(Contains({}, 1));
}

TEST(SequenceSetTest, ParsesNormalizesAndMerges) {
  using R = UidRanges;
  EXPECT_EQ(ParseSequenceSet("1:3,7,12:10"), (R{{1, 3}, {7, 7}, {10, 12}}));
  EXPECT_EQ(ParseSequenceSet("5,1:4,9,8"), (R{{1, 5}, {8, 9}}));
  EXPECT_EQ(ParseSequenceSet("4294967295"), (R{{4294967295u, 4294967295u}}));
  EXPECT_EQ(ParseSequenceSet(""), R{});
  EXPECT_FALSE(ParseSequenceSet("1:*"));
  EXPECT_FALSE(ParseSequenceSet("0"));
  EXPECT_FALSE(ParseSequenceSet("1,,2"));
  EXPECT_FALSE(ParseSequenceSet("1,"));
  EXPECT_FALSE(ParseSequenceSet("4294967296"));
  EXPECT_FALSE(ParseSequenceSet("1 2"));
  EXPECT_EQ(ExpandRanges(R{{1, 3}, {7, 7}}), (std::vector<uint32_t>{1, 2, 3, 7}));
}

TEST(SequenceSetTest, ClosedSetStopsAtLast) {
  EXPECT_EQ(FormatSetExcluding(1, 12, {3, 4, 9}), "1:2,5:8,10:12");
  EXPECT_EQ(FormatSetExcluding(1, 50, {}), "1:50");
  EXPECT_EQ(FormatSetExcluding(1, 3, {1, 2, 3}), "");  // everything known
  EXPECT_EQ(FormatSetExcluding(51, 50, {}), "");       // nothing past UIDNEXT - 1
  EXPECT_EQ(FormatSetExcluding(1, 9, {3, 9, 12}), "1:2,4:8");
  EXPECT_EQ(FormatSetExcluding(7, 7, {}), "7");
}

}  // namespace
}  // namespace mailmirror::imap
