#include "imap/mailbox_name.h"

#include <gtest/gtest.h>

namespace mailmirror::imap {
namespace {

struct NamePair {
  const char* utf8;
  const char* mutf7;
};

class MailboxNameRoundTrip : public ::testing::TestWithParam<NamePair> {};

TEST_P(MailboxNameRoundTrip, EncodesAndDecodes) {
  const NamePair& pair = GetParam();
  EXPECT_EQ(EncodeMailboxName(pair.utf8), std::optional<std::string>(pair.mutf7));
  EXPECT_EQ(DecodeMailboxName(pair.mutf7), std::optional<std::string>(pair.utf8));
}

INSTANTIATE_TEST_SUITE_P(
    Examples, MailboxNameRoundTrip,
    ::testing::Values(NamePair{"INBOX", "INBOX"}, NamePair{"", ""},
                      NamePair{"Entwürfe", "Entw&APw-rfe"}, NamePair{"R&D", "R&-D"},
                      NamePair{"&", "&-"}, NamePair{"&&", "&-&-"},
                      NamePair{"Messages envoyés", "Messages envoy&AOk-s"},
                      NamePair{"[Gmail]/Sent Mail", "[Gmail]/Sent Mail"},
                      // RFC 3501 §5.1.3's example.
                      NamePair{"~peter/mail/台北/日本語", "~peter/mail/&U,BTFw-/&ZeVnLIqe-"},
                      // Non-BMP (surrogate pair): U+1F4E7 E-MAIL SYMBOL.
                      NamePair{"Mail \xF0\x9F\x93\xA7", "Mail &2D3c5w-"},
                      // A run that ends mid-way through a base64 group.
                      NamePair{"ü", "&APw-"}, NamePair{"üü", "&APwA,A-"},
                      NamePair{"üüü", "&APwA,AD8-"},
                      // Control characters are not printable: they are encoded.
                      NamePair{"a\tb", "a&AAk-b"}));

TEST(MailboxNameTest, RejectsMalformedModifiedUtf7) {
  EXPECT_FALSE(DecodeMailboxName("Entw&APw"));     // no closing '-'
  EXPECT_FALSE(DecodeMailboxName("&A-"));          // too few bits for a unit
  EXPECT_FALSE(DecodeMailboxName("&APw=-"));       // '=' is not in the alphabet
  EXPECT_FALSE(DecodeMailboxName("&AGE-"));        // encodes printable 'a'
  EXPECT_FALSE(DecodeMailboxName("&2D0-"));        // lone high surrogate
  EXPECT_FALSE(DecodeMailboxName("&3,c-"));        // lone low surrogate
  EXPECT_FALSE(DecodeMailboxName("&APw-&APw-"));   // adjacent runs
  EXPECT_FALSE(DecodeMailboxName("caf\xC3\xA9"));  // raw 8-bit bytes
  EXPECT_FALSE(DecodeMailboxName("&APx-"));        // non-zero padding bits
}

TEST(MailboxNameTest, RejectsInvalidUtf8) {
  EXPECT_FALSE(EncodeMailboxName("\xC3"));              // truncated sequence
  EXPECT_FALSE(EncodeMailboxName("\xC0\xAF"));          // overlong '/'
  EXPECT_FALSE(EncodeMailboxName("\xED\xA0\x80"));      // encoded surrogate
  EXPECT_FALSE(EncodeMailboxName("\xF4\x90\x80\x80"));  // past U+10FFFF
  EXPECT_FALSE(EncodeMailboxName("\xFF"));
}

TEST(MailboxNameTest, DisplayFallsBackToRawBytes) {
  EXPECT_EQ(DisplayMailboxName("Entw&APw-rfe"), "Entwürfe");
  EXPECT_EQ(DisplayMailboxName("broken&APw"), "broken&APw");
  EXPECT_EQ(DisplayMailboxName("caf\xC3\xA9"), "caf\xC3\xA9");
}

TEST(MailboxNameTest, EveryBmpCharacterRoundTrips) {
  for (uint32_t cp = 0x80; cp < 0x10000; cp += 7) {
    if (cp >= 0xd800 && cp <= 0xdfff) continue;
    std::string utf8;
    if (cp < 0x800) {
      utf8 += static_cast<char>(0xc0 | (cp >> 6));
      utf8 += static_cast<char>(0x80 | (cp & 0x3f));
    } else {
      utf8 += static_cast<char>(0xe0 | (cp >> 12));
      utf8 += static_cast<char>(0x80 | ((cp >> 6) & 0x3f));
      utf8 += static_cast<char>(0x80 | (cp & 0x3f));
    }
    std::string name = "x" + utf8 + "y";
    std::optional<std::string> encoded = EncodeMailboxName(name);
    ASSERT_TRUE(encoded) << cp;
    EXPECT_EQ(DecodeMailboxName(*encoded), std::optional<std::string>(name)) << cp;
  }
}

}  // namespace
}  // namespace mailmirror::imap
