// Running a shell command from a test and capturing what it prints.
//
// Tests use this to run the mailmirror binary, scripts/dovecot-fixture and
// tools such as `openssl s_client`. Not for production code: it blocks the
// calling thread until the command ends.
#pragma once

#include <chrono>
#include <string>
#include <string_view>

namespace mailmirror::testing {

struct RunOptions {
  // Written to the command's standard input, which is then closed. Empty:
  // stdin is /dev/null.
  std::string stdin_data;
  // The whole process group of the command is killed with SIGKILL after this
  // long; the result then has timed_out set.
  std::chrono::milliseconds timeout{std::chrono::seconds(60)};
};

struct CommandResult {
  // The exit status; 128 + N when killed by signal N (as a shell reports
  // it); -1 when the command could not be started at all (`err` says why).
  int exit_code = -1;
  std::string out;  // everything written to stdout
  std::string err;  // everything written to stderr
  bool timed_out = false;
};

// Runs `command` with /bin/sh -c in its own process group, with stdout and
// stderr captured separately, and waits until it exits (bounded by
// options.timeout). Thread-compatible: concurrent calls from different
// threads are fine; it does not change the process's signal dispositions.
// A daemon started by the command must not keep stdout/stderr open (redirect
// them), or the call waits for the timeout.
CommandResult RunCommand(const std::string& command, const RunOptions& options = {});

// Quotes `word` for /bin/sh so that it reaches the command as one argument,
// unchanged: ShellQuote("it's") == "'it'\\''s'".
std::string ShellQuote(std::string_view word);

// Forgets the Maildir roots this test process's mailmirror runs synced
// into (each test binary has a private $XDG_STATE_HOME), so that a test may
// delete a root and sync into it afresh.
void ForgetSyncedRoots();

}  // namespace mailmirror::testing
