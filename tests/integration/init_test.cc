// `mailmirror init` (issue 9): writes a configuration that loads and syncs,
// asks on a terminal without echoing the password, refuses to replace a
// file without --force, and checks the login.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <memory>
#include <string>

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

// Starts with no configuration: init writes it, in directories it creates.
class InitTest : public testing::AliceTest {
 protected:
  void SetUp() override {
    AliceTest::SetUp();
    fs::remove(config_);
    config_ = dir_ + "/conf/mailmirror/config.toml";
  }

  // `mailmirror -c CONFIG ARGUMENTS` with `stdin_text` on a pipe: stdin is
  // never a terminal here, whatever ctest was started from.
  CommandResult Init(const std::string& arguments, const std::string& stdin_text = "") {
    return Run(arguments, "printf %s " + ShellQuote(stdin_text) + " | ");
  }

  // init for alice on the fixture, every value given.
  std::string ServerOptions(const std::string& password_cmd) const {
    return "--account fixture --host 127.0.0.1 --port " + std::to_string(server_->imaps_port()) +
           " --ca-file " + ShellQuote(server_->ca_file()) + " --user alice --password-cmd " +
           ShellQuote(password_cmd) + " --maildir " + ShellQuote(dir_ + "/mail");
  }
};

TEST_F(InitTest, WritesAConfigThatChecksListsAndSyncs) {
  CommandResult init = Init("init " + ServerOptions("echo alice-secret"));
  ASSERT_EQ(init.exit_code, 0) << Report(init);
  EXPECT_EQ(fs::status(config_).permissions() & fs::perms::all,
            fs::perms::owner_read | fs::perms::owner_write);
  EXPECT_NE(init.out.find("Logged in. `mailmirror sync fixture` would mirror 7 folders into " +
                          dir_ + "/mail:"),
            std::string::npos)
      << Report(init);
  for (const char* folder : {"INBOX", "Archive/2023/Q1", "Entwürfe", "Sent Items"}) {
    EXPECT_NE(init.out.find(folder), std::string::npos) << folder << "\n" << init.out;
  }
  const std::string text = testing::ReadFile(config_);
  EXPECT_NE(text.find("[accounts.fixture]\n"), std::string::npos) << text;
  EXPECT_NE(text.find("password_cmd = \"echo alice-secret\""), std::string::npos) << text;
  EXPECT_NE(text.find("# folders = "), std::string::npos) << "commented: " << text;

  // The file is what sync reads: no editing needed.
  CommandResult sync = Run("sync");
  ASSERT_EQ(sync.exit_code, 0) << Report(sync);
  EXPECT_NE(sync.out.find("fixture: 7 folders, 17 new messages"), std::string::npos)
      << Report(sync);
}

TEST_F(InitTest, NeverReplacesAFileWithoutForce) {
  fs::create_directories(fs::path(config_).parent_path());
  std::ofstream(config_) << "# mine\n";
  CommandResult refused = Init("init --no-check " + ServerOptions("echo x"));
  EXPECT_EQ(refused.exit_code, 73) << Report(refused);
  EXPECT_NE(refused.err.find("cannot create " + config_ + ": it exists"), std::string::npos)
      << Report(refused);
  EXPECT_EQ(testing::ReadFile(config_), "# mine\n");

  CommandResult forced = Init("init --force --no-check " + ServerOptions("echo x"));
  EXPECT_EQ(forced.exit_code, 0) << Report(forced);
  EXPECT_NE(testing::ReadFile(config_).find("[accounts.fixture]"), std::string::npos);
}

TEST_F(InitTest, WithoutATerminalMissingValuesAreUsageErrors) {
  CommandResult no_host = Init("init --user alice --password-cmd true");
  EXPECT_EQ(no_host.exit_code, 64) << Report(no_host);
  EXPECT_NE(no_host.err.find("init needs --provider or --host"), std::string::npos)
      << Report(no_host);
  CommandResult no_user = Init("init --provider yahoo --password-cmd true");
  EXPECT_EQ(no_user.exit_code, 64) << Report(no_user);
  EXPECT_NE(no_user.err.find("init needs --user"), std::string::npos) << Report(no_user);
  // stdin is a pipe, not a terminal: the password is not read from it.
  CommandResult no_password = Init("init --provider yahoo --user me", "secret\n");
  EXPECT_EQ(no_password.exit_code, 64) << Report(no_password);
  EXPECT_NE(no_password.err.find("--password-cmd"), std::string::npos) << Report(no_password);
  CommandResult bad_provider = Init("init --provider yahooo --user me --password-cmd true");
  EXPECT_EQ(bad_provider.exit_code, 64) << Report(bad_provider);
  EXPECT_NE(bad_provider.err.find("known: office365, outlook, gmail"), std::string::npos)
      << Report(bad_provider);
  EXPECT_FALSE(fs::exists(config_));
}

TEST_F(InitTest, AWrongPasswordExits77AndKeepsTheFile) {
  CommandResult init = Init("init " + ServerOptions("echo wrong"));
  EXPECT_EQ(init.exit_code, 77) << Report(init);
  EXPECT_NE(init.err.find("the configuration is kept in " + config_), std::string::npos)
      << Report(init);
  EXPECT_TRUE(fs::exists(config_));
}

TEST_F(InitTest, OnATerminalItAsksAndNeverEchoesThePassword) {
  ASSERT_EQ(RunCommand("command -v script").exit_code, 0) << "script(1) is missing (util-linux)";
  // Answers typed one at a time, after each question had time to appear
  // (the terminal echoes what arrives while echo is on).
  const std::string answers =
      "(sleep 1; printf 'alice\\n'; sleep 1; printf 'alice-secret\\n'; sleep 1)";
  const std::string init = Command(
      "init --account fixture --host 127.0.0.1 --port " + std::to_string(server_->imaps_port()) +
      " --ca-file " + ShellQuote(server_->ca_file()) + " --maildir " + ShellQuote(dir_ + "/mail"));
  RunOptions options;
  options.timeout = std::chrono::seconds(60);
  CommandResult result = RunCommand(
      answers + " | TERM=xterm script -qfec " + ShellQuote(init) + " /dev/null", options);
  ASSERT_EQ(result.exit_code, 0) << Report(result);
  EXPECT_NE(result.out.find("User name"), std::string::npos) << result.out;
  EXPECT_NE(result.out.find("Password (not shown): "), std::string::npos) << result.out;
  EXPECT_NE(result.out.find("alice"), std::string::npos) << "the user name is echoed";
  EXPECT_EQ(result.out.find("alice-secret"), std::string::npos) << "password echoed:\n"
                                                                << result.out;
  EXPECT_NE(result.out.find("Logged in."), std::string::npos) << result.out;
  EXPECT_NE(testing::ReadFile(config_).find("password = \"alice-secret\""), std::string::npos);
}

TEST_F(InitTest, OAuthProvidersAskNoPasswordAndSayWhatComesNext) {
  CommandResult init = Init(
      "init --provider office365 --user me@contoso.example --account work "
      "--oauth-client-id 00000000-1111-2222-3333-444444444444");
  ASSERT_EQ(init.exit_code, 0) << Report(init);
  EXPECT_NE(init.out.find("run `mailmirror auth work`"), std::string::npos) << Report(init);
  const std::string text = testing::ReadFile(config_);
  EXPECT_EQ(text.find("password"), std::string::npos) << text;
  // It loads: the account is listed by `providers`-aware config parsing.
  CommandResult status = RunCommand(Command("status work"));
  EXPECT_EQ(status.exit_code, 0) << Report(status);
}

}  // namespace
}  // namespace mailmirror
