#include "util/fs.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>

namespace mailmirror {
namespace {

namespace fs = std::filesystem;

TEST(FsTest, MakeDirectoriesCreatesParentsWithModeAndIsIdempotent) {
  fs::path root = fs::path(::testing::TempDir()) / "fs_test_make";
  fs::remove_all(root);
  std::string deep = (root / "a" / "b" / "c").string();
  ASSERT_TRUE(MakeDirectories(deep).ok());
  EXPECT_TRUE(fs::is_directory(deep));
  struct stat st {};
  ASSERT_EQ(::stat(deep.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u);
  EXPECT_TRUE(MakeDirectories(deep + "/").ok());
  EXPECT_TRUE(MakeDirectories(deep).ok());
  fs::remove_all(root);
}

TEST(FsTest, MakeDirectoriesReportsAFileInTheWay) {
  fs::path root = fs::path(::testing::TempDir()) / "fs_test_blocked";
  fs::remove_all(root);
  fs::create_directories(root);
  std::ofstream(root / "file") << "x";
  Status below = MakeDirectories((root / "file" / "sub").string());
  ASSERT_FALSE(below.ok());
  EXPECT_EQ(below.error().kind, ErrorKind::kIo);
  EXPECT_NE(below.error().message.find((root / "file").string()), std::string::npos);
  Status itself = MakeDirectories((root / "file").string());
  ASSERT_FALSE(itself.ok());
  EXPECT_NE(itself.error().message.find("not a directory"), std::string::npos);
  fs::remove_all(root);
}

TEST(FsTest, WriteFileAtomicallyReplacesWithTheModeAndLeavesNoTemporary) {
  fs::path root = fs::path(::testing::TempDir()) / "fs_test_atomic";
  fs::remove_all(root);
  fs::create_directories(root);
  const std::string path = (root / "state.json").string();
  std::ofstream(path + ".tmp") << "a leftover of a crash";
  fs::permissions(path + ".tmp", fs::perms::all);
  for (bool durable : {false, true}) {
    const std::string text = durable ? "second\n" : "first\n";
    ASSERT_TRUE(WriteFileAtomically(path, text, 0600, durable).ok());
    std::ifstream in(path);
    std::string read((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    EXPECT_EQ(read, text);
    struct stat st {};
    ASSERT_EQ(::stat(path.c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0600u);
    EXPECT_FALSE(fs::exists(path + ".tmp"));
  }
  // A directory that cannot be written: an error naming the file, the old
  // content kept.
  Status failed = WriteFileAtomically((root / "missing" / "x").string(), "y", 0600, false);
  ASSERT_FALSE(failed.ok());
  EXPECT_EQ(failed.error().kind, ErrorKind::kIo);
  EXPECT_NE(failed.error().message.find("missing/x"), std::string::npos);
  fs::remove_all(root);
}

}  // namespace
}  // namespace mailmirror
