// Syncs one server folder with its Maildir: new messages are streamed to
// tmp/, delivered in durable batches and recorded in the index; with a
// local side (FolderJob::local, two-way sync) the Maildir's changes are
// merged with the server's and sent to it (folder_merge.cc).
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
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "imap/session.h"
#include "mailmirror/status.h"
#include "store/index.h"
#include "store/maildir.h"
#include "sync/deletion_guard.h"
#include "sync/disk_writer.h"
#include "sync/gmail_labels.h"
#include "sync/local_scan.h"
#include "sync/merge_plan.h"
#include "sync/refused_files.h"

namespace mailmirror::sync {

// What an account's folders have downloaded so far this run.
struct DownloadCounter {
  uint64_t messages = 0;
  uint64_t bytes = 0;
};

struct FolderJob {
  std::string remote_name;  // the server's raw name
  std::string local_name;   // UTF-8, '/'-separated, for messages and the index
  std::string local_path;   // the folder's Maildir directory
  // The account's Maildir root: nothing below it may be a symbolic link
  // (a folder never leads outside the root).
  std::string root;
  // "account work: folder INBOX": what the folder's log lines start with.
  std::string log_context;
  int64_t run_started = 0;  // seconds since the epoch: older tmp/ files are stale
  // From LIST-STATUS/STATUS, when known: lets an unchanged folder be skipped
  // without even selecting it.
  std::optional<uint32_t> status_uidvalidity;
  std::optional<uint32_t> status_uidnext;
  std::optional<uint64_t> status_highestmodseq;  // with CONDSTORE
  std::optional<uint32_t> status_messages;
  std::optional<uint64_t> status_size;  // STATUS=SIZE servers: octets of all messages
  // Messages and bytes stored for good are added here as they are (the
  // account's progress line); null: not counted.
  DownloadCounter* downloaded = nullptr;
  // Compare every message's flags whatever CONDSTORE/QRESYNC say (the
  // second pass of AccountSync::MergeFlagsAgain).
  bool compare_all_flags = false;

  // Two-way sync: the Maildir as scanned at the start of the run (null when
  // local changes are not sent, direction = pull), and whether it differs
  // from the index.
  std::shared_ptr<LocalSide> local;
  bool local_changed = false;
  Status local_status;  // the scan failed: the folder fails with this
  // The scan found no local change and the directories are settled: stored
  // as FolderRecord::local_stamp when the run leaves the folder untouched.
  uint64_t local_stamp = 0;
  MergePolicy policy;
  DeletionLimits limits;
  bool dry_run = false;  // find and report what would change; change nothing
  // Where the account's Gmail messages are stored (gmail_labels = "link"):
  // on a server with X-GM-EXT-1 a new message stored under another label
  // is hard-linked, not downloaded. Null: every message is downloaded.
  const GmailLabels* gmail_labels = nullptr;
  uint64_t max_upload_bytes = 0;  // larger local messages are not uploaded; 0: any
};

// True when the server's STATUS in `job` proves that nothing happened to the
// folder since the sync `record` describes completed, so that it need not
// even be selected (see FolderPull::Start).
bool UnchangedSinceLastSync(const FolderJob& job, const store::FolderRecord& record);

struct FolderReport {
  std::string local_name;
  uint32_t fetched = 0;       // messages downloaded and stored
  uint32_t label_links = 0;   // Gmail: stored as links to another label's copy
  uint64_t bytes = 0;         // their stored size
  uint32_t adopted = 0;       // files of an interrupted run taken into the index
  uint32_t matched = 0;       // local files re-indexed after a UIDVALIDITY change
  uint32_t skipped = 0;       // messages the server would not deliver (retried later)
  uint32_t flag_changes = 0;  // local files renamed for server flag changes
  uint32_t expunged = 0;      // local files removed: gone from the server
  // Local changes sent to the server.
  uint32_t pushed_flags = 0;     // messages whose flags were stored
  uint32_t pushed_expunges = 0;  // messages expunged (or marked \Deleted)
  uint32_t appended = 0;         // new local files uploaded
  uint32_t too_large = 0;        // new local files above max_upload_size: kept, not uploaded
  // Local files that are no message or cannot be uploaded (symbolic links,
  // FIFOs, malformed names, empty files, NUL bytes, too large, refused by
  // the server): kept, not uploaded; reported once (RefusedFiles).
  uint32_t refused = 0;
  // The folder's directory leads outside the Maildir root (a symbolic
  // link): neither read nor written.
  bool refused_folder = false;
  uint32_t linked = 0;     // new local files found on the server by content
  uint32_t conflicts = 0;  // messages changed on both sides (merged)
  uint32_t restored = 0;   // deleted on one side, changed on the other: kept
  // --dry-run: messages that would be downloaded (nothing is).
  uint32_t would_fetch = 0;
  bool uidvalidity_changed = false;
  // Files were matched to the server's messages (Rematch) and some flags
  // differ between them: a second pass of the folder keeps the union.
  bool flags_unmerged = false;
  // How the server's changes were found: "unchanged" (not even selected),
  // "initial", "QRESYNC", "CONDSTORE" or "full scan".
  std::string path;
  Status status;
  double seconds = 0;  // from Start to the report (this attempt)
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
  static constexpr const char* kFetchItems = "UID FLAGS INTERNALDATE RFC822.SIZE BODY.PEEK[]";
  static constexpr const char* kGmailFetchItems =
      "UID FLAGS INTERNALDATE RFC822.SIZE X-GM-MSGID BODY.PEEK[]";

