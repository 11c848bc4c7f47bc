// A lost or corrupt index (issue 7): `sync` without an index and
// `mailmirror repair` rebuild it from the UIDs in the Maildir's file names
// and one header scan of the server. Nothing is downloaded or uploaded
// again, nothing is deleted on either side, and flags changed on either
// side while the index was missing survive (the union is kept).
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "support/dovecot_fixture.h"
#include "support/run_command.h"
#include "support/sync_checks.h"

namespace mailmirror {
namespace {

namespace fs = std::filesystem;
using testing::CommandResult;
using testing::DovecotServer;
using testing::ExpectedLetters;
using testing::FetchesSince;
using testing::Join;
using testing::LocalFile;
using testing::LogSize;
using testing::Report;
using testing::RunCommand;
using testing::RunOptions;
using testing::ScanLocal;
using testing::ServerMessage;
using testing::SyncCommand;

class RepairTest : public ::testing::Test {
 protected:
  void SetUp() override {
    server_ = DovecotServer::Start();
    ASSERT_NE(server_, nullptr);
    ASSERT_TRUE(server_->SeedBulk("alice", {.count = 200, .big_mb = 0}));
    dir_ = server_->dir() + "/local";
    fs::create_directories(dir_);
    root_ = dir_ + "/mail";
    config_ = dir_ + "/config.toml";
    std::ofstream(config_) << testing::AliceAccount(*server_, root_);
    CommandResult first = Run("sync");
    ASSERT_EQ(first.exit_code, 0) << Report(first);
  }

  // `mailmirror -c CONFIG -vvv COMMAND`.
  CommandResult Run(const std::string& command) {
    RunOptions options;
    options.timeout = std::chrono::seconds(60);
    return RunCommand(testing::ShellQuote(MAILMIRROR_BINARY) + " -c " +
                          testing::ShellQuote(config_) + " -vvv " + command,
                      options);
  }

  std::vector<ServerMessage> Server() {
    auto messages = server_->Messages("alice");
    EXPECT_TRUE(messages);
    return messages ? *messages : std::vector<ServerMessage>{};
  }

  const ServerMessage* Find(const std::vector<ServerMessage>& server, uint32_t uid) {
    for (const ServerMessage& message : server) {
      if (message.folder == "INBOX" && message.uid == uid) return &message;
    }
    return nullptr;
  }

  std::vector<LocalFile> Inbox() {
    std::vector<LocalFile> files;
    for (const LocalFile& file : ScanLocal(root_).files) {
      if (file.folder == "INBOX" && file.uid) files.push_back(file);
    }
    std::sort(files.begin(), files.end(),
              [](const LocalFile& a, const LocalFile& b) { return *a.uid < *b.uid; });
    return files;
  }

  void Doveadm(const std::string& arguments) {
    const CommandResult result = RunCommand(testing::DoveadmCommand(*server_, "alice", arguments));
    EXPECT_EQ(result.exit_code, 0) << arguments << "\n" << Report(result);
  }

  // Neither side sent bodies or commands that change the other.
  void ExpectNothingTransferred(const CommandResult& run, size_t log) {
    EXPECT_EQ(FetchesSince(*server_, log, "alice").body_count, 0) << "bodies downloaded again";
    for (const char* verb : {" APPEND ", " EXPUNGE", "+FLAGS (\\\\Deleted)"}) {
      EXPECT_EQ(run.err.find(verb), std::string::npos) << verb << " sent";
    }
  }

