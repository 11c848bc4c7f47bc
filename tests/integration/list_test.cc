// `mailmirror list` end to end: the real binary against a real Dovecot.
#include <gtest/gtest.h>

#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <utility>

#include "support/dovecot_fixture.h"
#include "support/run_command.h"

namespace mailmirror {
namespace {

using testing::CommandResult;
using testing::DovecotOptions;
using testing::DovecotServer;
using testing::RunCommand;

struct Counts {
  std::string messages;
  std::string unread;
  bool operator==(const Counts& other) const {
    return messages == other.messages && unread == other.unread;
  }
};

std::ostream& operator<<(std::ostream& out, const Counts& counts) {
  return out << "(" << counts.messages << ", " << counts.unread << ")";
}

// Parses list output rows "  NAME  MESSAGES  UNREAD" (names may hold single
// spaces; columns are separated by at least two).
std::map<std::string, Counts> ParseListing(const std::string& output) {
  std::map<std::string, Counts> rows;
  std::istringstream in(output);
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("  ", 0) != 0) continue;
    std::string body = line.substr(2);
    size_t unread_start = body.find_last_of(' ') + 1;
    std::string unread = body.substr(unread_start);
    std::string rest = body.substr(0, body.find_last_not_of(' ', unread_start - 1) + 1);
    size_t messages_start = rest.find_last_of(' ') + 1;
    std::string messages = rest.substr(messages_start);
    std::string name = rest.substr(0, rest.find_last_not_of(' ', messages_start - 1) + 1);
    if (name == "FOLDER") continue;
    rows[name] = Counts{messages, unread};
  }
  return rows;
}

const std::map<std::string, Counts>& SeededFolders() {
  static const std::map<std::string, Counts> folders = {
      {"INBOX", {"5", "3"}},           {"Archive", {"2", "0"}},  {"Archive/2023", {"3", "2"}},
      {"Archive/2023/Q1", {"1", "1"}}, {"Entwürfe", {"2", "1"}}, {"Sent Items", {"4", "0"}},
      {"Empty", {"0", "0"}},
  };
  return folders;
}

class ListTest : public ::testing::Test {
 protected:
  void StartServer(DovecotOptions options = {}) {
    server_ = DovecotServer::Start(options);
    ASSERT_NE(server_, nullptr);
    ASSERT_TRUE(server_->Seed("alice"));
  }

  // Writes a config with one account "test" and returns its path.
  std::string WriteConfig(const std::string& account_body) {
    std::string path = server_->dir() + "/config.toml";
    std::ofstream out(path);
    out << "[accounts.test]\n" << account_body;
    return path;
  }

  std::string TlsAccount(const std::string& password = "alice-secret") {
    return "host = \"127.0.0.1\"\nport = " + std::to_string(server_->imaps_port()) +
           "\nca_file = \"" + server_->ca_file() + "\"\nuser = \"alice\"\npassword = \"" +
           password + "\"\n";
  }

  CommandResult List(const std::string& config_path, const std::string& extra = "") {
    return RunCommand(std::string(MAILMIRROR_BINARY) + " -c '" + config_path + "' list " + extra);
  }

  std::string DovecotLog() {
    std::ifstream in(server_->log_path());
    std::stringstream text;
    text << in.rdbuf();
    return text.str();
  }

  std::unique_ptr<DovecotServer> server_;
};

TEST_F(ListTest, ImplicitTlsListsEverySeededFolderWithCounts) {
  StartServer();
  CommandResult result = List(WriteConfig(TlsAccount()));
  ASSERT_EQ(result.exit_code, 0) << result.err;
  EXPECT_EQ(ParseListing(result.out), SeededFolders()) << result.out;
  EXPECT_NE(result.out.find("account test (alice at 127.0.0.1:"), std::string::npos);
  // INBOX first.
  EXPECT_LT(result.out.find("  INBOX "), result.out.find("  Archive "));
}

TEST_F(ListTest, StartTlsWithFixtureCertificate) {
  StartServer();
  CommandResult result =
      List(WriteConfig("host = \"127.0.0.1\"\nport = " + std::to_string(server_->imap_port()) +
                       "\ntls = \"starttls\"\nca_file = \"" + server_->ca_file() +
                       "\"\nuser = \"alice\"\npassword_cmd = \"echo alice-secret\"\n"));
  ASSERT_EQ(result.exit_code, 0) << result.err;
  EXPECT_EQ(ParseListing(result.out), SeededFolders()) << result.out;
}

TEST_F(ListTest, HostNameLocalhostVerifiesAndFallsBackToIpv4) {
  StartServer();
  CommandResult result = List(WriteConfig(
      "host = \"localhost\"\nport = " + std::to_string(server_->imaps_port()) + "\nca_file = \"" +
      server_->ca_file() + "\"\nuser = \"alice\"\npassword = \"alice-secret\"\n"));
  ASSERT_EQ(result.exit_code, 0) << result.err;
  EXPECT_EQ(ParseListing(result.out), SeededFolders()) << result.out;
}

