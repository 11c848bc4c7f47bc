#include "sync/append_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "util/fs.h"
#include "util/strings.h"

namespace mailmirror::sync {

Result<std::optional<FileForAppend>> ReadForAppend(const std::string& path) {
  Result<UniqueFd> opened = OpenRegularFile(path);
  if (!opened.ok()) {
    if (opened.error().os_errno == ENOENT) return std::optional<FileForAppend>();
    return opened.error();
  }
  const int fd = opened->get();
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
    if (n < 0) return ErrnoError("reading " + path, errno);
    if (n == 0) break;
    for (ssize_t i = 0; i < n; ++i) {
      if (buffer[i] == '\n' && previous != '\r') file.crlf += '\r';
      file.crlf += buffer[i];
      previous = buffer[i];
    }
  }
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
