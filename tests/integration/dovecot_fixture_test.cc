// Checks the private Dovecot fixture itself, so that other integration tests
// can rely on it: ports, TLS, users, the seeded set, the capability options
// and a clean stop. Talks raw IMAP over a blocking loopback socket.
#include "support/dovecot_fixture.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <gtest/gtest-spi.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "support/run_command.h"

namespace mailmirror::testing {
namespace {

// A minimal IMAP client for these checks: one blocking socket to 127.0.0.1
// with a 5 s receive timeout, line-based (no literal support: the commands
// used here never get literals back).
class RawImap {
 public:
  RawImap() = default;
  ~RawImap() {
    if (fd_ >= 0) close(fd_);
  }
  RawImap(const RawImap&) = delete;
  RawImap& operator=(const RawImap&) = delete;

  // Connects and returns the greeting line, or nullopt.
  std::optional<std::string> Connect(int port) {
    fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd_ < 0) return std::nullopt;
    timeval timeout{5, 0};
    setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
    setsockopt(fd_, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof timeout);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = htons(static_cast<uint16_t>(port));
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd_, reinterpret_cast<const sockaddr*>(&address), sizeof address) != 0) {
      return std::nullopt;
    }
    return ReadLine();
  }

  // One line without its CRLF, or nullopt on timeout, EOF or error.
  std::optional<std::string> ReadLine() {
    for (;;) {
      const size_t end = buffer_.find("\r\n");
      if (end != std::string::npos) {
        std::string line = buffer_.substr(0, end);
        buffer_.erase(0, end + 2);
        return line;
      }
      char chunk[4096];
      const ssize_t n = recv(fd_, chunk, sizeof chunk, 0);
      if (n <= 0) return std::nullopt;
      buffer_.append(chunk, static_cast<size_t>(n));
    }
  }

  // Sends "<tag> <command>\r\n" and returns every line up to and including
  // the tagged completion; empty if the connection failed first.
  std::vector<std::string> Command(const std::string& command) {
    const std::string tag = "t" + std::to_string(++tag_counter_);
    const std::string line = tag + " " + command + "\r\n";
    if (send(fd_, line.data(), line.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(line.size())) {
      return {};
    }
    std::vector<std::string> lines;
    while (std::optional<std::string> response = ReadLine()) {
      lines.push_back(*response);
      if (response->rfind(tag + " ", 0) == 0) return lines;
    }
    return {};
  }

 private:
  int fd_ = -1;
  int tag_counter_ = 0;
  std::string buffer_;
};

// The tagged completion ("OK ...", "NO ...", "BAD ...") without the tag.
std::string Completion(const std::vector<std::string>& lines) {
  if (lines.empty()) return "(no response)";
  const std::string& last = lines.back();
  const size_t space = last.find(' ');
  return space == std::string::npos ? last : last.substr(space + 1);
}

bool StartsWith(const std::string& text, const std::string& prefix) {
  return text.rfind(prefix, 0) == 0;
}

std::string Quoted(const std::string& text) {
  std::string quoted = "\"";
  for (char c : text) {
    if (c == '"' || c == '\\') quoted += '\\';
    quoted += c;
  }
  return quoted + "\"";
}

std::string LoginCommand(const FixtureUser& user) {
  return "LOGIN " + Quoted(user.name) + " " + Quoted(user.password);
}

// The words of the "* CAPABILITY" line in `lines`.
std::set<std::string> Capabilities(const std::vector<std::string>& lines) {
  std::set<std::string> words;
  for (const auto& line : lines) {
    if (!StartsWith(line, "* CAPABILITY ")) continue;
    std::istringstream stream(line.substr(13));
    std::string word;
    while (stream >> word) words.insert(word);
  }
  return words;
}

// Logs in as alice and returns the post-login CAPABILITY list.
std::set<std::string> PostLoginCapabilities(const DovecotServer& server) {
  RawImap imap;
  if (!imap.Connect(server.imap_port())) return {};
  const auto login = imap.Command(LoginCommand(kAlice));
  EXPECT_TRUE(StartsWith(Completion(login), "OK")) << Completion(login);
  return Capabilities(imap.Command("CAPABILITY"));
}

