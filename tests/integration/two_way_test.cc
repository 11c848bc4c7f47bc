// Two-way `mailmirror sync` (issue 6) end to end against a real Dovecot:
// what a Maildir reader does to the files (mutt-style renames, deleted
// files, new files, files moved between folders) reaches the server, what
// another client does to the server reaches the files, changes on both
// sides merge, the safety valves stop runs that would wipe a folder, and a
// run killed at any point while pushing leaves no duplicate and loses
// nothing.
//
// The server is read and changed without IMAP (doveadm, DovecotServer::
// Messages), so that these checks never pass because of mailmirror's own
// view. What a run sent is read from its -vvv protocol trace ("C: A7 UID
// MOVE ..."), what it downloaded from the server's log.
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <regex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "support/dovecot_fixture.h"
#include "support/run_command.h"
#include "support/sync_checks.h"

namespace mailmirror {
namespace {

namespace fs = std::filesystem;
using std::chrono::milliseconds;
using testing::Child;
using testing::CommandResult;
using testing::DovecotOptions;
using testing::DovecotServer;
using testing::ExpectedLetters;
using testing::FetchesSince;
using testing::Join;
using testing::LocalFile;
using testing::LocalTree;
using testing::LogSize;
using testing::ReadFile;
using testing::Report;
using testing::RunCommand;
using testing::RunOptions;
using testing::ScanLocal;
using testing::ServerMessage;
using testing::ShellQuote;
using testing::SyncCommand;

using Key = std::pair<std::string, uint32_t>;  // folder, UID

struct CapabilitySet {
  const char* name;
  std::vector<std::string> hide;
};
void PrintTo(const CapabilitySet& set, std::ostream* os) { *os << set.name; }

const CapabilitySet kCapabilitySets[] = {
    {"QresyncAndCondstore", {}},
    {"Neither", {"CONDSTORE", "QRESYNC"}},
};

// A message of our own, identified by its Message-ID.
std::string LocalMessage(const std::string& id, const std::string& subject) {
  return "From: Alice <alice@example.test>\nTo: bob@example.org\nSubject: " + subject +
         "\nMessage-ID: <" + id + "@local.test>\nDate: Wed, 03 Jul 2024 10:00:00 +0000\n\n" +
         "Written in the Maildir by a local client.\n";
}

void WriteFile(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary);
  out << text;
}

class TwoWaySyncTest : public ::testing::TestWithParam<CapabilitySet> {
 protected:
  void StartServer(int count, const std::string& extra_config = "",
                   const std::string& state_dir = "") {
    DovecotOptions options;
    options.hide_capabilities = GetParam().hide;
    server_ = DovecotServer::Start(options);
    ASSERT_NE(server_, nullptr);
    ASSERT_TRUE(server_->SeedBulk("alice", {.count = count, .big_mb = 0}));
    dir_ = server_->dir() + "/local";
    fs::create_directories(dir_);
    root_ = dir_ + "/mail";
    config_ = dir_ + "/config.toml";
    std::ofstream out(config_);
    out << testing::AliceAccount(*server_, root_) << extra_config;
    if (!state_dir.empty()) out << "state_dir = \"" << state_dir << "\"\n";
  }

  // `mailmirror -c CONFIG FLAGS sync SYNC_FLAGS`.
  CommandResult Sync(const std::string& flags = "", const std::string& sync_flags = "") {
    RunOptions options;
    options.timeout = std::chrono::seconds(60);
    return RunCommand(SyncCommand(config_, flags) + " " + sync_flags, options);
  }

  std::vector<ServerMessage> Server() {
    auto messages = server_->Messages("alice");
    EXPECT_TRUE(messages);
    return messages ? *messages : std::vector<ServerMessage>{};
  }

  std::string Doveadm(const std::string& arguments) {
    const std::string command = testing::DoveadmCommand(*server_, "alice", arguments);
    const CommandResult result = RunCommand(command);
    EXPECT_EQ(result.exit_code, 0) << command << "\n" << Report(result);
    return result.out;
  }

  // Local files of `folder` (with a UID and flags) in cur/, lowest UID first.
  std::vector<LocalFile> Files(const std::string& folder, const std::string& subdir = "cur") {
    std::vector<LocalFile> files;
    for (const LocalFile& file : ScanLocal(root_).files) {
      if (file.folder == folder && file.subdir == subdir && file.uid) files.push_back(file);
    }
    std::sort(files.begin(), files.end(),
              [](const LocalFile& a, const LocalFile& b) { return *a.uid < *b.uid; });
    return files;
  }

  std::vector<std::string> MirrorProblems() { return testing::MirrorProblems(Server(), root_); }

