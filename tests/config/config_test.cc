#include "mailmirror/config.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <vector>

namespace mailmirror {
namespace {

Config ParseOk(const std::string& text) {
  Result<Config> config = ParseConfig(text, "test.toml");
  EXPECT_TRUE(config.ok()) << (config.ok() ? "" : config.error().message);
  return config.ok() ? std::move(config).value() : Config{};
}

std::string ParseError(const std::string& text) {
  Result<Config> config = ParseConfig(text, "test.toml");
  EXPECT_FALSE(config.ok());
  if (config.ok()) return "";
  EXPECT_EQ(config.error().kind, ErrorKind::kConfig);
  return config.error().message;
}

TEST(ConfigTest, ParsesAccountsInFileOrderWithDefaults) {
  Config config = ParseOk(R"(
[accounts.work]
host = "imap.example.com"
user = "me@example.com"
password = "secret"
maildir = "~/Mail/work"

[accounts.alpha]
host = "localhost"
port = 10143
tls = "starttls"
ca_file = "/etc/ca.pem"
user = "alice"
password_cmd = "echo pw"
timeout = 30
connect_timeout = 5
connections = 1
compress = "no"
)");
  ASSERT_EQ(config.accounts.size(), 2u);
  const AccountConfig& work = config.accounts[0];
  EXPECT_EQ(work.name, "work");
  EXPECT_EQ(work.port, 993);
  EXPECT_EQ(work.tls, TlsMode::kImplicit);
  EXPECT_EQ(work.password, "secret");
  ASSERT_NE(std::getenv("HOME"), nullptr);
  EXPECT_EQ(work.maildir, std::string(std::getenv("HOME")) + "/Mail/work");
  EXPECT_EQ(work.timeout_seconds, 120u);
  const AccountConfig& alpha = config.accounts[1];
  EXPECT_EQ(alpha.name, "alpha");
  EXPECT_EQ(alpha.port, 10143);
  EXPECT_EQ(alpha.tls, TlsMode::kStartTls);
  EXPECT_EQ(alpha.ca_file, "/etc/ca.pem");
  EXPECT_EQ(alpha.password_cmd, "echo pw");
  EXPECT_EQ(alpha.timeout_seconds, 30u);
  EXPECT_EQ(alpha.connect_timeout_seconds, 5u);
  EXPECT_EQ(work.connections, 4u);
  EXPECT_EQ(alpha.connections, 1u);
  EXPECT_EQ(work.compress, CompressMode::kAuto);
  EXPECT_EQ(alpha.compress, CompressMode::kNo);
}

TEST(ConfigTest, SyncKeys) {
  Config config = ParseOk(R"(
[accounts.a]
host = "h"
user = "u"
password = "p"
maildir = "/mail/a"
layout = "maildir++"
folders = ["*", "!Trash", "!Archive/*"]
)");
  ASSERT_EQ(config.accounts.size(), 1u);
  const AccountConfig& account = config.accounts[0];
  EXPECT_EQ(account.layout, "maildir++");
  EXPECT_EQ(account.state_dir, "/mail/a/.mailmirror");
  EXPECT_EQ(account.folders, (std::vector<std::string>{"*", "!Trash", "!Archive/*"}));
  EXPECT_NE(ParseError("[accounts.a]\nhost = \"h\"\nuser = \"u\"\npassword = \"p\"\n"
                       "layout = \"mh\"\n")
                .find("\"verbatim\" or \"maildir++\""),
            std::string::npos);
  EXPECT_NE(ParseError("[accounts.a]\nhost = \"h\"\nuser = \"u\"\npassword = \"p\"\n"
                       "folders = \"INBOX\"\n")
                .find("test.toml:5: accounts.a.folders: expected a list"),
            std::string::npos);
  Config moved = ParseOk(
      "[accounts.a]\nhost = \"h\"\nuser = \"u\"\npassword = \"p\"\nmaildir = \"/m\"\n"
      "state_dir = \"/s\"\n");
  EXPECT_EQ(moved.accounts[0].state_dir, "/s");
}

TEST(ConfigTest, StartTlsAndNoneDefaultToPort143) {
  Config config = ParseOk(R"(
[accounts.a]
host = "h"
user = "u"
password = ""
tls = "none"
)");
  ASSERT_EQ(config.accounts.size(), 1u);
  EXPECT_EQ(config.accounts[0].port, 143);
}

TEST(ConfigTest, SyntaxErrorNamesFileAndLine) {
  std::string message = ParseError("[accounts.a]\nhost = \"h\"\nuser = \n");
  EXPECT_EQ(message.rfind("test.toml:3:", 0), 0u) << message;
  EXPECT_NE(message.find("invalid TOML"), std::string::npos) << message;
}

TEST(ConfigTest, WrongTypeNamesLineAndKey) {
  std::string message =
      ParseError("[accounts.a]\nhost = \"h\"\nuser = \"u\"\npassword = \"p\"\nport = \"993\"\n");
  EXPECT_EQ(message.rfind("test.toml:5: accounts.a.port: expected an integer", 0), 0u) << message;
}

TEST(ConfigTest, PortOutOfRange) {
  std::string message =
      ParseError("[accounts.a]\nhost = \"h\"\nuser = \"u\"\npassword = \"p\"\nport = 70000\n");
  EXPECT_NE(message.find("accounts.a.port"), std::string::npos) << message;
}

TEST(ConfigTest, ConnectionsOutOfRange) {
  for (const char* count : {"0", "17", "-1"}) {
    std::string message = ParseError(
        std::string("[accounts.a]\nhost = \"h\"\nuser = \"u\"\npassword = \"p\"\nconnections = ") +
        count + "\n");
    EXPECT_NE(message.find("accounts.a.connections"), std::string::npos) << message;
    EXPECT_NE(message.find(":5"), std::string::npos) << message;  // the line
  }
}

TEST(ConfigTest, CompressValues) {
  const std::string head = "[accounts.a]\nhost = \"h\"\nuser = \"u\"\npassword = \"p\"\n";
  EXPECT_EQ(ParseOk(head + "compress = \"yes\"\n").accounts[0].compress, CompressMode::kYes);
  EXPECT_EQ(ParseOk(head + "compress = \"auto\"\n").accounts[0].compress, CompressMode::kAuto);
  std::string message = ParseError(head + "compress = \"always\"\n");
  EXPECT_EQ(
      message.rfind("test.toml:5: accounts.a.compress: expected \"auto\", \"yes\" or \"no\"", 0),
      0u)
      << message;
}

TEST(ConfigTest, UnknownKeyIsAnError) {
  std::string message =
      ParseError("[accounts.a]\nhost = \"h\"\nuser = \"u\"\npassword = \"p\"\nhots = \"x\"\n");
  EXPECT_EQ(message.rfind("test.toml:5: accounts.a.hots: unknown key", 0), 0u) << message;
}

TEST(ConfigTest, BadTlsValue) {
  std::string message =
      ParseError("[accounts.a]\nhost = \"h\"\nuser = \"u\"\npassword = \"p\"\ntls = \"ssl\"\n");
  EXPECT_NE(message.find("\"implicit\", \"starttls\" or \"none\""), std::string::npos) << message;
}

TEST(ConfigTest, MissingRequiredKeys) {
  EXPECT_NE(
      ParseError("[accounts.a]\nuser = \"u\"\npassword = \"p\"\n").find("missing key \"host\""),
      std::string::npos);
  EXPECT_NE(
      ParseError("[accounts.a]\nhost = \"h\"\npassword = \"p\"\n").find("missing key \"user\""),
      std::string::npos);
  EXPECT_NE(ParseError("[accounts.a]\nhost = \"h\"\nuser = \"u\"\n").find("password"),
            std::string::npos);
  EXPECT_NE(ParseError("[accounts.a]\nhost = \"h\"\nuser = \"u\"\npassword = \"p\"\n"
                       "password_cmd = \"c\"\n")
                .find("not both"),
            std::string::npos);
}

TEST(ConfigTest, NoAccounts) {
  EXPECT_NE(ParseError("").find("no accounts defined"), std::string::npos);
  EXPECT_NE(ParseError("[other]\nx = 1\n").find("unknown top-level key"), std::string::npos);
}

TEST(ConfigTest, MaxAccounts) {
  const std::string account = "[accounts.a]\nhost = \"h\"\nuser = \"u\"\npassword = \"p\"\n";
  EXPECT_EQ(ParseOk(account).max_accounts, 4u);
  EXPECT_EQ(ParseOk("max_accounts = 16\n" + account).max_accounts, 16u);
  EXPECT_NE(ParseError("max_accounts = 0\n" + account)
                .find("test.toml:1: max_accounts: expected an integer from 1 to 1000"),
            std::string::npos);
}

TEST(ConfigTest, BadAccountName) {
  EXPECT_NE(ParseError("[accounts.\"a/b\"]\nhost = \"h\"\nuser = \"u\"\npassword = \"p\"\n")
                .find("account names"),
            std::string::npos);
}

TEST(ConfigTest, MissingFile) {
  Result<Config> config = LoadConfig("/nonexistent/mailmirror.toml");
  ASSERT_FALSE(config.ok());
  EXPECT_EQ(config.error().kind, ErrorKind::kConfig);
  EXPECT_NE(config.error().message.find("/nonexistent/mailmirror.toml"), std::string::npos);
}

TEST(ConfigTest, LoadsFromFile) {
  std::string path = ::testing::TempDir() + "/config_test.toml";
  {
    std::ofstream out(path);
    out << "[accounts.x]\nhost = \"h\"\nuser = \"u\"\npassword = \"p\"\n";
  }
  Result<Config> config = LoadConfig(path);
  ASSERT_TRUE(config.ok());
  EXPECT_EQ(config->path, path);
  std::remove(path.c_str());
}

AccountConfig AccountWithCommand(const std::string& command) {
  AccountConfig account;
  account.name = "acct";
  account.password_cmd = command;
  return account;
}

TEST(ConfigTest, PasswordCommandFirstLine) {
  Result<std::string> password =
      ResolvePassword(AccountWithCommand("printf 'pw one\\r\\nrest\\n'"));
  ASSERT_TRUE(password.ok());
  EXPECT_EQ(*password, "pw one");
}

std::string PasswordCommandError(const std::string& command) {
  Result<std::string> password = ResolvePassword(AccountWithCommand(command));
  EXPECT_FALSE(password.ok()) << command;
  if (password.ok()) return "";
  EXPECT_EQ(password.error().kind, ErrorKind::kConfig);
  return password.error().message;
}

TEST(ConfigTest, PasswordCommandFailure) {
  EXPECT_EQ(PasswordCommandError("exit 3"), "password_cmd of account acct failed (exit status 3)");
  EXPECT_EQ(PasswordCommandError("true"), "password_cmd of account acct printed nothing");
  EXPECT_EQ(PasswordCommandError("printf '\\r\\nrest\\n'"),
            "password_cmd of account acct printed nothing");
  EXPECT_EQ(PasswordCommandError("kill -9 $$"),
            "password_cmd of account acct was killed by signal 9");
}

// The command may hold a secret itself (`echo hunter2`, a token in a URL).
TEST(ConfigTest, SecretCommandErrorsDoNotShowTheCommand) {
  for (const char* command : {"echo TOPSECRET >/dev/null; exit 3", "true TOPSECRET",
                              "kill -9 $$; echo TOPSECRET", "yes TOPSECRET"}) {
    const std::string message = PasswordCommandError(command);
    EXPECT_NE(message.find("password_cmd of account acct"), std::string::npos) << message;
    EXPECT_EQ(message.find("TOPSECRET"), std::string::npos) << message;
  }
}

TEST(ConfigTest, SecretCommandOutputIsCappedAt64KiB) {
  const auto start = std::chrono::steady_clock::now();
  Result<std::string> endless =
      RunSecretCommand(AccountWithCommand(""), "oauth_token_cmd", "yes secret");
  ASSERT_FALSE(endless.ok());
  EXPECT_EQ(endless.error().kind, ErrorKind::kConfig);
  EXPECT_EQ(endless.error().message,
            "oauth_token_cmd of account acct printed more than 64 KiB; expected one line");
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(10));
  // A single line of exactly 64 KiB is still read; one byte more is not.
  Result<std::string> full =
      ResolvePassword(AccountWithCommand("head -c 65536 /dev/zero | tr '\\0' a"));
  ASSERT_TRUE(full.ok()) << full.error().message;
  EXPECT_EQ(*full, std::string(65536, 'a'));
  EXPECT_EQ(PasswordCommandError("head -c 65537 /dev/zero | tr '\\0' a"),
            "password_cmd of account acct printed more than 64 KiB; expected one line");
}

// LMDB opens its files without O_CLOEXEC: the command must not inherit them.
TEST(ConfigTest, SecretCommandInheritsNoOtherDescriptors) {
  const int plain = ::open("/dev/null", O_RDONLY);  // deliberately without O_CLOEXEC
  ASSERT_GE(plain, 0);
  // Well above the number ls gets for the directory it lists.
  const int extra = ::fcntl(plain, F_DUPFD, 50);
  ::close(plain);
  ASSERT_GE(extra, 50);
  ASSERT_EQ(::fcntl(extra, F_GETFD) & FD_CLOEXEC, 0);
  Result<std::string> listing =
      ResolvePassword(AccountWithCommand("ls /proc/self/fd | tr '\\n' ' '"));
  ::close(extra);
  ASSERT_TRUE(listing.ok()) << listing.error().message;
  std::istringstream numbers(*listing);
  std::vector<int> fds;
  for (int fd = 0; numbers >> fd;) fds.push_back(fd);
  EXPECT_NE(std::find(fds.begin(), fds.end(), 1), fds.end()) << *listing;
  EXPECT_EQ(std::find(fds.begin(), fds.end(), extra), fds.end()) << *listing;
  // stdin, stdout (the pipe), stderr, and ls's own descriptor for the directory.
  for (int fd : fds) EXPECT_LE(fd, 3) << *listing;
}

TEST(ConfigTest, PlainPassword) {
  AccountConfig account;
  account.password = "p\"w";
  Result<std::string> password = ResolvePassword(account);
  ASSERT_TRUE(password.ok());
  EXPECT_EQ(*password, "p\"w");
}

TEST(ConfigTest, TwoWayKeys) {
  const std::string head = "[accounts.a]\nhost = \"h\"\nuser = \"u\"\npassword = \"p\"\n";
  AccountConfig defaults = ParseOk(head).accounts[0];
  EXPECT_EQ(defaults.direction, SyncDirection::kBoth);
  EXPECT_EQ(defaults.expunge, Sides::kBoth);
  EXPECT_EQ(defaults.create, Sides::kBoth);
  EXPECT_DOUBLE_EQ(defaults.max_delete_fraction, 0.5);

  AccountConfig set = ParseOk(head +
                              "direction = \"pull\"\nexpunge = \"remote\"\ncreate = \"none\"\n"
                              "max_delete_fraction = 0.25\n")
                          .accounts[0];
  EXPECT_EQ(set.direction, SyncDirection::kPull);
  EXPECT_EQ(set.expunge, Sides::kRemote);
  EXPECT_EQ(set.create, Sides::kNone);
  EXPECT_DOUBLE_EQ(set.max_delete_fraction, 0.25);
  EXPECT_DOUBLE_EQ(ParseOk(head + "max_delete_fraction = 1\n").accounts[0].max_delete_fraction, 1);

  std::string message = ParseError(head + "direction = \"sideways\"\n");
  EXPECT_EQ(message.rfind("test.toml:5: accounts.a.direction: expected \"both\", \"pull\" or "
                          "\"push\", got \"sideways\"",
                          0),
            0u)
      << message;
  message = ParseError(head + "expunge = \"far\"\n");
  EXPECT_NE(message.find("expected \"both\", \"remote\", \"local\" or \"none\""), std::string::npos)
      << message;
  for (const char* bad : {"1.5", "-0.1", "\"half\""}) {
    message = ParseError(head + "max_delete_fraction = " + bad + "\n");
    EXPECT_NE(message.find("accounts.a.max_delete_fraction: expected a number from 0 to 1"),
              std::string::npos)
        << message;
  }
}

TEST(ConfigTest, RetryKeys) {
  const std::string head = "[accounts.a]\nhost = \"h\"\nuser = \"u\"\npassword = \"p\"\n";
  AccountConfig defaults = ParseOk(head).accounts[0];
  EXPECT_EQ(defaults.retries, 3U);
  EXPECT_DOUBLE_EQ(defaults.retry_delay_seconds, 1);
  EXPECT_DOUBLE_EQ(defaults.max_retry_wait_seconds, 300);

  AccountConfig set =
      ParseOk(head + "retries = 0\nretry_delay = 0.25\nmax_retry_wait = 600\n").accounts[0];
  EXPECT_EQ(set.retries, 0U);
  EXPECT_DOUBLE_EQ(set.retry_delay_seconds, 0.25);
  EXPECT_DOUBLE_EQ(set.max_retry_wait_seconds, 600);

  std::string message = ParseError(head + "retries = 101\n");
  EXPECT_NE(message.find("accounts.a.retries: expected an integer from 0 to 100"),
            std::string::npos)
      << message;
  for (const char* bad : {"-1", "nan", "\"soon\"", "86401"}) {
    message = ParseError(head + "retry_delay = " + bad + "\n");
    EXPECT_NE(message.find("accounts.a.retry_delay: expected a number from 0 to 86400, e.g. 1.5"),
              std::string::npos)
        << message;
  }
}

TEST(ConfigTest, TlsFingerprintInTheUsualSpellings) {
  const std::string head = "[accounts.a]\nhost = \"h\"\nuser = \"u\"\npassword = \"p\"\n";
  const std::string hex = "0123456789ABCDEF0123456789abcdef0123456789ABCDEF0123456789abcdef";
  std::string colons;
  for (size_t i = 0; i < hex.size(); i += 2) colons += (i > 0 ? ":" : "") + hex.substr(i, 2);
  for (const std::string& spelling :
       {hex, colons, "SHA256:" + colons, "sha256 Fingerprint=" + colons}) {
    AccountConfig account = ParseOk(head + "tls_fingerprint = \"" + spelling + "\"\n").accounts[0];
    ASSERT_EQ(account.tls_fingerprint.size(), 32u) << spelling;
    EXPECT_EQ(static_cast<unsigned char>(account.tls_fingerprint[0]), 0x01) << spelling;
    EXPECT_EQ(static_cast<unsigned char>(account.tls_fingerprint[31]), 0xef) << spelling;
  }
  EXPECT_TRUE(ParseOk(head).accounts[0].tls_fingerprint.empty());
  for (const std::string& bad :
       {hex.substr(2), hex + "00", "0:1" + hex.substr(2), colons + ":", "zz" + hex.substr(2)}) {
    std::string message = ParseError(head + "tls_fingerprint = \"" + bad + "\"\n");
    EXPECT_NE(message.find("accounts.a.tls_fingerprint: expected a SHA-256 fingerprint"),
              std::string::npos)
        << bad << ": " << message;
  }
}

TEST(ConfigTest, PasswordInAFileOthersMayReadIsWarnedAbout) {
  char dir_template[] = "/tmp/mailmirror-config-XXXXXX";
  ASSERT_NE(mkdtemp(dir_template), nullptr);
  const std::string path = std::string(dir_template) + "/config.toml";
  auto write = [&path](const std::string& secret_key) {
    std::ofstream(path) << "[accounts.a]\nhost = \"h\"\nuser = \"u\"\n" << secret_key << "\n";
  };
  write("password = \"hunter2\"");
  ASSERT_EQ(chmod(path.c_str(), 0644), 0);
  Result<Config> readable = LoadConfig(path);
  ASSERT_TRUE(readable.ok()) << readable.error().message;
  ASSERT_EQ(readable->warnings.size(), 1u);
  EXPECT_NE(readable->warnings[0].find("readable by everyone (mode 0644): chmod 600"),
            std::string::npos)
      << readable->warnings[0];
  EXPECT_EQ(readable->warnings[0].find("hunter2"), std::string::npos);
  ASSERT_EQ(chmod(path.c_str(), 0640), 0);
  EXPECT_NE(LoadConfig(path)->warnings.at(0).find("its group"), std::string::npos);
  ASSERT_EQ(chmod(path.c_str(), 0600), 0);
  EXPECT_TRUE(LoadConfig(path)->warnings.empty());
  // A password command instead of a password: nothing to hide.
  write("password_cmd = \"pass show mail\"");
  ASSERT_EQ(chmod(path.c_str(), 0644), 0);
  EXPECT_TRUE(LoadConfig(path)->warnings.empty());
  std::filesystem::remove_all(dir_template);
}

// Non-ASCII text is fine in one-line string values and comments, and
// refused with its line elsewhere (toml++ 3.3 has undefined behaviour
// there; found by tests/fuzz/config_fuzz.cc).
TEST(ConfigTest, NonAsciiOnlyInStringValuesAndComments) {
  const std::string account =
      "# K\xC3\xB6ln\n[accounts.a]  # K\xC3\xB6ln\nhost = \"h\"\nuser = \"J\xC3\xBCrgen\"\n"
      "password = 'p\xC3\xA4ss' # \xC3\xA4\nfolders = [\"Entw\xC3\xBCrfe\", \"!Sp\xC3\xA4m\"]\n";
  Config config = ParseOk(account);
  ASSERT_EQ(config.accounts.size(), 1u);
  EXPECT_EQ(config.accounts[0].user, "J\xC3\xBCrgen");
  EXPECT_EQ(config.accounts[0].folders,
            (std::vector<std::string>{"Entw\xC3\xBCrfe", "!Sp\xC3\xA4m"}));

  for (const std::string& bad :
       {std::string("[accounts\xD1\x88ork]\nhost = \"h\"\n"), std::string("K\xC3\xB6ln = 1\n"),
        std::string("a = 1x\xC3\xB6\n")}) {
    std::string message = ParseError(bad);
    EXPECT_EQ(message.rfind("test.toml:1: non-ASCII text is allowed only in quoted one-line", 0),
              0u)
        << message;
  }
  std::string message = ParseError(account + "notes = \"\"\"a\nb\"\"\"\n");
  EXPECT_NE(message.find("multi-line strings"), std::string::npos) << message;
  message = ParseError(account + "x = \"a\x01\"\n");
  EXPECT_EQ(message.rfind("test.toml:7: invalid TOML: a control character (byte 1)", 0), 0u)
      << message;
}

constexpr const char* kTwoAccounts = R"(
[accounts.old]
host = "old.example.com"
user = "me"
password = "pw"
maildir = "/tmp/old"

[accounts.new]
provider = "office365"
user = "me@example.com"
oauth_token_cmd = "print-token"
)";

