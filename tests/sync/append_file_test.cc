#include "sync/append_file.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
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

// Streamed uploads (issue 19): the size announced is the CRLF size, the
// bytes read in pieces of any size are exactly the converted file, and a
// file that changes in between fails instead of sending other bytes.
TEST(AppendFileTest, StreamsTheCrlfBytesInPiecesAndNoticesChanges) {
  const std::string path =
      (std::filesystem::temp_directory_path() / ("append_stream_test." + std::to_string(getpid())))
          .string();
  std::string text;
  for (int i = 0; i < 20000; ++i) text += i % 7 == 0 ? "line\r\n" : "a longer line\n";
  std::ofstream(path, std::ios::binary) << text;
  std::string expected;
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '\n' && (i == 0 || text[i - 1] != '\r')) expected += '\r';
    expected += text[i];
  }
  for (size_t piece : {2u, 3u, 1000u, 65536u}) {
    Result<std::optional<std::unique_ptr<AppendFile>>> file = AppendFile::Open(path);
    ASSERT_TRUE(file.ok() && file->has_value());
    AppendFile& source = ***file;
    EXPECT_EQ(source.size(), expected.size());
    EXPECT_FALSE(source.has_nul());
    std::string out;
    while (out.size() < source.size()) {
      const size_t before = out.size();
      ASSERT_TRUE(source.Read(std::min<size_t>(piece, source.size() - out.size()), &out).ok());
      ASSERT_GT(out.size(), before);
    }
    EXPECT_EQ(out, expected) << "pieces of " << piece;
  }
  // Grown after it was measured: the stream fails rather than send more.
  Result<std::optional<std::unique_ptr<AppendFile>>> file = AppendFile::Open(path);
  ASSERT_TRUE(file.ok() && file->has_value());
  std::ofstream(path, std::ios::binary | std::ios::app) << "more\n";
  std::string out;
  Status status;
  while (status.ok() && out.size() < (**file)->size()) status = (**file)->Read(65536, &out);
  if (status.ok()) status = (**file)->Read(65536, &out);
  EXPECT_FALSE(status.ok());

  std::ofstream(path, std::ios::binary) << std::string("a\0b\n", 4);
  file = AppendFile::Open(path);
  ASSERT_TRUE(file.ok() && file->has_value());
  EXPECT_TRUE((**file)->has_nul());
  std::filesystem::remove(path);
  file = AppendFile::Open(path);
  ASSERT_TRUE(file.ok());
  EXPECT_FALSE(file->has_value());
}

}  // namespace
}  // namespace mailmirror::sync
