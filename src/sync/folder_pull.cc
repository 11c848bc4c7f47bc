#include "sync/folder_pull.h"

#include <sys/stat.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <map>
#include <utility>

#include "imap/date.h"
#include "imap/sequence_set.h"
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

constexpr const char* kFetchItems = "UID FLAGS INTERNALDATE RFC822.SIZE BODY.PEEK[]";

struct ParsedFlags {
  uint32_t bits = 0;
  std::vector<std::string> keywords;
};

ParsedFlags ParseFlags(const std::vector<std::string>& flags) {
  ParsedFlags parsed;
  for (const std::string& flag : flags) {
    uint32_t bit = store::FlagFromImap(flag);
    if (bit != 0) {
      parsed.bits |= bit;
    } else if (!flag.empty() && flag[0] != '\\') {
      parsed.keywords.push_back(flag);  // \Recent and unknown system flags are dropped
    }
  }
  return parsed;
}

// The value of the Message-ID header in `header` text (CRLF or LF, folded
// lines allowed), trimmed; empty when absent.
std::string MessageIdFromHeader(std::string_view header) {
  size_t pos = 0;
  while (pos < header.size()) {
    size_t end = header.find('\n', pos);
    if (end == std::string_view::npos) end = header.size();
    std::string_view line = header.substr(pos, end - pos);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.empty()) break;  // end of the header block
    if (line.size() > 11 && EqualsIgnoreCase(line.substr(0, 11), "Message-ID:")) {
      std::string value(line.substr(11));
      // Unfold continuation lines.
      size_t next = end + 1;
      while (next < header.size() && (header[next] == ' ' || header[next] == '\t')) {
        size_t next_end = header.find('\n', next);
        if (next_end == std::string_view::npos) next_end = header.size();
        std::string_view more = header.substr(next, next_end - next);
        if (!more.empty() && more.back() == '\r') more.remove_suffix(1);
        value += more;
        next = next_end + 1;
      }
      size_t first = value.find_first_not_of(" \t");
      size_t last = value.find_last_not_of(" \t");
      return first == std::string::npos ? "" : value.substr(first, last - first + 1);
    }
    pos = end + 1;
  }
  return "";
}

// The Message-ID of a stored message, read from its header block only.
std::string MessageIdOfFile(const std::string& path) {
  std::FILE* file = std::fopen(path.c_str(), "rb");
  if (file == nullptr) return "";
  std::string header;
  char buffer[8192];
  size_t n = 0;
  while (header.size() < (256u << 10) && (n = std::fread(buffer, 1, sizeof buffer, file)) > 0) {
    header.append(buffer, n);
    if (header.find("\n\n") != std::string::npos) break;
  }
  (void)std::fclose(file);  // read-only: nothing to lose
  return MessageIdFromHeader(header);
}

}  // namespace

FolderPull::FolderPull(imap::Session* session, store::Index* index, FolderJob job,
                       std::function<void(FolderReport)> done)
    : session_(session), index_(index), job_(std::move(job)), done_(std::move(done)) {
  report_.local_name = job_.local_name;
}

FolderPull::~FolderPull() = default;

void FolderPull::Finish(const Status& status) {
  if (!done_) return;
  if (!status.ok()) report_.status = status.error().Wrap("folder " + job_.local_name);
  auto done = std::move(done_);
  done_ = nullptr;
  done(report_);
}