  // A UID FETCH of the download: the range it asked for, and the UIDs the
  // server answered with so far (a broken or hostile server must not get a
  // message stored under a UID it was not asked for, or twice).
  struct Chunk {
    uint32_t low = 0;
    uint32_t high = 0;  // 0: open-ended ("low:*")
    std::unordered_set<uint32_t> answered;
  };
  Status CheckAnswer(std::deque<Chunk>& chunks, uint32_t uid) const;

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
    std::deque<Chunk> chunks;       // in flight, oldest first
    bool ready = false;             // selected, may take chunks
    std::function<void()> release;  // helpers: give the session back
  };
  // `label_link`: the body is a link to another label's copy (Gmail).
  Status OnFetched(const imap::FetchedMessage& message, std::unique_ptr<store::TmpMessage> body,
                   bool label_link = false);
  void ReleaseHelper(Lane& lane);

  void OnSelected(Result<imap::SelectedMailbox> selected);
  void Rematch();
  // What the header scan of Rematch learned of one server message.
  struct RemoteFacts {
    uint64_t size = 0;  // RFC822.SIZE
    int64_t internaldate = 0;
    uint32_t flags = 0;  // store::kFlag* bits
  };
  Status ApplyRematch(std::map<std::string, std::vector<uint32_t>>& by_key,
                      const std::unordered_map<uint32_t, RemoteFacts>& remote);
  bool FilesCarryUids() const;
  Status CountRematch(std::map<std::string, std::vector<uint32_t>>& by_key, size_t server_messages);
  Status RescanLocal();
  void AdoptAndFetch();
  // Finds what changed on the server among the messages the index knows
  // (flags, expunges) by the cheapest means the server offers, applies it,
  // then fetches what is new.
  void SyncKnown();
  void FullScan(const std::string& why);
  void ApplyKnownChanges(const std::vector<imap::FlagUpdate>& updates,
                         const std::optional<imap::UidRanges>& existing,
                         const std::vector<uint32_t>& vanished);
  // One message's change, to be applied to its local file.
  struct LocalChange {
    store::MessageRecord record;  // as the index knows it
    bool remove = false;          // deleted (gone from the server)
    uint32_t flags = 0;           // else its new flags and keywords
    std::vector<std::string> keywords;
    // The file as the scan found it (two-way); else its name is predicted
    // from the record.
    std::optional<store::MaildirFolder::Entry> file;
  };
  Status ApplyLocally(std::vector<LocalChange>& changes);
  // Two-way (folder_merge.cc): the plan's server side, then its local side.
  struct Merge;
  void PushToServer(const std::shared_ptr<Merge>& merge);
  void ApplyMerge(const std::shared_ptr<Merge>& merge);
  void ReportDryRun(const Merge& merge);
  void CountDryRunNew();
  Status CheckMissingFolder();
  Status PrepareNewLocal();
  Status AddNewLocal(const store::MaildirFolder::Entry& entry);
  bool LinkToLocalFile(store::MessageRecord& record);
  bool HasUploads() const;
  // Bytes a message may have to be uploaded: max_upload_size and the
  // server's APPENDLIMIT (RFC 7889), whichever is lower; 0: no limit.
  uint64_t UploadLimit() const;
  void AfterPull(const Status& status);
  void AppendNext(size_t next);
  void FinishAppends();
  Status AdoptOrphans();
  void FetchNew();
  void CommitWithoutDownload();
  void FindUploadedBySize(const std::string& uid_set);
  void IssueChunks();
  // Gmail: the new messages' ids (and what storing one needs besides its
  // body), fetched before the download; LinkLabelCopies then links those of
  // a range that another label's folder already stores.
  void FetchGmailIds();
  void LinkLabelCopies(uint32_t low, uint32_t high);
  // The next range's UID set ("" if all known) and its bounds.
  std::string NextChunk(Chunk& chunk);
  size_t ChunkMessages() const;
  void OnChunkDone(Lane& lane, uint32_t low, const Status& status);
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
  std::chrono::steady_clock::time_point started_;

  std::unique_ptr<store::MaildirFolder> folder_;
  store::FolderRecord record_;
  imap::SelectedMailbox selected_;
  bool qresync_select_ = false;  // SELECT carried QRESYNC parameters
  // Rematched messages whose flags differ between the sides: HIGHESTMODSEQ
  // is not stored, so that the next pass (AccountSync::MergeFlagsAgain, in
  // this run) compares every message's flags.
  bool flags_unmerged_ = false;
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
  bool batch_renamed_ = false;  // a linked local file was renamed for the batch
  uint32_t batch_linked_ = 0;
  uint32_t batch_label_links_ = 0;

  // Gmail (FolderJob::gmail_labels and X-GM-EXT-1): new UIDs with their
  // message ids and metadata, until their range is downloaded.
  bool gmail_ = false;
  std::map<uint32_t, imap::FetchedMessage> gmail_new_;

  // Two-way: local files new to the index, to be found among the server's
  // new messages by content (LinkToLocalFile) or uploaded after the pull.
  struct NewLocalFile {
    store::MaildirFolder::Entry entry;
    uint64_t digest = 0;
    uint64_t size = 0;
    bool linked = false;
  };
  std::vector<NewLocalFile> new_local_;
  std::unordered_multimap<uint64_t, size_t> new_local_by_digest_;
  std::vector<uint32_t> refetch_;  // deleted here, changed on the server: download again
  bool link_only_ = false;         // direction = push: downloads only find uploads
  std::vector<store::MessageRecord> appended_records_;
  Status append_status_;  // the first APPEND that failed
  // Local files kept here without upload (loaded from the index on first use).
  std::unique_ptr<RefusedFiles> refused_;
  RefusedFiles& Refusals();
  void Refuse(const store::MaildirFolder::Entry& entry, const std::string& reason);
};

}  // namespace mailmirror::sync
