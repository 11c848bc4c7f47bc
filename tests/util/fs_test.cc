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

TEST(FsTest, OpenRegularFileRefusesLinksFifosAndDirectoriesWithoutBlocking) {
  fs::path root = fs::path(::testing::TempDir()) / "fs_test_regular";
  fs::remove_all(root);
  fs::create_directories(root);
  std::ofstream(root / "file") << "x";
  fs::create_symlink(root / "file", root / "link");
  ASSERT_EQ(::mkfifo((root / "fifo").c_str(), 0600), 0);
  EXPECT_TRUE(OpenRegularFile((root / "file").string()).ok());
  for (const char* name : {"link", "fifo", "."}) {
    Result<UniqueFd> fd = OpenRegularFile((root / name).string());
    ASSERT_FALSE(fd.ok()) << name;
    EXPECT_TRUE(IsNotRegularFile(fd.error())) << name << ": " << fd.error().message;
  }
  Result<UniqueFd> gone = OpenRegularFile((root / "gone").string());
  ASSERT_FALSE(gone.ok());
  EXPECT_EQ(gone.error().os_errno, ENOENT);
  fs::remove_all(root);
}

TEST(FsTest, CheckNoSymlinkBelowTheRoot) {
  fs::path root = fs::path(::testing::TempDir()) / "fs_test_below";
  fs::remove_all(root);
  fs::create_directories(root / "mail" / "a");
  fs::create_symlink(root, root / "mail" / "out");
  const std::string mail = (root / "mail").string();
  EXPECT_TRUE(CheckNoSymlinkBelow(mail, mail + "/a").ok());
  EXPECT_TRUE(CheckNoSymlinkBelow(mail, mail + "/a/not-yet/there").ok());
  EXPECT_TRUE(CheckNoSymlinkBelow(mail + "/", mail).ok());
  Status out = CheckNoSymlinkBelow(mail, mail + "/out/x");
  ASSERT_FALSE(out.ok());
  EXPECT_EQ(out.error().os_errno, ELOOP);
  EXPECT_FALSE(CheckNoSymlinkBelow(mail, mail + "/a/../out").ok());
  EXPECT_FALSE(CheckNoSymlinkBelow(mail, (root / "elsewhere").string()).ok());
  fs::remove_all(root);
}

TEST(FsTest, NormalPathHasOneSpellingPerPath) {
  EXPECT_EQ(NormalPath("/a/b/"), "/a/b");
  EXPECT_EQ(NormalPath("/a//b/./c/../d"), "/a/b/d");
  EXPECT_EQ(NormalPath("/"), "/");
  EXPECT_EQ(NormalPath(""), "");
}

}  // namespace
}  // namespace mailmirror
