// `mailmirror status` end to end: what the index, the Maildir and the last
// run's record say, offline; --remote asks the server.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "support/dovecot_fixture.h"
#include "support/run_command.h"
#include "support/sync_checks.h"

namespace mailmirror {
namespace {

namespace fs = std::filesystem;
using testing::CommandResult;
using testing::DovecotServer;
using testing::Report;
using testing::RunCommand;
using testing::ShellQuote;

class StatusTest : public ::testing::Test {
 protected:
  void SetUp() override {
    server_ = DovecotServer::Start();
    ASSERT_NE(server_, nullptr);
    ASSERT_TRUE(server_->Seed("alice"));
    root_ = server_->dir() + "/mail";
    WriteConfig("alice-secret", server_->imaps_port());
  }

  void WriteConfig(const std::string& password, int port) {
    config_ = server_->dir() + "/status.toml";
    std::ofstream out(config_);
    out << "[accounts.test]\nhost = \"127.0.0.1\"\nport = " << port << "\nca_file = \""
        << server_->ca_file() << "\"\nuser = \"alice\"\npassword = \"" << password
        << "\"\nmaildir = \"" << root_ << "\"\n";
    fs::permissions(config_, fs::perms::owner_read | fs::perms::owner_write);
  }

  CommandResult Run(const std::string& command) {
    return RunCommand(std::string(MAILMIRROR_BINARY) + " -c " + ShellQuote(config_) + " " +
                      command);
  }

  // The row of `folder` in the status table, its columns split on runs of
  // two or more spaces.
  static std::vector<std::string> Row(const std::string& out, const std::string& folder) {
    std::istringstream in(out);
    std::string line;
    while (std::getline(in, line)) {
      if (line.rfind("  " + folder + "  ", 0) != 0) continue;
      std::vector<std::string> columns;
      size_t at = 2;
      while (at < line.size()) {
        size_t end = line.find("  ", at);
        columns.push_back(line.substr(at, end == std::string::npos ? end : end - at));
        if (end == std::string::npos) break;
        at = line.find_first_not_of(' ', end);
        if (at == std::string::npos) break;
      }
      return columns;
    }
    return {};
  }

  std::unique_ptr<DovecotServer> server_;
  std::string root_;
  std::string config_;
};

TEST_F(StatusTest, ShowsTheMirrorOfflineAndTheServerWithRemote) {
  CommandResult never = Run("status");
  ASSERT_EQ(never.exit_code, 0) << Report(never);
  EXPECT_EQ(never.out, "test: never synced\n");

  CommandResult synced = Run("sync");
  ASSERT_EQ(synced.exit_code, 0) << Report(synced);
  CommandResult status = Run("status");
  ASSERT_EQ(status.exit_code, 0) << Report(status);
  EXPECT_NE(status.out.find("test: last sync 20"), std::string::npos) << status.out;
  EXPECT_NE(status.out.find(", ok\n"), std::string::npos) << status.out;
  EXPECT_NE(status.out.find("FOLDER"), std::string::npos) << status.out;
  std::vector<std::string> inbox = Row(status.out, "INBOX");
  ASSERT_EQ(inbox.size(), 6u) << status.out;
  EXPECT_EQ(inbox[1], "5");  // local
  EXPECT_EQ(inbox[2], "5");  // server, at the last sync
  EXPECT_EQ(inbox[3], "3");  // unread
  EXPECT_EQ(inbox[4], "0");  // pending
  EXPECT_EQ(inbox[5].rfind("20", 0), 0u) << inbox[5];
  EXPECT_LT(status.out.find("  INBOX "), status.out.find("  Archive ")) << status.out;

  // A reader flags a message and writes a new one: two local changes.
  testing::LocalTree tree = testing::ScanLocal(root_);
  for (const testing::LocalFile& file : tree.files) {
    if (file.folder != "INBOX" || file.subdir != "cur") continue;
    fs::rename(file.path, file.path + "F");
    break;
  }
  std::ofstream(root_ + "/INBOX/new/local-draft") << "Subject: new\n\nhello\n";
  // Mail arrives on the server: status does not know until --remote.
  ASSERT_TRUE(server_->AddMessage("alice", "INBOX", "Subject: later\r\n\r\nbody\r\n"));
  // Offline: a dead port changes nothing.
  WriteConfig("alice-secret", 1);
  CommandResult offline = Run("status");
  ASSERT_EQ(offline.exit_code, 0) << Report(offline);
  inbox = Row(offline.out, "INBOX");
  ASSERT_EQ(inbox.size(), 6u) << offline.out;
  EXPECT_EQ(inbox[2], "5");
  EXPECT_EQ(inbox[4], "2") << offline.out;
  CommandResult dead = Run("status --remote");
  EXPECT_EQ(dead.exit_code, 69) << Report(dead);

  WriteConfig("alice-secret", server_->imaps_port());
  CommandResult remote = Run("status --remote");
  ASSERT_EQ(remote.exit_code, 0) << Report(remote);
  inbox = Row(remote.out, "INBOX");
  ASSERT_EQ(inbox.size(), 6u) << remote.out;
  EXPECT_EQ(inbox[2], "6");

  // A failed run is shown as such; the folders keep their last good sync.
  WriteConfig("wrong", server_->imaps_port());
  CommandResult failed = Run("sync");
  EXPECT_EQ(failed.exit_code, 77) << Report(failed);
  CommandResult after = Run("status");
  ASSERT_EQ(after.exit_code, 0) << Report(after);
  EXPECT_NE(after.out.find(", FAILED: server 127.0.0.1"), std::string::npos) << after.out;
  EXPECT_EQ(Row(after.out, "INBOX")[5], inbox[5]);
}

}  // namespace
}  // namespace mailmirror
