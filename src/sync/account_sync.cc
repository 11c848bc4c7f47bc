#include "sync/account_sync.h"

#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <set>
#include <utility>

#include "store/folder_map.h"
#include "sync/root_marker.h"
#include "sync/run_record.h"
#include "util/fs.h"
#include "util/log.h"
#include "util/strings.h"

namespace mailmirror::sync {
namespace {

// Whether a failed attempt at a folder left anything done for good.
bool MadeProgress(const FolderReport& folder) {
  return folder.fetched + folder.label_links + folder.adopted + folder.matched +
             folder.flag_changes + folder.expunged + folder.pushed_flags + folder.pushed_expunges +
             folder.appended + folder.linked >
         0;
}

// Adds the counts of a failed attempt at a folder to the attempts before.
void AddCounts(FolderReport& total, const FolderReport& attempt) {
  total.fetched += attempt.fetched;
  total.seconds += attempt.seconds;
  total.label_links += attempt.label_links;
  total.bytes += attempt.bytes;
  total.adopted += attempt.adopted;
  total.matched += attempt.matched;
  total.skipped = attempt.skipped;  // counted anew by each attempt
  total.flag_changes += attempt.flag_changes;
  total.expunged += attempt.expunged;
  total.pushed_flags += attempt.pushed_flags;
  total.pushed_expunges += attempt.pushed_expunges;
  total.appended += attempt.appended;
  total.too_large += attempt.too_large;
  total.refused = attempt.refused;  // counted anew by each attempt
  total.refused_folder = total.refused_folder || attempt.refused_folder;
  total.linked += attempt.linked;
  total.conflicts += attempt.conflicts;
  total.restored += attempt.restored;
  total.would_fetch += attempt.would_fetch;
  total.uidvalidity_changed = total.uidvalidity_changed || attempt.uidvalidity_changed;
}

}  // namespace

AccountSync::AccountSync(net::EventLoop* loop, const AccountConfig& account,
                         const SyncOptions& options,
                         std::function<void(const AccountConfig&, const FolderReport&)> on_folder,
                         std::function<void(AccountReport)> done)
    : loop_(loop),
      account_(account),
      options_(options),
      on_folder_(std::move(on_folder)),
      done_(std::move(done)) {
  report_.account = &account_;
  report_.dry_run = options_.dry_run;
}

AccountSync::~AccountSync() = default;

void AccountSync::Start() {
  started_ = std::chrono::steady_clock::now();
  run_started_ = static_cast<int64_t>(std::time(nullptr));
  if (account_.maildir.empty()) {
    return Fail(MakeError(ErrorKind::kConfig, "no maildir configured: add maildir = \"~/Mail/" +
                                                  account_.name + "\" to [accounts." +
                                                  account_.name + "]"));
  }
  // Before the lock and the index create the state directory in it.
  struct stat root_stat {};
  const bool root_missing = ::stat(account_.maildir.c_str(), &root_stat) != 0 && errno == ENOENT;
  if (RootMissingOrEmpty(account_.maildir) && SyncedBefore(account_.maildir)) {
    // Moved away, or a disk not mounted: filling it again from the server
    // would only hide that (and with the index inside it, nothing else
    // remembers the mirror).
    return Fail(MakeError(
        ErrorKind::kConfig,
        "the Maildir " + account_.maildir + " is " + (root_missing ? "missing" : "empty") +
            ", but mailmirror has synced into it before (recorded in " +
            RootMarkerPath(account_.maildir) +
            "); nothing was changed. Mount or restore it, or correct \"maildir\" in the "
            "config; to start over with an empty Maildir, delete that record"));
  }
  Result<std::unique_ptr<AccountLock>> lock =
      AccountLock::Acquire(account_.state_dir, account_.name);
  if (!lock.ok()) return Fail(lock.error());
  lock_ = std::move(lock).value();
  if (options_.rebuild_index) {
    if (Status aside = SetIndexAside(); !aside.ok()) return Fail(aside.error());
  }
  Result<std::unique_ptr<store::Index>> index = store::Index::Open(account_.state_dir + "/index");
  if (!index.ok()) return Fail(index.error());
  index_ = std::move(index).value();
  // One account per Maildir: another account's index here means both would
  // take each other's files for local changes.
  if (Status mine = index_->ClaimAccount(account_.user + "@" + account_.host + ":" +
                                         std::to_string(account_.port));
      !mine.ok()) {
    return Fail(mine.error());
  }
  if (account_.gmail_link_labels) {
    gmail_labels_ = std::make_unique<GmailLabels>(
        index_.get(), [this](uint32_t folder_id) { return FolderPathOf(folder_id); });
  }
  disk_ = std::make_unique<DiskWriter>(loop_, index_.get());
  if (root_missing) {
    // An unmounted disk or a mistyped path is not "the user deleted
    // everything": nothing may be deleted on the server because of it.
    Result<std::vector<store::FolderRecord>> folders = index_->ListFolders();
    if (!folders.ok()) return Fail(folders.error());
    size_t synced = std::count_if(folders->begin(), folders->end(),
                                  [](const store::FolderRecord& f) { return f.uidvalidity != 0; });
    if (synced > 0) {
      return Fail(
          MakeError(ErrorKind::kConfig,
                    "the Maildir " + account_.maildir + " is missing, but the index in " +
                        account_.state_dir + " has synced " + std::to_string(synced) +
                        " folder(s) into it; nothing was changed. Mount or restore it, or correct "
                        "\"maildir\" in the config; to start over, remove " +
                        account_.state_dir));
    }
  }
  if (!options_.dry_run) {
    Status root = MakeDirectories(account_.maildir, 0700);
    if (!root.ok()) return Fail(root.error());
  }
  // Commands and token refreshes run on the pool: other accounts' sessions
  // go on meanwhile.
  account::Credentials::ResolveInPool(
      loop_, account_, [this](Result<account::Credentials> credentials) {
        if (!credentials.ok()) return Fail(credentials.error());
        credentials_ = std::make_unique<account::Credentials>(std::move(credentials).value());
        Connect();
      });
}

void AccountSync::Connect() {
  Worker* first = workers_.emplace_back(std::make_unique<Worker>()).get();
  first->connection = std::make_unique<account::ImapConnection>(loop_, account_);
  first->busy = true;  // logging in and listing
  first->connection->Open(
      credentials_.get(), [this](const Status& status) { OnLoggedIn(status); },
      [this, first] { OnWorkerClosed(first); });
}

void AccountSync::OnLoggedIn(const Status& status) {
  if (!status.ok()) return ListingFailed(status.error());
  // QRESYNC (which implies CONDSTORE) lets each folder report only what
  // changed since the last run; CONDSTORE alone at least the flag changes.
  workers_[0]->connection->session().Enable(
      {"QRESYNC", "CONDSTORE"}, [this](const Result<std::set<std::string>>& enabled) {
        if (!enabled.ok()) return ListingFailed(enabled.error());
        workers_[0]->connection->session().GetPersonalNamespace(
            [this](Result<std::optional<imap::PersonalNamespace>> personal) {
              OnNamespace(std::move(personal));
            });
      });
}

void AccountSync::OnNamespace(Result<std::optional<imap::PersonalNamespace>> personal) {
  if (!personal.ok()) return ListingFailed(personal.error());
  namespace_ = *personal;
  workers_[0]->connection->session().ListMailboxes(
      [this](Result<std::vector<imap::MailboxInfo>> mailboxes) { OnListed(std::move(mailboxes)); },
      options_.folder_sizes);
}

void AccountSync::OnListed(Result<std::vector<imap::MailboxInfo>> mailboxes) {
  if (!mailboxes.ok()) return ListingFailed(mailboxes.error());
  report_.mailboxes = *mailboxes;
  workers_[0]->failures = 0;
  workers_[0]->joined = true;
  const store::Layout layout = LayoutOf(account_);
  char delimiter = 0;
  for (const imap::MailboxInfo& mailbox : *mailboxes) {
    if (mailbox.delimiter != 0) delimiter = mailbox.delimiter;
  }
  for (const imap::MailboxInfo& mailbox : *mailboxes) {
    if (!mailbox.selectable) continue;
    store::ServerNaming naming;
    naming.delimiter = mailbox.delimiter;
    if (namespace_) naming.namespace_prefix = namespace_->prefix;
    Result<std::string> local_name = store::LocalNameFor(mailbox.raw_name, naming);
    if (!local_name.ok()) {
      report_.skipped.push_back(local_name.error().message);
      Log(LogLevel::kWarning, "account " + account_.name + ": " + local_name.error().message);
      continue;
    }
    if (!store::FolderSelected(account_.folders, *local_name)) continue;
    if (SkipGmailAllMail(mailbox, *local_name)) continue;
    Result<std::string> path = store::LocalPathFor(account_.maildir, *local_name, layout);
    if (!path.ok()) {
      report_.skipped.push_back(path.error().message);
      Log(LogLevel::kWarning, "account " + account_.name + ": " + path.error().message);
      continue;
    }
    if (InStateDirectory(*local_name, *path)) continue;
    FolderJob job = NewJob(mailbox.raw_name, *local_name, *path);
    job.status_uidvalidity = mailbox.uidvalidity;
    job.status_uidnext = mailbox.uidnext;
    job.status_highestmodseq = mailbox.highestmodseq;
    job.status_messages = mailbox.messages;
    job.status_size = mailbox.size;
    if (!IncludesLocal(account_.create) && !KnownOrPresentLocally(job)) {
      Log(LogLevel::kInfo, "account " + account_.name + ": folder " + *local_name +
                               " exists only on the server and create does not include "
                               "\"local\": not synced");
      continue;
    }
    jobs_.push_back(std::move(job));
  }
  CreateLocalOnlyFolders(delimiter);  // then FoldersListed
}

// Gmail's All Mail holds every message once more, under its own UIDs:
// with the labels synced, it would double the mirror (see gmail_all_mail).
bool AccountSync::SkipGmailAllMail(const imap::MailboxInfo& mailbox,
                                   const std::string& local_name) {
  if (account_.gmail_all_mail ||
      !workers_[0]->connection->session().capabilities().Has("X-GM-EXT-1")) {
    return false;
  }
  if (!imap::HasAttribute(mailbox.attributes, "\\All")) return false;
  Log(LogLevel::kInfo, "account " + account_.name + ": folder " + local_name +
                           " skipped: it holds every message of the label folders once more "
                           "(gmail_all_mail = true syncs it)");
  return true;
}

// The Maildir directory of a folder of the index, for GmailLabels. Folders
// get their ids as they first sync, so the index is read again for an id
// not seen yet; a folder this run does not sync is remembered as such, so
// that its messages do not cost a read of the index each.
std::optional<std::string> AccountSync::FolderPathOf(uint32_t folder_id) {
  auto known = folder_paths_.find(folder_id);
  if (known != folder_paths_.end()) return known->second;
  Result<std::vector<store::FolderRecord>> folders = index_->ListFolders();
  if (!folders.ok()) return std::nullopt;
  for (const store::FolderRecord& folder : *folders) {
    std::optional<std::string>& path = folder_paths_[folder.id];
    for (const FolderJob& job : jobs_) {
      if (job.remote_name == folder.remote_name) path = job.local_path;
    }
  }
  known = folder_paths_.find(folder_id);
  return known != folder_paths_.end() ? known->second : std::nullopt;
}

store::Layout LayoutOf(const AccountConfig& account) {
  return account.layout == "maildir++" ? store::Layout::kMaildirPlusPlus : store::Layout::kVerbatim;
}

FolderJob AccountSync::NewJob(const std::string& remote_name, const std::string& local_name,
                              const std::string& local_path) const {
  FolderJob job;
  job.remote_name = remote_name;
  job.local_name = local_name;
  job.local_path = local_path;
  job.root = account_.maildir;
  job.log_context = "account " + account_.name + ": folder " + local_name;
  job.run_started = run_started_;
  job.policy.push = account_.direction != SyncDirection::kPull;
  job.policy.pull = account_.direction != SyncDirection::kPush;
  job.policy.expunge_remote = IncludesRemote(account_.expunge);
  job.policy.expunge_local = IncludesLocal(account_.expunge);
  job.limits.max_fraction = account_.max_delete_fraction;
  job.limits.allow_mass_delete = options_.allow_mass_delete;
  job.dry_run = options_.dry_run;
  job.gmail_labels = gmail_labels_.get();
  job.max_upload_bytes = account_.max_upload_bytes;
  return job;
}

// The state directory lives inside the Maildir root by default: no folder
// may be stored in it.
bool AccountSync::InStateDirectory(const std::string& local_name, const std::string& path) {
  if (path != account_.state_dir && path.rfind(account_.state_dir + "/", 0) != 0) return false;
  std::string why = "folder \"" + local_name +
                    "\" skipped: it would be stored in the state directory " + account_.state_dir;
  report_.skipped.push_back(why);
  Log(LogLevel::kWarning, "account " + account_.name + ": " + why);
  return true;
}

bool AccountSync::KnownOrPresentLocally(const FolderJob& job) const {
  Result<std::optional<store::FolderRecord>> record = index_->GetFolder(job.remote_name);
  if (!record.ok() || (record->has_value() && (*record)->uidvalidity != 0)) return true;
  struct stat st {};
  return ::stat((job.local_path + "/cur").c_str(), &st) == 0;
}

void AccountSync::FoldersListed() {
  // Largest first, so that the longest folder does not start last; INBOX
  // first among equals, where new mail is awaited.
  std::stable_sort(jobs_.begin(), jobs_.end(), [](const FolderJob& a, const FolderJob& b) {
    uint32_t size_a = a.status_messages.value_or(0);
    uint32_t size_b = b.status_messages.value_or(0);
    if (size_a != size_b) return size_a > size_b;
    if ((a.local_name == "INBOX") != (b.local_name == "INBOX")) return a.local_name == "INBOX";
    return a.local_name < b.local_name;
  });
  if (account_.direction == SyncDirection::kPull) return StartFolders();
  ScanAllLocal();  // then StartFolders
}

SyncProgress AccountSync::progress() const {
  SyncProgress progress;
  progress.listed = listed_;
  progress.finished = done_ == nullptr;
  progress.folders_total = jobs_.size();
  progress.folders_done = report_.folders.size();
  progress.messages_done = downloaded_.messages;
  progress.bytes_done = downloaded_.bytes;
  progress.seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started_).count();
  // Estimates: never below what is done.
  progress.messages_expected = std::max(expected_messages_, downloaded_.messages);
  progress.bytes_expected = expected_bytes_ == 0 ? 0 : std::max(expected_bytes_, downloaded_.bytes);
  return progress;
}

