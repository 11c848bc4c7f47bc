#include "sync/merge_plan.h"

#include <algorithm>
#include <unordered_map>

#include "store/maildir.h"

namespace mailmirror::sync {
namespace {

enum class Change { kNone, kFlags, kDeleted, kMoved };

Change ChangeOf(const SideState& side, uint32_t base_flags) {
  if (!side.moved_to.empty()) return Change::kMoved;
  if (!side.present) return Change::kDeleted;
  return side.flags == base_flags ? Change::kNone : Change::kFlags;
}

// Per flag: the value of the side that changed it; when both changed it,
// both hold the same value (a bit has only one other value).
uint32_t MergeFlags(uint32_t base, uint32_t local, uint32_t remote) {
  return base ^ ((base ^ local) | (base ^ remote));
}

void AddFlagChange(std::vector<FlagChange>& out, uint32_t uid, uint32_t from, uint32_t to) {
  if (from == to) return;
  out.push_back(FlagChange{uid, to & ~from, from & ~to});
}

class Planner {
 public:
  Planner(const MergePolicy& policy, FolderPlan& plan) : policy_(policy), plan_(plan) {}

  void Plan(const KnownMessage& m) {
    const Change local = ChangeOf(m.local, m.base_flags);
    const Change remote = ChangeOf(m.remote, m.base_flags);
    if (local != Change::kNone && remote != Change::kNone) plan_.conflicts.push_back(m.uid);
    const bool local_here = local == Change::kNone || local == Change::kFlags;
    const bool remote_here = remote == Change::kNone || remote == Change::kFlags;
    if (local_here && remote_here) return MergeFlagChanges(m);
    // A move on one side is repeated on the other, with the merged flags.
    if (local_here && remote == Change::kMoved) {
      if (!policy_.pull) return;
      plan_.local_moves.push_back(MoveAction{m.uid, m.remote.moved_to, Merged(m)});
      plan_.forget.push_back(m.uid);
      return;
    }
    if (remote_here && local == Change::kMoved) {
      if (!policy_.push) return;
      plan_.remote_moves.push_back(MoveAction{m.uid, m.local.moved_to, Merged(m)});
      plan_.forget.push_back(m.uid);
      return;
    }
    if (remote == Change::kDeleted) return RemoteDeleted(m, local);
    if (local == Change::kDeleted) return LocalDeleted(m, remote);
    // Moved on both sides. Same destination: both sides already agree.
    // Different ones: each copy stays where it went, and each side gets the
    // other's copy from its destination folder (nothing is lost; the
    // conflict is reported).
    if (m.local.moved_to != m.remote.moved_to && policy_.push) {
      plan_.remote_restore.push_back(MoveAction{m.uid, m.local.moved_to, m.local.flags});
    }
    plan_.forget.push_back(m.uid);
  }

 private:
  static uint32_t Merged(const KnownMessage& m) {
    return MergeFlags(m.base_flags, m.local.flags, m.remote.flags);
  }

  // Present on both sides: each side gets the flags the other changed. A
  // side that may not be changed keeps the change pending (no new base).
  void MergeFlagChanges(const KnownMessage& m) {
    const uint32_t merged = Merged(m);
    if (merged == m.base_flags) return;  // neither side changed anything
    if (policy_.pull) AddFlagChange(plan_.local_flags, m.uid, m.local.flags, merged);
    if (policy_.push) AddFlagChange(plan_.remote_flags, m.uid, m.remote.flags, merged);
    const bool local_ok = policy_.pull || merged == m.local.flags;
    const bool remote_ok = policy_.push || merged == m.remote.flags;
    if (local_ok && remote_ok) plan_.new_base.emplace_back(m.uid, merged);
  }

  // Gone from the server; here unchanged, changed, deleted or moved.
  void RemoteDeleted(const KnownMessage& m, Change local) {
    switch (local) {
      case Change::kNone:
        if (!policy_.pull) return;
        if (policy_.expunge_local) {
          plan_.local_delete.push_back(m.uid);
          plan_.forget.push_back(m.uid);
        } else {
          plan_.detach.push_back(m.uid);
        }
        return;
      case Change::kFlags:
        // Changed here, deleted there: the change wins, the server gets the
        // message back (and the UID it is given replaces this one).
        if (!policy_.push) return;
        plan_.remote_restore.push_back(MoveAction{m.uid, "", m.local.flags});
        plan_.forget.push_back(m.uid);
        return;
      case Change::kDeleted:
        plan_.forget.push_back(m.uid);
        return;
      case Change::kMoved:
        // The local copy survives in its new folder: the server gets it there.
        if (!policy_.push) return;
        plan_.remote_restore.push_back(MoveAction{m.uid, m.local.moved_to, m.local.flags});
        plan_.forget.push_back(m.uid);
        return;
    }
  }

  // Deleted here; on the server unchanged, changed or moved.
  void LocalDeleted(const KnownMessage& m, Change remote) {
    // A server copy that only gained \Deleted agrees with the deletion
    // (another client, or this run's own STORE before a crash cut it off
    // from its UID EXPUNGE).
    if (remote == Change::kFlags &&
        (m.remote.flags & ~store::kFlagDeleted) == (m.base_flags & ~store::kFlagDeleted)) {
      remote = Change::kNone;
    }
    switch (remote) {
      case Change::kNone:
        if (!policy_.push) return;
        if (policy_.expunge_remote) {
          plan_.remote_expunge.push_back(m.uid);
        } else if ((m.remote.flags & store::kFlagDeleted) == 0) {
          plan_.remote_mark_deleted.push_back(m.uid);
        }
        plan_.forget.push_back(m.uid);
        return;
      case Change::kFlags:
        // Deleted here, changed there: the deletion loses.
        if (!policy_.pull) return;
        plan_.local_restore.push_back(m.uid);
        plan_.new_base.emplace_back(m.uid, m.remote.flags);
        return;
      case Change::kDeleted:  // handled by RemoteDeleted
      case Change::kMoved:
        // Gone from here; a server copy moved to another folder lives on
        // there, which downloads it.
        plan_.forget.push_back(m.uid);
        return;
    }
  }

  const MergePolicy& policy_;
  FolderPlan& plan_;
};

}  // namespace

FolderPlan PlanFolder(const std::vector<KnownMessage>& messages, const MergePolicy& policy) {
  FolderPlan plan;
  Planner planner(policy, plan);
  for (const KnownMessage& message : messages) planner.Plan(message);
  return plan;
}

}  // namespace mailmirror::sync
