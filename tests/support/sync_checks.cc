#include "support/sync_checks.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <map>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace mailmirror::testing {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

std::optional<uint32_t> ParseUid(const std::string& name) {
  const size_t pos = name.find(",U=");
  if (pos == std::string::npos) return std::nullopt;
  size_t i = pos + 3;
  uint64_t value = 0;
  size_t digits = 0;
  while (i < name.size() && name[i] >= '0' && name[i] <= '9' && digits < 11) {
    value = value * 10 + static_cast<uint64_t>(name[i] - '0');
    ++i;
    ++digits;
  }
  if (digits == 0 || value == 0 || value > UINT32_MAX) return std::nullopt;
  if (i < name.size() && name[i] != ':' && name[i] != ',') return std::nullopt;
  return static_cast<uint32_t>(value);
}

LocalFile ParseLocal(const std::string& folder, const std::string& subdir, const fs::path& path) {
  LocalFile file;
  file.folder = folder;
  file.subdir = subdir;
  file.name = path.filename().string();
  file.path = path.string();
  const size_t info = file.name.find(":2,");
  if (info != std::string::npos) file.flags = file.name.substr(info + 3);
  const std::string base = file.name.substr(0, info);
  file.stem = base.substr(0, base.find(",U="));
  file.uid = ParseUid(base);
  return file;
}

void VisitLocal(const fs::path& dir, const std::string& rel, LocalTree& tree) {
  std::error_code ec;
  const bool is_maildir = fs::is_directory(dir / "cur", ec) && fs::is_directory(dir / "new", ec) &&
                          fs::is_directory(dir / "tmp", ec);
  if (is_maildir) {
    tree.folders.insert(rel.empty() ? "(root)" : rel);
    for (const char* sub : {"cur", "new"}) {
      for (const auto& entry : fs::directory_iterator(dir / sub, ec)) {
        if (entry.is_regular_file(ec)) {
          tree.files.push_back(ParseLocal(rel.empty() ? "(root)" : rel, sub, entry.path()));
        }
      }
    }
    for (const auto& entry : fs::directory_iterator(dir / "tmp", ec)) {
      tree.tmp_files.push_back(entry.path().string());
    }
  }
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    if (!entry.is_directory(ec) || entry.is_symlink(ec)) continue;
    const std::string name = entry.path().filename().string();
    if (is_maildir && (name == "cur" || name == "new" || name == "tmp")) continue;
    if (rel.empty() && (name == ".mailmirror" || name == ".notmuch")) continue;
    VisitLocal(entry.path(), rel.empty() ? name : rel + "/" + name, tree);
  }
}

long ParseField(const std::string& line, const std::string& key) {
  const size_t pos = line.find(" " + key + "=");
  if (pos == std::string::npos) return 0;
  return std::strtol(line.c_str() + pos + key.size() + 2, nullptr, 10);
}

}  // namespace

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

double Seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

std::string Excerpt(const std::string& text, size_t max) {
  if (text.size() <= max) return text;
  return text.substr(0, max / 2) + "\n[... " + std::to_string(text.size() - max) + " bytes ...]\n" +
         text.substr(text.size() - max / 2);
}

std::string Join(const std::vector<std::string>& problems, size_t max) {
  std::string text;
  for (size_t i = 0; i < problems.size() && i < max; ++i) text += "  " + problems[i] + "\n";
  if (problems.size() > max)
    text += "  ... and " + std::to_string(problems.size() - max) + " more\n";
  return text;
}

// --- Child ---------------------------------------------------------------------------