// Opens the pool and starts the folders.
void AccountSync::StartFolders() {
  // Folders without local changes need nothing of the scan: free it.
  for (FolderJob& job : jobs_) {
    if (!job.local_changed) job.local.reset();
    job.downloaded = &downloaded_;
  }
  // Extra sessions only for work that repays their login: an account where
  // nothing changed costs a single login, a few changed folders two, and
  // downloads of thousands of messages the full pool. (On loopback, with
  // the server on the same two cores, four sessions for a dozen small
  // changes are slower than two.)
  // A large download can keep several sessions busy (FolderPull::AddHelper).
  constexpr uint64_t kNewMessagesPerSession = 2000;
  size_t needing_session = 0;
  uint64_t work = 0;  // about one unit per folder round trip or 100 new messages
  for (const FolderJob& job : jobs_) {
    Result<std::optional<store::FolderRecord>> record = index_->GetFolder(job.remote_name);
    if (record.ok() && record->has_value() && UnchangedSinceLastSync(job, **record) &&
        !job.local_changed) {
      continue;
    }
    ++needing_session;
    uint32_t known_next = record.ok() && record->has_value() ? (*record)->uidnext : 0;
    uint64_t fresh = known_next == 0 ? job.status_messages.value_or(0)
                     : job.status_uidnext && *job.status_uidnext > known_next
                         ? *job.status_uidnext - known_next
                         : 0;
    work += 1 + fresh / 100;
    needing_session += fresh / kNewMessagesPerSession;
    if (job.policy.pull) {
      // UIDNEXT counts expunged UIDs too: cap by what the folder holds.
      fresh = std::min<uint64_t>(fresh, job.status_messages.value_or(0));
      expected_messages_ += fresh;
      if (job.status_size && job.status_messages.value_or(0) > 0) {
        expected_bytes_ += *job.status_size / *job.status_messages * fresh;
      }
    }
  }
  constexpr uint64_t kWorkPerExtraSession = 8;
  size_t sessions = std::min<size_t>({account_.connections, needing_session,
                                      1 + static_cast<size_t>(work / kWorkPerExtraSession)});
  listed_ = true;
  pool_limit_ = std::max<size_t>(sessions, 1);
  runs_.resize(jobs_.size());
  for (size_t i = 0; i < jobs_.size(); ++i) queue_.push_back(i);
  for (size_t i = 1; i < sessions; ++i) OpenExtraWorker();
  workers_[0]->busy = false;
  NextFolder(workers_[0].get());
}

