// A test fixture for the command-line tests: a private Dovecot with alice's
// standard mail (17 messages in 7 folders), and in its directory a config
// (mode 0600) for her account "test" mirroring into <dir>/local/mail.
#pragma once

#include <gtest/gtest.h>

#include <memory>
#include <string>

#include "support/dovecot_fixture.h"
#include "support/run_command.h"

namespace mailmirror::testing {

class AliceTest : public ::testing::Test {
 protected:
  void SetUp() override;

  // The shell command `mailmirror -c CONFIG ARGUMENTS`.
  std::string Command(const std::string& arguments) const;
  // Runs it (60 s at most), after `prefix` (e.g. "flock FILE ").
  CommandResult Run(const std::string& arguments, const std::string& prefix = "") const;
  // Runs it with stdout on a pseudo-terminal (script(1)), TERM=xterm.
  CommandResult RunOnTerminal(const std::string& arguments) const;

  std::unique_ptr<DovecotServer> server_;
  std::string dir_;     // <server dir>/local
  std::string root_;    // the Maildir root
  std::string config_;  // the config file
};

}  // namespace mailmirror::testing