TEST(ConfigTest, MigrationKeysAndMapRulesInFileOrder) {
  Config config = ParseOk(std::string(kTwoAccounts) + R"(
[migrations.move]
source = "old"
target = "new"
folders = ["*", "!Junk"]
special_use = false
since = 2015-01-31
before = "2024-06-01"
max_size = 25
skip_flags = ["\\Deleted", "$Junk"]
connections = 3

[migrations.move.map]
"Zeta" = "Alpha"
"Archive/*" = "Old/Archive/*"
"Entwürfe" = "Drafts"
"*" = "Imported/*"
)");
  ASSERT_EQ(config.migrations.size(), 1u);
  const MigrationConfig& move = config.migrations[0];
  EXPECT_EQ(move.name, "move");
  EXPECT_EQ(move.source, "old");
  EXPECT_EQ(move.target, "new");
  EXPECT_EQ(move.folders, (std::vector<std::string>{"*", "!Junk"}));
  EXPECT_FALSE(move.special_use);
  EXPECT_EQ(move.since, 1422662400);   // 2015-01-31T00:00:00Z
  EXPECT_EQ(move.before, 1717200000);  // 2024-06-01T00:00:00Z
  EXPECT_EQ(move.max_bytes, 25000000u);
  EXPECT_EQ(move.skip_flags, (std::vector<std::string>{"\\Deleted", "$Junk"}));
  EXPECT_EQ(move.connections, 3u);
  // In file order, not toml++'s sorted order.
  ASSERT_EQ(move.map.size(), 4u);
  EXPECT_EQ(move.map[0].from, "Zeta");
  EXPECT_EQ(move.map[0].to, "Alpha");
  EXPECT_EQ(move.map[1].from, "Archive/*");
  EXPECT_EQ(move.map[1].to, "Old/Archive/*");
  EXPECT_EQ(move.map[2].from, "Entw\xC3\xBCrfe");
  EXPECT_EQ(move.map[3].from, "*");
}

