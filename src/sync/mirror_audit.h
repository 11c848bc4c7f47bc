// `mailmirror verify`: audits an account's mirror without changing either
// side. For every folder the index has synced it compares three things:
// the server's UIDs, sizes and flags (one UID FETCH per folder), the
// index's records, and the Maildir's files. With `deep` it also downloads
// bodies and compares their digest, taken as they would be stored, with the
// local file's.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "mailmirror/config.h"
#include "mailmirror/status.h"

namespace mailmirror::sync {

struct AuditOptions {
  bool deep = false;    // compare message bodies too
  uint32_t sample = 0;  // with deep: this many random messages per folder; 0: all
};

// One difference between the sides.
struct AuditFinding {
  std::string folder;  // local name
  uint32_t uid = 0;    // 0: not about one UID
  std::string file;    // the local file's name, when one is concerned
  std::string what;    // e.g. "flags differ: here S, on the server FS"
};

struct FolderAudit {
  std::string name;     // local name
  uint64_t server = 0;  // messages on the server
  uint64_t local = 0;   // message files in the Maildir
  uint64_t bodies = 0;  // bodies compared (deep)
  Status status;        // the folder could not be audited
};

struct AuditReport {
  const AccountConfig* account = nullptr;
  Status status;  // the account could not be audited (lock, index, login)
  std::vector<FolderAudit> folders;
  std::vector<AuditFinding> findings;
};

// Audits one account on a loop of its own; holds the account's lock
// meanwhile (kTemporary while a sync runs), so that nothing moves under it.
AuditReport AuditAccount(const AccountConfig& account, const AuditOptions& options);

}  // namespace mailmirror::sync
