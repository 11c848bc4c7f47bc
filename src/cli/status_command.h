// `mailmirror status [ACCOUNT...]`: per account, a table of its folders as
// the index knows them (local and server message counts, unread, local
// changes not yet synced) with when each last synced and how. Reads the
// index, the Maildir's directory listings and <state_dir>/last-sync.json:
// no network unless --remote asks the server for its counts now.
#pragma once

#include <cstdint>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include "mailmirror/config.h"
#include "mailmirror/status.h"
#include "store/index.h"
#include "sync/run_record.h"

namespace mailmirror::cli {

struct FolderStatus {
  std::string name;                // local name
  uint64_t local = 0;              // messages in the index
  std::optional<uint32_t> server;  // at the last sync, or now with --remote
  uint64_t unread = 0;
  // Local changes the next sync will send: new, deleted or re-flagged
  // files; nullopt when the folder's directory is gone.
  std::optional<uint64_t> pending;
  sync::FolderRun run;
  // Local files kept here without upload, and why (no message, empty, NUL
  // bytes, too large, refused by the server).
  std::vector<store::RefusedFile> refused;
};

struct AccountStatus {
  const AccountConfig* account = nullptr;
  Status status;        // the index could not be read, or --remote failed
  bool synced = false;  // an index exists
  sync::RunRecord record;
  std::vector<FolderStatus> folders;  // INBOX first, then by name
};

std::vector<AccountStatus> CollectStatus(const std::vector<const AccountConfig*>& accounts,
                                         bool remote);

void PrintStatus(const std::vector<AccountStatus>& statuses, std::ostream& out);

}  // namespace mailmirror::cli
