#include "sync/folder_pull.h"

#include <sys/stat.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <map>
#include <utility>

#include "imap/date.h"
#include "imap/sequence_set.h"
#include "sync/message_key.h"
#include "util/fs.h"
#include "util/log.h"
#include "util/strings.h"

namespace mailmirror::sync {
namespace {

// A batch is delivered (fsync, rename, index commit) when it holds this many
// messages or bytes, whichever comes first: few fsync rounds, bounded loss of
// work on a crash.
constexpr size_t kBatchMessages = 256;
constexpr uint64_t kBatchBytes = 32ull << 20;
// ... or when its first message is this old, so that a slow link still
// makes regular durable progress.
constexpr std::chrono::milliseconds kBatchAge{1000};

// UID FETCH commands of one download in flight at once, and how many
// messages each asks for: about kChunkBytes, within these bounds, once the
// folder's typical size is known.
constexpr size_t kFetchWindow = 3;
constexpr uint64_t kChunkBytes = 4ull << 20;
constexpr size_t kChunkMessagesFirst = 256;
constexpr size_t kChunkMessagesMin = 64;
constexpr size_t kChunkMessagesMax = 512;

}  // namespace

// Nothing happened since the last run: same UIDVALIDITY, UIDNEXT not past
// what is stored, the same MESSAGES and the same HIGHESTMODSEQ (every flag
// change and, with RFC 7162 servers, every expunge raises it; MESSAGES
// catches expunges on servers where it does not), and the last download
// completed. Without CONDSTORE there is no such proof.
bool UnchangedSinceLastSync(const FolderJob& job, const store::FolderRecord& record) {
  return record.uidvalidity != 0 && record.highestmodseq != 0 && !record.fetch_pending &&
         record.messages && job.status_messages == record.messages &&
         job.status_uidvalidity == record.uidvalidity && job.status_uidnext &&
         *job.status_uidnext <= record.uidnext && job.status_highestmodseq == record.highestmodseq;
}

FolderPull::FolderPull(imap::Session* session, store::Index* index, DiskWriter* disk, FolderJob job,
                       std::function<void()> session_free, std::function<void(FolderReport)> done)
    : session_(session),
      index_(index),
      disk_(disk),
      job_(std::move(job)),
      session_free_(std::move(session_free)),
      done_(std::move(done)) {
  report_.local_name = job_.local_name;
}

FolderPull::~FolderPull() = default;

void FolderPull::Finish(const Status& status) {
  if (!done_) return;
  if (!status.ok() && report_.status.ok()) {
    report_.status = status.error().Wrap("folder " + job_.local_name);
  }
  ReleaseSession();
  // Work handed to the disk writer refers to this object and its folder:
  // report only once the last of it has come back.
  finishing_ = true;
  if (disk_pending_ > 0) return;
  // The report outlives the pull by a little: keep nothing heavy meanwhile.
  std::vector<uint32_t>().swap(known_uids_);
  folder_.reset();
  report_.seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started_).count();
  report_.flags_unmerged = flags_unmerged_;
  Log(LogLevel::kDebug, job_.log_context + ": " + (report_.status.ok() ? "done" : "failed") +
                            " in " + FormatSeconds(static_cast<uint64_t>(report_.seconds * 1000)) +
                            " s" + (report_.path.empty() ? "" : " (" + report_.path + ")"));
  auto done = std::move(done_);
  done_ = nullptr;
  done(report_);
}

void FolderPull::ReleaseSession() {
  if (!session_free_) return;
  auto session_free = std::move(session_free_);
  session_free_ = nullptr;
  session_free();
}

void FolderPull::SubmitDiskWork(std::unique_ptr<DiskWork> work,
                                std::function<void(const Status&)> then) {
  ++disk_pending_;
  work->wanted = [this] { return disk_status_.ok(); };
  work->done = [this, then = std::move(then)](const Status& status) {
    --disk_pending_;
    if (!status.ok() && disk_status_.ok()) disk_status_ = status;
    if (then) then(status);
    if (finishing_ && disk_pending_ == 0) Finish(Status::Ok());
  };
  disk_->Submit(std::move(work));
}

void FolderPull::Start() {
  started_ = std::chrono::steady_clock::now();
  Result<std::optional<store::FolderRecord>> record = index_->GetFolder(job_.remote_name);
  if (!record.ok()) return Finish(record.error());
  if (record->has_value()) {
    record_ = **record;
  } else {
    Result<uint32_t> id = index_->AllocateFolderId();
    if (!id.ok()) return Finish(id.error());
    record_.id = *id;
    record_.remote_name = job_.remote_name;
  }
  record_.local_name = job_.local_name;

  if (Status inside = CheckNoSymlinkBelow(job_.root, job_.local_path); !inside.ok()) {
    if (inside.error().os_errno != ELOOP) return Finish(inside);
    // Deliberate (an archive on another disk) or planted, it is the same
    // risk: mail written or read outside the root. Refused, not failed.
    report_.refused_folder = true;
    report_.path = "refused";
    Log(LogLevel::kWarning, job_.log_context + ": " + inside.error().message);
    return Finish(Status::Ok());
  }
  if (!job_.local_status.ok()) return Finish(job_.local_status);
  // No need to select the folder (the Maildir was scanned already).
  if (UnchangedSinceLastSync(job_, record_) && !job_.local_changed) {
    report_.path = "unchanged";
    if (job_.local_stamp == 0 || job_.local_stamp == record_.local_stamp || job_.dry_run) {
      return Finish(Status::Ok());
    }
    // The Maildir matched the index: the next run need not list it while
    // its directories keep this stamp.
    record_.local_stamp = job_.local_stamp;
    auto work = std::make_unique<DiskWork>();
    work->index.PutFolder(record_);
    SubmitDiskWork(std::move(work), [this](const Status& status) { Finish(status); });
    return ReleaseSession();
  }
  // This run may change the files: the next one lists them again.
  record_.local_stamp = 0;
  if (Status missing = CheckMissingFolder(); !missing.ok()) return Finish(missing);
  // A folder never synced whose files carry UIDs (another tool's mirror, a
  // lost index): the dry run makes the header scan to count what the real
  // run would adopt rather than download.
  if (job_.dry_run && record_.uidvalidity == 0 && !FilesCarryUids()) {
    report_.path = "initial";
    report_.would_fetch = job_.policy.pull ? job_.status_messages.value_or(0) : 0;
    if (job_.local && job_.policy.push) {
      report_.appended = static_cast<uint32_t>(job_.local->state.unknown.size());
    }
    return Finish(Status::Ok());
  }

  Result<std::unique_ptr<store::MaildirFolder>> folder =
      store::MaildirFolder::Open(job_.local_path, /*create=*/!job_.dry_run, job_.root);
  if (!folder.ok()) return Finish(folder.error());
  folder_ = std::move(folder).value();
  if (!job_.dry_run) {
    Result<size_t> cleaned = folder_->CleanTmp(job_.run_started);
    if (cleaned.ok() && *cleaned > 0) {
      Log(LogLevel::kInfo, job_.log_context + ": removed " + std::to_string(*cleaned) +
                               " unfinished file(s) from tmp/");
    }
  }

  // EXAMINE unless local changes are to be stored: a pull never changes
  // anything on the server, not even \Recent. With QRESYNC the server
  // reports what changed since the last run in its SELECT responses
  // (RFC 7162 §3.2.5).
  std::optional<imap::QresyncParams> qresync;
  if (session_->enabled().count("QRESYNC") > 0 && record_.uidvalidity != 0 &&
      record_.highestmodseq != 0) {
    qresync = imap::QresyncParams{record_.uidvalidity, record_.highestmodseq};
    qresync_select_ = true;
  }
  const bool read_only =
      job_.dry_run || !job_.policy.push || !job_.local || !HasKnownChanges(*job_.local);
  session_->Select(
      job_.remote_name, read_only,
      [this](Result<imap::SelectedMailbox> selected) { OnSelected(std::move(selected)); }, qresync);
}

