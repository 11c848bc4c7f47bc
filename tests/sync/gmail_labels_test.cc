// Gmail label copies: finding where the account stores a message by its
// X-GM-MSGID and linking it into another label's folder. There is no live
// Gmail here, and Dovecot has no X-GM-MSGID, so the pieces the download
// uses (index, file names, links, delivery) are tested with real files.
#include "sync/gmail_labels.h"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>

#include <filesystem>
#include <map>
#include <string>

#include "store/maildir.h"

namespace mailmirror::sync {
namespace {

namespace fs = std::filesystem;

constexpr uint64_t kMsgid = 1782349812340123456ull;

class GmailLabelsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = (fs::temp_directory_path() / "gmail_labels_test.XXXXXX").string();
    ASSERT_NE(mkdtemp(pattern.data()), nullptr);
    root_ = pattern;
    Result<std::unique_ptr<store::Index>> index = store::Index::Open(root_ + "/index");
    ASSERT_TRUE(index.ok()) << index.error().message;
    index_ = std::move(index).value();
    for (const char* name : {"INBOX", "Work", "Excluded"}) {
      Result<std::unique_ptr<store::MaildirFolder>> folder =
          store::MaildirFolder::Open(root_ + "/mail/" + name, true);
      ASSERT_TRUE(folder.ok());
      Result<uint32_t> id = index_->AllocateFolderId();
      ASSERT_TRUE(id.ok());
      ids_[name] = *id;
      folders_[name] = std::move(folder).value();
    }
    // The account syncs INBOX and Work; "Excluded" is not in its folders.
    labels_ = std::make_unique<GmailLabels>(index_.get(),
                                            [this](uint32_t id) -> std::optional<std::string> {
                                              for (const char* name : {"INBOX", "Work"}) {
                                                if (ids_[name] == id) return folders_[name]->path();
                                              }
                                              return std::nullopt;
                                            });
  }

  void TearDown() override {
    index_.reset();
    std::error_code ignored;
    fs::remove_all(root_, ignored);
  }

  // Stores a message in `folder` with `uid` and `flags` as a download does
  // (file delivered, then the record committed); returns its path.
  std::string Store(const std::string& folder, uint32_t uid, uint32_t flags, uint64_t msgid,
                    const std::string& body = "Subject: labels\r\n\r\nbody\r\n") {
    Result<std::unique_ptr<store::TmpMessage>> message = folders_[folder]->BeginMessage();
    EXPECT_TRUE(message.ok());
    EXPECT_TRUE((*message)->Write(body).ok());
    EXPECT_TRUE((*message)->Finish().ok());
    store::MessageRecord record;
    record.uid = uid;
    record.stem = (*message)->stem();
    record.in_cur = (flags & store::kFlagSeen) != 0;
    record.flags = flags;
    record.size = (*message)->size();
    record.digest = (*message)->digest();
    record.gm_msgid = msgid;
    store::DeliveryBatch batch;
    batch.Add({folders_[folder].get(), std::move(message).value(), uid, flags, 0});
    EXPECT_TRUE(batch.Deliver().ok());
    store::Index::Batch index_batch;
    index_batch.PutMessage(ids_[folder], record);
    EXPECT_TRUE(index_->Commit(index_batch).ok());
    return folders_[folder]->path() + (record.in_cur ? "/cur/" : "/new/") +
           batch.delivered_names()[0];
  }

  std::string root_;
  std::unique_ptr<store::Index> index_;
  std::map<std::string, uint32_t> ids_;
  std::map<std::string, std::unique_ptr<store::MaildirFolder>> folders_;
  std::unique_ptr<GmailLabels> labels_;
};

TEST_F(GmailLabelsTest, FindsTheStoredCopyUnderAnotherLabelAndLinksIt) {
  const std::string stored = Store("INBOX", 41, store::kFlagSeen | store::kFlagFlagged, kMsgid);
  std::optional<GmailLabels::Source> source = labels_->Find(kMsgid, ids_["Work"]);
  ASSERT_TRUE(source.has_value());
  EXPECT_EQ(source->path, stored);
  struct stat st {};
  ASSERT_EQ(::stat(stored.c_str(), &st), 0);
  EXPECT_EQ(source->size, uint64_t(st.st_size));

  // The download of Work's UID 7 links instead of fetching: one inode.
  Result<std::unique_ptr<store::TmpMessage>> link =
      folders_["Work"]->LinkMessage(source->path, source->size, source->digest);
  ASSERT_TRUE(link.ok()) << link.error().message;
  store::DeliveryBatch batch;
  batch.Add({folders_["Work"].get(), std::move(link).value(), 7, store::kFlagSeen, 0});
  ASSERT_TRUE(batch.Deliver().ok());
  struct stat linked {};
  ASSERT_EQ(
      ::stat((folders_["Work"]->path() + "/cur/" + batch.delivered_names()[0]).c_str(), &linked),
      0);
  EXPECT_EQ(linked.st_ino, st.st_ino);
  EXPECT_EQ(linked.st_nlink, 2u);
}

TEST_F(GmailLabelsTest, OwnFolderUnknownIdsAndUnsyncedFoldersAreNotSources) {
  Store("INBOX", 41, 0, kMsgid);
  EXPECT_FALSE(labels_->Find(kMsgid, ids_["INBOX"]).has_value());  // its own copy
  EXPECT_FALSE(labels_->Find(kMsgid + 1, ids_["Work"]).has_value());
  EXPECT_FALSE(labels_->Find(0, ids_["Work"]).has_value());
  // Held only by a folder this run does not sync: downloaded.
  Store("Excluded", 3, 0, kMsgid + 2);
  EXPECT_FALSE(labels_->Find(kMsgid + 2, ids_["Work"]).has_value());
  // Held by that folder and by a synced one: the synced one.
  const std::string in_work = Store("Work", 9, 0, kMsgid + 2);
  std::optional<GmailLabels::Source> source = labels_->Find(kMsgid + 2, ids_["INBOX"]);
  ASSERT_TRUE(source.has_value());
  EXPECT_EQ(source->path, in_work);
  // A message without an id (not Gmail) is never found.
  Store("Work", 10, 0, 0);
  EXPECT_FALSE(labels_->Find(0, ids_["INBOX"]).has_value());
}

TEST_F(GmailLabelsTest, ACopyARenamedSinceIsDownloadedInstead) {
  const std::string stored = Store("INBOX", 41, 0, kMsgid);
  // A reader marked it read: moved to cur/ with ":2,S", unknown to the index.
  const std::string renamed = folders_["INBOX"]->path() + "/cur/" +
                              fs::path(stored).filename().string().substr(0, stored.size()) + "S";
  ASSERT_EQ(::rename(stored.c_str(), renamed.c_str()), 0);
  std::optional<GmailLabels::Source> source = labels_->Find(kMsgid, ids_["Work"]);
  ASSERT_TRUE(source.has_value());  // predicted from the index...
  Result<std::unique_ptr<store::TmpMessage>> link =
      folders_["Work"]->LinkMessage(source->path, source->size, source->digest);
  ASSERT_FALSE(link.ok());  // ...and not there: FolderPull downloads it
  EXPECT_EQ(link.error().kind, ErrorKind::kIo);
  EXPECT_TRUE(fs::is_empty(folders_["Work"]->path() + "/tmp"));
}

}  // namespace
}  // namespace mailmirror::sync
