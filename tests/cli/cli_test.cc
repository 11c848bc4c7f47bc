// The command line's contract: exit codes and messages for bad input,
// broken and hostile servers. Runs the real binary; servers here are raw
// loopback sockets that misbehave on purpose (real-server behaviour is
// covered by tests/integration against Dovecot).
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>

#include "support/run_command.h"

namespace mailmirror {
namespace {

using testing::CommandResult;
using testing::RunCommand;

std::string Mailmirror(const std::string& arguments) {
  return std::string(MAILMIRROR_BINARY) + " " + arguments;
}

class CliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char pattern[] = "/tmp/mailmirror-cli-test.XXXXXX";
    ASSERT_NE(::mkdtemp(pattern), nullptr);
    dir_ = pattern;
  }
  void TearDown() override { RunCommand("rm -rf '" + dir_ + "'"); }

  std::string WriteConfig(const std::string& text) {
    std::string path = dir_ + "/config.toml";
    std::ofstream(path) << text;
    return path;
  }

  std::string AccountOnPort(int port, const std::string& extra = "") {
    return WriteConfig("[accounts.test]\nhost = \"127.0.0.1\"\nport = " + std::to_string(port) +
                       "\ntls = \"none\"\nuser = \"alice\"\npassword = \"pw\"\n" + extra);
  }

  std::string dir_;
};

// A one-connection TCP server on 127.0.0.1 that plays a fixed script.
class HostileServer {
 public:
  // Sends `greeting`, then keeps the connection open until the client
  // closes it (or `hold_ms` passes), then closes.
  explicit HostileServer(std::string greeting, int hold_ms = 10000)
      : greeting_(std::move(greeting)), hold_ms_(hold_ms) {
    listener_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int one = 1;
    ::setsockopt(listener_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    ::bind(listener_, reinterpret_cast<sockaddr*>(&address), sizeof address);
    ::listen(listener_, 1);
    socklen_t length = sizeof address;
    ::getsockname(listener_, reinterpret_cast<sockaddr*>(&address), &length);
    port_ = ntohs(address.sin_port);
    thread_ = std::thread([this] { Serve(); });
  }
  ~HostileServer() {
    ::shutdown(listener_, SHUT_RDWR);
    thread_.join();
    ::close(listener_);
  }
  int port() const { return port_; }
  std::string received() const { return received_; }

 private:
  void Serve() {
    int client = ::accept(listener_, nullptr, nullptr);
    if (client < 0) return;
    timeval timeout{hold_ms_ / 1000, (hold_ms_ % 1000) * 1000};
    ::setsockopt(client, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
    size_t sent = 0;
    while (sent < greeting_.size()) {
      ssize_t n = ::send(client, greeting_.data() + sent, greeting_.size() - sent, MSG_NOSIGNAL);
      if (n <= 0) break;
      sent += static_cast<size_t>(n);
    }
    char buffer[4096];
    ssize_t n;
    while (hold_ms_ > 0 && (n = ::recv(client, buffer, sizeof buffer, 0)) > 0) {
      received_.append(buffer, n);
    }
    ::close(client);
  }

  std::string greeting_;
  int hold_ms_;
  int listener_ = -1;
  int port_ = 0;
  std::string received_;
  std::thread thread_;
};

int ClosedPort() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address);
  socklen_t length = sizeof address;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length);
  ::close(fd);
  return ntohs(address.sin_port);
}

TEST_F(CliTest, VersionAndHelp) {
  CommandResult version = RunCommand(Mailmirror("--version"));
  EXPECT_EQ(version.exit_code, 0);
  EXPECT_NE(version.out.find("mailmirror 0."), std::string::npos) << version.out;
  CommandResult help = RunCommand(Mailmirror("--help"));
  EXPECT_EQ(help.exit_code, 0);
  EXPECT_NE(help.out.find("list"), std::string::npos) << help.out;
}

TEST_F(CliTest, UsageErrorsExit64) {
  EXPECT_EQ(RunCommand(Mailmirror("")).exit_code, 64);
  EXPECT_EQ(RunCommand(Mailmirror("--bogus list")).exit_code, 64);
  EXPECT_EQ(RunCommand(Mailmirror("frobnicate")).exit_code, 64);
}

TEST_F(CliTest, MissingConfigExits78) {
  CommandResult result = RunCommand(Mailmirror("-c " + dir_ + "/nope.toml list"));
  EXPECT_EQ(result.exit_code, 78);
  EXPECT_NE(result.err.find(dir_ + "/nope.toml"), std::string::npos) << result.err;
}

TEST_F(CliTest, MalformedConfigExits78WithLineNumber) {
  std::string path = WriteConfig("[accounts.a]\nhost = \"h\"\nport = 99999\n");
  CommandResult result = RunCommand(Mailmirror("-c " + path + " list"));
  EXPECT_EQ(result.exit_code, 78);
  EXPECT_NE(result.err.find(path + ":3: accounts.a.port"), std::string::npos) << result.err;

  path = WriteConfig("[accounts.a\nhost = \"h\"\n");
  result = RunCommand(Mailmirror("-c " + path + " list"));
  EXPECT_EQ(result.exit_code, 78);
  EXPECT_NE(result.err.find(path + ":1:"), std::string::npos) << result.err;
}

