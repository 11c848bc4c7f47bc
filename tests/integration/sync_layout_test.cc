// `mailmirror sync` options and partial failures against a real Dovecot:
// the maildir++ layout, the folders filter, a folder that cannot be stored,
// and a no-change resync that selects nothing.
#include <sys/stat.h>

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <set>
#include <string>

#include "support/dovecot_fixture.h"
#include "support/run_command.h"
#include "support/sync_checks.h"

namespace mailmirror {
namespace {

namespace fs = std::filesystem;
using testing::CommandResult;
using testing::DovecotServer;
using testing::RunCommand;

class SyncLayoutTest : public ::testing::Test {
 protected:
  void SetUp() override {
    server_ = DovecotServer::Start({});
    ASSERT_NE(server_, nullptr);
    ASSERT_TRUE(server_->Seed("alice"));
    maildir_ = server_->dir() + "/local";
  }

  std::string WriteConfig(const std::string& extra) {
    std::string path = server_->dir() + "/sync.toml";
    std::ofstream out(path);
    out << testing::AliceAccount(*server_, maildir_) << extra;
    return path;
  }

  CommandResult Sync(const std::string& config, const std::string& options = "") {
    return RunCommand(std::string(MAILMIRROR_BINARY) + " -c '" + config + "' " + options + " sync");
  }

  // Number of message files in a Maildir folder's cur/ and new/.
  static size_t CountMessages(const std::string& folder) {
    size_t count = 0;
    for (const char* sub : {"/cur", "/new"}) {
      if (!fs::is_directory(folder + sub)) continue;
      for (const auto& entry : fs::directory_iterator(folder + sub)) {
        if (entry.is_regular_file()) ++count;
      }
    }
    return count;
  }

  std::unique_ptr<DovecotServer> server_;
  std::string maildir_;
};

TEST_F(SyncLayoutTest, MaildirPlusPlusLayout) {
  CommandResult result = Sync(WriteConfig("layout = \"maildir++\"\n"));
  ASSERT_EQ(result.exit_code, 0) << result.err;
  EXPECT_EQ(CountMessages(maildir_), 5u);  // INBOX is the root itself
  EXPECT_EQ(CountMessages(maildir_ + "/.Archive"), 2u);
  EXPECT_EQ(CountMessages(maildir_ + "/.Archive.2023"), 3u);
  EXPECT_EQ(CountMessages(maildir_ + "/.Archive.2023.Q1"), 1u);
  EXPECT_EQ(CountMessages(maildir_ + "/.Entwürfe"), 2u);
  EXPECT_EQ(CountMessages(maildir_ + "/.Sent Items"), 4u);
  EXPECT_TRUE(fs::is_directory(maildir_ + "/.Empty/cur"));
  EXPECT_FALSE(fs::exists(maildir_ + "/INBOX"));
}

TEST_F(SyncLayoutTest, FoldersFilterWithExclusions) {
  CommandResult result = Sync(WriteConfig("folders = [\"*\", \"!Archive/*\", \"!Empty\"]\n"));
  ASSERT_EQ(result.exit_code, 0) << result.err;
  EXPECT_EQ(CountMessages(maildir_ + "/INBOX"), 5u);
  EXPECT_EQ(CountMessages(maildir_ + "/Archive"), 2u);
  EXPECT_FALSE(fs::exists(maildir_ + "/Archive/2023/cur"));
  EXPECT_FALSE(fs::exists(maildir_ + "/Empty"));
  EXPECT_EQ(result.out.find("Archive/2023"), std::string::npos) << result.out;

  // Only INBOX.
  fs::remove_all(maildir_);
  testing::ForgetSyncedRoots();
  result = Sync(WriteConfig("folders = [\"INBOX\"]\n"));
  ASSERT_EQ(result.exit_code, 0) << result.err;
  EXPECT_EQ(CountMessages(maildir_ + "/INBOX"), 5u);
  EXPECT_FALSE(fs::exists(maildir_ + "/Archive"));
}

TEST_F(SyncLayoutTest, OneFolderFailingKeepsTheOthers) {
  // A plain file where the Archive/2023 directory must go.
  fs::create_directories(maildir_ + "/Archive");
  std::ofstream(maildir_ + "/Archive/2023") << "in the way\n";
  CommandResult result = Sync(WriteConfig(""));
  EXPECT_EQ(result.exit_code, 74) << result.err;
  EXPECT_NE(result.err.find("folder Archive/2023"), std::string::npos) << result.err;
  EXPECT_NE(result.out.find("Archive/2023: FAILED"), std::string::npos) << result.out;
  EXPECT_EQ(CountMessages(maildir_ + "/INBOX"), 5u);
  EXPECT_EQ(CountMessages(maildir_ + "/Sent Items"), 4u);

  // Once the obstacle is gone, the next run completes the mirror.
  fs::remove(maildir_ + "/Archive/2023");
  result = Sync(WriteConfig(""));
  ASSERT_EQ(result.exit_code, 0) << result.err;
  EXPECT_EQ(CountMessages(maildir_ + "/Archive/2023"), 3u);
  EXPECT_EQ(CountMessages(maildir_ + "/INBOX"), 5u);
}

TEST_F(SyncLayoutTest, UnchangedResyncSelectsNothing) {
  std::string config = WriteConfig("");
  ASSERT_EQ(Sync(config).exit_code, 0);
  CommandResult result = Sync(config, "-vvv");
  ASSERT_EQ(result.exit_code, 0) << result.err;
  EXPECT_EQ(result.err.find("EXAMINE"), std::string::npos) << result.err;
  EXPECT_EQ(result.err.find("UID FETCH"), std::string::npos) << result.err;
  EXPECT_NE(result.out.find("0 new messages"), std::string::npos) << result.out;
}

TEST_F(SyncLayoutTest, QuietPrintsNothingAndMissingMaildirIsAConfigError) {
  CommandResult result = Sync(WriteConfig(""), "-q");
  EXPECT_EQ(result.exit_code, 0) << result.err;
  EXPECT_EQ(result.out, "");
  EXPECT_EQ(result.err, "");

  std::string path = server_->dir() + "/nomaildir.toml";
  std::ofstream(path) << "[accounts.test]\nhost = \"127.0.0.1\"\nuser = \"alice\"\n"
                         "password = \"x\"\n";
  result = Sync(path);
  EXPECT_EQ(result.exit_code, 78) << result.err;
  EXPECT_NE(result.err.find("maildir"), std::string::npos) << result.err;
}

}  // namespace
}  // namespace mailmirror
