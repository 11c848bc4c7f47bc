#include "cli/progress_display.h"

#include <sys/ioctl.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>

#include "cli/sync_command.h"

namespace mailmirror::cli {
namespace {

std::string Duration(double seconds) {
  const long long total = std::llround(seconds);
  char text[32];
  if (total >= 3600) {
    (void)std::snprintf(text, sizeof text, "%lld:%02lld:%02lld", total / 3600, total / 60 % 60,
                        total % 60);
  } else {
    (void)std::snprintf(text, sizeof text, "%lld:%02lld", total / 60, total % 60);
  }
  return text;
}

}  // namespace

std::string ProgressLine(const std::string& account, const sync::SyncProgress& progress) {
  const double seconds = progress.seconds;
  std::string line = account + ": ";
  if (!progress.listed) return line + "connecting and listing folders...";
  line += std::to_string(progress.folders_done) + "/" + std::to_string(progress.folders_total) +
          " folders, " + std::to_string(progress.messages_done) + "/" +
          std::to_string(progress.messages_expected) + " messages, " +
          HumanBytes(progress.bytes_done);
  if (progress.bytes_expected > 0) line += "/" + HumanBytes(progress.bytes_expected);
  if (seconds < 1 || progress.bytes_done == 0) return line;
  const double rate = static_cast<double>(progress.bytes_done) / seconds;
  line += ", " + HumanBytes(static_cast<uint64_t>(rate)) + "/s";
  // ETA by bytes where the server told the sizes, else by messages.
  double left = 0;
  if (progress.bytes_expected > 0) {
    left = static_cast<double>(progress.bytes_expected - progress.bytes_done) / rate;
  } else if (progress.messages_done > 0) {
    left = static_cast<double>(progress.messages_expected - progress.messages_done) * seconds /
           static_cast<double>(progress.messages_done);
  }
  if (left >= 1) line += ", ETA " + Duration(left);
  return line;
}

void ProgressDisplay::ToBlockStart() {
  if (drawn_ == 0) return;
  out_ << '\r';
  if (drawn_ > 1) out_ << "\x1b[" << drawn_ - 1 << 'A';
}

void ProgressDisplay::Draw(const std::vector<std::string>& lines) {
  ToBlockStart();
  out_ << "\x1b[J";  // erase to the end of the screen
  for (size_t i = 0; i < lines.size(); ++i) {
    if (i > 0) out_ << '\n';
    // Cut by bytes at a character boundary (UTF-8 continuation bytes are
    // 10xxxxxx); one column spare so that the cursor never wraps.
    std::string_view line = lines[i];
    if (columns_ > 1 && line.size() > columns_ - 1) {
      size_t cut = columns_ - 1;
      while (cut > 0 && (static_cast<unsigned char>(line[cut]) & 0xC0) == 0x80) --cut;
      line = line.substr(0, cut);
    }
    out_ << line;
  }
  out_.flush();
  drawn_ = lines.size();
}

void ProgressDisplay::Clear() {
  if (drawn_ == 0) return;
  ToBlockStart();
  out_ << "\x1b[J";
  out_.flush();
  drawn_ = 0;
}

size_t TerminalColumns() {
  winsize size{};
  if (::ioctl(STDOUT_FILENO, TIOCGWINSZ, &size) == 0 && size.ws_col > 0) return size.ws_col;
  return 80;
}

}  // namespace mailmirror::cli
