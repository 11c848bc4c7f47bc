// The built-in OAuth 2.0 client against a scripted identity platform on
// 127.0.0.1 (HTTPS with its own certificate): the device flow with
// authorization_pending and slow_down, refresh with and without rotation,
// and the errors users meet.
#include "oauth/oauth_client.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <sstream>
#include <string>
#include <vector>

#include "oauth/http_client.h"
#include "support/oauth_stub.h"

namespace mailmirror {
namespace {

namespace fs = std::filesystem;
using testing::HttpsStub;
using testing::StubReply;

class OAuthClientTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char pattern[] = "/tmp/mailmirror-oauth-XXXXXX";
    ASSERT_NE(::mkdtemp(pattern), nullptr);
    dir_ = pattern;
    stub_ = HttpsStub::Start(dir_);
    ASSERT_NE(stub_, nullptr);
    account_.name = "work";
    account_.user = "alice@example.com";
    account_.state_dir = dir_ + "/state";
    account_.ca_file = stub_->ca_file();
    account_.oauth.client_id = "client-1";
    account_.oauth.scope = "mail offline_access";
    account_.oauth.device_authorization_url = stub_->url("/devicecode");
    account_.oauth.token_url = stub_->url("/token");
  }
  void TearDown() override {
    stub_.reset();
    std::error_code ignored;
    fs::remove_all(dir_, ignored);
  }

  // Runs the device flow, recording the waits instead of sleeping.
  Result<oauth::TokenSet> DeviceFlow() {
    return oauth::RunDeviceFlow(account_, printed_,
                                [this](int64_t seconds) { waits_.push_back(seconds); });
  }

  std::string dir_;
  std::unique_ptr<HttpsStub> stub_;
  AccountConfig account_;
  std::ostringstream printed_;
  std::vector<int64_t> waits_;
};

constexpr const char* kDeviceReply =
    R"({"device_code":"dev-1","user_code":"ABCD-EFGH","verification_uri":"https://login.example/device","expires_in":900,"interval":2})";

