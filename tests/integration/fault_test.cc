// Network faults between mailmirror and a real Dovecot (issue 7): a
// FaultProxy on 127.0.0.1 cuts connections mid-handshake and mid-literal
// (FIN and RST), stalls them, and rewrites the server's replies into
// throttling answers (Office 365's "Request is throttled. Suggested
// Backoff Time", Gmail's [THROTTLED], a throttling BYE). A run must ride
// over what `retries` allows, give up with the right exit code beyond it,
// and in every case leave the Maildir an exact mirror after the next run:
// nothing lost, nothing twice.
//
// The same proxy turns Dovecot into a hostile or broken server: literals
// announced larger than sent or absurdly large, an endless line, deep
// nesting, an invalid modified UTF-7 folder name, UID 0, a UID twice or
// one never asked for, a reply to an unknown tag, BYE in mid-download.
// Each must end in a clear error for that folder (or nothing at all), with
// nothing stored under a wrong UID.
#include <gtest/gtest.h>

#include <chrono>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "support/dovecot_fixture.h"
#include "support/fault_proxy.h"
#include "support/oauth_stub.h"
#include "support/run_command.h"
#include "support/sync_checks.h"

namespace mailmirror {
namespace {

namespace fs = std::filesystem;
using testing::Child;
using testing::CommandResult;
using testing::DovecotServer;
using testing::FaultPlan;
using testing::FaultProxy;
using testing::FetchesSince;
using testing::Join;
using testing::LogSize;
using testing::Report;
using testing::RunCommand;
using testing::RunOptions;
using testing::ServerMessage;
using testing::SyncCommand;

constexpr int kMessages = 300;

FaultPlan CutDown(uint64_t bytes, bool reset = false) {
  FaultPlan plan;
  plan.cut_down_after = bytes;
  plan.reset = reset;
  return plan;
}

FaultPlan CutUp(uint64_t bytes) {
  FaultPlan plan;
  plan.cut_up_after = bytes;
  return plan;
}

FaultPlan Stall(uint64_t bytes) {
  FaultPlan plan;
  plan.stall_down_after = bytes;
  return plan;
}

FaultPlan Rewrite(const std::string& find, const std::string& replacement) {
  FaultPlan plan;
  plan.rewrites = {{find, replacement}};
  return plan;
}

// The first server line containing `find` becomes `line` (CRLF added).
FaultPlan ReplaceLine(const std::string& find, const std::string& line) {
  FaultPlan plan = Rewrite(find, line);
  plan.rewrite_whole_lines = true;
  return plan;
}

class FaultTest : public ::testing::Test {
 protected:
  // A seeded server and a proxy to its implicit-TLS port (or, `plaintext`,
  // to its plain port, so that replies can be rewritten).
  void Start(bool plaintext, const std::string& extra_config = "") {
    server_ = DovecotServer::Start();
    ASSERT_NE(server_, nullptr);
    ASSERT_TRUE(server_->SeedBulk("alice", {.count = kMessages, .big_mb = 0}));
    proxy_ = std::make_unique<FaultProxy>(plaintext ? server_->imap_port() : server_->imaps_port());
    dir_ = server_->dir() + "/local";
    fs::create_directories(dir_);
    root_ = dir_ + "/mail";
    config_ = dir_ + "/config.toml";
    std::ofstream out(config_);
    out << "[accounts.test]\nhost = \"127.0.0.1\"\nport = " << proxy_->port() << "\n"
        << (plaintext ? "tls = \"none\"\n" : "ca_file = \"" + server_->ca_file() + "\"\n")
        << "user = \"alice\"\npassword = \"alice-secret\"\nmaildir = \"" << root_ << "\"\n"
        << "retry_delay = 0.05\n"
        << extra_config;
  }

  CommandResult Sync(const std::string& flags = "-v") {
    RunOptions options;
    options.timeout = std::chrono::seconds(90);
    return RunCommand(SyncCommand(config_, flags), options);
  }

  std::vector<std::string> MirrorProblems() {
    auto messages = server_->Messages("alice");
    EXPECT_TRUE(messages);
    return testing::MirrorProblems(messages ? *messages : std::vector<ServerMessage>{}, root_);
  }

