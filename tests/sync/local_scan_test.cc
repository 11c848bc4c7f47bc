// The local half of two-way sync: a real Maildir's names against index
// records, the way mutt, notmuch and cp leave them.
#include "sync/local_scan.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

namespace mailmirror::sync {
namespace {

namespace fs = std::filesystem;
using store::kFlagFlagged;
using store::kFlagSeen;
using store::MaildirFolder;
using store::MessageRecord;

class LocalScanTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = (fs::temp_directory_path() / "local_scan_test.XXXXXX").string();
    ASSERT_NE(mkdtemp(pattern.data()), nullptr);
    root_ = pattern;
  }
  void TearDown() override { fs::remove_all(root_); }

  std::unique_ptr<MaildirFolder> Folder(const std::string& name) {
    Result<std::unique_ptr<MaildirFolder>> folder = MaildirFolder::Open(root_ + "/" + name, true);
    EXPECT_TRUE(folder.ok());
    return std::move(folder).value();
  }
  static void Touch(const MaildirFolder& folder, const std::string& relative) {
    std::ofstream(folder.path() + "/" + relative) << "Subject: x\n\nbody\n";
  }
  static MessageRecord Record(uint32_t uid, const std::string& stem, uint32_t flags) {
    MessageRecord record;
    record.uid = uid;
    record.stem = stem;
    record.flags = flags;
    record.in_cur = (flags & kFlagSeen) != 0;
    return record;
  }

  std::string root_;
};

TEST_F(LocalScanTest, MatchesByUidAndStemAndSeesWhatReadersDid) {
  auto inbox = Folder("INBOX");
  std::vector<MessageRecord> records = {
      Record(1, "1700000000.M1P1Q1.host", kFlagSeen),  // unchanged
      Record(2, "1700000000.M2P1Q2.host", kFlagSeen),  // mutt flagged it
      Record(3, "1700000000.M3P1Q3.host", 0),          // deleted
      Record(4, "1700000000.M4P1Q4.host", 0),          // a reader dropped ",U=4"
      Record(5, "1700000000.M5P1Q5.host", kFlagSeen),  // copied with cp
  };
  Touch(*inbox, "cur/1700000000.M1P1Q1.host,U=1:2,S");
  Touch(*inbox, "cur/1700000000.M2P1Q2.host,U=2:2,FS");
  Touch(*inbox, "new/1700000000.M4P1Q4.host");
  Touch(*inbox, "cur/1700000000.M5P1Q5.host,U=5:2,S");
  Touch(*inbox, "new/1700000000.M5P1Q5.host,U=5");       // the copy
  Touch(*inbox, "cur/1700000099.M9P9Q9.other:2,S");      // new: no UID
  Touch(*inbox, "cur/1700000098.M8P8Q8.other,U=77:2,");  // new: UID unknown here
  Touch(*inbox, "cur/1700000097.M7P7Q7.other,U=1:2,S");  // UID 1 but not its stem

  Result<LocalFolderState> state = ScanLocalFolder(*inbox, records);
  ASSERT_TRUE(state.ok()) << state.error().message;
  ASSERT_EQ(state->known.size(), 5u);
  ASSERT_TRUE(state->known[0].has_value());
  EXPECT_EQ(state->known[0]->name.flags, kFlagSeen);
  ASSERT_TRUE(state->known[1].has_value());
  EXPECT_EQ(state->known[1]->name.flags, kFlagSeen | kFlagFlagged);
  EXPECT_FALSE(state->known[2].has_value());
  ASSERT_TRUE(state->known[3].has_value());
  EXPECT_FALSE(state->known[3]->in_cur);
  ASSERT_TRUE(state->known[4].has_value());

  std::vector<std::string> unknown;
  for (const MaildirFolder::Entry& entry : state->unknown) unknown.push_back(entry.file_name);
  std::sort(unknown.begin(), unknown.end());
  EXPECT_EQ(unknown, (std::vector<std::string>{
                         "1700000000.M5P1Q5.host,U=5", "1700000097.M7P7Q7.other,U=1:2,S",
                         "1700000098.M8P8Q8.other,U=77:2,", "1700000099.M9P9Q9.other:2,S"}));
}

TEST_F(LocalScanTest, MissingDirectoryIsAnError) {
  auto gone = Folder("Gone");
  fs::remove_all(gone->path());
  Result<LocalFolderState> state = ScanLocalFolder(*gone, {});
  ASSERT_FALSE(state.ok());
  EXPECT_EQ(state.error().kind, ErrorKind::kIo);
}

TEST_F(LocalScanTest, AFileMovedToAnotherFolderIsAMoveNotANewMessage) {
  auto inbox = Folder("INBOX");
  auto archive = Folder("Archive");
  std::vector<MessageRecord> inbox_records = {Record(1, "s1.host", kFlagSeen),
                                              Record(2, "s2.host", kFlagSeen)};
  std::vector<MessageRecord> archive_records = {Record(1, "a1.host", kFlagSeen)};
  Touch(*inbox, "cur/s1.host,U=1:2,S");
  // mutt's "save to Archive": same name, other folder (UID still INBOX's).
  Touch(*archive, "cur/s2.host,U=2:2,FS");
  Touch(*archive, "cur/a1.host,U=1:2,S");
  Touch(*archive, "cur/fresh.host:2,");  // really new

  Result<LocalFolderState> inbox_state = ScanLocalFolder(*inbox, inbox_records);
  Result<LocalFolderState> archive_state = ScanLocalFolder(*archive, archive_records);
  ASSERT_TRUE(inbox_state.ok() && archive_state.ok());
  EXPECT_FALSE(inbox_state->known[1].has_value());
  ASSERT_EQ(archive_state->unknown.size(), 2u);

  std::vector<FolderScan> scans = {{"INBOX", &inbox_records, &*inbox_state},
                                   {"Archive", &archive_records, &*archive_state}};
  std::vector<LocalMove> moves = FindLocalMoves(scans);
  ASSERT_EQ(moves.size(), 1u);
  EXPECT_EQ(moves[0].from, "INBOX");
  EXPECT_EQ(moves[0].uid, 2u);
  EXPECT_EQ(moves[0].to, "Archive");
  EXPECT_EQ(moves[0].file.name.flags, kFlagSeen | kFlagFlagged);
  ASSERT_EQ(archive_state->unknown.size(), 1u);
  EXPECT_EQ(archive_state->unknown[0].file_name, "fresh.host:2,");
}

TEST(CompareWithIndexTest, HundredThousandUnchangedFilesAllMatch) {
  std::vector<MessageRecord> records;
  std::vector<MaildirFolder::Entry> entries;
  for (uint32_t uid = 1; uid <= 100000; ++uid) {
    MessageRecord record;
    record.uid = uid;
    record.stem = "1700000000.M" + std::to_string(uid) + "P1Q" + std::to_string(uid) + ".host";
    record.flags = kFlagSeen;
    MaildirFolder::Entry entry;
    entry.name.stem = record.stem;
    entry.name.uid = uid;
    entry.name.flags = kFlagSeen;
    entry.in_cur = true;
    records.push_back(std::move(record));
    entries.push_back(std::move(entry));
  }
  LocalFolderState state = CompareWithIndex(std::move(entries), records);
  EXPECT_TRUE(state.unknown.empty());
  for (const auto& known : state.known) ASSERT_TRUE(known.has_value());
}

}  // namespace
}  // namespace mailmirror::sync
