#include "sync/mirror_audit.h"

#include <sys/stat.h>

#include <algorithm>
#include <cstdio>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <unordered_map>
#include <unordered_set>

#include "account/credentials.h"
#include "account/imap_connection.h"
#include "imap/sequence_set.h"
#include "net/event_loop.h"
#include "store/folder_map.h"
#include "store/index.h"
#include "store/maildir.h"
#include "sync/account_lock.h"
#include "sync/account_sync.h"
#include "sync/message_key.h"
#include "util/strings.h"

namespace mailmirror::sync {
namespace {

// Bodies are fetched this many at a time in a deep audit.
constexpr size_t kDeepBatch = 200;

std::string Letters(uint32_t flags) {
  std::string letters = store::FlagLetters(flags);
  return letters.empty() ? "(none)" : letters;
}

// What the server says of one message.
struct ServerMessage {
  uint32_t flags = 0;
  uint64_t size = 0;
};

// Collects UID, FLAGS and RFC822.SIZE, or with bodies their digest as
// stored (CRLF as LF), from the FETCH responses of one command.
class AuditSink : public BodyDigestSink {
 public:
  Status OnMessage(const imap::FetchedMessage& message) override {
    if (!message.uid) return Status::Ok();
    if (message.has_body) {
      if (!message.body_nil) digests[*message.uid] = body_digest();
      return Status::Ok();
    }
    if (!message.rfc822_size) return Status::Ok();  // an unsolicited flag update
    ServerMessage& server = messages[*message.uid];
    server.flags = store::SplitImapFlags(message.flags).bits;
    server.size = message.rfc822_size.value_or(0);
    return Status::Ok();
  }

  std::map<uint32_t, ServerMessage> messages;
  std::unordered_map<uint32_t, uint64_t> digests;
};

class Audit {
 public:
  Audit(const AccountConfig& account, const AuditOptions& options, store::Index* index,
        std::vector<store::FolderRecord> folders, AuditReport* report)
      : account_(account),
        options_(options),
        index_(index),
        folders_(std::move(folders)),
        report_(report) {}

  void Run(net::EventLoop* loop, account::Credentials* credentials) {
    connection_ = std::make_unique<account::ImapConnection>(loop, account_);
    connection_->Open(
        credentials,
        [this](const Status& status) {
          if (!status.ok()) {
            report_->status = status;
            return connection_->Finish();
          }
          NextFolder();
        },
        [] {});
  }

 private:
  // A message to compare by body (--deep); `entry` points into entries_.
  struct DeepCheck {
    uint32_t uid = 0;
    const store::MaildirFolder::Entry* entry = nullptr;
    uint64_t indexed_digest = 0;
  };

  void NextFolder() {
    if (next_ == folders_.size()) return connection_->Finish();
    const store::FolderRecord& record = folders_[next_++];
    FolderAudit& folder = report_->folders.emplace_back();
    folder.name = record.local_name;
    sink_ = std::make_unique<AuditSink>();
    connection_->session().Select(
        record.remote_name, /*read_only=*/true,
        [this, &record](Result<imap::SelectedMailbox> selected) {
          if (!selected.ok()) return FolderFailed(selected.error());
          if (selected->uidvalidity != record.uidvalidity) {
            Find(record, 0, "",
                 "UIDVALIDITY changed on the server (" + std::to_string(record.uidvalidity) +
                     " here, " + std::to_string(selected->uidvalidity) +
                     " there): the next sync matches the files to the new UIDs");
            return NextFolder();
          }
          if (selected->exists == 0) return Compare(record);
          connection_->session().UidFetch("1:*", "UID FLAGS RFC822.SIZE", sink_.get(),
                                          [this, &record](const Status& status) {
                                            if (!status.ok()) return FolderFailed(status.error());
                                            Compare(record);
                                          });
        });
  }

  void FolderFailed(const Error& error) {
    report_->folders.back().status = error;
    deep_.clear();  // they point into this folder's entries_
    maildir_.reset();
    // A broken connection fails the folders left; a NO fails only this one.
    if (connection_->session().failure()) {
      report_->status = error;
      return connection_->Finish();
    }
    NextFolder();
  }

  void Find(const store::FolderRecord& record, uint32_t uid, const std::string& file,
            std::string what) {
    report_->findings.push_back(AuditFinding{record.local_name, uid, file, std::move(what)});
  }

