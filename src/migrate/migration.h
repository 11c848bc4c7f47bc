// `mailmirror migrate`: copies the mail of one configured account into
// another through the source's local mirror, which the caller syncs first.
// Each source folder the migration selects is mapped to a target folder
// (folder_mapping.h), its messages filtered (message_filter.h), and those
// the target lacks are APPENDed there (folder_copy.h) on up to
// `connections` sessions to the target, one folder per session. Copies are
// recorded in the source account's index under the target's identity, so
// a rerun copies only what is new.
#pragma once

#include <string>
#include <vector>

#include "mailmirror/config.h"
#include "mailmirror/status.h"
#include "migrate/folder_copy.h"

namespace mailmirror::migrate {

struct MigrateOptions {
  bool dry_run = false;  // map, filter and count; write nothing anywhere
  // The source's folders as the sync just listed them; null: list them.
  const std::vector<imap::MailboxInfo>* source_listing = nullptr;
};

struct MigrationReport {
  const MigrationConfig* migration = nullptr;
  bool dry_run = false;
  Status status;                         // the migration could not run (lock, login, listing)
  std::vector<FolderMigration> folders;  // in the source's folder order
  double seconds = 0;
};

// Runs on a loop of its own; holds the source account's lock meanwhile.
MigrationReport Migrate(const MigrationConfig& migration, const AccountConfig& source,
                        const AccountConfig& target, const MigrateOptions& options);

// The name copy records give the target: its user, host and port, so that
// renaming the account in the config loses nothing.
std::string TargetKey(const AccountConfig& target);

}  // namespace mailmirror::migrate