TEST(ConfigTest, MigrationDefaults) {
  Config config = ParseOk(std::string(kTwoAccounts) + R"(
[migrations.plain]
source = "old"
target = "new"
)");
  ASSERT_EQ(config.migrations.size(), 1u);
  const MigrationConfig& plain = config.migrations[0];
  EXPECT_TRUE(plain.special_use);
  EXPECT_TRUE(plain.folders.empty());
  EXPECT_TRUE(plain.map.empty());
  EXPECT_EQ(plain.since, 0);
  EXPECT_EQ(plain.before, 0);
  EXPECT_EQ(plain.max_bytes, 0u);
  EXPECT_EQ(plain.connections, 0u);
}

TEST(ConfigTest, MigrationErrorsNameTheKey) {
  const std::string accounts = kTwoAccounts;
  auto error = [&](const std::string& table) { return ParseError(accounts + table); };
  EXPECT_NE(error("[migrations.m]\ntarget = \"new\"\n").find("missing key \"source\""),
            std::string::npos);
  EXPECT_NE(error("[migrations.m]\nsource = \"old\"\ntarget = \"gone\"\n")
                .find("no account named \"gone\""),
            std::string::npos);
  EXPECT_NE(error("[migrations.m]\nsource = \"old\"\ntarget = \"old\"\n").find("the same account"),
            std::string::npos);
  EXPECT_NE(error("[migrations.m]\nsource = \"old\"\ntarget = \"new\"\nsince = 2015-13-01\n")
                .find("invalid TOML"),
            std::string::npos);
  EXPECT_NE(error("[migrations.m]\nsource = \"old\"\ntarget = \"new\"\nsince = \"2015-02-30\"\n")
                .find("migrations.m.since: expected a date"),
            std::string::npos);
  EXPECT_NE(error("[migrations.m]\nsource = \"old\"\ntarget = \"new\"\nsince = 2020-01-01\n"
                  "before = 2019-01-01\n")
                .find("\"before\" must be later than \"since\""),
            std::string::npos);
  EXPECT_NE(error("[migrations.m]\nsource = \"old\"\ntarget = \"new\"\ncolour = 1\n")
                .find("migrations.m.colour: unknown key"),
            std::string::npos);
  EXPECT_NE(error("[migrations.m]\nsource = \"old\"\ntarget = \"new\"\n[migrations.m.map]\n"
                  "\"A/*\" = \"B\"\n")
                .find("'*' at the end of both"),
            std::string::npos);
  EXPECT_NE(error("[migrations.m]\nsource = \"old\"\ntarget = \"new\"\n[migrations.m.map]\n"
                  "\"A*B\" = \"C\"\n")
                .find("only at the end"),
            std::string::npos);
  EXPECT_NE(error("[migrations.m]\nsource = \"old\"\ntarget = \"new\"\n"
                  "map = { \"B\" = \"X\", \"A\" = \"Y\" }\n")
                .find("one per line"),
            std::string::npos);
  const std::string line =
      error("[migrations.m]\nsource = \"old\"\ntarget = \"new\"\nskip_flags = \"\\\\Deleted\"\n");
  EXPECT_NE(line.find("test.toml:15: migrations.m.skip_flags: expected a list"), std::string::npos)
      << line;
}

