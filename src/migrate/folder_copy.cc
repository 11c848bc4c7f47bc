#include "migrate/folder_copy.h"

#include <algorithm>
#include <set>
#include <utility>

#include "imap/date.h"
#include "imap/sequence_set.h"
#include "store/maildir.h"
#include "sync/append_file.h"
#include "sync/message_key.h"
#include "util/log.h"
#include "util/strings.h"

namespace mailmirror::migrate {
namespace {

// APPENDs in flight on one session, and the bytes they hold: enough to keep
// a link busy, little memory (each message is read whole for its literal).
constexpr size_t kMaxGroupsInFlight = 8;
constexpr uint64_t kMaxBytesInFlight = 4ull << 20;
// A MULTIAPPEND command carries at most this many messages or bytes.
constexpr size_t kGroupMessages = 32;
constexpr uint64_t kGroupBytes = 1ull << 20;
// Copies are committed to the index this often (group commit): a crash
// loses at most these, which the next run finds in the target by digest.
constexpr size_t kCommitCopies = 256;
constexpr std::chrono::milliseconds kCommitAge{1000};
constexpr size_t kReportedFailures = 20;
// UIDs per verification FETCH.
constexpr size_t kVerifyChunk = 500;

// The header fields MatchKey reads.
constexpr const char* kScanItems =
    "(UID RFC822.SIZE BODY.PEEK[HEADER.FIELDS (MESSAGE-ID DATE FROM SUBJECT)])";

// Collects the stored digest of each message a verification fetches.
class DigestSink : public sync::BodyDigestSink {
 public:
  Status OnMessage(const imap::FetchedMessage& message) override {
    if (message.uid && message.has_body && !message.body_nil) digests[*message.uid] = body_digest();
    return Status::Ok();
  }

