// Small file system helpers shared by the store and the sync engine.
#pragma once

#include <cerrno>
#include <string>
#include <string_view>
#include <utility>

#include "mailmirror/status.h"

namespace mailmirror {

// mkdir -p: creates `path` and its missing parents with `mode`; existing
// directories keep theirs. Errors: kIo naming the directory that could not
// be created, or the path when it exists but is not a directory.
Status MakeDirectories(const std::string& path, unsigned mode = 0700);

// Replaces the file at `path` with `text` all at once: writes <path>.tmp
// with `mode` (also when such a file existed with another), fsyncs it when
// `durable`, and renames it over `path`. On error (kIo naming the file)
// `path` is as it was and the temporary file is gone.
Status WriteFileAtomically(const std::string& path, std::string_view text, unsigned mode,
                           bool durable);

// A kIo error "<what>: <strerror(err)>" carrying `err` as os_errno.
Error ErrnoError(const std::string& what, int err);

// Owns a file descriptor; closes it on destruction (where the result no
// longer matters: descriptors read from, or error paths).
class UniqueFd {
 public:
  explicit UniqueFd(int fd = -1) : fd_(fd) {}
  UniqueFd(UniqueFd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  UniqueFd& operator=(UniqueFd&& other) noexcept;
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  ~UniqueFd();
  int get() const { return fd_; }
  // close(2)'s errno, 0 on success. Never retried on EINTR: Linux has
  // released the descriptor by then.
  int Close();
  // Gives up ownership (e.g. to fdopen) and returns the descriptor.
  int Release() { return std::exchange(fd_, -1); }

 private:
  int fd_;
};

// What a directory entry is, for the files a Maildir may hold besides mail.
enum class FileKind { kRegular, kSymlink, kDirectory, kFifo, kSocket, kDevice, kOther };
// "a symbolic link", "a FIFO", ...: for messages naming what was refused.
const char* FileKindName(FileKind kind);
// The kind of a stat(2) mode.
FileKind FileKindOf(unsigned mode);

// Opens `path` for reading only if it is a regular file: a symbolic link as
// its last component is not followed, a FIFO or device is opened without
// waiting for a writer (O_NONBLOCK, cleared again for regular files) and
// the type is checked on the open descriptor, so a rename in between cannot
// substitute something else. Errors: kIo with os_errno ENOENT when the file
// is gone, kNotRegularFile when it is something other than a regular file
// (the message says what), the open(2) errno otherwise.
Result<UniqueFd> OpenRegularFile(const std::string& path);
// The os_errno of OpenRegularFile's refusal of anything but a regular file.
inline constexpr int kNotRegularFile = EINVAL;
inline bool IsNotRegularFile(const Error& error) { return error.os_errno == kNotRegularFile; }

// Checks that every directory from `root` (exclusive) down to `path`
// (inclusive, which must lie lexically inside `root`) is a real directory
// or missing, never a symbolic link: a Maildir folder must not lead out of
// the root. Missing components are fine (they are created later as
// directories). Errors: kIo naming the first symbolic link or non-directory
// component, os_errno ELOOP or ENOTDIR.
Status CheckNoSymlinkBelow(const std::string& root, const std::string& path);

// Whether `inner` is `outer` or lies below it, by whole components
// ("/a/mail2" is not inside "/a/mail"); both normalised (NormalPath).
bool IsSameOrInside(const std::string& inner, const std::string& outer);

// `path` with "." and ".." resolved lexically, duplicate and trailing
// slashes dropped ("/a/b/../c/" -> "/a/c"); empty stays empty.
std::string NormalPath(const std::string& path);

}  // namespace mailmirror
