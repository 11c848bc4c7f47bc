#include "util/log.h"

#include <cstdio>
#include <string>

namespace mailmirror {
namespace {
LogLevel g_level = LogLevel::kWarning;
}  // namespace

void SetLogLevel(LogLevel level) { g_level = level; }
LogLevel GetLogLevel() { return g_level; }

void Log(LogLevel level, std::string_view message) {
  if (!LogEnabled(level)) return;
  std::string line = "mailmirror: ";
  line += message;
  line += '\n';
  // Nothing sensible is left to do when stderr itself fails.
  (void)std::fwrite(line.data(), 1, line.size(), stderr);
}

}  // namespace mailmirror
