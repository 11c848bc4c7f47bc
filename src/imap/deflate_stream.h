// The two compressed byte streams of an IMAP connection after COMPRESS
// DEFLATE (RFC 4978): raw DEFLATE (RFC 1951, no zlib header) each way, one
// continuous stream per direction for the rest of the connection.
//
// Threading: one connection, one thread.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "mailmirror/status.h"

namespace mailmirror::imap {

class DeflateStream {
 public:
  using Sink = std::function<Status(std::string_view)>;

  // kInternal when zlib cannot set up its state (out of memory).
  static Result<std::unique_ptr<DeflateStream>> Create();
  ~DeflateStream();
  DeflateStream(const DeflateStream&) = delete;
  DeflateStream& operator=(const DeflateStream&) = delete;

  // Appends the compressed form of `plain` to `out`, flushed so that the
  // peer can decode every byte at once (RFC 4978 §4: a command must not sit
  // in the compressor waiting for more).
  Status Compress(std::string_view plain, std::string* out);

  // Decompresses what the peer sent, handing the output to `sink` in chunks
  // of bounded size as it is produced; a sink error stops and is returned.
  // A corrupt stream is a kProtocol error, and so is data after its end.
  Status Decompress(std::string_view compressed, const Sink& sink);

 private:
  struct Impl;
  explicit DeflateStream(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace mailmirror::imap