  // The three sides of one folder against each other.
  void Compare(const store::FolderRecord& record) {
    deep_.clear();
    FolderAudit& folder = report_->folders.back();
    folder.server = sink_->messages.size();
    const store::Layout layout = LayoutOf(account_);
    Result<std::string> path = store::LocalPathFor(account_.maildir, record.local_name, layout);
    if (!path.ok()) return FolderFailed(path.error());
    struct stat st {};
    if (::stat((*path + "/cur").c_str(), &st) != 0) {
      Find(record, 0, "",
           "the folder's directory " + *path +
               " is missing (the next sync stops rather than "
               "delete the server's messages)");
      return NextFolder();
    }
    Result<std::unique_ptr<store::MaildirFolder>> opened =
        store::MaildirFolder::Open(*path, /*create=*/false);
    if (!opened.ok()) return FolderFailed(opened.error());
    maildir_ = std::move(opened).value();
    Result<std::vector<store::MaildirFolder::Entry>> scanned = maildir_->Scan();
    if (!scanned.ok()) return FolderFailed(scanned.error());
    entries_ = std::move(scanned).value();
    const std::vector<store::MaildirFolder::Entry>* entries = &entries_;
    Result<std::vector<store::MessageRecord>> records = index_->ListMessages(record.id);
    if (!records.ok()) return FolderFailed(records.error());
    folder.local = entries->size();

    std::map<std::string, std::vector<const store::MaildirFolder::Entry*>> by_stem;
    std::map<uint32_t, std::vector<const store::MaildirFolder::Entry*>> by_uid;
    for (const store::MaildirFolder::Entry& entry : *entries) {
      by_stem[entry.name.stem].push_back(&entry);
      if (entry.name.uid != 0) by_uid[entry.name.uid].push_back(&entry);
    }
    std::unordered_set<std::string_view> indexed_stems;
    for (const store::MessageRecord& message : *records) indexed_stems.insert(message.stem);
    // Of several files with one UID, the one the index knows is the message;
    // the others are copies.
    std::unordered_set<const store::MaildirFolder::Entry*> copies;
    for (const auto& [uid, files] : by_uid) {
      if (files.size() < 2) continue;
      auto original = std::find_if(files.begin(), files.end(), [&](const auto* entry) {
        return indexed_stems.count(entry->name.stem) > 0;
      });
      const store::MaildirFolder::Entry* kept = original != files.end() ? *original : files[0];
      for (const store::MaildirFolder::Entry* entry : files) {
        if (entry == kept) continue;
        copies.insert(entry);
        Find(record, uid, entry->file_name,
             "a second file for UID " + std::to_string(uid) + " (the message is " +
                 kept->file_name + ")");
      }
    }

    std::unordered_map<uint32_t, const store::MessageRecord*> indexed;
    for (const store::MessageRecord& message : *records) {
      indexed[message.uid] = &message;
      auto files = by_stem.find(message.stem);
      if (files == by_stem.end()) {
        Find(record, message.uid, "",
             "in the index, but its file (" + message.stem +
                 ") is gone: deleted here since "
                 "the last sync");
        continue;
      }
      const store::MaildirFolder::Entry& entry = *files->second.front();
      if (entry.name.uid != message.uid) {
        Find(record, message.uid, entry.file_name,
             "the file name carries UID " + std::to_string(entry.name.uid) + ", the index UID " +
                 std::to_string(message.uid));
      }
      if (::stat(maildir_->EntryPath(entry).c_str(), &st) == 0 &&
          static_cast<uint64_t>(st.st_size) != message.size) {
        Find(record, message.uid, entry.file_name,
             "the file has " + std::to_string(st.st_size) + " bytes, " +
                 std::to_string(message.size) + " when it was synced");
      }
      auto server = sink_->messages.find(message.uid);
      if (server == sink_->messages.end()) {
        Find(record, message.uid, entry.file_name,
             "gone from the server: the next sync deletes it here");
        continue;
      }
      if (message.remote_size != 0 && server->second.size != message.remote_size) {
        Find(record, message.uid, entry.file_name,
             "the server's size is " + std::to_string(server->second.size) + " bytes, " +
                 std::to_string(message.remote_size) + " when it was synced");
      }
      if (server->second.flags != entry.name.flags) {
        Find(record, message.uid, entry.file_name,
             "flags differ: " + Letters(entry.name.flags) + " here, " +
                 Letters(server->second.flags) + " on the server");
      }
      if (options_.deep) deep_.push_back(DeepCheck{message.uid, &entry, message.digest});
    }
    for (const store::MaildirFolder::Entry& entry : *entries) {
      if (indexed_stems.count(entry.name.stem) > 0 || copies.count(&entry) > 0) continue;
      if (entry.name.uid == 0) {
        Find(record, 0, entry.file_name, "new here, not yet on the server");
      } else {
        Find(record, entry.name.uid, entry.file_name,
             "carries a UID but is not in the index (the next sync matches it to the server)");
      }
    }
    for (const auto& [uid, server] : sink_->messages) {
      if (indexed.count(uid) > 0) continue;
      Find(record, uid, "",
           uid >= record.uidnext ? "new on the server, not yet here"
                                 : "on the server, missing here");
    }
    CheckBodies(record);
  }

