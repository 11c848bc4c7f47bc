// Other programs on the same mail (issue 9): a Maildir that mbsync (isync)
// synced first is adopted without downloading a body, and a message read
// in neomutt reaches the server as \Seen with the next sync.
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <memory>
#include <set>
#include <string>
#include <thread>
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
using testing::FetchesSince;
using testing::FetchStats;
using testing::Join;
using testing::LocalFile;
using testing::LogSize;
using testing::Report;
using testing::RunCommand;
using testing::RunOptions;
using testing::ScanLocal;
using testing::ServerMessage;
using testing::ShellQuote;
using testing::SyncCommand;

bool HasFlag(const ServerMessage& message, const std::string& flag) {
  return std::find(message.flags.begin(), message.flags.end(), flag) != message.flags.end();
}

// MirrorProblems, except that a file may differ from the server's copy by
// the X-TUID header line mbsync adds to every message it stores.
std::vector<std::string> ProblemsIgnoringTuid(const std::vector<ServerMessage>& server,
                                              const std::string& root) {
  const std::vector<LocalFile> files = ScanLocal(root).files;
  std::vector<std::string> problems;
  for (const std::string& problem : testing::MirrorProblems(server, root)) {
    const std::string suffix = ": content";
    const bool content =
        problem.size() > suffix.size() &&
        problem.compare(problem.size() - suffix.size(), suffix.size(), suffix) == 0;
    const std::string path = problem.substr(0, problem.size() - suffix.size());
    bool same = false;
    for (const LocalFile& file : files) {
      if (!content || file.path != path || !file.uid) continue;
      std::string text = testing::ReadFile(path);
      const size_t tuid = text.find("\nX-TUID: ");
      if (tuid != std::string::npos) text.erase(tuid + 1, text.find('\n', tuid + 1) - tuid);
      for (const ServerMessage& message : server) {
        same = same || (message.folder == file.folder && message.uid == *file.uid &&
                        testing::ReadFile(message.file) == text);
      }
    }
    if (!same) problems.push_back(problem);
  }
  return problems;
}

class InteropTest : public testing::AliceTest {
 protected:
  std::vector<ServerMessage> Server() {
    auto messages = server_->Messages("alice");
    EXPECT_TRUE(messages);
    return messages ? *messages : std::vector<ServerMessage>{};
  }

  CommandResult Sync() {
    RunOptions options;
    options.timeout = std::chrono::seconds(60);
    return RunCommand(SyncCommand(config_, "-v"), options);
  }
};

