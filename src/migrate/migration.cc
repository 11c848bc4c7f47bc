#include "migrate/migration.h"

#include <sys/stat.h>

#include <algorithm>
#include <chrono>
#include <map>
#include <memory>
#include <set>
#include <unordered_map>
#include <utility>

#include "account/credentials.h"
#include "account/imap_connection.h"
#include "migrate/folder_mapping.h"
#include "migrate/message_filter.h"
#include "net/event_loop.h"
#include "store/folder_map.h"
#include "store/maildir.h"
#include "sync/account_lock.h"
#include "sync/account_sync.h"
#include "util/log.h"

namespace mailmirror::migrate {
namespace {

// The delimiter a server's listing uses (the first one given), '/' if none.
char DelimiterOf(const std::vector<imap::MailboxInfo>& mailboxes) {
  for (const imap::MailboxInfo& mailbox : mailboxes) {
    if (mailbox.delimiter != 0) return mailbox.delimiter;
  }
  return '/';
}

class MigrationRun {
 public:
  MigrationRun(net::EventLoop* loop, const MigrationConfig& migration, const AccountConfig& source,
               const AccountConfig& target, const MigrateOptions& options, store::Index* index,
               account::Credentials* source_credentials, account::Credentials* target_credentials,
               MigrationReport* report)
      : loop_(loop),
        migration_(migration),
        source_(source),
        target_(target),
        options_(options),
        index_(index),
        source_credentials_(source_credentials),
        target_credentials_(target_credentials),
        report_(report) {}

  void Start() {
    if (options_.source_listing != nullptr) {
      source_list_ = *options_.source_listing;
      source_listed_ = true;
    } else {
      ListSource();
    }
    StartTarget();
  }

 private:
  void ListSource() {
    source_connection_ = std::make_unique<account::ImapConnection>(loop_, source_, "source");
    source_connection_->Open(
        source_credentials_,
        [this](const Status& status) {
          if (!status.ok()) return ListingFailed(status.error().Wrap("account " + source_.name));
          source_connection_->session().ListMailboxes(
              [this](Result<std::vector<imap::MailboxInfo>> listed) {
                if (!listed.ok()) {
                  return ListingFailed(listed.error().Wrap("account " + source_.name));
                }
                source_list_ = std::move(listed).value();
                source_listed_ = true;
                source_connection_->Finish();
                MaybePlan();
              });
        },
        [] {});
  }

  void StartTarget() {
    Worker* first = AddWorker();
    OpenWorker(first, [this, first](const Status& status) {
      if (!status.ok()) return ListingFailed(status.error().Wrap("account " + target_.name));
      imap::Session& session = first->connection->session();
      session.GetPersonalNamespace(
          [this, first](Result<std::optional<imap::PersonalNamespace>> personal) {
            if (personal.ok() && *personal) target_naming_.namespace_prefix = (*personal)->prefix;
            first->connection->session().ListMailboxes(
                [this](Result<std::vector<imap::MailboxInfo>> listed) {
                  if (!listed.ok()) {
                    return ListingFailed(listed.error().Wrap("account " + target_.name));
                  }
                  target_list_ = std::move(listed).value();
                  target_listed_ = true;
                  MaybePlan();
                });
          });
    });
  }

  struct Worker {
    size_t number = 0;  // in the trace: target#N
    std::unique_ptr<account::ImapConnection> connection;
    std::unique_ptr<FolderCopy> copy;
    bool closed = false;
    bool reopen = false;     // open again once closed
    bool reopening = false;  // waiting out the pause before opening again
    uint32_t failures = 0;   // failed openings in a row
    uint64_t wait_ms = 0;    // before reopening
  };

  Worker* AddWorker() {
    workers_.push_back(std::make_unique<Worker>());
    workers_.back()->number = workers_.size() - 1;
    return workers_.back().get();
  }

  void OpenWorker(Worker* worker, std::function<void(Status)> ready) {
    worker->closed = false;
    worker->reopen = false;
    worker->connection = std::make_unique<account::ImapConnection>(
        loop_, target_, "target#" + std::to_string(worker->number));
    worker->connection->Open(target_credentials_, std::move(ready),
                             [this, worker] { OnWorkerClosed(worker); });
  }

  void ListingFailed(const Error& error) {
    if (report_->status.ok()) report_->status = error;
    failed_ = true;
    for (auto& worker : workers_) {
      if (worker->connection && !worker->closed) worker->connection->Finish();
    }
    if (source_connection_) source_connection_->Finish();
  }

