#include "support/alice_test.h"

#include <filesystem>
#include <fstream>

#include "support/sync_checks.h"

namespace mailmirror::testing {

void AliceTest::SetUp() {
  server_ = DovecotServer::Start();
  ASSERT_NE(server_, nullptr);
  ASSERT_TRUE(server_->Seed("alice"));
  dir_ = server_->dir() + "/local";
  std::filesystem::create_directories(dir_);
  root_ = dir_ + "/mail";
  config_ = dir_ + "/config.toml";
  std::ofstream(config_) << AliceAccount(*server_, root_);
  // No warning about a password others could read.
  std::filesystem::permissions(
      config_, std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);
}

std::string AliceTest::Command(const std::string& arguments) const {
  return ShellQuote(MAILMIRROR_BINARY) + " -c " + ShellQuote(config_) + " " + arguments;
}

CommandResult AliceTest::Run(const std::string& arguments, const std::string& prefix) const {
  RunOptions options;
  options.timeout = std::chrono::seconds(60);
  return RunCommand(prefix + Command(arguments), options);
}

CommandResult AliceTest::RunOnTerminal(const std::string& arguments) const {
  RunOptions options;
  options.timeout = std::chrono::seconds(60);
  return RunCommand("TERM=xterm script -qfec " + ShellQuote(Command(arguments)) + " /dev/null",
                    options);
}

}  // namespace mailmirror::testing
