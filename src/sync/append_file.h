// Reading a stored message for APPEND: uploads of new local messages
// (two-way sync) and migrations to another account.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "imap/command.h"
#include "mailmirror/status.h"
#include "util/fs.h"

namespace mailmirror::sync {

// A message file read for APPEND: its bytes with LF line ends turned into
// CRLF (RFC 5322 wants CRLF; Maildir stores LF), and its modification time,
// which is the message's arrival time for Maildir readers.
struct FileForAppend {
  std::string crlf;
  int64_t mtime = 0;
};

// A stored message streamed into an APPEND in bounded memory: opened once
// (regular files only), measured in one pass (its size with CRLF line ends,
// whether it holds NUL bytes), then read again in pieces with LF turned
// into CRLF as the connection takes them. A file that changes in between
// fails the upload (Read), never sends other bytes than announced.
class AppendFile final : public imap::LiteralSource {
 public:
  // nullopt when the file is gone. Errors: kIo (kNotRegularFile for
  // anything but a regular file).
  static Result<std::optional<std::unique_ptr<AppendFile>>> Open(const std::string& path);

  uint64_t size() const override { return crlf_size_; }
  Status Read(size_t max, std::string* out) override;
  bool has_nul() const { return has_nul_; }
  int64_t mtime() const { return mtime_; }

 private:
  AppendFile(std::string path, UniqueFd fd) : path_(std::move(path)), fd_(std::move(fd)) {}

  std::string path_;
  UniqueFd fd_;
  uint64_t crlf_size_ = 0;
  uint64_t file_size_ = 0;
  bool has_nul_ = false;
  int64_t mtime_ = 0;
  uint64_t offset_ = 0;  // of the next byte of the file to read
  uint64_t produced_ = 0;
  char previous_ = 0;  // the last byte read: a CR before LF stays one
};

// The file at `path`; nullopt when it is gone (a reader renamed or removed
// it since it was listed). Errors: kIo.
Result<std::optional<FileForAppend>> ReadForAppend(const std::string& path);

// Removes the X-TUID header lines mbsync adds to the messages it stores
// (see AddedHeaderBytes) from a message read for APPEND: a copy sent
// elsewhere gets the server's bytes, which the index's digest describes.
void RemoveTuidLines(std::string& crlf);

}  // namespace mailmirror::sync
