// `mailmirror sync [ACCOUNT...]`: pull every selected folder of each account
// into its Maildir, accounts in parallel on one event loop.
#pragma once

#include <ostream>
#include <vector>

#include "mailmirror/config.h"
#include "sync/account_sync.h"

namespace mailmirror::cli {

struct SyncOutput {
  std::ostream* out = nullptr;  // progress and summaries; null with -q
  sync::SyncOptions options;
  size_t max_accounts = 4;  // accounts running at once; the rest wait their turn
  // Draw live progress lines on `out`, which must be a terminal.
  bool progress = false;
};

// Runs the sync and returns one report per account, in the given order.
// Folder lines are printed as folders finish, summaries at the end.
std::vector<sync::AccountReport> SyncAccounts(const std::vector<const AccountConfig*>& accounts,
                                              const SyncOutput& output);

// "1.2 MiB", "512 B": sizes for people.
std::string HumanBytes(uint64_t bytes);

}  // namespace mailmirror::cli
