// The three-way merge of two-way sync, for one folder: what each known
// message looked like after the last sync (the index base), what the local
// Maildir and the server show now, and what to do on each side so that
// they agree again. A pure function: no I/O, so that every combination of
// changes can be tested without a server or a disk.
//
// Rules (ARCHITECTURE.md, "Sync rules"):
//   - a change on one side is applied to the other;
//   - flags merge per flag against the base: a flag either side changed
//     takes that side's value (both changing one flag means both agree);
//   - a deletion never wins over a change: deleted on one side but changed
//     on the other keeps the message (it is restored where it was deleted);
//   - a move (the message now lives in another folder of the same account)
//     is repeated on the other side as a move, never as delete + copy;
//   - `direction` and `expunge` limit which side may be changed; a change
//     that may not be applied stays pending (the base is kept for it), and a
//     deletion that may not be propagated leaves the other copy alone.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace mailmirror::sync {

// One side's view of a message the base knows.
struct SideState {
  bool present = true;   // false: deleted (or moved, see moved_to)
  uint32_t flags = 0;    // store::kFlag* bits
  std::string moved_to;  // non-empty: now in this folder (local name)
};

struct KnownMessage {
  uint32_t uid = 0;
  uint32_t base_flags = 0;
  SideState local;
  SideState remote;
};

struct MergePolicy {
  bool push = true;            // local changes may reach the server
  bool pull = true;            // server changes may reach the Maildir
  bool expunge_remote = true;  // local deletions may expunge on the server
  bool expunge_local = true;   // server expunges may delete local files
};

struct FlagChange {
  uint32_t uid = 0;
  uint32_t add = 0;     // bits to set
  uint32_t remove = 0;  // bits to clear
  friend bool operator==(const FlagChange&, const FlagChange&) = default;
};

struct MoveAction {
  uint32_t uid = 0;
  std::string folder;  // the destination
  uint32_t flags = 0;  // the merged flags the moved message should carry
  friend bool operator==(const MoveAction&, const MoveAction&) = default;
};

struct FolderPlan {
  // On the server.
  std::vector<FlagChange> remote_flags;       // UID STORE (UNCHANGEDSINCE when possible)
  std::vector<uint32_t> remote_expunge;       // \Deleted, then UID EXPUNGE of exactly these
  std::vector<uint32_t> remote_mark_deleted;  // \Deleted only: expunge = local or none
  std::vector<MoveAction> remote_moves;       // UID MOVE (or COPY + expunge)
  std::vector<MoveAction> remote_restore;     // APPEND the local copy (to `folder`)
  // In the Maildir.
  std::vector<FlagChange> local_flags;  // rename to the new flag suffix
  std::vector<uint32_t> local_delete;
  std::vector<MoveAction> local_moves;  // rename into the other folder
  std::vector<uint32_t> local_restore;  // download again: deleted here, changed there
  // In the index.
  std::vector<std::pair<uint32_t, uint32_t>> new_base;  // uid -> flags both sides now hold
  std::vector<uint32_t> forget;                         // no longer in this folder on either side
  // Gone from the server, kept here (expunge = remote or none): the index
  // keeps the file as no longer synced, so that it is never taken for a new
  // local message and uploaded again.
  std::vector<uint32_t> detach;
  std::vector<uint32_t> conflicts;  // changed on both sides (reported by --dry-run and -v)
};

FolderPlan PlanFolder(const std::vector<KnownMessage>& messages, const MergePolicy& policy);

}  // namespace mailmirror::sync