TEST_F(OAuthClientTest, DeviceFlowPollsThroughPendingAndSlowDownAndStoresTheTokens) {
  stub_->Queue("/devicecode", {200, kDeviceReply});
  stub_->Queue("/token", {400, R"({"error":"authorization_pending"})"});
  stub_->Queue("/token", {400, R"({"error":"slow_down"})"});
  stub_->Queue("/token", {400, R"({"error":"authorization_pending"})"});
  stub_->Queue(
      "/token",
      {200,
       R"({"access_token":"at-1","refresh_token":"rt-1","expires_in":3600,"token_type":"Bearer"})"});
  Result<oauth::TokenSet> tokens = DeviceFlow();
  ASSERT_TRUE(tokens.ok()) << tokens.error().message;
  EXPECT_EQ(tokens->access_token, "at-1");
  EXPECT_EQ(tokens->refresh_token, "rt-1");
  EXPECT_NEAR(double(tokens->expires_at), double(std::time(nullptr) + 3600), 30);

  // The user is told where to go and what to enter.
  EXPECT_NE(printed_.str().find("https://login.example/device"), std::string::npos);
  EXPECT_NE(printed_.str().find("ABCD-EFGH"), std::string::npos);
  // The interval as asked, 5 s more after slow_down (RFC 8628 §3.5).
  EXPECT_EQ(waits_, (std::vector<int64_t>{2, 2, 7, 7}));

  std::vector<testing::StubRequest> requests = stub_->requests();
  ASSERT_EQ(requests.size(), 5u);
  EXPECT_EQ(requests[0].form["client_id"], "client-1");
  EXPECT_EQ(requests[0].form["scope"], "mail offline_access");
  EXPECT_EQ(requests[1].form["grant_type"], "urn:ietf:params:oauth:grant-type:device_code");
  EXPECT_EQ(requests[1].form["device_code"], "dev-1");

  // Stored for sync, readable by the owner only.
  struct stat st {};
  ASSERT_EQ(::stat(oauth::TokenFilePath(account_).c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  Result<oauth::TokenSet> stored = oauth::LoadTokens(account_);
  ASSERT_TRUE(stored.ok());
  EXPECT_EQ(stored->refresh_token, "rt-1");
  // Still valid: sync asks nobody.
  Result<std::string> access = oauth::AccessToken(account_, false);
  ASSERT_TRUE(access.ok());
  EXPECT_EQ(*access, "at-1");
  EXPECT_EQ(stub_->requests().size(), 5u);
}

TEST_F(OAuthClientTest, DeclinedOrExpiredSignInIsAnAuthError) {
  stub_->Queue("/devicecode", {200, kDeviceReply});
  stub_->Queue("/token", {400, R"({"error":"access_denied"})"});
  stub_->Queue("/token", {400, R"({"error":"expired_token"})"});  // for the second run
  Result<oauth::TokenSet> declined = DeviceFlow();
  ASSERT_FALSE(declined.ok());
  EXPECT_EQ(declined.error().kind, ErrorKind::kAuth);
  EXPECT_NE(declined.error().message.find("declined"), std::string::npos);

  Result<oauth::TokenSet> expired = DeviceFlow();
  ASSERT_FALSE(expired.ok());
  EXPECT_EQ(expired.error().kind, ErrorKind::kAuth);
  EXPECT_NE(expired.error().message.find("mailmirror auth work"), std::string::npos);
  EXPECT_FALSE(fs::exists(oauth::TokenFilePath(account_)));
}

TEST_F(OAuthClientTest, RefusedClientIsAConfigErrorWithTheReason) {
  stub_->Queue(
      "/devicecode",
      {400,
       R"({"error":"invalid_client","error_description":"AADSTS700016: Application not found"})"});
  Result<oauth::TokenSet> tokens = DeviceFlow();
  ASSERT_FALSE(tokens.ok());
  EXPECT_EQ(tokens.error().kind, ErrorKind::kConfig);
  EXPECT_NE(tokens.error().message.find("invalid_client: AADSTS700016"), std::string::npos)
      << tokens.error().message;
  EXPECT_NE(tokens.error().message.find("oauth_client_id"), std::string::npos);
}

TEST_F(OAuthClientTest, RefreshRotatesTheRefreshToken) {
  ASSERT_TRUE(oauth::SaveTokens(account_, {"old-at", "rt-1", std::time(nullptr) - 10}).ok());
  stub_->Queue("/token",
               {200, R"({"access_token":"at-2","refresh_token":"rt-2","expires_in":3600})"});
  stub_->Queue("/token", {200, R"({"access_token":"at-3","expires_in":3600})"});
  Result<std::string> first = oauth::AccessToken(account_, false);
  ASSERT_TRUE(first.ok()) << first.error().message;
  EXPECT_EQ(*first, "at-2");
  // A forced refresh (the server refused at-2) uses the rotated token;
  // a reply without a refresh token keeps the last one.
  Result<std::string> second = oauth::AccessToken(account_, true);
  ASSERT_TRUE(second.ok()) << second.error().message;
  EXPECT_EQ(*second, "at-3");
  std::vector<testing::StubRequest> requests = stub_->requests();
  ASSERT_EQ(requests.size(), 2u);
  EXPECT_EQ(requests[0].form["grant_type"], "refresh_token");
  EXPECT_EQ(requests[0].form["refresh_token"], "rt-1");
  EXPECT_EQ(requests[0].form["client_id"], "client-1");
  EXPECT_EQ(requests[1].form["refresh_token"], "rt-2");
  Result<oauth::TokenSet> stored = oauth::LoadTokens(account_);
  ASSERT_TRUE(stored.ok());
  EXPECT_EQ(stored->access_token, "at-3");
  EXPECT_EQ(stored->refresh_token, "rt-2");
}

TEST_F(OAuthClientTest, RevokedRefreshTokenAsksToSignInAgain) {
  ASSERT_TRUE(oauth::SaveTokens(account_, {"", "rt-1", 0}).ok());
  stub_->Queue("/token",
               {400, R"({"error":"invalid_grant","error_description":"AADSTS70008: expired"})"});
  Result<std::string> access = oauth::AccessToken(account_, false);
  ASSERT_FALSE(access.ok());
  EXPECT_EQ(access.error().kind, ErrorKind::kAuth);
  EXPECT_NE(access.error().message.find("invalid_grant: AADSTS70008"), std::string::npos);
  EXPECT_NE(access.error().message.find("mailmirror auth work"), std::string::npos);
  EXPECT_EQ(access.error().message.find("rt-1"), std::string::npos);
}

TEST_F(OAuthClientTest, NoStoredTokensNamesTheAuthCommand) {
  Result<std::string> access = oauth::AccessToken(account_, false);
  ASSERT_FALSE(access.ok());
  EXPECT_EQ(access.error().kind, ErrorKind::kConfig);
  EXPECT_NE(access.error().message.find("run `mailmirror auth work` once"), std::string::npos);
}

TEST_F(OAuthClientTest, UntrustedCertificateAndPlainHttpAreRefused) {
  account_.ca_file = "/etc/ssl/certs/ca-certificates.crt";  // not the stub's
  stub_->Queue("/devicecode", {200, kDeviceReply});
  Result<oauth::TokenSet> tokens = DeviceFlow();
  ASSERT_FALSE(tokens.ok());
  EXPECT_EQ(tokens.error().kind, ErrorKind::kUnavailable);
  EXPECT_EQ(stub_->requests().size(), 0u);  // nothing reached it

  Result<oauth::HttpResponse> plain =
      oauth::PostForm("http://127.0.0.1:1/token", {{"refresh_token", "x"}}, {});
  ASSERT_FALSE(plain.ok());
  EXPECT_NE(plain.error().message.find("only https://"), std::string::npos);
}

TEST(FormEncodeTest, KeepsUnreservedAndEscapesTheRest) {
  EXPECT_EQ(oauth::FormEncode("a-b_c.d~e"), "a-b_c.d~e");
  EXPECT_EQ(oauth::FormEncode("a b&c=d/é"), "a%20b%26c%3Dd%2F%C3%A9");
}

}  // namespace
}  // namespace mailmirror