void AccountSync::OpenExtraWorker() {
  Worker* worker = workers_.emplace_back(std::make_unique<Worker>()).get();
  worker->number = workers_.size() - 1;
  worker->connection = std::make_unique<account::ImapConnection>(
      loop_, account_, std::to_string(worker->number + 1));
  worker->busy = true;  // logging in
  worker->connection->Open(
      credentials_.get(), [this, worker](const Status& status) { OnExtraReady(worker, status); },
      [this, worker] { OnWorkerClosed(worker); });
}

void AccountSync::OnExtraReady(Worker* worker, const Status& status) {
  auto refused = [this, worker](const Error& error) {
    // Servers cap sessions per user (Dovecot's mail_max_userip_connections,
    // Gmail's 15): fewer sessions, not a failed sync.
    Log(LogLevel::kInfo, "account " + account_.name + ": session " +
                             std::to_string(worker->number + 1) +
                             " not available, continuing with fewer: " + error.message);
    worker->busy = false;
    worker->given_up = true;
    CloseWorker(worker);
  };
  if (!status.ok()) return refused(status.error());
  worker->connection->session().Enable(
      {"QRESYNC", "CONDSTORE"},
      [this, worker, refused](const Result<std::set<std::string>>& enabled) {
        if (!enabled.ok()) return refused(enabled.error());
        worker->busy = false;
        worker->joined = true;
        NextFolder(worker);
      });
}

