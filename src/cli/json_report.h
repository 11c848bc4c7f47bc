// `sync --json`: the run as one JSON object on stdout, for monitoring.
//
//   {"exit_code": 0, "error": null, "seconds": 1.9, "dry_run": false,
//    "accounts": [{"name": "work", "ok": true, "error": null, "seconds": 1.8,
//                  "moved": 0, "created": [], "skipped": [],
//                  "folders": [{"name": "INBOX", "ok": true, "error": null,
//                               "path": "QRESYNC", "seconds": 0.4,
//                               "fetched": 3, "bytes": 10240, ...}]}]}
//
// Every count of sync::FolderReport appears under its name (see
// mailmirror(1)); names are UTF-8. The top-level "error" is what stopped
// the run before any account started (a bad config, an unknown account),
// with "accounts" empty.
#pragma once

#include <string>
#include <vector>

#include "migrate/migration.h"
#include "sync/account_sync.h"

namespace mailmirror::cli {

std::string SyncReportJson(const std::vector<sync::AccountReport>& reports, double seconds,
                           int exit_code, const Status& run_status = Status::Ok());

// `migrate --json`:
//
//   {"exit_code": 0, "error": null, "seconds": 2.1, "dry_run": false,
//    "migration": "move", "source": "old", "target": "new",
//    "source_sync": {...one account as in sync --json, or null...},
//    "folders": [{"source": "Sent Messages", "target": "Sent Items",
//                 "mapped_by": "special-use \\Sent", "create": false,
//                 "mirrored": true, "ok": true, "error": null,
//                 "selected": 4, "copied": 3, "present": 1, "skipped": 0,
//                 "skip_reasons": {}, "failed": 0, "failures": [],
//                 "bytes": 8192}]}
struct MigrationRunInfo {
  std::string name;
  std::string source;
  std::string target;
  bool dry_run = false;
  double seconds = 0;
};
std::string MigrationReportJson(const MigrationRunInfo& run, const migrate::MigrationReport* report,
                                const sync::AccountReport* source_sync, int exit_code,
                                const Status& run_status = Status::Ok());

}  // namespace mailmirror::cli
