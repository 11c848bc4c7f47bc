// How message bytes are stored: the server's CRLF line ends become LF, across
// chunk boundaries; a lone CR (not followed by LF) is kept as is. Shared by
// the writer of downloaded messages and by `verify --deep`, which must hash
// a fetched body exactly as it would have been stored.
#pragma once

#include <cstddef>
#include <cstring>
#include <string_view>

#include "mailmirror/status.h"

namespace mailmirror::store {

class CrlfToLf {
 public:
  // Passes the stored form of `chunk` to `emit(const char* data, size_t
  // size)`, which returns a Status; stops at its first error.
  template <typename Emit>
  Status Feed(std::string_view chunk, Emit&& emit) {
    const char* p = chunk.data();
    const char* end = p + chunk.size();
    if (p == end) return Status::Ok();
    // A CR that ended the previous chunk: its fate depends on this byte.
    if (pending_cr_) {
      pending_cr_ = false;
      const bool crlf = *p == '\n';
      if (crlf) ++p;
      if (Status s = emit(crlf ? "\n" : "\r", 1); !s.ok()) return s;
    }
    while (p < end) {
      const auto* cr = static_cast<const char*>(std::memchr(p, '\r', static_cast<size_t>(end - p)));
      if (cr == nullptr) return emit(p, static_cast<size_t>(end - p));
      if (Status s = emit(p, static_cast<size_t>(cr - p)); !s.ok()) return s;
      if (cr + 1 == end) {
        pending_cr_ = true;
        return Status::Ok();
      }
      const bool crlf = cr[1] == '\n';
      p = crlf ? cr + 2 : cr + 1;
      if (Status s = emit(crlf ? "\n" : "\r", 1); !s.ok()) return s;
    }
    return Status::Ok();
  }

  // The end of the message: a CR still held is stored as is.
  template <typename Emit>
  Status End(Emit&& emit) {
    if (!pending_cr_) return Status::Ok();
    pending_cr_ = false;
    return emit("\r", 1);
  }

 private:
  bool pending_cr_ = false;  // the last byte seen was a CR, not yet emitted
};

}  // namespace mailmirror::store
