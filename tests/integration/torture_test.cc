// The torture test of issue 7: 100 runs killed with SIGKILL at random
// instants and 100 runs whose connection is cut at a random byte offset
// (either direction, FIN or RST, with and without retries), while both
// sides keep changing between runs: new messages, flag changes and
// deletions in the Maildir and on the server. After one clean run both
// sides must hold every message exactly once, with the flags set on
// whichever side changed them, and the deleted ones nowhere.
//
// Every message is changed at most once, on one side, so the expected end
// state needs no model of the merge. The random sequence is fixed
// (MAILMIRROR_TORTURE_SEED overrides it); the counts are printed as
// "torture: ..." for the closing note.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "support/dovecot_fixture.h"
#include "support/fault_proxy.h"
#include "support/run_command.h"
#include "support/sync_checks.h"

namespace mailmirror {
namespace {

namespace fs = std::filesystem;
using testing::Child;
using testing::CommandResult;
using testing::DovecotServer;
using testing::ExpectedLetters;
using testing::FaultPlan;
using testing::FaultProxy;
using testing::Join;
using testing::LocalFile;
using testing::ReadFile;
using testing::Report;
using testing::RunCommand;
using testing::RunOptions;
using testing::ServerMessage;
using testing::SyncCommand;

constexpr int kSeeded = 400;
constexpr int kKillRounds = 100;
constexpr int kCutRounds = 100;
// Folders whose names doveadm takes as they are.
const std::set<std::string> kAsciiFolders = {"INBOX", "Archive", "Archive/2023", "Sent Items"};

// The Message-ID of a message's text ("" if none).
std::string MessageId(const std::string& text) {
  static const std::string kHeader = "\nmessage-id:";
  std::string lower = text.substr(0, std::min<size_t>(text.size(), 4096));
  std::transform(lower.begin(), lower.end(), lower.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  size_t at = lower.find(kHeader);
  if (at == std::string::npos) return "";
  size_t open = text.find('<', at);
  size_t close = text.find('>', open);
  if (open == std::string::npos || close == std::string::npos) return "";
  return text.substr(open, close - open + 1);
}

std::string NewMessage(const std::string& id, const std::string& subject) {
  return "From: Torture <t@example.test>\nTo: alice@example.test\nSubject: " + subject +
         "\nMessage-ID: " + id + "\nDate: Thu, 04 Jul 2024 10:00:00 +0000\n\nround trip\n";
}

class TortureTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const char* seed = std::getenv("MAILMIRROR_TORTURE_SEED");
    seed_ = seed != nullptr ? static_cast<uint32_t>(std::strtoul(seed, nullptr, 10)) : 20261126;
    random_.seed(seed_);
    server_ = DovecotServer::Start();
    ASSERT_NE(server_, nullptr);
    ASSERT_TRUE(server_->SeedBulk("alice", {.count = kSeeded, .big_mb = 0}));
    proxy_ = std::make_unique<FaultProxy>(server_->imaps_port());
    dir_ = server_->dir() + "/local";
    fs::create_directories(dir_);
    root_ = dir_ + "/mail";
    const std::string account = "user = \"alice\"\npassword = \"alice-secret\"\nmaildir = \"" +
                                root_ + "\"\nca_file = \"" + server_->ca_file() +
                                "\"\nhost = \"127.0.0.1\"\nretry_delay = 0.02\n";
    direct_ = WriteConfig("direct.toml",
                          account + "port = " + std::to_string(server_->imaps_port()) + "\n");
    for (int retries : {0, 2}) {
      cut_[retries] = WriteConfig("cut" + std::to_string(retries) + ".toml",
                                  account + "port = " + std::to_string(proxy_->port()) +
                                      "\nretries = " + std::to_string(retries) + "\n");
    }
  }

  std::string WriteConfig(const std::string& name, const std::string& account) {
    const std::string path = dir_ + "/" + name;
    std::ofstream(path) << "[accounts.test]\n" << account;
    return path;
  }

  CommandResult Sync(const std::string& config) {
    RunOptions options;
    options.timeout = std::chrono::seconds(90);
    return RunCommand(SyncCommand(config), options);
  }

  std::vector<ServerMessage> Server() {
    auto messages = server_->Messages("alice");
    EXPECT_TRUE(messages);
    return messages ? *messages : std::vector<ServerMessage>{};
  }

  void Doveadm(const std::string& arguments) {
    const CommandResult result = RunCommand(testing::DoveadmCommand(*server_, "alice", arguments));
    EXPECT_EQ(result.exit_code, 0) << arguments << "\n" << Report(result);
  }

  size_t Pick(size_t size) { return std::uniform_int_distribution<size_t>(0, size - 1)(random_); }

  // Takes a message no one has changed yet: its Message-ID and what the
  // pool knows of it.
  template <typename T>
  std::optional<std::pair<std::string, T>> TakeUntouched(std::map<std::string, T>& pool) {
    while (!pool.empty()) {
      auto it = std::next(pool.begin(), static_cast<long>(Pick(pool.size())));
      std::pair<std::string, T> taken = *it;
      pool.erase(it);
      if (touched_.insert(taken.first).second) return taken;
    }
    return std::nullopt;
  }