void FolderPull::OnSelected(Result<imap::SelectedMailbox> selected) {
  if (!selected.ok()) return Finish(selected.error());
  selected_ = std::move(selected).value();
  if (record_.uidvalidity != 0 && record_.uidvalidity != selected_.uidvalidity) {
    report_.uidvalidity_changed = true;
    report_.path = "UIDVALIDITY changed";
    if (job_.dry_run) return Finish(Status::Ok());
    Log(LogLevel::kWarning, job_.log_context + ": UIDVALIDITY changed from " +
                                std::to_string(record_.uidvalidity) + " to " +
                                std::to_string(selected_.uidvalidity) +
                                "; matching local messages to the new UIDs");
    return Rematch();
  }
  if (record_.uidvalidity == 0) {
    // The index has never seen this folder, yet files here may carry UIDs
    // (a lost or deleted index, another tool's mirror). Their UIDVALIDITY is
    // unknown: match them to the server like after a UIDVALIDITY change,
    // rather than storing every message a second time.
    Result<std::vector<store::MaildirFolder::Entry>> entries = folder_->Scan();
    if (!entries.ok()) return Finish(entries.error());
    for (const store::MaildirFolder::Entry& entry : *entries) {
      if (entry.name.uid != 0) {
        if (!job_.dry_run) {
          Log(LogLevel::kWarning, job_.log_context +
                                      ": the index does not know this folder but its files carry "
                                      "UIDs; matching them to the server's messages");
        }
        return Rematch();
      }
    }
  }
  AdoptAndFetch();
}

namespace {}  // namespace

// Local files are matched to the server's current UIDs (by MatchKey:
// duplicates paired in UID order) from one scan of the server's headers, no
// body: renamed to carry the new UID and re-indexed; only unmatched server
// messages are downloaded later. Local files that match nothing lose their
// ",U=" so no stale UID is ever believed again; they are kept, never deleted.
void FolderPull::Rematch() {
  struct Scanned {
    uint32_t uid;
    std::string key;
    RemoteFacts facts;
  };
  auto scanned = std::make_shared<std::vector<Scanned>>();
  imap::Command command{{"UID FETCH 1:* (UID FLAGS RFC822.SIZE INTERNALDATE "
                         "BODY.PEEK[HEADER.FIELDS (MESSAGE-ID DATE FROM SUBJECT)])\r\n"},
                        "UID FETCH",
                        false};
  if (selected_.exists == 0) command = imap::Command{{"NOOP\r\n"}, "NOOP", false};
  session_->Execute(
      std::move(command),
      [scanned](const imap::Response& response) {
        if (response.type != imap::ResponseType::kFetch || !response.fetch.uid) return;
        const imap::FetchData& fetch = response.fetch;
        // An unsolicited FETCH (another client changed flags meanwhile)
        // carries neither: it is not a message of the scan.
        if (!fetch.rfc822_size || fetch.bodies.empty()) return;
        std::string_view header;
        for (const imap::BodySection& body : fetch.bodies) header = body.data;
        RemoteFacts facts;
        facts.size = fetch.rfc822_size.value_or(0);
        facts.internaldate =
            fetch.internaldate ? imap::ParseInternalDate(*fetch.internaldate).value_or(0) : 0;
        std::vector<std::string> flags(fetch.flags.begin(), fetch.flags.end());
        facts.flags = store::SplitImapFlags(flags).bits;
        scanned->push_back(Scanned{*fetch.uid, MatchKey(header, facts.size), facts});
      },
      [this, scanned](Result<imap::TaggedReply> reply) {
        if (!reply.ok()) return Finish(reply.error());
        if (reply->condition != imap::Condition::kOk) {
          return Finish(MakeError(ErrorKind::kProtocol, "UID FETCH failed: " + reply->text));
        }
        std::map<std::string, std::vector<uint32_t>> by_key;  // new UIDs, ascending
        std::unordered_map<uint32_t, RemoteFacts> remote;
        std::sort(scanned->begin(), scanned->end(),
                  [](const Scanned& a, const Scanned& b) { return a.uid < b.uid; });
        for (const Scanned& message : *scanned) {
          by_key[message.key].push_back(message.uid);
          remote[message.uid] = message.facts;
        }
        if (job_.dry_run) return Finish(CountRematch(by_key, remote.size()));
        Status status = ApplyRematch(by_key, remote);
        if (!status.ok()) return Finish(status);
        // The files now carry their new UIDs: the scan must see them so.
        status = RescanLocal();
        if (!status.ok()) return Finish(status);
        AdoptAndFetch();
      });
}

