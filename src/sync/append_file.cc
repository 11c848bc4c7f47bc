#include "sync/append_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "util/fs.h"
#include "util/strings.h"

namespace mailmirror::sync {
namespace {

// Appends `bytes` to `out` with each LF not preceded by CR turned into CRLF;
// `previous` carries the last byte across calls. A lone CR stays as it is.
void AppendCrlf(const char* bytes, size_t size, char& previous, std::string* out) {
  for (size_t i = 0; i < size; ++i) {
    if (bytes[i] == '\n' && previous != '\r') *out += '\r';
    *out += bytes[i];
    previous = bytes[i];
  }
}

}  // namespace

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
    AppendCrlf(buffer, static_cast<size_t>(n), previous, &file.crlf);
  }
  return std::optional<FileForAppend>(std::move(file));
}

Result<std::optional<std::unique_ptr<AppendFile>>> AppendFile::Open(const std::string& path) {
  Result<UniqueFd> opened = OpenRegularFile(path);
  if (!opened.ok()) {
    if (opened.error().os_errno == ENOENT) return std::optional<std::unique_ptr<AppendFile>>();
    return opened.error();
  }
  std::unique_ptr<AppendFile> file(new AppendFile(path, std::move(opened).value()));
  struct stat st {};
  if (::fstat(file->fd_.get(), &st) != 0) return ErrnoError("examining " + path, errno);
  file->mtime_ = static_cast<int64_t>(st.st_mtime);
  char buffer[65536];
  char previous = 0;
  for (;;) {
    ssize_t n = ::read(file->fd_.get(), buffer, sizeof buffer);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return ErrnoError("reading " + path, errno);
    if (n == 0) break;
    for (ssize_t i = 0; i < n; ++i) {
      if (buffer[i] == '\n' && previous != '\r') ++file->crlf_size_;
      if (buffer[i] == '\0') file->has_nul_ = true;
      previous = buffer[i];
    }
    file->crlf_size_ += static_cast<uint64_t>(n);
    file->file_size_ += static_cast<uint64_t>(n);
  }
  return std::optional<std::unique_ptr<AppendFile>>(std::move(file));
}

Status AppendFile::Read(size_t max, std::string* out) {
  // Each byte read may become two: read half of what fits.
  char buffer[32768];
  const size_t want = std::max<size_t>(1, std::min(sizeof buffer, max / 2));
  ssize_t n = 0;
  do {
    n = ::pread(fd_.get(), buffer, want, static_cast<off_t>(offset_));
  } while (n < 0 && errno == EINTR);
  if (n < 0) return ErrnoError("reading " + path_, errno);
  if (n == 0 || offset_ + static_cast<uint64_t>(n) > file_size_) {
    return MakeError(ErrorKind::kIo, path_ + " changed while it was being uploaded");
  }
  offset_ += static_cast<uint64_t>(n);
  const size_t before = out->size();
  AppendCrlf(buffer, static_cast<size_t>(n), previous_, out);
  produced_ += out->size() - before;
  if (produced_ > crlf_size_ || (offset_ == file_size_ && produced_ != crlf_size_)) {
    return MakeError(ErrorKind::kIo, path_ + " changed while it was being uploaded");
  }
  return Status::Ok();
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
