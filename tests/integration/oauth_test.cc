// OAuth 2.0 logins end to end: the real binary against a Dovecot whose
// oauth2 passdb validates JWT access tokens locally (scripts/dovecot-fixture),
// with tokens from oauth_token_cmd or from the built-in client, whose
// identity platform is a scripted HTTPS server on 127.0.0.1.
#include <gtest/gtest.h>

#include <ctime>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "support/dovecot_fixture.h"
#include "support/oauth_stub.h"
#include "support/run_command.h"
#include "support/sync_checks.h"

namespace mailmirror {
namespace {

namespace fs = std::filesystem;
using testing::CommandResult;
using testing::DovecotServer;
using testing::HttpsStub;
using testing::MintAccessToken;
using testing::Report;
using testing::RunCommand;
using testing::ShellQuote;

class OAuthTest : public ::testing::Test {
 protected:
  void SetUp() override {
    server_ = DovecotServer::Start();
    ASSERT_NE(server_, nullptr);
    ASSERT_TRUE(server_->Seed("alice"));
    dir_ = server_->dir() + "/oauth";
    fs::create_directories(dir_);
    root_ = dir_ + "/mail";
  }

  // oauth_token_cmd prints tokens[0] on its first run, tokens[1] on its
  // second, and so on (the last one again after that), counting its runs.
  std::string TokenCommand(const std::vector<std::string>& tokens) {
    for (size_t i = 0; i < tokens.size(); ++i) {
      std::ofstream(dir_ + "/token-" + std::to_string(i + 1)) << tokens[i] << "\n";
    }
    std::ofstream(dir_ + "/token-last") << tokens.back() << "\n";
    std::ofstream script(dir_ + "/token.sh");
    script << "n=$(( $(cat " << dir_ << "/runs 2>/dev/null || echo 0) + 1 ))\n"
           << "echo $n > " << dir_ << "/runs\n"
           << "cat " << dir_ << "/token-$n 2>/dev/null || cat " << dir_ << "/token-last\n";
    return "sh " + dir_ + "/token.sh";
  }

  int TokenCommandRuns() {
    std::ifstream in(dir_ + "/runs");
    int runs = 0;
    in >> runs;
    return runs;
  }

  std::string WriteConfig(const std::string& credentials, const std::string& extra = "") {
    const std::string path = dir_ + "/config.toml";
    std::ofstream out(path);
    out << "[accounts.test]\nhost = \"127.0.0.1\"\nport = " << server_->imaps_port()
        << "\nca_file = \"" << ca_file_ << "\"\nuser = \"alice\"\nmaildir = \"" << root_ << "\"\n"
        << credentials << extra;
    return path;
  }

  CommandResult Run(const std::string& config, const std::string& command,
                    const std::string& flags = "-vv") {
    return RunCommand(std::string(MAILMIRROR_BINARY) + " -c " + ShellQuote(config) + " " + flags +
                      " " + command);
  }

  static std::string Good() { return MintAccessToken("alice", std::time(nullptr) + 3600); }
  static std::string Expired() { return MintAccessToken("alice", std::time(nullptr) - 60); }

