// Diagnostics on stderr, filtered by the verbosity chosen on the command
// line (-q, -v, -vv, -vvv). Single-threaded: set the level before the loop.
#pragma once

#include <string_view>

namespace mailmirror {

enum class LogLevel {
  kError = 0,  // always shown, even with -q
  kWarning = 1,
  kInfo = 2,   // -v
  kDebug = 3,  // -vv
  kTrace = 4,  // -vvv: protocol lines, secrets masked
};

void SetLogLevel(LogLevel level);
LogLevel GetLogLevel();
inline bool LogEnabled(LogLevel level) { return level <= GetLogLevel(); }

// Writes "mailmirror: <message>" to stderr when `level` is enabled.
void Log(LogLevel level, std::string_view message);

}  // namespace mailmirror
