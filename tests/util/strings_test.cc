#include "util/strings.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <ctime>

namespace mailmirror {
namespace {

TEST(StringsTest, EqualsIgnoreCase) {
  EXPECT_TRUE(EqualsIgnoreCase("Inbox", "INBOX"));
  EXPECT_TRUE(EqualsIgnoreCase("", ""));
  EXPECT_FALSE(EqualsIgnoreCase("INBOX", "INBOX2"));
  EXPECT_FALSE(EqualsIgnoreCase("\xC3\xA4", "\xC3\x84"));  // ASCII only: ä != Ä
}

TEST(StringsTest, CountOfPicksTheNoun) {
  EXPECT_EQ(CountOf(1, "message", "messages"), "1 message");
  EXPECT_EQ(CountOf(0, "message", "messages"), "0 messages");
  EXPECT_EQ(CountOf(20000, "body", "bodies"), "20000 bodies");
}

TEST(StringsTest, TrimDropsBlanksAtBothEnds) {
  EXPECT_EQ(Trim("  alice@example.org\r\n"), "alice@example.org");
  EXPECT_EQ(Trim("\t a b \t"), "a b");
  EXPECT_EQ(Trim(" \n"), "");
  EXPECT_EQ(Trim(""), "");
}

TEST(StringsTest, ToUpperAscii) {
  EXPECT_EQ(ToUpperAscii("auth=plain \xC3\xA4"), "AUTH=PLAIN \xC3\xA4");
}

TEST(StringsTest, PrintableEscapesAndTruncates) {
  EXPECT_EQ(Printable("a\r\n\x01\xFF\\"), "a\\r\\n\\x01\\xff\\\\");
  EXPECT_EQ(Printable("abcdef", 3), "abc...");
}

TEST(StringsTest, DisplayWidthCountsCodePoints) {
  EXPECT_EQ(DisplayWidth(""), 0u);
  EXPECT_EQ(DisplayWidth("INBOX"), 5u);
  EXPECT_EQ(DisplayWidth("Entw\xC3\xBCrfe"), 8u);  // Entwürfe
}

TEST(StringsTest, FormatLocalTimeUsesTheLocalZone) {
  ::setenv("TZ", "UTC", 1);
  ::tzset();
  EXPECT_EQ(FormatLocalTime(1700000000, "%Y-%m-%d %H:%M:%S"), "2023-11-14 22:13:20");
  EXPECT_EQ(FormatLocalTime(0, "%Y%m%d-%H%M%S"), "19700101-000000");
}

TEST(StringsTest, FormatSecondsIsExact) {
  EXPECT_EQ(FormatSeconds(0), "0");
  EXPECT_EQ(FormatSeconds(50), "0.05");
  EXPECT_EQ(FormatSeconds(1500), "1.5");
  EXPECT_EQ(FormatSeconds(120000), "120");
  EXPECT_EQ(FormatSeconds(299961), "299.961");
  EXPECT_EQ(FormatSeconds(1234567), "1234.567");  // %g would have said 1234.57
}

TEST(StringsTest, EscapeControlsKeepsOneLineAndUtf8) {
  EXPECT_EQ(EscapeControls("a\nmailmirror: forged"), "a\\nmailmirror: forged");
  EXPECT_EQ(EscapeControls("tab\there\r\x1b[31m"), "tab\\there\\r\\x1b[31m");
  EXPECT_EQ(EscapeControls("Entw\xC3\xBCrfe"), "Entw\xC3\xBCrfe");
  EXPECT_EQ(EscapeControls("csi\xC2\x9B"
                           "2J"),
            "csi\\u009b2J");
  EXPECT_EQ(EscapeControls("del\x7f"), "del\\x7f");
}

}  // namespace
}  // namespace mailmirror
