#include "sync/account_lock.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <ctime>
#include <string>

#include "util/fs.h"
#include "util/strings.h"

namespace mailmirror::sync {
namespace {

// The holder's line ("pid 4242 since 2026-12-08 03:00:00"), printable, or "".
std::string ReadHolder(int fd) {
  char buffer[128];
  ssize_t n = ::pread(fd, buffer, sizeof buffer - 1, 0);
  if (n <= 0) return "";
  std::string text(buffer, static_cast<size_t>(n));
  text = text.substr(0, text.find('\n'));
  return Printable(text, 100);
}

}  // namespace

Result<std::unique_ptr<AccountLock>> AccountLock::Acquire(const std::string& state_dir,
                                                          const std::string& account) {
  Status made = MakeDirectories(state_dir, 0700);
  if (!made.ok()) return made.error();
  std::string path = state_dir + "/lock";
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) {
    return MakeError(ErrorKind::kIo, "cannot open lock file " + path + ": " + std::strerror(errno));
  }
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    int err = errno;
    if (err == EWOULDBLOCK) {
      std::string holder = ReadHolder(fd);
      ::close(fd);
      return MakeError(ErrorKind::kTemporary, "account " + account +
                                                  " is being synced by another mailmirror (" +
                                                  (holder.empty() ? "" : holder + "; ") + "lock " +
                                                  path + "); try again later");
    }
    ::close(fd);
    return MakeError(ErrorKind::kIo, "cannot lock " + path + ": " + std::strerror(err));
  }
  // Who holds it since when, for a run that finds it taken. Best effort:
  // the flock, not this text, is the lock.
  const std::string holder = "pid " + std::to_string(::getpid()) + " since " +
                             FormatLocalTime(std::time(nullptr), "%Y-%m-%d %H:%M:%S") + "\n";
  if (::ftruncate(fd, 0) == 0) (void)!::pwrite(fd, holder.data(), holder.size(), 0);
  return std::unique_ptr<AccountLock>(new AccountLock(fd));
}

AccountLock::~AccountLock() { ::close(fd_); }

}  // namespace mailmirror::sync