bool AccountSync::AnyLiveWorkerBesides(const Worker* worker) const {
  for (const std::unique_ptr<Worker>& other : workers_) {
    if (other.get() == worker) continue;
    if (other->waiting || other->reopen) return true;  // coming back
    if (!other->closed && !other->closing &&
        (other->busy || other->connection->session().authenticated())) {
      return true;
    }
  }
  return false;
}

void AccountSync::NextFolder(Worker* worker) {
  if (folders_done_ || worker->busy) return;
  if (!Usable(*worker)) {
    // A session that died is opened again, or leaves the remaining folders
    // to the others; when there are none, each remaining folder fails (or,
    // unchanged, succeeds) on it in turn, so that the report names them all.
    if (ShouldReopen(*worker) || AnyLiveWorkerBesides(worker)) return;
    if (queue_.empty()) {
      if (running_ == 0 && retries_waiting_ == 0) FoldersDone();
      return;
    }
  } else if (queue_.empty()) {
    if (retries_waiting_ > 0) return;  // stays open for the folder to come back
    if (HelpLargestDownload(worker)) return;
    CloseWorker(worker);  // nothing left for it
    if (running_ == 0) FoldersDone();
    return;
  } else if (LiveWorkers() > pool_limit_) {
    // The server is throttling: fewer sessions.
    worker->given_up = true;
    CloseWorker(worker);
    return;
  }
  const size_t index = queue_.front();
  queue_.pop_front();
  FolderJob job = jobs_[index];
  ++running_;
  worker->busy = true;
  auto pull = std::make_unique<FolderPull>(
      &worker->connection->session(), index_.get(), disk_.get(), std::move(job),
      [this, worker] {
        // The folder's disk work may still be running: the session moves on
        // to the next folder meanwhile. Called from the session's own
        // callbacks, so the next command goes out on a later turn.
        worker->busy = false;
        PostNextFolder(worker);
      },
      [this, index](FolderReport folder) { OnFolderDone(index, std::move(folder)); });
  FolderPull* started = pull.get();
  pulls_.push_back(std::move(pull));
  started->Start();
}

