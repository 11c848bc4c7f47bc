#include "support/run_command.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <vector>

namespace mailmirror::testing {
namespace {

// mailmirror records the Maildir roots it synced into under
// $XDG_STATE_HOME: every test process gets a directory of its own, removed
// at exit, so tests neither see each other's records nor leave any behind.
struct PrivateStateHome {
  PrivateStateHome() {
    std::string pattern = (std::filesystem::temp_directory_path() / "mm-state.XXXXXX").string();
    if (::mkdtemp(pattern.data()) == nullptr) return;
    path = pattern;
    ::setenv("XDG_STATE_HOME", path.c_str(), 1);
  }
  ~PrivateStateHome() {
    std::error_code ignored;
    if (!path.empty()) std::filesystem::remove_all(path, ignored);
  }
  std::string path;
};
PrivateStateHome g_state_home;

using Clock = std::chrono::steady_clock;

void CloseFd(int& fd) {
  if (fd >= 0) {
    close(fd);
    fd = -1;
  }
}

std::string ErrnoText(const char* what) { return std::string(what) + ": " + std::strerror(errno); }

// Writes to a pipe whose reader may be gone without letting SIGPIPE kill the
// test: SIGPIPE is blocked in this thread for the write, and a SIGPIPE that
// the write raised is consumed before the mask is restored. (Changing the
// process-wide disposition would affect other threads.)
ssize_t WriteNoSigpipe(int fd, const char* data, size_t size) {
  sigset_t sigpipe_set;
  sigset_t old_mask;
  sigemptyset(&sigpipe_set);
  sigaddset(&sigpipe_set, SIGPIPE);
  sigset_t pending;
  sigpending(&pending);
  const bool was_pending = sigismember(&pending, SIGPIPE) == 1;
  pthread_sigmask(SIG_BLOCK, &sigpipe_set, &old_mask);
  ssize_t written = write(fd, data, size);
  const int saved_errno = errno;
  if (written < 0 && saved_errno == EPIPE && !was_pending) {
    const timespec no_wait{0, 0};
    while (sigtimedwait(&sigpipe_set, nullptr, &no_wait) < 0 && errno == EINTR) {
    }
  }
  pthread_sigmask(SIG_SETMASK, &old_mask, nullptr);
  errno = saved_errno;
  return written;
}

// Waits for `pid` until `deadline`; kills its process group at the deadline.
// Returns the wait status.
int WaitBounded(pid_t pid, Clock::time_point deadline, bool& timed_out) {
  int status = 0;
  for (;;) {
    pid_t done = waitpid(pid, &status, WNOHANG);
    if (done == pid) return status;
    if (done < 0 && errno != EINTR) return 0;
    if (!timed_out && Clock::now() >= deadline) {
      timed_out = true;
      kill(-pid, SIGKILL);
    }
    usleep(2000);
  }
}

}  // namespace

std::string ShellQuote(std::string_view word) {
  std::string quoted = "'";
  for (char c : word) {
    if (c == '\'') {
      quoted += "'\\''";
    } else {
      quoted += c;
    }
  }
  quoted += '\'';
  return quoted;
}

CommandResult RunCommand(const std::string& command, const RunOptions& options) {
  CommandResult result;
  const bool feed_stdin = !options.stdin_data.empty();

  // [0] read end, [1] write end; all close-on-exec, the child dup2()s the
  // ends it needs onto 0, 1 and 2.
  std::array<int, 2> out_pipe{-1, -1};
  std::array<int, 2> err_pipe{-1, -1};
  std::array<int, 2> in_pipe{-1, -1};
  auto close_all = [&] {
    for (auto* p : {&out_pipe, &err_pipe, &in_pipe}) {
      CloseFd((*p)[0]);
      CloseFd((*p)[1]);
    }
  };
  if (pipe2(out_pipe.data(), O_CLOEXEC) != 0 || pipe2(err_pipe.data(), O_CLOEXEC) != 0) {
    result.err = ErrnoText("pipe2");
    close_all();
    return result;
  }
  if (feed_stdin) {
    if (pipe2(in_pipe.data(), O_CLOEXEC) != 0) {
      result.err = ErrnoText("pipe2");
      close_all();
      return result;
    }
  } else {
    in_pipe[0] = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (in_pipe[0] < 0) {
      result.err = ErrnoText("open /dev/null");
      close_all();
      return result;
    }
  }

  // Everything the child needs is prepared before fork(): after it, only
  // async-signal-safe calls are allowed in a multithreaded process.
  std::vector<char> command_buffer(command.begin(), command.end());
  command_buffer.push_back('\0');
  char sh_name[] = "sh";
  char dash_c[] = "-c";
  char* const argv[] = {sh_name, dash_c, command_buffer.data(), nullptr};

  const pid_t pid = fork();
  if (pid < 0) {
    result.err = ErrnoText("fork");
    close_all();
    return result;
  }
  if (pid == 0) {
    // Own process group, so that a timeout kills the shell and its children.
    setpgid(0, 0);
    // Default signal handling for the command, whatever the test process
    // blocked or ignored (an ignored SIGPIPE would survive exec).
    sigset_t empty;
    sigemptyset(&empty);
    sigprocmask(SIG_SETMASK, &empty, nullptr);
    struct sigaction default_action {};
    default_action.sa_handler = SIG_DFL;
    sigaction(SIGPIPE, &default_action, nullptr);
    if (dup2(in_pipe[0], STDIN_FILENO) < 0 || dup2(out_pipe[1], STDOUT_FILENO) < 0 ||
        dup2(err_pipe[1], STDERR_FILENO) < 0) {
      _exit(127);
    }
    execve("/bin/sh", argv, environ);
    _exit(127);
  }
  // Also set the group from the parent: whichever runs first wins the race
  // with kill(-pid) below.
  setpgid(pid, pid);

  CloseFd(in_pipe[0]);
  CloseFd(out_pipe[1]);
  CloseFd(err_pipe[1]);
  int out_fd = out_pipe[0];
  int err_fd = err_pipe[0];
  int in_fd = in_pipe[1];
  if (in_fd >= 0) fcntl(in_fd, F_SETFL, fcntl(in_fd, F_GETFL) | O_NONBLOCK);
  size_t stdin_written = 0;

  const Clock::time_point deadline = Clock::now() + options.timeout;
  std::array<char, 65536> buffer;
  while (out_fd >= 0 || err_fd >= 0 || in_fd >= 0) {
    const auto remaining =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    if (remaining.count() <= 0) {
      result.timed_out = true;
      kill(-pid, SIGKILL);
      break;
    }
    std::array<pollfd, 3> fds{};
    nfds_t count = 0;
    for (int fd : {out_fd, err_fd}) {
      if (fd >= 0) fds[count++] = pollfd{fd, POLLIN, 0};
    }
    if (in_fd >= 0) fds[count++] = pollfd{in_fd, POLLOUT, 0};
    const int timeout_ms = static_cast<int>(std::min<long long>(remaining.count(), 1000));
    const int ready = poll(fds.data(), count, timeout_ms);
    if (ready < 0) {
      if (errno == EINTR) continue;
      result.err += ErrnoText("poll");
      kill(-pid, SIGKILL);
      break;
    }
    for (nfds_t i = 0; i < count; ++i) {
      const pollfd& entry = fds[i];
      if (entry.revents == 0) continue;
      if (entry.fd == in_fd) {
        if (entry.revents & (POLLERR | POLLHUP)) {
          CloseFd(in_fd);  // the command does not read its input
          continue;
        }
        const std::string& data = options.stdin_data;
        const ssize_t n =
            WriteNoSigpipe(in_fd, data.data() + stdin_written, data.size() - stdin_written);
        if (n > 0) stdin_written += static_cast<size_t>(n);
        if ((n < 0 && errno != EAGAIN && errno != EINTR) || stdin_written == data.size()) {
          CloseFd(in_fd);
        }
        continue;
      }
      const ssize_t n = read(entry.fd, buffer.data(), buffer.size());
      if (n > 0) {
        std::string& sink = entry.fd == out_fd ? result.out : result.err;
        sink.append(buffer.data(), static_cast<size_t>(n));
      } else if (n == 0 || (errno != EINTR && errno != EAGAIN)) {
        if (entry.fd == out_fd) {
          CloseFd(out_fd);
        } else {
          CloseFd(err_fd);
        }
      }
    }
  }
  CloseFd(out_fd);
  CloseFd(err_fd);
  CloseFd(in_fd);

  const int status = WaitBounded(pid, deadline, result.timed_out);
  if (WIFEXITED(status)) {
    result.exit_code = WEXITSTATUS(status);
  } else if (WIFSIGNALED(status)) {
    result.exit_code = 128 + WTERMSIG(status);
  }
  return result;
}

void ForgetSyncedRoots() {
  std::error_code ignored;
  if (!g_state_home.path.empty()) {
    std::filesystem::remove_all(g_state_home.path + "/mailmirror/roots", ignored);
  }
}

}  // namespace mailmirror::testing