Status FolderPull::ApplyRematch(std::map<std::string, std::vector<uint32_t>>& by_key,
                                const std::unordered_map<uint32_t, RemoteFacts>& remote) {
  Result<std::vector<store::MessageRecord>> old = index_->ListMessages(record_.id);
  if (!old.ok()) return old.error();
  std::map<std::string, store::MessageRecord> old_by_stem;
  for (const store::MessageRecord& message : *old) old_by_stem[message.stem] = message;

  Result<std::vector<store::MaildirFolder::Entry>> entries = folder_->Scan();
  if (!entries.ok()) return entries.error();
  std::sort(entries->begin(), entries->end(),
            [](const auto& a, const auto& b) { return a.name.uid < b.name.uid; });

  store::Index::Batch batch;
  batch.ClearFolderMessages(record_.id);
  std::set<std::string> stems;  // the index keeps one UID per stem
  for (const store::MaildirFolder::Entry& entry : *entries) {
    if (entry.name.uid == 0) continue;                    // a local message: not ours
    if (!stems.insert(entry.name.stem).second) continue;  // a copy: left as it is
    std::string path = folder_->EntryPath(entry);
    auto known = old_by_stem.find(entry.name.stem);
    std::string key = FileMatchKey(
        path, known != old_by_stem.end() ? std::optional(known->second.remote_size) : std::nullopt);
    uint32_t new_uid = 0;
    auto match = by_key.find(key);
    if (match != by_key.end() && !match->second.empty()) {
      new_uid = match->second.front();
      match->second.erase(match->second.begin());
    }
    std::string new_name = store::MakeMaildirName(entry.name.stem, new_uid, entry.name.flags,
                                                  entry.name.other_letters);
    Status renamed = folder_->RenameEntry(entry, new_name);
    if (!renamed.ok()) return renamed;
    if (new_uid == 0) continue;
    const RemoteFacts& server = remote.at(new_uid);
    store::MessageRecord message;
    if (known != old_by_stem.end()) {
      message = known->second;
    } else {
      Result<std::pair<uint64_t, uint64_t>> digest = folder_->DigestOf(new_name, entry.in_cur);
      if (!digest.ok()) return digest.error();
      message.digest = digest->first;
      message.size = digest->second;
      message.remote_size = server.size;
      message.internaldate = server.internaldate;
    }
    message.uid = new_uid;
    message.stem = entry.name.stem;
    message.in_cur = entry.in_cur;
    // What both sides agree on is the base; what only one side has then
    // counts as that side's change, so the next comparison keeps the union
    // and no flag set on either side while the index was lost is dropped.
    message.flags = entry.name.flags;
    if (server.flags != entry.name.flags) {
      message.flags &= server.flags;
      flags_unmerged_ = true;
    }
    batch.PutMessage(record_.id, message);
    ++report_.matched;
  }
  Status synced = folder_->SyncDirectories();
  if (!synced.ok()) return synced;
  record_.uidvalidity = selected_.uidvalidity;
  record_.uidnext = 0;
  record_.highestmodseq = 0;
  batch.PutFolder(record_);
  return index_->Commit(batch);
}

// Whether a file of the folder carries a UID: from the run's local scan, or
// with direction = pull (no scan) from a listing of the folder.
bool FolderPull::FilesCarryUids() const {
  auto carries_uid = [](const store::MaildirFolder::Entry& entry) { return entry.name.uid != 0; };
  if (job_.local != nullptr) {
    return std::any_of(job_.local->state.unknown.begin(), job_.local->state.unknown.end(),
                       carries_uid);
  }
  struct stat st {};
  if (::stat((job_.local_path + "/cur").c_str(), &st) != 0) return false;
  Result<std::unique_ptr<store::MaildirFolder>> folder =
      store::MaildirFolder::Open(job_.local_path, /*create=*/false, job_.root);
  if (!folder.ok()) return false;
  Result<std::vector<store::MaildirFolder::Entry>> entries = (*folder)->Scan();
  return entries.ok() && std::any_of(entries->begin(), entries->end(), carries_uid);
}

// The dry run of ApplyRematch: counts what the real run would adopt,
// download and upload, and changes nothing.
Status FolderPull::CountRematch(std::map<std::string, std::vector<uint32_t>>& by_key,
                                size_t server_messages) {
  Result<std::vector<store::MaildirFolder::Entry>> entries = folder_->Scan();
  if (!entries.ok()) return entries.error();
  std::sort(entries->begin(), entries->end(),
            [](const auto& a, const auto& b) { return a.name.uid < b.name.uid; });
  std::set<std::string> stems;
  uint32_t matched = 0;
  uint32_t unmatched = 0;
  for (const store::MaildirFolder::Entry& entry : *entries) {
    if (!stems.insert(entry.name.stem).second) continue;  // a copy: left as it is
    auto match = entry.name.uid == 0 ? by_key.end()
                                     : by_key.find(FileMatchKey(folder_->EntryPath(entry), {}));
    if (match != by_key.end() && !match->second.empty()) {
      match->second.erase(match->second.begin());
      ++matched;
    } else {
      ++unmatched;
    }
  }
  report_.path = "initial";
  report_.matched = matched;
  report_.would_fetch = job_.policy.pull ? static_cast<uint32_t>(server_messages - matched) : 0;
  report_.appended = job_.policy.push ? unmatched : 0;
  return Status::Ok();
}

void FolderPull::AdoptAndFetch() {
  if (job_.dry_run) {
    Result<std::vector<uint32_t>> uids = index_->ListUids(record_.id);
    if (!uids.ok()) return Finish(uids.error());
    known_uids_ = std::move(uids).value();
    return SyncKnown();
  }
  Status adopted = AdoptOrphans();
  if (!adopted.ok()) return Finish(adopted);
  SyncKnown();
}

