// The Maildir half of an account's two-way sync, before its folders run:
// every selected folder's directory is scanned and compared with the index
// (folder_pull.h uses the result), and messages the user moved between
// folders are moved on the server too, with UID MOVE, so that the server
// keeps the message (and its flags and date) instead of receiving a copy.
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <ctime>
#include <map>
#include <set>

#include "imap/sequence_set.h"
#include "sync/account_sync.h"
#include "util/fs.h"
#include "util/log.h"

namespace mailmirror::sync {

// The moves from one folder into another.
struct AccountSync::MoveGroup {
  FolderJob* from = nullptr;
  FolderJob* to = nullptr;
  std::vector<LocalMove> moves;
};

// A Maildir folder the server does not list is either new here (created
// by a mail reader: created on the server) or was deleted on the server
// since it was synced (the index knows it: kept here, not resurrected).
void AccountSync::CreateLocalOnlyFolders(char delimiter) {
  auto pending = std::make_shared<std::vector<FolderJob>>();
  if (account_.direction != SyncDirection::kPull) {
    Result<std::vector<std::string>> local =
        store::ListLocalFolders(account_.maildir, LayoutOf(account_));
    if (!local.ok()) {
      Log(LogLevel::kWarning, "account " + account_.name + ": " + local.error().message);
      local = std::vector<std::string>();
    }
    std::set<std::string> listed;
    for (const FolderJob& job : jobs_) listed.insert(job.local_name);
    store::ServerNaming naming;
    naming.delimiter = delimiter;
    if (namespace_) naming.namespace_prefix = namespace_->prefix;
    for (const std::string& name : *local) {
      if (listed.count(name) > 0 || !store::FolderSelected(account_.folders, name)) continue;
      Result<std::string> path = store::LocalPathFor(account_.maildir, name, LayoutOf(account_));
      if (!path.ok() || InStateDirectory(name, *path)) continue;
      Result<std::string> remote = store::RemoteNameFor(name, naming);
      if (!remote.ok()) {
        report_.skipped.push_back(remote.error().message);
        Log(LogLevel::kWarning, "account " + account_.name + ": " + remote.error().message);
        continue;
      }
      // "inbox" or "Inbox" beside INBOX: IMAP names INBOX case-insensitively,
      // so this is the server's INBOX under another spelling, not a folder
      // of its own (nor one gone from the server).
      if (std::any_of(jobs_.begin(), jobs_.end(),
                      [&](const FolderJob& job) { return job.remote_name == *remote; })) {
        const std::string why = "Maildir folder " + name + " is the server's folder " + *remote +
                                " under another spelling and is not synced; move its messages "
                                "into " +
                                *remote + " and remove it";
        report_.skipped.push_back(why);
        Log(LogLevel::kWarning, "account " + account_.name + ": " + why);
        continue;
      }
      Result<std::optional<store::FolderRecord>> record = index_->GetFolder(*remote);
      if (record.ok() && record->has_value() && (*record)->uidvalidity != 0) {
        Log(LogLevel::kWarning, "account " + account_.name + ": folder " + name +
                                    " is gone from the server; its Maildir copy is kept");
        continue;
      }
      if (!IncludesRemote(account_.create)) {
        Log(LogLevel::kInfo, "account " + account_.name + ": folder " + name +
                                 " exists only in the Maildir and create does not include "
                                 "\"remote\": not synced");
        continue;
      }
      pending->push_back(NewJob(*remote, name, *path));
    }
  }
  CreateNext(pending, 0);
}

void AccountSync::CreateNext(const std::shared_ptr<std::vector<FolderJob>>& pending, size_t next) {
  if (next == pending->size()) return FoldersListed();
  FolderJob& job = (*pending)[next];
  report_.created.push_back(job.local_name);
  if (options_.dry_run) {
    // Nothing on the server to compare with: every file would be uploaded.
    return CreateNext(pending, next + 1);
  }
  workers_[0]->connection->session().Create(
      job.remote_name, [this, pending, next](const Status& status) {
        FolderJob& created = (*pending)[next];
        if (!status.ok()) {
          report_.created.pop_back();
          report_.skipped.push_back("folder " + created.local_name + ": " + status.error().message);
          Log(LogLevel::kWarning, "account " + account_.name + ": folder " + created.local_name +
                                      ": " + status.error().message);
        } else {
          Log(LogLevel::kInfo, "account " + account_.name + ": created folder " +
                                   created.local_name + " on the server");
          jobs_.push_back(std::move(created));
        }
        CreateNext(pending, next + 1);
      });
}

Status AccountSync::ScanLocal(FolderJob& job) {
  auto side = std::make_shared<LocalSide>();
  Result<std::optional<store::FolderRecord>> record = index_->GetFolder(job.remote_name);
  if (!record.ok()) return record.error();
  const uint64_t stamp = DirectoryStamp(job.local_path, static_cast<int64_t>(std::time(nullptr)));
  job.local = nullptr;
  job.local_changed = false;
  job.local_stamp = 0;
  // A folder leading outside the root is not read (FolderPull refuses it).
  if (Status inside = CheckNoSymlinkBelow(job.root, job.local_path); !inside.ok()) {
    return inside.error().os_errno == ELOOP ? Status::Ok() : inside;
  }
  if (record->has_value() && (*record)->local_stamp != 0 && (*record)->local_stamp == stamp) {
    job.local_stamp = stamp;
    return Status::Ok();  // no file came, went or was renamed since it matched
  }
  if (record->has_value() && (*record)->uidvalidity != 0) {
    Result<std::vector<store::MessageRecord>> records = index_->ListMessages((*record)->id);
    if (!records.ok()) return records.error();
    side->records = std::move(records).value();
  }
  // No cur/: not a Maildir (yet). With the verbatim layout a parent folder
  // may be a plain directory; with Maildir++ INBOX is the root.
  struct stat st {};
  if (::stat((job.local_path + "/cur").c_str(), &st) != 0 &&
      (errno == ENOENT || errno == ENOTDIR)) {
    side->missing = !side->records.empty();  // else: a folder not yet created here
    side->state.known.resize(side->records.size());
  } else {
    Result<std::unique_ptr<store::MaildirFolder>> folder =
        store::MaildirFolder::Open(job.local_path, /*create=*/false, job.root);
    if (!folder.ok()) {
      // Half made (a run killed while creating it): the sync completes it.
      if (side->records.empty()) {
        job.local = std::move(side);
        return Status::Ok();
      }
      return folder.error();
    }
    Result<LocalFolderState> state = ScanLocalFolder(**folder, side->records);
    if (!state.ok()) return state.error();
    side->state = std::move(state).value();
  }
  job.local_changed = HasLocalChanges(*side);
  if (!job.local_changed && record->has_value() && (*record)->uidvalidity != 0) {
    job.local_stamp = stamp;
  }
  job.local = std::move(side);
  return Status::Ok();
}

void AccountSync::ScanAllLocal() {
  size_t listed = 0;
  for (FolderJob& job : jobs_) {
    Status scanned = ScanLocal(job);
    if (!scanned.ok()) job.local_status = scanned;
    listed += job.local != nullptr ? 1 : 0;
  }
  Log(LogLevel::kDebug, "account " + account_.name + ": listed " + std::to_string(listed) +
                            " Maildir folder(s); " + std::to_string(jobs_.size() - listed) +
                            " unchanged since they last matched the index");
  std::vector<FolderScan> scans;
  std::map<std::string, FolderJob*> by_name;
  for (FolderJob& job : jobs_) {
    if (!job.local) continue;
    scans.push_back(FolderScan{job.local_name, &job.local->records, &job.local->state});
    by_name[job.local_name] = &job;
  }
  std::vector<LocalMove> moves = FindLocalMoves(scans);
  if (moves.empty()) return StartFolders();
  if (options_.dry_run) {
    for (const LocalMove& move : moves) by_name[move.from]->local->moved_out[move.uid] = move.to;
    report_.moved = static_cast<uint32_t>(moves.size());
    return StartFolders();
  }
  auto groups = std::make_shared<std::vector<MoveGroup>>();
  std::map<std::pair<std::string, std::string>, size_t> group_of;
  for (LocalMove& move : moves) {
    auto [it, added] = group_of.try_emplace({move.from, move.to}, groups->size());
    if (added) groups->push_back(MoveGroup{by_name[move.from], by_name[move.to], {}});
    (*groups)[it->second].moves.push_back(std::move(move));
  }
  MoveNext(groups, 0);
}

// One group at a time on the first session: SELECT the source, UID MOVE.
// A move the server cannot make (no MOVE and no UIDPLUS, a failure) is
// left to the folders: the source then deletes and the destination uploads.
void AccountSync::MoveNext(const std::shared_ptr<std::vector<MoveGroup>>& groups, size_t next) {
  if (next == groups->size()) {
    // The moved files now carry their new UIDs: scan the folders involved
    // again (a failed move shows up there as a deletion and a new file).
    for (const MoveGroup& group : *groups) {
      for (FolderJob* job : {group.from, group.to}) {
        Status scanned = ScanLocal(*job);
        if (!scanned.ok()) job->local_status = scanned;
      }
    }
    return StartFolders();
  }
  const MoveGroup& group = (*groups)[next];
  auto give_up = [this, groups, next](const std::string& why) {
    const MoveGroup& failed = (*groups)[next];
    Log(LogLevel::kInfo, "account " + account_.name + ": moving " +
                             std::to_string(failed.moves.size()) + " message(s) from " +
                             failed.from->local_name + " to " + failed.to->local_name +
                             " on the server failed (" + why +
                             "); they are uploaded to the new folder and deleted from the old");
    MoveNext(groups, next + 1);
  };
  imap::Session& session = workers_[0]->connection->session();
  session.Select(group.from->remote_name, /*read_only=*/false,
                 [this, groups, next, give_up, &session](Result<imap::SelectedMailbox> selected) {
                   if (!selected.ok()) return give_up(selected.error().message);
                   const MoveGroup& current = (*groups)[next];
                   Result<std::optional<store::FolderRecord>> source =
                       index_->GetFolder(current.from->remote_name);
                   if (!source.ok() || !source->has_value() ||
                       (*source)->uidvalidity != selected->uidvalidity) {
                     return give_up("the folder's UIDVALIDITY changed");
                   }
                   std::vector<uint32_t> uids;
                   for (const LocalMove& move : current.moves) uids.push_back(move.uid);
                   std::sort(uids.begin(), uids.end());
                   session.UidMove(
                       imap::FormatSequenceSet(uids), current.to->remote_name,
                       [this, groups, next, give_up](Result<imap::Session::MoveResult> moved) {
                         if (!moved.ok()) return give_up(moved.error().message);
                         Status recorded = RecordMoves((*groups)[next], *moved);
                         if (!recorded.ok()) {
                           // The folders sort it out: the moved files are
                           // found again by content (see folder_merge.cc).
                           Log(LogLevel::kWarning,
                               "account " + account_.name + ": " + recorded.error().message);
                         }
                         MoveNext(groups, next + 1);
                       });
                 });
}

// Gives each moved file its UID in the destination (from COPYUID) and
// moves its index record there, keeping the base flags so that flag changes
// made on either side meanwhile are merged by the destination's sync.
Status AccountSync::RecordMoves(const MoveGroup& group, const imap::Session::MoveResult& result) {
  report_.moved += static_cast<uint32_t>(result.moved.size());
  Result<std::optional<store::FolderRecord>> source = index_->GetFolder(group.from->remote_name);
  Result<std::optional<store::FolderRecord>> dest = index_->GetFolder(group.to->remote_name);
  if (!source.ok()) return source.error();
  if (!dest.ok()) return dest.error();
  // Without COPYUID, or into a folder never synced, the destination's next
  // download meets the message and finds the file by content.
  if (result.moved.empty() || !source->has_value() || !dest->has_value() ||
      (*dest)->uidvalidity != result.uidvalidity) {
    return Status::Ok();
  }
  Result<std::unique_ptr<store::MaildirFolder>> folder =
      store::MaildirFolder::Open(group.to->local_path, /*create=*/false, group.to->root);
  if (!folder.ok()) return folder.error();
  const std::vector<store::MessageRecord>& records = group.from->local->records;
  store::Index::Batch batch;
  for (const auto& [from_uid, to_uid] : result.moved) {
    auto move = std::find_if(group.moves.begin(), group.moves.end(),
                             [uid = from_uid](const LocalMove& m) { return m.uid == uid; });
    auto record =
        std::lower_bound(records.begin(), records.end(), from_uid,
                         [](const store::MessageRecord& r, uint32_t uid) { return r.uid < uid; });
    if (move == group.moves.end() || record == records.end() || record->uid != from_uid) continue;
    const store::MaildirFolder::Entry& file = move->file;
    std::string name =
        store::MakeMaildirName(file.name.stem, to_uid, file.name.flags, file.name.other_letters);
    Status renamed = (*folder)->RenameEntry(file, name);
    if (!renamed.ok()) return renamed;
    store::MessageRecord moved = *record;
    moved.uid = to_uid;
    moved.in_cur = file.in_cur;
    batch.DeleteMessage((*source)->id, from_uid);
    batch.PutMessage((*dest)->id, moved);
  }
  Status synced = (*folder)->SyncDirectories();
  if (!synced.ok()) return synced;
  return index_->Commit(batch);
}

}  // namespace mailmirror::sync