TEST(ConfigTest, PathsAreNormalised) {
  const std::string head = "[accounts.a]\nhost = \"h\"\nuser = \"u\"\npassword = \"p\"\n";
  AccountConfig trailing = ParseOk(head + "maildir = \"/x/mail/\"\n").accounts[0];
  EXPECT_EQ(trailing.maildir, "/x/mail");
  // Not "/x/mail//.mailmirror", which a string comparison with the folder
  // path /x/mail/.mailmirror would miss.
  EXPECT_EQ(trailing.state_dir, "/x/mail/.mailmirror");
  AccountConfig messy = ParseOk(head +
                                "maildir = \"/x//a/./b/../mail//\"\nstate_dir = \"/s/./t/\"\n"
                                "ca_file = \"/etc//ssl/../ca.pem\"\n")
                            .accounts[0];
  EXPECT_EQ(messy.maildir, "/x/a/mail");
  EXPECT_EQ(messy.state_dir, "/s/t");
  EXPECT_EQ(messy.ca_file, "/etc/ca.pem");
  AccountConfig root = ParseOk(head + "maildir = \"/\"\n").accounts[0];
  EXPECT_EQ(root.maildir, "/");
  EXPECT_EQ(root.state_dir, "/.mailmirror");
  AccountConfig home = ParseOk(head + "maildir = \"~/Mail/work/\"\n").accounts[0];
  EXPECT_EQ(home.maildir, std::filesystem::path(std::string(std::getenv("HOME")) + "/Mail/work")
                              .lexically_normal()
                              .string());
  EXPECT_EQ(home.state_dir, home.maildir + "/.mailmirror");
}