  void MaybePlan() {
    if (!source_listed_ || !target_listed_ || failed_) return;
    if (Status planned = Plan(); !planned.ok()) return ListingFailed(planned.error());
    std::stable_sort(queue_.begin(), queue_.end(), [this](size_t a, size_t b) {
      return jobs_[a].messages.size() > jobs_[b].messages.size();
    });
    const size_t limit = std::max<size_t>(
        1, migration_.connections != 0 ? migration_.connections : target_.connections);
    for (size_t extra = 1; extra < std::min(limit, queue_.size()); ++extra) {
      Worker* worker = AddWorker();
      OpenWorker(worker, [this, worker](const Status& status) {
        // An extra session the server refuses leaves the pool smaller.
        if (!status.ok()) return worker->connection->Finish();
        NextJob(worker);
      });
    }
    NextJob(workers_.front().get());
  }

  Status Plan() {
    target_naming_.delimiter = DelimiterOf(target_list_);
    std::set<std::string> target_folders;
    std::map<std::string, std::string> target_special_use;
    for (const imap::MailboxInfo& mailbox : target_list_) {
      target_folders.insert(mailbox.raw_name);
      std::string special = SpecialUseOf(mailbox.attributes);
      Result<std::string> local = store::LocalNameFor(mailbox.raw_name, target_naming_);
      if (!special.empty() && local.ok()) target_special_use.emplace(special, *local);
    }
    std::unordered_map<std::string, const imap::MailboxInfo*> source_by_raw;
    for (const imap::MailboxInfo& mailbox : source_list_) {
      source_by_raw.emplace(mailbox.raw_name, &mailbox);
    }
    std::vector<store::FolderRecord> records;
    if (index_ != nullptr) {
      Result<std::vector<store::FolderRecord>> listed = index_->ListFolders();
      if (!listed.ok()) return listed.error();
      records = std::move(listed).value();
      std::erase_if(records,
                    [](const store::FolderRecord& record) { return record.uidvalidity == 0; });
    }
    // Source folders on the server the mirror does not hold.
    const store::ServerNaming source_naming{DelimiterOf(source_list_), ""};
    std::vector<std::pair<std::string, const imap::MailboxInfo*>> unmirrored;
    for (const imap::MailboxInfo& mailbox : source_list_) {
      // Gmail's All Mail repeats the label folders; the sync leaves it out
      // unless gmail_all_mail, and so does a migration.
      if (!mailbox.selectable || imap::HasAttribute(mailbox.attributes, "\\All")) continue;
      const bool known =
          std::any_of(records.begin(), records.end(), [&](const store::FolderRecord& record) {
            return record.remote_name == mailbox.raw_name;
          });
      Result<std::string> local = store::LocalNameFor(mailbox.raw_name, source_naming);
      if (!known && local.ok() && store::FolderSelected(source_.folders, *local)) {
        unmirrored.emplace_back(*local, &mailbox);
      }
    }
    report_->folders.reserve(records.size() + unmirrored.size());
    const MessageFilter filter(migration_, filter_max_bytes());
    const std::string target_key = TargetKey(target_);
    std::map<std::string, size_t> job_of;  // target raw name -> jobs_ index
    store::Index::Batch resets;
    auto map_folder = [&](const std::string& local_name,
                          const std::string& raw_name) -> FolderMigration& {
      FolderMigration& folder = report_->folders.emplace_back();
      folder.source = local_name;
      auto listed = source_by_raw.find(raw_name);
      const std::string special =
          listed == source_by_raw.end() ? "" : SpecialUseOf(listed->second->attributes);
      MappedFolder mapped = MapFolder(migration_, local_name, special, target_special_use);
      folder.target = mapped.target;
      folder.reason = mapped.reason;
      return folder;
    };
    for (const store::FolderRecord& record : records) {
      if (!store::FolderSelected(migration_.folders, record.local_name)) continue;
      FolderMigration& folder = map_folder(record.local_name, record.remote_name);
      Result<std::string> raw = store::RemoteNameFor(folder.target, target_naming_);
      if (!raw.ok()) {
        folder.status = raw.error().Wrap("target folder \"" + folder.target + "\"");
        continue;
      }
      const bool target_exists = target_folders.count(*raw) != 0;
      // A dry run shows what it would create; a real run what it created.
      folder.create = options_.dry_run && !target_exists;
      Result<std::vector<store::MessageRecord>> messages = index_->ListMessages(record.id);
      if (!messages.ok()) return messages.error();
      std::set<uint32_t> copied;
      std::vector<store::CopyMark> recorded;
      Result<std::optional<store::CopySource>> copies_of =
          index_->GetCopySource(target_key, record.id);
      if (!copies_of.ok()) return copies_of.error();
      const store::CopySource refers_to{record.uidvalidity, Fingerprint(*raw)};
      // The records stand while the source folder keeps its UIDs, the
      // settings are the same and the target folder is still there.
      const bool records_hold = *copies_of && (*copies_of)->uidvalidity == refers_to.uidvalidity &&
                                (*copies_of)->fingerprint == refers_to.fingerprint && target_exists;
      if (records_hold) {
        Result<std::vector<std::pair<uint32_t, store::CopyMark>>> copies =
            index_->ListCopies(target_key, record.id);
        if (!copies.ok()) return copies.error();
        for (const auto& [uid, mark] : *copies) {
          copied.insert(uid);
          recorded.push_back(mark);
        }
      } else {
        // The target's contents decide (by digest), all of them: forget
        // the target folder's mark too, until a run completes it.
        resets.ResetCopies(target_key, record.id, refers_to);
        resets.ForgetCopyTarget(target_key, *raw);
      }
      std::unordered_map<std::string, std::string> files = FilesOf(record, folder);
      auto [slot, added] = job_of.emplace(*raw, jobs_.size());
      if (added) {
        CopyJob& job = jobs_.emplace_back();
        job.raw_name = *raw;
        job.local_name = folder.target;
        job.exists = target_exists;
      }
      CopyJob& job = jobs_[slot->second];
      job.full_scan = job.full_scan || !records_hold;
      job.reports.push_back(&folder);
      job.recorded.insert(job.recorded.end(), recorded.begin(), recorded.end());
      for (store::MessageRecord& message : *messages) {
        ++folder.selected;
        if (std::string why = filter.SkipReason(message); !why.empty()) {
          ++folder.skipped;
          ++folder.skip_reasons[why];
        } else if (copied.count(message.uid) != 0) {
          ++folder.present;
        } else {
          SourceMessage& source = job.messages.emplace_back();
          auto file = files.find(message.stem);
          if (file != files.end()) source.path = file->second;
          source.folder_id = record.id;
          source.record = std::move(message);
          source.report = &folder;
        }
      }
    }
    for (const auto& [local_name, mailbox] : unmirrored) {
      if (!store::FolderSelected(migration_.folders, local_name)) continue;
      FolderMigration& folder = map_folder(local_name, mailbox->raw_name);
      folder.mirrored = false;
      folder.selected = mailbox->messages.value_or(0);
      if (!options_.dry_run) {
        folder.status =
            MakeError(ErrorKind::kTemporary, "not in the mirror of " + source_.name +
                                                 " (its sync did not complete): not migrated");
      }
    }
    for (size_t i = 0; i < jobs_.size(); ++i) {
      if (!jobs_[i].messages.empty() || (!jobs_[i].exists && !options_.dry_run)) {
        queue_.push_back(i);
      }
    }
    if (!options_.dry_run && index_ != nullptr) {
      if (Status committed = index_->Commit(resets); !committed.ok()) return committed;
    }
    return Status::Ok();
  }