  std::unique_ptr<DovecotServer> server_;
  std::string dir_;
  std::string root_;
  std::string ca_file_ = "";
};

TEST_F(OAuthTest, GoodTokenLogsInWithEitherMechanism) {
  ca_file_ = server_->ca_file();
  for (const char* mechanism : {"xoauth2", "oauthbearer"}) {
    SCOPED_TRACE(mechanism);
    const std::string token = Good();
    std::string config = WriteConfig("oauth_token_cmd = \"" + TokenCommand({token}) + "\"\n",
                                     std::string("auth = \"") + mechanism + "\"\n");
    CommandResult result = Run(config, "list", "-vvv");
    ASSERT_EQ(result.exit_code, 0) << Report(result);
    EXPECT_NE(result.out.find("INBOX"), std::string::npos) << result.out;
    std::string upper = mechanism;
    for (char& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    EXPECT_NE(result.err.find("as alice with " + upper), std::string::npos) << result.err;
    // The token appears nowhere, not even in the protocol trace.
    EXPECT_EQ(result.err.find(token), std::string::npos);
    EXPECT_EQ(result.err.find(token.substr(0, 20)), std::string::npos);
  }
}

TEST_F(OAuthTest, AutoPrefersTheTokenOverThePassword) {
  ca_file_ = server_->ca_file();
  std::string config =
      WriteConfig("password = \"wrong\"\noauth_token_cmd = \"" + TokenCommand({Good()}) + "\"\n");
  CommandResult result = Run(config, "list");
  ASSERT_EQ(result.exit_code, 0) << Report(result);
  EXPECT_NE(result.err.find("as alice with OAUTHBEARER"), std::string::npos) << result.err;
}

TEST_F(OAuthTest, ExpiredTokenRunsTheCommandExactlyOnceMore) {
  ca_file_ = server_->ca_file();
  // Four sessions: the extra ones log in with the renewed token.
  std::string config = WriteConfig(
      "oauth_token_cmd = \"" + TokenCommand({Expired(), Good()}) + "\"\nauth = \"xoauth2\"\n",
      "connections = 4\n");
  CommandResult result = Run(config, "sync");
  ASSERT_EQ(result.exit_code, 0) << Report(result);
  EXPECT_EQ(TokenCommandRuns(), 2);
  EXPECT_NE(result.err.find("refused the access token; getting a fresh one"), std::string::npos)
      << result.err;
  std::optional<std::vector<testing::ServerMessage>> messages = server_->Messages("alice");
  ASSERT_TRUE(messages.has_value());
  EXPECT_TRUE(testing::MirrorProblems(*messages, root_).empty());
}

TEST_F(OAuthTest, BadTokenExits77WithTheServersReasonDecoded) {
  ca_file_ = server_->ca_file();
  const std::string forged = MintAccessToken("alice", std::time(nullptr) + 3600, "not-the-key");
  struct Case {
    const char* auth;
    const char* reason;
  };
  for (const Case& c : {Case{"xoauth2", "the access token is invalid or expired (status 401"},
                        Case{"oauthbearer", "(status invalid_token)"}}) {
    SCOPED_TRACE(c.auth);
    fs::remove(dir_ + "/runs");
    std::string config = WriteConfig("oauth_token_cmd = \"" + TokenCommand({forged}) + "\"\n",
                                     std::string("auth = \"") + c.auth + "\"\n");
    CommandResult result = Run(config, "sync", "");
    EXPECT_EQ(result.exit_code, 77) << Report(result);
    EXPECT_NE(result.err.find(c.reason), std::string::npos) << result.err;
    EXPECT_NE(result.err.find("AUTHENTICATIONFAILED"), std::string::npos) << result.err;
    // Run once, then once more for a fresh token, which is the same: no
    // third login.
    EXPECT_EQ(TokenCommandRuns(), 2);
    EXPECT_EQ(result.err.find(forged.substr(0, 20)), std::string::npos);
  }
}

TEST_F(OAuthTest, TokenForAnotherUserIsRefused) {
  ca_file_ = server_->ca_file();
  std::string config =
      WriteConfig("oauth_token_cmd = \"" +
                  TokenCommand({MintAccessToken("bob", std::time(nullptr) + 3600)}) + "\"\n");
  CommandResult result = Run(config, "list", "");
  EXPECT_EQ(result.exit_code, 77) << Report(result);
  EXPECT_NE(result.err.find("rejected OAUTHBEARER login as \"alice\""), std::string::npos)
      << result.err;
}

TEST_F(OAuthTest, BuiltInClientSignsInRefreshesAndSyncs) {
  std::unique_ptr<HttpsStub> stub = HttpsStub::Start(dir_);
  ASSERT_NE(stub, nullptr);
  // One file of trusted certificates for both the IMAP server and the
  // identity platform.
  ca_file_ = dir_ + "/trusted.pem";
  {
    std::ofstream out(ca_file_);
    out << testing::ReadFile(server_->ca_file()) << testing::ReadFile(stub->ca_file());
  }
  const std::string client =
      "oauth_client_id = \"client-1\"\noauth_scope = \"mail offline_access\"\n"
      "oauth_device_url = \"" +
      stub->url("/devicecode") + "\"\noauth_token_url = \"" + stub->url("/token") + "\"\n";
  std::string config = WriteConfig(client, "auth = \"xoauth2\"\n");

  // Signing in: the device flow prints the code and stores the tokens.
  stub->Queue(
      "/devicecode",
      {200,
       R"({"device_code":"dev-1","user_code":"WDJB-MJHT","verification_uri":"https://login.example/device","expires_in":900,"interval":1})"});
  stub->Queue("/token", {400, R"({"error":"authorization_pending"})"});
  stub->Queue("/token", {200, "{\"access_token\":\"" + Expired() +
                                  "\",\"refresh_token\":\"rt-1\",\"expires_in\":3600}"});
  // What the refresh during the sync below will get.
  stub->Queue("/token", {200, "{\"access_token\":\"" + Good() +
                                  "\",\"refresh_token\":\"rt-2\",\"expires_in\":3600}"});
  CommandResult auth = Run(config, "auth test", "");
  ASSERT_EQ(auth.exit_code, 0) << Report(auth);
  EXPECT_NE(auth.out.find("WDJB-MJHT"), std::string::npos) << auth.out;
  EXPECT_NE(auth.out.find("https://login.example/device"), std::string::npos) << auth.out;
  EXPECT_EQ(stub->CountRequests("/token"), 2u);

  // The stored access token looks valid but the server refuses it (it
  // expired early): sync refreshes once, with the refresh token, and the
  // platform rotates it.
  CommandResult sync = Run(config, "sync");
  ASSERT_EQ(sync.exit_code, 0) << Report(sync);
  ASSERT_EQ(stub->CountRequests("/token"), 3u);
  EXPECT_EQ(stub->requests().back().form["grant_type"], "refresh_token");
  EXPECT_EQ(stub->requests().back().form["refresh_token"], "rt-1");
  std::optional<std::vector<testing::ServerMessage>> messages = server_->Messages("alice");
  ASSERT_TRUE(messages.has_value());
  EXPECT_TRUE(testing::MirrorProblems(*messages, root_).empty());

  // The next run uses the stored, still valid token: no request at all.
  CommandResult again = Run(config, "sync");
  ASSERT_EQ(again.exit_code, 0) << Report(again);
  EXPECT_EQ(stub->CountRequests("/token"), 3u);
  std::string stored = testing::ReadFile(root_ + "/.mailmirror/oauth-token.json");
  EXPECT_NE(stored.find("\"rt-2\""), std::string::npos);
}

}  // namespace
}  // namespace mailmirror
