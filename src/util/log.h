// Diagnostics on stderr, filtered by the verbosity chosen on the command
// line (-q, -v, -vv, -vvv), or appended to a log file (--log-file).
// Single-threaded: configure before the loop.
#pragma once

#include <functional>
#include <string>
#include <string_view>

#include "mailmirror/status.h"

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

// From now on every enabled line goes to `path` (appended, created with
// mode 0600), each with the local time; stderr keeps the errors only, so
// that cron still mails them. Errors: kIo naming the file.
Status SetLogFile(const std::string& path);

// `before` runs before a line is written to stderr and `after` once it is:
// the progress display erases and redraws itself around it. Null: none.
void SetLogHooks(std::function<void()> before, std::function<void()> after);

// Writes "mailmirror: <message>" to stderr (and the log file) when `level`
// is enabled.
void Log(LogLevel level, std::string_view message);

}  // namespace mailmirror
