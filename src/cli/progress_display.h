// The live progress of `sync` on a terminal: one line per running account
// (folders done/total, messages and bytes downloaded/expected, rate, ETA),
// redrawn in place below the lines printed so far. Used only when stdout
// is a terminal; nothing of it reaches a pipe or a file.
#pragma once

#include <chrono>
#include <ostream>
#include <string>
#include <vector>

#include "sync/account_sync.h"

namespace mailmirror::cli {

// "work: 3/12 folders, 1234/20000 messages, 45.2/310.0 MiB, 12.3 MiB/s,
// ETA 0:21".
std::string ProgressLine(const std::string& account, const sync::SyncProgress& progress);

class ProgressDisplay {
 public:
  // `columns`: the terminal's width; longer lines are cut so that none
  // wraps (which would break redrawing in place).
  ProgressDisplay(std::ostream& out, size_t columns) : out_(out), columns_(columns) {}

  // Replaces the block drawn last with `lines`.
  void Draw(const std::vector<std::string>& lines);
  // Erases the block, leaving the cursor where it began: call before
  // printing anything else, and at the end.
  void Clear();

 private:
  void ToBlockStart();

  std::ostream& out_;
  size_t columns_;
  size_t drawn_ = 0;  // lines of the block on the screen
};

// The width of the terminal on stdout, or 80 when it cannot be told.
size_t TerminalColumns();

}  // namespace mailmirror::cli
