// Gmail's All Mail against a Dovecot that plays Gmail as far as it can: a
// folder with the \All special-use attribute, and X-GM-EXT-1 added to the
// capabilities by the fault proxy. (Dovecot has no X-GM-MSGID, so the
// hard-linking of label copies is tested in tests/sync/gmail_labels_test.cc
// and tests/store/, with no live server.)
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <set>
#include <string>

#include "support/dovecot_fixture.h"
#include "support/fault_proxy.h"
#include "support/run_command.h"
#include "support/sync_checks.h"

namespace mailmirror {
namespace {

namespace fs = std::filesystem;
using testing::CommandResult;
using testing::DovecotOptions;
using testing::DovecotServer;
using testing::FaultPlan;
using testing::FaultProxy;
using testing::Report;
using testing::RunCommand;

class GmailTest : public ::testing::Test {
 protected:
  void SetUp() override {
    DovecotOptions options;
    options.all_mail_folder = "Archive";
    server_ = DovecotServer::Start(options);
    ASSERT_NE(server_, nullptr);
    ASSERT_TRUE(server_->Seed("alice"));
    proxy_ = std::make_unique<FaultProxy>(server_->imap_port());
  }

  // Syncs into a fresh Maildir, through the proxy (which then advertises
  // X-GM-EXT-1 after login) or straight to Dovecot; returns the folders
  // mirrored.
  std::set<std::string> Sync(const std::string& name, bool as_gmail, const std::string& extra) {
    if (as_gmail) {
      FaultPlan plan;
      plan.rewrites = {{"A1 OK [CAPABILITY IMAP4rev1", "A1 OK [CAPABILITY IMAP4rev1 X-GM-EXT-1"}};
      proxy_->Plan(plan);
    }
    const std::string root = server_->dir() + "/" + name;
    const std::string config = server_->dir() + "/" + name + ".toml";
    std::ofstream(config) << "[accounts.test]\nhost = \"127.0.0.1\"\nport = "
                          << (as_gmail ? proxy_->port() : server_->imap_port())
                          << "\ntls = \"none\"\nuser = \"alice\"\npassword = \"alice-secret\"\n"
                          << "maildir = \"" << root << "\"\nconnections = 1\n"
                          << "gmail_labels = \"copy\"\n"
                          << extra;
    last_ = RunCommand(testing::SyncCommand(config, "-v"));
    EXPECT_EQ(last_.exit_code, 0) << Report(last_);
    std::set<std::string> folders;
    for (const testing::LocalFile& file : testing::ScanLocal(root).files) {
      folders.insert(file.folder);
    }
    return folders;
  }

  std::unique_ptr<DovecotServer> server_;
  std::unique_ptr<FaultProxy> proxy_;
  CommandResult last_;
};

TEST_F(GmailTest, AllMailIsSkippedOnGmailUnlessAskedFor) {
  std::set<std::string> gmail = Sync("gmail", true, "");
  EXPECT_EQ(proxy_->faults(), 1);  // X-GM-EXT-1 was advertised
  EXPECT_EQ(gmail.count("Archive"), 0u);
  EXPECT_EQ(gmail.count("INBOX"), 1u);
  EXPECT_EQ(gmail.count("Archive/2023"), 1u);  // a label below it is its own folder
  EXPECT_NE(last_.err.find("folder Archive skipped: it holds every message"), std::string::npos)
      << last_.err;

  std::set<std::string> wanted = Sync("wanted", true, "gmail_all_mail = true\n");
  EXPECT_EQ(wanted.count("Archive"), 1u);

  // Another server's \All folder (no X-GM-EXT-1) is an ordinary folder.
  std::set<std::string> plain = Sync("plain", false, "");
  EXPECT_EQ(plain.count("Archive"), 1u);
  EXPECT_EQ(plain, wanted);
}

}  // namespace
}  // namespace mailmirror
