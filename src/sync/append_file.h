// Reading a stored message for APPEND: uploads of new local messages
// (two-way sync) and migrations to another account.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "mailmirror/status.h"

namespace mailmirror::sync {

// A message file read for APPEND: its bytes with LF line ends turned into
// CRLF (RFC 5322 wants CRLF; Maildir stores LF), and its modification time,
// which is the message's arrival time for Maildir readers.
struct FileForAppend {
  std::string crlf;
  int64_t mtime = 0;
};

// The file at `path`; nullopt when it is gone (a reader renamed or removed
// it since it was listed). Errors: kIo.
Result<std::optional<FileForAppend>> ReadForAppend(const std::string& path);

// Removes the X-TUID header lines mbsync adds to the messages it stores
// (see AddedHeaderBytes) from a message read for APPEND: a copy sent
// elsewhere gets the server's bytes, which the index's digest describes.
void RemoveTuidLines(std::string& crlf);

}  // namespace mailmirror::sync