void FolderPull::SyncKnown() {
  if (known_uids_.empty() || record_.uidnext == 0) {
    if (report_.path.empty()) report_.path = "initial";
    if (job_.dry_run) return CountDryRunNew();
    // Files just matched to the server's messages (Rematch) exist there.
    if (known_uids_.empty() || report_.matched > 0) return FetchNew();
    // An interrupted first download: its messages (indexed, or adopted just
    // now) may have been expunged by another client since. Later runs ask
    // only for changes after this one's HIGHESTMODSEQ, so ask now which
    // still exist; the rest go as any server expunge does.
    session_->SearchAllUids([this](Result<imap::UidRanges> existing) {
      if (!existing.ok()) return Finish(existing.error());
      ApplyKnownChanges({}, *existing, {});
    });
    return;
  }
  if (job_.compare_all_flags) return FullScan("flags to merge after matching files");
  const bool modseqs =
      selected_.highestmodseq.has_value() && !selected_.nomodseq && record_.highestmodseq != 0;
  if (modseqs && *selected_.highestmodseq < record_.highestmodseq) {
    return FullScan("HIGHESTMODSEQ went backwards (" + std::to_string(record_.highestmodseq) +
                    " -> " + std::to_string(*selected_.highestmodseq) + ")");
  }
  if (qresync_select_ && modseqs && selected_.uidvalidity == record_.uidvalidity) {
    report_.path = "QRESYNC";
    std::vector<uint32_t> vanished;
    for (const std::string& set : selected_.vanished_earlier) {
      std::optional<imap::UidRanges> ranges = imap::ParseSequenceSet(set);
      if (!ranges) return FullScan("unreadable VANISHED set");
      // Only UIDs we hold matter; the set may span millions of others.
      for (const auto& [low, high] : *ranges) {
        for (auto it = std::lower_bound(known_uids_.begin(), known_uids_.end(), low);
             it != known_uids_.end() && *it <= high; ++it) {
          vanished.push_back(*it);
        }
      }
    }
    ApplyKnownChanges(selected_.changed, std::nullopt, vanished);
    return;
  }
  if (modseqs &&
      session_->enabled().count("CONDSTORE") + session_->enabled().count("QRESYNC") > 0) {
    report_.path = "CONDSTORE";
    const std::string known_range = "1:" + std::to_string(known_uids_.back());
    auto updates = std::make_shared<std::optional<Result<std::vector<imap::FlagUpdate>>>>();
    auto existing = std::make_shared<std::optional<Result<imap::UidRanges>>>();
    // Both commands go out at once; whichever answers last applies.
    auto join = [this, updates, existing] {
      if (!updates->has_value() || !existing->has_value()) return;
      if (!(*updates)->ok()) return Finish((*updates)->error());
      if (!(*existing)->ok()) return Finish((*existing)->error());
      ApplyKnownChanges((*updates)->value(), (*existing)->value(), {});
    };
    session_->FetchFlags(known_range, record_.highestmodseq,
                         [updates, join](Result<std::vector<imap::FlagUpdate>> result) {
                           *updates = std::move(result);
                           join();
                         });
    session_->SearchAllUids([existing, join](Result<imap::UidRanges> result) {
      *existing = std::move(result);
      join();
    });
    return;
  }
  FullScan(selected_.nomodseq ? "the folder has no mod-sequences (NOMODSEQ)"
                              : "the server offers no CONDSTORE");
}

void FolderPull::FullScan(const std::string& why) {
  Log(LogLevel::kDebug, job_.log_context + ": full flag scan: " + why);
  report_.path = "full scan";
  session_->FetchFlags("1:" + std::to_string(known_uids_.back()), 0,
                       [this](Result<std::vector<imap::FlagUpdate>> updates) {
                         if (!updates.ok()) return Finish(updates.error());
                         // Every message still there answered: the rest is gone.
                         std::vector<uint32_t> present;
                         for (const imap::FlagUpdate& update : *updates)
                           present.push_back(update.uid);
                         std::sort(present.begin(), present.end());
                         imap::UidRanges ranges;
                         for (uint32_t uid : present) ranges.emplace_back(uid, uid);
                         ApplyKnownChanges(*updates, ranges, {});
                       });
}

// Renames or removes each file under the name the index predicts; files a
// reader renamed meanwhile are found by one scan of the folder. Then makes
// it all durable and queues the index updates in applied_.
Status FolderPull::ApplyLocally(std::vector<LocalChange>& changes) {
  // Returns whether the file was there under `entry`'s name.
  auto apply = [this](LocalChange& change, const store::MaildirFolder::Entry& entry,
                      bool predicted) -> Result<bool> {
    if (change.remove) {
      if (predicted) return folder_->RemoveIfPresent(entry);
      Status removed = folder_->RemoveEntry(entry);
      if (!removed.ok()) return removed.error();
      return true;
    }
    if (change.flags == entry.name.flags) return true;  // a keyword: the name stays
    // Read mail belongs in cur/; a message never moves back to new/.
    bool to_cur = entry.in_cur || (change.flags & store::kFlagSeen) != 0;
    std::string name = store::MakeMaildirName(change.record.stem, change.record.uid, change.flags,
                                              entry.name.other_letters);
    Result<bool> renamed = true;
    if (predicted) {
      renamed = folder_->RenameIfPresent(entry, name, to_cur);
    } else if (Status s = folder_->RenameEntry(entry, name, to_cur); !s.ok()) {
      return s.error();
    }
    if (renamed.ok() && *renamed) change.record.in_cur = to_cur;
    return renamed;
  };

  std::vector<LocalChange*> elsewhere;
  for (LocalChange& change : changes) {
    const store::MessageRecord& record = change.record;
    store::MaildirFolder::Entry predicted;
    if (change.file) {
      predicted = *change.file;  // as scanned: a reader may have renamed it since
    } else {
      predicted.name.stem = record.stem;
      predicted.name.uid = record.uid;
      predicted.name.flags = record.flags;
      predicted.name.has_info = true;
      predicted.in_cur = record.in_cur;
      predicted.file_name = store::MakeMaildirName(record.stem, record.uid, record.flags);
    }
    Result<bool> found = apply(change, predicted, /*predicted=*/true);
    if (!found.ok()) return found.error();
    if (!*found) elsewhere.push_back(&change);
  }
  if (!elsewhere.empty()) {
    Log(LogLevel::kDebug, job_.log_context + ": " + std::to_string(elsewhere.size()) +
                              " file(s) renamed locally; scanning the folder for them");
    Result<std::vector<store::MaildirFolder::Entry>> entries = folder_->Scan();
    if (!entries.ok()) return entries.error();
    std::map<std::string_view, const store::MaildirFolder::Entry*> by_stem;
    for (const store::MaildirFolder::Entry& entry : *entries) by_stem[entry.name.stem] = &entry;
    for (LocalChange* change : elsewhere) {
      auto entry = by_stem.find(change->record.stem);
      // Gone locally too: an expunge has nothing left to do, and a flag
      // change is still recorded (a pull does not download it again).
      if (entry == by_stem.end()) continue;
      Result<bool> applied = apply(*change, *entry->second, /*predicted=*/false);
      if (!applied.ok()) return applied.error();
    }
  }
  if (changes.empty()) return Status::Ok();
  renamed_locally_ = true;  // durable with the folder's next disk work
  for (LocalChange& change : changes) {
    if (change.remove) {
      applied_.DeleteMessage(record_.id, change.record.uid);
      ++report_.expunged;
      continue;
    }
    change.record.flags = change.flags;
    change.record.keywords = std::move(change.keywords);
    applied_.PutMessage(record_.id, change.record);
    ++report_.flag_changes;
  }
  return Status::Ok();
}

