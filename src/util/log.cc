#include "util/log.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <string>

#include "util/strings.h"

namespace mailmirror {
namespace {

LogLevel g_level = LogLevel::kWarning;
std::FILE* g_file = nullptr;  // --log-file, kept open for the process
std::function<void()> g_before;
std::function<void()> g_after;

void WriteTo(std::FILE* stream, const std::string& line) {
  // Nothing sensible is left to do when the log itself fails.
  (void)std::fwrite(line.data(), 1, line.size(), stream);
}

}  // namespace

void SetLogLevel(LogLevel level) { g_level = level; }
LogLevel GetLogLevel() { return g_level; }

Status SetLogFile(const std::string& path) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) {
    return MakeError(ErrorKind::kIo, "log file " + path + ": " + std::strerror(errno));
  }
  std::FILE* file = ::fdopen(fd, "a");
  if (file == nullptr) {
    const int err = errno;
    ::close(fd);
    return MakeError(ErrorKind::kIo, "log file " + path + ": " + std::strerror(err));
  }
  (void)std::setvbuf(file, nullptr, _IOLBF, 0);  // whole lines, as they come
  if (g_file != nullptr) (void)std::fclose(g_file);
  g_file = file;
  return Status::Ok();
}

void SetLogHooks(std::function<void()> before, std::function<void()> after) {
  g_before = std::move(before);
  g_after = std::move(after);
}

void Log(LogLevel level, std::string_view message) {
  if (!LogEnabled(level)) return;
  std::string line = "mailmirror: ";
  line += EscapeControls(message);  // one line, whatever file or server names it holds
  line += '\n';
  if (g_file != nullptr) {
    WriteTo(g_file, FormatLocalTime(std::time(nullptr), "%Y-%m-%d %H:%M:%S ") + line);
    if (level != LogLevel::kError) return;
  }
  if (g_before) g_before();
  WriteTo(stderr, line);
  if (g_after) g_after();
}

}  // namespace mailmirror
