// Helpers shared by the `mailmirror sync` integration tests
// (tests/integration/sync_test.cc and incremental_test.cc): reading files,
// running the binary as a child process that can be killed or measured,
// scanning the local Maildir tree, the Maildir flag letters a server message
// must have, and counting from Dovecot's log what a run downloaded.
//
// Not for production code. Threading: the free functions are
// thread-compatible; a Child may be used from one thread at a time.
#pragma once

#include <sys/resource.h>
#include <sys/types.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "support/dovecot_fixture.h"
#include "support/run_command.h"

namespace mailmirror::testing {

// --- Small helpers -------------------------------------------------------------

// The whole content of the file at `path`; "" if it cannot be read.
std::string ReadFile(const std::string& path);

// `d` in seconds.
double Seconds(std::chrono::steady_clock::duration d);

// `text` if at most `max` bytes, else its first and last max/2 bytes.
std::string Excerpt(const std::string& text, size_t max = 3000);

// At most `max` problems, one per line (indented), and how many more.
std::string Join(const std::vector<std::string>& problems, size_t max = 40);

// --- A child process we can kill or measure --------------------------------------

struct ChildExit {
  int exit_code = -1;  // 128 + N when killed by signal N
  bool timed_out = false;
  long max_rss_kb = 0;  // peak resident set size (ru_maxrss)
  std::chrono::steady_clock::duration elapsed{};
};

class Child {
 public:
  // Runs `command` with /bin/sh -c "exec COMMAND" in its own process group,
  // stdout and stderr to files.
  Child(const std::string& command, const std::string& out_path, const std::string& err_path);
  // Kills the process group and reaps the child if it is still running.
  ~Child();
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;

  bool started() const { return pid_ > 0; }
  pid_t pid() const { return pid_; }

  // Sends SIGKILL to the child's process group (unless already reaped).
  void Kill();

  // True once the child has exited (reaps it).
  bool Exited();

  // Waits at most `timeout`, then kills the group and reaps it.
  ChildExit Wait(std::chrono::steady_clock::duration timeout);

  std::string out() const { return ReadFile(out_path_); }
  std::string err() const { return ReadFile(err_path_); }

 private:
  void Record(int status, const rusage& usage);

  std::string out_path_;
  std::string err_path_;
  std::chrono::steady_clock::time_point start_;
  pid_t pid_ = -1;
  bool reaped_ = false;
  ChildExit exit_;
};

// --- The local Maildir tree ---------------------------------------------------------

struct LocalFile {
  std::string folder;  // relative path under the root, "/"-separated
  std::string subdir;  // "cur" or "new"
  std::string name;
  std::string path;
  std::string stem;  // name before ",U="
  std::optional<uint32_t> uid;
  std::optional<std::string> flags;  // letters after ":2,"
};

struct LocalTree {
  std::set<std::string> folders;
  std::vector<LocalFile> files;
  std::vector<std::string> tmp_files;
};

// Every Maildir folder under `root` ("(root)" for the root itself; not
// .mailmirror or .notmuch) with the files in cur/ and new/ (sorted by path)
// and those in tmp/.
LocalTree ScanLocal(const std::string& root);

// Maildir flag letters for the server's flags, in ASCII order: the system
// flags, and P for the keyword $Forwarded.
std::string ExpectedLetters(const std::vector<std::string>& flags);

// How the Maildir at `root` differs from a mirror of `server` (every
// message exactly once, under its UID, with its flags and bytes, and no
// other file), one line per problem; empty when it is a mirror.
std::vector<std::string> MirrorProblems(const std::vector<ServerMessage>& server,
                                        const std::string& root);

// --- The server's log: what a run downloaded -------------------------------------------

struct FetchStats {
  int logins = 0;
  int sessions_ended = 0;
  long body_count = 0;
  long body_bytes = 0;
};

// The size of the server's log now (0 if it cannot be read), as an offset
// for FetchesSince.
size_t LogSize(const DovecotServer& server);

// Sums body_count and body_bytes over the sessions of `user` that logged in
// after `offset` in the log, waiting (at most 10 s) until each has ended.
FetchStats FetchesSince(const DovecotServer& server, size_t offset, const std::string& user);

// --- Configuration and tools -------------------------------------------------------

// The [accounts.test] table for alice on `server` (implicit TLS, its CA)
// with `maildir`, one key per line; callers append more keys.
std::string AliceAccount(const DovecotServer& server, const std::string& maildir);

// The shell command running doveadm for `user` as `dovecot-fixture` does: no
// IMAP session, the same index and mod-sequences as an IMAP STORE or EXPUNGE.
std::string DoveadmCommand(const DovecotServer& server, const std::string& user,
                           const std::string& arguments);

// Writes a notmuch config at `path` indexing `mail_root` into `database`
// (created), ignoring the state directory.
void WriteNotmuchConfig(const std::string& path, const std::string& database,
                        const std::string& mail_root, bool synchronize_flags);

// --- Running the binary -------------------------------------------------------------

// The shell command for `mailmirror -c CONFIG FLAGS sync`.
std::string SyncCommand(const std::string& config, const std::string& flags = "");

// Exit status, stdout and stderr (excerpts) of a run, for failure messages.
std::string Report(const CommandResult& result);

}  // namespace mailmirror::testing