  // An untouched local message and its file now (the file's stem stays;
  // its name changes when flags do).
  std::optional<std::pair<std::string, LocalFile>> TakeUntouchedLocal() {
    std::map<std::string, LocalFile> candidates;
    for (const LocalFile& file : testing::ScanLocal(root_).files) {
      auto id = id_by_stem_.find(file.stem);
      if (id != id_by_stem_.end() && touched_.count(id->second) == 0) {
        candidates[id->second] = file;
      }
    }
    return TakeUntouched(candidates);
  }

  // One round of changes on both sides.
  void Change(int round) {
    const std::string tag = std::to_string(round);
    // Maildir: a flag change as mutt makes it, a deletion, a new message.
    if (auto taken = TakeUntouchedLocal()) {
      const auto& [id, file] = *taken;
      std::string letters = file.flags.value_or("");
      const char flip = "FRS"[Pick(3)];
      if (letters.find(flip) != std::string::npos) {
        letters.erase(letters.find(flip), 1);
      } else {
        letters += flip;
        std::sort(letters.begin(), letters.end());
      }
      const std::string folder_dir = fs::path(file.path).parent_path().parent_path().string();
      const std::string base = file.name.substr(0, file.name.find(":2,"));
      fs::rename(file.path, folder_dir + "/cur/" + base + ":2," + letters);
      flags_[id] = letters;
      what_[id] = "local flags -> " + letters + " in round " + tag;
    }
    if (auto taken = TakeUntouchedLocal()) {
      deleted_.insert(taken->first);
      what_[taken->first] = "deleted locally in round " + tag;
      fs::remove(taken->second.path);
    }
    {
      const std::string id = "<local-" + tag + "@torture.test>";
      auto folder = std::next(kAsciiFolders.begin(), static_cast<long>(Pick(kAsciiFolders.size())));
      const std::string path = root_ + "/" + *folder + "/cur/torture-" + tag + ":2,S";
      std::ofstream(path, std::ios::binary) << NewMessage(id, "local " + tag);
      created_.insert(id);
      flags_[id] = "S";
    }
    // Server: another client flags or unflags, expunges, delivers.
    if (auto taken = TakeUntouched(server_messages_)) {
      const auto& [id, message] = *taken;
      const bool flagged =
          std::count(message.flags.begin(), message.flags.end(), std::string("\\Flagged")) != 0;
      Doveadm(std::string("flags ") + (flagged ? "remove" : "add") + " '\\Flagged' mailbox " +
              testing::ShellQuote(message.folder) + " uid " + std::to_string(message.uid));
      std::vector<std::string> flags = message.flags;
      if (flagged) {
        flags.erase(std::find(flags.begin(), flags.end(), "\\Flagged"));
      } else {
        flags.push_back("\\Flagged");
      }
      flags_[id] = ExpectedLetters(flags);
      what_[id] = "server flags -> " + flags_[id] + " in round " + tag;
    }
    if (auto taken = TakeUntouched(server_messages_)) {
      deleted_.insert(taken->first);
      what_[taken->first] = "expunged on the server in round " + tag;
      Doveadm("expunge mailbox " + testing::ShellQuote(taken->second.folder) + " uid " +
              std::to_string(taken->second.uid));
    }
    {
      const std::string id = "<server-" + tag + "@torture.test>";
      const bool seen = Pick(2) == 0;
      auto folder = std::next(kAsciiFolders.begin(), static_cast<long>(Pick(kAsciiFolders.size())));
      ASSERT_TRUE(server_->AddMessage("alice", *folder, NewMessage(id, "server " + tag), seen));
      created_.insert(id);
      flags_[id] = seen ? "S" : "";
    }
  }

  uint32_t seed_ = 0;
  std::mt19937 random_;
  std::unique_ptr<DovecotServer> server_;
  std::unique_ptr<FaultProxy> proxy_;
  std::string dir_;
  std::string root_;
  std::string direct_;
  std::map<int, std::string> cut_;  // retries -> config through the proxy

