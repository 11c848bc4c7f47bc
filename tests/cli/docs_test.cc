// The manual pages against the program (issue 9): mailmirror(1) documents
// every command and option the binary accepts, mailmirror.conf(5) every
// key the config parser knows, and `cmake --install` puts both where
// `man -l` reads them.
#include <gtest/gtest.h>

#include <fstream>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "support/run_command.h"
#include "support/sync_checks.h"

namespace mailmirror {
namespace {

using testing::CommandResult;
using testing::Report;
using testing::RunCommand;
using testing::ShellQuote;

std::string Manual(const std::string& name) {
  return testing::ReadFile(std::string(MAILMIRROR_SOURCE_DIR) + "/man/" + name);
}

// The subcommands `mailmirror --help` lists.
std::vector<std::string> Subcommands() {
  const CommandResult help = RunCommand(ShellQuote(MAILMIRROR_BINARY) + " --help");
  std::vector<std::string> names;
  const size_t start = help.out.find("Subcommands:\n");
  if (start == std::string::npos) return names;
  std::istringstream lines(help.out.substr(start + 13));
  std::string line;
  while (std::getline(lines, line)) {
    std::smatch match;
    if (std::regex_search(line, match, std::regex("^  ([a-z]+) "))) names.push_back(match[1]);
  }
  return names;
}

// The long options in a --help text ("--dry-run", ...).
std::set<std::string> LongOptions(const std::string& help) {
  std::set<std::string> options;
  const std::regex option("(^|[ ,])(--[a-z][a-z-]*)");
  for (auto it = std::sregex_iterator(help.begin(), help.end(), option);
       it != std::sregex_iterator(); ++it) {
    options.insert((*it)[2]);
  }
  options.erase("--help");
  return options;
}

// "--dry-run" as troff writes it: "\-\-dry\-run".
std::string Troff(const std::string& text) {
  std::string out;
  for (const char c : text) {
    if (c == '-') out += '\\';
    out += c;
  }
  return out;
}

TEST(DocsTest, ManualDocumentsEveryCommandAndOption) {
  const std::string page = Manual("mailmirror.1");
  const std::vector<std::string> commands = Subcommands();
  ASSERT_GE(commands.size(), 8u);
  const std::set<std::string> sync_options =
      LongOptions(RunCommand(ShellQuote(MAILMIRROR_BINARY) + " sync --help").out);
  EXPECT_EQ(sync_options.count("--dry-run"), 1u);  // the parsing works
  EXPECT_EQ(sync_options.count("--shard"), 1u);
  for (const std::string& command : commands) {
    EXPECT_TRUE(std::regex_search(page, std::regex("\\n\\.BR? " + command + "[ \\n]")))
        << "mailmirror(1) has no entry for " << command;
    const CommandResult help =
        RunCommand(ShellQuote(MAILMIRROR_BINARY) + " " + command + " --help");
    ASSERT_EQ(help.exit_code, 0) << Report(help);
    for (const std::string& option : LongOptions(help.out)) {
      EXPECT_NE(page.find(Troff(option)), std::string::npos)
          << "mailmirror(1) does not mention " << option << " of " << command;
    }
  }
  for (const char* code : {"64", "69", "70", "73", "74", "75", "76", "77", "78"}) {
    EXPECT_TRUE(std::regex_search(page, std::regex(std::string("\\n\\.B ") + code + "\\n")))
        << "EXIT STATUS lacks " << code;
  }
}

TEST(DocsTest, ConfigManualDocumentsEveryKey) {
  // The parser names every key it knows when it meets one it does not.
  char pattern[] = "/tmp/mailmirror-docs-test.XXXXXX";
  ASSERT_NE(::mkdtemp(pattern), nullptr);
  const std::string config = std::string(pattern) + "/config.toml";
  std::ofstream(config) << "[accounts.a]\nno_such_key = 1\n";
  const CommandResult run =
      RunCommand(ShellQuote(MAILMIRROR_BINARY) + " -c " + ShellQuote(config) + " status");
  RunCommand("rm -rf " + ShellQuote(pattern));
  std::smatch match;
  ASSERT_TRUE(std::regex_search(run.err, match, std::regex("known keys: ([a-z_, ]+)\\)")))
      << Report(run);
  std::vector<std::string> keys = {"max_accounts"};
  std::istringstream list(match[1].str());
  for (std::string key; std::getline(list, key, ',');)
    keys.push_back(key.substr(key.find_first_not_of(' ')));
  ASSERT_GE(keys.size(), 30u);
  EXPECT_EQ(keys.back(), "gmail_all_mail");
  const std::string page = Manual("mailmirror.conf.5");
  for (const std::string& key : keys) {
    // An entry's tag line: ".B key", ".BR key ..." or a shared ".BR a ", " key".
    EXPECT_TRUE(std::regex_search(page, std::regex("\\n\\.(B|BR) ([^\\n]*[ \"])?" + key + "\\b")))
        << "mailmirror.conf(5) has no entry for " << key;
  }
}

TEST(DocsTest, InstallPutsTheBinaryAndReadableManualsInPlace) {
  ASSERT_EQ(RunCommand("command -v man").exit_code, 0) << "man is missing (apt-get install man-db)";
  char pattern[] = "/tmp/mailmirror-install-test.XXXXXX";
  ASSERT_NE(::mkdtemp(pattern), nullptr);
  const std::string prefix = pattern;
  const CommandResult install = RunCommand("cmake --install " + ShellQuote(MAILMIRROR_BUILD_DIR) +
                                           " --prefix " + ShellQuote(prefix));
  ASSERT_EQ(install.exit_code, 0) << Report(install);
  EXPECT_EQ(RunCommand(ShellQuote(prefix + "/bin/mailmirror") + " --version").exit_code, 0);
  for (const std::string& page :
       {std::string("man1/mailmirror.1"), std::string("man5/mailmirror.conf.5")}) {
    const CommandResult shown =
        RunCommand("MANWIDTH=100 man -l " + ShellQuote(prefix + "/share/man/" + page) + " | cat");
    EXPECT_EQ(shown.exit_code, 0) << Report(shown);
    EXPECT_NE(shown.out.find("mailmirror"), std::string::npos) << page << "\n" << shown.out;
    EXPECT_EQ(shown.err, "") << page;
  }
  const CommandResult manual = RunCommand(
      "MANWIDTH=100 man -l " + ShellQuote(prefix + "/share/man/man1/mailmirror.1") + " | cat");
  for (const char* section : {"SYNOPSIS", "COMMANDS", "OPTIONS", "EXIT STATUS", "EXAMPLES"}) {
    EXPECT_NE(manual.out.find(section), std::string::npos) << section;
  }
  RunCommand("rm -rf " + ShellQuote(prefix));
}

}  // namespace
}  // namespace mailmirror
