// COMPRESS=DEFLATE (RFC 4978) against a real Dovecot that offers it: a
// compressed sync mirrors exactly what a plain one does, and "auto" leaves
// loopback connections uncompressed.
#include <gtest/gtest.h>

#include <fstream>
#include <map>
#include <string>
#include <tuple>

#include "support/dovecot_fixture.h"
#include "support/run_command.h"
#include "support/sync_checks.h"

namespace mailmirror {
namespace {

using testing::CommandResult;
using testing::DovecotServer;
using testing::LocalFile;
using testing::ReadFile;
using testing::Report;
using testing::RunCommand;
using testing::ScanLocal;
using testing::SyncCommand;

// Folder and UID to flags and content.
using Mirror = std::map<std::pair<std::string, uint32_t>, std::tuple<std::string, std::string>>;

Mirror MirrorAt(const std::string& root) {
  Mirror mirror;
  for (const LocalFile& file : ScanLocal(root).files) {
    mirror[{file.folder, file.uid.value_or(0)}] = {file.flags.value_or("?"), ReadFile(file.path)};
  }
  return mirror;
}

std::string WriteConfig(const DovecotServer& server, const std::string& name,
                        const std::string& compress) {
  std::string path = server.dir() + "/" + name + ".toml";
  std::ofstream out(path);
  out << testing::AliceAccount(server, server.dir() + "/" + name)
      << "connections = 2\ncompress = \"" << compress << "\"\n";
  return path;
}

class CompressionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    testing::DovecotOptions options;
    options.compress = true;
    server_ = DovecotServer::Start(options);
    ASSERT_NE(server_, nullptr);
    testing::BulkOptions bulk;
    bulk.count = 600;
    bulk.big_mb = 3;  // one literal spanning many compressed reads
    ASSERT_TRUE(server_->SeedBulk("alice", bulk));
  }

  std::unique_ptr<DovecotServer> server_;
};

TEST_F(CompressionTest, CompressedSyncMirrorsWhatAPlainOneDoes) {
  CommandResult plain = RunCommand(SyncCommand(WriteConfig(*server_, "plain", "no"), "-vvv"));
  ASSERT_EQ(plain.exit_code, 0) << Report(plain);
  EXPECT_EQ(plain.err.find(" COMPRESS DEFLATE"), std::string::npos) << Report(plain);

  const std::string config = WriteConfig(*server_, "deflate", "yes");
  CommandResult compressed = RunCommand(SyncCommand(config, "-vvv"));
  ASSERT_EQ(compressed.exit_code, 0) << Report(compressed);
  // Every session, the extra one too, compressed.
  EXPECT_NE(compressed.err.find("C: A2 COMPRESS DEFLATE"), std::string::npos) << Report(compressed);
  EXPECT_NE(compressed.err.find("#2] C: A2 COMPRESS DEFLATE"), std::string::npos)
      << Report(compressed);
  EXPECT_NE(compressed.err.find("is compressed (COMPRESS=DEFLATE)"), std::string::npos);

  Mirror expected = MirrorAt(server_->dir() + "/plain");
  ASSERT_GE(expected.size(), 600u);
  EXPECT_TRUE(MirrorAt(server_->dir() + "/deflate") == expected);

  // A resync over the compressed stream: nothing new, nothing lost.
  CommandResult again = RunCommand(SyncCommand(config, "-v"));
  ASSERT_EQ(again.exit_code, 0) << Report(again);
  EXPECT_TRUE(MirrorAt(server_->dir() + "/deflate") == expected);
}

TEST_F(CompressionTest, AutoDoesNotCompressOnLoopback) {
  CommandResult result = RunCommand(SyncCommand(WriteConfig(*server_, "auto", "auto"), "-vvv"));
  ASSERT_EQ(result.exit_code, 0) << Report(result);
  EXPECT_NE(result.err.find("COMPRESS=DEFLATE"), std::string::npos)
      << "the fixture should offer it: " << Report(result);
  EXPECT_EQ(result.err.find(" COMPRESS DEFLATE"), std::string::npos) << Report(result);
}

}  // namespace
}  // namespace mailmirror