TEST_F(CliTest, UnknownAccountExits64) {
  std::string path = AccountOnPort(ClosedPort());
  CommandResult result = RunCommand(Mailmirror("-c " + path + " list nosuch"));
  EXPECT_EQ(result.exit_code, 64);
  EXPECT_NE(result.err.find("unknown account \"nosuch\""), std::string::npos) << result.err;
  EXPECT_NE(result.err.find("test"), std::string::npos) << result.err;
}

TEST_F(CliTest, ConnectionRefusedExits69) {
  int port = ClosedPort();
  CommandResult result = RunCommand(Mailmirror("-c " + AccountOnPort(port) + " list"));
  EXPECT_EQ(result.exit_code, 69) << result.err;
  EXPECT_NE(result.err.find("refused"), std::string::npos) << result.err;
  EXPECT_NE(result.err.find(std::to_string(port)), std::string::npos) << result.err;
}

TEST_F(CliTest, ByeGreetingExits69) {
  HostileServer server("* BYE Too many connections from your IP\r\n");
  CommandResult result = RunCommand(Mailmirror("-c " + AccountOnPort(server.port()) + " list"));
  EXPECT_EQ(result.exit_code, 69) << result.err;
  EXPECT_NE(result.err.find("Too many connections"), std::string::npos) << result.err;
}

TEST_F(CliTest, OverlongResponseLineExits76) {
  HostileServer server("* OK " + std::string(2 << 20, 'x'));
  CommandResult result = RunCommand(Mailmirror("-c " + AccountOnPort(server.port()) + " list"));
  EXPECT_EQ(result.exit_code, 76) << result.err;
  EXPECT_NE(result.err.find("exceeds"), std::string::npos) << result.err;
}

TEST_F(CliTest, NonImapServerExits76) {
  HostileServer server("SSH-2.0-OpenSSH_9.2\r\n");
  CommandResult result = RunCommand(Mailmirror("-c " + AccountOnPort(server.port()) + " list"));
  EXPECT_EQ(result.exit_code, 76) << result.err;
}

TEST_F(CliTest, ServerHangingUpExits69) {
  HostileServer server("", 0);
  CommandResult result = RunCommand(Mailmirror("-c " + AccountOnPort(server.port()) + " list"));
  EXPECT_EQ(result.exit_code, 69) << result.err;
}

TEST_F(CliTest, SilentServerTimesOutWith75) {
  HostileServer server("", 5000);
  CommandResult result =
      RunCommand(Mailmirror("-c " + AccountOnPort(server.port(), "timeout = 1\n") + " list"));
  EXPECT_EQ(result.exit_code, 75) << result.err;
}

TEST_F(CliTest, PasswordCommandFailureExits78BeforeConnecting) {
  HostileServer server("* OK ready\r\n", 500);
  std::string path =
      WriteConfig("[accounts.test]\nhost = \"127.0.0.1\"\nport = " + std::to_string(server.port()) +
                  "\ntls = \"none\"\nuser = \"alice\"\npassword_cmd = \"exit 2\"\n");
  CommandResult result = RunCommand(Mailmirror("-c " + path + " list"));
  EXPECT_EQ(result.exit_code, 78) << result.err;
  EXPECT_NE(result.err.find("password_cmd of account test failed (exit status 2)"),
            std::string::npos)
      << result.err;
}

// Two accounts on one Maildir (however the path is spelled) are refused
// before any file or connection is touched (issue 19).
TEST_F(CliTest, TwoAccountsOnOneMaildirExit78BeforeAnyIo) {
  HostileServer server("* OK ready\r\n", 500);
  for (const std::string& second : {dir_ + "/mail/", dir_ + "/x/../mail", dir_ + "/mail/sub"}) {
    std::string path = WriteConfig(
        "[accounts.one]\nhost = \"127.0.0.1\"\nport = " + std::to_string(server.port()) +
        "\ntls = \"none\"\nuser = \"alice\"\npassword = \"pw\"\nmaildir = \"" + dir_ +
        "/mail\"\n[accounts.two]\nhost = \"127.0.0.1\"\nport = " + std::to_string(server.port()) +
        "\ntls = \"none\"\nuser = \"bob\"\npassword = \"pw\"\nmaildir = \"" + second + "\"\n");
    CommandResult result = RunCommand(Mailmirror("-c " + path + " sync two"));
    EXPECT_EQ(result.exit_code, 78) << second << "\n" << result.err;
    EXPECT_NE(result.err.find("one"), std::string::npos) << result.err;
    EXPECT_NE(result.err.find("two"), std::string::npos) << result.err;
    EXPECT_FALSE(std::filesystem::exists(dir_ + "/mail")) << second;
  }
  EXPECT_TRUE(server.received().empty());
}

}  // namespace
}  // namespace mailmirror