// True if process `pid` exists and is not a zombie. (In some containers pid 1
// reaps orphans late, so exited daemons linger as zombies for a while.)
bool ProcessAlive(pid_t pid) {
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!std::getline(stat, line)) return false;
  const size_t paren = line.rfind(')');
  return paren != std::string::npos && paren + 2 < line.size() && line[paren + 2] != 'Z';
}

// Live (non-zombie) processes whose process group is `pgid`.
std::vector<pid_t> LiveGroupMembers(pid_t pgid) {
  std::vector<pid_t> members;
  DIR* proc = opendir("/proc");
  if (proc == nullptr) return members;
  while (dirent* entry = readdir(proc)) {
    char* end = nullptr;
    const long pid = std::strtol(entry->d_name, &end, 10);
    if (pid <= 0 || *end != '\0') continue;
    std::ifstream stat(std::string("/proc/") + entry->d_name + "/stat");
    std::string line;
    if (!std::getline(stat, line)) continue;
    const size_t paren = line.rfind(')');
    if (paren == std::string::npos) continue;
    std::istringstream fields(line.substr(paren + 2));
    char state = 0;
    long ppid = 0;
    long pgrp = 0;
    fields >> state >> ppid >> pgrp;
    if (pgrp == pgid && state != 'Z') members.push_back(static_cast<pid_t>(pid));
  }
  closedir(proc);
  return members;
}

// Live processes whose command line contains `text`.
std::vector<pid_t> ProcessesMentioning(const std::string& text) {
  std::vector<pid_t> found;
  DIR* proc = opendir("/proc");
  if (proc == nullptr) return found;
  while (dirent* entry = readdir(proc)) {
    char* end = nullptr;
    const long pid = std::strtol(entry->d_name, &end, 10);
    if (pid <= 0 || *end != '\0') continue;
    std::ifstream cmdline(std::string("/proc/") + entry->d_name + "/cmdline");
    const std::string args((std::istreambuf_iterator<char>(cmdline)),
                           std::istreambuf_iterator<char>());
    if (args.find(text) != std::string::npos && ProcessAlive(static_cast<pid_t>(pid))) {
      found.push_back(static_cast<pid_t>(pid));
    }
  }
  closedir(proc);
  return found;
}

// One seeded server shared by the tests that do not change it.
class DovecotFixtureTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    server_ = DovecotServer::Start();
    if (server_ != nullptr && !server_->Seed(kAlice.name)) server_.reset();
  }
  static void TearDownTestSuite() { server_.reset(); }

  void SetUp() override { ASSERT_NE(server_, nullptr) << "fixture did not start"; }

  static std::unique_ptr<DovecotServer> server_;
};

std::unique_ptr<DovecotServer> DovecotFixtureTest::server_;

TEST_F(DovecotFixtureTest, PlainPortGreetsAndOffersStartTls) {
  EXPECT_EQ(server_->host(), "127.0.0.1");
  RawImap imap;
  const std::optional<std::string> greeting = imap.Connect(server_->imap_port());
  ASSERT_TRUE(greeting.has_value());
  EXPECT_TRUE(StartsWith(*greeting, "* OK")) << *greeting;
  EXPECT_NE(greeting->find("STARTTLS"), std::string::npos) << *greeting;
}

TEST_F(DovecotFixtureTest, ImapsCertificateVerifiesForLocalhost) {
  RunOptions options;
  options.stdin_data = "a LOGOUT\r\n";
  options.timeout = std::chrono::seconds(20);
  const CommandResult result =
      RunCommand("openssl s_client -connect 127.0.0.1:" + std::to_string(server_->imaps_port()) +
                     " -CAfile " + ShellQuote(server_->ca_file()) +
                     " -verify_return_error -servername localhost -verify_hostname localhost"
                     " -verify_ip 127.0.0.1 -ign_eof",
                 options);
  EXPECT_EQ(result.exit_code, 0) << result.err;
  EXPECT_NE(result.out.find("Verify return code: 0 (ok)"), std::string::npos) << result.out;
  EXPECT_NE(result.out.find("* OK"), std::string::npos) << result.out;
  EXPECT_NE(result.out.find("a OK"), std::string::npos) << result.out;
}

