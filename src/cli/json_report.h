// `sync --json`: the run as one JSON object on stdout, for monitoring.
//
//   {"exit_code": 0, "seconds": 1.9, "dry_run": false,
//    "accounts": [{"name": "work", "ok": true, "error": null, "seconds": 1.8,
//                  "moved": 0, "created": [], "skipped": [],
//                  "folders": [{"name": "INBOX", "ok": true, "error": null,
//                               "path": "QRESYNC", "seconds": 0.4,
//                               "fetched": 3, "bytes": 10240, ...}]}]}
//
// Every count of sync::FolderReport appears under its name (see
// mailmirror(1)); names are UTF-8.
#pragma once

#include <string>
#include <vector>

#include "sync/account_sync.h"

namespace mailmirror::cli {

std::string SyncReportJson(const std::vector<sync::AccountReport>& reports, double seconds,
                           int exit_code);

}  // namespace mailmirror::cli
