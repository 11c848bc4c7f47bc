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

}  // namespace
}  // namespace mailmirror