// With no folder left to start, an idle session joins the running download
// with the most messages still to ask for, if that repays the EXAMINE.
bool AccountSync::HelpLargestDownload(Worker* worker) {
  constexpr uint64_t kWorthHelping = 1000;
  if (worker->closed || worker->closing || !worker->connection->session().authenticated()) {
    return false;
  }
  FolderPull* best = nullptr;
  uint64_t most = kWorthHelping - 1;
  for (const std::unique_ptr<FolderPull>& pull : pulls_) {
    if (pull->unrequested() > most) {
      most = pull->unrequested();
      best = pull.get();
    }
  }
  if (best == nullptr) return false;
  worker->busy = true;
  best->AddHelper(&worker->connection->session(), [this, worker] {
    worker->busy = false;
    PostNextFolder(worker);
  });
  return true;
}

void AccountSync::OnFolderDone(size_t job, FolderReport folder) {
  --running_;
  // Kept across attempts: a retry after the matching does not redo it.
  runs_[job].flags_unmerged = runs_[job].flags_unmerged || folder.flags_unmerged;
  const bool retrying = !folder.status.ok() && RetryFolder(job, folder);
  const bool merging = !retrying && folder.status.ok() && MergeFlagsAgain(job, folder);
  if (!retrying && !merging) {
    if (!folder.status.ok() && Transient(folder.status.error()) && account_.retries > 0) {
      Error final = folder.status.error();
      final.message += GaveUp(final, runs_[job].failed_attempts);
      folder.status = final;
    }
    if (runs_[job].earlier) {
      FolderReport total = std::move(*runs_[job].earlier);
      runs_[job].earlier.reset();
      AddCounts(total, folder);
      if (!runs_[job].merged_again) total.path = folder.path;  // else: how it began
      total.status = folder.status;
      folder = std::move(total);
    }
    report_.folders.push_back(folder);
    if (on_folder_) on_folder_(account_, folder);
  }
  // The pull is still on the stack; once none is running, none is needed.
  loop_->Post([this, alive = std::weak_ptr<const bool>(alive_)] {
    if (alive.expired() || running_ != 0) return;
    pulls_.clear();
    if (queue_.empty() && retries_waiting_ == 0 && !folders_done_) FoldersDone();
  });
}

void AccountSync::PostNextFolder(Worker* worker) {
  // The owner may destroy this object once `done` ran, which can happen
  // before the posted call.
  loop_->Post([this, worker, alive = std::weak_ptr<const bool>(alive_)] {
    if (!alive.expired()) NextFolder(worker);
  });
}

void AccountSync::CloseWorker(Worker* worker) {
  if (worker->closed || worker->closing) return;
  worker->closing = true;
  worker->connection->Finish();  // LOGOUT; the close callback follows
}