std::string Account(const std::string& name, const std::string& maildir,
                    const std::string& extra = "") {
  return "[accounts." + name + "]\nhost = \"h\"\nuser = \"u\"\npassword = \"p\"\nmaildir = \"" +
         maildir + "\"\n" + extra + "\n";
}

TEST(ConfigTest, AccountsMayNotShareAMaildir) {
  const std::string shared =
      "accounts one and two both use the Maildir /x/mail: each account needs its own maildir "
      "(and state_dir)";
  for (const char* spelling : {"/x/mail", "/x/mail/", "/x//mail", "/x/other/../mail"}) {
    std::string message = ParseError(Account("one", "/x/mail") + Account("two", spelling));
    EXPECT_EQ(message, "test.toml:7: " + shared) << spelling;  // two's table
  }
  std::string message = ParseError(Account("one", "/x/mail") + Account("two", "/x/mail/sub"));
  EXPECT_NE(message.find("account two's maildir /x/mail/sub is inside account one's maildir "
                         "/x/mail: each account needs its own maildir"),
            std::string::npos)
      << message;
  message = ParseError(Account("one", "/x/mail/sub") + Account("two", "/x/mail"));
  EXPECT_NE(message.find("account one's maildir /x/mail/sub is inside account two's maildir "
                         "/x/mail"),
            std::string::npos)
      << message;
  // One's maildir against the other's state_dir, both ways, and state_dirs.
  message =
      ParseError(Account("one", "/x/mail") + Account("two", "/y/mail", "state_dir = \"/x/mail\""));
  EXPECT_NE(message.find("account two's state_dir /x/mail is account one's maildir /x/mail"),
            std::string::npos)
      << message;
  message = ParseError(Account("one", "/x/mail", "state_dir = \"/y/mail/state\"") +
                       Account("two", "/y/mail"));
  EXPECT_NE(message.find("account one's state_dir /y/mail/state is inside account two's maildir "
                         "/y/mail"),
            std::string::npos)
      << message;
  message = ParseError(Account("one", "/x/mail", "state_dir = \"/s\"") +
                       Account("two", "/y/mail", "state_dir = \"/s/\""));
  EXPECT_NE(message.find("accounts one and two both use the state_dir /s: "), std::string::npos)
      << message;
  // Three accounts: the error names the pair.
  message = ParseError(Account("one", "/x/one") + Account("two", "/x/two") +
                       Account("three", "/x/one/."));
  EXPECT_NE(message.find("accounts one and three both use the Maildir /x/one"), std::string::npos)
      << message;
}

