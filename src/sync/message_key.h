// What tells one stored message from another by content: header fields
// read from a message's header block, and the key that recognises a message
// across a renumbering, between another tool's mirror and the server, or
// between two servers (migrations).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "imap/session.h"
#include "mailmirror/status.h"
#include "store/line_ends.h"

struct XXH3_state_s;

namespace mailmirror::sync {

// The value of the header field `name` in `header` (CRLF or LF line ends,
// up to the blank line that ends the block), unfolded, with each run of
// blanks as one space, trimmed; empty when absent.
std::string HeaderField(std::string_view header, std::string_view name);

// The header block of a stored message (at most its first 256 KiB); empty
// when the file cannot be read.
std::string HeaderOfFile(const std::string& path);

// What identifies a message across a renumbering, or between another
// tool's mirror and the server: its Message-ID; for a message without one,
// its size with CRLF line ends (as RFC822.SIZE counts) and its Date, From
// and Subject. Not its arrival time: other tools leave the file's mtime at
// the time they downloaded it.
std::string MatchKey(std::string_view header, uint64_t crlf_size);

// MatchKey of the stored message at `path`: its size is the server's as
// the index recorded it, when known, else the file's with CRLF line ends
// less the X-TUID lines.
std::string FileMatchKey(const std::string& path, std::optional<uint64_t> recorded_size);

// The bytes (CRLF line ends) of the X-TUID header lines in `header`: mbsync
// adds one to every message it stores, so its files are larger than the
// server's copy by exactly that line.
uint64_t AddedHeaderBytes(std::string_view header);

// XXH3-64 of the file at `path` without the X-TUID header line mbsync adds
// to each message it stores (such a file is a faithful copy); nullopt when
// it cannot be read. Equals the index's digest for files mailmirror wrote.
std::optional<uint64_t> DigestWithoutTuid(const std::string& path);

// The digest (XXH3-64) a message fetched from a server would have once
// stored (CRLF as LF): to compare a server's copy with a stored file
// without storing it. Feed one body at a time.
class StoredDigest {
 public:
  StoredDigest();
  ~StoredDigest();
  StoredDigest(const StoredDigest&) = delete;
  StoredDigest& operator=(const StoredDigest&) = delete;

  void Begin();
  void Feed(std::string_view chunk);
  uint64_t Finish();

 private:
  XXH3_state_s* state_;
  store::CrlfToLf line_ends_;
};

// A FetchSink that takes the stored digest of each body fetched; the
// subclass reads it in OnMessage, which follows the body of its message.
class BodyDigestSink : public imap::FetchSink {
 public:
  Status OnBodyBegin(uint32_t seq, uint64_t size) override;
  Status OnBodyData(std::string_view chunk) override;
  Status OnBodyEnd() override;

 protected:
  uint64_t body_digest() const { return body_digest_; }

 private:
  StoredDigest digest_;
  uint64_t body_digest_ = 0;
};

}  // namespace mailmirror::sync
