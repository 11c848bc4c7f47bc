// What the last sync of an account did, kept in <state_dir>/last-sync.json
// for `mailmirror status`: when it ended, whether it succeeded, and per
// folder when it last synced completely and how its last attempt ended.
// Written by AccountSync while it holds the account's lock; folders a run
// did not reach keep what earlier runs recorded.
#pragma once

#include <cstdint>
#include <map>
#include <string>

#include "mailmirror/status.h"
#include "sync/account_sync.h"

namespace mailmirror::sync {

struct FolderRun {
  int64_t synced = 0;    // Unix time of the last complete sync; 0: never
  int64_t finished = 0;  // Unix time of the last attempt
  std::string error;     // its error, empty when it succeeded
};

struct RunRecord {
  int64_t finished = 0;                      // Unix time the last run ended; 0: none recorded
  std::string error;                         // the run's first error, empty when all went well
  std::map<std::string, FolderRun> folders;  // by local name
};

std::string RunRecordPath(const std::string& state_dir);

// The record, or an empty one when there is none; kIo for an unreadable or
// malformed file (it names the path).
Result<RunRecord> ReadRunRecord(const std::string& state_dir);

// Merges `report` (a run that ended at `now`) into the stored record and
// writes it atomically.
Status WriteRunRecord(const std::string& state_dir, const AccountReport& report, int64_t now);

}  // namespace mailmirror::sync
