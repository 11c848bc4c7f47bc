#include "sync/append_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "util/strings.h"

namespace mailmirror::sync {

Result<std::optional<FileForAppend>> ReadForAppend(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) return std::optional<FileForAppend>();
    return MakeError(ErrorKind::kIo, "reading " + path + ": " + std::strerror(errno));
  }
  FileForAppend file;
  struct stat st {};
  if (::fstat(fd, &st) == 0) {
    file.mtime = static_cast<int64_t>(st.st_mtime);
    file.crlf.reserve(static_cast<size_t>(st.st_size) + static_cast<size_t>(st.st_size) / 32);
  }
  char buffer[65536];
  char previous = 0;
  for (;;) {
    ssize_t n = ::read(fd, buffer, sizeof buffer);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      int error = errno;
      (void)::close(fd);  // read-only: nothing to lose
      return MakeError(ErrorKind::kIo, "reading " + path + ": " + std::strerror(error));
    }
    if (n == 0) break;
    for (ssize_t i = 0; i < n; ++i) {
      if (buffer[i] == '\n' && previous != '\r') file.crlf += '\r';
      file.crlf += buffer[i];
      previous = buffer[i];
    }
  }
  (void)::close(fd);
  return std::optional<FileForAppend>(std::move(file));
}

void RemoveTuidLines(std::string& crlf) {
  size_t pos = 0;
  while (pos < crlf.size()) {
    size_t end = crlf.find("\r\n", pos);
    end = end == std::string::npos ? crlf.size() : end + 2;
    if (end - pos <= 2) return;  // the blank line that ends the header
    if (EqualsIgnoreCase(std::string_view(crlf).substr(pos, 7), "X-TUID:")) {
      crlf.erase(pos, end - pos);
    } else {
      pos = end;
    }
  }
}

}  // namespace mailmirror::sync
