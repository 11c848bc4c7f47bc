#include "sync/append_file.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>

namespace mailmirror::sync {
namespace {

TEST(AppendFileTest, ReadsWithCrlfLineEndsAndTheFilesTime) {
  const std::string path =
      (std::filesystem::temp_directory_path() / ("append_file_test." + std::to_string(getpid())))
          .string();
  std::ofstream(path, std::ios::binary) << "Subject: a\nX: b\r\n\nbody\rx\n";
  Result<std::optional<FileForAppend>> file = ReadForAppend(path);
  ASSERT_TRUE(file.ok() && file->has_value());
  // LF becomes CRLF; CRLF and a lone CR stay as they are.
  EXPECT_EQ((*file)->crlf, "Subject: a\r\nX: b\r\n\r\nbody\rx\r\n");
  EXPECT_GT((*file)->mtime, 0);
  std::filesystem::remove(path);
  Result<std::optional<FileForAppend>> gone = ReadForAppend(path);
  ASSERT_TRUE(gone.ok());
  EXPECT_FALSE(gone->has_value());
}

TEST(AppendFileTest, RemoveTuidLinesTouchesTheHeaderOnly) {
  std::string message =
      "From: a@example.test\r\nX-TUID: abcdefghijkl\r\nSubject: hi\r\nx-tuid: again\r\n\r\n"
      "X-TUID: in the body stays\r\n";
  RemoveTuidLines(message);
  EXPECT_EQ(message, "From: a@example.test\r\nSubject: hi\r\n\r\nX-TUID: in the body stays\r\n");
  std::string plain = "Subject: hi\r\n\r\nbody\r\n";
  RemoveTuidLines(plain);
  EXPECT_EQ(plain, "Subject: hi\r\n\r\nbody\r\n");
}

}  // namespace
}  // namespace mailmirror::sync
