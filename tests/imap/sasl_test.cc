#include "imap/sasl.h"

#include <gtest/gtest.h>

#include <string>

namespace mailmirror::imap {
namespace {

TEST(SaslTest, PlainResponse) {
  EXPECT_EQ(PlainResponse("alice", "pw"), std::string("\0alice\0pw", 9));
}

TEST(SaslTest, Xoauth2Response) {
  EXPECT_EQ(Xoauth2Response("me@example.com", "ya29.x"),
            "user=me@example.com\x01"
            "auth=Bearer ya29.x\x01\x01");
}

TEST(SaslTest, OAuthBearerResponseEscapesTheUser) {
  EXPECT_EQ(OAuthBearerResponse("a,b=c", "imap.example.com", 993, "tok"),
            "n,a=a=2Cb=3Dc,\x01host=imap.example.com\x01port=993\x01"
            "auth=Bearer tok\x01\x01");
}

TEST(SaslTest, DescribesTheUsualOAuthErrors) {
  EXPECT_EQ(DescribeOAuthError(
                R"({"status":"401","schemes":"bearer","scope":"https://mail.google.com/"})"),
            "the access token is invalid or expired (status 401, scope https://mail.google.com/)");
  EXPECT_TRUE(OAuthErrorIsInvalidToken(R"({"status":"invalid_token"})"));
  EXPECT_EQ(DescribeOAuthError(R"({"status":"insufficient_scope","scope":"mail"})"),
            "the access token lacks the scope the server needs (mail) (status "
            "insufficient_scope, scope mail)");
  EXPECT_FALSE(OAuthErrorIsInvalidToken(R"({"status":"insufficient_scope"})"));
  EXPECT_NE(DescribeOAuthError(R"({"status":"400"})").find("check user"), std::string::npos);
  EXPECT_EQ(DescribeOAuthError(R"({"status":"weird"})"),
            "the server refused the access token (status weird)");
}

TEST(SaslTest, NonJsonChallengesDescribeNothing) {
  for (const char* text : {"", "not json", "[1,2]", "{\"status\":", "{}", "\"401\""}) {
    EXPECT_EQ(DescribeOAuthError(text), "") << text;
    EXPECT_FALSE(OAuthErrorIsInvalidToken(text)) << text;
  }
  EXPECT_EQ(DescribeOAuthError(R"({"status":{"nested":1}})"), "");
}

}  // namespace
}  // namespace mailmirror::imap
