// libFuzzer target: Maildir file names as readers and other tools leave
// them. Parsing must not crash, and a parsed name written back with
// MakeMaildirName must parse to the same stem, UID, flags and other letters.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>

#include "store/maildir.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using mailmirror::store::MaildirName;
  using mailmirror::store::MakeMaildirName;
  using mailmirror::store::ParseMaildirName;
  std::string_view input(reinterpret_cast<const char*>(data), size);
  std::optional<MaildirName> name = ParseMaildirName(input);
  if (!name) return 0;
  std::string written = MakeMaildirName(name->stem, name->uid, name->flags, name->other_letters);
  std::optional<MaildirName> again = ParseMaildirName(written);
  if (!again || again->stem != name->stem || again->uid != name->uid ||
      again->flags != name->flags) {
    std::abort();
  }
  return 0;
}
