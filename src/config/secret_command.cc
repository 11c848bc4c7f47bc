// Secret commands (password_cmd, oauth_token_cmd): run through /bin/sh -c
// with no descriptor but stdin, stdout and stderr, their output bounded,
// and their text never repeated in a message (it may hold a secret).
#include <fcntl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <string>

#include "mailmirror/config.h"

namespace mailmirror {
namespace {

// More than any password or token: a command printing this much is broken
// (`yes`, say), and reading all of it would only use up memory.
constexpr size_t kMaxSecretOutput = 64 * 1024;

// Closes every descriptor from `first` up. Runs in a forked child: only
// async-signal-safe calls (another thread may have held malloc's lock).
void CloseDescriptorsFrom(int first, long max_fd) {
#ifdef SYS_close_range
  if (::syscall(SYS_close_range, first, ~0U, 0) == 0) return;
#endif
  // Kernels before 5.9: every possible number (listing /proc/self/fd would
  // allocate).
  for (long fd = first; fd < max_fd; ++fd) (void)::close(static_cast<int>(fd));
}

// The child of RunSecretCommand: /bin/sh -c with stdin and stderr inherited
// (the command may prompt), stdout the pipe, and no other descriptor. Most
// descriptors are O_CLOEXEC, but LMDB opens its files without it.
[[noreturn]] void ExecSecretCommand(char* const argv[], int write_fd, long max_fd) {
  if (write_fd == STDOUT_FILENO) {
    (void)::fcntl(write_fd, F_SETFD, 0);
  } else if (::dup2(write_fd, STDOUT_FILENO) < 0) {
    ::_exit(127);
  }
  CloseDescriptorsFrom(STDERR_FILENO + 1, max_fd);
  // Blocked or ignored signals survive exec; the command expects defaults.
  sigset_t none;
  (void)sigemptyset(&none);
  (void)sigprocmask(SIG_SETMASK, &none, nullptr);
  (void)signal(SIGPIPE, SIG_DFL);
  ::execve("/bin/sh", argv, environ);
  ::_exit(127);
}

}  // namespace

Result<std::string> RunSecretCommand(const AccountConfig& account, const std::string& key,
                                     const std::string& command) {
  // Messages never show the command: it may hold a secret itself.
  const std::string what = key + " of account " + account.name;
  auto fail = [](const std::string& text) { return MakeError(ErrorKind::kConfig, text); };
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) {
    return fail("cannot run " + what + ": " + std::strerror(errno));
  }
  std::string shell_command = command;
  char sh[] = "sh";
  char dash_c[] = "-c";
  char* const argv[] = {sh, dash_c, shell_command.data(), nullptr};
  const long max_fd = ::sysconf(_SC_OPEN_MAX) > 0 ? ::sysconf(_SC_OPEN_MAX) : 1024;
  const pid_t pid = ::fork();
  if (pid < 0) {
    const int err = errno;
    ::close(fds[0]);
    ::close(fds[1]);
    return fail("cannot run " + what + ": " + std::strerror(err));
  }
  if (pid == 0) ExecSecretCommand(argv, fds[1], max_fd);
  ::close(fds[1]);

  std::string output;
  bool too_long = false;
  int read_error = 0;
  char buffer[4096];
  while (true) {
    const size_t room = kMaxSecretOutput + 1 - output.size();
    const ssize_t n = ::read(fds[0], buffer, std::min(sizeof buffer, room));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      read_error = n < 0 ? errno : 0;
      break;
    }
    output.append(buffer, static_cast<size_t>(n));
    if (output.size() > kMaxSecretOutput) {
      too_long = true;
      break;
    }
  }
  ::close(fds[0]);
  // It may never stop by itself (`yes`).
  if (too_long || read_error != 0) (void)::kill(pid, SIGKILL);
  int status = 0;
  pid_t reaped = 0;
  while ((reaped = ::waitpid(pid, &status, 0)) < 0 && errno == EINTR) {
  }
  const int wait_error = errno;
  if (too_long) return fail(what + " printed more than 64 KiB; expected one line");
  if (read_error != 0) {
    return fail("cannot read the output of " + what + ": " + std::strerror(read_error));
  }
  if (reaped < 0) return fail("cannot wait for " + what + ": " + std::strerror(wait_error));
  if (WIFSIGNALED(status)) {
    return fail(what + " was killed by signal " + std::to_string(WTERMSIG(status)));
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    return fail(what + " failed (exit status " + std::to_string(WEXITSTATUS(status)) + ")");
  }
  std::string line = output.substr(0, output.find('\n'));
  if (!line.empty() && line.back() == '\r') line.pop_back();
  if (line.empty()) return fail(what + " printed nothing");
  return line;
}

}  // namespace mailmirror