  // The run completed and the Maildir mirrors the server.
  void ExpectMirror(const CommandResult& run) {
    EXPECT_EQ(run.exit_code, 0) << Report(run);
    std::vector<std::string> problems = MirrorProblems();
    EXPECT_TRUE(problems.empty()) << Join(problems);
  }

  std::unique_ptr<DovecotServer> server_;
  std::unique_ptr<FaultProxy> proxy_;
  std::string dir_;
  std::string root_;
  std::string config_;
};

TEST_F(FaultTest, ConnectionsCutMidDownloadResume) {
  ASSERT_NO_FATAL_FAILURE(Start(false));
  // The first session is cut in the middle of the download, and so is the
  // session that replaces it.
  proxy_->Plan(CutDown(60000));
  proxy_->Plan(CutDown(90000));
  const size_t log = LogSize(*server_);
  CommandResult run = Sync();
  ExpectMirror(run);
  EXPECT_EQ(proxy_->faults(), 2);
  EXPECT_NE(run.err.find("again in"), std::string::npos) << Report(run);
  // Resumed, not started over: what the cut sessions had stored stays.
  testing::FetchStats fetched = FetchesSince(*server_, log, "alice");
  EXPECT_LT(fetched.body_count, kMessages * 3 / 2 + 10) << fetched.body_count;
}

TEST_F(FaultTest, ResetMidLiteralResumes) {
  ASSERT_NO_FATAL_FAILURE(Start(false));
  proxy_->Plan(CutDown(45000, true));
  CommandResult run = Sync();
  ExpectMirror(run);
  EXPECT_EQ(proxy_->faults(), 1);
}

TEST_F(FaultTest, CutDuringTlsHandshakeIsRetried) {
  ASSERT_NO_FATAL_FAILURE(Start(false));
  proxy_->Plan(CutDown(600, true));  // inside the server's first flight
  proxy_->Plan(CutUp(100));          // inside the ClientHello
  CommandResult run = Sync();
  ExpectMirror(run);
  EXPECT_EQ(proxy_->faults(), 2);
}

TEST_F(FaultTest, StalledConnectionIsCutAfterTimeoutAndRetried) {
  ASSERT_NO_FATAL_FAILURE(Start(false, "timeout = 1\n"));
  proxy_->Plan(Stall(50000));
  CommandResult run = Sync();
  ExpectMirror(run);
  EXPECT_EQ(proxy_->faults(), 1);
  EXPECT_NE(run.err.find("no data from"), std::string::npos) << Report(run);
}

TEST_F(FaultTest, GivesUpAfterRetriesWithExit69AndTheNextRunCompletes) {
  ASSERT_NO_FATAL_FAILURE(Start(false, "retries = 2\n"));
  for (int i = 0; i < 3; ++i) proxy_->Plan(CutDown(300));
  CommandResult failed = Sync();
  EXPECT_EQ(failed.exit_code, 69) << Report(failed);
  EXPECT_NE(failed.err.find("gave up after 3 attempts"), std::string::npos) << Report(failed);
  EXPECT_EQ(proxy_->connections(), 3);
  ExpectMirror(Sync());
}

TEST_F(FaultTest, RetriesZeroFailsAtTheFirstCut) {
  ASSERT_NO_FATAL_FAILURE(Start(false, "retries = 0\n"));
  proxy_->Plan(CutDown(60000));
  CommandResult failed = Sync();
  EXPECT_EQ(failed.exit_code, 69) << Report(failed);
  EXPECT_EQ(failed.err.find("again in"), std::string::npos) << Report(failed);
  ExpectMirror(Sync());
}

TEST_F(FaultTest, ThrottledFetchWaitsAsAskedAndFinishes) {
  ASSERT_NO_FATAL_FAILURE(Start(true));
  proxy_->Plan(Rewrite("OK Fetch completed",
                       "NO [UNAVAILABLE] Request is throttled. Suggested Backoff Time: "
                       "300 milliseconds"));
  const auto start = std::chrono::steady_clock::now();
  CommandResult run = Sync();
  const double seconds = testing::Seconds(std::chrono::steady_clock::now() - start);
  ExpectMirror(run);
  EXPECT_EQ(proxy_->faults(), 1);
  EXPECT_NE(run.err.find("throttl"), std::string::npos) << Report(run);
  EXPECT_GE(seconds, 0.3);  // waited as asked (a lower bound, not a timing assertion)
}

TEST_F(FaultTest, ThrottlingByeReconnects) {
  ASSERT_NO_FATAL_FAILURE(Start(true));
  FaultPlan bye;
  bye.rewrites = {{"OK Fetch completed",
                   "* BYE [UNAVAILABLE] Request is throttled. Suggested Backoff Time: "
                   "200 milliseconds"}};
  bye.rewrite_whole_lines = true;
  bye.cut_after_rewrites = true;
  proxy_->Plan(bye);
  CommandResult run = Sync();
  ExpectMirror(run);
  EXPECT_EQ(proxy_->faults(), 1);
}

TEST_F(FaultTest, ThrottleLongerThanAllowedExits75WithATime) {
  ASSERT_NO_FATAL_FAILURE(Start(true, "max_retry_wait = 1\n"));
  proxy_->Plan(Rewrite("OK Fetch completed",
                       "NO [THROTTLED] Request is throttled. Suggested Backoff Time: "
                       "299961 milliseconds"));
  CommandResult run = Sync("");
  EXPECT_EQ(run.exit_code, 75) << Report(run);
  EXPECT_NE(run.err.find("try again after"), std::string::npos) << Report(run);
  ExpectMirror(Sync());
}

// The protocol trace (-vvv) masks the credentials of AUTHENTICATE PLAIN
// and of LOGIN (used when the greeting offers no AUTH=PLAIN).
TEST_F(FaultTest, ProtocolTraceNeverShowsThePassword) {
  ASSERT_NO_FATAL_FAILURE(Start(true));
  // base64("\0alice\0alice-secret"): the SASL PLAIN initial response.
  const std::string sasl = "AGFsaWNlAGFsaWNlLXNlY3JldA==";
  for (bool login_command : {false, true}) {
    if (login_command) proxy_->Plan(Rewrite("AUTH=PLAIN", "X-NO-PLAIN"));
    CommandResult run = Sync("-vvv");
    EXPECT_EQ(run.exit_code, 0) << Report(run);
    EXPECT_NE(run.err.find(login_command ? "LOGIN <secret>" : "AUTHENTICATE <secret>"),
              std::string::npos)
        << Report(run);
    for (const std::string& secret : {std::string("alice-secret"), sasl}) {
      EXPECT_EQ(run.err.find(secret), std::string::npos) << login_command;
      EXPECT_EQ(run.out.find(secret), std::string::npos) << login_command;
    }
  }
}

// --- Hostile and broken servers

// A run against the rewritten server fails that folder with exit 76 and
// `message`; nothing stored is wrong, and a clean run completes the mirror.
void ExpectFolderRefused(const CommandResult& run, const std::string& message) {
  EXPECT_EQ(run.exit_code, 76) << Report(run);
  EXPECT_NE(run.err.find(message), std::string::npos) << Report(run);
  EXPECT_NE(run.err.find("INBOX"), std::string::npos) << Report(run);
}

TEST_F(FaultTest, AbsurdLiteralSizeFailsTheFolder) {
  ASSERT_NO_FATAL_FAILURE(Start(true, "retries = 0\n"));
  proxy_->Plan(ReplaceLine("FETCH (UID 3 ", "* 3 FETCH (UID 3 BODY[] {18446744073709551615}"));
  CommandResult run = Sync();
  ExpectFolderRefused(run, "literal");
  EXPECT_NE(run.out.find("Archive/2023: 103 new messages"), std::string::npos) << Report(run);
  ExpectMirror(Sync());
}

TEST_F(FaultTest, LiteralAnnouncedLargerThanSentStallsAndIsRetried) {
  ASSERT_NO_FATAL_FAILURE(Start(true, "timeout = 1\n"));
  // The literal swallows the rest of the stream and waits for more.
  proxy_->Plan(ReplaceLine("FETCH (UID 3 ", "* 3 FETCH (UID 3 BODY[] {50000000}"));
  CommandResult run = Sync();
  ExpectMirror(run);
  EXPECT_NE(run.err.find("no data from"), std::string::npos) << Report(run);
}

TEST_F(FaultTest, EndlessLineFailsTheFolder) {
  ASSERT_NO_FATAL_FAILURE(Start(true, "retries = 0\n"));
  proxy_->Plan(
      Rewrite("* 3 FETCH (UID 3 ", "* 3 FETCH (UID 3 X-JUNK \"" + std::string(3 << 20, 'x')));
  CommandResult run = Sync();
  ExpectFolderRefused(run, "exceeds");
  ExpectMirror(Sync());
}

TEST_F(FaultTest, DeepNestingFailsTheFolder) {
  ASSERT_NO_FATAL_FAILURE(Start(true, "retries = 0\n"));
  proxy_->Plan(ReplaceLine("FETCH (UID 3 ", "* 3 FETCH (UID 3 X-JUNK " + std::string(5000, '(') +
                                                std::string(5000, ')') + ")"));
  CommandResult run = Sync();
  ExpectFolderRefused(run, "nest");
  ExpectMirror(Sync());
}

TEST_F(FaultTest, InvalidModifiedUtf7SkipsOnlyThatFolder) {
  ASSERT_NO_FATAL_FAILURE(Start(true));
  FaultPlan plan;
  plan.rewrites = {{"\"/\" Entw&APw-rfe\r\n", "\"/\" Entw&AP\xff-rfe\r\n"},
                   {"STATUS Entw&APw-rfe", "STATUS Entw&AP\xff-rfe"}};
  proxy_->Plan(plan);
  CommandResult run = Sync();
  EXPECT_EQ(run.exit_code, 0) << Report(run);
  EXPECT_NE(run.err.find("Entw&AP\\xff-rfe"), std::string::npos) << Report(run);
  EXPECT_NE(run.out.find("INBOX: 149 new messages"), std::string::npos) << Report(run);
  ExpectMirror(Sync());
}

TEST_F(FaultTest, UidZeroFailsTheFolder) {
  ASSERT_NO_FATAL_FAILURE(Start(true, "retries = 0\n"));
  proxy_->Plan(Rewrite("* 3 FETCH (UID 3 ", "* 3 FETCH (UID 0 "));
  ExpectFolderRefused(Sync(), "a message with UID 0");
  ExpectMirror(Sync());
}

TEST_F(FaultTest, DuplicateUidFailsTheFolder) {
  ASSERT_NO_FATAL_FAILURE(Start(true, "retries = 0\n"));
  proxy_->Plan(Rewrite("* 4 FETCH (UID 4 ", "* 4 FETCH (UID 3 "));
  ExpectFolderRefused(Sync(), "UID 3 twice");
  ExpectMirror(Sync());
}

TEST_F(FaultTest, UidNeverAskedForFailsTheFolder) {
  ASSERT_NO_FATAL_FAILURE(Start(true, "retries = 0\n"));
  proxy_->Plan(Rewrite("* 4 FETCH (UID 4 ", "* 4 FETCH (UID 99999 "));
  ExpectFolderRefused(Sync(), "UID 99999, which was not asked for");
  ExpectMirror(Sync());
}

TEST_F(FaultTest, UnsolicitedFetchIsIgnored) {
  ASSERT_NO_FATAL_FAILURE(Start(true, "retries = 0\n"));
  // A message pushed in answer to ENABLE, before any FETCH was sent: not
  // asked for, so nothing of it is stored.
  proxy_->Plan(Rewrite("* ENABLED",
                       "* 1 FETCH (UID 1 FLAGS (\\Seen) BODY[] {3}\r\nabc)\r\n"
                       "* ENABLED"));
  CommandResult run = Sync();
  ExpectMirror(run);
  EXPECT_EQ(proxy_->faults(), 1);
}

TEST_F(FaultTest, UnsolicitedLargeBodyFailsTheSession) {
  ASSERT_NO_FATAL_FAILURE(Start(true, "retries = 0\n"));
  const std::string body(3 << 20, 'b');
  proxy_->Plan(Rewrite("* ENABLED", "* 1 FETCH (UID 1 BODY[] {" + std::to_string(body.size()) +
                                        "}\r\n" + body + ")\r\n* ENABLED"));
  CommandResult run = Sync();
  EXPECT_EQ(run.exit_code, 76) << Report(run);
  ExpectMirror(Sync());
}

TEST_F(FaultTest, ReplyToAnUnknownTagIsIgnored) {
  ASSERT_NO_FATAL_FAILURE(Start(true, "retries = 0\n"));
  proxy_->Plan(Rewrite("* 3 FETCH (UID 3 ", "ZZ9 OK [ALERT] who asked?\r\n* 3 FETCH (UID 3 "));
  CommandResult run = Sync();
  ExpectMirror(run);
  EXPECT_EQ(proxy_->faults(), 1);
}

TEST_F(FaultTest, ByeInMidDownloadReconnectsAndFinishes) {
  ASSERT_NO_FATAL_FAILURE(Start(true));
  FaultPlan bye = ReplaceLine("* 60 FETCH (UID 60 ", "* BYE Server shutting down");
  bye.cut_after_rewrites = true;
  proxy_->Plan(bye);
  CommandResult run = Sync();
  ExpectMirror(run);
  EXPECT_NE(run.err.find("Server shutting down"), std::string::npos) << Report(run);
}

// A first sync killed mid-download leaves files (and maybe records) of
// messages that another client then expunges: the next run must delete
// them here too, and every later run must agree (issue 19).
TEST_F(FaultTest, KilledFirstSyncThenServerExpungesConverges) {
  ASSERT_NO_FATAL_FAILURE(Start(false, "connections = 1\n"));
  const int inbox = server_->Count("alice", "INBOX");
  // Slow enough that INBOX takes seconds: its first batch is made durable
  // (after a second) long before the folder completes, and the kill falls
  // in between.
  FaultPlan slow;
  slow.down_bytes_per_second = 30000;
  for (int i = 0; i < 4; ++i) proxy_->Plan(slow);
  std::vector<uint32_t> stored;
  {
    Child child(SyncCommand(config_), dir_ + "/kill.out", dir_ + "/kill.err");
    ASSERT_TRUE(child.started());
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while (stored.size() < 12 && std::chrono::steady_clock::now() < deadline && !child.Exited()) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
      stored.clear();
      for (const testing::LocalFile& file : testing::ScanLocal(root_).files) {
        if (file.folder == "INBOX" && file.uid) stored.push_back(*file.uid);
      }
    }
    child.Kill();
  }
  ASSERT_GE(stored.size(), 12u) << "the download did not get far enough to be killed in";
  ASSERT_LT(stored.size(), static_cast<size_t>(inbox)) << "INBOX was complete before the kill";
  std::string uids;
  // A quarter of them: below max_delete_fraction, which would stop the folder.
  for (size_t i = 0; i < stored.size(); i += 4) {
    uids += (uids.empty() ? "" : ",") + std::to_string(stored[i]);
  }
  CommandResult expunge =
      RunCommand(testing::DoveadmCommand(*server_, "alice", "expunge mailbox INBOX uid " + uids));
  ASSERT_EQ(expunge.exit_code, 0) << Report(expunge);
  proxy_->ClearPlans();

