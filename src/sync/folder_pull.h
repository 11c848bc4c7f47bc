// Pulls one server folder into its Maildir: new messages are streamed to
// tmp/, delivered in durable batches and recorded in the index.
//
// Order per batch (see store::DeliveryBatch): fsync files, rename into
// cur/ or new/, fsync directories, then commit the index. The folder's UIDNEXT
// is stored last, after every message below it is durable. A run killed at
// any point is completed by the next: files renamed but not yet indexed are
// recognised by the ",U=" in their names and adopted, never fetched twice.
// The folder record says when a download was under way (fetch_pending), so
// only then does the next run read the directories to look for such files.
//
// Server-side flag changes and expunges are applied to the file name the
// index predicts for each message; only when a reader renamed or removed a
// file meanwhile is the folder scanned to find it by its stem. A run thus
// costs what changed, not what the folder holds.
//
// Threading: the loop thread. The object must outlive its `done` call.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "imap/session.h"
#include "mailmirror/status.h"
#include "store/index.h"
#include "store/maildir.h"
#include "sync/disk_writer.h"

namespace mailmirror::sync {

struct FolderJob {
  std::string remote_name;  // the server's raw name
  std::string local_name;   // UTF-8, '/'-separated, for messages and the index
  std::string local_path;   // the folder's Maildir directory
  int64_t run_started = 0;  // seconds since the epoch: older tmp/ files are stale
  // From LIST-STATUS/STATUS, when known: lets an unchanged folder be skipped
  // without even selecting it.
  std::optional<uint32_t> status_uidvalidity;
  std::optional<uint32_t> status_uidnext;
  std::optional<uint64_t> status_highestmodseq;  // with CONDSTORE
  std::optional<uint32_t> status_messages;
};

// True when the server's STATUS in `job` proves that nothing happened to the
// folder since the sync `record` describes completed, so that it need not
// even be selected (see FolderPull::Start).
bool UnchangedSinceLastSync(const FolderJob& job, const store::FolderRecord& record);

struct FolderReport {
  std::string local_name;
  uint32_t fetched = 0;       // messages downloaded and stored
  uint64_t bytes = 0;         // their stored size
  uint32_t adopted = 0;       // files of an interrupted run taken into the index
  uint32_t matched = 0;       // local files re-indexed after a UIDVALIDITY change
  uint32_t skipped = 0;       // messages the server would not deliver (retried later)
  uint32_t flag_changes = 0;  // local files renamed for server flag changes
  uint32_t expunged = 0;      // local files removed: gone from the server
  bool uidvalidity_changed = false;
  // How the server's changes were found: "unchanged" (not even selected),
  // "initial", "QRESYNC", "CONDSTORE" or "full scan".
  std::string path;
  Status status;
};

class FolderPull {
 public:
  // `disk` makes this folder's changes durable (shared by the account's
  // folders). `session_free` runs once the folder needs the session no more
  // (its last command answered), possibly before its disk work is done, so
  // that the session can start on another folder; `done` runs once that
  // disk work has completed too, after `session_free`.
  FolderPull(imap::Session* session, store::Index* index, DiskWriter* disk, FolderJob job,
             std::function<void()> session_free, std::function<void(FolderReport)> done);
  ~FolderPull();
  FolderPull(const FolderPull&) = delete;
  FolderPull& operator=(const FolderPull&) = delete;

  void Start();

  // Messages of the download not yet asked for; 0 when none is running.
  // Idle sessions of the pool help the folder with the most (AddHelper).
  uint64_t unrequested() const;
  // Lends `session` (authenticated, nothing selected or in flight) to the
  // download: it EXAMINEs the folder and fetches chunks of it alongside the
  // folder's own session. `release` runs once the download needs it no
  // more, from the session's callbacks (post before reusing it).
  void AddHelper(imap::Session* session, std::function<void()> release);