  // --deep: the sample (or all) of the messages present on both sides.
  void CheckBodies(const store::FolderRecord& record) {
    if (deep_.empty()) return NextFolder();
    if (options_.sample != 0 && deep_.size() > options_.sample) {
      std::mt19937 random(std::random_device{}());
      std::shuffle(deep_.begin(), deep_.end(), random);
      deep_.resize(options_.sample);
    }
    std::sort(deep_.begin(), deep_.end(),
              [](const DeepCheck& a, const DeepCheck& b) { return a.uid > b.uid; });
    FetchBodies(record);
  }

  void FetchBodies(const store::FolderRecord& record) {
    if (deep_.empty()) {
      maildir_.reset();
      return NextFolder();
    }
    const size_t take = std::min(kDeepBatch, deep_.size());
    std::vector<DeepCheck> batch(deep_.end() - static_cast<ptrdiff_t>(take), deep_.end());
    deep_.resize(deep_.size() - take);
    std::vector<uint32_t> uids;
    uids.reserve(batch.size());
    for (const DeepCheck& check : batch) uids.push_back(check.uid);
    std::sort(uids.begin(), uids.end());
    sink_->digests.clear();
    connection_->session().UidFetch(
        imap::FormatSequenceSet(uids), "UID BODY.PEEK[]", sink_.get(),
        [this, &record, batch = std::move(batch)](const Status& status) {
          if (!status.ok()) return FolderFailed(status.error());
          for (const DeepCheck& check : batch) CheckBody(record, check);
          FetchBodies(record);
        });
  }

  void CheckBody(const store::FolderRecord& record, const DeepCheck& check) {
    FolderAudit& folder = report_->folders.back();
    const std::string& file = check.entry->file_name;
    auto fetched = sink_->digests.find(check.uid);
    if (fetched == sink_->digests.end()) {
      Find(record, check.uid, file, "the server sent no body");
      return;
    }
    ++folder.bodies;
    Result<std::pair<uint64_t, uint64_t>> local = maildir_->DigestOf(file, check.entry->in_cur);
    if (!local.ok()) {
      Find(record, check.uid, file, "cannot read the file: " + local.error().message);
      return;
    }
    if (local->first != fetched->second &&
        DigestWithoutTuid(maildir_->EntryPath(*check.entry)) != fetched->second) {
      Find(record, check.uid, file, "the file's content differs from the server's message");
    } else if (check.indexed_digest != 0 && check.indexed_digest != local->first) {
      Find(record, check.uid, file, "the index holds another digest for the file");
    }
  }

  const AccountConfig& account_;
  const AuditOptions& options_;
  store::Index* index_;
  const std::vector<store::FolderRecord> folders_;
  AuditReport* report_;
  std::unique_ptr<account::ImapConnection> connection_;
  size_t next_ = 0;
  std::unique_ptr<AuditSink> sink_;
  std::unique_ptr<store::MaildirFolder> maildir_;
  std::vector<store::MaildirFolder::Entry> entries_;  // the folder's files
  std::vector<DeepCheck> deep_;
};

}  // namespace

AuditReport AuditAccount(const AccountConfig& account, const AuditOptions& options) {
  AuditReport report;
  report.account = &account;
  struct stat st {};
  const std::string index_path = account.state_dir + "/index";
  if (::stat(index_path.c_str(), &st) != 0) {
    report.status = MakeError(ErrorKind::kConfig, "account " + account.name +
                                                      " has never been synced (no index in " +
                                                      account.state_dir + "): nothing to verify");
    return report;
  }
  Result<std::unique_ptr<AccountLock>> lock = AccountLock::Acquire(account.state_dir, account.name);
  if (!lock.ok()) {
    report.status = lock.error();
    return report;
  }
  Result<std::unique_ptr<store::Index>> index = store::Index::Open(index_path);
  if (!index.ok()) {
    report.status = index.error();
    return report;
  }
  Result<std::vector<store::FolderRecord>> folders = (*index)->ListFolders();
  if (!folders.ok()) {
    report.status = folders.error();
    return report;
  }
  std::erase_if(*folders,
                [](const store::FolderRecord& folder) { return folder.uidvalidity == 0; });
  Result<account::Credentials> credentials = account::Credentials::Resolve(account);
  if (!credentials.ok()) {
    report.status = credentials.error();
    return report;
  }
  net::EventLoop loop;
  Audit audit(account, options, index->get(), std::move(folders).value(), &report);
  audit.Run(&loop, &*credentials);
  loop.Run();
  return report;
}

}  // namespace mailmirror::sync
