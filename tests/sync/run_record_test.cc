#include "sync/run_record.h"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>

namespace mailmirror::sync {
namespace {

namespace fs = std::filesystem;

class RunRecordTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = (fs::temp_directory_path() / "run_record_test.XXXXXX").string();
    ASSERT_NE(mkdtemp(pattern.data()), nullptr);
    dir_ = pattern;
  }
  void TearDown() override {
    std::error_code ignored;
    fs::remove_all(dir_, ignored);
  }
  static FolderReport Folder(const std::string& name, bool ok) {
    FolderReport folder;
    folder.local_name = name;
    if (!ok) folder.status = MakeError(ErrorKind::kTemporary, name + " timed out");
    return folder;
  }
  std::string dir_;
};

TEST_F(RunRecordTest, NoneYetIsEmpty) {
  Result<RunRecord> record = ReadRunRecord(dir_);
  ASSERT_TRUE(record.ok());
  EXPECT_EQ(record->finished, 0);
  EXPECT_TRUE(record->folders.empty());
}

TEST_F(RunRecordTest, RunsMergeFolderByFolder) {
  AccountReport first;
  first.folders = {Folder("INBOX", true), Folder("Entwürfe", true)};
  ASSERT_TRUE(WriteRunRecord(dir_, first, 1000).ok());
  struct stat st {};
  ASSERT_EQ(::stat(RunRecordPath(dir_).c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);

  // The next run: INBOX fails, a new folder syncs, Entwürfe is not reached.
  AccountReport second;
  second.folders = {Folder("INBOX", false), Folder("Work", true)};
  ASSERT_TRUE(WriteRunRecord(dir_, second, 2000).ok());
  Result<RunRecord> record = ReadRunRecord(dir_);
  ASSERT_TRUE(record.ok()) << record.error().message;
  EXPECT_EQ(record->finished, 2000);
  EXPECT_EQ(record->error, "INBOX timed out");
  EXPECT_EQ(record->folders["INBOX"].synced, 1000);  // its last good sync
  EXPECT_EQ(record->folders["INBOX"].finished, 2000);
  EXPECT_EQ(record->folders["INBOX"].error, "INBOX timed out");
  EXPECT_EQ(record->folders["Entwürfe"].synced, 1000);
  EXPECT_EQ(record->folders["Work"].synced, 2000);

  // An account-wide failure (login) is the run's error; folders keep theirs.
  AccountReport third;
  third.status = MakeError(ErrorKind::kAuth, "rejected login");
  ASSERT_TRUE(WriteRunRecord(dir_, third, 3000).ok());
  record = ReadRunRecord(dir_);
  ASSERT_TRUE(record.ok());
  EXPECT_EQ(record->error, "rejected login");
  EXPECT_EQ(record->folders["Work"].synced, 2000);
}

TEST_F(RunRecordTest, MalformedFileIsAnIoErrorNamingIt) {
  std::ofstream(RunRecordPath(dir_)) << "{not json";
  Result<RunRecord> record = ReadRunRecord(dir_);
  ASSERT_FALSE(record.ok());
  EXPECT_EQ(record.error().kind, ErrorKind::kIo);
  EXPECT_NE(record.error().message.find(RunRecordPath(dir_)), std::string::npos);
  // A sync replaces it.
  AccountReport report;
  ASSERT_TRUE(WriteRunRecord(dir_, report, 5).ok());
  EXPECT_TRUE(ReadRunRecord(dir_).ok());
}

}  // namespace
}  // namespace mailmirror::sync
