// A pull sync of one account: lock, index, connection, folder list, then
// each selected folder in turn (INBOX first) on one IMAP session.
//
// Threading: the loop thread. Lifetime: keep the object until `done` ran.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "account/imap_connection.h"
#include "mailmirror/config.h"
#include "mailmirror/status.h"
#include "net/event_loop.h"
#include "store/index.h"
#include "sync/account_lock.h"
#include "sync/folder_pull.h"

namespace mailmirror::sync {

struct AccountReport {
  const AccountConfig* account = nullptr;
  std::vector<FolderReport> folders;  // in the order they were synced
  std::vector<std::string> skipped;   // folders refused by name, with the reason
  Status status;                      // account-wide failure (lock, login, list)
  double seconds = 0;
};

class AccountSync {
 public:
  AccountSync(net::EventLoop* loop, const AccountConfig& account,
              std::function<void(const AccountConfig&, const FolderReport&)> on_folder,
              std::function<void(AccountReport)> done);
  ~AccountSync();

  // Resolves the password (it may prompt), then runs on the loop.
  void Start();

 private:
  void OnLoggedIn(const Status& status);
  void OnNamespace(Result<std::optional<imap::PersonalNamespace>> personal);
  void OnListed(Result<std::vector<imap::MailboxInfo>> mailboxes);
  void NextFolder();
  void Fail(const Error& error);
  void FoldersDone();
  void MaybeFinish();

  net::EventLoop* loop_;
  const AccountConfig& account_;
  std::function<void(const AccountConfig&, const FolderReport&)> on_folder_;
  std::function<void(AccountReport)> done_;
  AccountReport report_;
  std::chrono::steady_clock::time_point started_;
  int64_t run_started_ = 0;

  std::unique_ptr<AccountLock> lock_;
  std::unique_ptr<store::Index> index_;
  std::unique_ptr<account::ImapConnection> connection_;
  std::optional<imap::PersonalNamespace> namespace_;
  std::vector<FolderJob> jobs_;
  size_t next_job_ = 0;
  bool folders_done_ = false;
  bool connection_closed_ = false;
  std::unique_ptr<FolderPull> current_;
};

}  // namespace mailmirror::sync