// Files renamed into place by a run that died before its index commit carry
// their UID in the name: take them into the index instead of fetching again.
// Only a run that was downloading (fetch_pending) can have left such files.
Status FolderPull::AdoptOrphans() {
  Result<std::vector<uint32_t>> uids = index_->ListUids(record_.id);
  if (!uids.ok()) return uids.error();
  known_uids_ = std::move(uids).value();
  if (!record_.fetch_pending) return Status::Ok();

  Result<std::vector<store::MessageRecord>> messages = index_->ListMessages(record_.id);
  if (!messages.ok()) return messages.error();
  Result<std::vector<store::MaildirFolder::Entry>> entries = folder_->Scan();
  if (!entries.ok()) return entries.error();
  store::Index::Batch batch;
  std::set<uint32_t> adopted;
  std::set<std::string> stems;  // the index keeps one UID per stem
  for (const store::MessageRecord& message : *messages) stems.insert(message.stem);
  for (const store::MaildirFolder::Entry& entry : *entries) {
    uint32_t uid = entry.name.uid;
    if (uid == 0 || std::binary_search(known_uids_.begin(), known_uids_.end(), uid)) continue;
    if (stems.count(entry.name.stem) > 0) {
      Log(LogLevel::kWarning, job_.log_context + ": " + entry.file_name +
                                  " repeats the name of another message; leaving it out");
      continue;
    }
    if (record_.uidvalidity == 0 && messages->empty()) {
      // A folder the index has never synced: a ",U=" here was written under
      // an unknown UIDVALIDITY (another tool, a lost index). Leave it.
      continue;
    }
    stems.insert(entry.name.stem);
    if (!adopted.insert(uid).second) {
      Log(LogLevel::kWarning, job_.log_context + ": two files claim UID " + std::to_string(uid) +
                                  "; keeping " + entry.file_name + " out of the index");
      continue;
    }
    Result<std::pair<uint64_t, uint64_t>> digest = folder_->DigestOf(entry.file_name, entry.in_cur);
    if (!digest.ok()) return digest.error();
    store::MessageRecord message;
    message.uid = uid;
    message.stem = entry.name.stem;
    message.in_cur = entry.in_cur;
    message.flags = entry.name.flags;
    message.digest = digest->first;
    message.size = digest->second;
    batch.PutMessage(record_.id, message);
  }
  if (batch.empty()) return Status::Ok();
  Status committed = index_->Commit(batch);
  if (!committed.ok()) return committed;
  report_.adopted = static_cast<uint32_t>(adopted.size());
  known_uids_.insert(known_uids_.end(), adopted.begin(), adopted.end());
  std::sort(known_uids_.begin(), known_uids_.end());
  Log(LogLevel::kInfo, job_.log_context + ": adopted " + std::to_string(adopted.size()) +
                           " message(s) stored by an interrupted run");
  return Status::Ok();
}

// The folder's record and the changes already applied, with no download.
void FolderPull::CommitWithoutDownload() {
  if (job_.policy.pull) {
    if (selected_.uidnext != 0) record_.uidnext = std::max(record_.uidnext, selected_.uidnext);
    if (selected_.highestmodseq && !flags_unmerged_) {
      record_.highestmodseq = *selected_.highestmodseq;
    }
    record_.messages = selected_.exists;
  }
  record_.fetch_pending = false;
  // No file was touched: the Maildir still matches the index as scanned.
  if (!renamed_locally_ && !HasUploads()) record_.local_stamp = job_.local_stamp;
  auto work = std::make_unique<DiskWork>();
  if (renamed_locally_) work->synced_folders.push_back(folder_.get());
  work->index.Append(applied_);
  work->index.PutFolder(record_);
  SubmitDiskWork(std::move(work), [this](const Status& status) { AfterPull(status); });
  if (!HasUploads()) ReleaseSession();
}