  // Server messages whose content contains `needle`.
  std::vector<ServerMessage> ServerWith(const std::string& needle) {
    std::vector<ServerMessage> found;
    for (const ServerMessage& message : Server()) {
      if (ReadFile(message.file).find(needle) != std::string::npos) found.push_back(message);
    }
    return found;
  }

  std::unique_ptr<DovecotServer> server_;
  std::string dir_;
  std::string root_;
  std::string config_;
};

std::string Letters(const ServerMessage& message) { return ExpectedLetters(message.flags); }

const ServerMessage* Find(const std::vector<ServerMessage>& messages, const std::string& folder,
                          uint32_t uid) {
  for (const ServerMessage& message : messages) {
    if (message.folder == folder && message.uid == uid) return &message;
  }
  return nullptr;
}

TEST_P(TwoWaySyncTest, MuttStyleRenamesPushFlags) {
  ASSERT_NO_FATAL_FAILURE(StartServer(100));
  CommandResult first = Sync();
  ASSERT_EQ(first.exit_code, 0) << Report(first);
  std::vector<LocalFile> unread = Files("INBOX", "new");
  std::vector<LocalFile> read = Files("INBOX", "cur");
  ASSERT_GE(unread.size(), 1u);
  ASSERT_GE(read.size(), 2u);
  // Reading a new message: new/ -> cur/ with S. Flagging: S -> FS.
  // Marking unread: S dropped, the file stays in cur/.
  const LocalFile& opened = unread[0];
  const LocalFile& flagged = read[0];
  const LocalFile& unseen = read[1];
  fs::rename(opened.path, root_ + "/INBOX/cur/" + opened.name.substr(0, opened.name.find(":2,")) +
                              ":2," + opened.flags.value_or("") + "S");
  ASSERT_EQ(flagged.flags.value_or("").find('F'), std::string::npos);
  std::string flags = flagged.flags.value_or("") + "F";
  std::sort(flags.begin(), flags.end());
  fs::rename(flagged.path, flagged.path.substr(0, flagged.path.find(":2,")) + ":2," + flags);
  std::string without_seen = unseen.flags.value_or("");
  without_seen.erase(without_seen.find('S'), 1);
  fs::rename(unseen.path, unseen.path.substr(0, unseen.path.find(":2,")) + ":2," + without_seen);

  CommandResult pushed = Sync("-vvv");
  ASSERT_EQ(pushed.exit_code, 0) << Report(pushed);
  EXPECT_NE(pushed.err.find(" UID STORE "), std::string::npos) << Report(pushed);
  const std::vector<ServerMessage> server = Server();
  const ServerMessage* opened_now = Find(server, "INBOX", *opened.uid);
  const ServerMessage* flagged_now = Find(server, "INBOX", *flagged.uid);
  const ServerMessage* unseen_now = Find(server, "INBOX", *unseen.uid);
  ASSERT_TRUE(opened_now && flagged_now && unseen_now);
  EXPECT_NE(Letters(*opened_now).find('S'), std::string::npos);
  EXPECT_EQ(Letters(*flagged_now), flags);
  EXPECT_EQ(Letters(*unseen_now), without_seen);
  std::vector<std::string> problems = MirrorProblems();
  EXPECT_TRUE(problems.empty()) << Join(problems);

  // Nothing left to do: no STORE, no download.
  const size_t mark = LogSize(*server_);
  CommandResult again = Sync("-vvv");
  ASSERT_EQ(again.exit_code, 0) << Report(again);
  EXPECT_EQ(again.err.find(" UID STORE "), std::string::npos) << Report(again);
  EXPECT_EQ(FetchesSince(*server_, mark, "alice").body_count, 0);
}

// A folder whose cur/ and new/ have not changed since the Maildir last
// matched the index is not even listed; any rename in it is still seen.
TEST_P(TwoWaySyncTest, UnchangedMaildirFoldersAreNotListed) {
  ASSERT_NO_FATAL_FAILURE(StartServer(30));
  CommandResult first = Sync();
  ASSERT_EQ(first.exit_code, 0) << Report(first);
  // Directory times younger than two seconds are not trusted.
  std::this_thread::sleep_for(std::chrono::milliseconds(2100));
  CommandResult stamping = Sync("-vv");
  ASSERT_EQ(stamping.exit_code, 0) << Report(stamping);
  CommandResult quiet = Sync("-vv");
  ASSERT_EQ(quiet.exit_code, 0) << Report(quiet);
  EXPECT_NE(quiet.err.find("listed 0 Maildir folder(s); 6 unchanged"), std::string::npos)
      << Report(quiet);

  const LocalFile file = Files("INBOX")[0];
  ASSERT_EQ(file.flags, "S");
  fs::rename(file.path, file.path.substr(0, file.path.find(":2,")) + ":2,FS");
  CommandResult pushed = Sync("-vv");
  ASSERT_EQ(pushed.exit_code, 0) << Report(pushed);
  EXPECT_NE(pushed.err.find("listed 1 Maildir folder(s); 5 unchanged"), std::string::npos)
      << Report(pushed);
  const std::vector<ServerMessage> server = Server();
  const ServerMessage* flagged = Find(server, "INBOX", *file.uid);
  ASSERT_NE(flagged, nullptr);
  EXPECT_EQ(Letters(*flagged), "FS");
}

TEST_P(TwoWaySyncTest, DeletedFilesExpungeExactlyThoseUids) {
  ASSERT_NO_FATAL_FAILURE(StartServer(100));
  CommandResult first = Sync();
  ASSERT_EQ(first.exit_code, 0) << Report(first);
  std::vector<LocalFile> files = Files("INBOX");
  ASSERT_GE(files.size(), 5u);
  std::set<uint32_t> deleted;
  for (size_t i = 0; i < 3; ++i) {
    fs::remove(files[i].path);
    deleted.insert(*files[i].uid);
  }
  // Another client marked a message \Deleted without expunging it: that is
  // its business, and it must stay.
  const uint32_t others = *files[4].uid;
  Doveadm("flags add '\\Deleted' mailbox INBOX uid " + std::to_string(others));

  CommandResult pushed = Sync("-vvv");
  ASSERT_EQ(pushed.exit_code, 0) << Report(pushed);
  EXPECT_NE(pushed.err.find(" UID EXPUNGE "), std::string::npos) << Report(pushed);
  // Never a bare EXPUNGE, which would remove other clients' \Deleted mail.
  EXPECT_FALSE(std::regex_search(pushed.err, std::regex("C: A[0-9]+ EXPUNGE"))) << Report(pushed);
  const std::vector<ServerMessage> server = Server();
  for (uint32_t uid : deleted) EXPECT_EQ(Find(server, "INBOX", uid), nullptr) << uid;
  const ServerMessage* kept = Find(server, "INBOX", others);
  ASSERT_NE(kept, nullptr) << "another client's \\Deleted message was expunged";
  EXPECT_NE(Letters(*kept).find('T'), std::string::npos);
  EXPECT_EQ(server.size() + 3, static_cast<size_t>(100 + testing::kBulkSpecialMessages));
  std::vector<std::string> problems = MirrorProblems();
  EXPECT_TRUE(problems.empty()) << Join(problems);
}

TEST_P(TwoWaySyncTest, NewLocalFilesAreUploadedOnce) {
  ASSERT_NO_FATAL_FAILURE(StartServer(100));
  CommandResult first = Sync();
  ASSERT_EQ(first.exit_code, 0) << Report(first);
  WriteFile(root_ + "/INBOX/cur/draft-one:2,S", LocalMessage("one", "read, in cur"));
  WriteFile(root_ + "/Archive/new/draft-two", LocalMessage("two", "unread, in new"));
  for (int run = 0; run < 3; ++run) {
    CommandResult result = Sync();
    ASSERT_EQ(result.exit_code, 0) << "run " << run << "\n" << Report(result);
    std::vector<ServerMessage> one = ServerWith("<one@local.test>");
    std::vector<ServerMessage> two = ServerWith("<two@local.test>");
    ASSERT_EQ(one.size(), 1u) << "run " << run;
    ASSERT_EQ(two.size(), 1u) << "run " << run;
    EXPECT_EQ(one[0].folder, "INBOX");
    EXPECT_EQ(Letters(one[0]), "S");
    EXPECT_EQ(two[0].folder, "Archive");
    EXPECT_EQ(Letters(two[0]), "");
    EXPECT_EQ(ReadFile(one[0].file), LocalMessage("one", "read, in cur"));
    std::vector<std::string> problems = MirrorProblems();
    EXPECT_TRUE(problems.empty()) << "run " << run << "\n" << Join(problems);
  }
}

// Office 365 refuses messages above its size limit: such a file is kept
// here and reported, never sent, and the others are uploaded.
TEST_P(TwoWaySyncTest, MessagesAboveMaxUploadSizeStayLocal) {
  ASSERT_NO_FATAL_FAILURE(StartServer(20, "max_upload_size = 0.002\n"));  // 2,000 bytes
  CommandResult first = Sync();
  ASSERT_EQ(first.exit_code, 0) << Report(first);
  WriteFile(root_ + "/INBOX/cur/small:2,S", LocalMessage("small", "fits"));
  WriteFile(root_ + "/INBOX/cur/big:2,S", LocalMessage("big", std::string(3000, 'x')));
  for (int run = 0; run < 2; ++run) {
    CommandResult result = Sync();
    ASSERT_EQ(result.exit_code, 0) << "run " << run << "\n" << Report(result);
    EXPECT_NE(result.out.find("1 local file not uploaded (kept here)"), std::string::npos)
        << Report(result);
    // Reported once: the next run leaves the unchanged file alone quietly.
    if (run == 0) {
      EXPECT_NE(result.err.find("cur/big:2,S: "), std::string::npos) << Report(result);
      EXPECT_NE(result.err.find("larger than the upload limit"), std::string::npos);
    } else {
      EXPECT_EQ(result.err.find("big:2,S"), std::string::npos) << Report(result);
    }
    EXPECT_EQ(ServerWith("<small@local.test>").size(), 1u);
    EXPECT_TRUE(ServerWith("<big@local.test>").empty());
    EXPECT_TRUE(fs::exists(root_ + "/INBOX/cur/big:2,S"));
  }
}

TEST_P(TwoWaySyncTest, LocalMoveBecomesServerMove) {
  ASSERT_NO_FATAL_FAILURE(StartServer(100));
  CommandResult first = Sync();
  ASSERT_EQ(first.exit_code, 0) << Report(first);
  const LocalFile moved = Files("INBOX")[0];
  const std::string content = ReadFile(moved.path);
  fs::rename(moved.path, root_ + "/Archive/cur/" + moved.name);

  const size_t mark = LogSize(*server_);
  CommandResult result = Sync("-vvv");
  ASSERT_EQ(result.exit_code, 0) << Report(result);
  EXPECT_NE(result.err.find(" UID MOVE " + std::to_string(*moved.uid) + " Archive"),
            std::string::npos)
      << Report(result);
  EXPECT_EQ(result.err.find(" APPEND "), std::string::npos) << Report(result);
  EXPECT_EQ(FetchesSince(*server_, mark, "alice").body_count, 0);
  const std::vector<ServerMessage> server = Server();
  EXPECT_EQ(Find(server, "INBOX", *moved.uid), nullptr);
  int copies = 0;
  for (const ServerMessage& message : server) copies += ReadFile(message.file) == content ? 1 : 0;
  EXPECT_EQ(copies, 1);
  std::vector<std::string> problems = MirrorProblems();
  EXPECT_TRUE(problems.empty()) << Join(problems);

  const size_t again_mark = LogSize(*server_);
  CommandResult again = Sync();
  ASSERT_EQ(again.exit_code, 0) << Report(again);
  EXPECT_EQ(FetchesSince(*server_, again_mark, "alice").body_count, 0);
  problems = MirrorProblems();
  EXPECT_TRUE(problems.empty()) << Join(problems);
}

TEST_P(TwoWaySyncTest, FlagChangesOnBothSidesMerge) {
  ASSERT_NO_FATAL_FAILURE(StartServer(100));
  CommandResult first = Sync();
  ASSERT_EQ(first.exit_code, 0) << Report(first);
  std::vector<LocalFile> files;
  for (const LocalFile& file : Files("INBOX")) {
    if (file.flags == "S") files.push_back(file);
  }
  ASSERT_GE(files.size(), 2u);
  const LocalFile& a = files[0];
  const LocalFile& b = files[1];
  // a: flagged here, answered there. b: marked unread here, flagged there.
  fs::rename(a.path, a.path.substr(0, a.path.find(":2,")) + ":2,FS");
  Doveadm("flags add '\\Answered' mailbox INBOX uid " + std::to_string(*a.uid));
  fs::rename(b.path, b.path.substr(0, b.path.find(":2,")) + ":2,");
  Doveadm("flags add '\\Flagged' mailbox INBOX uid " + std::to_string(*b.uid));

  CommandResult result = Sync();
  ASSERT_EQ(result.exit_code, 0) << Report(result);
  EXPECT_NE(result.out.find("conflicts merged"), std::string::npos) << Report(result);
  const std::vector<ServerMessage> server = Server();
  ASSERT_TRUE(Find(server, "INBOX", *a.uid) && Find(server, "INBOX", *b.uid));
  EXPECT_EQ(Letters(*Find(server, "INBOX", *a.uid)), "FRS");
  EXPECT_EQ(Letters(*Find(server, "INBOX", *b.uid)), "F");
  std::vector<std::string> problems = MirrorProblems();
  EXPECT_TRUE(problems.empty()) << Join(problems);
}

TEST_P(TwoWaySyncTest, RemovedLocalFolderStopsThatFolderOnly) {
  ASSERT_NO_FATAL_FAILURE(StartServer(100));
  CommandResult first = Sync();
  ASSERT_EQ(first.exit_code, 0) << Report(first);
  const int archived = server_->Count("alice", "Archive/2023");
  ASSERT_GT(archived, 20);
  fs::remove_all(root_ + "/Archive/2023");
  WriteFile(root_ + "/INBOX/cur/draft-three:2,S", LocalMessage("three", "still uploaded"));

  CommandResult stopped = Sync();
  EXPECT_EQ(stopped.exit_code, 78) << Report(stopped);
  EXPECT_NE(stopped.err.find("--allow-mass-delete"), std::string::npos) << Report(stopped);
  EXPECT_NE(stopped.err.find("Archive/2023"), std::string::npos) << Report(stopped);
  EXPECT_EQ(server_->Count("alice", "Archive/2023"), archived);
  EXPECT_EQ(ServerWith("<three@local.test>").size(), 1u) << "other folders go on";
  EXPECT_FALSE(fs::exists(root_ + "/Archive/2023/cur")) << "the folder was recreated empty";

  CommandResult confirmed = Sync("", "--allow-mass-delete");
  EXPECT_EQ(confirmed.exit_code, 0) << Report(confirmed);
  EXPECT_EQ(server_->Count("alice", "Archive/2023"), 0);
}

TEST_P(TwoWaySyncTest, EmptiedFolderOnEitherSideTripsTheValve) {
  ASSERT_NO_FATAL_FAILURE(StartServer(100));
  CommandResult first = Sync();
  ASSERT_EQ(first.exit_code, 0) << Report(first);
  // Most of INBOX deleted locally.
  std::vector<LocalFile> inbox = Files("INBOX");
  std::vector<LocalFile> unread = Files("INBOX", "new");
  inbox.insert(inbox.end(), unread.begin(), unread.end());
  const int before = server_->Count("alice", "INBOX");
  ASSERT_GT(before, 40);
  for (size_t i = 0; i < inbox.size() * 3 / 4; ++i) fs::remove(inbox[i].path);
  // Archive/2023 emptied on the server.
  const size_t archived = Files("Archive/2023").size() + Files("Archive/2023", "new").size();
  ASSERT_GT(archived, 20u);
  Doveadm("expunge mailbox Archive/2023 all");

  CommandResult stopped = Sync();
  EXPECT_EQ(stopped.exit_code, 78) << Report(stopped);
  EXPECT_NE(stopped.err.find("max_delete_fraction"), std::string::npos) << Report(stopped);
  EXPECT_EQ(server_->Count("alice", "INBOX"), before);
  EXPECT_EQ(Files("Archive/2023").size() + Files("Archive/2023", "new").size(), archived);
}

TEST_P(TwoWaySyncTest, MissingMaildirRootIsAnError) {
  const std::string state = "/tmp/mm-two-way-state-" + std::to_string(getpid());
  fs::remove_all(state);
  ASSERT_NO_FATAL_FAILURE(StartServer(30, "", state));
  CommandResult first = Sync();
  ASSERT_EQ(first.exit_code, 0) << Report(first);
  const std::vector<ServerMessage> before = Server();
  fs::rename(root_, root_ + ".unmounted");

  CommandResult result = Sync();
  EXPECT_EQ(result.exit_code, 78) << Report(result);
  EXPECT_NE(result.err.find("is missing"), std::string::npos) << Report(result);
  EXPECT_FALSE(fs::exists(root_));
  EXPECT_EQ(Server().size(), before.size());
  fs::remove_all(state);
}

TEST_P(TwoWaySyncTest, DryRunChangesNothing) {
  ASSERT_NO_FATAL_FAILURE(StartServer(100));
  CommandResult first = Sync();
  ASSERT_EQ(first.exit_code, 0) << Report(first);
  std::vector<LocalFile> files = Files("INBOX");
  fs::remove(files[0].path);
  fs::rename(files[1].path, files[1].path.substr(0, files[1].path.find(":2,")) + ":2,FS");
  WriteFile(root_ + "/INBOX/cur/draft-four:2,S", LocalMessage("four", "not uploaded"));
  Doveadm("flags add '\\Answered' mailbox INBOX uid " + std::to_string(*files[2].uid));
  ASSERT_TRUE(server_->AddMessage("alice", "INBOX", LocalMessage("five", "new on server"), false));
  const std::vector<ServerMessage> server_before = Server();
  const LocalTree local_before = ScanLocal(root_);

  CommandResult dry = Sync("", "--dry-run");
  ASSERT_EQ(dry.exit_code, 0) << Report(dry);
  EXPECT_NE(dry.out.find("INBOX: 1 message to download, 1 message to upload, 1 local flag change, "
                         "1 server flag change, 1 server expunge (dry run)"),
            std::string::npos)
      << Report(dry);
  EXPECT_NE(dry.out.find("dry run: nothing was changed"), std::string::npos) << Report(dry);
  const std::vector<ServerMessage> server_after = Server();
  ASSERT_EQ(server_after.size(), server_before.size());
  for (size_t i = 0; i < server_after.size(); ++i) {
    EXPECT_EQ(server_after[i].uid, server_before[i].uid);
    EXPECT_EQ(server_after[i].flags, server_before[i].flags);
  }
  const LocalTree local_after = ScanLocal(root_);
  ASSERT_EQ(local_after.files.size(), local_before.files.size());
  for (size_t i = 0; i < local_after.files.size(); ++i) {
    EXPECT_EQ(local_after.files[i].path, local_before.files[i].path);
  }
}

// expunge = "none": a file deleted here only marks the server's copy
// \Deleted, and a message expunged there keeps its file here, which is
// never taken for a new message and uploaded again.
TEST_P(TwoWaySyncTest, ExpungeNoneMarksAndKeeps) {
  ASSERT_NO_FATAL_FAILURE(StartServer(30, "expunge = \"none\"\n"));
  CommandResult first = Sync();
  ASSERT_EQ(first.exit_code, 0) << Report(first);
  std::vector<LocalFile> files = Files("INBOX");
  ASSERT_GE(files.size(), 2u);
  const LocalFile deleted_here = files[0];
  const LocalFile expunged_there = files[1];
  fs::remove(deleted_here.path);
  Doveadm("expunge mailbox INBOX uid " + std::to_string(*expunged_there.uid));
  const size_t before = Server().size();

  for (int run = 0; run < 2; ++run) {
    CommandResult result = Sync("-vvv");
    ASSERT_EQ(result.exit_code, 0) << Report(result);
    EXPECT_EQ(result.err.find(" APPEND "), std::string::npos) << "run " << run;
    EXPECT_EQ(result.err.find(" UID EXPUNGE "), std::string::npos) << "run " << run;
    const std::vector<ServerMessage> server = Server();
    EXPECT_EQ(server.size(), before) << "run " << run;
    const ServerMessage* marked = Find(server, "INBOX", *deleted_here.uid);
    ASSERT_NE(marked, nullptr);
    EXPECT_NE(Letters(*marked).find('T'), std::string::npos);
    EXPECT_TRUE(fs::exists(expunged_there.path)) << "run " << run;
    EXPECT_FALSE(fs::exists(deleted_here.path)) << "run " << run;
  }
}

// The same message new on both sides (or uploaded by a run killed before
// it renamed the file, which looks the same) is one message: linked, not
// uploaded or downloaded again. Both ways, and with direction = push.
TEST_P(TwoWaySyncTest, SameNewMessageOnBothSidesIsOneMessage) {
  for (const char* direction : {"both", "push"}) {
    SCOPED_TRACE(direction);
    ASSERT_NO_FATAL_FAILURE(StartServer(30, std::string("direction = \"") + direction + "\"\n"));
    CommandResult first = Sync();
    ASSERT_EQ(first.exit_code, 0) << Report(first);
    const std::string id = std::string("twin-") + direction;
    const std::string message = LocalMessage(id, "written on both sides");
    WriteFile(root_ + "/INBOX/cur/twin:2,S", message);
    ASSERT_TRUE(server_->AddMessage("alice", "INBOX", message, true));
    const std::vector<ServerMessage> on_server = ServerWith("<" + id + "@local.test>");
    ASSERT_EQ(on_server.size(), 1u);

    CommandResult result = Sync("-vvv");
    ASSERT_EQ(result.exit_code, 0) << Report(result);
    EXPECT_EQ(result.err.find(" APPEND "), std::string::npos) << Report(result);
    EXPECT_EQ(ServerWith("<" + id + "@local.test>").size(), 1u);
    int copies = 0;
    for (const LocalFile& file : ScanLocal(root_).files) {
      if (file.stem != "twin") continue;
      ++copies;
      EXPECT_EQ(file.uid, on_server[0].uid) << file.path;
    }
    EXPECT_EQ(copies, 1);
    server_.reset();
  }
}

TEST_P(TwoWaySyncTest, PullOnlyLeavesTheServerAlone) {
  ASSERT_NO_FATAL_FAILURE(StartServer(30, "direction = \"pull\"\n"));
  CommandResult first = Sync();
  ASSERT_EQ(first.exit_code, 0) << Report(first);
  std::vector<LocalFile> files = Files("INBOX");
  fs::remove(files[0].path);
  WriteFile(root_ + "/INBOX/cur/draft-six:2,S", LocalMessage("six", "kept local"));
  const size_t before = Server().size();
  CommandResult result = Sync("-vvv");
  ASSERT_EQ(result.exit_code, 0) << Report(result);
  EXPECT_EQ(result.err.find(" APPEND "), std::string::npos);
  EXPECT_EQ(result.err.find(" UID STORE "), std::string::npos);
  EXPECT_EQ(Server().size(), before);
}

// The Message-ID of a stored message, without the angle brackets. (Not
// std::regex: its recursion overflows the stack on a 100,000-byte line.)
std::string MessageIdOf(const std::string& path) {
  const std::string text = ReadFile(path);
  for (const char* header : {"\nMessage-ID: <", "\nMessage-Id: <"}) {
    size_t start = text.find(header);
    if (start == std::string::npos) continue;
    start += std::string(header).size();
    size_t end = text.find('>', start);
    if (end != std::string::npos) return text.substr(start, end - start);
  }
  return "";
}

// A real reader: notmuch with maildir.synchronize_flags renames the files
// when tags change, and reads the flags mailmirror writes back as tags.
TEST_P(TwoWaySyncTest, NotmuchTagChangesReachTheServerAndBack) {
  ASSERT_NO_FATAL_FAILURE(StartServer(30));
  ASSERT_EQ(RunCommand("command -v notmuch").exit_code, 0)
      << "notmuch is not installed (apt-get install notmuch)";
  CommandResult first = Sync();
  ASSERT_EQ(first.exit_code, 0) << Report(first);
  const std::string config = dir_ + "/notmuch-config";
  testing::WriteNotmuchConfig(config, dir_ + "/notmuch", root_, /*synchronize_flags=*/true);
  const std::string notmuch = "NOTMUCH_CONFIG=" + ShellQuote(config) + " notmuch ";
  CommandResult indexed = RunCommand(notmuch + "new --quiet");
  ASSERT_EQ(indexed.exit_code, 0) << Report(indexed);

  const LocalFile unread = Files("INBOX", "new")[0];
  const std::string id = MessageIdOf(unread.path);
  ASSERT_FALSE(id.empty()) << unread.path;
  CommandResult tagged = RunCommand(notmuch + "tag +flagged -unread " + ShellQuote("id:" + id));
  ASSERT_EQ(tagged.exit_code, 0) << Report(tagged);
  ASSERT_FALSE(fs::exists(unread.path)) << "notmuch did not rename the file";

  CommandResult pushed = Sync();
  ASSERT_EQ(pushed.exit_code, 0) << Report(pushed);
  const std::vector<ServerMessage> server = Server();
  const ServerMessage* on_server = Find(server, "INBOX", *unread.uid);
  ASSERT_NE(on_server, nullptr);
  EXPECT_EQ(Letters(*on_server), "FS");

  // Another client answers it: notmuch sees the new flag as a tag.
  Doveadm("flags add '\\Answered' mailbox INBOX uid " + std::to_string(*unread.uid));
  CommandResult pulled = Sync();
  ASSERT_EQ(pulled.exit_code, 0) << Report(pulled);
  ASSERT_EQ(RunCommand(notmuch + "new --quiet").exit_code, 0);
  CommandResult replied =
      RunCommand(notmuch + "count " + ShellQuote("id:" + id + " and tag:replied and tag:flagged"));
  EXPECT_EQ(replied.out, "1\n") << Report(replied);
  std::vector<std::string> problems = MirrorProblems();
  EXPECT_TRUE(problems.empty()) << Join(problems);
}

TEST_P(TwoWaySyncTest, FolderMadeLocallyIsCreatedOnTheServer) {
  ASSERT_NO_FATAL_FAILURE(StartServer(30));
  CommandResult first = Sync();
  ASSERT_EQ(first.exit_code, 0) << Report(first);
  for (const char* sub : {"cur", "new", "tmp"}) {
    fs::create_directories(root_ + "/Projects/2024/" + sub);
  }
  WriteFile(root_ + "/Projects/2024/cur/plan:2,S", LocalMessage("plan", "in a new folder"));
  // A file moved there from INBOX: a server MOVE into the new folder.
  const LocalFile moved = Files("INBOX")[0];
  fs::rename(moved.path, root_ + "/Projects/2024/cur/" + moved.name);

  CommandResult result = Sync("-vvv");
  ASSERT_EQ(result.exit_code, 0) << Report(result);
  EXPECT_NE(result.err.find(" CREATE Projects/2024"), std::string::npos) << Report(result);
  EXPECT_NE(result.out.find("1 folder created on the server"), std::string::npos) << Report(result);
  EXPECT_EQ(server_->Count("alice", "Projects/2024"), 2);
  std::vector<ServerMessage> plan = ServerWith("<plan@local.test>");
  ASSERT_EQ(plan.size(), 1u);
  EXPECT_EQ(plan[0].folder, "Projects/2024");
  const std::vector<ServerMessage> server = Server();
  EXPECT_EQ(Find(server, "INBOX", *moved.uid), nullptr);
  std::vector<std::string> problems = MirrorProblems();
  EXPECT_TRUE(problems.empty()) << Join(problems);
  CommandResult again = Sync();
  ASSERT_EQ(again.exit_code, 0) << Report(again);
  EXPECT_EQ(server_->Count("alice", "Projects/2024"), 2);
}

TEST_P(TwoWaySyncTest, CreateNoneLeavesLocalFoldersLocal) {
  ASSERT_NO_FATAL_FAILURE(StartServer(30, "create = \"none\"\n"));
  for (const char* sub : {"cur", "new", "tmp"}) fs::create_directories(root_ + "/Private/" + sub);
  WriteFile(root_ + "/Private/cur/note:2,S", LocalMessage("note", "stays here"));
  CommandResult result = Sync();
  ASSERT_EQ(result.exit_code, 0) << Report(result);
  EXPECT_EQ(Doveadm("mailbox list").find("Private"), std::string::npos);
  EXPECT_TRUE(fs::exists(root_ + "/Private/cur/note:2,S"));
  // Server folders are not created here either.
  EXPECT_FALSE(fs::exists(root_ + "/INBOX"));
}

// kill -9 at many points of a run that uploads, stores flags and expunges;
// then a run to the end: every new file is on the server exactly once,
// every deletion and flag change arrived, and the two sides mirror each
// other.
TEST_P(TwoWaySyncTest, KilledDuringPushConverges) {
  ASSERT_NO_FATAL_FAILURE(StartServer(100));
  CommandResult first = Sync();
  ASSERT_EQ(first.exit_code, 0) << Report(first);
  constexpr int kNew = 120;
  for (int i = 0; i < kNew; ++i) {
    const std::string folder = i % 2 == 0 ? "INBOX" : "Sent Items";
    WriteFile(root_ + "/" + folder + "/cur/kill-" + std::to_string(i) + ":2,S",
              LocalMessage("kill-" + std::to_string(i), "upload " + std::to_string(i)));
  }
  std::vector<LocalFile> inbox = Files("INBOX");
  ASSERT_GE(inbox.size(), 16u);
  std::set<uint32_t> deleted;
  std::map<uint32_t, std::string> flagged;
  for (size_t i = 0; i < 6; ++i) {
    fs::remove(inbox[i].path);
    deleted.insert(*inbox[i].uid);
  }
  for (size_t i = 6; i < 16; ++i) {
    std::string flags = inbox[i].flags.value_or("");
    if (flags.find('F') == std::string::npos) flags += "F";
    std::sort(flags.begin(), flags.end());
    fs::rename(inbox[i].path, inbox[i].path.substr(0, inbox[i].path.find(":2,")) + ":2," + flags);
    flagged[*inbox[i].uid] = flags;
  }

  int killed = 0;
  for (int attempt = 0; attempt < 12; ++attempt) {
    const std::string out = dir_ + "/kill.out";
    const std::string err = dir_ + "/kill.err";
    Child child(SyncCommand(config_), out, err);
    ASSERT_TRUE(child.started());
    std::this_thread::sleep_for(milliseconds(30 + attempt * 25));
    if (child.Exited()) break;  // finished by itself
    child.Kill();
    (void)child.Wait(std::chrono::seconds(10));
    ++killed;
  }
  CommandResult last = Sync();
  ASSERT_EQ(last.exit_code, 0) << Report(last) << "\nafter " << killed << " kills";

  const std::vector<ServerMessage> server = Server();
  std::vector<std::string> contents;
  for (const ServerMessage& message : server) contents.push_back(ReadFile(message.file));
  for (int i = 0; i < kNew; ++i) {
    const std::string id = "<kill-" + std::to_string(i) + "@local.test>";
    int copies = 0;
    for (const std::string& content : contents) {
      copies += content.find(id) != std::string::npos ? 1 : 0;
    }
    EXPECT_EQ(copies, 1) << id << " after " << killed << " kills";
  }
  for (uint32_t uid : deleted) EXPECT_EQ(Find(server, "INBOX", uid), nullptr) << uid;
  for (const auto& [uid, flags] : flagged) {
    const ServerMessage* message = Find(server, "INBOX", uid);
    ASSERT_NE(message, nullptr) << uid;
    EXPECT_EQ(Letters(*message), flags) << uid;
  }
  std::vector<std::string> problems = MirrorProblems();
  EXPECT_TRUE(problems.empty()) << Join(problems) << "\nafter " << killed << " kills";
}

INSTANTIATE_TEST_SUITE_P(Servers, TwoWaySyncTest, ::testing::ValuesIn(kCapabilitySets),
                         [](const ::testing::TestParamInfo<CapabilitySet>& param) {
                           return std::string(param.param.name);
                         });

}  // namespace
}  // namespace mailmirror