TEST_F(DovecotFixtureTest, ImapsRejectsAnUntrustedCertificate) {
  // Without our CA the same handshake must fail: -verify_return_error has
  // teeth, and the certificate really is self-signed.
  RunOptions options;
  options.stdin_data = "a LOGOUT\r\n";
  options.timeout = std::chrono::seconds(20);
  const CommandResult result =
      RunCommand("openssl s_client -connect 127.0.0.1:" + std::to_string(server_->imaps_port()) +
                     " -no-CAfile -no-CApath -no-CAstore -verify_return_error -servername localhost"
                     " -ign_eof",
                 options);
  EXPECT_NE(result.exit_code, 0) << result.out;
}

TEST_F(DovecotFixtureTest, StartTlsVerifies) {
  RunOptions options;
  options.stdin_data = "a LOGOUT\r\n";
  options.timeout = std::chrono::seconds(20);
  const CommandResult result = RunCommand(
      "openssl s_client -connect 127.0.0.1:" + std::to_string(server_->imap_port()) +
          " -starttls imap -CAfile " + ShellQuote(server_->ca_file()) +
          " -verify_return_error -servername localhost -verify_hostname localhost -ign_eof",
      options);
  EXPECT_EQ(result.exit_code, 0) << result.err;
  EXPECT_NE(result.out.find("Verify return code: 0 (ok)"), std::string::npos) << result.out;
  EXPECT_NE(result.out.find("a OK"), std::string::npos) << result.out;
}

TEST_F(DovecotFixtureTest, EveryUserCanLogIn) {
  for (const FixtureUser& user : {kAlice, kBob, kPwUser}) {
    RawImap imap;
    ASSERT_TRUE(imap.Connect(server_->imap_port()));
    const auto login = imap.Command(LoginCommand(user));
    EXPECT_TRUE(StartsWith(Completion(login), "OK")) << user.name << ": " << Completion(login);
  }
}

TEST_F(DovecotFixtureTest, WrongPasswordFailsFast) {
  RawImap imap;
  ASSERT_TRUE(imap.Connect(server_->imap_port()));
  for (const char* login : {"LOGIN alice wrong-secret", "LOGIN nosuchuser whatever"}) {
    const auto start = std::chrono::steady_clock::now();
    const auto response = imap.Command(login);
    const auto elapsed = std::chrono::steady_clock::now() - start;
    EXPECT_TRUE(StartsWith(Completion(response), "NO [AUTHENTICATIONFAILED]"))
        << login << ": " << Completion(response);
    // Dovecot's default is a 2 s delay (and 500 ms even with
    // auth_failure_delay = 0); the fixture answers at once.
    EXPECT_LT(elapsed, std::chrono::seconds(3)) << login;
  }
  // The connection is still usable after failures.
  EXPECT_TRUE(StartsWith(Completion(imap.Command(LoginCommand(kAlice))), "OK"));
}

TEST_F(DovecotFixtureTest, SeededCountsMatchTheStandardSet) {
  for (const SeededFolder& folder : kSeededFolders) {
    EXPECT_EQ(server_->Count(kAlice.name, folder.name), folder.messages) << folder.name;
  }
}

