// Many accounts in one run: max_accounts at once on one event loop, and
// --shard splitting them between hosts without coordination.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <string>

#include "support/dovecot_fixture.h"
#include "support/run_command.h"
#include "support/sync_checks.h"

namespace mailmirror {
namespace {

namespace fs = std::filesystem;
using testing::CommandResult;
using testing::DovecotServer;
using testing::Report;
using testing::RunCommand;
using testing::ShellQuote;

constexpr int kAccounts = 6;

class ManyAccountsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    server_ = DovecotServer::Start();
    ASSERT_NE(server_, nullptr);
    ASSERT_TRUE(server_->Seed("alice"));
  }

  // kAccounts accounts, all alice's mailbox, each into its own Maildir.
  std::string WriteConfig(const std::string& name, int max_accounts) {
    const std::string path = server_->dir() + "/" + name + ".toml";
    std::ofstream out(path);
    out << "max_accounts = " << max_accounts << "\n";
    for (int i = 0; i < kAccounts; ++i) {
      out << "[accounts.user" << i << "]\nhost = \"127.0.0.1\"\nport = " << server_->imaps_port()
          << "\nca_file = \"" << server_->ca_file()
          << "\"\nuser = \"alice\"\npassword = \"alice-secret\"\nmaildir = \"" << Root(name, i)
          << "\"\n";
    }
    out.close();
    fs::permissions(path, fs::perms::owner_read | fs::perms::owner_write);
    return path;
  }

  std::string Root(const std::string& name, int account) const {
    return server_->dir() + "/" + name + "/user" + std::to_string(account);
  }

  CommandResult Sync(const std::string& config, const std::string& arguments) {
    return RunCommand(std::string(MAILMIRROR_BINARY) + " -c " + ShellQuote(config) + " " +
                      arguments);
  }

  // The accounts whose Maildir holds INBOX.
  std::set<int> Synced(const std::string& name) const {
    std::set<int> synced;
    for (int i = 0; i < kAccounts; ++i) {
      if (fs::exists(Root(name, i) + "/INBOX/cur")) synced.insert(i);
    }
    return synced;
  }

  std::unique_ptr<DovecotServer> server_;
};

TEST_F(ManyAccountsTest, ShardsSplitTheAccountsStablyAndDisjointly) {
  const std::string config = WriteConfig("shards", 4);
  std::set<int> all;
  size_t before = 0;
  for (int shard = 0; shard < 3; ++shard) {
    CommandResult result = Sync(config, "-q sync --shard " + std::to_string(shard) + "/3");
    ASSERT_EQ(result.exit_code, 0) << Report(result);
    std::set<int> now = Synced("shards");
    EXPECT_GT(now.size(), before) << "shard " << shard << " synced nothing new";
    before = now.size();
    all = now;
  }
  EXPECT_EQ(all.size(), size_t(kAccounts));

  // The same shard again picks the same accounts (nothing new to sync).
  const std::string again_config = WriteConfig("again", 4);
  CommandResult first = Sync(again_config, "-q sync --shard 1/3");
  ASSERT_EQ(first.exit_code, 0) << Report(first);
  std::set<int> one = Synced("again");
  CommandResult second = Sync(again_config, "-q sync --shard 1/3");
  ASSERT_EQ(second.exit_code, 0) << Report(second);
  EXPECT_EQ(Synced("again"), one);

  CommandResult bad = Sync(config, "sync --shard 3/3");
  EXPECT_EQ(bad.exit_code, 64) << Report(bad);
  EXPECT_NE(bad.err.find("--shard expects I/N"), std::string::npos) << bad.err;
}

TEST_F(ManyAccountsTest, MaxAccountsBoundsHowManyRunAtOnce) {
  const std::string config = WriteConfig("serial", 1);
  CommandResult result = Sync(config, "-v sync");
  ASSERT_EQ(result.exit_code, 0) << Report(result);
  EXPECT_EQ(Synced("serial").size(), size_t(kAccounts));
  // With one at a time, each account finishes before the next starts.
  std::regex event("account (user[0-9]): (starting|finished)");
  int running = 0;
  int most = 0;
  int starts = 0;
  for (std::sregex_iterator it(result.err.begin(), result.err.end(), event), end; it != end; ++it) {
    if ((*it)[2] == "starting") {
      ++starts;
      most = std::max(most, ++running);
    } else {
      --running;
    }
  }
  EXPECT_EQ(starts, kAccounts) << result.err;
  EXPECT_EQ(most, 1) << result.err;

  const std::string parallel = WriteConfig("parallel", 4);
  CommandResult wide = Sync(parallel, "-v sync");
  ASSERT_EQ(wide.exit_code, 0) << Report(wide);
  EXPECT_EQ(Synced("parallel").size(), size_t(kAccounts));
  running = 0;
  most = 0;
  for (std::sregex_iterator it(wide.err.begin(), wide.err.end(), event), end; it != end; ++it) {
    most = std::max(most, (*it)[2] == "starting" ? ++running : --running);
  }
  EXPECT_EQ(most, 4) << wide.err;
}