void FolderPull::Start() {
  Result<std::unique_ptr<store::MaildirFolder>> folder =
      store::MaildirFolder::Open(job_.local_path, /*create=*/true);
  if (!folder.ok()) return Finish(folder.error());
  folder_ = std::move(folder).value();
  Result<size_t> cleaned = folder_->CleanTmp(job_.run_started);
  if (cleaned.ok() && *cleaned > 0) {
    Log(LogLevel::kInfo, job_.local_name + ": removed " + std::to_string(*cleaned) +
                             " unfinished file(s) from tmp/");
  }

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

  // Nothing happened since the last run: same UIDVALIDITY, UIDNEXT not past
  // what is stored, and the same HIGHESTMODSEQ (every flag change and, with
  // Dovecot and RFC 7162 servers, every expunge raises it). No need to select
  // the folder at all. Without CONDSTORE there is no such proof.
  if (record_.uidvalidity != 0 && record_.highestmodseq != 0 &&
      job_.status_uidvalidity == record_.uidvalidity && job_.status_uidnext &&
      *job_.status_uidnext <= record_.uidnext &&
      job_.status_highestmodseq == record_.highestmodseq) {
    report_.path = "unchanged";
    return Finish(Status::Ok());
  }

  // EXAMINE: a pull never changes anything on the server, not even \Recent.
  // With QRESYNC the server reports what changed since the last run in its
  // SELECT responses (RFC 7162 §3.2.5).
  std::optional<imap::QresyncParams> qresync;
  if (session_->enabled().count("QRESYNC") > 0 && record_.uidvalidity != 0 &&
      record_.highestmodseq != 0) {
    qresync = imap::QresyncParams{record_.uidvalidity, record_.highestmodseq};
    qresync_select_ = true;
  }
  session_->Select(
      job_.remote_name, /*read_only=*/true,
      [this](Result<imap::SelectedMailbox> selected) { OnSelected(std::move(selected)); }, qresync);
}

void FolderPull::OnSelected(Result<imap::SelectedMailbox> selected) {
  if (!selected.ok()) return Finish(selected.error());
  selected_ = std::move(selected).value();
  if (record_.uidvalidity != 0 && record_.uidvalidity != selected_.uidvalidity) {
    report_.uidvalidity_changed = true;
    report_.path = "UIDVALIDITY changed";
    Log(LogLevel::kWarning, job_.local_name + ": UIDVALIDITY changed from " +
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
        Log(LogLevel::kWarning, job_.local_name +
                                    ": the index does not know this folder but its files carry "
                                    "UIDs; matching them to the server's messages");
        return Rematch();
      }
    }
  }
  AdoptAndFetch();
}

namespace {

// What identifies a message across a renumbering: its Message-ID, or for
// messages without one, its size (with CRLF line ends, as RFC822.SIZE counts)
// and arrival time.
std::string MatchKey(const std::string& message_id, uint64_t crlf_size, int64_t internaldate) {
  if (!message_id.empty()) return "id:" + message_id;
  return "size:" + std::to_string(crlf_size) + "@" + std::to_string(internaldate);
}

// Size with CRLF line ends and modification time (our INTERNALDATE) of a
// stored message, for messages the index has no record of.
std::pair<uint64_t, int64_t> CrlfSizeAndTime(const std::string& path) {
  uint64_t size = 0;
  std::FILE* file = std::fopen(path.c_str(), "rb");
  if (file == nullptr) return {0, 0};
  char buffer[65536];
  size_t n = 0;
  while ((n = std::fread(buffer, 1, sizeof buffer, file)) > 0) {
    size += n;
    for (size_t i = 0; i < n; ++i) size += buffer[i] == '\n' ? 1 : 0;
  }
  (void)std::fclose(file);  // read-only: nothing to lose
  struct stat st {};
  int64_t mtime = ::stat(path.c_str(), &st) == 0 ? static_cast<int64_t>(st.st_mtime) : 0;
  return {size, mtime};
}

}  // namespace

// Local files are matched to the server's current UIDs (by Message-ID, or
// size and date without one; duplicates paired in UID order), renamed to
// carry the new UID and re-indexed; only unmatched server messages are
// downloaded later. Local files that match nothing lose their ",U=" so no
// stale UID is ever believed again; they are kept, never deleted.
void FolderPull::Rematch() {
  struct Remote {
    uint32_t uid;
    std::string key;
  };
  auto remotes = std::make_shared<std::vector<Remote>>();
  imap::Command command{
      {"UID FETCH 1:* (UID RFC822.SIZE INTERNALDATE BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])\r\n"},
      "UID FETCH",
      false};
  if (selected_.exists == 0) command = imap::Command{{"NOOP\r\n"}, "NOOP", false};
  session_->Execute(
      std::move(command),
      [remotes](const imap::Response& response) {
        if (response.type != imap::ResponseType::kFetch || !response.fetch.uid) return;
        const imap::FetchData& fetch = response.fetch;
        std::string message_id;
        for (const imap::BodySection& body : fetch.bodies)
          message_id = MessageIdFromHeader(body.data);
        int64_t date =
            fetch.internaldate ? imap::ParseInternalDate(*fetch.internaldate).value_or(0) : 0;
        remotes->push_back(
            Remote{*fetch.uid, MatchKey(message_id, fetch.rfc822_size.value_or(0), date)});
      },
      [this, remotes](Result<imap::TaggedReply> reply) {
        if (!reply.ok()) return Finish(reply.error());
        if (reply->condition != imap::Condition::kOk) {
          return Finish(MakeError(ErrorKind::kProtocol, "UID FETCH failed: " + reply->text));
        }
        std::map<std::string, std::vector<uint32_t>> by_key;  // new UIDs, ascending
        std::sort(remotes->begin(), remotes->end(),
                  [](const Remote& a, const Remote& b) { return a.uid < b.uid; });
        for (const Remote& remote : *remotes) by_key[remote.key].push_back(remote.uid);
        Status status = ApplyRematch(by_key);
        if (!status.ok()) return Finish(status);
        AdoptAndFetch();
      });
}