TEST_F(DovecotFixtureTest, SeededFoldersOnTheWire) {
  RawImap imap;
  ASSERT_TRUE(imap.Connect(server_->imap_port()));
  ASSERT_TRUE(StartsWith(Completion(imap.Command(LoginCommand(kAlice))), "OK"));

  const auto list = imap.Command("LIST \"\" \"*\"");
  ASSERT_TRUE(StartsWith(Completion(list), "OK"));
  std::set<std::string> names;
  for (const auto& line : list) {
    if (!StartsWith(line, "* LIST ")) continue;
    EXPECT_NE(line.find(" \"/\" "), std::string::npos) << "delimiter is not /: " << line;
    std::string name = line.substr(line.find(" \"/\" ") + 5);
    if (name.size() >= 2 && name.front() == '"') name = name.substr(1, name.size() - 2);
    names.insert(name);
  }
  for (const SeededFolder& folder : kSeededFolders) {
    EXPECT_EQ(names.count(folder.wire_name), 1u) << folder.wire_name;

    const auto status = imap.Command("STATUS " + Quoted(folder.wire_name) + " (MESSAGES UNSEEN)");
    ASSERT_TRUE(StartsWith(Completion(status), "OK")) << folder.wire_name;
    const std::string expected = "(MESSAGES " + std::to_string(folder.messages) + " UNSEEN " +
                                 std::to_string(folder.messages - folder.seen) + ")";
    EXPECT_NE(status.front().find(expected), std::string::npos)
        << status.front() << " want " << expected;
  }
}

TEST_F(DovecotFixtureTest, SeedTwiceChangesNothing) {
  EXPECT_TRUE(server_->Seed(kAlice.name));
  EXPECT_EQ(server_->Count(kAlice.name, "INBOX"), 5);
}

TEST_F(DovecotFixtureTest, AddMessageCreatesTheFolder) {
  const std::string message =
      "From: Test <test@example.test>\r\n"
      "To: bob@example.test\r\n"
      "Subject: added by a test\r\n"
      "Date: Mon, 01 Jan 2024 00:00:00 +0000\r\n"
      "Message-ID: <added-1@mailmirror.test>\r\n"
      "\r\n"
      "hello\r\n";
  ASSERT_TRUE(server_->AddMessage(kBob.name, "Added/Nested Folder", message, /*seen=*/true));
  ASSERT_TRUE(server_->AddMessage(kBob.name, "Added/Nested Folder", message));
  EXPECT_EQ(server_->Count(kBob.name, "Added/Nested Folder"), 2);

  RawImap imap;
  ASSERT_TRUE(imap.Connect(server_->imap_port()));
  ASSERT_TRUE(StartsWith(Completion(imap.Command(LoginCommand(kBob))), "OK"));
  const auto status = imap.Command("STATUS \"Added/Nested Folder\" (MESSAGES UNSEEN)");
  ASSERT_FALSE(status.empty());
  EXPECT_NE(status.front().find("(MESSAGES 2 UNSEEN 1)"), std::string::npos) << status.front();
}

TEST_F(DovecotFixtureTest, CountOfAMissingFolderFails) {
  EXPECT_NONFATAL_FAILURE(EXPECT_EQ(server_->Count(kAlice.name, "No Such Folder"), -1),
                          "dovecot-fixture count");
}

TEST_F(DovecotFixtureTest, DefaultCapabilities) {
  const std::set<std::string> caps = PostLoginCapabilities(*server_);
  EXPECT_EQ(caps.count("IMAP4rev1"), 1u);
  EXPECT_EQ(caps.count("CONDSTORE"), 1u);
  EXPECT_EQ(caps.count("QRESYNC"), 1u);
  EXPECT_EQ(caps.count("IDLE"), 1u);
  EXPECT_EQ(caps.count("COMPRESS=DEFLATE"), 0u) << "COMPRESS must be off by default";
}

TEST(DovecotFixtureOptionsTest, HiddenCapabilitiesAreNotAdvertised) {
  DovecotOptions options;
  options.hide_capabilities = {"CONDSTORE", "QRESYNC"};
  auto server = DovecotServer::Start(options);
  ASSERT_NE(server, nullptr);
  const std::set<std::string> caps = PostLoginCapabilities(*server);
  EXPECT_EQ(caps.count("CONDSTORE"), 0u);
  EXPECT_EQ(caps.count("QRESYNC"), 0u);
  // Everything else is still there, including what Dovecot normally appends
  // at run time.
  for (const char* kept : {"IMAP4rev1", "IDLE", "ENABLE", "MOVE", "UIDPLUS", "LITERAL+"}) {
    EXPECT_EQ(caps.count(kept), 1u) << kept;
  }
  EXPECT_EQ(caps.count("COMPRESS=DEFLATE"), 0u);
}