TEST_F(ManyAccountsTest, JsonSummaryForMonitoring) {
  // Two of the accounts; the second with a wrong password.
  const std::string config = server_->dir() + "/json.toml";
  {
    std::ofstream out(config);
    for (const char* name : {"good", "bad"}) {
      out << "[accounts." << name << "]\nhost = \"127.0.0.1\"\nport = " << server_->imaps_port()
          << "\nca_file = \"" << server_->ca_file() << "\"\nuser = \"alice\"\npassword = \""
          << (std::string(name) == "good" ? "alice-secret" : "wrong") << "\"\nmaildir = \""
          << server_->dir() << "/json/" << name << "\"\n";
    }
  }
  fs::permissions(config, fs::perms::owner_read | fs::perms::owner_write);
  CommandResult result = Sync(config, "sync --json");
  EXPECT_EQ(result.exit_code, 77) << Report(result);
  // stdout is the JSON object and nothing else.
  nlohmann::json run = nlohmann::json::parse(result.out, nullptr, false);
  ASSERT_TRUE(run.is_object()) << result.out;
  EXPECT_EQ(run["exit_code"], 77);
  EXPECT_EQ(run["dry_run"], false);
  ASSERT_EQ(run["accounts"].size(), 2u);
  const nlohmann::json& good = run["accounts"][0];
  EXPECT_EQ(good["name"], "good");
  EXPECT_EQ(good["ok"], true);
  EXPECT_TRUE(good["error"].is_null());
  std::map<std::string, nlohmann::json> folders;
  for (const nlohmann::json& folder : good["folders"]) {
    folders[folder["name"].get<std::string>()] = folder;
  }
  ASSERT_EQ(folders.count("INBOX"), 1u) << result.out;
  EXPECT_EQ(folders["INBOX"]["fetched"], 5);
  EXPECT_GT(folders["INBOX"]["bytes"].get<uint64_t>(), 0u);
  EXPECT_EQ(folders["INBOX"]["path"], "initial");
  EXPECT_EQ(folders["INBOX"]["ok"], true);
  EXPECT_GE(folders["INBOX"]["seconds"].get<double>(), 0.0);
  EXPECT_EQ(folders.count("Entwürfe"), 1u);  // UTF-8 names
  const nlohmann::json& bad = run["accounts"][1];
  EXPECT_EQ(bad["ok"], false);
  EXPECT_NE(bad["error"].get<std::string>().find("rejected PLAIN login"), std::string::npos);
  EXPECT_TRUE(bad["folders"].empty());

  // -q does not silence --json; the next run finds nothing new.
  CommandResult again = Sync(config, "-q sync --json good");
  ASSERT_EQ(again.exit_code, 0) << Report(again);
  nlohmann::json second = nlohmann::json::parse(again.out, nullptr, false);
  ASSERT_TRUE(second.is_object()) << again.out;
  ASSERT_EQ(second["accounts"].size(), 1u);
  for (const nlohmann::json& folder : second["accounts"][0]["folders"]) {
    EXPECT_EQ(folder["fetched"], 0) << folder;
  }
  EXPECT_TRUE(second["error"].is_null());

  // A run that stops before any account still prints its JSON object.
  CommandResult unknown = Sync(config, "sync --json nosuch");
  EXPECT_EQ(unknown.exit_code, 64) << Report(unknown);
  nlohmann::json stopped = nlohmann::json::parse(unknown.out, nullptr, false);
  ASSERT_TRUE(stopped.is_object()) << unknown.out;
  EXPECT_EQ(stopped["exit_code"], 64);
  EXPECT_NE(stopped["error"].get<std::string>().find("nosuch"), std::string::npos) << unknown.out;
  EXPECT_TRUE(stopped["accounts"].empty());
  std::ofstream(config, std::ios::app) << "[accounts.broken\n";
  CommandResult broken = Sync(config, "sync --json");
  EXPECT_EQ(broken.exit_code, 78) << Report(broken);
  nlohmann::json malformed = nlohmann::json::parse(broken.out, nullptr, false);
  ASSERT_TRUE(malformed.is_object()) << broken.out;
  EXPECT_EQ(malformed["exit_code"], 78);
}

}  // namespace
}  // namespace mailmirror
