// libFuzzer target: the modified UTF-7 mailbox name codec (RFC 3501
// §5.1.3). Decoding arbitrary bytes must not crash; whatever decodes must
// encode back to a name that decodes to the same UTF-8, and whatever UTF-8
// encodes must decode back to itself.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>

#include "imap/mailbox_name.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using mailmirror::imap::DecodeMailboxName;
  using mailmirror::imap::EncodeMailboxName;
  std::string_view input(reinterpret_cast<const char*>(data), size);
  if (std::optional<std::string> utf8 = DecodeMailboxName(input)) {
    std::optional<std::string> again = EncodeMailboxName(*utf8);
    if (!again) std::abort();  // decoded text is valid UTF-8
    std::optional<std::string> back = DecodeMailboxName(*again);
    if (!back || *back != *utf8) std::abort();
  }
  if (std::optional<std::string> wire = EncodeMailboxName(input)) {
    std::optional<std::string> back = DecodeMailboxName(*wire);
    if (!back || *back != input) std::abort();
  }
  return 0;
}
