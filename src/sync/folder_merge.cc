// Two-way sync for one folder, the part of FolderPull that merges the
// Maildir's changes with the server's (see merge_plan.h) and sends local
// changes to the server:
//   1. the server's changes (found by SyncKnown) and the Maildir's (scanned
//      by AccountSync) become one plan; the deletion guard checks it;
//   2. flag changes and deletions go to the server first, with UNCHANGEDSINCE
//      so that a message another client changed meanwhile is merged again
//      next run instead of overwritten; deletions are UID EXPUNGEd exactly;
//   3. the plan's local side is applied and the index base moves;
//   4. after the download, new local files are APPENDed and renamed to
//      carry their UID.
// Crash safety of uploads needs no journal: a file uploaded but not yet
// renamed or indexed is still new to the index next run, and when the
// download of the server's new messages (which begins at the UIDNEXT stored
// before the upload) meets a message with the same content, the file is
// linked to it instead of uploaded again (LinkToLocalFile).
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <map>
#include <set>
#include <utility>

#include "imap/date.h"
#include "imap/sequence_set.h"
#include "sync/append_file.h"
#include "sync/folder_pull.h"
#include "util/fs.h"
#include "util/log.h"

namespace mailmirror::sync {
namespace {

// The UIDs of `uids` that lie in `ranges`.
std::set<uint32_t> UidsIn(const std::vector<uint32_t>& uids, const imap::UidRanges& ranges) {
  std::set<uint32_t> found;
  for (uint32_t uid : uids) {
    if (imap::Contains(ranges, uid)) found.insert(uid);
  }
  return found;
}

}  // namespace

// Everything the merge of one folder works on.
struct FolderPull::Merge {
  FolderPlan plan;
  // Every message either side changed, by UID, with its index record and,
  // when the scan found it, its local file.
  std::map<uint32_t, KnownMessage> messages;
  std::map<uint32_t, store::MessageRecord> records;
  std::map<uint32_t, store::MaildirFolder::Entry> files;
  std::map<uint32_t, std::vector<std::string>> keywords;  // the server's, where they changed
  std::set<uint32_t> modified;  // refused by UNCHANGEDSINCE: merged again next run
  size_t pending = 0;           // server commands in flight
  Status status;                // the first that failed
};

// Merges the server's changes among the messages the index knows (flag
// updates, expunged UIDs) with the Maildir's, applies the plan to both
// sides, then fetches what is new.
void FolderPull::ApplyKnownChanges(const std::vector<imap::FlagUpdate>& updates,
                                   const std::optional<imap::UidRanges>& existing,
                                   const std::vector<uint32_t>& vanished) {
  std::vector<uint32_t> gone = vanished;
  if (existing) {
    size_t next = 0;
    for (uint32_t uid : known_uids_) {
      while (next < existing->size() && (*existing)[next].second < uid) ++next;
      bool present = next < existing->size() && (*existing)[next].first <= uid;
      if (!present) gone.push_back(uid);
    }
  }
  std::sort(gone.begin(), gone.end());
  gone.erase(std::unique(gone.begin(), gone.end()), gone.end());

  auto merge = std::make_shared<Merge>();
  const LocalSide* local = job_.local.get();
  // Local changes: every known file gone or renamed to other flags.
  if (local != nullptr) {
    for (size_t i = 0; i < local->records.size(); ++i) {
      const store::MessageRecord& record = local->records[i];
      const std::optional<store::MaildirFolder::Entry>& file = local->state.known[i];
      if (file && file->name.flags == record.flags) continue;
      if (file) merge->files.emplace(record.uid, *file);
      KnownMessage& message = merge->messages[record.uid];
      message.uid = record.uid;
      message.base_flags = record.flags;
      message.local = SideState{file.has_value(), file ? file->name.flags : 0, ""};
      if (auto moved = local->moved_out.find(record.uid); moved != local->moved_out.end()) {
        message.local.moved_to = moved->second;
      }
      message.remote = SideState{true, record.flags, ""};
      merge->records.emplace(record.uid, record);
    }
  }
  // The records of the messages the server changed: from the scan's copy,
  // else point lookups when few, one walk over the folder when most are.
  std::vector<uint32_t> wanted;
  auto want = [&](uint32_t uid) {
    if (merge->records.count(uid) > 0) return;
    if (local != nullptr) {
      auto it = std::lower_bound(
          local->records.begin(), local->records.end(), uid,
          [](const store::MessageRecord& record, uint32_t value) { return record.uid < value; });
      if (it != local->records.end() && it->uid == uid) {
        merge->records.emplace(uid, *it);
        const auto& file = local->state.known[static_cast<size_t>(it - local->records.begin())];
        if (file) merge->files.emplace(uid, *file);
        return;
      }
    }
    wanted.push_back(uid);
  };
  for (uint32_t uid : gone) want(uid);
  for (const imap::FlagUpdate& update : updates) want(update.uid);
  if (!wanted.empty()) {
    Result<std::vector<store::MessageRecord>> records =
        wanted.size() * 4 > known_uids_.size() ? index_->ListMessages(record_.id)
                                               : index_->GetMessages(record_.id, wanted);
    if (!records.ok()) return Finish(records.error());
    std::sort(wanted.begin(), wanted.end());
    for (store::MessageRecord& record : *records) {
      if (std::binary_search(wanted.begin(), wanted.end(), record.uid)) {
        merge->records.emplace(record.uid, std::move(record));
      }
    }
  }
  auto message_for = [&](uint32_t uid) -> KnownMessage* {
    auto record = merge->records.find(uid);
    if (record == merge->records.end()) return nullptr;  // not ours: never synced
    auto [it, added] = merge->messages.try_emplace(uid);
    if (added) {
      // Unchanged locally (or not scanned: a pull).
      it->second.uid = uid;
      it->second.base_flags = record->second.flags;
      it->second.local = SideState{true, record->second.flags, ""};
      it->second.remote = SideState{true, record->second.flags, ""};
    }
    return &it->second;
  };
  for (uint32_t uid : gone) {
    if (KnownMessage* message = message_for(uid)) message->remote.present = false;
  }
  for (const imap::FlagUpdate& update : updates) {
    KnownMessage* message = message_for(update.uid);
    if (message == nullptr || !message->remote.present) continue;
    store::ImapFlags flags = store::SplitImapFlags(update.flags);
    message->remote.flags = flags.bits;
    if (flags.keywords != merge->records[update.uid].keywords) {
      merge->keywords[update.uid] = std::move(flags.keywords);
    }
  }

  std::vector<KnownMessage> messages;
  messages.reserve(merge->messages.size());
  for (const auto& [uid, message] : merge->messages) messages.push_back(message);
  merge->plan = PlanFolder(messages, job_.policy);
  const FolderPlan& plan = merge->plan;
  report_.conflicts = static_cast<uint32_t>(plan.conflicts.size());

  // The safety valve: a side that lost much of the folder at once more
  // likely lost it by accident than by the user's wish.
  const size_t known = known_uids_.size();
  Status local_guard = CheckDeletions(job_.local_name, DeletionSide::kLocal, known,
                                      plan.local_delete.size(), job_.limits);
  if (!local_guard.ok()) return Finish(local_guard);
  Status remote_guard =
      CheckDeletions(job_.local_name, DeletionSide::kRemote, known,
                     plan.remote_expunge.size() + plan.remote_mark_deleted.size(), job_.limits);
  if (!remote_guard.ok()) return Finish(remote_guard);

  if (job_.dry_run) return ReportDryRun(*merge);
  PushToServer(merge);
}

// Flag changes and deletions in a few pipelined UID STOREs (one per set of
// flags added or removed), then one UID EXPUNGE of exactly the messages
// this run marked.
void FolderPull::PushToServer(const std::shared_ptr<Merge>& merge) {
  const FolderPlan& plan = merge->plan;
  const bool condstore =
      session_->enabled().count("CONDSTORE") + session_->enabled().count("QRESYNC") > 0;
  // Changes the server made after SELECT (which this merge has not seen)
  // make the STORE skip the message: it is merged again next run.
  const uint64_t unchanged_since =
      condstore && selected_.highestmodseq && !selected_.nomodseq ? *selected_.highestmodseq : 0;
  std::map<uint32_t, std::vector<uint32_t>> adds;
  std::map<uint32_t, std::vector<uint32_t>> removes;
  for (const FlagChange& change : plan.remote_flags) {
    if (change.add != 0) adds[change.add].push_back(change.uid);
    if (change.remove != 0) removes[change.remove].push_back(change.uid);
  }
  std::vector<uint32_t> deleting = plan.remote_expunge;
  deleting.insert(deleting.end(), plan.remote_mark_deleted.begin(), plan.remote_mark_deleted.end());
  std::sort(deleting.begin(), deleting.end());

  auto expunge = [this, merge] {
    if (!merge->status.ok()) return Finish(merge->status);
    std::vector<uint32_t> expunging;
    for (uint32_t uid : merge->plan.remote_expunge) {
      if (merge->modified.count(uid) == 0) expunging.push_back(uid);
    }
    if (expunging.empty()) return ApplyMerge(merge);
    if (!session_->capabilities().Has("UIDPLUS")) {
      // A bare EXPUNGE would also remove what other clients marked.
      Log(LogLevel::kWarning, job_.log_context + ": the server lacks UIDPLUS; " +
                                  std::to_string(expunging.size()) +
                                  " message(s) deleted locally are only marked \\Deleted there");
      return ApplyMerge(merge);
    }
    session_->UidExpunge(imap::FormatSequenceSet(expunging), [this, merge](const Status& status) {
      if (!status.ok()) return Finish(status);
      ApplyMerge(merge);
    });
  };
  auto store = [this, merge, unchanged_since, expunge](const std::vector<uint32_t>& uids, bool add,
                                                       const std::vector<std::string>& names) {
    ++merge->pending;
    session_->StoreFlags(imap::FormatSequenceSet(uids), add, names, unchanged_since,
                         [merge, uids, expunge](Result<imap::Session::StoreResult> result) {
                           if (!result.ok()) {
                             if (merge->status.ok()) merge->status = result.error();
                           } else {
                             std::set<uint32_t> refused = UidsIn(uids, result->modified);
                             merge->modified.insert(refused.begin(), refused.end());
                           }
                           if (--merge->pending == 0) expunge();
                         });
  };
  ++merge->pending;  // until every command is out
  for (const auto& [bits, uids] : adds) store(uids, true, store::ImapFlagsFromBits(bits));
  for (const auto& [bits, uids] : removes) store(uids, false, store::ImapFlagsFromBits(bits));
  if (!deleting.empty()) store(deleting, true, {"\\Deleted"});
  if (--merge->pending == 0) expunge();
}

// The plan's local side, and the index base for every message it settled.
void FolderPull::ApplyMerge(const std::shared_ptr<Merge>& merge) {
  const FolderPlan& plan = merge->plan;
  const std::set<uint32_t>& modified = merge->modified;
  for (const FlagChange& change : plan.remote_flags) {
    if (modified.count(change.uid) == 0) ++report_.pushed_flags;
  }
  for (const std::vector<uint32_t>* uids : {&plan.remote_expunge, &plan.remote_mark_deleted}) {
    for (uint32_t uid : *uids) {
      if (modified.count(uid) == 0) ++report_.pushed_expunges;
    }
  }
  auto keywords_of = [&merge](uint32_t uid) {
    auto it = merge->keywords.find(uid);
    return it != merge->keywords.end() ? it->second : merge->records[uid].keywords;
  };
  auto file_of = [&merge](uint32_t uid) -> std::optional<store::MaildirFolder::Entry> {
    auto it = merge->files.find(uid);
    if (it == merge->files.end()) return std::nullopt;
    return it->second;
  };

  std::vector<LocalChange> changes;
  std::set<uint32_t> handled;
  for (const FlagChange& change : plan.local_flags) {
    // The server refused this message's side of the merge: both sides stay
    // as they are and the next run merges again from the same base.
    if (modified.count(change.uid) > 0) continue;
    const KnownMessage& message = merge->messages[change.uid];
    uint32_t flags = (message.local.flags | change.add) & ~change.remove;
    changes.push_back(LocalChange{merge->records[change.uid], false, flags, keywords_of(change.uid),
                                  file_of(change.uid)});
    handled.insert(change.uid);
  }
  for (uint32_t uid : plan.local_delete) {
    changes.push_back(LocalChange{merge->records[uid], true, 0, {}, file_of(uid)});
    handled.insert(uid);
  }
  Status applied = ApplyLocally(changes);
  if (!applied.ok()) return Finish(applied);

  std::set<uint32_t> refetch(plan.local_restore.begin(), plan.local_restore.end());
  for (const auto& [uid, flags] : plan.new_base) {
    if (handled.count(uid) > 0 || modified.count(uid) > 0 || refetch.count(uid) > 0) continue;
    store::MessageRecord record = merge->records[uid];
    record.flags = flags;
    record.keywords = keywords_of(uid);
    if (std::optional<store::MaildirFolder::Entry> file = file_of(uid))
      record.in_cur = file->in_cur;
    applied_.PutMessage(record_.id, record);
    handled.insert(uid);
  }
  std::set<uint32_t> forgotten;
  for (uint32_t uid : plan.forget) {
    if (modified.count(uid) > 0) continue;
    forgotten.insert(uid);
    if (handled.count(uid) == 0) applied_.DeleteMessage(record_.id, uid);
    handled.insert(uid);
  }
  // Keyword changes have no Maildir letter: the index only.
  for (const auto& [uid, keywords] : merge->keywords) {
    if (handled.count(uid) > 0 || refetch.count(uid) > 0) continue;
    store::MessageRecord record = merge->records[uid];
    record.keywords = keywords;
    applied_.PutMessage(record_.id, record);
  }
  // Deleted here, changed there: downloaded again (FetchNew).
  refetch_.assign(refetch.begin(), refetch.end());
  report_.restored = static_cast<uint32_t>(refetch_.size());
  // Changed here, expunged there: uploaded again after the download.
  for (const MoveAction& restore : plan.remote_restore) {
    std::optional<store::MaildirFolder::Entry> file = file_of(restore.uid);
    if (!file || !restore.folder.empty()) continue;  // restores into other folders: not here
    Status added = AddNewLocal(*file);
    if (!added.ok()) return Finish(added);
    ++report_.restored;
  }
  known_uids_.erase(std::remove_if(known_uids_.begin(), known_uids_.end(),
                                   [&](uint32_t uid) {
                                     return forgotten.count(uid) > 0 || refetch.count(uid) > 0;
                                   }),
                    known_uids_.end());
  // Without pull (direction = push) the server's changes stay pending: the
  // next run that may pull must find them again.
  if (job_.policy.pull && selected_.highestmodseq && !selected_.nomodseq && !flags_unmerged_) {
    record_.highestmodseq = *selected_.highestmodseq;
  }
  FetchNew();
}

void FolderPull::ReportDryRun(const Merge& merge) {
  const FolderPlan& plan = merge.plan;
  report_.pushed_flags = static_cast<uint32_t>(plan.remote_flags.size());
  report_.pushed_expunges =
      static_cast<uint32_t>(plan.remote_expunge.size() + plan.remote_mark_deleted.size());
  report_.flag_changes = static_cast<uint32_t>(plan.local_flags.size());
  report_.expunged = static_cast<uint32_t>(plan.local_delete.size());
  report_.restored = static_cast<uint32_t>(plan.local_restore.size() + plan.remote_restore.size());
  CountDryRunNew();
}

// --dry-run: how many server messages are new (one UID SEARCH) and how many
// local files would be uploaded.
void FolderPull::CountDryRunNew() {
  if (job_.local && job_.policy.push) {
    for (const store::MaildirFolder::Entry& entry : job_.local->state.unknown) {
      if (entry.name.uid == 0 ||
          !std::binary_search(known_uids_.begin(), known_uids_.end(), entry.name.uid)) {
        ++report_.appended;
      }
    }
  }
  if (!job_.policy.pull || selected_.exists == 0) return Finish(Status::Ok());
  session_->SearchAllUids([this](Result<imap::UidRanges> uids) {
    if (!uids.ok()) return Finish(uids.error());
    for (const auto& [low, high] : *uids) {
      for (uint64_t uid = low; uid <= high; ++uid) {
        if (!std::binary_search(known_uids_.begin(), known_uids_.end(), uint32_t(uid))) {
          ++report_.would_fetch;
        }
      }
    }
    Finish(Status::Ok());
  });
}

// A missing folder directory is not "the user deleted every message": the
// server keeps them unless the user confirms.
Status FolderPull::CheckMissingFolder() {
  if (!job_.local || !job_.local->missing || job_.local->records.empty()) return Status::Ok();
  if (job_.limits.allow_mass_delete) return Status::Ok();
  return MakeError(ErrorKind::kConfig,
                   "its Maildir directory " + job_.local_path +
                       " is gone, but the index says it held " +
                       std::to_string(job_.local->records.size()) +
                       " message(s); nothing was deleted on the server. Restore the directory, or "
                       "run again with --allow-mass-delete to delete them on the server too");
}

// After the files were matched to new UIDs (Rematch): the Maildir as it is
// now against the index as it is now. Files that matched nothing lost their
// UID and are new local files (uploaded, unless the download finds the same
// content on the server).
Status FolderPull::RescanLocal() {
  if (!job_.local) return Status::Ok();
  auto side = std::make_shared<LocalSide>();
  Result<std::vector<store::MessageRecord>> records = index_->ListMessages(record_.id);
  if (!records.ok()) return records.error();
  side->records = std::move(records).value();
  Result<LocalFolderState> state = ScanLocalFolder(*folder_, side->records);
  if (!state.ok()) return state.error();
  side->state = std::move(state).value();
  job_.local_changed = HasLocalChanges(*side);
  job_.local = std::move(side);
  return Status::Ok();
}

RefusedFiles& FolderPull::Refusals() {
  if (!refused_) {
    Result<std::vector<store::RefusedFile>> recorded = index_->ListRefused(record_.id);
    refused_ = std::make_unique<RefusedFiles>(
        recorded.ok() ? *recorded : std::vector<store::RefusedFile>(), job_.log_context);
  }
  return *refused_;
}

void FolderPull::Refuse(const store::MaildirFolder::Entry& entry, const std::string& reason) {
  Refusals().Refuse(RefusedFiles::KeyOf(entry.file_name, entry.in_cur),
                    RefusedFiles::Fingerprint(folder_->EntryPath(entry)), reason);
}

Status FolderPull::AddNewLocal(const store::MaildirFolder::Entry& entry) {
  Result<std::pair<uint64_t, uint64_t>> digest = folder_->DigestOf(entry.file_name, entry.in_cur);
  if (!digest.ok()) {
    // Renamed or removed by a reader since the scan: next run sees it.
    if (digest.error().os_errno == ENOENT) return Status::Ok();
    // Replaced by a link or FIFO since the scan: never read, never sent.
    if (IsNotRegularFile(digest.error())) {
      Refuse(entry, "not a regular file");
      return Status::Ok();
    }
    return digest.error();
  }
  if (digest->second == 0) {
    Refuse(entry, "an empty file, not a message");
    return Status::Ok();
  }
  new_local_.push_back(NewLocalFile{entry, digest->first, digest->second, false});
  new_local_by_digest_.emplace(digest->first, new_local_.size() - 1);
  return Status::Ok();
}

// The scan's files the index does not know, except those an interrupted
// download left and AdoptOrphans took in, and those refused before that
// have not changed since.
Status FolderPull::PrepareNewLocal() {
  if (!job_.local || !job_.policy.push) return Status::Ok();
  for (const store::MaildirFolder::RefusedEntry& refused : job_.local->state.refused) {
    Refusals().Refuse(
        RefusedFiles::KeyOf(refused.file_name, refused.in_cur),
        RefusedFiles::Fingerprint(folder_->FilePath(refused.file_name, refused.in_cur)),
        refused.reason);
  }
  for (const store::MaildirFolder::Entry& entry : job_.local->state.unknown) {
    if (entry.name.uid != 0 &&
        std::binary_search(known_uids_.begin(), known_uids_.end(), entry.name.uid)) {
      Result<std::optional<uint32_t>> owner = index_->UidForStem(record_.id, entry.name.stem);
      if (!owner.ok()) return owner.error();
      if (*owner == entry.name.uid) continue;
    }
    if (Refusals().Unchanged(RefusedFiles::KeyOf(entry.file_name, entry.in_cur),
                             RefusedFiles::Fingerprint(folder_->EntryPath(entry)))) {
      continue;
    }
    Status added = AddNewLocal(entry);
    if (!added.ok()) return added;
  }
  return Status::Ok();
}

// A downloaded message with the content of a new local file is that file:
// the file is renamed to carry the UID (and the union of both sides' flags;
// the base is the server's, so local extras are pushed next run) and the
// download is dropped. Returns whether `record` now describes the file.
bool FolderPull::LinkToLocalFile(store::MessageRecord& record) {
  auto it = new_local_by_digest_.find(record.digest);
  if (it == new_local_by_digest_.end()) return false;
  NewLocalFile& file = new_local_[it->second];
  new_local_by_digest_.erase(it);
  const store::MaildirFolder::Entry& entry = file.entry;
  uint32_t flags = record.flags | entry.name.flags;
  bool to_cur = entry.in_cur || (flags & store::kFlagSeen) != 0;
  std::string name =
      store::MakeMaildirName(entry.name.stem, record.uid, flags, entry.name.other_letters);
  if (!folder_->RenameEntry(entry, name, to_cur).ok()) return false;  // gone: keep the download
  file.linked = true;
  record.stem = entry.name.stem;
  record.in_cur = to_cur;
  record.size = file.size;
  batch_renamed_ = true;
  ++report_.linked;
  return true;
}

// direction = push, with files to upload: the server's new messages are
// not downloaded, but one with the CRLF size of such a file (one FETCH of
// sizes) is, so that the content decides, as in a two-way run.
void FolderPull::FindUploadedBySize(const std::string& uid_set) {
  auto sizes = std::make_shared<std::set<uint64_t>>();
  for (const NewLocalFile& file : new_local_) {
    if (file.linked) continue;
    Result<std::optional<std::unique_ptr<AppendFile>>> read =
        AppendFile::Open(folder_->EntryPath(file.entry));
    if (read.ok() && read->has_value()) sizes->insert((**read)->size());
  }
  auto candidates = std::make_shared<std::vector<uint32_t>>();
  session_->Execute(
      imap::Command{{"UID FETCH " + uid_set + " (UID RFC822.SIZE)\r\n"}, "UID FETCH", false},
      [sizes, candidates](const imap::Response& response) {
        if (response.type == imap::ResponseType::kFetch && response.fetch.uid &&
            response.fetch.rfc822_size && sizes->count(*response.fetch.rfc822_size) > 0) {
          candidates->push_back(*response.fetch.uid);
        }
      },
      [this, candidates](Result<imap::TaggedReply> reply) {
        if (!reply.ok()) return Finish(reply.error());
        if (reply->condition != imap::Condition::kOk) {
          return Finish(MakeError(ErrorKind::kProtocol, "UID FETCH failed: " + reply->text));
        }
        if (candidates->empty()) return CommitWithoutDownload();
        std::sort(candidates->begin(), candidates->end());
        link_only_ = true;
        Lane& lane = *lanes_.emplace_back(std::make_unique<Lane>(this, session_));
        session_->UidFetch(imap::FormatSequenceSet(*candidates), kFetchItems, &lane,
                           [this](const Status& status) {
                             if (!status.ok()) return Finish(status);
                             record_.fetch_pending = false;
                             (void)FlushBatch(/*folder_done=*/true);
                           });
      });
}

uint64_t FolderPull::UploadLimit() const {
  uint64_t limit = job_.max_upload_bytes;
  for (const std::string& item : session_->capabilities().items()) {
    if (item.rfind("APPENDLIMIT=", 0) != 0) continue;
    uint64_t value = 0;
    std::string_view digits = std::string_view(item).substr(12);
    auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), value);
    if (ec == std::errc() && end == digits.data() + digits.size() && value > 0 &&
        (limit == 0 || value < limit)) {
      limit = value;
    }
  }
  return limit;
}