TEST(DovecotFixtureOptionsTest, CompressOptionOffersDeflate) {
  DovecotOptions options;
  options.compress = true;
  auto server = DovecotServer::Start(options);
  ASSERT_NE(server, nullptr);
  EXPECT_EQ(PostLoginCapabilities(*server).count("COMPRESS=DEFLATE"), 1u);
}

TEST(DovecotFixtureOptionsTest, StopLeavesNoProcessBehind) {
  auto server = DovecotServer::Start();
  ASSERT_NE(server, nullptr);
  const pid_t pid = server->master_pid();
  const int port = server->imap_port();
  ASSERT_GT(pid, 0);
  ASSERT_TRUE(ProcessAlive(pid));
  {
    // Leave a logged-in session open: stop must end it too.
    RawImap imap;
    ASSERT_TRUE(imap.Connect(port));
    ASSERT_TRUE(StartsWith(Completion(imap.Command(LoginCommand(kAlice))), "OK"));
    EXPECT_FALSE(LiveGroupMembers(pid).empty());
    EXPECT_TRUE(server->Stop());
  }
  EXPECT_FALSE(ProcessAlive(pid));
  EXPECT_TRUE(LiveGroupMembers(pid).empty());
  EXPECT_TRUE(ProcessesMentioning(server->dir() + "/dovecot.conf").empty());
  RawImap late;
  EXPECT_FALSE(late.Connect(port).has_value()) << "port " << port << " still answers";
  EXPECT_TRUE(server->Stop()) << "stop must be idempotent";

  const std::string dir = server->dir();
  server.reset();
  EXPECT_NE(access(dir.c_str(), F_OK), 0) << dir << " was not removed";
}

// RunCommand is part of the same support library; check the behaviour the
// fixture and other tests rely on.
TEST(RunCommandTest, SeparatesStdoutStderrAndExitCode) {
  const CommandResult result = RunCommand("printf out; printf err >&2; exit 3");
  EXPECT_EQ(result.exit_code, 3);
  EXPECT_EQ(result.out, "out");
  EXPECT_EQ(result.err, "err");
  EXPECT_FALSE(result.timed_out);
}

TEST(RunCommandTest, FeedsStdinWithoutDeadlock) {
  RunOptions options;
  options.stdin_data = std::string(300000, 'x');  // more than a pipe buffer
  const CommandResult result = RunCommand("cat; head -c 1000000 /dev/zero >&2", options);
  EXPECT_EQ(result.exit_code, 0);
  EXPECT_EQ(result.out, options.stdin_data);
  EXPECT_EQ(result.err.size(), 1000000u);
  EXPECT_EQ(RunCommand("cat").out, "") << "stdin is /dev/null by default";
}

TEST(RunCommandTest, ReportsSignalsAndTimeouts) {
  EXPECT_EQ(RunCommand("kill -TERM $$").exit_code, 128 + SIGTERM);

  RunOptions options;
  options.timeout = std::chrono::milliseconds(300);
  const auto start = std::chrono::steady_clock::now();
  const CommandResult result = RunCommand("sleep 30; echo never", options);
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(10));
  EXPECT_TRUE(result.timed_out);
  EXPECT_EQ(result.exit_code, 128 + SIGKILL);
  EXPECT_EQ(result.out, "");
}

TEST(RunCommandTest, ShellQuoteKeepsWordsIntact) {
  for (const std::string word : {"", "plain", "it's", "p\"w\\ d", "$HOME `id` *", "a\nb"}) {
    EXPECT_EQ(RunCommand("printf %s " + ShellQuote(word)).out, word) << word;
  }
}

}  // namespace
}  // namespace mailmirror::testing