  // What decides which messages reach which target folder: a change makes
  // the target's contents decide again (store::CopySource).
  uint32_t Fingerprint(const std::string& target_raw_name) const {
    std::string settings = target_raw_name + '\n' + std::to_string(migration_.since) + '\n' +
                           std::to_string(migration_.before) + '\n' +
                           std::to_string(filter_max_bytes()) + '\n';
    for (const std::string& flag : migration_.skip_flags) settings += flag + '\n';
    const size_t hash = std::hash<std::string>{}(settings);
    return static_cast<uint32_t>(hash ^ (uint64_t{hash} >> 32));
  }

  uint64_t filter_max_bytes() const {
    return migration_.max_bytes != 0 ? migration_.max_bytes : target_.max_upload_bytes;
  }

  // The mirror's message files of a folder, by stem.
  std::unordered_map<std::string, std::string> FilesOf(const store::FolderRecord& record,
                                                       FolderMigration& folder) {
    std::unordered_map<std::string, std::string> files;
    Result<std::string> path =
        store::LocalPathFor(source_.maildir, record.local_name, sync::LayoutOf(source_));
    if (!path.ok()) return files;
    struct stat st {};
    if (::stat((*path + "/cur").c_str(), &st) != 0) return files;
    Result<std::unique_ptr<store::MaildirFolder>> maildir =
        store::MaildirFolder::Open(*path, /*create=*/false);
    if (!maildir.ok()) {
      folder.status = maildir.error();
      return files;
    }
    Result<std::vector<store::MaildirFolder::Entry>> entries = (*maildir)->Scan();
    if (!entries.ok()) {
      folder.status = entries.error();
      return files;
    }
    for (const store::MaildirFolder::Entry& entry : *entries) {
      files.emplace(entry.name.stem, (*maildir)->EntryPath(entry));
    }
    return files;
  }