bool FolderPull::HasUploads() const {
  if (!job_.policy.push || job_.dry_run) return false;
  return std::any_of(new_local_.begin(), new_local_.end(),
                     [](const NewLocalFile& file) { return !file.linked; });
}

// After the download's last commit: uploads, or done.
void FolderPull::AfterPull(const Status& status) {
  if (!status.ok()) return Finish(status);
  if (HasUploads()) return AppendNext(0);
  if (refused_ && refused_->changed()) return FinishAppends();  // records to update
  if (refused_) report_.refused = refused_->count();
  Finish(status);
}

// One APPEND at a time, each streamed from its file (AppendFile): its size
// with CRLF line ends is counted first, as the literal must announce it.
void FolderPull::AppendNext(size_t next) {
  while (next < new_local_.size() && new_local_[next].linked) ++next;
  if (next == new_local_.size()) return FinishAppends();
  const store::MaildirFolder::Entry& entry = new_local_[next].entry;
  // Above the server's limit (LF line ends only grow as CRLF): the server
  // would refuse it, so it stays here, reported, without being read.
  const uint64_t limit = UploadLimit();
  auto too_large = [&](uint64_t size) {
    if (limit == 0 || size <= limit) return false;
    Refuse(entry, std::to_string(size) + " bytes, larger than the upload limit (" +
                      std::to_string(limit) +
                      " bytes: max_upload_size or the server's APPENDLIMIT)");
    ++report_.too_large;
    return true;
  };
  if (too_large(new_local_[next].size)) return AppendNext(next + 1);
  Result<std::optional<std::unique_ptr<AppendFile>>> file =
      AppendFile::Open(folder_->EntryPath(entry));
  if (!file.ok() && IsNotRegularFile(file.error())) {
    Refuse(entry, "not a regular file");
    return AppendNext(next + 1);
  }
  if (!file.ok() || !file->has_value()) {
    if (!file.ok() && append_status_.ok()) append_status_ = file.error();
    return AppendNext(next + 1);
  }
  std::shared_ptr<AppendFile> message = std::move(**file);
  if (too_large(message->size())) return AppendNext(next + 1);
  if (message->has_nul()) {
    Refuse(entry, "it holds NUL bytes, which an IMAP upload cannot carry");
    return AppendNext(next + 1);
  }
  const uint64_t size = message->size();
  const int64_t mtime = message->mtime();
  // Streamed from the file: memory stays bounded whatever the message's size.
  session_->AppendStreamed(
      job_.remote_name, store::ImapFlagsFromBits(entry.name.flags), imap::FormatInternalDate(mtime),
      std::move(message), [this, next, size, mtime](Result<imap::Session::AppendResult> appended) {
        const NewLocalFile& uploaded = new_local_[next];
        if (!appended.ok()) {
          // A session that died takes the rest with it.
          if (!session_->authenticated()) {
            if (append_status_.ok()) append_status_ = appended.error();
            return FinishAppends();
          }
          // The server refused this message (not a quota or throttle that
          // passes): kept here and not offered again until it changes.
          if (appended.error().kind == ErrorKind::kProtocol) {
            Refuse(uploaded.entry, "the server refused it: " + appended.error().message);
            return AppendNext(next + 1);
          }
          Log(LogLevel::kWarning, job_.log_context + ": uploading " + uploaded.entry.file_name +
                                      " failed: " + appended.error().message);
          if (append_status_.ok()) append_status_ = appended.error();
          return AppendNext(next + 1);
        }
        ++report_.appended;
        if (appended->uid != 0 && appended->uidvalidity == selected_.uidvalidity) {
          const store::MaildirFolder::Entry& source = uploaded.entry;
          std::string name = store::MakeMaildirName(source.name.stem, appended->uid,
                                                    source.name.flags, source.name.other_letters);
          if (folder_->RenameEntry(source, name).ok()) {
            store::MessageRecord record;
            record.uid = appended->uid;
            record.stem = source.name.stem;
            record.in_cur = source.in_cur;
            record.flags = source.name.flags;
            record.size = uploaded.size;
            record.remote_size = size;
            record.internaldate = mtime;
            record.digest = uploaded.digest;
            appended_records_.push_back(std::move(record));
          }
        }
        // Without APPENDUID the next run's download finds it by content.
        AppendNext(next + 1);
      });
}

void FolderPull::FinishAppends() {
  auto work = std::make_unique<DiskWork>();
  if (!appended_records_.empty()) work->synced_folders.push_back(folder_.get());
  for (const store::MessageRecord& record : appended_records_) {
    work->index.PutMessage(record_.id, record);
  }
  appended_records_.clear();
  if (refused_) {
    report_.refused = refused_->count();
    if (refused_->changed()) refused_->AddTo(work->index, record_.id);
  }
  SubmitDiskWork(std::move(work),
                 [this](const Status& status) { Finish(status.ok() ? append_status_ : status); });
  ReleaseSession();
}

}  // namespace mailmirror::sync
