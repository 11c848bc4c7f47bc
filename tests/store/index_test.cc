#include "store/index.h"

#include <gtest/gtest.h>
#include <lmdb.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

namespace mailmirror::store {
namespace {

namespace fs = std::filesystem;

using Messages = std::vector<std::pair<uint32_t, uint32_t>>;

class IndexTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = (fs::temp_directory_path() / "index_test.XXXXXX").string();
    ASSERT_NE(mkdtemp(pattern.data()), nullptr);
    root_ = pattern;
    dir_ = root_ + "/account/index";
  }

  void TearDown() override {
    index_.reset();
    std::error_code ignored;
    fs::permissions(root_, fs::perms::owner_all, ignored);
    fs::remove_all(root_, ignored);
  }

  void OpenIndex(const IndexOptions& options = {}) {
    index_.reset();
    Result<std::unique_ptr<Index>> opened = Index::Open(dir_, options);
    ASSERT_TRUE(opened.ok()) << opened.error().message;
    index_ = std::move(opened.value());
  }

  void CommitOk(Index::Batch& batch) {
    Status status = index_->Commit(batch);
    ASSERT_TRUE(status.ok()) << status.error().message;
    EXPECT_TRUE(batch.empty());
  }

  // A folder with an allocated id, committed.
  uint32_t AddFolder(const std::string& name) {
    Result<uint32_t> id = index_->AllocateFolderId();
    EXPECT_TRUE(id.ok());
    FolderRecord folder;
    folder.id = *id;
    folder.remote_name = name;
    folder.local_name = name;
    Index::Batch batch;
    batch.PutFolder(folder);
    EXPECT_TRUE(index_->Commit(batch).ok());
    return *id;
  }

  std::vector<uint32_t> Uids(uint32_t folder_id) {
    Result<std::vector<MessageRecord>> messages = index_->ListMessages(folder_id);
    EXPECT_TRUE(messages.ok());
    std::vector<uint32_t> uids;
    if (messages.ok()) {
      for (const MessageRecord& m : *messages) uids.push_back(m.uid);
    }
    return uids;
  }

  std::optional<uint32_t> Stem(uint32_t folder_id, const std::string& stem) {
    Result<std::optional<uint32_t>> uid = index_->UidForStem(folder_id, stem);
    EXPECT_TRUE(uid.ok());
    return uid.ok() ? *uid : std::nullopt;
  }

  Messages Digest(uint64_t digest) {
    Result<Messages> found = index_->FindDigest(digest);
    EXPECT_TRUE(found.ok());
    return found.ok() ? *found : Messages{};
  }

  std::string root_;
  std::string dir_;
  std::unique_ptr<Index> index_;
};

MessageRecord Message(uint32_t uid, const std::string& stem, uint64_t digest) {
  MessageRecord m;
  m.uid = uid;
  m.stem = stem;
  m.digest = digest;
  m.size = 1000 + uid;
  m.remote_size = 1010 + uid;
  m.flags = 0x11;
  m.in_cur = true;
  m.internaldate = 1700000000;
  return m;
}

void ExpectSame(const MessageRecord& a, const MessageRecord& b) {
  EXPECT_EQ(a.uid, b.uid);
  EXPECT_EQ(a.stem, b.stem);
  EXPECT_EQ(a.in_cur, b.in_cur);
  EXPECT_EQ(a.flags, b.flags);
  EXPECT_EQ(a.keywords, b.keywords);
  EXPECT_EQ(a.size, b.size);
  EXPECT_EQ(a.remote_size, b.remote_size);
  EXPECT_EQ(a.internaldate, b.internaldate);
  EXPECT_EQ(a.digest, b.digest);
  EXPECT_EQ(a.gm_msgid, b.gm_msgid);
}

// Stores key -> value in database `db` of the index at `dir` with raw
// LMDB, as another mailmirror version would.
void PutRaw(const std::string& dir, const char* db, std::string key, std::string value) {
  MDB_env* env = nullptr;
  ASSERT_EQ(mdb_env_create(&env), 0);
  ASSERT_EQ(mdb_env_set_maxdbs(env, 8), 0);
  ASSERT_EQ(mdb_env_open(env, dir.c_str(), 0, 0600), 0);
  MDB_txn* txn = nullptr;
  ASSERT_EQ(mdb_txn_begin(env, nullptr, 0, &txn), 0);
  MDB_dbi dbi = 0;
  ASSERT_EQ(mdb_dbi_open(txn, db, 0, &dbi), 0);
  MDB_val k{key.size(), key.data()};
  MDB_val v{value.size(), value.data()};
  ASSERT_EQ(mdb_put(txn, dbi, &k, &v, 0), 0);
  ASSERT_EQ(mdb_txn_commit(txn), 0);
  mdb_env_close(env);
}

void WriteSchemaVersion(const std::string& dir, uint32_t version) {
  PutRaw(dir, "meta", "schema_version",
         {static_cast<char>(version), static_cast<char>(version >> 8),
          static_cast<char>(version >> 16), static_cast<char>(version >> 24)});
}