Status FolderPull::ApplyRematch(std::map<std::string, std::vector<uint32_t>>& by_key) {
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
    std::pair<uint64_t, int64_t> size_and_time =
        known != old_by_stem.end()
            ? std::make_pair(known->second.remote_size, known->second.internaldate)
            : CrlfSizeAndTime(path);
    std::string key = MatchKey(MessageIdOfFile(path), size_and_time.first, size_and_time.second);
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
    store::MessageRecord message;
    if (known != old_by_stem.end()) {
      message = known->second;
    } else {
      Result<std::pair<uint64_t, uint64_t>> digest = folder_->DigestOf(new_name, entry.in_cur);
      if (!digest.ok()) return digest.error();
      message.digest = digest->first;
      message.size = digest->second;
      message.remote_size = size_and_time.first;
      message.internaldate = size_and_time.second;
    }
    message.uid = new_uid;
    message.stem = entry.name.stem;
    message.in_cur = entry.in_cur;
    message.flags = entry.name.flags;
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

void FolderPull::AdoptAndFetch() {
  Status adopted = AdoptOrphans();
  if (!adopted.ok()) return Finish(adopted);
  SyncKnown();
}

void FolderPull::SyncKnown() {
  if (known_uids_.empty() || record_.uidnext == 0) {
    if (report_.path.empty()) report_.path = "initial";
    return FetchNew();
  }
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
      for (uint32_t uid : known_uids_) {
        for (const auto& [low, high] : *ranges) {
          if (uid >= low && uid <= high) {
            vanished.push_back(uid);
            break;
          }
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
  Log(LogLevel::kDebug, job_.local_name + ": full flag scan: " + why);
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

// Applies server-side flag changes and expunges to the local files, then
// records them, and the folder's HIGHESTMODSEQ only with them: a run killed
// before the commit finds the same changes again.
void FolderPull::ApplyKnownChanges(const std::vector<imap::FlagUpdate>& updates,
                                   const std::optional<imap::UidRanges>& existing,
                                   const std::vector<uint32_t>& vanished) {
  Result<std::vector<store::MessageRecord>> records = index_->ListMessages(record_.id);
  if (!records.ok()) return Finish(records.error());
  std::map<uint32_t, const store::MessageRecord*> by_uid;
  for (const store::MessageRecord& record : *records) by_uid[record.uid] = &record;
  Result<std::vector<store::MaildirFolder::Entry>> entries = folder_->Scan();
  if (!entries.ok()) return Finish(entries.error());
  std::map<std::string, const store::MaildirFolder::Entry*> by_stem;
  for (const store::MaildirFolder::Entry& entry : *entries) by_stem[entry.name.stem] = &entry;

  store::Index::Batch batch;
  std::set<uint32_t> removed;
  auto remove = [&](uint32_t uid) -> Status {
    auto record = by_uid.find(uid);
    if (record == by_uid.end() || !removed.insert(uid).second) return Status::Ok();
    auto entry = by_stem.find(record->second->stem);
    if (entry != by_stem.end()) {
      Status gone = folder_->RemoveEntry(*entry->second);
      if (!gone.ok()) return gone;
    }
    batch.DeleteMessage(record_.id, uid);
    ++report_.expunged;
    return Status::Ok();
  };
  for (uint32_t uid : vanished) {
    if (Status s = remove(uid); !s.ok()) return Finish(s);
  }
  if (existing) {
    size_t next = 0;
    for (const auto& [uid, record] : by_uid) {
      while (next < existing->size() && (*existing)[next].second < uid) ++next;
      bool present = next < existing->size() && (*existing)[next].first <= uid;
      if (!present) {
        if (Status s = remove(uid); !s.ok()) return Finish(s);
      }
    }
  }
  for (const imap::FlagUpdate& update : updates) {
    auto record = by_uid.find(update.uid);
    if (record == by_uid.end() || removed.count(update.uid) > 0) continue;
    ParsedFlags flags = ParseFlags(update.flags);
    const store::MessageRecord& old = *record->second;
    if (flags.bits == old.flags && flags.keywords == old.keywords) continue;
    store::MessageRecord changed = old;
    changed.flags = flags.bits;
    changed.keywords = std::move(flags.keywords);
    auto entry = by_stem.find(old.stem);
    if (entry != by_stem.end()) {
      // Read mail belongs in cur/; a message never moves back to new/.
      bool to_cur = entry->second->in_cur || (flags.bits & store::kFlagSeen) != 0;
      std::string name = store::MakeMaildirName(old.stem, update.uid, flags.bits,
                                                entry->second->name.other_letters);
      Status renamed = folder_->RenameEntry(*entry->second, name, to_cur);
      if (!renamed.ok()) return Finish(renamed);
      changed.in_cur = to_cur;
    }
    batch.PutMessage(record_.id, changed);
    ++report_.flag_changes;
  }
  if (!batch.empty()) {
    Status synced = folder_->SyncDirectories();
    if (!synced.ok()) return Finish(synced);
  }
  if (selected_.highestmodseq && !selected_.nomodseq) {
    record_.highestmodseq = *selected_.highestmodseq;
  }
  batch.PutFolder(record_);
  Status committed = index_->Commit(batch);
  if (!committed.ok()) return Finish(committed);
  known_uids_.erase(std::remove_if(known_uids_.begin(), known_uids_.end(),
                                   [&removed](uint32_t uid) { return removed.count(uid) > 0; }),
                    known_uids_.end());
  FetchNew();
}

// Files renamed into place by a run that died before its index commit carry
// their UID in the name: take them into the index instead of fetching again.
Status FolderPull::AdoptOrphans() {
  Result<std::vector<store::MessageRecord>> messages = index_->ListMessages(record_.id);
  if (!messages.ok()) return messages.error();
  known_uids_.clear();
  for (const store::MessageRecord& message : *messages) known_uids_.push_back(message.uid);

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
      Log(LogLevel::kWarning, job_.local_name + ": " + entry.file_name +
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
      Log(LogLevel::kWarning, job_.local_name + ": two files claim UID " + std::to_string(uid) +
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
  Log(LogLevel::kInfo, job_.local_name + ": adopted " + std::to_string(adopted.size()) +
                           " message(s) stored by an interrupted run");
  return Status::Ok();
}

void FolderPull::FetchNew() {
  fetch_from_ = std::max<uint32_t>(record_.uidnext, 1);
  record_.uidvalidity = selected_.uidvalidity;
  // Up to UIDNEXT - 1 when the server told it: "n:*" would match the
  // highest UID even below n.
  std::string set = imap::FormatSetExcluding(
      fetch_from_, selected_.uidnext != 0 ? selected_.uidnext - 1 : 0, known_uids_);
  bool nothing_new = selected_.exists == 0 || set.empty();
  if (nothing_new) {
    if (selected_.uidnext != 0) record_.uidnext = std::max(record_.uidnext, selected_.uidnext);
    if (selected_.highestmodseq) record_.highestmodseq = *selected_.highestmodseq;
    store::Index::Batch batch;
    batch.PutFolder(record_);
    return Finish(index_->Commit(batch));
  }
  // Record the folder (and its UIDVALIDITY) before the first message lands,
  // so that a run killed mid-fetch finds this folder's messages again.
  store::Index::Batch batch;
  batch.PutFolder(record_);
  Status committed = index_->Commit(batch);
  if (!committed.ok()) return Finish(committed);
  session_->UidFetch(set, kFetchItems, this, [this](const Status& status) { OnFetchDone(status); });
}

Status FolderPull::OnBodyBegin(uint32_t /*seq*/, uint64_t /*size*/) {
  current_.reset();  // an unclaimed previous body is dropped (and unlinked)
  Result<std::unique_ptr<store::TmpMessage>> message = folder_->BeginMessage();
  if (!message.ok()) return message.error();
  current_ = std::move(message).value();
  return Status::Ok();
}

Status FolderPull::OnBodyData(std::string_view chunk) { return current_->Write(chunk); }

Status FolderPull::OnBodyEnd() { return current_->Finish(); }

Status FolderPull::OnMessage(const imap::FetchedMessage& message) {
  std::unique_ptr<store::TmpMessage> body = std::move(current_);
  if (!message.uid || !message.has_body) return Status::Ok();  // unsolicited update
  uint32_t uid = *message.uid;
  // "n:*" also matches the highest UID below n (RFC 3501 §6.4.8).
  if (uid < fetch_from_ || std::binary_search(known_uids_.begin(), known_uids_.end(), uid)) {
    return Status::Ok();
  }
  highest_fetched_ = std::max(highest_fetched_, uid);
  if (body == nullptr || message.body_nil) {
    Log(LogLevel::kWarning, job_.local_name + ": server sent no content for UID " +
                                std::to_string(uid) + "; it will be fetched again next run");
    ++report_.skipped;
    if (lowest_skipped_ == 0 || uid < lowest_skipped_) lowest_skipped_ = uid;
    return Status::Ok();
  }
  ParsedFlags flags = ParseFlags(message.flags);
  store::MessageRecord record;
  record.uid = uid;
  record.stem = body->stem();
  record.in_cur = (flags.bits & store::kFlagSeen) != 0;
  record.flags = flags.bits;
  record.keywords = std::move(flags.keywords);
  record.size = body->size();
  record.remote_size = message.rfc822_size.value_or(0);
  record.digest = body->digest();
  if (message.internaldate)
    record.internaldate = imap::ParseInternalDate(*message.internaldate).value_or(0);
  batch_bytes_ += record.size;
  report_.bytes += record.size;

  store::DeliveryBatch::Item item;
  item.folder = folder_.get();
  item.message = std::move(body);
  item.uid = uid;
  item.flags = flags.bits;
  item.mtime = record.internaldate;
  if (batch_.empty()) batch_started_ = std::chrono::steady_clock::now();
  batch_.Add(std::move(item));
  batch_records_.push_back(std::move(record));
  if (batch_.size() >= kBatchMessages || batch_bytes_ >= kBatchBytes ||
      std::chrono::steady_clock::now() - batch_started_ >= kBatchAge) {
    return FlushBatch();
  }
  return Status::Ok();
}

Status FolderPull::FlushBatch() {
  if (batch_.empty()) return Status::Ok();
  Status delivered = batch_.Deliver();
  if (!delivered.ok()) {
    batch_.Clear();
    batch_records_.clear();
    return delivered;
  }
  store::Index::Batch index_batch;
  for (const store::MessageRecord& record : batch_records_) {
    index_batch.PutMessage(record_.id, record);
  }
  Status committed = index_->Commit(index_batch);
  report_.fetched += static_cast<uint32_t>(batch_records_.size());
  for (const store::MessageRecord& record : batch_records_) {
    known_uids_.insert(std::upper_bound(known_uids_.begin(), known_uids_.end(), record.uid),
                       record.uid);
  }
  batch_.Clear();
  batch_records_.clear();
  batch_bytes_ = 0;
  return committed;
}

void FolderPull::OnFetchDone(const Status& status) {
  current_.reset();
  if (!status.ok()) {
    // Whatever was completely received is still worth keeping.
    Status flushed = FlushBatch();
    (void)flushed;
    return Finish(status);
  }
  Status flushed = FlushBatch();
  if (!flushed.ok()) return Finish(flushed);
  // UIDNEXT moves only past what is durable, and never past a message the
  // server failed to deliver.
  uint32_t next = selected_.uidnext != 0 ? selected_.uidnext : highest_fetched_ + 1;
  next = std::max(next, highest_fetched_ + 1);
  if (lowest_skipped_ != 0) next = std::min(next, lowest_skipped_);
  record_.uidnext = std::max(record_.uidnext, next);
  if (selected_.highestmodseq) record_.highestmodseq = *selected_.highestmodseq;
  store::Index::Batch batch;
  batch.PutFolder(record_);
  Finish(index_->Commit(batch));
}

}  // namespace mailmirror::sync