void AccountSync::OnWorkerClosed(Worker* worker) {
  const bool reopen = ShouldReopen(*worker);
  worker->closed = true;
  if (reopen) {
    if (!worker->reopen) {
      // Dropped under us: count it, and wait as long as a throttling
      // server asked before its BYE.
      const std::optional<Error>& failure = worker->connection->session().failure();
      ++worker->failures;
      worker->retry_after_ms = failure ? failure->throttle_ms.value_or(0) : 0;
      if (failure && failure->throttle_ms) Throttled(*failure);
    }
    ScheduleReopen(worker);
    return;
  }
  // Out of attempts: not to be revived for a folder's retry either.
  if (worker->failures >= account_.retries) worker->given_up = true;
  // An idle session that dropped may be the last one: the remaining folders
  // then need it to report them.
  if (!folders_done_ && !worker->busy) PostNextFolder(worker);
  MaybeFinish();
}

// --- Faults

bool AccountSync::Usable(const Worker& worker) {
  return !worker.closed && !worker.closing && worker.connection->session().authenticated();
}

size_t AccountSync::LiveWorkers() const {
  return static_cast<size_t>(
      std::count_if(workers_.begin(), workers_.end(), [](const std::unique_ptr<Worker>& worker) {
        return worker->waiting || worker->reopen ||
               (!worker->closed && !worker->closing &&
                (worker->busy || worker->connection->session().authenticated()));
      }));
}

// A failure worth opening the session again for: transient, within the
// attempts allowed, and not asking for a longer wait than allowed.
bool AccountSync::MayReopen(const Worker& worker, const Error& error) const {
  return !folders_done_ && !worker.given_up && Transient(error) &&
         worker.failures < account_.retries &&
         static_cast<double>(error.throttle_ms.value_or(0)) <=
             account_.max_retry_wait_seconds * 1000;
}

// Whether a session that is dead, or about to be, is to be opened again:
// asked for, or a pool member that dropped under us with work left.
bool AccountSync::ShouldReopen(const Worker& worker) const {
  if (folders_done_ || worker.given_up) return false;
  if (worker.reopen || worker.waiting) return true;
  if (worker.closing || !worker.joined || !listed_) return false;
  if (queue_.empty() && retries_waiting_ == 0) return false;
  const std::optional<Error>& failure = worker.connection->session().failure();
  // A server that sends garbage may do better on a fresh session for the
  // other folders; that folder itself is not retried.
  return !failure || ((Transient(*failure) || failure->kind == ErrorKind::kProtocol) &&
                      MayReopen(worker, Transient(*failure) ? *failure
                                                            : MakeError(ErrorKind::kUnavailable,
                                                                        failure->message)));
}

bool AccountSync::CanRetryFolders() const {
  return std::any_of(workers_.begin(), workers_.end(), [](const std::unique_ptr<Worker>& worker) {
    return !worker->given_up && (worker->joined || worker->busy);
  });
}

void AccountSync::ListingFailed(const Error& error) {
  Worker* first = workers_[0].get();
  if (MayReopen(*first, error)) {
    ++first->failures;
    first->reopen = true;
    first->retry_after_ms = error.throttle_ms.value_or(0);
    Log(LogLevel::kInfo, "account " + account_.name + ": " + error.message);
    CloseWorker(first);  // OnWorkerClosed opens it again
    return;
  }
  Error final = error;
  if (Transient(error) && account_.retries > 0) final.message += GaveUp(error, first->failures + 1);
  report_.status = final;
  FoldersDone();
}

void AccountSync::ScheduleReopen(Worker* worker) {
  worker->reopen = false;
  worker->waiting = true;
  const uint64_t delay = BackoffMs(worker->failures, worker->retry_after_ms);
  Log(LogLevel::kInfo,
      "account " + account_.name + ": opening session " + std::to_string(worker->number + 1) +
          " again in " + FormatSeconds(delay) + " s (attempt " + std::to_string(worker->failures) +
          " of " + std::to_string(account_.retries) + ")");
  loop_->Post(
      [this, worker, alive = std::weak_ptr<const bool>(alive_)] {
        if (!alive.expired()) Reopen(worker);
      },
      delay);
}

void AccountSync::Reopen(Worker* worker) {
  worker->waiting = false;
  const bool listing = !listed_ && worker->number == 0;
  if (folders_done_ || (!listing && queue_.empty() && retries_waiting_ == 0)) {
    // Nothing left for it (the others finished meanwhile).
    if (!folders_done_ && !worker->busy) PostNextFolder(worker);
    return MaybeFinish();
  }
  // The old connection reported its close: it may go now.
  worker->connection = std::make_unique<account::ImapConnection>(
      loop_, account_, worker->number == 0 ? "" : std::to_string(worker->number + 1));
  worker->closed = false;
  worker->closing = false;
  worker->busy = true;
  worker->connection->Open(
      credentials_.get(),
      [this, worker, listing](const Status& status) {
        if (listing) return OnLoggedIn(status);
        OnReopened(worker, status);
      },
      [this, worker] { OnWorkerClosed(worker); });
}