// mbsync 1.4's Maildir as its users have it (it checks the certificate's
// name, not its IP address, so it connects to "localhost"): SubFolders Verbatim with INBOX
// under the root, ",U=" in every name, .mbsyncstate and .uidvalidity files.
TEST_F(InteropTest, MbsyncMaildirIsAdoptedWithoutDownloadingABody) {
  ASSERT_EQ(RunCommand("command -v mbsync").exit_code, 0)
      << "mbsync is not installed (apt-get install isync)";
  // A message without a Message-ID is matched by size, Date, From and
  // Subject (mbsync leaves the file's mtime at its download time).
  ASSERT_TRUE(server_->AddMessage("alice", "INBOX",
                                  "Date: Mon, 15 Jan 2024 08:00:00 +0100\nFrom: Legacy "
                                  "<legacy@example.org>\nSubject: No Message-ID here\n\nOld "
                                  "software sent this.\n",
                                  /*seen=*/true));
  const std::string mbsyncrc = dir_ + "/mbsyncrc";
  std::ofstream(mbsyncrc) << "IMAPAccount fixture\nHost localhost\nPort " << server_->imaps_port()
                          << "\nUser alice\nPass alice-secret\nSSLType IMAPS\nCertificateFile "
                          << server_->ca_file()
                          << "\n\nIMAPStore remote\nAccount fixture\n\nMaildirStore local\nPath "
                          << root_ << "/\nInbox " << root_
                          << "/INBOX\nSubFolders Verbatim\n\nChannel mirror\nFar :remote:\nNear "
                             ":local:\nPatterns *\nCreate Near\nSyncState *\n";
  fs::create_directories(root_);  // mbsync creates folders, not its root
  RunOptions options;
  options.timeout = std::chrono::seconds(60);
  CommandResult mbsync = RunCommand("mbsync -q -c " + ShellQuote(mbsyncrc) + " -a", options);
  ASSERT_EQ(mbsync.exit_code, 0) << Report(mbsync);
  // mbsync 1.4 names folders in IMAP's modified UTF-7; docs/migrating.md
  // says to rename them to UTF-8 first, as here.
  ASSERT_TRUE(fs::exists(root_ + "/Entw&APw-rfe/cur"));
  fs::rename(root_ + "/Entw&APw-rfe", root_ + "/Entwürfe");
  const std::vector<ServerMessage> before = Server();
  size_t mbsync_files = 0;
  for (const LocalFile& file : ScanLocal(root_).files) mbsync_files += file.uid ? 1 : 0;
  ASSERT_EQ(mbsync_files, before.size());

  // The dry run counts what the real run will adopt, and renames nothing.
  const std::vector<LocalFile> files_before = ScanLocal(root_).files;
  size_t dry_offset = LogSize(*server_);
  CommandResult dry = Run("sync --dry-run");
  ASSERT_EQ(dry.exit_code, 0) << Report(dry);
  EXPECT_NE(dry.out.find("test: INBOX: 6 local files to adopt (no download) (dry run)"),
            std::string::npos)
      << Report(dry);
  EXPECT_EQ(dry.out.find("to download"), std::string::npos) << Report(dry);
  EXPECT_EQ(dry.out.find("to upload"), std::string::npos) << Report(dry);
  EXPECT_EQ(FetchesSince(*server_, dry_offset, "alice").body_count, 0);
  // The same with direction = "pull", whose runs skip the local scan.
  const std::string pull_config = dir_ + "/pull.toml";
  std::ofstream(pull_config) << testing::ReadFile(config_) << "direction = \"pull\"\n";
  CommandResult pull_dry = RunCommand(SyncCommand(pull_config) + " --dry-run");
  ASSERT_EQ(pull_dry.exit_code, 0) << Report(pull_dry);
  EXPECT_NE(pull_dry.out.find("test: INBOX: 6 local files to adopt (no download) (dry run)"),
            std::string::npos)
      << Report(pull_dry);
  EXPECT_EQ(pull_dry.out.find("to download"), std::string::npos) << Report(pull_dry);
  const std::vector<LocalFile> files_after = ScanLocal(root_).files;
  ASSERT_EQ(files_after.size(), files_before.size());
  for (size_t i = 0; i < files_after.size(); ++i) {
    EXPECT_EQ(files_after[i].path, files_before[i].path);
  }

  const size_t log_offset = LogSize(*server_);
  CommandResult first = Sync();
  ASSERT_EQ(first.exit_code, 0) << Report(first);
  const FetchStats fetched = FetchesSince(*server_, log_offset, "alice");
  EXPECT_EQ(fetched.body_count, 0) << Report(first);
  EXPECT_NE(first.out.find("re-indexed from its file"), std::string::npos) << Report(first);

  // Nothing was uploaded either, and the tree is a mirror now (of files
  // that keep mbsync's X-TUID line).
  const std::vector<ServerMessage> after = Server();
  EXPECT_EQ(after.size(), before.size());
  std::vector<std::string> problems = ProblemsIgnoringTuid(after, root_);
  EXPECT_TRUE(problems.empty()) << Join(problems);

  // verify --deep accepts mbsync's files: they differ from the server's
  // copy by the X-TUID line only.
  RunOptions verify_options;
  verify_options.timeout = std::chrono::seconds(60);
  CommandResult verify =
      RunCommand(ShellQuote(MAILMIRROR_BINARY) + " -c " + ShellQuote(config_) + " verify --deep",
                 verify_options);
  EXPECT_EQ(verify.exit_code, 0) << Report(verify);

  // And the next run has nothing to do.
  const size_t second_offset = LogSize(*server_);
  CommandResult second = Sync();
  ASSERT_EQ(second.exit_code, 0) << Report(second);
  EXPECT_EQ(FetchesSince(*server_, second_offset, "alice").body_count, 0);
  EXPECT_EQ(Server().size(), before.size());
}