void FolderPull::FetchNew() {
  Status prepared = PrepareNewLocal();
  if (!prepared.ok()) return Finish(prepared);
  fetch_from_ = std::max<uint32_t>(record_.uidnext, 1);
  // Messages deleted here but changed on the server come back: every
  // other UID from the lowest of them on is known or gone.
  if (!refetch_.empty()) fetch_from_ = std::min(fetch_from_, refetch_.front());
  record_.uidvalidity = selected_.uidvalidity;
  // Up to UIDNEXT - 1 when the server told it: "n:*" would match the
  // highest UID even below n.
  std::string set = imap::FormatSetExcluding(
      fetch_from_, selected_.uidnext != 0 ? selected_.uidnext - 1 : 0, known_uids_);
  // direction = push: the server's new messages stay there (and UIDNEXT
  // where it was, so that a later pull fetches them), except that those
  // with the content of a file to upload are that file (an upload whose
  // rename a killed run did not make).
  if (!job_.policy.pull && HasUploads() && selected_.exists != 0 && !set.empty()) {
    return FindUploadedBySize(set);
  }
  if (selected_.exists == 0 || set.empty() || !job_.policy.pull) return CommitWithoutDownload();
  // Record the folder (and its UIDVALIDITY) before the first message lands,
  // with the download marked as under way, so that a run killed mid-fetch
  // looks for this folder's files again: nothing is renamed into place
  // before this is durable (ends_group).
  record_.fetch_pending = true;
  auto work = std::make_unique<DiskWork>();
  if (renamed_locally_) work->synced_folders.push_back(folder_.get());
  work->index.Append(applied_);
  work->index.PutFolder(record_);
  work->ends_group = true;
  fetch_to_ = selected_.uidnext != 0 ? selected_.uidnext - 1 : 0;
  next_chunk_ = fetch_from_;
  if (fetch_to_ != 0) {
    // Expunged UIDs leave gaps: spread the wanted messages over the range.
    size_t known =
        known_uids_.end() - std::lower_bound(known_uids_.begin(), known_uids_.end(), fetch_from_);
    double wanted = std::max<double>(1, double(selected_.exists) - double(known));
    uids_per_message_ = std::max(1.0, double(fetch_to_ - fetch_from_ + 1) / wanted);
  }
  lanes_.push_back(std::make_unique<Lane>(this, session_));
  lanes_.back()->ready = true;
  gmail_ = job_.gmail_labels != nullptr && fetch_to_ != 0 && !link_only_ &&
           session_->capabilities().Has("X-GM-EXT-1");
  SubmitDiskWork(std::move(work), [this](const Status& status) {
    if (!status.ok()) return Finish(status);
    if (gmail_) return FetchGmailIds();
    downloading_ = true;
    IssueChunks();
  });
}

namespace {

// Collects a metadata-only FETCH (no bodies), checking that each UID is in
// the range asked for and answered once.
class MetadataCollector : public imap::FetchSink {
 public:
  MetadataCollector(uint32_t low, uint32_t high) : low_(low), high_(high) {}
  Status OnBodyBegin(uint32_t, uint64_t) override {
    return MakeError(ErrorKind::kProtocol, "the server sent a message body nobody asked for");
  }
  Status OnBodyData(std::string_view) override { return Status::Ok(); }
  Status OnBodyEnd() override { return Status::Ok(); }
  Status OnMessage(const imap::FetchedMessage& message) override {
    if (!message.uid) return Status::Ok();  // an unsolicited flag update
    const uint32_t uid = *message.uid;
    if (uid < low_ || uid > high_ || !messages.emplace(uid, message).second) {
      return MakeError(ErrorKind::kProtocol,
                       "the server sent UID " + std::to_string(uid) +
                           (uid < low_ || uid > high_ ? ", which was not asked for," : " twice") +
                           " in answer to UID FETCH " + std::to_string(low_) + ":" +
                           std::to_string(high_) + " (X-GM-MSGID)");
    }
    return Status::Ok();
  }
  std::map<uint32_t, imap::FetchedMessage> messages;

 private:
  uint32_t low_;
  uint32_t high_;
};

}  // namespace

void FolderPull::FetchGmailIds() {
  auto collector = std::make_shared<MetadataCollector>(fetch_from_, fetch_to_);
  const std::string set = imap::FormatSetExcluding(fetch_from_, fetch_to_, known_uids_);
  session_->UidFetch(set, "UID FLAGS INTERNALDATE RFC822.SIZE X-GM-MSGID", collector.get(),
                     [this, collector](const Status& status) {
                       if (!status.ok()) return Finish(status);
                       for (auto& [uid, message] : collector->messages) {
                         if (message.gm_msgid.value_or(0) == 0 || !message.has_flags) continue;
                         gmail_new_.emplace(uid, std::move(message));
                       }
                       downloading_ = true;
                       IssueChunks();
                     });
}

// Links the messages of [low, high] that another label's folder already
// stores, looked up now so that copies committed by folders running
// alongside count too; the rest of the range is downloaded.
void FolderPull::LinkLabelCopies(uint32_t low, uint32_t high) {
  auto it = gmail_new_.lower_bound(low);
  while (it != gmail_new_.end() && it->first <= high) {
    imap::FetchedMessage message = std::move(it->second);
    it = gmail_new_.erase(it);
    std::optional<GmailLabels::Source> source =
        job_.gmail_labels->Find(*message.gm_msgid, record_.id);
    if (!source) continue;
    Result<std::unique_ptr<store::TmpMessage>> link =
        folder_->LinkMessage(source->path, source->size, source->digest);
    if (!link.ok()) {
      Log(LogLevel::kDebug, job_.log_context + ": UID " + std::to_string(*message.uid) +
                                " is downloaded: " + link.error().message);
      continue;
    }
    message.has_body = true;
    if (Status stored = OnFetched(message, std::move(link).value(), /*label_link=*/true);
        !stored.ok()) {
      if (fetch_status_.ok()) fetch_status_ = stored;
      return;
    }
  }
  // Linked messages join known_uids_ now, so that the range's UID set
  // leaves them out.
  if (batch_label_links_ > 0) (void)FlushBatch();
}

