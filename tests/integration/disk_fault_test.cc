// Disk faults (issue 7): the Maildir on a small tmpfs that fills up in the
// middle of a download. The run must stop cleanly with exit 74 and a
// message naming the path, leave no partial message outside tmp/, and the
// next run, once there is room, must complete the mirror without fetching
// again what was stored.
//
// Mounting needs root (or a user namespace); where neither works the test
// is skipped with the reason.
#include <gtest/gtest.h>
#include <sys/mount.h>
#include <sys/statvfs.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "support/dovecot_fixture.h"
#include "support/run_command.h"
#include "support/sync_checks.h"

namespace mailmirror {
namespace {

namespace fs = std::filesystem;
using testing::CommandResult;
using testing::DovecotServer;
using testing::FetchesSince;
using testing::Join;
using testing::LocalFile;
using testing::LocalTree;
using testing::LogSize;
using testing::Report;
using testing::RunCommand;
using testing::RunOptions;
using testing::ScanLocal;
using testing::ServerMessage;
using testing::SyncCommand;

constexpr int kMessages = 400;

class DiskFaultTest : public ::testing::Test {
 protected:
  void SetUp() override {
    server_ = DovecotServer::Start();
    ASSERT_NE(server_, nullptr);
    ASSERT_TRUE(server_->SeedBulk("alice", {.count = kMessages, .big_mb = 0}));
    dir_ = server_->dir() + "/local";
    mount_ = dir_ + "/small";
    fs::create_directories(mount_);
    root_ = mount_ + "/mail";
    config_ = dir_ + "/config.toml";
    std::ofstream(config_) << testing::AliceAccount(*server_, root_);
  }

  void TearDown() override {
    if (mounted_) ::umount2(mount_.c_str(), MNT_DETACH);
  }

  // Mounts (or resizes) a tmpfs of `kib` KiB at mount_. False if this
  // machine does not let us.
  bool MountTmpfs(int kib) {
    const std::string options = "size=" + std::to_string(kib) + "k,mode=0700";
    unsigned long flags = mounted_ ? MS_REMOUNT : 0;
    if (::mount("tmpfs", mount_.c_str(), "tmpfs", flags, options.c_str()) != 0) {
      why_not_ = std::string("mount -t tmpfs: ") + std::strerror(errno);
      return false;
    }
    mounted_ = true;
    return true;
  }

  CommandResult Sync() {
    RunOptions options;
    options.timeout = std::chrono::seconds(60);
    return RunCommand(SyncCommand(config_), options);
  }

  std::unique_ptr<DovecotServer> server_;
  std::string dir_;
  std::string mount_;
  std::string root_;
  std::string config_;
  bool mounted_ = false;
  std::string why_not_;
};

TEST_F(DiskFaultTest, FullDiskStopsWithExit74AndTheNextRunCompletes) {
  // About a third of what the folders need, index included.
  if (!MountTmpfs(200)) GTEST_SKIP() << why_not_;
  CommandResult full = Sync();
  EXPECT_EQ(full.exit_code, 74) << Report(full);
  EXPECT_NE(full.err.find("No space left on device"), std::string::npos) << Report(full);
  EXPECT_NE(full.err.find(root_), std::string::npos) << Report(full);

  // Whatever landed in cur/ or new/ is a whole message with a UID.
  auto server = server_->Messages("alice");
  ASSERT_TRUE(server);
  std::map<std::pair<std::string, uint32_t>, const ServerMessage*> by_uid;
  for (const ServerMessage& message : *server) by_uid[{message.folder, message.uid}] = &message;
  const LocalTree partial = ScanLocal(root_);
  size_t stored = 0;
  for (const LocalFile& file : partial.files) {
    ASSERT_TRUE(file.uid) << file.path;
    auto it = by_uid.find({file.folder, *file.uid});
    ASSERT_NE(it, by_uid.end()) << file.path;
    EXPECT_EQ(testing::ReadFile(file.path), testing::ReadFile(it->second->file)) << file.path;
    ++stored;
  }
  EXPECT_GT(stored, 0u) << "the disk filled before anything was stored";
  EXPECT_LT(stored, server->size());

  // Room again: the next run completes, fetching only what was missing.
  ASSERT_TRUE(MountTmpfs(64 * 1024)) << why_not_;
  const size_t second_log = LogSize(*server_);
  CommandResult next = Sync();
  ASSERT_EQ(next.exit_code, 0) << Report(next);
  std::vector<std::string> problems = testing::MirrorProblems(*server, root_);
  EXPECT_TRUE(problems.empty()) << Join(problems);
  EXPECT_TRUE(ScanLocal(root_).tmp_files.empty()) << Join(ScanLocal(root_).tmp_files);
  const testing::FetchStats refetched = FetchesSince(*server_, second_log, "alice");
  EXPECT_LE(static_cast<size_t>(refetched.body_count), server->size() - stored + 50)
      << "the second run fetched again what the first stored";
}

}  // namespace
}  // namespace mailmirror
