#include "sync/account_lock.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

namespace mailmirror::sync {

Status MakeDirectories(const std::string& path, unsigned mode) {
  std::string partial;
  size_t pos = 0;
  while (pos != std::string::npos) {
    pos = path.find('/', pos + 1);
    partial = path.substr(0, pos);
    if (partial.empty()) continue;
    if (::mkdir(partial.c_str(), mode) != 0 && errno != EEXIST) {
      return MakeError(ErrorKind::kIo,
                       "cannot create directory " + partial + ": " + std::strerror(errno));
    }
  }
  struct stat info {};
  if (::stat(path.c_str(), &info) != 0 || !S_ISDIR(info.st_mode)) {
    return MakeError(ErrorKind::kIo, path + " is not a directory");
  }
  return Status::Ok();
}

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