  ExpectMirror(Sync());
  // Every later run agrees, and so does verify --deep.
  ExpectMirror(Sync());
  RunOptions options;
  options.timeout = std::chrono::seconds(60);
  CommandResult verify = RunCommand(testing::ShellQuote(MAILMIRROR_BINARY) + " -c " +
                                        testing::ShellQuote(config_) + " verify --deep",
                                    options);
  EXPECT_EQ(verify.exit_code, 0) << Report(verify);
}

// A server that trickles (a byte a second) never looks silent to the idle
// timeout: the rate floor and the login deadline end the run in bounded
// time with a clear error, and the next run completes (issue 19).
TEST_F(FaultTest, TricklingGreetingIsCutInBoundedTime) {
  ASSERT_NO_FATAL_FAILURE(Start(true, "timeout = 2\nconnect_timeout = 2\nretries = 0\n"));
  FaultPlan trickle;
  trickle.down_bytes_per_second = 1;
  proxy_->Plan(trickle);
  CommandResult run = Sync();
  EXPECT_EQ(run.exit_code, 75) << Report(run);
  EXPECT_NE(run.err.find("min_rate"), std::string::npos) << Report(run);
  ExpectMirror(Sync());
}

TEST_F(FaultTest, TricklingBodyIsCutInBoundedTimeAndRetried) {
  ASSERT_NO_FATAL_FAILURE(Start(true, "timeout = 2\nretries = 1\nconnections = 1\n"));
  FaultPlan trickle;
  trickle.slow_down_after = 30000;  // past the login, into the download
  trickle.down_bytes_per_second = 1;
  proxy_->Plan(trickle);
  const auto started = std::chrono::steady_clock::now();
  CommandResult run = Sync();
  ExpectMirror(run);
  EXPECT_LT(std::chrono::steady_clock::now() - started, std::chrono::seconds(30));
  EXPECT_NE(run.err.find("min_rate"), std::string::npos) << Report(run);
}

// Credentials that take 3 s run off the loop: a password_cmd that sleeps
// (the account starts when a fast one finishes, max_accounts = 2) and a
// token renewal that sleeps (oauth_token_cmd run again after the server
// refused an expired token, in the middle of the session's reads). An
// account downloading meanwhile, with a 1 s timeout and no retries, neither
// stalls nor times out (issue 19).
TEST_F(FaultTest, SleepingCredentialCommandsDoNotStallOtherAccounts) {
  ASSERT_NO_FATAL_FAILURE(Start(false));
  FaultPlan slow;
  slow.down_bytes_per_second = 100000;  // several seconds of download
  for (int i = 0; i < 8; ++i) proxy_->Plan(slow);
  // Expired the first time, then good after 3 s.
  std::ofstream(dir_ + "/expired")
      << testing::MintAccessToken("alice", std::time(nullptr) - 60) << "\n";
  std::ofstream(dir_ + "/good") << testing::MintAccessToken("alice", std::time(nullptr) + 3600)
                                << "\n";
  const std::string token_cmd = "if [ -e " + dir_ + "/renewed ]; then sleep 3; cat " + dir_ +
                                "/good; else touch " + dir_ + "/renewed; cat " + dir_ +
                                "/expired; fi";
  auto account = [&](const std::string& name, int port, const std::string& extra) {
    return "[accounts." + name + "]\nhost = \"127.0.0.1\"\nport = " + std::to_string(port) +
           "\nca_file = \"" + server_->ca_file() + "\"\nuser = \"alice\"\nmaildir = \"" + dir_ +
           "/" + name + "\"\n" + extra;
  };
  {
    std::ofstream out(config_);
    out << "max_accounts = 3\n"
        << account("slow", proxy_->port(),
                   "password = \"alice-secret\"\ntimeout = 1\nretries = 0\nconnections = 1\n")
        << account("token", server_->imaps_port(),
                   "auth = \"xoauth2\"\noauth_token_cmd = \"" + token_cmd +
                       "\"\nfolders = [\"Empty\"]\n")
        << account("fast", server_->imaps_port(),
                   "password = \"alice-secret\"\nfolders = [\"Empty\"]\n")
        << account("sleepy", server_->imaps_port(),
                   "password_cmd = \"sleep 3; echo alice-secret\"\nfolders = [\"Empty\"]\n");
  }
  fs::permissions(config_, fs::perms::owner_read | fs::perms::owner_write);
  CommandResult run = Sync();
  EXPECT_EQ(run.exit_code, 0) << Report(run);
  EXPECT_EQ(run.err.find("no data from"), std::string::npos) << Report(run);
  EXPECT_TRUE(fs::exists(dir_ + "/renewed"));
  std::optional<std::vector<ServerMessage>> messages = server_->Messages("alice");
  ASSERT_TRUE(messages.has_value());
  std::vector<std::string> problems = testing::MirrorProblems(*messages, dir_ + "/slow");
  EXPECT_TRUE(problems.empty()) << Join(problems);
}

}  // namespace
}  // namespace mailmirror