// The download runs as a window of UID FETCH commands per session over
// consecutive UID ranges: enough in flight that a session never waits a
// round trip, few enough (and none while the disk writer is behind) that
// what has arrived but is not yet durable stays bounded however large the
// folder. Idle sessions of the pool may join (AddHelper) and take ranges.
void FolderPull::IssueChunks() {
  if (!downloading_) return;
  for (size_t i = 0; i < lanes_.size(); ++i) {
    Lane& lane = *lanes_[i];
    while (lane.ready && lane.in_flight < kFetchWindow && fetch_status_.ok() && disk_status_.ok() &&
           next_chunk_ != 0) {
      if (!disk_->has_room()) {
        if (!waiting_for_room_) {
          waiting_for_room_ = true;
          disk_->WhenRoom([this] {
            waiting_for_room_ = false;
            IssueChunks();
          });
        }
        return;
      }
      Chunk chunk;
      std::string set = NextChunk(chunk);
      if (set.empty()) continue;  // everything in the range is already here
      const uint32_t low = chunk.low;
      lane.chunks.push_back(std::move(chunk));
      ++lane.in_flight;
      ++chunks_in_flight_;
      lane.session_->UidFetch(
          set, gmail_ ? kGmailFetchItems : kFetchItems, &lane,
          [this, &lane, low](const Status& fetched) { OnChunkDone(lane, low, fetched); });
    }
    // A helper with nothing left to fetch goes back to the pool.
    if (i > 0 && lane.ready && lane.in_flight == 0 && (next_chunk_ == 0 || !fetch_status_.ok())) {
      ReleaseHelper(lane);
    }
  }
  if (chunks_in_flight_ == 0 && !waiting_for_room_ &&
      (next_chunk_ == 0 || !fetch_status_.ok() || !disk_status_.ok())) {
    downloading_ = false;
    for (size_t i = 1; i < lanes_.size(); ++i) ReleaseHelper(*lanes_[i]);
    OnFetchDone(fetch_status_);
  }
}

std::string FolderPull::NextChunk(Chunk& chunk) {
  chunk.low = next_chunk_;
  if (fetch_to_ == 0) {
    // No UIDNEXT from the server: one open-ended command.
    std::string set = imap::FormatSetExcluding(next_chunk_, 0, known_uids_);
    next_chunk_ = 0;
    return set;
  }
  uint64_t span = std::max<uint64_t>(1, uint64_t(double(ChunkMessages()) * uids_per_message_));
  uint64_t last = std::min<uint64_t>(uint64_t(next_chunk_) + span - 1, fetch_to_);
  chunk.high = uint32_t(last);
  if (gmail_) LinkLabelCopies(next_chunk_, uint32_t(last));
  std::string set = imap::FormatSetExcluding(next_chunk_, uint32_t(last), known_uids_);
  next_chunk_ = last == fetch_to_ ? 0 : uint32_t(last + 1);
  return set;
}

// Servers may interleave the answers of pipelined commands, so a UID may
// belong to any chunk of the lane still in flight (they are disjoint).
Status FolderPull::CheckAnswer(std::deque<Chunk>& chunks, uint32_t uid) const {
  auto refuse = [&](const std::string& what) {
    std::string asked;
    for (const Chunk& chunk : chunks) {
      asked += (asked.empty() ? "" : ", ") + std::to_string(chunk.low) + ":" +
               (chunk.high == 0 ? std::string("*") : std::to_string(chunk.high));
    }
    return MakeError(ErrorKind::kProtocol,
                     "the server sent " + what + " in answer to UID FETCH " + asked +
                         "; stopped so that no message is stored under a wrong UID");
  };
  if (uid == 0) return refuse("a message with UID 0");
  for (Chunk& chunk : chunks) {
    // "n:*" also matches the highest UID below n (RFC 3501 §6.4.8).
    const bool open_below = chunk.high == 0 && uid < chunk.low && uid < fetch_from_;
    if (!open_below && (uid < chunk.low || (chunk.high != 0 && uid > chunk.high))) continue;
    if (!chunk.answered.insert(uid).second) return refuse("UID " + std::to_string(uid) + " twice");
    return Status::Ok();
  }
  return refuse("UID " + std::to_string(uid) + ", which was not asked for");
}

// Messages per command: about kChunkBytes by the sizes seen so far.
size_t FolderPull::ChunkMessages() const {
  if (received_messages_ < kChunkMessagesMin) return kChunkMessagesFirst;
  uint64_t average = std::max<uint64_t>(1, received_bytes_ / received_messages_);
  return std::clamp<size_t>(kChunkBytes / average, kChunkMessagesMin, kChunkMessagesMax);
}

void FolderPull::OnChunkDone(Lane& lane, uint32_t low, const Status& status) {
  --lane.in_flight;
  --chunks_in_flight_;
  std::erase_if(lane.chunks, [low](const Chunk& chunk) { return chunk.low == low; });
  if (!status.ok()) {
    lane.current_.reset();  // a body cut off by the failure is dropped (and unlinked)
    if (fetch_status_.ok()) fetch_status_ = status;
  }
  IssueChunks();
}

uint64_t FolderPull::unrequested() const {
  if (!downloading_ || next_chunk_ == 0 || !fetch_status_.ok()) return 0;
  return uint64_t(double(fetch_to_ - next_chunk_ + 1) / uids_per_message_);
}

void FolderPull::AddHelper(imap::Session* session, std::function<void()> release) {
  Lane& lane = *lanes_.emplace_back(std::make_unique<Lane>(this, session));
  lane.release = std::move(release);
  // The EXAMINE counts as in flight, so that the download does not end
  // under it. Read-only: the helper only fetches (BODY.PEEK), and EXAMINE
  // spares the server the \Recent bookkeeping of a second SELECT.
  ++lane.in_flight;
  ++chunks_in_flight_;
  session->Select(job_.remote_name, /*read_only=*/true,
                  [this, &lane](Result<imap::SelectedMailbox> selected) {
                    --lane.in_flight;
                    --chunks_in_flight_;
                    if (selected.ok() && selected->uidvalidity == selected_.uidvalidity) {
                      lane.ready = true;
                    } else {
                      // Not the same mailbox any more, or the session failed:
                      // the folder's own session goes on without it.
                      ReleaseHelper(lane);
                    }
                    IssueChunks();  // also releases it if nothing is left
                  });
}

void FolderPull::ReleaseHelper(Lane& lane) {
  lane.ready = false;
  if (!lane.release) return;
  auto release = std::move(lane.release);
  lane.release = nullptr;
  release();
}

Status FolderPull::Lane::OnBodyBegin(uint32_t /*seq*/, uint64_t /*size*/) {
  current_.reset();  // an unclaimed previous body is dropped (and unlinked)
  Result<std::unique_ptr<store::TmpMessage>> message = pull_->folder_->BeginMessage();
  if (!message.ok()) return message.error();
  current_ = std::move(message).value();
  return Status::Ok();
}

