#include "imap/command.h"

#include <gtest/gtest.h>

namespace mailmirror::imap {
namespace {

Command BuildOk(CommandBuilder& builder) {
  Result<Command> command = builder.Build();
  EXPECT_TRUE(command.ok());
  return command.ok() ? std::move(command).value() : Command{};
}

TEST(CommandTest, AtomsQuotedStringsAndEscapes) {
  CommandBuilder builder("LOGIN", LiteralPolicy::kSynchronizing);
  builder.AString("alice").AString("p\"w\\ d");
  Command command = BuildOk(builder);
  ASSERT_EQ(command.parts.size(), 1u);
  EXPECT_EQ(command.parts[0], "LOGIN alice \"p\\\"w\\\\ d\"\r\n");
}

TEST(CommandTest, BracketsStayBareButNilIsQuoted) {
  CommandBuilder builder("SELECT", LiteralPolicy::kSynchronizing);
  builder.AString("[Gmail]/Sent").AString("NIL").AString("");
  EXPECT_EQ(BuildOk(builder).parts[0], "SELECT [Gmail]/Sent \"NIL\" \"\"\r\n");
}

TEST(CommandTest, ListPatternsAreAlwaysStrings) {
  CommandBuilder builder("LIST", LiteralPolicy::kSynchronizing);
  builder.String("").String("*");
  EXPECT_EQ(BuildOk(builder).parts[0], "LIST \"\" \"*\"\r\n");
}

TEST(CommandTest, EightBitGoesAsSynchronizingLiteral) {
  CommandBuilder builder("LOGIN", LiteralPolicy::kSynchronizing);
  builder.AString("j\xC3\xB6rg").AString("secret");
  Command command = BuildOk(builder);
  ASSERT_EQ(command.parts.size(), 2u);
  EXPECT_EQ(command.parts[0], "LOGIN {5}\r\n");
  EXPECT_EQ(command.parts[1], "j\xC3\xB6rg secret\r\n");
}

TEST(CommandTest, LiteralPlusNeverWaits) {
  CommandBuilder builder("LOGIN", LiteralPolicy::kPlusAny);
  builder.AString("a\r\nb").AString("x");
  Command command = BuildOk(builder);
  ASSERT_EQ(command.parts.size(), 1u);
  EXPECT_EQ(command.parts[0], "LOGIN {4+}\r\na\r\nb x\r\n");
}

TEST(CommandTest, LiteralMinusOnlyForSmallLiterals) {
  std::string big(5000, '\x80');
  CommandBuilder builder("X", LiteralPolicy::kPlusSmall);
  builder.AString("\x80").AString(big);
  Command command = BuildOk(builder);
  ASSERT_EQ(command.parts.size(), 2u);
  EXPECT_EQ(command.parts[0], "X {1+}\r\n\x80 {5000}\r\n");
  EXPECT_EQ(command.parts[1], big + "\r\n");
}

TEST(CommandTest, LongValuesBecomeLiterals) {
  std::string long_value(2000, 'a');
  long_value[0] = ' ';  // not an atom
  CommandBuilder builder("X", LiteralPolicy::kPlusAny);
  builder.AString(long_value);
  EXPECT_EQ(BuildOk(builder).parts[0], "X {2000+}\r\n" + long_value + "\r\n");
}

TEST(CommandTest, NulIsRefused) {
  CommandBuilder builder("LOGIN", LiteralPolicy::kPlusAny);
  builder.AString(std::string_view("a\0b", 3));
  Result<Command> command = builder.Build();
  ASSERT_FALSE(command.ok());
  EXPECT_NE(command.error().message.find("NUL"), std::string::npos);
}

TEST(CommandTest, IsAstringAtom) {
  EXPECT_TRUE(IsAstringAtom("INBOX"));
  EXPECT_TRUE(IsAstringAtom("a]b[c"));
  EXPECT_FALSE(IsAstringAtom(""));
  EXPECT_FALSE(IsAstringAtom("a b"));
  EXPECT_FALSE(IsAstringAtom("a%"));
  EXPECT_FALSE(IsAstringAtom("a*"));
  EXPECT_FALSE(IsAstringAtom("{1}"));
  EXPECT_FALSE(IsAstringAtom("caf\xC3\xA9"));
}

TEST(CommandTest, LiteralAlwaysSendsALiteralAndRefusesNul) {
  Result<Command> plain =
      CommandBuilder("APPEND", LiteralPolicy::kPlusSmall).AString("INBOX").Literal("abc").Build();
  ASSERT_TRUE(plain.ok());
  EXPECT_EQ(plain->parts, std::vector<std::string>{"APPEND INBOX {3+}\r\nabc\r\n"});
  // LITERAL- allows non-synchronizing literals up to 4096 octets only.
  const std::string big(5000, 'x');
  Result<Command> large =
      CommandBuilder("APPEND", LiteralPolicy::kPlusSmall).AString("INBOX").Literal(big).Build();
  ASSERT_TRUE(large.ok());
  EXPECT_EQ(large->parts, (std::vector<std::string>{"APPEND INBOX {5000}\r\n", big + "\r\n"}));
  Result<Command> nul = CommandBuilder("APPEND", LiteralPolicy::kPlusAny)
                            .AString("INBOX")
                            .Literal(std::string("a\0b", 3))
                            .Build();
  ASSERT_FALSE(nul.ok());
  EXPECT_NE(nul.error().message.find("NUL"), std::string::npos);
}

}  // namespace
}  // namespace mailmirror::imap
