#include "imap/throttle.h"

#include <gtest/gtest.h>

namespace mailmirror::imap {
namespace {

TEST(ThrottleTest, Office365SuggestsItsBackoffInMilliseconds) {
  EXPECT_EQ(
      ThrottleDelayMs("", "Request is throttled. Suggested Backoff Time: 299961 milliseconds"),
      299961U);
}

TEST(ThrottleTest, SecondsAreConverted) {
  EXPECT_EQ(ThrottleDelayMs("UNAVAILABLE", "Server busy, suggested backoff time: 30 seconds"),
            30000U);
  EXPECT_EQ(ThrottleDelayMs("UNAVAILABLE", "backoff 5s"), 5000U);
}

TEST(ThrottleTest, CodesWithoutATimeAreThrottlingOfUnknownLength) {
  EXPECT_EQ(ThrottleDelayMs("UNAVAILABLE", "Temporary System Error"), 0U);
  EXPECT_EQ(ThrottleDelayMs("limit", "Too many commands"), 0U);
  EXPECT_EQ(ThrottleDelayMs("THROTTLED", ""), 0U);
  EXPECT_EQ(ThrottleDelayMs("INUSE", "Mailbox locked by another session"), 0U);
}

TEST(ThrottleTest, GmailBandwidthLimitIsRecognisedByItsText) {
  EXPECT_EQ(ThrottleDelayMs("ALERT", "Account exceeded command or bandwidth limits. (Failure)"),
            0U);
  EXPECT_EQ(ThrottleDelayMs("ALERT", "Too many simultaneous connections. (Failure)"), 0U);
}

TEST(ThrottleTest, OrdinaryFailuresAreNotThrottling) {
  EXPECT_FALSE(ThrottleDelayMs("", "Mailbox doesn't exist: Foo").has_value());
  EXPECT_FALSE(ThrottleDelayMs("NONEXISTENT", "Unknown Mailbox").has_value());
  EXPECT_FALSE(ThrottleDelayMs("OVERQUOTA", "Quota exceeded (mailbox for user is full)"));
}

TEST(ThrottleTest, AbsurdDelaysAreCappedAtADay) {
  EXPECT_EQ(ThrottleDelayMs("", "throttled, backoff time: 99999999999999999999999 ms"),
            24ULL * 3600 * 1000);
}

TEST(ThrottleTest, BackoffWithoutANumberGivesNoDelay) {
  EXPECT_EQ(ThrottleDelayMs("UNAVAILABLE", "backoff. Later 5 things"), 0U);
}

TEST(ThrottleTest, OverQuotaIsItsOwnSignal) {
  EXPECT_TRUE(IsOverQuota("OVERQUOTA"));
  EXPECT_TRUE(IsOverQuota("overquota"));
  EXPECT_FALSE(IsOverQuota("LIMIT"));
}

}  // namespace
}  // namespace mailmirror::imap
