#include "imap/date.h"

#include <gtest/gtest.h>

namespace mailmirror::imap {
namespace {

TEST(DateTest, ParsesZonesAndPaddedDays) {
  EXPECT_EQ(ParseInternalDate("17-Jul-1996 02:44:25 -0700"), 837596665);
  EXPECT_EQ(ParseInternalDate("01-Jan-1970 00:00:00 +0000"), 0);
  EXPECT_EQ(ParseInternalDate(" 7-Jul-2024 10:00:00 +0200"), 1720339200);
  EXPECT_EQ(ParseInternalDate("7-jul-2024 10:00:00 +0200"), 1720339200);
  EXPECT_EQ(ParseInternalDate("29-Feb-2024 23:59:59 +0000"), 1709251199);
}

TEST(DateTest, RejectsMalformed) {
  EXPECT_FALSE(ParseInternalDate(""));
  EXPECT_FALSE(ParseInternalDate("17-Jux-1996 02:44:25 -0700"));
  EXPECT_FALSE(ParseInternalDate("17-Jul-1996 02:44:25"));
  EXPECT_FALSE(ParseInternalDate("17-Jul-1996 25:44:25 -0700"));
  EXPECT_FALSE(ParseInternalDate("17-Jul-1996T02:44:25 -0700"));
}

TEST(DateTest, FormatRoundTrips) {
  EXPECT_EQ(FormatInternalDate(837596665), "17-Jul-1996 09:44:25 +0000");
  for (int64_t t : {int64_t{0}, int64_t{951782400}, int64_t{1764079200}, int64_t{-86401}}) {
    EXPECT_EQ(ParseInternalDate(FormatInternalDate(t)), t) << t;
  }
}

}  // namespace
}  // namespace mailmirror::imap