Child::Child(const std::string& command, const std::string& out_path, const std::string& err_path)
    : out_path_(out_path), err_path_(err_path), start_(Clock::now()) {
  const std::string script = "exec " + command;
  pid_ = fork();
  if (pid_ == 0) {
    setpgid(0, 0);
    int in = open("/dev/null", O_RDONLY);
    int out = open(out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    int err = open(err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (in < 0 || out < 0 || err < 0) _exit(127);
    dup2(in, 0);
    dup2(out, 1);
    dup2(err, 2);
    execl("/bin/sh", "sh", "-c", script.c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  if (pid_ > 0) setpgid(pid_, pid_);  // either side may win the race
}

Child::~Child() {
  if (pid_ > 0 && !reaped_) {
    Kill();
    (void)Wait(std::chrono::seconds(10));
  }
}

void Child::Kill() {
  if (pid_ > 0 && !reaped_) kill(-pid_, SIGKILL);
}

bool Child::Exited() {
  if (reaped_) return true;
  int status = 0;
  rusage usage{};
  const pid_t r = wait4(pid_, &status, WNOHANG, &usage);
  if (r == pid_) Record(status, usage);
  return reaped_;
}

ChildExit Child::Wait(Clock::duration timeout) {
  const auto deadline = Clock::now() + timeout;
  while (!Exited()) {
    if (Clock::now() >= deadline) {
      exit_.timed_out = true;
      kill(-pid_, SIGKILL);
      int status = 0;
      rusage usage{};
      if (wait4(pid_, &status, 0, &usage) == pid_) Record(status, usage);
      reaped_ = true;
      break;
    }
    std::this_thread::sleep_for(milliseconds(2));
  }
  return exit_;
}

void Child::Record(int status, const rusage& usage) {
  reaped_ = true;
  exit_.elapsed = Clock::now() - start_;
  exit_.max_rss_kb = usage.ru_maxrss;
  if (WIFEXITED(status)) exit_.exit_code = WEXITSTATUS(status);
  if (WIFSIGNALED(status)) exit_.exit_code = 128 + WTERMSIG(status);
}

// --- The local Maildir tree ---------------------------------------------------------

LocalTree ScanLocal(const std::string& root) {
  LocalTree tree;
  VisitLocal(root, "", tree);
  std::sort(tree.files.begin(), tree.files.end(),
            [](const LocalFile& a, const LocalFile& b) { return a.path < b.path; });
  return tree;
}

std::string ExpectedLetters(const std::vector<std::string>& flags) {
  std::string letters;
  for (const std::string& flag : flags) {
    if (flag == "\\Draft") letters += 'D';
    if (flag == "\\Flagged") letters += 'F';
    if (flag == "$Forwarded") letters += 'P';
    if (flag == "\\Answered") letters += 'R';
    if (flag == "\\Seen") letters += 'S';
    if (flag == "\\Deleted") letters += 'T';
  }
  std::sort(letters.begin(), letters.end());
  return letters;
}

std::vector<std::string> MirrorProblems(const std::vector<ServerMessage>& server_messages,
                                        const std::string& root) {
  using Key = std::pair<std::string, uint32_t>;  // folder, UID
  std::map<Key, const ServerMessage*> server;
  for (const ServerMessage& message : server_messages) {
    server[{message.folder, message.uid}] = &message;
  }
  std::map<Key, int> seen;
  std::vector<std::string> problems;
  for (const LocalFile& file : ScanLocal(root).files) {
    if (!file.uid) {
      problems.push_back(file.path + ": no ,U=");
      continue;
    }
    Key key{file.folder, *file.uid};
    auto it = server.find(key);
    if (it == server.end()) {
      problems.push_back(file.path + ": no server message " + file.folder + " UID " +
                         std::to_string(*file.uid));
      continue;
    }
    if (++seen[key] > 1) problems.push_back(file.path + ": a second file for the message");
    if (file.flags.value_or("") != ExpectedLetters(it->second->flags)) {
      problems.push_back(file.path + ": flags " + file.flags.value_or("(none)") +
                         ", the server has " + ExpectedLetters(it->second->flags));
    }
    if (ReadFile(file.path) != ReadFile(it->second->file)) {
      problems.push_back(file.path + ": content");
    }
  }
  for (const auto& [key, message] : server) {
    if (seen.count(key) == 0) {
      problems.push_back("missing locally: " + key.first + " UID " + std::to_string(key.second));
    }
  }
  return problems;
}

// --- The server's log ------------------------------------------------------------------

size_t LogSize(const DovecotServer& server) {
  std::error_code ec;
  const auto size = fs::file_size(server.log_path(), ec);
  return ec ? 0 : static_cast<size_t>(size);
}

// Sums body_count and body_bytes over the sessions of `user` that logged in
// after `offset` in the log, waiting (at most 10 s) until each has ended.
FetchStats FetchesSince(const DovecotServer& server, size_t offset, const std::string& user) {
  FetchStats stats;
  const auto deadline = Clock::now() + std::chrono::seconds(10);
  for (;;) {
    stats = {};
    const std::string log = ReadFile(server.log_path());
    std::istringstream lines(offset < log.size() ? log.substr(offset) : std::string());
    std::string line;
    while (std::getline(lines, line)) {
      if (line.find("imap-login: Info: Login: user=<" + user + ">") != std::string::npos) {
        ++stats.logins;
      } else if (line.find("imap(" + user + ")") != std::string::npos &&
                 line.find("body_count=") != std::string::npos) {
        ++stats.sessions_ended;
        stats.body_count += ParseField(line, "body_count");
        stats.body_bytes += ParseField(line, "body_bytes");
      }
    }
    if (stats.sessions_ended >= stats.logins || Clock::now() >= deadline) return stats;
    std::this_thread::sleep_for(milliseconds(20));
  }
}

// --- Running the binary -------------------------------------------------------------

std::string AliceAccount(const DovecotServer& server, const std::string& maildir) {
  return "[accounts.test]\nhost = \"127.0.0.1\"\nport = " + std::to_string(server.imaps_port()) +
         "\nca_file = \"" + server.ca_file() +
         "\"\nuser = \"alice\"\npassword = \"alice-secret\"\nmaildir = \"" + maildir + "\"\n";
}

std::string DoveadmCommand(const DovecotServer& server, const std::string& user,
                           const std::string& arguments) {
  const char* path = getenv("PATH");
  return "env -i PATH=" +
         ShellQuote(std::string(path != nullptr ? path : "/usr/bin:/bin") + ":/usr/sbin:/sbin") +
         " USER=" + ShellQuote(user) + " HOME=" + ShellQuote(server.dir() + "/home/" + user) +
         " doveadm -c " + ShellQuote(server.dir() + "/dovecot.conf") + " " + arguments;
}

void WriteNotmuchConfig(const std::string& path, const std::string& database,
                        const std::string& mail_root, bool synchronize_flags) {
  std::filesystem::create_directories(database);
  std::ofstream out(path);
  out << "[database]\npath=" << database << "\nmail_root=" << mail_root
      << "\n\n[user]\nname=Test\nprimary_email=alice@example.test\n\n"
      << "[new]\ntags=unread;inbox;\nignore=.mailmirror;\n\n[search]\nexclude_tags=\n\n"
      << "[maildir]\nsynchronize_flags=" << (synchronize_flags ? "true" : "false") << "\n";
}

std::string SyncCommand(const std::string& config, const std::string& flags) {
  return ShellQuote(MAILMIRROR_BINARY) + " -c " + ShellQuote(config) + " " + flags + " sync";
}

std::string Report(const CommandResult& result) {
  return "exit " + std::to_string(result.exit_code) + (result.timed_out ? " (timed out)" : "") +
         "\nstdout:\n" + Excerpt(result.out) + "\nstderr:\n" + Excerpt(result.err);
}

}  // namespace mailmirror::testing