  void NextJob(Worker* worker) {
    if (queue_.empty() || failed_) return CloseWorker(worker);
    // A throttling server asked every session for a pause.
    const auto now = std::chrono::steady_clock::now();
    if (now < not_before_) {
      const auto wait = std::chrono::duration_cast<std::chrono::milliseconds>(not_before_ - now);
      loop_->Post([this, worker] { NextJob(worker); }, static_cast<uint64_t>(wait.count()) + 1);
      return;
    }
    // The session died while it waited for work.
    if (!worker->connection->session().authenticated()) return Reopen(worker, 0);
    const size_t job = queue_.front();
    queue_.pop_front();
    CopyContext context;
    context.index = index_;
    context.target_key = TargetKey(target_);
    context.dry_run = options_.dry_run;
    if (worker->copy) finished_copies_.push_back(std::move(worker->copy));
    worker->copy = std::make_unique<FolderCopy>(
        &worker->connection->session(), &jobs_[job], context,
        [this, worker, job](const Status& status) {
          // Not from inside the session's callback: the copy is done with it.
          loop_->Post([this, worker, job, status] { OnJobDone(worker, job, status); });
        });
    worker->copy->Start();
  }

  void OnJobDone(Worker* worker, size_t job, const Status& status) {
    if (status.ok()) return NextJob(worker);
    CopyJob& copy_job = jobs_[job];
    const Error& error = status.error();
    copy_job.attempts = worker->copy->progressed() ? 1 : copy_job.attempts + 1;
    const imap::Session& session = worker->connection->session();
    const bool session_dead = !session.authenticated() || session.failure().has_value();
    uint64_t wait_ms = 0;
    if (Transient(error) && copy_job.attempts <= target_.retries) {
      Log(LogLevel::kWarning, "migration " + migration_.name + ": " + copy_job.local_name + ": " +
                                  error.message + "; trying again");
      queue_.push_front(job);
      wait_ms = BackoffMs(copy_job.attempts, error.throttle_ms.value_or(0));
      if (error.throttle_ms) {
        not_before_ = std::max(
            not_before_, std::chrono::steady_clock::now() + std::chrono::milliseconds(wait_ms));
      }
    } else {
      FailJob(copy_job, error);
    }
    if (session_dead || error.throttle_ms) {
      if (queue_.empty()) return CloseWorker(worker);
      return Reopen(worker, wait_ms);
    }
    if (wait_ms == 0) return NextJob(worker);
    loop_->Post([this, worker] { NextJob(worker); }, wait_ms);
  }

  // How long to wait before attempt `attempt` + 1: retry_delay doubled per
  // attempt, at least what the server asked, at most max_retry_wait.
  uint64_t BackoffMs(uint32_t attempt, uint64_t asked_ms) const {
    const auto base = static_cast<uint64_t>(target_.retry_delay_seconds * 1000.0);
    const uint64_t doubled = base << std::min<uint32_t>(attempt > 0 ? attempt - 1 : 0, 10);
    return std::min(std::max(doubled, asked_ms),
                    static_cast<uint64_t>(target_.max_retry_wait_seconds * 1000.0));
  }

  // Marks the job's source folders failed: those with messages still to
  // do, or all of them when none has (a failed CREATE of an empty folder,
  // a failed final commit).
  void FailJob(CopyJob& job, const Error& error) {
    std::set<FolderMigration*> unfinished;
    for (const SourceMessage& message : job.messages) {
      if (!message.done) unfinished.insert(message.report);
    }
    for (FolderMigration* report : job.reports) {
      if ((unfinished.empty() || unfinished.count(report) != 0) && report->status.ok()) {
        report->status = error.Wrap("target folder \"" + job.local_name + "\"");
      }
    }
  }

  // No more work for this session.
  void CloseWorker(Worker* worker) {
    worker->reopen = false;
    if (worker->closed) return CheckAllClosed();
    worker->connection->Finish();
  }

  // Logs in again after `wait_ms` (now, or once the connection closed).
  void Reopen(Worker* worker, uint64_t wait_ms) {
    worker->reopen = true;
    worker->wait_ms = wait_ms;
    if (worker->closed) return ScheduleReopen(worker);
    worker->connection->Finish();
  }