  std::unique_ptr<DovecotServer> server_;
  std::string dir_;
  std::string root_;
  std::string config_;
};

TEST_F(RepairTest, LostIndexIsRebuiltAndFlagsChangedMeanwhileAreKeptOnBothSides) {
  const std::vector<LocalFile> inbox = Inbox();
  ASSERT_GE(inbox.size(), 10u);
  // While the index is gone: mutt flags one message, another client
  // answers a second, and a third is flagged here and answered there.
  auto flag_locally = [](const LocalFile& file) {
    std::string letters = file.flags.value_or("");
    if (letters.find('F') == std::string::npos) letters += 'F';
    std::sort(letters.begin(), letters.end());
    const std::string dir = fs::path(file.path).parent_path().parent_path().string();
    fs::rename(file.path,
               dir + "/cur/" + file.name.substr(0, file.name.find(":2,")) + ":2," + letters);
  };
  std::vector<uint32_t> uids;
  for (size_t i : {1, 3, 6}) {
    // Messages with neither \Flagged nor \Answered yet.
    while (inbox[i].flags.value_or("").find_first_of("FR") != std::string::npos) ++i;
    uids.push_back(*inbox[i].uid);
  }
  ASSERT_EQ(std::set<uint32_t>(uids.begin(), uids.end()).size(), 3u);
  for (const LocalFile& file : inbox) {
    if (*file.uid == uids[0] || *file.uid == uids[2]) flag_locally(file);
  }
  Doveadm("flags add '\\Answered' mailbox INBOX uid " + std::to_string(uids[1]));
  Doveadm("flags add '\\Answered' mailbox INBOX uid " + std::to_string(uids[2]));
  const size_t count = Server().size();
  fs::remove_all(root_ + "/.mailmirror/index");

  size_t log = LogSize(*server_);
  CommandResult rebuilt = Run("sync");
  ASSERT_EQ(rebuilt.exit_code, 0) << Report(rebuilt);
  EXPECT_NE(rebuilt.out.find("re-indexed"), std::string::npos) << Report(rebuilt);
  ExpectNothingTransferred(rebuilt, log);

  // The same run compared every flag of the matched files (a second pass
  // of the folder) and kept the union on both sides.
  EXPECT_NE(rebuilt.err.find("comparing them all now"), std::string::npos) << Report(rebuilt);
  const std::vector<ServerMessage> server = Server();
  EXPECT_EQ(server.size(), count);
  const std::string want[] = {"F", "R", "FR"};
  for (size_t i = 0; i < 3; ++i) {
    const ServerMessage* message = Find(server, uids[i]);
    ASSERT_NE(message, nullptr) << uids[i];
    const std::string letters = ExpectedLetters(message->flags);
    for (char letter : want[i]) {
      EXPECT_NE(letters.find(letter), std::string::npos) << uids[i] << " has " << letters;
    }
  }
  std::vector<std::string> problems = testing::MirrorProblems(server, root_);
  EXPECT_TRUE(problems.empty()) << Join(problems);

  // And it stays settled.
  CommandResult quiet = Run("sync");
  ASSERT_EQ(quiet.exit_code, 0) << Report(quiet);
  EXPECT_EQ(quiet.err.find(" UID STORE "), std::string::npos) << Report(quiet);
}

TEST_F(RepairTest, FilesDeletedWhileTheIndexWasLostAreRestoredNotExpunged) {
  const std::vector<LocalFile> inbox = Inbox();
  ASSERT_GE(inbox.size(), 3u);
  fs::remove(inbox[0].path);
  fs::remove(inbox[1].path);
  const size_t count = Server().size();
  fs::remove_all(root_ + "/.mailmirror/index");
  CommandResult run = Run("sync");
  ASSERT_EQ(run.exit_code, 0) << Report(run);
  // With no record of the deletion, the server's copy is the truth.
  EXPECT_EQ(Server().size(), count);
  std::vector<std::string> problems = testing::MirrorProblems(Server(), root_);
  EXPECT_TRUE(problems.empty()) << Join(problems);
}

TEST_F(RepairTest, CorruptIndexFailsWithAHintAndRepairRebuildsIt) {
  const std::string index = root_ + "/.mailmirror/index";
  {
    std::ofstream garbage(index + "/data.mdb", std::ios::binary | std::ios::trunc);
    garbage << std::string(8192, '\x5a');
  }
  CommandResult broken = Run("sync");
  EXPECT_EQ(broken.exit_code, 74) << Report(broken);
  EXPECT_NE(broken.err.find(index), std::string::npos) << Report(broken);
  EXPECT_NE(broken.err.find("rebuild"), std::string::npos) << Report(broken);

  const size_t log = LogSize(*server_);
  CommandResult repaired = Run("repair");
  ASSERT_EQ(repaired.exit_code, 0) << Report(repaired);
  ExpectNothingTransferred(repaired, log);
  EXPECT_NE(repaired.out.find("index rebuilt; the old one is kept in " + index + ".broken-"),
            std::string::npos)
      << Report(repaired);
  size_t kept = 0;
  for (const auto& entry : fs::directory_iterator(root_ + "/.mailmirror")) {
    kept += entry.path().filename().string().rfind("index.broken-", 0) == 0 ? 1 : 0;
  }
  EXPECT_EQ(kept, 1u);
  std::vector<std::string> problems = testing::MirrorProblems(Server(), root_);
  EXPECT_TRUE(problems.empty()) << Join(problems);
  CommandResult after = Run("sync");
  EXPECT_EQ(after.exit_code, 0) << Report(after);
}

}  // namespace
}  // namespace mailmirror
