// The command line's behaviour around the sync (issue 9): the live progress
// lines on a terminal and nowhere else, --log-file, -q on every command
// that succeeds, and --help on every command.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <memory>
#include <regex>
#include <sstream>
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
using testing::Report;
using testing::RunCommand;
using testing::RunOptions;
using testing::ShellQuote;

using CliOptionsTest = testing::AliceTest;

TEST_F(CliOptionsTest, ProgressIsDrawnOnATerminalAndNowhereElse) {
  ASSERT_EQ(RunCommand("command -v script").exit_code, 0) << "script(1) is missing (util-linux)";
  CommandResult live = RunOnTerminal("sync");
  ASSERT_EQ(live.exit_code, 0) << Report(live);
  const std::string& out = live.out;
  // The first line while logging in, then the folders' count as they end,
  // each drawn over the last ("\r", up, erase to the end of the screen).
  EXPECT_NE(out.find("test: connecting and listing folders..."), std::string::npos) << out;
  EXPECT_TRUE(std::regex_search(out, std::regex("test: [1-6]/7 folders, [0-9]+/[0-9]+ messages")))
      << out;
  EXPECT_NE(out.find("\x1b[J"), std::string::npos) << out;
  // Bytes against the total the server told (STATUS=SIZE).
  EXPECT_TRUE(std::regex_search(out, std::regex("messages, [0-9.]+ KiB/[0-9.]+ KiB"))) << out;
  // It ends with the summary, the live lines erased before it.
  const std::regex summary(
      "\x1b\\[Jtest: 7 folders, 17 new messages \\([^)]*\\) in [0-9.]+ s\r\n$");
  EXPECT_TRUE(std::regex_search(out, summary)) << out;
  // Every folder line is there, on a line of its own.
  EXPECT_NE(out.find("test: Archive/2023/Q1: 1 new message"), std::string::npos) << out;

  // Not a terminal: the same lines, no control sequence.
  fs::remove_all(root_);
  testing::ForgetSyncedRoots();
  CommandResult piped = Run("sync");
  ASSERT_EQ(piped.exit_code, 0) << Report(piped);
  EXPECT_EQ(piped.out.find('\x1b'), std::string::npos) << piped.out;
  EXPECT_EQ(piped.out.find('\r'), std::string::npos) << piped.out;
  EXPECT_EQ(piped.out.find("connecting"), std::string::npos) << piped.out;

  // -q and --json draw nothing on a terminal either.
  fs::remove_all(root_);
  testing::ForgetSyncedRoots();
  CommandResult quiet = RunOnTerminal("-q sync");
  ASSERT_EQ(quiet.exit_code, 0) << Report(quiet);
  EXPECT_EQ(quiet.out, "");
  CommandResult json = RunOnTerminal("sync --json");
  ASSERT_EQ(json.exit_code, 0) << Report(json);
  EXPECT_EQ(json.out.find('\x1b'), std::string::npos) << json.out;
  EXPECT_EQ(json.out.substr(0, 1), "{") << json.out;
}

TEST_F(CliOptionsTest, LogFileHasTimedLinesNamingAccountAndFolderAndStderrKeepsErrors) {
  const std::string log = dir_ + "/mailmirror.log";
  CommandResult synced = Run("-vv --log-file " + ShellQuote(log) + " sync");
  ASSERT_EQ(synced.exit_code, 0) << Report(synced);
  EXPECT_EQ(synced.err, "") << "warnings and debug lines belong in the log file";
  EXPECT_EQ(fs::status(log).permissions() & fs::perms::all,
            fs::perms::owner_read | fs::perms::owner_write);
  std::string text = testing::ReadFile(log);
  std::istringstream lines(text);
  std::string line;
  size_t count = 0;
  const std::regex timed("^[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2} mailmirror: .*");
  while (std::getline(lines, line)) {
    ++count;
    EXPECT_TRUE(std::regex_match(line, timed)) << line;
  }
  EXPECT_GT(count, 5u) << text;
  EXPECT_NE(text.find("mailmirror: account test: folder INBOX: done in "), std::string::npos)
      << text;
  EXPECT_NE(text.find("mailmirror: account test: folder Archive/2023: done in "), std::string::npos)
      << text;

  // An error reaches both: the file, and stderr for cron to mail.
  std::ofstream(config_, std::ios::app)
      << "[accounts.broken]\nhost = \"127.0.0.1\"\nport = " << server_->imaps_port()
      << "\nca_file = \"" << server_->ca_file()
      << "\"\nuser = \"alice\"\npassword = \"wrong\"\n"
         "maildir = \""
      << dir_ << "/broken\"\n";
  CommandResult failed = Run("--log-file " + ShellQuote(log) + " sync broken");
  EXPECT_EQ(failed.exit_code, 77) << Report(failed);
  EXPECT_NE(failed.err.find("mailmirror: account broken: "), std::string::npos) << Report(failed);
  text = testing::ReadFile(log);
  EXPECT_NE(text.find("mailmirror: account broken: "), std::string::npos) << text;

  // A log file that cannot be opened is an I/O error, before anything runs.
  CommandResult unwritable = Run("--log-file " + ShellQuote(dir_ + "/no/such/dir/log") + " sync");
  EXPECT_EQ(unwritable.exit_code, 74) << Report(unwritable);
  EXPECT_NE(unwritable.err.find("log file " + dir_ + "/no/such/dir/log"), std::string::npos)
      << Report(unwritable);
  // --json still prints its object for monitoring.
  CommandResult json = Run("--log-file " + ShellQuote(dir_ + "/no/such/dir/log") + " sync --json");
  EXPECT_EQ(json.exit_code, 74) << Report(json);
  EXPECT_NE(json.out.find("\"exit_code\":74"), std::string::npos) << Report(json);
}

TEST_F(CliOptionsTest, QuietCommandsPrintNothingOnSuccess) {
  for (const char* command : {"-q sync", "-q sync --dry-run", "-q verify", "-q verify --deep",
                              "-q repair", "-q auth --help"}) {
    CommandResult result = Run(command);
    EXPECT_EQ(result.exit_code, 0) << command << "\n" << Report(result);
    if (std::string(command) != "-q auth --help") {
      EXPECT_EQ(result.out, "") << command;
    }
    EXPECT_EQ(result.err, "") << command;
  }
}

TEST_F(CliOptionsTest, EveryCommandHasHelp) {
  for (const char* command :
       {"list", "sync", "status", "verify", "auth", "providers", "repair", "init"}) {
    CommandResult help = Run(std::string(command) + " --help");
    EXPECT_EQ(help.exit_code, 0) << command << "\n" << Report(help);
    EXPECT_NE(help.out.find("Usage"), std::string::npos) << command << "\n" << help.out;
  }
}

}  // namespace
}  // namespace mailmirror