  std::map<uint32_t, uint64_t> digests;
};

}  // namespace

FolderCopy::FolderCopy(imap::Session* session, CopyJob* job, const CopyContext& context,
                       std::function<void(Status)> done)
    : session_(session), job_(job), context_(context), done_(std::move(done)) {}

void FolderCopy::Start() {
  last_commit_ = std::chrono::steady_clock::now();
  if (job_->exists || context_.dry_run) return Select();
  session_->Create(job_->raw_name, [this](const Status& created) {
    if (!created.ok()) return Finish(created);
    job_->exists = true;
    for (FolderMigration* report : job_->reports) report->create = true;
    Subscribe();
    Select();
  });
}

// Clients that show subscribed folders only should see it too. Best
// effort: a refusal changes nothing of the copy.
void FolderCopy::Subscribe() {
  session_->Subscribe(job_->raw_name, [](const Status& /*subscribed*/) {});
}

void FolderCopy::Select() {
  // Dry run: a folder still to create would get every candidate.
  if (!job_->exists) return Appends();
  session_->Select(
      job_->raw_name, /*read_only=*/context_.dry_run,
      [this](Result<imap::SelectedMailbox> selected) { OnSelected(std::move(selected)); });
}

void FolderCopy::OnSelected(Result<imap::SelectedMailbox> selected) {
  if (!selected.ok()) return Finish(selected.error());
  selected_ = std::move(selected).value();
  // Without PERMANENTFLAGS every flag is permanent (RFC 3501 §7.1).
  any_keyword_ = selected_.permanent_flags.empty();
  for (const std::string& flag : selected_.permanent_flags) {
    if (flag == "\\*") any_keyword_ = true;
    if (!flag.empty() && flag[0] != '\\') permanent_keywords_.push_back(flag);
  }
  Result<std::optional<store::CopyTargetState>> state =
      context_.index->GetCopyTarget(context_.target_key, job_->raw_name);
  if (!state.ok()) return Finish(state.error());
  if (*state && (*state)->uidvalidity == selected_.uidvalidity && !job_->full_scan) {
    scan_from_ = (*state)->uidnext;
  }
  const bool nothing_new = selected_.uidnext != 0 && scan_from_ >= selected_.uidnext;
  if (selected_.exists == 0 || nothing_new) return Appends();
  Scan();
}

void FolderCopy::Scan() {
  // Header fields arrive as small literals inside the FETCH responses.
  imap::Command command{{"UID FETCH " + std::to_string(scan_from_) + ":* " + kScanItems + "\r\n"},
                        "UID FETCH",
                        false};
  session_->Execute(
      std::move(command),
      [this](const imap::Response& response) {
        if (response.type != imap::ResponseType::kFetch || !response.fetch.uid) return;
        const imap::FetchData& fetch = response.fetch;
        // An unsolicited FETCH (another client changed flags) has neither.
        if (!fetch.rfc822_size || fetch.bodies.empty() || *fetch.uid < scan_from_) return;
        target_keys_.emplace(sync::MatchKey(fetch.bodies.back().data, *fetch.rfc822_size),
                             *fetch.uid);
      },
      [this](Result<imap::TaggedReply> reply) {
        if (!reply.ok()) return Finish(reply.error());
        if (reply->condition != imap::Condition::kOk) {
          return Finish(MakeError(ErrorKind::kProtocol,
                                  "UID FETCH in " + job_->local_name + " failed: " + reply->text));
        }
        Verify();
      });
}

// Candidates whose key the target has: download those target messages and
// compare digests.
void FolderCopy::Verify() {
  std::set<uint32_t> wanted;
  for (size_t i = 0; i < job_->messages.size(); ++i) {
    const SourceMessage& message = job_->messages[i];
    if (message.done || message.path.empty() || target_keys_.empty()) continue;
    std::string key =
        sync::FileMatchKey(message.path, message.record.remote_size != 0
                                             ? std::optional<uint64_t>(message.record.remote_size)
                                             : std::nullopt);
    auto [first, last] = target_keys_.equal_range(key);
    if (first == last) continue;
    for (auto it = first; it != last; ++it) wanted.insert(it->second);
    candidate_keys_.emplace_back(i, std::move(key));
  }
  if (wanted.empty()) return Appends();
  // In chunks: a command line of every UID could pass the server's limit.
  auto sink = std::make_shared<DigestSink>();
  std::vector<uint32_t> uids(wanted.begin(), wanted.end());
  // Counted before the first is sent: a dead session answers at once.
  auto left = std::make_shared<size_t>((uids.size() + kVerifyChunk - 1) / kVerifyChunk);
  auto failure = std::make_shared<Status>();
  for (size_t first = 0; first < uids.size(); first += kVerifyChunk) {
    std::vector<uint32_t> chunk(
        uids.begin() + static_cast<std::ptrdiff_t>(first),
        uids.begin() + static_cast<std::ptrdiff_t>(std::min(uids.size(), first + kVerifyChunk)));
    session_->UidFetch(imap::FormatSequenceSet(chunk), "UID BODY.PEEK[]", sink.get(),
                       [this, sink, left, failure](const Status& status) {
                         if (!status.ok() && failure->ok()) *failure = status;
                         if (--*left > 0) return;
                         if (!failure->ok()) return Finish(*failure);
                         target_digests_ = std::move(sink->digests);
                         MatchDigests();
                       });
  }
}

// Each candidate takes the first target message with its key and digest
// that no other message (copied before, or matched now) stands for.
void FolderCopy::MatchDigests() {
  std::set<uint32_t> claimed;
  for (const store::CopyMark& mark : job_->recorded) {
    if (mark.uidvalidity == selected_.uidvalidity) claimed.insert(mark.uid);
  }
  for (const auto& [index, key] : candidate_keys_) {
    SourceMessage& message = job_->messages[index];
    std::optional<uint64_t> digest = sync::DigestWithoutTuid(message.path);
    if (!digest) continue;
    auto [first, last] = target_keys_.equal_range(key);
    for (auto it = first; it != last; ++it) {
      auto found = target_digests_.find(it->second);
      if (found == target_digests_.end() || found->second != *digest ||
          !claimed.insert(it->second).second) {
        continue;
      }
      Present(message, it->second);
      break;
    }
  }
  Appends();
}

void FolderCopy::Present(SourceMessage& message, uint32_t target_uid) {
  message.done = true;
  ++message.report->present;
  progressed_ = true;
  if (context_.dry_run) return;
  batch_.PutCopy(context_.target_key, message.folder_id, message.record.uid,
                 store::CopyMark{selected_.uidvalidity, target_uid});
  ++batch_copies_;
}

void FolderCopy::Appends() {
  for (size_t i = 0; i < job_->messages.size(); ++i) {
    SourceMessage& message = job_->messages[i];
    if (message.done) continue;
    if (message.path.empty()) {
      Failed(message, "its file is missing from the mirror (run mailmirror sync)");
      continue;
    }
    if (context_.dry_run) {
      message.done = true;
      ++message.report->copied;
      message.report->bytes += message.record.remote_size;
      continue;
    }
    pending_.push_back(i);
  }
  AppendMore();
}

void FolderCopy::AppendMore() {
  const bool multi = session_->capabilities().Has("MULTIAPPEND");
  while (!stop_ && groups_in_flight_ < kMaxGroupsInFlight && bytes_in_flight_ < kMaxBytesInFlight &&
         (!pending_.empty() || !singles_.empty())) {
    Group group;
    std::deque<size_t>& from = !singles_.empty() ? singles_ : pending_;
    const size_t limit = &from == &singles_ || !multi ? 1 : kGroupMessages;
    while (!from.empty() && group.messages.size() < limit &&
           (group.messages.empty() ||
            group.bytes + job_->messages[from.front()].record.size <= kGroupBytes)) {
      group.bytes += job_->messages[from.front()].record.size;
      group.messages.push_back(from.front());
      from.pop_front();
    }
    SendGroup(std::move(group));
  }
  MaybeFinish();
}

void FolderCopy::SendGroup(Group group) {
  std::vector<std::string> bodies;
  std::vector<imap::Session::AppendMessage> appends;
  std::vector<size_t> readable;
  for (size_t index : group.messages) {
    SourceMessage& message = job_->messages[index];
    Result<std::optional<sync::FileForAppend>> file = sync::ReadForAppend(message.path);
    if (!file.ok() || !file->has_value()) {
      Failed(message, file.ok() ? "its file is missing from the mirror (run mailmirror sync)"
                                : file.error().message);
      continue;
    }
    imap::Session::AppendMessage append;
    append.flags = store::ImapFlagsFromBits(message.record.flags);
    for (const std::string& keyword : message.record.keywords) {
      if (any_keyword_ || std::find(permanent_keywords_.begin(), permanent_keywords_.end(),
                                    keyword) != permanent_keywords_.end()) {
        append.flags.push_back(keyword);
      }
    }
    append.internaldate = imap::FormatInternalDate(
        message.record.internaldate != 0 ? message.record.internaldate : (*file)->mtime);
    sync::RemoveTuidLines((*file)->crlf);
    bodies.push_back(std::move((*file)->crlf));
    appends.push_back(std::move(append));
    readable.push_back(index);
  }
  if (readable.empty()) return;
  for (size_t i = 0; i < appends.size(); ++i) appends[i].message = bodies[i];
  group.messages = std::move(readable);
  ++groups_in_flight_;
  bytes_in_flight_ += group.bytes;
  session_->AppendMany(job_->raw_name, appends,
                       [this, group](Result<imap::Session::MultiAppendResult> result) {
                         OnAppended(group, std::move(result));
                       });
}

void FolderCopy::OnAppended(const Group& group, Result<imap::Session::MultiAppendResult> result) {
  --groups_in_flight_;
  bytes_in_flight_ -= group.bytes;
  if (!result.ok()) {
    const Error& error = result.error();
    if (!session_->authenticated() || error.throttle_ms || error.lasting ||
        error.kind == ErrorKind::kTemporary) {
      // The session died, or the server wants a pause or has no room: the
      // messages stay to do, in a later run or attempt.
      if (!stop_) stop_ = error;
    } else if (group.messages.size() > 1) {
      // MULTIAPPEND stores all or none: find the message it refused.
      singles_.insert(singles_.begin(), group.messages.begin(), group.messages.end());
    } else {
      Failed(job_->messages[group.messages.front()], error.message);
    }
    return AppendMore();
  }
  const bool with_uids = result->uids.size() == group.messages.size();
  for (size_t i = 0; i < group.messages.size(); ++i) {
    SourceMessage& message = job_->messages[group.messages[i]];
    message.done = true;
    ++message.report->copied;
    message.report->bytes += message.record.remote_size;
    const uint32_t uid = with_uids ? result->uids[i] : 0;
    if (uid == 0 || result->uidvalidity != selected_.uidvalidity) uids_known_ = false;
    max_uid_ = std::max(max_uid_, uid);
    batch_.PutCopy(context_.target_key, message.folder_id, message.record.uid,
                   store::CopyMark{result->uidvalidity, uid});
    ++batch_copies_;
  }
  progressed_ = true;
  if (batch_copies_ >= kCommitCopies ||
      std::chrono::steady_clock::now() - last_commit_ >= kCommitAge) {
    if (Status committed = CommitCopies(); !committed.ok()) {
      if (!stop_) stop_ = committed.error();
    }
  }
  AppendMore();
}

void FolderCopy::Failed(SourceMessage& message, const std::string& why) {
  message.done = true;
  ++message.report->failed;
  if (message.report->failures.size() < kReportedFailures) {
    message.report->failures.push_back("UID " + std::to_string(message.record.uid) + ": " + why);
  }
  Log(LogLevel::kWarning, "migrating " + message.report->source + " UID " +
                              std::to_string(message.record.uid) + " to " + job_->local_name +
                              " failed: " + why);
}

Status FolderCopy::CommitCopies() {
  last_commit_ = std::chrono::steady_clock::now();
  if (batch_.empty()) return Status::Ok();
  batch_copies_ = 0;
  return context_.index->Commit(batch_);
}

void FolderCopy::MaybeFinish() {
  if (groups_in_flight_ > 0) return;
  if (stop_) return Finish(*stop_);
  if (pending_.empty() && singles_.empty()) Finish(Status::Ok());
}

void FolderCopy::Finish(const Status& status) {
  if (finished_) return;
  finished_ = true;
  Status result = status;
  if (!context_.dry_run) {
    // Everything below the mark is recorded or was looked at: the next run
    // scans from there. Only a clean run with every UID known moves it.
    if (status.ok() && job_->exists && selected_.uidvalidity != 0 && selected_.uidnext != 0 &&
        uids_known_) {
      batch_.PutCopyTarget(
          context_.target_key, job_->raw_name,
          store::CopyTargetState{selected_.uidvalidity, std::max(selected_.uidnext, max_uid_ + 1)});
    }
    if (Status committed = CommitCopies(); !committed.ok() && result.ok()) result = committed;
  }
  // The object may be kept a while after: let go of what the scan held.
  target_keys_.clear();
  target_digests_.clear();
  candidate_keys_.clear();
  auto done = std::move(done_);
  done(result);
}

}  // namespace mailmirror::migrate