 private:
  // One session fetching chunks of the download, with the body it is
  // streaming: lane 0 is the folder's own session, others are helpers.
  class Lane : public imap::FetchSink {
   public:
    Lane(FolderPull* pull, imap::Session* session) : pull_(pull), session_(session) {}
    Status OnBodyBegin(uint32_t seq, uint64_t size) override;
    Status OnBodyData(std::string_view chunk) override;
    Status OnBodyEnd() override;
    Status OnMessage(const imap::FetchedMessage& message) override;

    FolderPull* pull_;
    imap::Session* session_;
    std::unique_ptr<store::TmpMessage> current_;
    size_t in_flight = 0;
    bool ready = false;             // selected, may take chunks
    std::function<void()> release;  // helpers: give the session back
  };
  Status OnFetched(const imap::FetchedMessage& message, std::unique_ptr<store::TmpMessage> body);
  void ReleaseHelper(Lane& lane);

  void OnSelected(Result<imap::SelectedMailbox> selected);
  void Rematch();
  Status ApplyRematch(std::map<std::string, std::vector<uint32_t>>& by_key);
  void AdoptAndFetch();
  // Finds what changed on the server among the messages the index knows
  // (flags, expunges) by the cheapest means the server offers, applies it,
  // then fetches what is new.
  void SyncKnown();
  void FullScan(const std::string& why);
  void ApplyKnownChanges(const std::vector<imap::FlagUpdate>& updates,
                         const std::optional<imap::UidRanges>& existing,
                         const std::vector<uint32_t>& vanished);
  struct LocalChange;
  Status ApplyLocally(std::vector<LocalChange>& changes);
  Status AdoptOrphans();
  void FetchNew();
  void IssueChunks();
  std::string NextChunk();  // the next range's UID set; "" if all known
  size_t ChunkMessages() const;
  void OnChunkDone(Lane& lane, const Status& status);
  void OnFetchDone(const Status& status);
  Status FlushBatch(bool folder_done = false);
  void SubmitDiskWork(std::unique_ptr<DiskWork> work, std::function<void(const Status&)> then);
  void Finish(const Status& status);
  void ReleaseSession();

  imap::Session* session_;
  store::Index* index_;
  DiskWriter* disk_;
  FolderJob job_;
  std::function<void()> session_free_;
  std::function<void(FolderReport)> done_;
  FolderReport report_;

  std::unique_ptr<store::MaildirFolder> folder_;
  store::FolderRecord record_;
  imap::SelectedMailbox selected_;
  bool qresync_select_ = false;       // SELECT carried QRESYNC parameters
  std::vector<uint32_t> known_uids_;  // ascending: UIDs the index holds
  // Index updates for changes already applied to the files (and made
  // durable), committed with the folder record in one transaction.
  store::Index::Batch applied_;
  bool renamed_locally_ = false;  // applied_ needs cur/ and new/ synced first
  size_t disk_pending_ = 0;       // works submitted and not yet done
  Status disk_status_;            // the first disk failure
  bool finishing_ = false;        // Finish waits for disk_pending_ to drain
  uint32_t fetch_from_ = 1;
  uint32_t highest_fetched_ = 0;
  uint32_t lowest_skipped_ = 0;  // 0: none

  // The download, in chunks (IssueChunks).
  uint32_t fetch_to_ = 0;        // last UID wanted; 0: unknown, fetch "n:*"
  uint32_t next_chunk_ = 0;      // first UID of the next chunk; 0: none left
  double uids_per_message_ = 1;  // UID span per wanted message (gaps)
  size_t chunks_in_flight_ = 0;  // on all lanes
  bool downloading_ = false;     // IssueChunks may run
  std::vector<std::unique_ptr<Lane>> lanes_;
  bool waiting_for_room_ = false;  // on the disk writer's backlog
  Status fetch_status_;            // the first failed chunk
  uint64_t received_messages_ = 0;
  uint64_t received_bytes_ = 0;

  // Delivered-but-uncommitted batch and its index records.
  store::DeliveryBatch batch_;
  std::vector<store::MessageRecord> batch_records_;
  uint64_t batch_bytes_ = 0;
  std::chrono::steady_clock::time_point batch_started_;
};

}  // namespace mailmirror::sync
