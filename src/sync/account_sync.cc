#include "sync/account_sync.h"

#include <algorithm>
#include <ctime>
#include <set>
#include <utility>

#include "store/folder_map.h"
#include "util/fs.h"
#include "util/log.h"

namespace mailmirror::sync {

AccountSync::AccountSync(net::EventLoop* loop, const AccountConfig& account,
                         std::function<void(const AccountConfig&, const FolderReport&)> on_folder,
                         std::function<void(AccountReport)> done)
    : loop_(loop), account_(account), on_folder_(std::move(on_folder)), done_(std::move(done)) {
  report_.account = &account_;
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
  Result<std::unique_ptr<AccountLock>> lock =
      AccountLock::Acquire(account_.state_dir, account_.name);
  if (!lock.ok()) return Fail(lock.error());
  lock_ = std::move(lock).value();
  Result<std::unique_ptr<store::Index>> index = store::Index::Open(account_.state_dir + "/index");
  if (!index.ok()) return Fail(index.error());
  index_ = std::move(index).value();
  Status root = MakeDirectories(account_.maildir, 0700);
  if (!root.ok()) return Fail(root.error());
  Result<std::string> password = ResolvePassword(account_);
  if (!password.ok()) return Fail(password.error());

  connection_ = std::make_unique<account::ImapConnection>(loop_, account_);
  connection_->Open(
      std::move(password).value(), [this](const Status& status) { OnLoggedIn(status); },
      [this] {
        connection_closed_ = true;
        MaybeFinish();
      });
}

void AccountSync::OnLoggedIn(const Status& status) {
  if (!status.ok()) {
    report_.status = status;
    return FoldersDone();
  }
  // QRESYNC (which implies CONDSTORE) lets each folder report only what
  // changed since the last run; CONDSTORE alone at least the flag changes.
  connection_->session().Enable(
      {"QRESYNC", "CONDSTORE"}, [this](Result<std::set<std::string>> enabled) {
        if (!enabled.ok()) {
          report_.status = enabled.error();
          return FoldersDone();
        }
        connection_->session().GetPersonalNamespace(
            [this](Result<std::optional<imap::PersonalNamespace>> personal) {
              OnNamespace(std::move(personal));
            });
      });
}

void AccountSync::OnNamespace(Result<std::optional<imap::PersonalNamespace>> personal) {
  if (!personal.ok()) {
    report_.status = personal.error();
    return FoldersDone();
  }
  namespace_ = *personal;
  connection_->session().ListMailboxes(
      [this](Result<std::vector<imap::MailboxInfo>> mailboxes) { OnListed(std::move(mailboxes)); });
}

void AccountSync::OnListed(Result<std::vector<imap::MailboxInfo>> mailboxes) {
  if (!mailboxes.ok()) {
    report_.status = mailboxes.error();
    return FoldersDone();
  }
  store::Layout layout =
      account_.layout == "maildir++" ? store::Layout::kMaildirPlusPlus : store::Layout::kVerbatim;
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
    Result<std::string> path = store::LocalPathFor(account_.maildir, *local_name, layout);
    if (!path.ok()) {
      report_.skipped.push_back(path.error().message);
      Log(LogLevel::kWarning, "account " + account_.name + ": " + path.error().message);
      continue;
    }
    // The state directory lives inside the Maildir root by default.
    if (*path == account_.state_dir || path->rfind(account_.state_dir + "/", 0) == 0) {
      std::string why = "folder \"" + *local_name +
                        "\" skipped: it would be stored in the "
                        "state directory " +
                        account_.state_dir;
      report_.skipped.push_back(why);
      Log(LogLevel::kWarning, "account " + account_.name + ": " + why);
      continue;
    }
    FolderJob job;
    job.remote_name = mailbox.raw_name;
    job.local_name = *local_name;
    job.local_path = *path;
    job.run_started = run_started_;
    job.status_uidvalidity = mailbox.uidvalidity;
    job.status_uidnext = mailbox.uidnext;
    job.status_highestmodseq = mailbox.highestmodseq;
    jobs_.push_back(std::move(job));
  }
  std::stable_sort(jobs_.begin(), jobs_.end(), [](const FolderJob& a, const FolderJob& b) {
    if ((a.local_name == "INBOX") != (b.local_name == "INBOX")) return a.local_name == "INBOX";
    return a.local_name < b.local_name;
  });
  NextFolder();
}

void AccountSync::NextFolder() {
  if (next_job_ >= jobs_.size()) return FoldersDone();
  FolderJob job = jobs_[next_job_++];
  current_ = std::make_unique<FolderPull>(&connection_->session(), index_.get(), std::move(job),
                                          [this](const FolderReport& folder) {
                                            report_.folders.push_back(folder);
                                            if (on_folder_) on_folder_(account_, folder);
                                            // The finished pull is still on the stack: replace it
                                            // on a later turn.
                                            loop_->Post([this] { NextFolder(); });
                                          });
  current_->Start();
}

void AccountSync::Fail(const Error& error) {
  report_.status = error;
  folders_done_ = true;
  connection_closed_ = true;  // never opened
  // Report from the loop, as every other outcome is.
  loop_->Post([this] { MaybeFinish(); });
}

void AccountSync::FoldersDone() {
  folders_done_ = true;
  if (connection_closed_) return MaybeFinish();
  connection_->Finish();  // LOGOUT; the close callback finishes
}

// Reports once both the folder jobs and the connection are over: a dropped
// connection fails the remaining folders one by one before the report.
void AccountSync::MaybeFinish() {
  if (!folders_done_ || !connection_closed_ || !done_) return;
  report_.seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started_).count();
  current_.reset();
  index_.reset();
  lock_.reset();
  auto done = std::move(done_);
  done_ = nullptr;
  done(std::move(report_));
}

}  // namespace mailmirror::sync
