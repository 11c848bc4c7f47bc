// `mailmirror migrate` between two users of one private Dovecot: alice is
// the source ("old"), bob the target ("new"). Special-use attributes come
// from Dovecot's mailbox settings, for every user alike.
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "support/dovecot_fixture.h"
#include "support/fault_proxy.h"
#include "support/run_command.h"
#include "support/sync_checks.h"

namespace mailmirror::testing {
namespace {

// The run printed `text` (a line or part of one).
void ExpectOutput(const CommandResult& run, const std::string& text) {
  EXPECT_NE(run.out.find(text), std::string::npos) << "missing: " << text << "\n" << run.out;
}

// A stored message as migrations must keep it.
struct Copy {
  std::string content;
  std::set<std::string> flags;
  int64_t internaldate = 0;  // Dovecot keeps it as the file's mtime
  bool operator<(const Copy& other) const {
    return std::tie(content, flags, internaldate) <
           std::tie(other.content, other.flags, other.internaldate);
  }
  bool operator==(const Copy& other) const {
    return content == other.content && flags == other.flags && internaldate == other.internaldate;
  }
};

class MigrateTest : public ::testing::Test {
 protected:
  void StartServer(const DovecotOptions& options) {
    server_ = DovecotServer::Start(options);
    ASSERT_NE(server_, nullptr);
    dir_ = server_->dir() + "/local";
    std::filesystem::create_directories(dir_);
    config_ = dir_ + "/config.toml";
  }

  // Accounts "old" (alice, mirrored under dir_/old) and "new" (bob), then
  // `migrations`.
  // `target_port`: bob's plaintext port instead (a proxy's, say).
  void WriteConfig(const std::string& migrations, int target_port = 0) {
    auto account = [&](const char* name, const FixtureUser& user, int plain_port) {
      const std::string server = plain_port != 0
                                     ? "port = " + std::to_string(plain_port) + "\ntls = \"none\"\n"
                                     : "port = " + std::to_string(server_->imaps_port()) +
                                           "\nca_file = \"" + server_->ca_file() + "\"\n";
      return std::string("[accounts.") + name + "]\nhost = \"127.0.0.1\"\n" + server + "user = \"" +
             user.name + "\"\npassword = \"" + user.password + "\"\nmaildir = \"" + dir_ + "/" +
             name + "\"\nretry_delay = 0.05\n\n";
    };
    std::ofstream(config_) << account("old", kAlice, 0) << account("new", kBob, target_port)
                           << migrations;
    std::filesystem::permissions(
        config_, std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);
  }

  std::string Command(const std::string& arguments) const {
    return ShellQuote(MAILMIRROR_BINARY) + " -c " + ShellQuote(config_) + " " + arguments;
  }

  CommandResult Run(const std::string& arguments) const {
    RunOptions options;
    options.timeout = std::chrono::seconds(120);
    return RunCommand(Command(arguments), options);
  }

  // Every message of `user`, by folder.
  std::map<std::string, std::multiset<Copy>> Mailbox(const std::string& user) {
    std::map<std::string, std::multiset<Copy>> folders;
    std::optional<std::vector<ServerMessage>> messages = server_->Messages(user);
    if (!messages) return folders;
    for (const ServerMessage& message : *messages) {
      Copy copy;
      copy.content = ReadFile(message.file);
      copy.flags.insert(message.flags.begin(), message.flags.end());
      struct stat st {};
      if (::stat(message.file.c_str(), &st) == 0) copy.internaldate = st.st_mtime;
      folders[message.folder].insert(std::move(copy));
    }
    return folders;
  }

  static size_t Total(const std::map<std::string, std::multiset<Copy>>& folders) {
    size_t total = 0;
    for (const auto& [name, copies] : folders) total += copies.size();
    return total;
  }