TEST(ConfigTest, SiblingMaildirsAreFine) {
  Config config = ParseOk(Account("one", "/a/mail") + Account("two", "/a/mail2") +
                          Account("three", "/a/mai") + Account("four", "/b/mail") +
                          Account("five", "/a/x", "state_dir = \"/a/mail.state\""));
  EXPECT_EQ(config.accounts.size(), 5u);
  // Accounts without a maildir have nothing to share.
  const std::string bare = "[accounts.b]\nhost = \"h\"\nuser = \"u\"\npassword = \"p\"\n";
  EXPECT_EQ(ParseOk("[accounts.a]\nhost = \"h\"\nuser = \"u\"\npassword = \"p\"\n" + bare)
                .accounts.size(),
            2u);
}

TEST(ConfigTest, AccountsMayNotShareAMaildirThroughASymlink) {
  char dir_template[] = "/tmp/mailmirror-config-XXXXXX";
  ASSERT_NE(mkdtemp(dir_template), nullptr);
  const std::string dir = dir_template;
  std::filesystem::create_directories(dir + "/real/mail");
  std::filesystem::create_directory_symlink(dir + "/real/mail", dir + "/link");
  std::string message =
      ParseError(Account("one", dir + "/real/mail") + Account("two", dir + "/link"));
  EXPECT_NE(message.find("account two's maildir " + dir + "/link is account one's maildir " + dir +
                         "/real/mail (both are "),
            std::string::npos)
      << message;
  EXPECT_NE(message.find("after following symbolic links): each account needs its own maildir"),
            std::string::npos)
      << message;
  // Below the link, in a folder that does not exist yet.
  message = ParseError(Account("one", dir + "/link/Archive") + Account("two", dir + "/real/mail"));
  EXPECT_NE(message.find("account one's maildir " + dir +
                         "/link/Archive is inside account two's "
                         "maildir " +
                         dir + "/real/mail (after following symbolic links: "),
            std::string::npos)
      << message;
  // The symlinked one's default state_dir is the other's too.
  message = ParseError(Account("one", dir + "/link", "state_dir = \"" + dir + "/state\"") +
                       Account("two", dir + "/x", "state_dir = \"" + dir + "/link\""));
  EXPECT_NE(message.find("account two's state_dir " + dir + "/link is account one's maildir"),
            std::string::npos)
      << message;
  std::filesystem::remove_all(dir);
}