void AccountSync::OnReopened(Worker* worker, const Status& status) {
  auto failed = [this, worker](const Error& error) {
    worker->busy = false;
    if (folders_done_) return CloseWorker(worker);  // closed by the end of the run
    if (MayReopen(*worker, error)) {
      ++worker->failures;
      worker->reopen = true;
      worker->retry_after_ms = error.throttle_ms.value_or(0);
      Log(LogLevel::kInfo, "account " + account_.name + ": session " +
                               std::to_string(worker->number + 1) + ": " + error.message);
      CloseWorker(worker);
      return;
    }
    GiveUpWorker(worker, error);
  };
  if (!status.ok()) return failed(status.error());
  worker->connection->session().Enable(
      {"QRESYNC", "CONDSTORE"},
      [this, worker, failed](const Result<std::set<std::string>>& enabled) {
        if (!enabled.ok()) return failed(enabled.error());
        worker->failures = 0;
        worker->busy = false;
        NextFolder(worker);
      });
}

void AccountSync::GiveUpWorker(Worker* worker, const Error& error) {
  Log(LogLevel::kInfo, "account " + account_.name + ": session " +
                           std::to_string(worker->number + 1) + " given up: " + error.message);
  worker->given_up = true;
  CloseWorker(worker);
  // With no session left, the remaining folders fail on this one in turn.
  if (worker->closed) PostNextFolder(worker);
}

void AccountSync::Throttled(const Error& error) {
  const size_t live = LiveWorkers();
  const size_t limit = live > 1 ? live - 1 : 1;
  if (limit < pool_limit_) {
    pool_limit_ = limit;
    Log(LogLevel::kInfo, "account " + account_.name + ": the server is throttling (" +
                             error.message + "); continuing with at most " +
                             std::to_string(pool_limit_) + " session(s)");
  }
}

// A folder whose files were just matched to the server's messages, with
// flags that differ between the two, runs once more at once: its full
// comparison then keeps the union of both sides' flags, in this run rather
// than the next.
bool AccountSync::MergeFlagsAgain(size_t job, const FolderReport& folder) {
  JobRun& run = runs_[job];
  if (!run.flags_unmerged || run.merged_again || folders_done_ || options_.dry_run) {
    return false;
  }
  run.merged_again = true;
  // A retry after the matching may have stored HIGHESTMODSEQ: compare all.
  jobs_[job].compare_all_flags = true;
  if (run.earlier) {
    AddCounts(*run.earlier, folder);
  } else {
    run.earlier = folder;
  }
  Log(LogLevel::kInfo, jobs_[job].log_context +
                           ": flags differ between the matched files and the server; "
                           "comparing them all now");
  ++retries_waiting_;
  loop_->Post([this, job, alive = std::weak_ptr<const bool>(alive_)] {
    if (!alive.expired()) RequeueFolder(job);
  });
  return true;
}

bool AccountSync::RetryFolder(size_t job, const FolderReport& folder) {
  const Error& error = folder.status.error();
  JobRun& run = runs_[job];
  // An attempt that got somewhere starts the count again: a connection that
  // drops every few thousand messages still finishes a large folder.
  run.failed_attempts = MadeProgress(folder) ? 1 : run.failed_attempts + 1;
  if (folders_done_ || !Transient(error) || run.failed_attempts > account_.retries ||
      static_cast<double>(error.throttle_ms.value_or(0)) > account_.max_retry_wait_seconds * 1000 ||
      !CanRetryFolders()) {
    return false;
  }
  if (error.throttle_ms) Throttled(error);
  if (run.earlier) {
    AddCounts(*run.earlier, folder);
  } else {
    run.earlier = folder;
  }
  const uint64_t delay = BackoffMs(run.failed_attempts, error.throttle_ms.value_or(0));
  Log(LogLevel::kInfo, "account " + account_.name + ": " + error.message + "; trying again in " +
                           FormatSeconds(delay) + " s (attempt " +
                           std::to_string(run.failed_attempts) + " of " +
                           std::to_string(account_.retries) + ")");
  ++retries_waiting_;
  loop_->Post(
      [this, job, alive = std::weak_ptr<const bool>(alive_)] {
        if (!alive.expired()) RequeueFolder(job);
      },
      delay);
  return true;
}

void AccountSync::RequeueFolder(size_t job) {
  --retries_waiting_;
  if (folders_done_) return;
  FolderJob& folder = jobs_[job];
  if (folder.policy.push && !options_.dry_run) {
    // The failed attempt may have renamed, uploaded or removed files: the
    // merge must start from the Maildir as it is now.
    Status scanned = ScanLocal(folder);
    folder.local_status = scanned;
    if (scanned.ok() && !folder.local_changed) folder.local.reset();
  }
  queue_.push_back(job);
  for (const std::unique_ptr<Worker>& worker : workers_) {
    if (Usable(*worker) && !worker->busy) return PostNextFolder(worker.get());
  }
  for (const std::unique_ptr<Worker>& worker : workers_) {
    // Busy, or coming back: it takes the folder when free.
    if (worker->waiting || worker->reopen || (!worker->closed && !worker->closing)) return;
  }
  for (const std::unique_ptr<Worker>& worker : workers_) {
    if (!worker->given_up && worker->joined) return Reopen(worker.get());
  }
  // No session can be had: the folder fails on a dead one and is reported.
  PostNextFolder(workers_[0].get());
}

