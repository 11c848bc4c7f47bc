#include "util/fs.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

namespace mailmirror {

Status MakeDirectories(const std::string& path, unsigned mode) {
  for (size_t slash = path.find('/', 1);; slash = path.find('/', slash + 1)) {
    std::string prefix = path.substr(0, slash);
    if (!prefix.empty() && prefix.back() != '/' && ::mkdir(prefix.c_str(), mode) != 0 &&
        errno != EEXIST) {
      return MakeError(ErrorKind::kIo,
                       "creating directory " + prefix + ": " + std::strerror(errno));
    }
    if (slash == std::string::npos) break;
  }
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
    return MakeError(ErrorKind::kIo, path + ": not a directory");
  }
  return Status::Ok();
}

Status WriteFileAtomically(const std::string& path, std::string_view text, unsigned mode,
                           bool durable) {
  const std::string tmp = path + ".tmp";
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
  if (fd < 0) return MakeError(ErrorKind::kIo, "cannot write " + tmp + ": " + std::strerror(errno));
  int err = ::fchmod(fd, mode) == 0 ? 0 : errno;  // a leftover file kept its old mode
  for (size_t done = 0; err == 0 && done < text.size();) {
    ssize_t n = ::write(fd, text.data() + done, text.size() - done);
    if (n > 0) {
      done += static_cast<size_t>(n);
    } else if (n < 0 && errno != EINTR) {
      err = errno;
    }
  }
  if (err == 0 && durable && ::fsync(fd) != 0) err = errno;
  if (::close(fd) != 0 && err == 0) err = errno;
  if (err == 0 && ::rename(tmp.c_str(), path.c_str()) != 0) err = errno;
  if (err != 0) {
    ::unlink(tmp.c_str());
    return MakeError(ErrorKind::kIo, "cannot write " + path + ": " + std::strerror(err));
  }
  return Status::Ok();
}

Error ErrnoError(const std::string& what, int err) {
  Error error(ErrorKind::kIo, what + ": " + std::strerror(err));
  error.os_errno = err;
  return error;
}

UniqueFd& UniqueFd::operator=(UniqueFd&& other) noexcept {
  if (this != &other) {
    (void)Close();
    fd_ = std::exchange(other.fd_, -1);
  }
  return *this;
}

UniqueFd::~UniqueFd() { (void)Close(); }

int UniqueFd::Close() {
  int fd = std::exchange(fd_, -1);
  if (fd < 0) return 0;
  return ::close(fd) == 0 ? 0 : errno;
}

const char* FileKindName(FileKind kind) {
  switch (kind) {
    case FileKind::kRegular:
      return "a regular file";
    case FileKind::kSymlink:
      return "a symbolic link";
    case FileKind::kDirectory:
      return "a directory";
    case FileKind::kFifo:
      return "a FIFO";
    case FileKind::kSocket:
      return "a socket";
    case FileKind::kDevice:
      return "a device";
    case FileKind::kOther:
      break;
  }
  return "not a regular file";
}

FileKind FileKindOf(unsigned mode) {
  if (S_ISREG(mode)) return FileKind::kRegular;
  if (S_ISLNK(mode)) return FileKind::kSymlink;
  if (S_ISDIR(mode)) return FileKind::kDirectory;
  if (S_ISFIFO(mode)) return FileKind::kFifo;
  if (S_ISSOCK(mode)) return FileKind::kSocket;
  if (S_ISCHR(mode) || S_ISBLK(mode)) return FileKind::kDevice;
  return FileKind::kOther;
}

Result<UniqueFd> OpenRegularFile(const std::string& path) {
  int raw = -1;
  do {
    raw = ::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
  } while (raw < 0 && errno == EINTR);
  if (raw < 0) {
    int err = errno;
    // O_NOFOLLOW's answer for a symbolic link; a socket cannot be opened.
    if (err == ELOOP || err == ENXIO) {
      Error error(ErrorKind::kIo,
                  path + " is " +
                      FileKindName(err == ELOOP ? FileKind::kSymlink : FileKind::kSocket) +
                      ", not a message file");
      error.os_errno = kNotRegularFile;
      return error;
    }
    return ErrnoError("opening " + path, err);
  }
  UniqueFd fd(raw);
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) return ErrnoError("examining " + path, errno);
  if (!S_ISREG(st.st_mode)) {
    Error error(ErrorKind::kIo,
                path + " is " + FileKindName(FileKindOf(st.st_mode)) + ", not a message file");
    error.os_errno = kNotRegularFile;
    return error;
  }
  // Reads of a regular file never block anyway; clear the flag so that no
  // reader is surprised by EAGAIN on a file system that honours it.
  int flags = ::fcntl(fd.get(), F_GETFL);
  if (flags >= 0) (void)::fcntl(fd.get(), F_SETFL, flags & ~O_NONBLOCK);
  return fd;
}

Status CheckNoSymlinkBelow(const std::string& root, const std::string& path) {
  const std::string base = NormalPath(root);
  const std::string full = NormalPath(path);
  if (base.empty() || full == base) return Status::Ok();
  if (!IsSameOrInside(full, base)) {
    return ErrnoError(full + " is outside the Maildir root " + base, EXDEV);
  }
  for (size_t slash = full.find('/', base.size() + 1);; slash = full.find('/', slash + 1)) {
    const std::string prefix = full.substr(0, slash);
    struct stat st {};
    if (::lstat(prefix.c_str(), &st) != 0) {
      if (errno == ENOENT) return Status::Ok();  // created later, as a directory
      return ErrnoError("examining " + prefix, errno);
    }
    if (S_ISLNK(st.st_mode)) {
      Error error(ErrorKind::kIo, prefix +
                                      " is a symbolic link; mailmirror reads and writes only "
                                      "inside the Maildir root, so the folder is not synced");
      error.os_errno = ELOOP;
      return error;
    }
    if (!S_ISDIR(st.st_mode)) return ErrnoError(prefix, ENOTDIR);
    if (slash == std::string::npos) break;
  }
  return Status::Ok();
}

bool IsSameOrInside(const std::string& inner, const std::string& outer) {
  const std::filesystem::path in(inner);
  const std::filesystem::path out(outer);
  auto i = in.begin();
  for (auto o = out.begin(); o != out.end(); ++o, ++i) {
    if (i == in.end() || *i != *o) return false;
  }
  return true;
}

std::string NormalPath(const std::string& path) {
  if (path.empty()) return path;
  std::string out = std::filesystem::path(path).lexically_normal().string();
  while (out.size() > 1 && out.back() == '/') out.pop_back();
  return out;
}

}  // namespace mailmirror