TEST(ConfigTest, TlsNoneRefusesCertificateSettings) {
  const std::string head =
      "[accounts.a]\nhost = \"localhost\"\nuser = \"u\"\npassword = \"p\"\ntls = \"none\"\n";
  EXPECT_EQ(ParseError(head + "ca_file = \"/etc/ca.pem\"\n"),
            "test.toml:6: accounts.a.ca_file: ca_file has no effect with tls = \"none\": the "
            "connection would not be encrypted");
  EXPECT_EQ(ParseError(head + "tls_fingerprint = \"" + std::string(64, 'a') + "\"\n"),
            "test.toml:6: accounts.a.tls_fingerprint: tls_fingerprint has no effect with tls = "
            "\"none\": the connection would not be encrypted");
  // With encryption both are fine.
  EXPECT_EQ(ParseOk("[accounts.a]\nhost = \"h\"\nuser = \"u\"\npassword = \"p\"\n"
                    "tls = \"starttls\"\nca_file = \"/etc/ca.pem\"\n")
                .accounts[0]
                .ca_file,
            "/etc/ca.pem");
}

TEST(ConfigTest, TlsNoneToAnotherMachineIsWarnedAbout) {
  auto warnings = [](const std::string& host, const std::string& tls) {
    return ParseOk("[accounts.a]\nhost = \"" + host +
                   "\"\nuser = \"u\"\npassword = \"p\"\ntls = \"" + tls + "\"\n")
        .warnings;
  };
  std::vector<std::string> remote = warnings("imap.example.com", "none");
  ASSERT_EQ(remote.size(), 1u);
  EXPECT_EQ(remote[0],
            "account a: tls = \"none\" with host imap.example.com, not this machine: the password "
            "and mail travel unencrypted");
  for (const char* host : {"192.168.1.10", "128.0.0.1", "::2", "localhost.example.com"}) {
    EXPECT_EQ(warnings(host, "none").size(), 1u) << host;
  }
  for (const char* host :
       {"localhost", "LocalHost", "127.0.0.1", "127.8.9.10", "::1", "[::1]", "::ffff:127.0.0.1"}) {
    EXPECT_TRUE(warnings(host, "none").empty()) << host;
  }
  EXPECT_TRUE(warnings("imap.example.com", "starttls").empty());
  EXPECT_TRUE(warnings("imap.example.com", "implicit").empty());
}

