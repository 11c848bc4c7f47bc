// The session pool of `mailmirror sync` against a real Dovecot: several
// sessions write the same mirror as one, and a server that caps sessions per
// user shrinks the pool instead of failing the sync.
#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>
#include <map>
#include <set>
#include <string>
#include <tuple>

#include "support/dovecot_fixture.h"
#include "support/fault_proxy.h"
#include "support/run_command.h"
#include "support/sync_checks.h"

namespace mailmirror {
namespace {

using testing::CommandResult;
using testing::DovecotOptions;
using testing::DovecotServer;
using testing::LocalFile;
using testing::ReadFile;
using testing::Report;
using testing::RunCommand;
using testing::ScanLocal;
using testing::SyncCommand;

// Folder and UID to subdirectory, flags and content: what a mirror holds,
// without the stems, which differ from run to run.
using Mirror =
    std::map<std::pair<std::string, uint32_t>, std::tuple<std::string, std::string, std::string>>;

Mirror MirrorAt(const std::string& root) {
  Mirror mirror;
  for (const LocalFile& file : ScanLocal(root).files) {
    mirror[{file.folder, file.uid.value_or(0)}] = {file.subdir, file.flags.value_or("?"),
                                                   ReadFile(file.path)};
  }
  return mirror;
}

// Alice's account with `connections` sessions, through `port` if not 0.
std::string WriteConfig(const DovecotServer& server, const std::string& name,
                        const std::string& maildir, int connections, int port = 0) {
  std::string account = testing::AliceAccount(server, maildir);
  if (port != 0) {
    const std::string direct = "port = " + std::to_string(server.imaps_port()) + "\n";
    account.replace(account.find(direct), direct.size(), "port = " + std::to_string(port) + "\n");
  }
  std::string path = server.dir() + "/" + name + ".toml";
  std::ofstream out(path);
  out << account << "connections = " << connections << "\n";
  return path;
}

// A server whose alice has enough mail (2,000 messages) for the full pool
// of four, and for the first session to be still busy when the others are
// ready to take folders; null (with a test failure) on error.
std::unique_ptr<DovecotServer> StartWithPoolSizedMail(const DovecotOptions& options) {
  auto server = DovecotServer::Start(options);
  if (server == nullptr) return nullptr;
  testing::BulkOptions bulk;
  bulk.count = 2000;
  bulk.big_mb = 0;
  if (!server->SeedBulk("alice", bulk)) return nullptr;
  return server;
}

TEST(ConnectionPoolTest, SeveralSessionsWriteTheSameMirrorAsOne) {
  auto server = StartWithPoolSizedMail({});
  ASSERT_NE(server, nullptr);
  const std::string one = server->dir() + "/one";
  const std::string four = server->dir() + "/four";
  CommandResult single = RunCommand(SyncCommand(WriteConfig(*server, "one", one, 1), "-vvv"));
  ASSERT_EQ(single.exit_code, 0) << Report(single);
  CommandResult pooled = RunCommand(SyncCommand(WriteConfig(*server, "four", four, 4), "-vvv"));
  ASSERT_EQ(pooled.exit_code, 0) << Report(pooled);

  // Only the pool used more than one session, and it did use them.
  EXPECT_EQ(single.err.find("[2] C:"), std::string::npos);
  EXPECT_NE(pooled.err.find("#2] C: A2 ENABLE"), std::string::npos) << Report(pooled);
  EXPECT_NE(pooled.err.find("] C: A3 EXAMINE"), std::string::npos) << Report(pooled);

  Mirror expected = MirrorAt(one);
  EXPECT_GE(expected.size(), 2000u);
  EXPECT_EQ(MirrorAt(four), expected);
  EXPECT_TRUE(ScanLocal(four).tmp_files.empty());

  // An unchanged account needs one session only.
  CommandResult again = RunCommand(SyncCommand(server->dir() + "/four.toml", "-vvv"));
  ASSERT_EQ(again.exit_code, 0) << Report(again);
  EXPECT_EQ(again.err.find("[2] C:"), std::string::npos) << Report(again);
}

TEST(ConnectionPoolTest, ServerSessionLimitShrinksThePool) {
  // One session per user: every extra session is turned away after login
  // (Dovecot counts sessions asynchronously, so a limit above one would
  // let a racing extra session in now and then).
  DovecotOptions options;
  options.max_connections = 1;
  auto server = StartWithPoolSizedMail(options);
  ASSERT_NE(server, nullptr);
  const std::string maildir = server->dir() + "/local";
  CommandResult result =
      RunCommand(SyncCommand(WriteConfig(*server, "capped", maildir, 4), "-vvv"));
  ASSERT_EQ(result.exit_code, 0) << Report(result);
  EXPECT_NE(result.err.find("continuing with fewer"), std::string::npos) << Report(result);

  std::optional<std::vector<testing::ServerMessage>> messages = server->Messages("alice");
  ASSERT_TRUE(messages.has_value());
  std::map<std::string, size_t> expected;
  for (const testing::ServerMessage& message : *messages) ++expected[message.folder];
  std::map<std::string, size_t> mirrored;
  testing::LocalTree tree = ScanLocal(maildir);
  for (const LocalFile& file : tree.files) ++mirrored[file.folder];
  EXPECT_EQ(mirrored, expected);
  EXPECT_TRUE(tree.tmp_files.empty());
}

// Counts lines of the trace that contain `needle`.
size_t CountLines(const std::string& text, const std::string& needle) {
  size_t count = 0;
  for (size_t at = text.find(needle); at != std::string::npos; at = text.find(needle, at + 1)) {
    ++count;
  }
  return count;
}

TEST(ConnectionPoolTest, IdleSessionsHelpDownloadLargeFolders) {
  // 8,000 messages: INBOX (the largest, about 3,800) goes to the first
  // session, whose line the proxy slows to 400 kB/s; Archive/2023 (2,800),
  // Sent Items (950) and the small folders go to three fast sessions, which
  // run out of work while INBOX has thousands of messages left to ask for.
  // (Without the slow line, whether that happens depends on how fast the
  // sessions log in: a loaded machine may finish the small folders last.)
  auto server = DovecotServer::Start({});
  ASSERT_NE(server, nullptr);
  testing::BulkOptions bulk;
  bulk.count = 8000;
  bulk.big_mb = 1;
  ASSERT_TRUE(server->SeedBulk("alice", bulk));
  testing::FaultProxy proxy(server->imaps_port());
  testing::FaultPlan slow_line;
  slow_line.down_bytes_per_second = 400000;
  proxy.Plan(slow_line);
  const std::string maildir = server->dir() + "/local";
  const std::string config = WriteConfig(*server, "helped", maildir, 4, proxy.port());
  CommandResult result = RunCommand(SyncCommand(config, "-vvv"));
  ASSERT_EQ(result.exit_code, 0) << Report(result).substr(0, 4000);

  // INBOX was examined by its own session and by helpers, which fetched UID
  // ranges of it.
  EXPECT_GE(CountLines(result.err, " EXAMINE INBOX"), 2u) << Report(result).substr(0, 4000);
  EXPECT_EQ(result.err.find("server sent no content"), std::string::npos);

  // Every message exactly once, in the right folder, nothing left in tmp/.
  std::map<std::string, size_t> mirrored;
  std::set<std::pair<std::string, uint32_t>> seen;
  testing::LocalTree tree = ScanLocal(maildir);
  for (const LocalFile& file : tree.files) {
    ++mirrored[file.folder];
    ASSERT_TRUE(file.uid.has_value()) << file.path;
    EXPECT_TRUE(seen.insert({file.folder, *file.uid}).second) << "twice: " << file.path;
  }
  for (const char* folder : {"INBOX", "Archive/2023", "Sent Items", "Archive"}) {
    EXPECT_EQ(mirrored[folder], size_t(server->Count("alice", folder))) << folder;
  }
  EXPECT_TRUE(tree.tmp_files.empty());

  // The index recorded each download as complete: nothing is fetched again.
  const size_t mark = testing::LogSize(*server);
  CommandResult again = RunCommand(SyncCommand(config, "-v"));
  ASSERT_EQ(again.exit_code, 0) << Report(again);
  EXPECT_EQ(testing::FetchesSince(*server, mark, "alice").body_count, 0);
}

}  // namespace
}  // namespace mailmirror
