#include "support/dovecot_fixture.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <deque>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <optional>
#include <sstream>

#include "support/run_command.h"

namespace mailmirror::testing {
namespace {

constexpr const char* kScript = MAILMIRROR_SOURCE_DIR "/scripts/dovecot-fixture";
constexpr std::chrono::seconds kScriptTimeout{60};

// --- Fallback cleanup --------------------------------------------------------
//
// The destructor is the normal way a server stops. These catch the rest: a
// test binary that calls exit() with servers still alive, or that is
// interrupted (Ctrl-C, SIGTERM from a runner). Both only send SIGTERM to the
// Dovecot master, which then stops its children; the directory stays behind.
// The table is lock-free so the signal handler may read it.

constexpr int kMaxServers = 64;
static_assert(std::atomic<pid_t>::is_always_lock_free, "the signal handler reads these");
std::atomic<pid_t> g_masters[kMaxServers];

void TerminateRegisteredMasters() {
  for (auto& slot : g_masters) {
    const pid_t pid = slot.exchange(0);
    if (pid > 0) kill(pid, SIGTERM);
  }
}

extern "C" void OnFatalSignal(int sig) {
  TerminateRegisteredMasters();  // async-signal-safe: atomics and kill()
  (void)signal(sig, SIG_DFL);
  (void)raise(sig);
}

void InstallFallbacksOnce() {
  static std::once_flag once;
  std::call_once(once, [] {
    (void)std::atexit(TerminateRegisteredMasters);
    for (int sig : {SIGINT, SIGTERM, SIGHUP}) {
      struct sigaction current {};
      // Leave a handler that someone else installed alone.
      if (sigaction(sig, nullptr, &current) == 0 && current.sa_handler == SIG_DFL) {
        struct sigaction action {};
        action.sa_handler = OnFatalSignal;
        sigemptyset(&action.sa_mask);
        sigaction(sig, &action, nullptr);
      }
    }
  });
}

void RegisterMaster(pid_t pid) {
  InstallFallbacksOnce();
  for (auto& slot : g_masters) {
    pid_t expected = 0;
    if (slot.compare_exchange_strong(expected, pid)) return;
  }
  // Table full: this server just has no fallback.
}

void UnregisterMaster(pid_t pid) {
  for (auto& slot : g_masters) {
    pid_t expected = pid;
    if (slot.compare_exchange_strong(expected, 0)) return;
  }
}

// --- Helpers -------------------------------------------------------------------

std::string TempRoot() {
  const char* tmpdir = getenv("TMPDIR");
  return tmpdir != nullptr && *tmpdir != '\0' ? tmpdir : "/tmp";
}

std::string Describe(const CommandResult& result) {
  std::ostringstream text;
  text << "exit code " << result.exit_code << (result.timed_out ? " (timed out)" : "");
  if (!result.err.empty()) text << "\nstderr:\n" << result.err;
  if (!result.out.empty()) text << "\nstdout:\n" << result.out;
  return text.str();
}

CommandResult RunScript(const std::string& arguments) {
  RunOptions options;
  options.timeout = kScriptTimeout;
  return RunCommand(ShellQuote(kScript) + " " + arguments, options);
}

// Undoes the script's shell_quote: a plain word, or '...' with '\'' inside.
std::string ShellUnquote(const std::string& value) {
  if (value.size() < 2 || value.front() != '\'') return value;
  std::string plain;
  bool quoted = false;
  for (size_t i = 0; i < value.size(); ++i) {
    const char c = value[i];
    if (c == '\'') {
      quoted = !quoted;
    } else if (c == '\\' && !quoted && i + 1 < value.size()) {
      plain += value[++i];
    } else {
      plain += c;
    }
  }
  return plain;
}

// Parses the KEY=VALUE lines that `dovecot-fixture start` prints.
std::map<std::string, std::string> ParseEnvLines(const std::string& text) {
  std::map<std::string, std::string> vars;
  std::istringstream lines(text);
  std::string line;
  while (std::getline(lines, line)) {
    const size_t eq = line.find('=');
    if (eq == std::string::npos || line.rfind("MM_", 0) != 0) continue;
    vars[line.substr(0, eq)] = ShellUnquote(line.substr(eq + 1));
  }
  return vars;
}

std::optional<int> ParseInt(const std::string& text) {
  size_t begin = text.find_first_not_of(" \t\r\n");
  size_t end = text.find_last_not_of(" \t\r\n");
  if (begin == std::string::npos) return std::nullopt;
  int value = 0;
  const char* first = text.data() + begin;
  const char* last = text.data() + end + 1;
  auto [ptr, ec] = std::from_chars(first, last, value);
  if (ec != std::errc() || ptr != last) return std::nullopt;
  return value;
}

std::string LastLines(const std::string& path, size_t count) {
  std::ifstream file(path);
  std::deque<std::string> lines;
  std::string line;
  while (std::getline(file, line)) {
    lines.push_back(line);
    if (lines.size() > count) lines.pop_front();
  }
  std::string text;
  for (const auto& l : lines) text += l + "\n";
  return text;
}

void RemoveDir(const std::string& dir) {
  std::error_code ignored;
  std::filesystem::remove_all(dir, ignored);
}

}  // namespace

std::unique_ptr<DovecotServer> DovecotServer::Start(const DovecotOptions& options) {
  std::string dir_template = TempRoot() + "/mailmirror-dovecot-XXXXXX";
  if (mkdtemp(dir_template.data()) == nullptr) {
    ADD_FAILURE() << "mkdtemp(" << dir_template << ") failed: " << std::strerror(errno);
    return nullptr;
  }
  const std::string dir = dir_template;

  std::string arguments = "start " + ShellQuote(dir);
  if (!options.hide_capabilities.empty()) {
    std::string names;
    for (const auto& name : options.hide_capabilities) {
      if (!names.empty()) names += ' ';
      names += name;
    }
    arguments += " --hide-capabilities " + ShellQuote(names);
  }
  if (options.compress) arguments += " --compress";
  if (!options.all_mail_folder.empty()) {
    arguments += " --all-mail " + ShellQuote(options.all_mail_folder);
  }
  for (const std::string& special_use : options.special_use) {
    arguments += " --special-use " + ShellQuote(special_use);
  }
  if (options.max_connections > 0) {
    arguments += " --max-connections " + std::to_string(options.max_connections);
  }

  const CommandResult result = RunScript(arguments);
  auto fail = [&](const std::string& why) -> std::unique_ptr<DovecotServer> {
    ADD_FAILURE() << "could not start the Dovecot fixture in " << dir << ": " << why << "\n"
                  << Describe(result);
    (void)RunScript("stop " + ShellQuote(dir));  // in case it half started
    RemoveDir(dir);
    return nullptr;
  };
  if (result.exit_code != 0) return fail("dovecot-fixture start failed");

  std::map<std::string, std::string> vars = ParseEnvLines(result.out);
  const std::optional<int> imap_port = ParseInt(vars["MM_IMAP_PORT"]);
  const std::optional<int> imaps_port = ParseInt(vars["MM_IMAPS_PORT"]);
  const std::optional<int> pid = ParseInt(vars["MM_PID"]);
  if (!imap_port || !imaps_port || !pid || vars["MM_CA_FILE"].empty()) {
    return fail("unexpected output from dovecot-fixture start");
  }

  std::unique_ptr<DovecotServer> server(new DovecotServer());
  server->dir_ = vars["MM_DOVECOT_DIR"].empty() ? dir : vars["MM_DOVECOT_DIR"];
  server->ca_file_ = vars["MM_CA_FILE"];
  server->imap_port_ = *imap_port;
  server->imaps_port_ = *imaps_port;
  server->master_pid_ = static_cast<pid_t>(*pid);
  server->running_ = true;
  RegisterMaster(server->master_pid_);
  return server;
}

DovecotServer::~DovecotServer() {
  if (::testing::Test::HasFailure()) {
    (void)std::fprintf(stderr, "--- last lines of %s ---\n%s", log_path().c_str(),
                       LastLines(log_path(), 40).c_str());
  }
  Stop();
  const char* keep = getenv("MAILMIRROR_KEEP_FIXTURE");
  if (keep != nullptr && *keep != '\0' && std::string(keep) != "0") {
    (void)std::fprintf(stderr, "MAILMIRROR_KEEP_FIXTURE: keeping %s\n", dir_.c_str());
    return;
  }
  RemoveDir(dir_);
}

bool DovecotServer::Stop() {
  if (!running_) return true;
  running_ = false;
  const CommandResult result = RunScript("stop " + ShellQuote(dir_));
  UnregisterMaster(master_pid_);
  if (result.exit_code != 0) {
    ADD_FAILURE() << "dovecot-fixture stop " << dir_ << " failed: " << Describe(result);
    return false;
  }
  return true;
}

bool DovecotServer::Seed(const std::string& user) {
  const CommandResult result = RunScript("seed " + ShellQuote(dir_) + " " + ShellQuote(user));
  if (result.exit_code != 0) {
    ADD_FAILURE() << "dovecot-fixture seed " << user << " failed: " << Describe(result);
    return false;
  }
  return true;
}

bool DovecotServer::AddMessage(const std::string& user, const std::string& folder,
                               const std::string& message, bool seen) {
  std::string path = dir_ + "/incoming-XXXXXX";
  const int fd = mkstemp(path.data());
  if (fd < 0) {
    ADD_FAILURE() << "mkstemp(" << path << ") failed: " << std::strerror(errno);
    return false;
  }
  size_t written = 0;
  while (written < message.size()) {
    const ssize_t n = write(fd, message.data() + written, message.size() - written);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    written += static_cast<size_t>(n);
  }
  close(fd);
  if (written != message.size()) {
    ADD_FAILURE() << "could not write " << path;
    unlink(path.c_str());
    return false;
  }
  const CommandResult result =
      RunScript("add " + ShellQuote(dir_) + " " + ShellQuote(user) + " " + ShellQuote(folder) +
                " " + ShellQuote(path) + (seen ? " --seen" : ""));
  unlink(path.c_str());
  if (result.exit_code != 0) {
    ADD_FAILURE() << "dovecot-fixture add " << user << " " << folder
                  << " failed: " << Describe(result);
    return false;
  }
  return true;
}

int DovecotServer::Count(const std::string& user, const std::string& folder) {
  const CommandResult result =
      RunScript("count " + ShellQuote(dir_) + " " + ShellQuote(user) + " " + ShellQuote(folder));
  const std::optional<int> count = ParseInt(result.out);
  if (result.exit_code != 0 || !count) {
    ADD_FAILURE() << "dovecot-fixture count " << user << " " << folder
                  << " failed: " << Describe(result);
    return -1;
  }
  return *count;
}

bool DovecotServer::SeedBulk(const std::string& user, const BulkOptions& options) {
  RunOptions run;
  run.timeout = std::chrono::seconds(120);
  const CommandResult result =
      RunCommand(ShellQuote(kScript) + " seed-bulk " + ShellQuote(dir_) + " " + ShellQuote(user) +
                     " --count " + std::to_string(options.count) + " --big-mb " +
                     std::to_string(options.big_mb),
                 run);
  if (result.exit_code != 0) {
    ADD_FAILURE() << "dovecot-fixture seed-bulk " << user << " failed: " << Describe(result);
    return false;
  }
  return true;
}

std::optional<std::vector<ServerMessage>> DovecotServer::Messages(const std::string& user) {
  const CommandResult result = RunScript("dump " + ShellQuote(dir_) + " " + ShellQuote(user));
  if (result.exit_code != 0) {
    ADD_FAILURE() << "dovecot-fixture dump " << user << " failed: " << Describe(result);
    return std::nullopt;
  }
  std::vector<ServerMessage> messages;
  std::istringstream lines(result.out);
  std::string line;
  while (std::getline(lines, line)) {
    std::vector<std::string> fields;
    size_t start = 0;
    for (;;) {
      const size_t tab = line.find('\t', start);
      fields.push_back(
          line.substr(start, tab == std::string::npos ? std::string::npos : tab - start));
      if (tab == std::string::npos) break;
      start = tab + 1;
    }
    const std::optional<int> uid = fields.size() == 4 ? ParseInt(fields[1]) : std::nullopt;
    if (!uid || *uid <= 0) {
      ADD_FAILURE() << "dovecot-fixture dump " << user << ": bad line \"" << line << "\"";
      return std::nullopt;
    }
    ServerMessage message;
    message.folder = fields[0];
    message.uid = static_cast<uint32_t>(*uid);
    std::istringstream flags(fields[2]);
    std::string flag;
    while (flags >> flag) message.flags.push_back(flag);
    message.file = fields[3];
    messages.push_back(std::move(message));
  }
  return messages;
}

bool DovecotServer::Recreate(const std::string& user, const std::string& folder, int min_next_uid) {
  const CommandResult result =
      RunScript("recreate " + ShellQuote(dir_) + " " + ShellQuote(user) + " " + ShellQuote(folder) +
                " --min-next-uid " + std::to_string(min_next_uid));
  if (result.exit_code != 0) {
    ADD_FAILURE() << "dovecot-fixture recreate " << user << " " << folder
                  << " failed: " << Describe(result);
    return false;
  }
  return true;
}

}  // namespace mailmirror::testing
