// One target folder of a migration, on one IMAP session to the target:
// creates the folder if needed, finds which of its messages the target
// already holds, APPENDs the rest pipelined, and records each copy in the
// source account's index.
//
// What the target already holds: messages the index records as copied are
// not candidates at all (the caller leaves them out). For the others, the
// target folder's messages since the last recorded run (all of them the
// first time) are fetched by Message-ID (or, without one, size, Date, From
// and Subject) and those that match a candidate are downloaded and compared
// by digest: only the same bytes count as present. That finds mail that was
// there before the first run and copies an interrupted run made without
// recording them, so a rerun duplicates nothing.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "imap/session.h"
#include "mailmirror/status.h"
#include "store/index.h"

namespace mailmirror::migrate {

// The report of one source folder.
struct FolderMigration {
  std::string source;     // local name in the source account
  std::string target;     // local name in the target account
  std::string reason;     // how the target was chosen
  bool create = false;    // the target folder was created (dry run: would be)
  bool mirrored = true;   // false: not in the source's mirror yet (dry run), counts unknown
  uint32_t selected = 0;  // messages in the mirror
  uint32_t copied = 0;    // dry run: to copy
  uint32_t present = 0;   // copied before, or found in the target
  uint32_t skipped = 0;   // by the filters
  std::map<std::string, uint32_t> skip_reasons;
  uint32_t failed = 0;
  std::vector<std::string> failures;  // the first few, with the server's reason
  uint64_t bytes = 0;                 // copied (dry run: to copy)
  Status status;                      // the folder could not be migrated
};

// A message of the source mirror to copy.
struct SourceMessage {
  store::MessageRecord record;
  uint32_t folder_id = 0;
  std::string path;  // its file in the mirror; empty when missing
  FolderMigration* report = nullptr;
  bool done = false;  // copied, found in the target or failed: not tried again
};

// What one target folder receives, from one or more source folders.
struct CopyJob {
  std::string raw_name;    // on the target server
  std::string local_name;  // for messages
  bool exists = false;     // the target has the folder
  // Some of the messages have no copy records to rely on (a source folder
  // new to this target, or renumbered): look at all of the target folder,
  // not only at what arrived since the last run.
  bool full_scan = false;
  std::vector<SourceMessage> messages;
  std::vector<FolderMigration*> reports;  // of the source folders it serves
  // Target messages copy records already stand for: not to be claimed as
  // the copy of another message.
  std::vector<store::CopyMark> recorded;
  uint32_t attempts = 0;  // runs that failed without progress
};

struct CopyContext {
  store::Index* index = nullptr;
  std::string target_key;  // names the target in copy records (store::CopyMark)
  bool dry_run = false;
};

class FolderCopy {
 public:
  // `session` is authenticated; `done` runs once, when the job is over or
  // failed (a dead session, throttling, a full mailbox). Keep the object
  // until then.
  FolderCopy(imap::Session* session, CopyJob* job, const CopyContext& context,
             std::function<void(Status)> done);

  void Start();
  // Whether the last run copied or found anything (progress, for retries).
  bool progressed() const { return progressed_; }

 private:
  struct Group {
    std::vector<size_t> messages;  // indexes into job_->messages
    uint64_t bytes = 0;
  };
  void Subscribe();
  void Select();
  void OnSelected(Result<imap::SelectedMailbox> selected);
  void Scan();
  void Verify();
  void MatchDigests();
  void Present(SourceMessage& message, uint32_t target_uid);
  void Appends();
  void AppendMore();
  void SendGroup(Group group);
  void OnAppended(const Group& group, Result<imap::Session::MultiAppendResult> result);
  void Failed(SourceMessage& message, const std::string& why);
  Status CommitCopies();
  void MaybeFinish();
  void Finish(const Status& status);

  imap::Session* session_;
  CopyJob* job_;
  CopyContext context_;
  std::function<void(Status)> done_;
  imap::SelectedMailbox selected_;
  uint32_t scan_from_ = 1;
  std::vector<std::string> permanent_keywords_;  // keywords the target keeps
  bool any_keyword_ = false;                     // \* in PERMANENTFLAGS
  // Target messages by match key (Scan), and their digests (Verify).
  std::multimap<std::string, uint32_t> target_keys_;
  std::map<uint32_t, uint64_t> target_digests_;
  std::vector<std::pair<size_t, std::string>> candidate_keys_;  // message index, key
  std::deque<size_t> pending_;                                  // messages to APPEND, in order
  std::deque<size_t> singles_;  // from a refused MULTIAPPEND: one at a time
  size_t groups_in_flight_ = 0;
  uint64_t bytes_in_flight_ = 0;
  uint32_t max_uid_ = 0;       // the highest APPENDUID
  bool uids_known_ = true;     // every APPEND said its UID
  std::optional<Error> stop_;  // no more APPENDs: why
  store::Index::Batch batch_;  // copies not yet committed
  size_t batch_copies_ = 0;
  std::chrono::steady_clock::time_point last_commit_;
  bool progressed_ = false;
  bool finished_ = false;
};

}  // namespace mailmirror::migrate
