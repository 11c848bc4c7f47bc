#include "cli/status_command.h"

#include <sys/stat.h>

#include <algorithm>
#include <ctime>
#include <map>

#include "cli/list_command.h"
#include "store/folder_map.h"
#include "store/index.h"
#include "store/maildir.h"
#include "sync/account_sync.h"
#include "sync/local_scan.h"
#include "util/strings.h"

namespace mailmirror::cli {
namespace {

// Local changes of one folder since the index last matched its Maildir.
std::optional<uint64_t> PendingChanges(const std::string& path, const store::FolderRecord& record,
                                       const std::vector<store::MessageRecord>& messages) {
  struct stat st {};
  if (::stat((path + "/cur").c_str(), &st) != 0) return std::nullopt;
  if (record.local_stamp != 0 &&
      sync::DirectoryStamp(path, static_cast<int64_t>(std::time(nullptr))) == record.local_stamp) {
    return 0;  // nothing added, removed or renamed since
  }
  Result<std::unique_ptr<store::MaildirFolder>> folder = store::MaildirFolder::Open(path, false);
  if (!folder.ok()) return std::nullopt;
  Result<sync::LocalFolderState> state = sync::ScanLocalFolder(**folder, messages);
  if (!state.ok()) return std::nullopt;
  uint64_t pending = state->unknown.size();
  for (size_t i = 0; i < messages.size(); ++i) {
    const std::optional<store::MaildirFolder::Entry>& file = state->known[i];
    if (!file || file->name.flags != messages[i].flags) ++pending;
  }
  return pending;
}

std::string FormatTime(int64_t when) {
  if (when == 0) return "never";
  return FormatLocalTime(when, "%Y-%m-%d %H:%M");
}

AccountStatus Collect(const AccountConfig& account) {
  AccountStatus status;
  status.account = &account;
  Result<sync::RunRecord> record = sync::ReadRunRecord(account.state_dir);
  if (record.ok()) status.record = std::move(record).value();
  struct stat st {};
  if (::stat((account.state_dir + "/index").c_str(), &st) != 0) return status;  // never synced
  Result<std::unique_ptr<store::Index>> index = store::Index::Open(account.state_dir + "/index");
  if (!index.ok()) {
    status.status = index.error();
    return status;
  }
  status.synced = true;
  Result<std::vector<store::FolderRecord>> folders = (*index)->ListFolders();
  if (!folders.ok()) {
    status.status = folders.error();
    return status;
  }
  const store::Layout layout = sync::LayoutOf(account);
  for (const store::FolderRecord& folder : *folders) {
    if (folder.uidvalidity == 0) continue;  // never completed a first sync
    FolderStatus row;
    row.name = folder.local_name;
    row.server = folder.messages;
    Result<std::vector<store::MessageRecord>> messages = (*index)->ListMessages(folder.id);
    if (!messages.ok()) {
      status.status = messages.error();
      return status;
    }
    row.local = messages->size();
    for (const store::MessageRecord& message : *messages) {
      if ((message.flags & store::kFlagSeen) == 0) ++row.unread;
    }
    Result<std::string> path = store::LocalPathFor(account.maildir, folder.local_name, layout);
    if (path.ok()) row.pending = PendingChanges(*path, folder, *messages);
    Result<std::vector<store::RefusedFile>> refused = (*index)->ListRefused(folder.id);
    if (refused.ok()) row.refused = std::move(refused).value();
    auto run = status.record.folders.find(folder.local_name);
    if (run != status.record.folders.end()) row.run = run->second;
    status.folders.push_back(std::move(row));
  }
  std::stable_sort(status.folders.begin(), status.folders.end(),
                   [](const FolderStatus& a, const FolderStatus& b) {
                     if ((a.name == "INBOX") != (b.name == "INBOX")) return a.name == "INBOX";
                     return a.name < b.name;
                   });
  return status;
}

}  // namespace

std::vector<AccountStatus> CollectStatus(const std::vector<const AccountConfig*>& accounts,
                                         bool remote) {
  std::vector<AccountStatus> statuses;
  statuses.reserve(accounts.size());
  for (const AccountConfig* account : accounts) statuses.push_back(Collect(*account));
  if (!remote) return statuses;
  std::vector<AccountListing> listings = ListAccounts(accounts);
  for (size_t i = 0; i < statuses.size(); ++i) {
    if (!listings[i].mailboxes.ok()) {
      if (statuses[i].status.ok()) statuses[i].status = listings[i].mailboxes.error();
      continue;
    }
    std::map<std::string, std::optional<uint32_t>> now;
    for (const imap::MailboxInfo& mailbox : *listings[i].mailboxes) {
      now[mailbox.name] = mailbox.messages;
    }
    for (FolderStatus& folder : statuses[i].folders) {
      auto it = now.find(folder.name);
      folder.server = it != now.end() ? it->second : std::nullopt;
    }
  }
  return statuses;
}

void PrintStatus(const std::vector<AccountStatus>& statuses, std::ostream& out) {
  bool first = true;
  for (const AccountStatus& status : statuses) {
    if (!first) out << '\n';
    first = false;
    const sync::RunRecord& record = status.record;
    out << status.account->name << ": ";
    if (!status.synced) {
      out << "never synced\n";
      continue;
    }
    out << "last sync " << FormatTime(record.finished)
        << (record.finished == 0   ? ""
            : record.error.empty() ? ", ok"
                                   : ", FAILED: " + record.error)
        << '\n';
    std::vector<std::vector<std::string>> rows = {
        {"FOLDER", "LOCAL", "SERVER", "UNREAD", "PENDING", "LAST SYNC"}};
    for (const FolderStatus& folder : status.folders) {
      std::string last = FormatTime(folder.run.synced);
      if (!folder.run.error.empty()) last += " (last attempt FAILED)";
      rows.push_back({folder.name, std::to_string(folder.local),
                      folder.server ? std::to_string(*folder.server) : "-",
                      std::to_string(folder.unread),
                      folder.pending ? std::to_string(*folder.pending) : "missing", last});
    }
    std::vector<size_t> widths(rows[0].size(), 0);
    for (const auto& row : rows) {
      for (size_t c = 0; c < row.size(); ++c) widths[c] = std::max(widths[c], DisplayWidth(row[c]));
    }
    for (const auto& row : rows) {
      std::string line = "  ";
      for (size_t c = 0; c < row.size(); ++c) {
        const size_t pad = widths[c] - DisplayWidth(row[c]);
        // Names left-aligned, counts right-aligned, the time last.
        if (c == 0 || c + 1 == row.size()) {
          line += row[c] + (c + 1 == row.size() ? "" : std::string(pad + 2, ' '));
        } else {
          line += std::string(pad, ' ') + row[c] + "  ";
        }
      }
      out << line << '\n';
    }
    for (const FolderStatus& folder : status.folders) {
      for (const store::RefusedFile& file : folder.refused) {
        out << EscapeControls("  not uploaded: " + folder.name + "/" + file.file_name + ": " +
                              file.reason)
            << '\n';
      }
    }
  }
}

}  // namespace mailmirror::cli