  std::unique_ptr<DovecotServer> server_;
  std::string dir_;
  std::string config_;
};

TEST_F(MigrateTest, CopiesEverythingWithFlagsAndDatesThenOnlyWhatIsNew) {
  DovecotOptions options;
  options.special_use = {"Sent Items=\\Sent", "Gesendet=\\Sent"};
  StartServer(options);
  ASSERT_TRUE(server_->Seed("alice"));
  WriteConfig(
      "[migrations.move]\nsource = \"old\"\ntarget = \"new\"\nfolders = [\"*\", \"!Empty\"]\n"
      "[migrations.move.map]\n\"Archive/*\" = \"Old/Archive/*\"\n");
  // bob's sent folder has another name, and his INBOX already holds one of
  // alice's messages (an earlier partial move by hand).
  const std::map<std::string, std::multiset<Copy>> alice = Mailbox("alice");
  ASSERT_EQ(Total(alice), 17u);
  ASSERT_EQ(RunCommand(DoveadmCommand(*server_, "bob", "mailbox create Gesendet")).exit_code, 0);
  const Copy& already = *alice.at("INBOX").begin();
  ASSERT_TRUE(server_->AddMessage("bob", "INBOX", already.content, /*seen=*/true));

  CommandResult first = Run("migrate old new");
  ASSERT_EQ(first.exit_code, 0) << Report(first);
  ExpectOutput(first,
               "old -> new: Sent Items -> Gesendet (special-use \\Sent): 4 selected, "
               "4 copied");
  ExpectOutput(first,
               "Archive/2023 -> Old/Archive/2023 (rule \"Archive/*\" = "
               "\"Old/Archive/*\", created): 3 selected, 3 copied");
  ExpectOutput(first, "INBOX -> INBOX: 5 selected, 4 copied");
  ExpectOutput(first, "1 already there");

  const std::map<std::string, std::string> mapped = {
      {"INBOX", "INBOX"},
      {"Archive", "Old/Archive"},
      {"Archive/2023", "Old/Archive/2023"},
      {"Archive/2023/Q1", "Old/Archive/2023/Q1"},
      {"Entw\xC3\xBCrfe", "Entw\xC3\xBCrfe"},
      {"Sent Items", "Gesendet"},
  };
  std::map<std::string, std::multiset<Copy>> bob = Mailbox("bob");
  EXPECT_EQ(Total(bob), 17u);
  for (const auto& [source, target] : mapped) {
    std::multiset<Copy> want = alice.at(source);
    std::multiset<Copy> got = bob[target];
    if (source == "INBOX") {
      // The message bob had keeps its own arrival time.
      want.erase(want.find(already));
      ASSERT_EQ(got.size(), 5u);
      auto kept = std::find_if(got.begin(), got.end(),
                               [&](const Copy& copy) { return copy.content == already.content; });
      ASSERT_NE(kept, got.end());
      got.erase(kept);
    }
    EXPECT_TRUE(got == want) << source << " -> " << target << ": " << got.size() << " messages";
  }

  // Nothing new: nothing copied, nothing sent.
  CommandResult again = Run("migrate move");
  ASSERT_EQ(again.exit_code, 0) << Report(again);
  ExpectOutput(again, "17 selected, 0 copied (0 B), 17 already there");
  EXPECT_EQ(Total(Mailbox("bob")), 17u);

  // New mail in the source migrates alone.
  ASSERT_TRUE(server_->AddMessage("alice", "Archive",
                                  "From: carol@example.test\nSubject: late\nMessage-ID: "
                                  "<late@example.test>\n\nArrived after the move.\n"));
  CommandResult late = Run("migrate old new");
  ASSERT_EQ(late.exit_code, 0) << Report(late);
  ExpectOutput(late,
               "Archive -> Old/Archive (rule \"Archive/*\" = \"Old/Archive/*\"): 3 "
               "selected, 1 copied");
  ExpectOutput(late, "18 selected, 1 copied");
  bob = Mailbox("bob");
  EXPECT_EQ(Total(bob), 18u);
  EXPECT_EQ(bob["Old/Archive"].size(), 3u);

  // The source renumbers a folder: its copy records no longer apply, and
  // the target's contents (by digest) say nothing is missing.
  ASSERT_TRUE(server_->Recreate("alice", "Sent Items"));
  CommandResult renumbered = Run("migrate old new");
  ASSERT_EQ(renumbered.exit_code, 0) << Report(renumbered);
  ExpectOutput(renumbered, "Sent Items: up to date, UIDVALIDITY changed: 4 kept");
  ExpectOutput(renumbered, "Gesendet (special-use \\Sent): 4 selected, 4 already there");
  EXPECT_EQ(Total(Mailbox("bob")), 18u) << renumbered.out;
}

// Filters, a dry run that changes nothing, --json, and a target without
// MULTIAPPEND or LITERAL+ (one synchronizing APPEND at a time).
TEST_F(MigrateTest, FiltersAndADryRunThatChangesNothing) {
  DovecotOptions options;
  options.hide_capabilities = {"MULTIAPPEND", "LITERAL+"};
  StartServer(options);
  ASSERT_TRUE(server_->Seed("alice"));
  WriteConfig(
      "[migrations.recent]\nsource = \"old\"\ntarget = \"new\"\n"
      "folders = [\"INBOX\", \"Archive*\"]\nsince = 2023-01-01\nbefore = 2024-01-12\n"
      "max_size = 0.1\nskip_flags = [\"\\\\Seen\"]\n");
  CommandResult synced = Run("sync old");
  ASSERT_EQ(synced.exit_code, 0) << Report(synced);

  CommandResult dry = Run("migrate recent --dry-run");
  ASSERT_EQ(dry.exit_code, 0) << Report(dry);
  ExpectOutput(dry, "INBOX -> INBOX: 5 selected, 1 to copy");
  ExpectOutput(dry,
               "4 skipped (2 flagged \\Seen, 1 larger than max_size (0.1 MB), 1 not "
               "before 2024-01-12)");
  ExpectOutput(dry,
               "Archive -> Archive (to create): 2 selected, 2 skipped (2 older than "
               "since (2023-01-01))");
  ExpectOutput(dry, "dry run: nothing was changed");
  EXPECT_EQ(Total(Mailbox("bob")), 0u);
  const CommandResult listed = RunCommand(DoveadmCommand(*server_, "bob", "mailbox list"));
  EXPECT_EQ(listed.out, "INBOX\n");

  CommandResult real = Run("migrate recent --json");
  ASSERT_EQ(real.exit_code, 0) << Report(real);
  nlohmann::json run = nlohmann::json::parse(real.out, nullptr, false);
  ASSERT_FALSE(run.is_discarded()) << real.out;
  EXPECT_EQ(run["exit_code"], 0);
  EXPECT_EQ(run["migration"], "recent");
  EXPECT_TRUE(run["source_sync"]["ok"].get<bool>());
  std::map<std::string, nlohmann::json> folders;
  for (const nlohmann::json& folder : run["folders"]) folders[folder["source"]] = folder;
  ASSERT_EQ(folders.size(), 4u) << real.out;
  EXPECT_EQ(folders["INBOX"]["copied"], 1);
  EXPECT_EQ(folders["INBOX"]["skipped"], 4);
  EXPECT_EQ(folders["INBOX"]["skip_reasons"]["flagged \\Seen"], 2);
  EXPECT_EQ(folders["Archive"]["copied"], 0);
  EXPECT_EQ(folders["Archive/2023"]["copied"], 2);
  EXPECT_EQ(folders["Archive/2023/Q1"]["copied"], 1);
  std::map<std::string, std::multiset<Copy>> bob = Mailbox("bob");
  EXPECT_EQ(Total(bob), 4u);
  for (const auto& [name, copies] : bob) {
    for (const Copy& copy : copies) {
      EXPECT_EQ(copy.flags.count("\\Seen"), 0u) << name;
      EXPECT_GE(copy.internaldate, 1672531200) << name;  // 2023-01-01
      EXPECT_LT(copy.internaldate, 1705017600) << name;  // 2024-01-12
    }
  }

  // Wider filters: what they now select is copied, and what is already
  // there (found by digest, the records no longer telling) is not again.
  WriteConfig(
      "[migrations.recent]\nsource = \"old\"\ntarget = \"new\"\n"
      "folders = [\"INBOX\", \"Archive*\"]\nsince = 2023-01-01\nbefore = 2024-01-12\n");
  CommandResult wider = Run("migrate recent");
  ASSERT_EQ(wider.exit_code, 0) << Report(wider);
  ExpectOutput(wider, "INBOX -> INBOX: 5 selected, 3 copied");
  ExpectOutput(wider, "1 already there, 1 skipped (1 not before 2024-01-12)");
  EXPECT_EQ(Total(Mailbox("bob")), 8u);

  // A target folder the user deleted is made again and filled again.
  ASSERT_EQ(RunCommand(DoveadmCommand(*server_, "bob", "mailbox delete Archive/2023/Q1")).exit_code,
            0);
  CommandResult refill = Run("migrate recent");
  ASSERT_EQ(refill.exit_code, 0) << Report(refill);
  ExpectOutput(refill, "Archive/2023/Q1 -> Archive/2023/Q1 (created): 1 selected, 1 copied");
  EXPECT_EQ(Total(Mailbox("bob")), 8u);
}

// Office 365 answers a busy client with a BYE naming a backoff: the run
// waits, logs in again and finishes the folder, duplicating nothing of what
// was stored before the BYE.
TEST_F(MigrateTest, AThrottlingTargetSlowsTheRunDown) {
  StartServer({});
  ASSERT_TRUE(server_->Seed("alice"));
  FaultProxy proxy(server_->imap_port());
  WriteConfig("", proxy.port());
  FaultPlan bye;
  bye.rewrites = {{"Append completed",
                   "* BYE [UNAVAILABLE] Request is throttled. Suggested Backoff Time: "
                   "200 milliseconds"}};
  bye.rewrite_whole_lines = true;
  bye.cut_after_rewrites = true;
  proxy.Plan(bye);
  CommandResult run = Run("-v migrate old new");
  ASSERT_EQ(run.exit_code, 0) << Report(run);
  EXPECT_EQ(proxy.faults(), 1);
  EXPECT_NE(run.err.find("throttled"), std::string::npos) << Report(run);
  std::map<std::string, std::multiset<Copy>> alice = Mailbox("alice");
  std::map<std::string, std::multiset<Copy>> bob = Mailbox("bob");
  EXPECT_EQ(Total(bob), 17u) << run.out;
  for (const auto& [name, copies] : alice) EXPECT_TRUE(bob[name] == copies) << name;
}

TEST_F(MigrateTest, KilledMidMigrationARerunDuplicatesNothing) {
  StartServer({});
  BulkOptions bulk;
  bulk.count = 300;
  bulk.big_mb = 0;
  ASSERT_TRUE(server_->SeedBulk("alice", bulk));
  WriteConfig("");
  CommandResult synced = Run("sync old");
  ASSERT_EQ(synced.exit_code, 0) << Report(synced);

  // The protocol trace shows each APPEND going out: kill -9 once some went,
  // long before the copies are committed (every 256 or each second).
  const std::string trace = dir_ + "/trace.log";
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    const std::string command = "exec " + Command("-vvv --log-file " + ShellQuote(trace) +
                                                  " migrate old new >/dev/null 2>&1");
    ::execl("/bin/sh", "sh", "-c", command.c_str(), static_cast<char*>(nullptr));
    ::_exit(127);
  }
  bool killed = false;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (std::chrono::steady_clock::now() < deadline) {
    int status = 0;
    if (::waitpid(child, &status, WNOHANG) == child) break;  // finished first
    const std::string log = ReadFile(trace);
    size_t appends = 0;
    for (size_t at = log.find(" APPEND "); at != std::string::npos;
         at = log.find(" APPEND ", at + 1)) {
      ++appends;
    }
    if (appends >= 3) {
      ::kill(child, SIGKILL);
      ::waitpid(child, &status, 0);
      killed = true;
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  EXPECT_TRUE(killed) << "the migration finished before it could be killed";
  const size_t copied_before = Total(Mailbox("bob"));

  CommandResult rerun = Run("migrate old new");
  ASSERT_EQ(rerun.exit_code, 0) << Report(rerun);
  const std::map<std::string, std::multiset<Copy>> alice = Mailbox("alice");
  const std::map<std::string, std::multiset<Copy>> bob = Mailbox("bob");
  EXPECT_EQ(Total(bob), Total(alice)) << copied_before << " copied before the kill";
  for (const auto& [name, copies] : alice) {
    auto found = bob.find(name);
    ASSERT_NE(found, bob.end()) << name;
    EXPECT_TRUE(found->second == copies)
        << name << ": " << found->second.size() << " of " << copies.size();
  }
}

}  // namespace
}  // namespace mailmirror::testing
