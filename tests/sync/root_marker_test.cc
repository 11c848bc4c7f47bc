#include "sync/root_marker.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

namespace mailmirror::sync {
namespace {

namespace fs = std::filesystem;

// The record that a root was synced lives outside the root, under
// $XDG_STATE_HOME (issue 19): one file per root path, written once.
TEST(RootMarkerTest, RecordsARootOutsideItAndTellsAnEmptyRoot) {
  const fs::path dir = fs::temp_directory_path() / ("root_marker_test." + std::to_string(getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  const std::string state = (dir / "state").string();
  ASSERT_EQ(::setenv("XDG_STATE_HOME", state.c_str(), 1), 0);
  const std::string root = (dir / "mail").string();
  const std::string other = (dir / "mail2").string();

  EXPECT_EQ(RootMarkerPath(root).rfind(state + "/mailmirror/roots/", 0), 0u);
  EXPECT_NE(RootMarkerPath(root), RootMarkerPath(other));
  EXPECT_FALSE(SyncedBefore(root));
  ASSERT_TRUE(RecordSynced(root, "work").ok());
  EXPECT_TRUE(SyncedBefore(root));
  EXPECT_FALSE(SyncedBefore(other));
  std::ifstream record(RootMarkerPath(root));
  std::string line;
  std::getline(record, line);
  EXPECT_EQ(line, "account work");
  EXPECT_TRUE(RecordSynced(root, "work").ok());  // once is enough

  EXPECT_TRUE(RootMissingOrEmpty(root));  // missing
  fs::create_directories(root);
  EXPECT_TRUE(RootMissingOrEmpty(root));  // an empty mount point
  fs::create_directories(root + "/INBOX");
  EXPECT_FALSE(RootMissingOrEmpty(root));
  fs::remove_all(dir);
}

}  // namespace
}  // namespace mailmirror::sync