TEST(ConfigTest, AnySecretInAFileOthersMayReadIsWarnedAbout) {
  char dir_template[] = "/tmp/mailmirror-config-XXXXXX";
  ASSERT_NE(mkdtemp(dir_template), nullptr);
  const std::string path = std::string(dir_template) + "/config.toml";
  std::ofstream(path) << "[accounts.a]\nhost = \"h\"\nuser = \"u\"\n"
                         "password_cmd = \"pass show mail\"\noauth_client_id = \"id\"\n"
                         "oauth_client_secret = \"hunter2\"\n";
  ASSERT_EQ(chmod(path.c_str(), 0640), 0);
  Result<Config> readable = LoadConfig(path);
  ASSERT_TRUE(readable.ok()) << readable.error().message;
  ASSERT_EQ(readable->warnings.size(), 1u);
  EXPECT_EQ(readable->warnings[0], "config file " + path +
                                       " holds secrets (oauth_client_secret of account a) and is "
                                       "readable by its group (mode 0640): chmod 600 " +
                                       path);
  ASSERT_EQ(chmod(path.c_str(), 0600), 0);
  EXPECT_TRUE(LoadConfig(path)->warnings.empty());
  // A password in the second account only.
  std::ofstream(path) << "[accounts.a]\nhost = \"h\"\nuser = \"u\"\npassword_cmd = \"c\"\n"
                         "[accounts.b]\nhost = \"h\"\nuser = \"u\"\npassword = \"hunter2\"\n";
  ASSERT_EQ(chmod(path.c_str(), 0604), 0);
  readable = LoadConfig(path);
  ASSERT_TRUE(readable.ok()) << readable.error().message;
  ASSERT_EQ(readable->warnings.size(), 1u);
  EXPECT_NE(readable->warnings[0].find("holds secrets (password of account b) and is readable by "
                                       "everyone (mode 0604): chmod 600 " +
                                       path + ", or move the password to password_cmd"),
            std::string::npos)
      << readable->warnings[0];
  EXPECT_EQ(readable->warnings[0].find("hunter2"), std::string::npos);
  std::filesystem::remove_all(dir_template);
}

}  // namespace
}  // namespace mailmirror