  void ScheduleReopen(Worker* worker) {
    worker->reopen = false;
    worker->reopening = true;
    loop_->Post(
        [this, worker] {
          worker->reopening = false;
          if (failed_) return CheckAllClosed();
          OpenWorker(worker, [this, worker](const Status& status) {
            if (status.ok()) {
              worker->failures = 0;
              return NextJob(worker);
            }
            if (++worker->failures <= target_.retries && Transient(status.error())) {
              return Reopen(worker, BackoffMs(worker->failures, 0));
            }
            last_error_ = status.error();
            CloseWorker(worker);
          });
        },
        worker->wait_ms);
  }

  void OnWorkerClosed(Worker* worker) {
    worker->closed = true;
    if (worker->reopen && !failed_) return ScheduleReopen(worker);
    CheckAllClosed();
  }

  // With every session gone for good, the folders still queued fail.
  void CheckAllClosed() {
    const bool all_closed = std::all_of(workers_.begin(), workers_.end(), [](const auto& each) {
      return each->closed && !each->reopening;
    });
    if (!all_closed || queue_.empty()) return;
    const Error error = last_error_.value_or(
        MakeError(ErrorKind::kUnavailable, "no session to " + target_.name + " left"));
    for (size_t job : queue_) FailJob(jobs_[job], error);
    queue_.clear();
  }

 public:
  // After the loop ran dry: messages neither copied nor failed belong to
  // folders that must not look complete.
  void FailUnfinished() {
    const Error error = last_error_.value_or(
        MakeError(ErrorKind::kTemporary, "the migration stopped before this folder was done"));
    for (CopyJob& job : jobs_) {
      const bool unfinished =
          std::any_of(job.messages.begin(), job.messages.end(),
                      [](const SourceMessage& message) { return !message.done; });
      if (unfinished) FailJob(job, error);
    }
  }

 private:
  net::EventLoop* loop_;
  const MigrationConfig& migration_;
  const AccountConfig& source_;
  const AccountConfig& target_;
  MigrateOptions options_;
  store::Index* index_;
  account::Credentials* source_credentials_;
  account::Credentials* target_credentials_;
  MigrationReport* report_;

  std::unique_ptr<account::ImapConnection> source_connection_;
  std::vector<imap::MailboxInfo> source_list_;
  std::vector<imap::MailboxInfo> target_list_;
  bool source_listed_ = false;
  bool target_listed_ = false;
  bool failed_ = false;
  store::ServerNaming target_naming_;
  std::vector<std::unique_ptr<Worker>> workers_;
  std::vector<std::unique_ptr<FolderCopy>> finished_copies_;
  std::vector<CopyJob> jobs_;
  std::deque<size_t> queue_;
  std::chrono::steady_clock::time_point not_before_;  // no new job before (throttling)
  std::optional<Error> last_error_;
};

}  // namespace

std::string TargetKey(const AccountConfig& target) {
  return target.user + "@" + target.host + ":" + std::to_string(target.port);
}

MigrationReport Migrate(const MigrationConfig& migration, const AccountConfig& source,
                        const AccountConfig& target, const MigrateOptions& options) {
  const auto started = std::chrono::steady_clock::now();
  MigrationReport report;
  report.migration = &migration;
  report.dry_run = options.dry_run;
  auto finish = [&](const Status& status) {
    report.status = status;
    report.seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    return report;
  };
  // The source's lock: no sync moves the mirror meanwhile, and no second
  // migration copies the same messages.
  Result<std::unique_ptr<sync::AccountLock>> lock =
      sync::AccountLock::Acquire(source.state_dir, source.name);
  if (!lock.ok()) return finish(lock.error());
  std::unique_ptr<store::Index> index;
  const std::string index_path = source.state_dir + "/index";
  struct stat st {};
  if (::stat(index_path.c_str(), &st) == 0) {
    Result<std::unique_ptr<store::Index>> opened = store::Index::Open(index_path);
    if (!opened.ok()) return finish(opened.error());
    index = std::move(opened).value();
  } else if (!options.dry_run) {
    return finish(MakeError(
        ErrorKind::kConfig,
        "account " + source.name + " has no mirror yet (no index in " + source.state_dir + ")"));
  }
  Result<account::Credentials> source_credentials = account::Credentials::Resolve(source);
  if (!source_credentials.ok()) return finish(source_credentials.error());
  Result<account::Credentials> target_credentials = account::Credentials::Resolve(target);
  if (!target_credentials.ok()) return finish(target_credentials.error());
  net::EventLoop loop;
  MigrationRun run(&loop, migration, source, target, options, index.get(), &*source_credentials,
                   &*target_credentials, &report);
  run.Start();
  loop.Run();
  if (report.status.ok()) run.FailUnfinished();
  return finish(report.status);
}

}  // namespace mailmirror::migrate
