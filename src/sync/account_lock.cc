#include "sync/account_lock.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

#include "util/fs.h"

namespace mailmirror::sync {

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
    ::close(fd);
    if (err == EWOULDBLOCK) {
      return MakeError(ErrorKind::kTemporary, "account " + account +
                                                  " is being synced by another mailmirror "
                                                  "(lock " +
                                                  path + "); try again later");
    }
    return MakeError(ErrorKind::kIo, "cannot lock " + path + ": " + std::strerror(err));
  }
  return std::unique_ptr<AccountLock>(new AccountLock(fd));
}

AccountLock::~AccountLock() { ::close(fd_); }

}  // namespace mailmirror::sync