TEST_F(ListTest, PlaintextWhenAskedFor) {
  StartServer();
  CommandResult result =
      List(WriteConfig("host = \"127.0.0.1\"\nport = " + std::to_string(server_->imap_port()) +
                       "\ntls = \"none\"\nuser = \"alice\"\npassword = \"alice-secret\"\n"));
  ASSERT_EQ(result.exit_code, 0) << result.err;
  EXPECT_EQ(ParseListing(result.out), SeededFolders()) << result.out;
}

TEST_F(ListTest, WithoutListStatusOrCondstoreLikeOffice365) {
  DovecotOptions options;
  options.hide_capabilities = {"LIST-STATUS", "CONDSTORE", "QRESYNC", "ESEARCH", "SPECIAL-USE"};
  StartServer(options);
  CommandResult result = List(WriteConfig(TlsAccount()), "-vvv");
  ASSERT_EQ(result.exit_code, 0) << result.err;
  EXPECT_EQ(ParseListing(result.out), SeededFolders()) << result.out;
  // The counts came from pipelined STATUS commands, not LIST-STATUS.
  EXPECT_NE(result.err.find(" STATUS "), std::string::npos);
  EXPECT_EQ(result.err.find("RETURN (STATUS"), std::string::npos);
}

TEST_F(ListTest, ProtocolTraceMasksThePassword) {
  StartServer();
  CommandResult result = List(WriteConfig(TlsAccount()), "-vvv");
  ASSERT_EQ(result.exit_code, 0) << result.err;
  EXPECT_NE(result.err.find("C: A"), std::string::npos) << result.err;
  EXPECT_NE(result.err.find("<secret>"), std::string::npos);
  EXPECT_EQ(result.err.find("alice-secret"), std::string::npos);
  EXPECT_EQ(result.err.find("AGFsaWNl"), std::string::npos);  // base64 of "\0alice"
}

TEST_F(ListTest, WrongPasswordExits77) {
  StartServer();
  CommandResult result = List(WriteConfig(TlsAccount("wrong")));
  EXPECT_EQ(result.exit_code, 77) << result.err;
  EXPECT_NE(result.err.find("rejected PLAIN login as \"alice\""), std::string::npos) << result.err;
  EXPECT_NE(result.err.find("check user and password"), std::string::npos) << result.err;
  EXPECT_EQ(result.out, "");
}

TEST_F(ListTest, UntrustedCertificateExits69WithoutSendingCredentials) {
  StartServer();
  CommandResult result =
      List(WriteConfig("host = \"127.0.0.1\"\nport = " + std::to_string(server_->imaps_port()) +
                       "\nuser = \"alice\"\npassword = \"alice-secret\"\n"));
  EXPECT_EQ(result.exit_code, 69) << result.err;
  EXPECT_NE(result.err.find("certificate"), std::string::npos) << result.err;
  EXPECT_EQ(DovecotLog().find("user=<alice>"), std::string::npos) << DovecotLog();
}

TEST_F(ListTest, StartTlsWithUntrustedCertificateSendsNoCredentials) {
  StartServer();
  CommandResult result =
      List(WriteConfig("host = \"127.0.0.1\"\nport = " + std::to_string(server_->imap_port()) +
                       "\ntls = \"starttls\"\nuser = \"alice\"\npassword = \"alice-secret\"\n"));
  EXPECT_EQ(result.exit_code, 69) << result.err;
  EXPECT_NE(result.err.find("certificate"), std::string::npos) << result.err;
  EXPECT_EQ(DovecotLog().find("user=<alice>"), std::string::npos) << DovecotLog();
}

TEST_F(ListTest, ImplicitTlsAgainstPlaintextPortFailsClearly) {
  StartServer();
  CommandResult result =
      List(WriteConfig("host = \"127.0.0.1\"\nport = " + std::to_string(server_->imap_port()) +
                       "\nca_file = \"" + server_->ca_file() +
                       "\"\nuser = \"alice\"\npassword = \"alice-secret\"\nconnect_timeout = 5\n"));
  EXPECT_EQ(result.exit_code, 69) << result.err;
  EXPECT_NE(result.err.find("TLS"), std::string::npos) << result.err;
}

TEST_F(ListTest, SeveralAccountsInParallelAndOneFailing) {
  StartServer();
  std::string path = server_->dir() + "/multi.toml";
  {
    std::ofstream out(path);
    out << "[accounts.first]\n"
        << TlsAccount() << "\n[accounts.broken]\n"
        << TlsAccount("nope") << "\n[accounts.second]\n"
        << TlsAccount();
  }
  CommandResult result = RunCommand(std::string(MAILMIRROR_BINARY) + " -c '" + path + "' list");
  EXPECT_EQ(result.exit_code, 77) << result.err;
  EXPECT_NE(result.out.find("account first "), std::string::npos) << result.out;
  EXPECT_NE(result.out.find("account second "), std::string::npos) << result.out;
  EXPECT_EQ(result.out.find("account broken "), std::string::npos) << result.out;
  EXPECT_NE(result.err.find("account broken:"), std::string::npos) << result.err;

  // Naming accounts picks them.
  result = RunCommand(std::string(MAILMIRROR_BINARY) + " -c '" + path + "' list second");
  EXPECT_EQ(result.exit_code, 0) << result.err;
  EXPECT_EQ(result.out.find("account first "), std::string::npos) << result.out;
}

}  // namespace
}  // namespace mailmirror