TEST_F(IndexTest, CreatesPrivateDirectoryAndStartsEmpty) {
  OpenIndex();
  struct stat st = {};
  ASSERT_EQ(stat(dir_.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u);
  ASSERT_EQ(stat((root_ + "/account").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u);
  EXPECT_TRUE(fs::exists(dir_ + "/data.mdb"));

  Result<std::vector<FolderRecord>> folders = index_->ListFolders();
  ASSERT_TRUE(folders.ok());
  EXPECT_TRUE(folders->empty());
  Result<std::optional<FolderRecord>> missing = index_->GetFolder("INBOX");
  ASSERT_TRUE(missing.ok());
  EXPECT_FALSE(missing->has_value());
  EXPECT_TRUE(Uids(1).empty());
  Result<std::optional<MessageRecord>> message = index_->GetMessage(1, 1);
  ASSERT_TRUE(message.ok());
  EXPECT_FALSE(message->has_value());

  // An empty batch commits trivially.
  Index::Batch batch;
  CommitOk(batch);
}

TEST_F(IndexTest, FoldersPutGetListAndIds) {
  OpenIndex();
  Result<uint32_t> first = index_->AllocateFolderId();
  Result<uint32_t> second = index_->AllocateFolderId();
  ASSERT_TRUE(first.ok() && second.ok());
  EXPECT_EQ(*first, 1u);
  EXPECT_EQ(*second, 2u);

  FolderRecord inbox{*first, "INBOX", "INBOX", 1234, 57, 900000000001ULL, std::nullopt, false};
  FolderRecord fresh;  // id 0: assigned at Commit
  fresh.remote_name = "Archive/2023";
  fresh.local_name = "Archive/2023";
  Index::Batch batch;
  batch.PutFolder(inbox);
  batch.PutFolder(fresh);
  EXPECT_EQ(batch.size(), 2u);
  CommitOk(batch);

  Result<std::optional<FolderRecord>> got = index_->GetFolder("INBOX");
  ASSERT_TRUE(got.ok() && got->has_value());
  EXPECT_EQ((*got)->id, *first);
  EXPECT_EQ((*got)->local_name, "INBOX");
  EXPECT_EQ((*got)->uidvalidity, 1234u);
  EXPECT_EQ((*got)->uidnext, 57u);
  EXPECT_EQ((*got)->highestmodseq, 900000000001ULL);

  got = index_->GetFolder("Archive/2023");
  ASSERT_TRUE(got.ok() && got->has_value());
  uint32_t archive_id = (*got)->id;
  EXPECT_EQ(archive_id, 3u);  // after the two allocated ones

  // Updating by name with id 0 keeps the id.
  FolderRecord update = inbox;
  update.id = 0;
  update.uidnext = 99;
  batch.PutFolder(update);
  CommitOk(batch);
  got = index_->GetFolder("INBOX");
  ASSERT_TRUE(got.ok() && got->has_value());
  EXPECT_EQ((*got)->id, *first);
  EXPECT_EQ((*got)->uidnext, 99u);

  Result<std::vector<FolderRecord>> folders = index_->ListFolders();
  ASSERT_TRUE(folders.ok());
  ASSERT_EQ(folders->size(), 2u);
  EXPECT_EQ((*folders)[0].remote_name, "Archive/2023");  // byte order
  EXPECT_EQ((*folders)[1].remote_name, "INBOX");

  // Ids are never reused, not even those assigned by PutFolder.
  Result<uint32_t> next = index_->AllocateFolderId();
  ASSERT_TRUE(next.ok());
  EXPECT_EQ(*next, 4u);
}

TEST_F(IndexTest, FolderIdConflictFailsWholeBatch) {
  OpenIndex();
  uint32_t id = AddFolder("INBOX");
  FolderRecord wrong{id + 7, "INBOX", "INBOX", 1, 1, 0, std::nullopt, false};
  Index::Batch batch;
  batch.PutMessage(id, Message(1, "s1", 11));
  batch.PutFolder(wrong);
  Status status = index_->Commit(batch);
  ASSERT_FALSE(status.ok());
  EXPECT_EQ(status.error().kind, ErrorKind::kInternal);
  EXPECT_NE(status.error().message.find("commit to index " + dir_ + " failed"), std::string::npos)
      << status.error().message;
  EXPECT_EQ(batch.size(), 2u);    // left for the caller
  EXPECT_TRUE(Uids(id).empty());  // the message before the bad op is not applied
}

TEST_F(IndexTest, RenameAndDeleteFolder) {
  OpenIndex();
  uint32_t old_id = AddFolder("Old");
  uint32_t other = AddFolder("Other");
  Index::Batch batch;
  batch.PutMessage(old_id, Message(5, "five", 55));
  batch.PutMessage(other, Message(5, "five", 55));
  CommitOk(batch);

  batch.PutFolder(FolderRecord{old_id, "New", "New", 7, 8, 9, std::nullopt, false});
  CommitOk(batch);
  Result<std::optional<FolderRecord>> got = index_->GetFolder("Old");
  ASSERT_TRUE(got.ok());
  EXPECT_FALSE(got->has_value());
  got = index_->GetFolder("New");
  ASSERT_TRUE(got.ok() && got->has_value());
  EXPECT_EQ((*got)->id, old_id);
  EXPECT_EQ(Uids(old_id), std::vector<uint32_t>{5});

  batch.DeleteFolder("New");
  batch.DeleteFolder("Never existed");
  CommitOk(batch);
  got = index_->GetFolder("New");
  ASSERT_TRUE(got.ok());
  EXPECT_FALSE(got->has_value());
  EXPECT_TRUE(Uids(old_id).empty());
  EXPECT_FALSE(Stem(old_id, "five"));
  EXPECT_EQ(Digest(55), (Messages{{other, 5}}));
  EXPECT_EQ(Uids(other), std::vector<uint32_t>{5});
  Result<uint32_t> next = index_->AllocateFolderId();
  ASSERT_TRUE(next.ok());
  EXPECT_GT(*next, other);
}

TEST_F(IndexTest, LongFolderNames) {
  OpenIndex();
  // Past LMDB's 511-byte key limit; two names that share the first 600 bytes.
  std::string prefix(600, 'x');
  std::string a = prefix + "/a";
  std::string b = prefix + "/b";
  uint32_t id_a = AddFolder(a);
  uint32_t id_b = AddFolder(b);
  Result<std::optional<FolderRecord>> got = index_->GetFolder(a);
  ASSERT_TRUE(got.ok() && got->has_value()) << (got.ok() ? "" : got.error().message);
  EXPECT_EQ((*got)->id, id_a);
  EXPECT_EQ((*got)->remote_name, a);
  got = index_->GetFolder(b);
  ASSERT_TRUE(got.ok() && got->has_value());
  EXPECT_EQ((*got)->id, id_b);
  got = index_->GetFolder(prefix);
  ASSERT_TRUE(got.ok());
  EXPECT_FALSE(got->has_value());
  Result<std::vector<FolderRecord>> folders = index_->ListFolders();
  ASSERT_TRUE(folders.ok());
  EXPECT_EQ(folders->size(), 2u);
}

TEST_F(IndexTest, MessagesListInUidOrderPerFolder) {
  OpenIndex();
  uint32_t inbox = AddFolder("INBOX");
  uint32_t other = AddFolder("Other");
  const std::vector<uint32_t> uids = {17, 3, 0x80000001u, 0xFFFFFFFFu, 1, 256, 0x7FFFFFFFu, 255};
  Index::Batch batch;
  for (uint32_t uid : uids) batch.PutMessage(inbox, Message(uid, "s" + std::to_string(uid), uid));
  batch.PutMessage(other, Message(2, "o2", 2));
  CommitOk(batch);

  EXPECT_EQ(Uids(inbox),
            (std::vector<uint32_t>{1, 3, 17, 255, 256, 0x7FFFFFFFu, 0x80000001u, 0xFFFFFFFFu}));
  EXPECT_EQ(Uids(other), std::vector<uint32_t>{2});
  EXPECT_TRUE(Uids(other + 1).empty());

  Result<std::optional<MessageRecord>> got = index_->GetMessage(inbox, 0xFFFFFFFFu);
  ASSERT_TRUE(got.ok() && got->has_value());
  ExpectSame(**got, Message(0xFFFFFFFFu, "s4294967295", 0xFFFFFFFFu));
  got = index_->GetMessage(other, 3);
  ASSERT_TRUE(got.ok());
  EXPECT_FALSE(got->has_value());

  Result<std::vector<uint32_t>> keys = index_->ListUids(inbox);
  ASSERT_TRUE(keys.ok());
  EXPECT_EQ(*keys, Uids(inbox));
  keys = index_->ListUids(other + 1);
  ASSERT_TRUE(keys.ok());
  EXPECT_TRUE(keys->empty());

  // Point lookups keep the caller's order and leave unknown UIDs out.
  Result<std::vector<MessageRecord>> some = index_->GetMessages(inbox, {256, 2, 1, 0xFFFFFFFFu});
  ASSERT_TRUE(some.ok());
  ASSERT_EQ(some->size(), 3u);
  ExpectSame((*some)[0], Message(256, "s256", 256));
  ExpectSame((*some)[1], Message(1, "s1", 1));
  ExpectSame((*some)[2], Message(0xFFFFFFFFu, "s4294967295", 0xFFFFFFFFu));
}

TEST_F(IndexTest, FolderSyncProgressRoundTrips) {
  OpenIndex();
  uint32_t id = AddFolder("INBOX");
  Result<std::optional<FolderRecord>> got = index_->GetFolder("INBOX");
  ASSERT_TRUE(got.ok() && got->has_value());
  EXPECT_FALSE((*got)->messages.has_value());
  EXPECT_FALSE((*got)->fetch_pending);

  for (uint32_t messages : {0u, 1u, 0xFFFFFFFFu}) {
    FolderRecord folder = **got;
    folder.id = id;
    folder.messages = messages;
    folder.fetch_pending = messages == 1;
    Index::Batch batch;
    batch.PutFolder(folder);
    CommitOk(batch);
    Result<std::optional<FolderRecord>> read = index_->GetFolder("INBOX");
    ASSERT_TRUE(read.ok() && read->has_value());
    EXPECT_EQ((*read)->messages, std::optional<uint32_t>(messages));
    EXPECT_EQ((*read)->fetch_pending, messages == 1);
  }
}

TEST_F(IndexTest, RecordRoundTripEdgeValues) {
  OpenIndex();
  uint32_t id = AddFolder("INBOX");
  MessageRecord full;
  full.uid = 9;
  full.stem = "1764079200.M123456P4242Q17.host\\057name";
  full.in_cur = false;
  full.flags = 0x3f;
  full.keywords = {"$Junk", "", "\xC3\xA4rger \xE2\x9C\x93", std::string("nul\0byte", 8),
                   std::string(300, 'k')};
  full.size = ~uint64_t{0};
  full.remote_size = 0;
  full.internaldate = -62135596800;  // year 1, before the epoch
  full.digest = 0x8000000000000001ULL;
  MessageRecord empty;
  empty.uid = 10;  // every other field at its zero value, keywords empty
  MessageRecord max_date = Message(11, "late", 0);
  max_date.internaldate = std::numeric_limits<int64_t>::max();
  MessageRecord min_date = Message(12, "early", 0);
  min_date.internaldate = std::numeric_limits<int64_t>::min();

  Index::Batch batch;
  for (const MessageRecord& m : {full, empty, max_date, min_date}) batch.PutMessage(id, m);
  CommitOk(batch);
  Result<std::vector<MessageRecord>> messages = index_->ListMessages(id);
  ASSERT_TRUE(messages.ok());
  ASSERT_EQ(messages->size(), 4u);
  ExpectSame((*messages)[0], full);
  ExpectSame((*messages)[1], empty);
  ExpectSame((*messages)[2], max_date);
  ExpectSame((*messages)[3], min_date);

  // Empty stem and zero digest are stored but not indexed.
  EXPECT_FALSE(Stem(id, ""));
  EXPECT_TRUE(Digest(0).empty());
}

TEST_F(IndexTest, StemAndDigestReverseMaps) {
  OpenIndex();
  uint32_t inbox = AddFolder("INBOX");
  uint32_t other = AddFolder("Other");
  Index::Batch batch;
  batch.PutMessage(inbox, Message(1, "a", 100));
  batch.PutMessage(inbox, Message(2, "b", 100));  // same content twice
  batch.PutMessage(other, Message(1, "a", 100));  // same stem, other folder
  CommitOk(batch);
  EXPECT_EQ(Stem(inbox, "a"), 1u);
  EXPECT_EQ(Stem(inbox, "b"), 2u);
  EXPECT_EQ(Stem(other, "a"), 1u);
  EXPECT_FALSE(Stem(other, "b"));
  EXPECT_EQ(Digest(100), (Messages{{inbox, 1}, {inbox, 2}, {other, 1}}));
  EXPECT_TRUE(Digest(101).empty());

  // Replacing a record moves its reverse entries.
  batch.PutMessage(inbox, Message(1, "a2", 101));
  CommitOk(batch);
  EXPECT_FALSE(Stem(inbox, "a"));
  EXPECT_EQ(Stem(inbox, "a2"), 1u);
  EXPECT_EQ(Digest(100), (Messages{{inbox, 2}, {other, 1}}));
  EXPECT_EQ(Digest(101), (Messages{{inbox, 1}}));

  // Replacing with the same stem and digest (a flag change) keeps them.
  MessageRecord flagged = Message(1, "a2", 101);
  flagged.flags = 0x2;
  batch.PutMessage(inbox, flagged);
  CommitOk(batch);
  EXPECT_EQ(Stem(inbox, "a2"), 1u);
  EXPECT_EQ(Digest(101), (Messages{{inbox, 1}}));

  // Delete removes both; deleting an unknown message is a no-op.
  batch.DeleteMessage(inbox, 2);
  batch.DeleteMessage(inbox, 777);
  CommitOk(batch);
  EXPECT_FALSE(Stem(inbox, "b"));
  EXPECT_EQ(Digest(100), (Messages{{other, 1}}));
  EXPECT_EQ(Uids(inbox), std::vector<uint32_t>{1});

  // Within a batch, ops apply in order: a freed stem may be reused.
  batch.DeleteMessage(inbox, 1);
  batch.PutMessage(inbox, Message(3, "a2", 101));
  CommitOk(batch);
  EXPECT_EQ(Stem(inbox, "a2"), 3u);
  EXPECT_EQ(Digest(101), (Messages{{inbox, 3}}));
}

// Gmail shows one message under each of its labels: the same X-GM-MSGID in
// several folders, found across them to store the body once.
TEST_F(IndexTest, GmailMessageIdsAcrossLabelFolders) {
  OpenIndex();
  uint32_t inbox = AddFolder("INBOX");
  uint32_t work = AddFolder("Work");
  constexpr uint64_t kId = 1782349812340123456ull;  // ids use all 64 bits
  MessageRecord in_inbox = Message(7, "a", 100);
  in_inbox.gm_msgid = kId;
  MessageRecord in_work = Message(3, "b", 100);
  in_work.gm_msgid = kId;
  Index::Batch batch;
  batch.PutMessage(inbox, in_inbox);
  batch.PutMessage(work, in_work);
  batch.PutMessage(work, Message(4, "c", 200));  // no id: not indexed
  CommitOk(batch);
  auto find = [this](uint64_t id) {
    Result<Messages> found = index_->FindGmailMessage(id);
    EXPECT_TRUE(found.ok());
    return found.ok() ? *found : Messages{};
  };
  EXPECT_EQ(find(kId), (Messages{{inbox, 7}, {work, 3}}));
  EXPECT_TRUE(find(0).empty());
  EXPECT_TRUE(find(kId + 1).empty());
  Result<std::optional<MessageRecord>> read = index_->GetMessage(inbox, 7);
  ASSERT_TRUE(read.ok() && read->has_value());
  ExpectSame(**read, in_inbox);
  Result<std::optional<MessageRecord>> plain = index_->GetMessage(work, 4);
  ASSERT_TRUE(plain.ok() && plain->has_value());
  EXPECT_EQ((*plain)->gm_msgid, 0u);

  // The label removed from the message (expunged in one folder), the whole
  // folder cleared, a record replaced without the id: the entries follow.
  batch.DeleteMessage(inbox, 7);
  CommitOk(batch);
  EXPECT_EQ(find(kId), (Messages{{work, 3}}));
  batch.PutMessage(inbox, in_inbox);
  batch.ClearFolderMessages(work);
  CommitOk(batch);
  EXPECT_EQ(find(kId), (Messages{{inbox, 7}}));
  batch.PutMessage(inbox, Message(7, "a", 100));
  CommitOk(batch);
  EXPECT_TRUE(find(kId).empty());

  // Survives reopening.
  batch.PutMessage(work, in_work);
  CommitOk(batch);
  index_.reset();
  OpenIndex();
  EXPECT_EQ(find(kId), (Messages{{work, 3}}));
}

TEST_F(IndexTest, StemHeldByAnotherUidIsRefused) {
  OpenIndex();
  uint32_t id = AddFolder("INBOX");
  Index::Batch batch;
  batch.PutMessage(id, Message(1, "a", 1));
  CommitOk(batch);
  batch.PutMessage(id, Message(2, "a", 2));
  Status status = index_->Commit(batch);
  ASSERT_FALSE(status.ok());
  EXPECT_EQ(status.error().kind, ErrorKind::kInternal);
  EXPECT_NE(status.error().message.find("already belongs to UID 1"), std::string::npos)
      << status.error().message;
  EXPECT_EQ(Stem(id, "a"), 1u);
  EXPECT_EQ(Uids(id), std::vector<uint32_t>{1});

  batch.clear();
  batch.PutMessage(id, Message(0, "zero", 1));
  status = index_->Commit(batch);
  ASSERT_FALSE(status.ok());
  EXPECT_EQ(status.error().kind, ErrorKind::kInternal);
  batch.clear();
  batch.PutMessage(0, Message(1, "zero", 1));
  EXPECT_FALSE(index_->Commit(batch).ok());
}

TEST_F(IndexTest, ClearFolderMessagesLeavesOtherFoldersAlone) {
  OpenIndex();
  // Adjacent ids, so a sloppy prefix scan would spill into the neighbours.
  uint32_t before = AddFolder("A");
  uint32_t target = AddFolder("B");
  uint32_t after = AddFolder("C");
  Index::Batch batch;
  for (uint32_t uid = 1; uid <= 50; ++uid) {
    for (uint32_t folder : {before, target, after}) {
      batch.PutMessage(folder, Message(uid, "stem" + std::to_string(uid), 1000 + uid));
    }
  }
  CommitOk(batch);

  batch.ClearFolderMessages(target);
  CommitOk(batch);
  EXPECT_TRUE(Uids(target).empty());
  EXPECT_EQ(Uids(before).size(), 50u);
  EXPECT_EQ(Uids(after).size(), 50u);
  for (uint32_t uid = 1; uid <= 50; ++uid) {
    std::string stem = "stem" + std::to_string(uid);
    EXPECT_FALSE(Stem(target, stem));
    EXPECT_EQ(Stem(before, stem), uid);
    EXPECT_EQ(Stem(after, stem), uid);
    EXPECT_EQ(Digest(1000 + uid), (Messages{{before, uid}, {after, uid}}));
  }
  Result<std::optional<FolderRecord>> folder = index_->GetFolder("B");
  ASSERT_TRUE(folder.ok());
  EXPECT_TRUE(folder->has_value());  // the folder record stays

  // The stems are free again (UIDVALIDITY change: same files, new UIDs).
  batch.PutMessage(target, Message(500, "stem1", 1001));
  CommitOk(batch);
  EXPECT_EQ(Stem(target, "stem1"), 500u);
}

TEST_F(IndexTest, CopyRecordsPerTargetAndFolder) {
  OpenIndex();
  const uint32_t inbox = AddFolder("INBOX");
  const uint32_t sent = AddFolder("Sent");
  const std::string o365 = "me@outlook.office365.com:993";
  const std::string gmail = "me@imap.gmail.com:993";
  Index::Batch batch;
  batch.ResetCopies(o365, inbox, CopySource{111, 7});
  batch.PutCopy(o365, inbox, 7, CopyMark{900, 41});
  batch.PutCopy(o365, inbox, 3, CopyMark{900, 40});
  batch.PutCopy(o365, sent, 1, CopyMark{901, 0});
  batch.PutCopy(gmail, inbox, 5, CopyMark{5, 5});
  batch.PutCopyTarget(o365, "Sent Items", CopyTargetState{901, 12});
  CommitOk(batch);

  Result<std::vector<std::pair<uint32_t, CopyMark>>> copies = index_->ListCopies(o365, inbox);
  ASSERT_TRUE(copies.ok()) << copies.error().message;
  ASSERT_EQ(copies->size(), 2u);  // by source UID, other folders and targets apart
  EXPECT_EQ((*copies)[0].first, 3u);
  EXPECT_EQ((*copies)[0].second.uid, 40u);
  EXPECT_EQ((*copies)[1].first, 7u);
  EXPECT_EQ((*copies)[1].second.uidvalidity, 900u);
  EXPECT_EQ(index_->ListCopies(gmail, inbox)->size(), 1u);
  EXPECT_EQ(index_->ListCopies(o365, sent)->size(), 1u);
  EXPECT_TRUE(index_->ListCopies("nobody@nowhere:1", inbox)->empty());
  EXPECT_EQ((*index_->GetCopySource(o365, inbox))->uidvalidity, 111u);
  EXPECT_EQ((*index_->GetCopySource(o365, inbox))->fingerprint, 7u);
  EXPECT_FALSE(index_->GetCopySource(o365, sent)->has_value());
  std::optional<CopyTargetState> state = *index_->GetCopyTarget(o365, "Sent Items");
  ASSERT_TRUE(state.has_value());
  EXPECT_EQ(state->uidvalidity, 901u);
  EXPECT_EQ(state->uidnext, 12u);
  EXPECT_FALSE(index_->GetCopyTarget(o365, "Sent")->has_value());

  // A renumbered source folder: its copies are forgotten, others stay; and
  // they survive reopening.
  batch.ResetCopies(o365, inbox, CopySource{222, 8});
  batch.ForgetCopyTarget(o365, "Sent Items");
  CommitOk(batch);
  OpenIndex();
  EXPECT_TRUE(index_->ListCopies(o365, inbox)->empty());
  EXPECT_EQ((*index_->GetCopySource(o365, inbox))->uidvalidity, 222u);
  EXPECT_FALSE(index_->GetCopyTarget(o365, "Sent Items")->has_value());
  // A long target folder name still makes a key LMDB takes.
  batch.PutCopyTarget(o365, std::string(600, 'x'), CopyTargetState{1, 2});
  CommitOk(batch);
  EXPECT_EQ((*index_->GetCopyTarget(o365, std::string(600, 'x')))->uidnext, 2u);
  EXPECT_EQ(index_->ListCopies(o365, sent)->size(), 1u);
  EXPECT_EQ(index_->ListCopies(gmail, inbox)->size(), 1u);
}

TEST_F(IndexTest, UncommittedBatchLeavesNothing) {
  OpenIndex();
  uint32_t id = AddFolder("INBOX");
  {
    Index::Batch batch;
    batch.PutFolder(FolderRecord{0, "Drafts", "Drafts", 1, 1, 0, std::nullopt, false});
    batch.PutMessage(id, Message(1, "a", 1));
    EXPECT_FALSE(batch.empty());
    Result<std::optional<FolderRecord>> drafts = index_->GetFolder("Drafts");
    ASSERT_TRUE(drafts.ok());
    EXPECT_FALSE(drafts->has_value());
    EXPECT_TRUE(Uids(id).empty());
  }  // dropped without Commit

  // Reopen: nothing was written behind our back.
  OpenIndex();
  Result<std::optional<FolderRecord>> drafts = index_->GetFolder("Drafts");
  ASSERT_TRUE(drafts.ok());
  EXPECT_FALSE(drafts->has_value());
  EXPECT_TRUE(Uids(id).empty());
  EXPECT_FALSE(Stem(id, "a"));
  EXPECT_TRUE(Digest(1).empty());
}

TEST_F(IndexTest, PersistsAcrossReopen) {
  OpenIndex();
  uint32_t id = AddFolder("INBOX");
  MessageRecord m = Message(42, "persist", 4242);
  m.keywords = {"$Label1", "\xE2\x82\xAC"};
  Index::Batch batch;
  batch.PutMessage(id, m);
  CommitOk(batch);
  index_.reset();

  OpenIndex();
  Result<std::optional<FolderRecord>> folder = index_->GetFolder("INBOX");
  ASSERT_TRUE(folder.ok() && folder->has_value());
  EXPECT_EQ((*folder)->id, id);
  Result<std::optional<MessageRecord>> got = index_->GetMessage(id, 42);
  ASSERT_TRUE(got.ok() && got->has_value());
  ExpectSame(**got, m);
  EXPECT_EQ(Stem(id, "persist"), 42u);
  EXPECT_EQ(Digest(4242), (Messages{{id, 42}}));
  Result<uint32_t> next = index_->AllocateFolderId();
  ASSERT_TRUE(next.ok());
  EXPECT_EQ(*next, id + 1);
}

TEST_F(IndexTest, NewerSchemaVersionIsRefused) {
  OpenIndex();
  index_.reset();
  WriteSchemaVersion(dir_, 5);
  Result<std::unique_ptr<Index>> opened = Index::Open(dir_);
  ASSERT_FALSE(opened.ok());
  EXPECT_EQ(opened.error().kind, ErrorKind::kConfig);
  EXPECT_EQ(opened.error().message,
            dir_ + ": index schema version 5 was written by a newer mailmirror (this one knows 4)");
}

uint32_t ReadSchemaVersion(const std::string& dir) {
  MDB_env* env = nullptr;
  EXPECT_EQ(mdb_env_create(&env), 0);
  EXPECT_EQ(mdb_env_set_maxdbs(env, 8), 0);
  EXPECT_EQ(mdb_env_open(env, dir.c_str(), MDB_RDONLY, 0600), 0);
  MDB_txn* txn = nullptr;
  EXPECT_EQ(mdb_txn_begin(env, nullptr, MDB_RDONLY, &txn), 0);
  MDB_dbi meta = 0;
  EXPECT_EQ(mdb_dbi_open(txn, "meta", 0, &meta), 0);
  std::string key = "schema_version";
  MDB_val k{key.size(), key.data()};
  MDB_val v{};
  uint32_t version = 0;
  if (mdb_get(txn, meta, &k, &v) == 0 && v.mv_size == 4) {
    const auto* bytes = static_cast<const unsigned char*>(v.mv_data);
    version = bytes[0] | bytes[1] << 8 | bytes[2] << 16 | static_cast<uint32_t>(bytes[3]) << 24;
  }
  mdb_txn_abort(txn);
  mdb_env_close(env);
  return version;
}

// A schema 1 folder record: format byte 1, id, names, uidvalidity, uidnext,
// highestmodseq (all small enough for one-byte varints).
void WriteSchemaOneFolder(const std::string& dir, uint32_t id, const std::string& name) {
  std::string record = {1, static_cast<char>(id), static_cast<char>(name.size())};
  record += name;
  record += static_cast<char>(name.size());
  record += name;
  record += std::string{7, 9, 11};
  PutRaw(dir, "folders", name, record);
}

TEST_F(IndexTest, SchemaOneIndexIsUpgradedAndStillRead) {
  OpenIndex();
  uint32_t id = AddFolder("INBOX");
  index_.reset();
  WriteSchemaVersion(dir_, 1);
  WriteSchemaOneFolder(dir_, id, "INBOX");

  OpenIndex();
  Result<std::optional<FolderRecord>> got = index_->GetFolder("INBOX");
  ASSERT_TRUE(got.ok() && got->has_value()) << (got.ok() ? "missing" : got.error().message);
  EXPECT_EQ((*got)->uidvalidity, 7u);
  EXPECT_EQ((*got)->uidnext, 9u);
  EXPECT_EQ((*got)->highestmodseq, 11u);
  EXPECT_FALSE((*got)->messages.has_value());
  // Nothing proves that schema 1's last download completed.
  EXPECT_TRUE((*got)->fetch_pending);

  // The index now says 3: a schema 1 binary refuses it instead of misreading.
  index_.reset();
  EXPECT_EQ(ReadSchemaVersion(dir_), 4u);
}

// A schema 2 folder record: format byte 2, then as schema 1 plus
// messages + 1 and the bits; no local stamp.
TEST_F(IndexTest, SchemaTwoFolderReadsWithUnknownStampAndStampsRoundTrip) {
  OpenIndex();
  uint32_t id = AddFolder("INBOX");
  index_.reset();
  WriteSchemaVersion(dir_, 2);
  std::string record = {2, static_cast<char>(id), 5};
  record += "INBOX";
  record += static_cast<char>(5);
  record += "INBOX";
  record += std::string{7, 9, 11, 4, 0};  // uidvalidity, uidnext, modseq, 3 messages, bits
  PutRaw(dir_, "folders", "INBOX", record);

  OpenIndex();
  Result<std::optional<FolderRecord>> got = index_->GetFolder("INBOX");
  ASSERT_TRUE(got.ok() && got->has_value()) << (got.ok() ? "missing" : got.error().message);
  EXPECT_EQ((*got)->messages, std::optional<uint32_t>(3));
  EXPECT_FALSE((*got)->fetch_pending);
  EXPECT_EQ((*got)->local_stamp, 0u);

  FolderRecord stamped = **got;
  stamped.local_stamp = 0x0123456789abcdefULL;
  Index::Batch batch;
  batch.PutFolder(stamped);
  CommitOk(batch);
  got = index_->GetFolder("INBOX");
  ASSERT_TRUE(got.ok() && got->has_value());
  EXPECT_EQ((*got)->local_stamp, 0x0123456789abcdefULL);
  index_.reset();
  EXPECT_EQ(ReadSchemaVersion(dir_), 4u);
}

TEST_F(IndexTest, MalformedSchemaVersionIsCorruption) {
  OpenIndex();
  index_.reset();
  WriteSchemaVersion(dir_, 0);
  Result<std::unique_ptr<Index>> opened = Index::Open(dir_);
  ASSERT_FALSE(opened.ok());
  EXPECT_EQ(opened.error().kind, ErrorKind::kIo);
  EXPECT_NE(opened.error().message.find("corrupt"), std::string::npos) << opened.error().message;
}

TEST_F(IndexTest, MapGrowsWhenFull) {
  constexpr uint64_t kTinyMap = 64 * 1024;
  OpenIndex(IndexOptions{kTinyMap});
  uint32_t id = AddFolder("INBOX");
  constexpr uint32_t kBatches = 20;
  constexpr uint32_t kPerBatch = 500;
  for (uint32_t b = 0; b < kBatches; ++b) {
    Index::Batch batch;
    for (uint32_t i = 1; i <= kPerBatch; ++i) {
      uint32_t uid = b * kPerBatch + i;
      MessageRecord m = Message(uid, std::string(40, 'p') + std::to_string(uid), uid * 7919ULL);
      m.keywords = {"$Important", "work"};
      batch.PutMessage(id, m);
    }
    CommitOk(batch);
  }
  EXPECT_GT(fs::file_size(dir_ + "/data.mdb"), kTinyMap * 8);
  EXPECT_EQ(Uids(id).size(), kBatches * kPerBatch);
  EXPECT_EQ(Stem(id, std::string(40, 'p') + "9999"), 9999u);

  // Reopening with the tiny setting keeps everything: LMDB never maps less
  // than the data in use.
  OpenIndex(IndexOptions{kTinyMap});
  EXPECT_EQ(Uids(id).size(), kBatches * kPerBatch);
  Index::Batch batch;
  batch.PutMessage(id, Message(kBatches * kPerBatch + 1, "one more", 1));
  CommitOk(batch);
}

TEST_F(IndexTest, RefusedFilesAreKeptPerFolderAndReplacedWhole) {
  OpenIndex();
  uint32_t inbox = AddFolder("INBOX");
  uint32_t archive = AddFolder("Archive");
  Index::Batch batch;
  batch.PutRefused(inbox, RefusedFile{"cur/link:2,S", 42, "a symbolic link, not a file"});
  batch.PutRefused(inbox, RefusedFile{"new/empty", 7, "an empty file, not a message"});
  batch.PutRefused(archive, RefusedFile{"cur/x", 1, "r"});
  CommitOk(batch);
  Result<std::vector<RefusedFile>> listed = index_->ListRefused(inbox);
  ASSERT_TRUE(listed.ok()) << listed.error().message;
  ASSERT_EQ(listed->size(), 2u);
  EXPECT_EQ((*listed)[0].file_name, "cur/link:2,S");
  EXPECT_EQ((*listed)[0].fingerprint, 42u);
  EXPECT_EQ((*listed)[0].reason, "a symbolic link, not a file");
  EXPECT_EQ((*listed)[1].file_name, "new/empty");

  batch.ClearRefused(inbox);
  batch.PutRefused(inbox, RefusedFile{"new/empty", 8, "an empty file, not a message"});
  CommitOk(batch);
  listed = index_->ListRefused(inbox);
  ASSERT_TRUE(listed.ok());
  ASSERT_EQ(listed->size(), 1u);
  EXPECT_EQ((*listed)[0].fingerprint, 8u);
  EXPECT_EQ(index_->ListRefused(archive)->size(), 1u);
  // Deleting a folder forgets its refused files.
  batch.DeleteFolder("Archive");
  CommitOk(batch);
  EXPECT_TRUE(index_->ListRefused(archive)->empty());
}

TEST_F(IndexTest, AnIndexBelongsToOneAccount) {
  OpenIndex();
  EXPECT_TRUE(index_->ClaimAccount("alice@imap.example.org:993").ok());
  EXPECT_TRUE(index_->ClaimAccount("alice@imap.example.org:993").ok());
  Status other = index_->ClaimAccount("bob@imap.example.org:993");
  ASSERT_FALSE(other.ok());
  EXPECT_EQ(other.error().kind, ErrorKind::kConfig);
  EXPECT_NE(other.error().message.find("alice@imap.example.org:993"), std::string::npos);
  EXPECT_NE(other.error().message.find("bob@imap.example.org:993"), std::string::npos);
  EXPECT_FALSE(index_->ClaimAccount("alice@other.example.org:993").ok());
  // Another port is the same mailbox (STARTTLS, a tunnel).
  EXPECT_TRUE(index_->ClaimAccount("alice@imap.example.org:143").ok());
  OpenIndex();  // durable
  EXPECT_FALSE(index_->ClaimAccount("bob@imap.example.org:143").ok());
}

// Another process grew the map past this one's: the next transaction here
// meets MDB_MAP_RESIZED and adopts the new size (with every transaction of
// the process kept out meanwhile) instead of failing (issue 19).
TEST_F(IndexTest, MapGrownByAnotherProcessIsAdopted) {
  constexpr uint64_t kTinyMap = 64 * 1024;
  OpenIndex(IndexOptions{kTinyMap});
  const uint32_t id = AddFolder("INBOX");
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    // A fresh environment of the child's own, as another mailmirror would
    // open it, writing 4 MiB more than the parent's map holds.
    MDB_env* env = nullptr;
    MDB_txn* txn = nullptr;
    MDB_dbi meta = 0;
    std::string filler(4 << 20, 'f');
    MDB_val key{6, const_cast<char*>("filler")};
    MDB_val value{filler.size(), filler.data()};
    const bool ok = mdb_env_create(&env) == 0 && mdb_env_set_maxdbs(env, 32) == 0 &&
                    mdb_env_set_mapsize(env, size_t{64} << 20) == 0 &&
                    mdb_env_open(env, dir_.c_str(), MDB_NOTLS, 0600) == 0 &&
                    mdb_txn_begin(env, nullptr, 0, &txn) == 0 &&
                    mdb_dbi_open(txn, "meta", 0, &meta) == 0 &&
                    mdb_put(txn, meta, &key, &value, 0) == 0 && mdb_txn_commit(txn) == 0;
    ::_exit(ok ? 0 : 1);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  // Reads and writes go on with the grown map.
  Result<std::vector<FolderRecord>> folders = index_->ListFolders();
  ASSERT_TRUE(folders.ok()) << folders.error().message;
  EXPECT_EQ(folders->size(), 1u);
  Index::Batch batch;
  batch.PutMessage(id, Message(1, "after-growth", 1));
  CommitOk(batch);
  EXPECT_EQ(Uids(id).size(), 1u);
}

TEST_F(IndexTest, SecondOpenInProcessIsRefused) {
  OpenIndex();
  // Same directory under another spelling.
  Result<std::unique_ptr<Index>> again = Index::Open(root_ + "/account/./index/");
  ASSERT_FALSE(again.ok());
  EXPECT_EQ(again.error().kind, ErrorKind::kInternal);
  EXPECT_NE(again.error().message.find("already open"), std::string::npos);
  // The first handle still works, and after it closes the directory opens.
  EXPECT_TRUE(index_->AllocateFolderId().ok());
  index_.reset();
  OpenIndex();
}

TEST_F(IndexTest, PathBlockedByFileIsIoError) {
  std::ofstream(root_ + "/account") << "not a directory";
  Result<std::unique_ptr<Index>> opened = Index::Open(dir_);
  ASSERT_FALSE(opened.ok());
  EXPECT_EQ(opened.error().kind, ErrorKind::kIo);
  EXPECT_NE(opened.error().message.find(root_ + "/account"), std::string::npos)
      << opened.error().message;
}

TEST_F(IndexTest, GarbageDataFileIsIoError) {
  fs::create_directories(dir_);
  std::ofstream(dir_ + "/data.mdb") << std::string(16384, 'g');
  Result<std::unique_ptr<Index>> opened = Index::Open(dir_);
  ASSERT_FALSE(opened.ok());
  EXPECT_EQ(opened.error().kind, ErrorKind::kIo);
  EXPECT_NE(opened.error().message.find("open index " + dir_), std::string::npos)
      << opened.error().message;
}

TEST_F(IndexTest, UnreadableDirectoryIsIoError) {
  if (geteuid() == 0) GTEST_SKIP() << "root ignores directory permissions";
  fs::create_directories(dir_);
  fs::permissions(dir_, fs::perms::none);
  Result<std::unique_ptr<Index>> opened = Index::Open(dir_);
  fs::permissions(dir_, fs::perms::owner_all);
  ASSERT_FALSE(opened.ok());
  EXPECT_EQ(opened.error().kind, ErrorKind::kIo);
  EXPECT_NE(opened.error().message.find(dir_), std::string::npos) << opened.error().message;
}

}  // namespace
}  // namespace mailmirror::store