  // Messages by Message-ID as the first sync left them (the server's file
  // names are not kept: Dovecot renames them when flags change).
  std::map<std::string, std::string> id_by_stem_;
  std::map<std::string, ServerMessage> server_messages_;
  std::set<std::string> touched_;
  std::set<std::string> originals_;
  std::set<std::string> created_;
  std::set<std::string> deleted_;
  std::map<std::string, std::string> flags_;  // Message-ID -> Maildir letters expected
  std::map<std::string, std::string> what_;   // Message-ID -> the change made, for messages
};

TEST_F(TortureTest, KillsAndCutsLoseAndDuplicateNothing) {
  CommandResult first = Sync(direct_);
  ASSERT_EQ(first.exit_code, 0) << Report(first);
  for (const ServerMessage& message : Server()) {
    const std::string id = MessageId(ReadFile(message.file));
    ASSERT_FALSE(id.empty()) << message.file;
    ASSERT_TRUE(originals_.insert(id).second) << "two seeded messages share " << id;
    if (kAsciiFolders.count(message.folder) != 0) server_messages_[id] = message;
  }
  for (const LocalFile& file : testing::ScanLocal(root_).files) {
    if (kAsciiFolders.count(file.folder) != 0)
      id_by_stem_[file.stem] = MessageId(ReadFile(file.path));
  }

  int runs = 0;
  int kills = 0;
  int finished = 0;
  // Kills fall uniformly within this window after the start. A run that
  // finishes inside it shows the window is longer than a run on this
  // machine (a fast build, an idle machine): it shrinks, so that most kills
  // still land mid-run.
  int window_us = 150000;
  for (int round = 0; round < kKillRounds; ++round) {
    ASSERT_NO_FATAL_FAILURE(Change(round));
    Child child(SyncCommand(direct_), dir_ + "/kill.out", dir_ + "/kill.err");
    ASSERT_TRUE(child.started());
    ++runs;
    const int delay_us = std::uniform_int_distribution<int>(0, window_us)(random_);
    std::this_thread::sleep_for(std::chrono::microseconds(delay_us));
    if (child.Exited()) {
      ++finished;
      window_us = std::max(2000, std::min(window_us, delay_us * 9 / 10));
      continue;
    }
    child.Kill();
    (void)child.Wait(std::chrono::seconds(10));
    ++kills;
  }
  int cut_runs = 0;
  int failed_runs = 0;
  const int faults_before = proxy_->faults();
  for (int round = kKillRounds; round < kKillRounds + kCutRounds; ++round) {
    ASSERT_NO_FATAL_FAILURE(Change(round));
    FaultPlan plan;
    const uint64_t offset = std::uniform_int_distribution<uint64_t>(0, 6000)(random_);
    if (Pick(4) == 0) {
      plan.cut_up_after = offset / 8;  // the client sends far less
    } else {
      plan.cut_down_after = offset;
    }
    plan.reset = Pick(2) == 0;
    proxy_->ClearPlans();
    proxy_->Plan(plan);
    CommandResult run = Sync(cut_[Pick(2) == 0 ? 0 : 2]);
    ++runs;
    ++cut_runs;
    EXPECT_TRUE(run.exit_code == 0 || run.exit_code == 69 || run.exit_code == 75) << Report(run);
    if (run.exit_code != 0) ++failed_runs;
  }
  const int cuts = proxy_->faults() - faults_before;

  CommandResult last = Sync(direct_);
  ASSERT_EQ(last.exit_code, 0) << Report(last);
  std::vector<std::string> problems = testing::MirrorProblems(Server(), root_);
  EXPECT_TRUE(problems.empty()) << Join(problems);

  std::map<std::string, int> copies;
  std::map<std::string, const ServerMessage*> by_id;
  const std::vector<ServerMessage> server = Server();
  for (const ServerMessage& message : server) {
    const std::string id = MessageId(ReadFile(message.file));
    ++copies[id];
    by_id[id] = &message;
  }
  int compared = 0;
  int lost = 0;
  int duplicated = 0;
  int resurrected = 0;
  std::vector<std::string> wrong_flags;
  std::vector<std::string> lost_ids;
  for (const std::set<std::string>* ids : {&originals_, &created_}) {
    for (const std::string& id : *ids) {
      ++compared;
      const int count = copies[id];
      if (deleted_.count(id) != 0) {
        if (count != 0) ++resurrected;
        continue;
      }
      if (count == 0) {
        ++lost;
        lost_ids.push_back(id + " " + what_[id]);
      }
      if (count > 1) ++duplicated;
      auto flags = flags_.find(id);
      if (count == 1 && flags != flags_.end() &&
          ExpectedLetters(by_id[id]->flags) != flags->second) {
        wrong_flags.push_back(id + ": server has " + ExpectedLetters(by_id[id]->flags) +
                              ", expected " + flags->second);
      }
    }
  }
  std::cout << "torture: seed " << seed_ << ", runs " << runs << " (" << kills << " killed, "
            << finished << " finished before the kill; " << cut_runs << " with a cut connection, "
            << cuts << " cuts made, " << failed_runs
            << " of those runs gave up), messages compared " << compared << ", lost " << lost
            << ", duplicated " << duplicated << ", deleted but back " << resurrected
            << ", flags wrong " << wrong_flags.size() << std::endl;
  EXPECT_EQ(lost, 0) << Join(lost_ids);
  EXPECT_EQ(duplicated, 0);
  EXPECT_EQ(resurrected, 0);
  EXPECT_TRUE(wrong_flags.empty()) << Join(wrong_flags);
  EXPECT_GT(kills, kKillRounds / 2) << "the kills mostly came too late to test anything";
}

}  // namespace
}  // namespace mailmirror