uint64_t AccountSync::BackoffMs(uint32_t attempt, uint64_t asked_ms) {
  const double cap = account_.max_retry_wait_seconds * 1000;
  double delay = account_.retry_delay_seconds * 1000 *
                 std::pow(2.0, static_cast<double>(attempt > 0 ? attempt - 1 : 0));
  // Jitter, so that sessions (and cron jobs) cut off together do not all
  // come back in the same instant.
  delay *= std::uniform_real_distribution<double>(0.5, 1.5)(jitter_);
  delay = std::min(delay, cap);
  return std::max(static_cast<uint64_t>(delay), asked_ms);
}

std::string AccountSync::GaveUp(const Error& error, uint32_t attempts) const {
  std::string text = " (gave up after " + CountOf(attempts, "attempt", "attempts");
  if (error.throttle_ms && *error.throttle_ms > 0) {
    const int64_t when = static_cast<int64_t>(std::time(nullptr)) +
                         static_cast<int64_t>((*error.throttle_ms + 999) / 1000);
    text += "; the server asked for a pause of " + FormatSeconds(*error.throttle_ms) +
            " s: try again after " + FormatLocalTime(when, "%Y-%m-%d %H:%M:%S");
  } else if (error.throttle_ms) {
    text += "; the server is throttling: try again later";
  }
  return text + ")";
}

// Renames the index to index.broken-YYYYMMDD-HHMMSS (kept for a post
// mortem, never deleted); the sync then finds none and rebuilds it.
Status AccountSync::SetIndexAside() {
  const std::string path = account_.state_dir + "/index";
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0) {
    if (errno == ENOENT) return Status::Ok();
    return MakeError(ErrorKind::kIo, "index " + path + ": " + std::strerror(errno));
  }
  const std::string base = path + ".broken-" + FormatLocalTime(std::time(nullptr), "%Y%m%d-%H%M%S");
  std::string aside = base;
  for (int n = 2; ::lstat(aside.c_str(), &st) == 0; ++n) {
    aside = base;
    aside += "-";
    aside += std::to_string(n);
  }
  if (::rename(path.c_str(), aside.c_str()) != 0) {
    return MakeError(ErrorKind::kIo, "cannot move the index " + path + " aside to " + aside + ": " +
                                         std::strerror(errno));
  }
  report_.old_index = aside;
  Log(LogLevel::kInfo, "account " + account_.name + ": old index moved to " + aside +
                           "; rebuilding it from the Maildir");
  return Status::Ok();
}

void AccountSync::Fail(const Error& error) {
  report_.status = error;
  folders_done_ = true;  // no session was opened
  // Report from the loop, as every other outcome is.
  loop_->Post([this] { MaybeFinish(); });
}

void AccountSync::FoldersDone() {
  folders_done_ = true;
  for (const std::unique_ptr<Worker>& worker : workers_) CloseWorker(worker.get());
  MaybeFinish();
}

// Reports once the folders are over and every session is closed: a dropped
// connection fails the remaining folders one by one before the report.
void AccountSync::MaybeFinish() {
  if (!folders_done_ || !done_) return;
  for (const std::unique_ptr<Worker>& worker : workers_) {
    if (!worker->closed) return;
  }
  report_.seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started_).count();
  pulls_.clear();
  disk_.reset();  // idle: each folder waited for its disk work
  index_.reset();
  if (lock_ && !options_.dry_run) {
    // Written under the lock: a run that found the account busy leaves the
    // record of the one that holds it alone.
    Status recorded = WriteRunRecord(account_.state_dir, report_, std::time(nullptr));
    if (!recorded.ok()) {
      Log(LogLevel::kWarning, "account " + account_.name + ": " + recorded.error().message);
    }
    const bool synced_some =
        std::any_of(report_.folders.begin(), report_.folders.end(),
                    [](const FolderReport& folder) { return folder.status.ok(); });
    if (synced_some) {
      if (Status marked = RecordSynced(account_.maildir, account_.name); !marked.ok()) {
        Log(LogLevel::kWarning, "account " + account_.name + ": " + marked.error().message);
      }
    }
  }
  lock_.reset();
  auto done = std::move(done_);
  done_ = nullptr;
  done(std::move(report_));
}

}  // namespace mailmirror::sync
