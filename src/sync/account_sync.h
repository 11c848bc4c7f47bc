// A pull sync of one account: lock, index, a first connection that lists
// the folders, then the selected folders on a pool of up to `connections`
// IMAP sessions, largest folder first. Extra sessions are opened only when
// more than one folder needs work or a large download can use them (an
// unchanged account costs one login); each takes the next folder when it
// finishes one, and with none left joins the largest download still under
// way. A server that refuses an extra session leaves the pool smaller, not
// the sync failed.
//
// Faults: a session that drops or stalls is opened again after a backoff
// (retry_delay doubled per attempt, with jitter), up to `retries` failed
// attempts in a row; a folder that failed on it is run again from what the
// index committed (every step is crash-safe, so a rerun resumes), up to
// `retries` attempts that made no progress. A throttling server (see
// imap/throttle.h) costs the pool a session and is waited for as long as
// it asks, up to max_retry_wait.
//
// Threading: the loop thread. Lifetime: keep the object until `done` ran.
#pragma once

#include <chrono>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <unordered_map>
#include <vector>

#include "account/imap_connection.h"
#include "mailmirror/config.h"
#include "mailmirror/status.h"
#include "net/event_loop.h"
#include "store/folder_map.h"
#include "store/index.h"
#include "sync/account_lock.h"
#include "sync/disk_writer.h"
#include "sync/folder_pull.h"
#include "sync/gmail_labels.h"

namespace mailmirror::sync {

// The account's Maildir layout (its `layout` key).
store::Layout LayoutOf(const AccountConfig& account);

// Options of one run (the command line), beside the account's config.
struct SyncOptions {
  bool dry_run = false;            // find and report changes, change nothing
  bool allow_mass_delete = false;  // the user confirmed large deletions
  // `mailmirror repair`: set the index aside and rebuild it from the
  // Maildir's file names and one scan of the server (no body downloaded
  // again), as a sync does when it finds no index.
  bool rebuild_index = false;
  // Ask for each folder's size (STATUS=SIZE) to estimate the bytes to
  // download: for the progress line only (see imap::Session::ListMailboxes).
  bool folder_sizes = false;
};

struct AccountReport {
  const AccountConfig* account = nullptr;
  std::vector<FolderReport> folders;  // in the order they were synced
  std::vector<std::string> skipped;   // folders refused by name, with the reason
  uint32_t moved = 0;  // local moves between folders repeated on the server (or, dry run, found)
  std::vector<std::string> created;  // local-only folders created on the server (dry run: to be)
  bool dry_run = false;
  std::string old_index;  // repair: where the index was set aside ("" if there was none)
  // The server's folders as listed (names, attributes such as special-use,
  // counts), for commands that build on a sync (migrate).
  std::vector<imap::MailboxInfo> mailboxes;
  Status status;  // account-wide failure (lock, login, list)
  double seconds = 0;
};

// Where a running sync stands, for the progress line. The expected totals
// are estimates from the servers' STATUS (UIDNEXT, MESSAGES, and SIZE where
// offered), never below what is done.
struct SyncProgress {
  bool listed = false;    // the folders are known
  bool finished = false;  // the report went out
  size_t folders_total = 0;
  size_t folders_done = 0;
  uint64_t messages_expected = 0;
  uint64_t messages_done = 0;
  uint64_t bytes_expected = 0;  // 0: unknown (no STATUS=SIZE)
  uint64_t bytes_done = 0;
  double seconds = 0;  // since this account started (it may have waited its turn)
};

class AccountSync {
 public:
  AccountSync(net::EventLoop* loop, const AccountConfig& account, const SyncOptions& options,
              std::function<void(const AccountConfig&, const FolderReport&)> on_folder,
              std::function<void(AccountReport)> done);
  ~AccountSync();

  // Resolves the password (it may prompt), then runs on the loop.
  void Start();

  SyncProgress progress() const;

 private:
  void Connect();  // with credentials_ resolved: the first session logs in and lists
  void OnLoggedIn(const Status& status);
  void OnNamespace(Result<std::optional<imap::PersonalNamespace>> personal);
  void OnListed(Result<std::vector<imap::MailboxInfo>> mailboxes);
  // Folders only the Maildir has: created on the server (create = both or
  // remote), one at a time on the first session, then FoldersListed.
  FolderJob NewJob(const std::string& remote_name, const std::string& local_name,
                   const std::string& local_path) const;
  bool InStateDirectory(const std::string& local_name, const std::string& path);
  bool KnownOrPresentLocally(const FolderJob& job) const;
  void CreateLocalOnlyFolders(char delimiter);
  void CreateNext(const std::shared_ptr<std::vector<FolderJob>>& pending, size_t next);
  void FoldersListed();
  // Two-way: the Maildir side of every folder, and moves between them.
  Status ScanLocal(FolderJob& job);
  void ScanAllLocal();
  struct MoveGroup;
  void MoveNext(const std::shared_ptr<std::vector<MoveGroup>>& groups, size_t next);
  Status RecordMoves(const MoveGroup& group, const imap::Session::MoveResult& result);
  void StartFolders();

