#include "sync/refused_files.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "util/log.h"

namespace mailmirror::sync {
namespace {

namespace fs = std::filesystem;

std::string ReadAll(const std::string& path) {
  std::ifstream in(path);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

// A refused file is reported once; while it stays as it was, later runs
// say nothing and keep its record; a changed file is refused (or tried)
// anew (issue 19).
TEST(RefusedFilesTest, ReportedOnceAndRememberedWhileUnchanged) {
  const fs::path dir = fs::temp_directory_path() / ("refused_test." + std::to_string(getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  const std::string log = (dir / "log").string();
  ASSERT_TRUE(SetLogFile(log).ok());
  const std::string empty = (dir / "empty").string();
  std::ofstream(empty).close();
  const uint64_t fingerprint = RefusedFiles::Fingerprint(empty);
  EXPECT_NE(fingerprint, 0u);
  EXPECT_EQ(RefusedFiles::Fingerprint((dir / "gone").string()), 0u);
  EXPECT_EQ(RefusedFiles::KeyOf("x:2,S", true), "cur/x:2,S");

  RefusedFiles first({}, "account a: folder INBOX");
  first.Refuse("new/empty", fingerprint, "an empty file, not a message");
  EXPECT_EQ(first.count(), 1u);
  EXPECT_TRUE(first.changed());
  store::Index::Batch batch;
  first.AddTo(batch, 7);
  EXPECT_EQ(batch.size(), 2u);  // the folder's records cleared, this one put
  EXPECT_NE(ReadAll(log).find("account a: folder INBOX: new/empty: an empty file, not a message; "
                              "kept here, not uploaded"),
            std::string::npos)
      << ReadAll(log);

  const std::vector<store::RefusedFile> recorded = {
      {"new/empty", fingerprint, "an empty file, not a message"}};
  const size_t logged = ReadAll(log).size();
  RefusedFiles second(recorded, "account a: folder INBOX");
  EXPECT_TRUE(second.Unchanged("new/empty", fingerprint));
  second.Refuse("new/empty", fingerprint, "an empty file, not a message");
  EXPECT_FALSE(second.changed());
  EXPECT_EQ(second.count(), 1u);
  EXPECT_EQ(ReadAll(log).size(), logged);  // nothing said again

  // Changed (another fingerprint), or refused for another reason: said again.
  RefusedFiles third(recorded, "account a: folder INBOX");
  EXPECT_FALSE(third.Unchanged("new/empty", fingerprint + 1));
  third.Refuse("new/empty", fingerprint, "it holds NUL bytes");
  EXPECT_TRUE(third.changed());
  EXPECT_GT(ReadAll(log).size(), logged);
  // Gone: no longer refused, and the record goes.
  RefusedFiles fourth(recorded, "account a: folder INBOX");
  EXPECT_EQ(fourth.count(), 0u);
  EXPECT_TRUE(fourth.changed());
  fs::remove_all(dir);
}

}  // namespace
}  // namespace mailmirror::sync