// neomutt in tmux (it needs a terminal) reads the synced INBOX, marks every
// unread message read and quits, which renames the files; the next sync
// stores \Seen on the server.
TEST_F(InteropTest, MessagesReadInNeomuttAreSeenOnTheServer) {
  ASSERT_EQ(RunCommand("command -v neomutt").exit_code, 0)
      << "neomutt is not installed (apt-get install neomutt)";
  ASSERT_EQ(RunCommand("command -v tmux").exit_code, 0)
      << "tmux is not installed (apt-get install tmux)";
  CommandResult first = Sync();
  ASSERT_EQ(first.exit_code, 0) << Report(first);
  std::set<uint32_t> unread;
  for (const ServerMessage& message : Server()) {
    if (message.folder == "INBOX" && !HasFlag(message, "\\Seen")) unread.insert(message.uid);
  }
  ASSERT_FALSE(unread.empty());

  const std::string muttrc = dir_ + "/muttrc";
  std::ofstream(muttrc) << "set mbox_type = Maildir\nset folder = \"" << root_
                        << "\"\nset spoolfile = \"+INBOX\"\nset header_cache = \"\"\n"
                        << "set mark_old = no\nset move = no\nset quit = yes\nset help = no\n"
                        << "set wait_key = no\nset confirmappend = no\n";
  // Tag the unread messages, clear their N (new) flag, write and quit.
  const std::string keys = "push '<tag-pattern>~U<enter><tag-prefix><clear-flag>N<quit>'";
  const std::string socket = "mm-interop-" + std::to_string(getpid());
  const std::string tmux = "tmux -L " + socket + " -f /dev/null ";
  const std::string neomutt = "TERM=screen neomutt -n -F " + ShellQuote(muttrc) + " -f " +
                              ShellQuote(root_ + "/INBOX") + " -e " + ShellQuote(keys);
  CommandResult started =
      RunCommand(tmux + "new-session -d -x 160 -y 40 -s mm " + ShellQuote(neomutt));
  ASSERT_EQ(started.exit_code, 0) << Report(started);
  // neomutt quits by itself; the session (and the tmux server) end with it.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(15);
  bool running = true;
  while (running && std::chrono::steady_clock::now() < deadline) {
    running = RunCommand(tmux + "has-session -t mm").exit_code == 0;
    if (running) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  std::string screen;
  if (running) screen = RunCommand(tmux + "capture-pane -p -t mm").out;
  (void)RunCommand(tmux + "kill-server");
  ASSERT_FALSE(running) << "neomutt did not quit; its screen:\n" << screen;
  for (const LocalFile& file : ScanLocal(root_).files) {
    if (file.folder == "INBOX" && file.uid && unread.count(*file.uid) > 0) {
      EXPECT_NE(file.flags.value_or("").find('S'), std::string::npos)
          << "neomutt did not mark " << file.name << " read";
    }
  }

  CommandResult second = Sync();
  ASSERT_EQ(second.exit_code, 0) << Report(second);
  for (const ServerMessage& message : Server()) {
    if (message.folder == "INBOX") {
      EXPECT_TRUE(HasFlag(message, "\\Seen")) << "UID " << message.uid << " is still unread";
    }
  }
  std::vector<std::string> problems = testing::MirrorProblems(Server(), root_);
  EXPECT_TRUE(problems.empty()) << Join(problems);
}

}  // namespace
}  // namespace mailmirror