  // One IMAP session of the pool and the folder it works on.
  struct Worker {
    size_t number = 0;  // 0: the session that logged in first and listed
    std::unique_ptr<account::ImapConnection> connection;
    bool busy = false;            // logging in, listing or using the session for a folder
    bool closing = false;         // LOGOUT sent or close asked
    bool closed = false;          // the connection is gone
    bool joined = false;          // was part of the pool once: worth opening again
    bool reopen = false;          // open it again once closed (after a backoff)
    bool waiting = false;         // closed, waiting out the backoff to reopen
    bool given_up = false;        // not to be opened again this run
    uint32_t failures = 0;        // failed attempts in a row
    uint64_t retry_after_ms = 0;  // what the server asked, for the next backoff
  };
  void OpenExtraWorker();
  void OnExtraReady(Worker* worker, const Status& status);
  void NextFolder(Worker* worker);
  bool HelpLargestDownload(Worker* worker);
  void OnFolderDone(size_t job, FolderReport folder);
  void PostNextFolder(Worker* worker);
  void CloseWorker(Worker* worker);
  void OnWorkerClosed(Worker* worker);
  bool AnyLiveWorkerBesides(const Worker* worker) const;
  // Faults (see the header comment).
  static bool Usable(const Worker& worker);
  bool MayReopen(const Worker& worker, const Error& error) const;
  bool ShouldReopen(const Worker& worker) const;
  bool CanRetryFolders() const;
  size_t LiveWorkers() const;
  void ListingFailed(const Error& error);
  void ScheduleReopen(Worker* worker);
  void Reopen(Worker* worker);
  void OnReopened(Worker* worker, const Status& status);
  void GiveUpWorker(Worker* worker, const Error& error);
  bool RetryFolder(size_t job, const FolderReport& folder);
  bool MergeFlagsAgain(size_t job, const FolderReport& folder);
  void RequeueFolder(size_t job);
  void Throttled(const Error& error);
  // How long to wait before attempt `attempt` (1: the first retry); at
  // least what the server asked.
  uint64_t BackoffMs(uint32_t attempt, uint64_t asked_ms);
  std::string GaveUp(const Error& error, uint32_t attempts) const;
  void Fail(const Error& error);
  Status SetIndexAside();
  void FoldersDone();
  void MaybeFinish();

  net::EventLoop* loop_;
  const AccountConfig& account_;
  SyncOptions options_;
  std::function<void(const AccountConfig&, const FolderReport&)> on_folder_;
  std::function<void(AccountReport)> done_;
  AccountReport report_;
  std::chrono::steady_clock::time_point started_;
  int64_t run_started_ = 0;

  std::unique_ptr<AccountLock> lock_;
  std::unique_ptr<store::Index> index_;
  std::unique_ptr<DiskWriter> disk_;
  std::unique_ptr<account::Credentials> credentials_;  // shared by the sessions
  // Gmail: where label copies are stored (FolderJob::gmail_labels).
  std::unique_ptr<GmailLabels> gmail_labels_;
  std::optional<std::string> FolderPathOf(uint32_t folder_id);
  // Folder id -> its Maildir, or nullopt for folders this run does not sync.
  std::unordered_map<uint32_t, std::optional<std::string>> folder_paths_;
  bool SkipGmailAllMail(const imap::MailboxInfo& mailbox, const std::string& local_name);
  std::vector<std::unique_ptr<Worker>> workers_;
  std::optional<imap::PersonalNamespace> namespace_;
  std::vector<FolderJob> jobs_;
  std::deque<size_t> queue_;  // jobs_ indexes waiting for a session, in order
  // Per job: attempts in a row that failed without progress, and the counts
  // of the attempts before the current one.
  struct JobRun {
    uint32_t failed_attempts = 0;
    std::optional<FolderReport> earlier;
    bool flags_unmerged = false;  // an attempt matched files whose flags differ
    bool merged_again = false;    // MergeFlagsAgain ran it a second time
  };
  std::vector<JobRun> runs_;
  size_t retries_waiting_ = 0;  // folders waiting out a backoff
  bool listed_ = false;         // the folders are known: sessions now run folders
  size_t pool_limit_ = 0;       // sessions at most; lowered by throttling
  std::mt19937 jitter_{std::random_device{}()};
  size_t running_ = 0;  // folders started and not yet done (disk work included)
  // Folders started since none was running; freed once none is.
  std::vector<std::unique_ptr<FolderPull>> pulls_;
  bool folders_done_ = false;
  // Downloads so far (shared by the folders through FolderJob::downloaded)
  // and expected, for progress().
  DownloadCounter downloaded_;
  uint64_t expected_messages_ = 0;
  uint64_t expected_bytes_ = 0;
  std::shared_ptr<const bool> alive_ = std::make_shared<const bool>(true);
};

}  // namespace mailmirror::sync