Status FolderPull::Lane::OnBodyData(std::string_view chunk) { return current_->Write(chunk); }

Status FolderPull::Lane::OnBodyEnd() { return current_->Finish(); }

Status FolderPull::Lane::OnMessage(const imap::FetchedMessage& message) {
  if (message.uid && message.has_body && !chunks.empty()) {
    Status checked = pull_->CheckAnswer(chunks, *message.uid);
    if (!checked.ok()) {
      current_.reset();  // not stored: dropped from tmp/
      return checked;
    }
  }
  return pull_->OnFetched(message, std::move(current_));
}

Status FolderPull::OnFetched(const imap::FetchedMessage& message,
                             std::unique_ptr<store::TmpMessage> body, bool label_link) {
  if (!disk_status_.ok()) return disk_status_;                 // stops the download
  if (!message.uid || !message.has_body) return Status::Ok();  // unsolicited update
  uint32_t uid = *message.uid;
  // "n:*" also matches the highest UID below n (RFC 3501 §6.4.8).
  if (uid < fetch_from_ || std::binary_search(known_uids_.begin(), known_uids_.end(), uid)) {
    return Status::Ok();
  }
  highest_fetched_ = std::max(highest_fetched_, uid);
  if (!label_link) {
    ++received_messages_;
    if (body != nullptr) received_bytes_ += body->size();
  }
  if (body == nullptr || message.body_nil) {
    Log(LogLevel::kWarning, job_.log_context + ": server sent no content for UID " +
                                std::to_string(uid) + "; it will be fetched again next run");
    ++report_.skipped;
    if (lowest_skipped_ == 0 || uid < lowest_skipped_) lowest_skipped_ = uid;
    return Status::Ok();
  }
  store::ImapFlags flags = store::SplitImapFlags(message.flags);
  store::MessageRecord record;
  record.uid = uid;
  record.stem = body->stem();
  record.in_cur = (flags.bits & store::kFlagSeen) != 0;
  record.flags = flags.bits;
  record.keywords = std::move(flags.keywords);
  record.size = body->size();
  record.remote_size = message.rfc822_size.value_or(0);
  record.digest = body->digest();
  record.gm_msgid = message.gm_msgid.value_or(0);
  if (message.internaldate)
    record.internaldate = imap::ParseInternalDate(*message.internaldate).value_or(0);
  if (batch_records_.empty()) batch_started_ = std::chrono::steady_clock::now();
  if (!new_local_by_digest_.empty() && LinkToLocalFile(record)) {
    body.reset();  // the local file is this message: the download is dropped
    batch_records_.push_back(std::move(record));
    ++batch_linked_;
    return batch_records_.size() >= kBatchMessages ? FlushBatch() : Status::Ok();
  }
  if (link_only_) return Status::Ok();  // direction = push: not stored here
  if (label_link) {
    ++batch_label_links_;
  } else {
    batch_bytes_ += record.size;
  }

  store::DeliveryBatch::Item item;
  item.folder = folder_.get();
  item.message = std::move(body);
  item.uid = uid;
  item.flags = flags.bits;
  item.mtime = record.internaldate;
  batch_.Add(std::move(item));
  batch_records_.push_back(std::move(record));
  if (batch_records_.size() >= kBatchMessages || batch_bytes_ >= kBatchBytes ||
      std::chrono::steady_clock::now() - batch_started_ >= kBatchAge) {
    return FlushBatch();
  }
  return Status::Ok();
}

// Hands the batch to the disk writer; the loop goes on receiving. With
// `folder_done`, the folder record (UIDNEXT, MESSAGES, the download over)
// goes into the same index commit, after every message below it.
Status FolderPull::FlushBatch(bool folder_done) {
  if (batch_records_.empty() && !folder_done) return Status::Ok();
  auto work = std::make_unique<DiskWork>();
  work->delivery.Append(batch_);
  if (batch_renamed_) work->synced_folders.push_back(folder_.get());
  batch_renamed_ = false;
  for (const store::MessageRecord& record : batch_records_) {
    work->index.PutMessage(record_.id, record);
    known_uids_.insert(std::upper_bound(known_uids_.begin(), known_uids_.end(), record.uid),
                       record.uid);
  }
  if (folder_done) work->index.PutFolder(record_);
  const uint32_t label_links = batch_label_links_;
  auto count = static_cast<uint32_t>(batch_records_.size() - batch_linked_ - label_links);
  const uint64_t bytes = batch_bytes_;
  batch_records_.clear();
  batch_bytes_ = 0;
  batch_linked_ = 0;
  batch_label_links_ = 0;
  SubmitDiskWork(std::move(work),
                 [this, count, bytes, label_links, folder_done](const Status& status) {
                   // Counted once stored for good, as the report promises.
                   if (status.ok()) {
                     report_.fetched += count;
                     report_.bytes += bytes;
                     if (job_.downloaded != nullptr) {
                       job_.downloaded->messages += count;
                       job_.downloaded->bytes += bytes;
                     }
                     report_.label_links += label_links;
                   }
                   if (folder_done) AfterPull(status);
                 });
  return Status::Ok();
}

void FolderPull::OnFetchDone(const Status& status) {
  if (!status.ok()) {
    // Whatever was completely received is still worth keeping.
    (void)FlushBatch(/*folder_done=*/false);
    return Finish(status);
  }
  if (!disk_status_.ok()) return Finish(disk_status_);
  // UIDNEXT moves only past what is durable, and never past a message the
  // server failed to deliver.
  uint32_t next = selected_.uidnext != 0 ? selected_.uidnext : highest_fetched_ + 1;
  next = std::max(next, highest_fetched_ + 1);
  if (lowest_skipped_ != 0) next = std::min(next, lowest_skipped_);
  record_.uidnext = std::max(record_.uidnext, next);
  if (selected_.highestmodseq && !flags_unmerged_) {
    record_.highestmodseq = *selected_.highestmodseq;
  }
  record_.messages = selected_.exists;
  record_.fetch_pending = false;
  (void)FlushBatch(/*folder_done=*/true);
  if (!HasUploads()) ReleaseSession();
}

}  // namespace mailmirror::sync
