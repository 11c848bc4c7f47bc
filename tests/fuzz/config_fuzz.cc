// libFuzzer target: the config loader on arbitrary text. Every input is
// either a Config or a kConfig error naming the file; nothing may crash.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "mailmirror/config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string text(reinterpret_cast<const char*>(data), size);
  mailmirror::Result<mailmirror::Config> config = mailmirror::ParseConfig(text, "fuzz.toml");
  if (!config.ok() && (config.error().kind != mailmirror::ErrorKind::kConfig ||
                       config.error().message.rfind("fuzz.toml", 0) != 0)) {
    std::abort();
  }
  return 0;
}
