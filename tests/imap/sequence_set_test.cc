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
  EXPECT_EQ(FormatOpenSetExcluding(1, {}), "1:*");
  EXPECT_EQ(FormatOpenSetExcluding(0, {}), "1:*");
  EXPECT_EQ(FormatOpenSetExcluding(1, {3, 4, 9}), "1:2,5:8,10:*");
  EXPECT_EQ(FormatOpenSetExcluding(5, {1, 2, 5, 6}), "7:*");
  EXPECT_EQ(FormatOpenSetExcluding(5, {1, 7}), "5:6,8:*");
  EXPECT_EQ(FormatOpenSetExcluding(1, {1}), "2:*");
}

}  // namespace
}  // namespace mailmirror::imap
