// `mailmirror verify` (issue 9): audits the mirror against the server and
// the index, prints each difference and exits 1 when there is one; it
// changes nothing on either side.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "support/alice_test.h"
#include "support/dovecot_fixture.h"
#include "support/run_command.h"
#include "support/sync_checks.h"

namespace mailmirror {
namespace {

namespace fs = std::filesystem;
using testing::CommandResult;
using testing::DovecotServer;
using testing::LocalFile;
using testing::Report;
using testing::RunCommand;
using testing::RunOptions;
using testing::ScanLocal;
using testing::ServerMessage;
using testing::ShellQuote;

class VerifyTest : public testing::AliceTest {
 protected:
  std::vector<LocalFile> Folder(const std::string& name) {
    std::vector<LocalFile> files;
    for (const LocalFile& file : ScanLocal(root_).files) {
      if (file.folder == name) files.push_back(file);
    }
    return files;
  }

  void Doveadm(const std::string& arguments) {
    const CommandResult result = RunCommand(testing::DoveadmCommand(*server_, "alice", arguments));
    EXPECT_EQ(result.exit_code, 0) << arguments << "\n" << Report(result);
  }
};

TEST_F(VerifyTest, AFreshMirrorMatchesAndQuietPrintsNothing) {
  CommandResult sync = Run("sync");
  ASSERT_EQ(sync.exit_code, 0) << Report(sync);
  const size_t messages = server_->Messages("alice")->size();

  CommandResult verify = Run("verify");
  EXPECT_EQ(verify.exit_code, 0) << Report(verify);
  EXPECT_EQ(verify.out, "test: the mirror matches (7 folders, " + std::to_string(messages) +
                            " messages on the server, " + std::to_string(messages) + " here)\n")
      << Report(verify);

  CommandResult deep = Run("verify --deep test");
  EXPECT_EQ(deep.exit_code, 0) << Report(deep);
  EXPECT_NE(deep.out.find(std::to_string(messages) + " bodies compared"), std::string::npos)
      << Report(deep);

  CommandResult sample = Run("verify --sample 1");
  EXPECT_EQ(sample.exit_code, 0) << Report(sample);
  // One per folder that has a message: six of the seven.
  EXPECT_NE(sample.out.find("6 bodies compared"), std::string::npos) << Report(sample);

  CommandResult quiet = Run("-q verify --deep");
  EXPECT_EQ(quiet.exit_code, 0) << Report(quiet);
  EXPECT_EQ(quiet.out, "");
  EXPECT_EQ(quiet.err, "");
}

TEST_F(VerifyTest, EveryKindOfDifferenceIsReportedAndNothingChanges) {
  CommandResult sync = Run("sync");
  ASSERT_EQ(sync.exit_code, 0) << Report(sync);
  const std::vector<LocalFile> inbox = Folder("INBOX");
  ASSERT_GE(inbox.size(), 5u);
  const std::vector<LocalFile> sent = Folder("Sent Items");
  ASSERT_GE(sent.size(), 3u);

  // On the server: a flag and a new message.
  Doveadm("flags add '\\Flagged' mailbox INBOX uid " + std::to_string(*inbox[0].uid));
  ASSERT_TRUE(server_->AddMessage("alice", "Archive",
                                  "Subject: late\nMessage-ID: <late@example.org>\n\nlate\n"));
  // Here: a deleted file, a copy under another name, a new local message,
  // and a file whose bytes changed (same size: only --deep can tell).
  fs::remove(inbox[1].path);
  const std::string copy = fs::path(inbox[2].path).parent_path().string() +
                           "/copy.stem,U=" + std::to_string(*inbox[2].uid) + ":2,S";
  fs::copy_file(inbox[2].path, copy);
  std::ofstream(root_ + "/Sent Items/new/local.stem") << "Subject: mine\n\nnot yet uploaded\n";
  {
    std::string text = testing::ReadFile(sent[0].path);
    text[text.size() - 2] = text[text.size() - 2] == 'x' ? 'y' : 'x';
    std::ofstream(sent[0].path, std::ios::binary | std::ios::trunc) << text;
  }
  const auto server_before = server_->Messages("alice");
  const auto local_before = ScanLocal(root_).files;

  CommandResult verify = Run("verify");
  EXPECT_EQ(verify.exit_code, 1) << Report(verify);
  const std::string& out = verify.out;
  auto expect_line = [&](const std::string& text) {
    EXPECT_NE(out.find(text), std::string::npos) << "missing: " << text << "\n" << Report(verify);
  };
  expect_line("test: INBOX: UID " + std::to_string(*inbox[0].uid) + ": " + inbox[0].name +
              ": flags differ: ");
  expect_line("test: Archive: UID 3: new on the server, not yet here");
  expect_line("test: INBOX: UID " + std::to_string(*inbox[1].uid) +
              ": in the index, but its file (" + inbox[1].stem + ") is gone");
  expect_line("test: INBOX: UID " + std::to_string(*inbox[2].uid) +
              ": copy.stem,U=" + std::to_string(*inbox[2].uid) + ":2,S: a second file for UID");
  expect_line("test: Sent Items: local.stem: new here, not yet on the server");
  EXPECT_EQ(out.find("content differs"), std::string::npos) << Report(verify);
  expect_line("test: 5 differences (7 folders, ");

  CommandResult deep = Run("verify --deep");
  EXPECT_EQ(deep.exit_code, 1) << Report(deep);
  EXPECT_NE(deep.out.find("test: Sent Items: UID " + std::to_string(*sent[0].uid) + ": " +
                          sent[0].name + ": the file's content differs from the server's message"),
            std::string::npos)
      << Report(deep);

  // Verify changed nothing on either side.
  EXPECT_EQ(server_->Messages("alice")->size(), server_before->size());
  const auto local_after = ScanLocal(root_).files;
  ASSERT_EQ(local_after.size(), local_before.size());
  for (size_t i = 0; i < local_after.size(); ++i) {
    EXPECT_EQ(local_after[i].path, local_before[i].path);
  }
}

TEST_F(VerifyTest, RefusesWhileASyncHoldsTheLockAndBeforeTheFirstSync) {
  CommandResult never = Run("verify");
  EXPECT_EQ(never.exit_code, 78) << Report(never);
  EXPECT_NE(never.err.find("has never been synced"), std::string::npos) << Report(never);

  CommandResult sync = Run("sync");
  ASSERT_EQ(sync.exit_code, 0) << Report(sync);
  // flock(1) holds the account's lock as a running sync would.
  CommandResult locked = Run("verify", "flock " + ShellQuote(root_ + "/.mailmirror/lock") + " ");
  EXPECT_EQ(locked.exit_code, 75) << Report(locked);
}

}  // namespace
}  // namespace mailmirror
