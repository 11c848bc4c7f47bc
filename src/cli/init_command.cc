#include "cli/init_command.h"

#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstring>
#include <ctime>
#include <iostream>
#include <optional>

#include "cli/accounts.h"
#include "cli/list_command.h"
#include "mailmirror/config.h"
#include "mailmirror/providers.h"
#include "store/folder_map.h"
#include "util/fs.h"
#include "util/log.h"
#include "util/strings.h"

namespace mailmirror::cli {
namespace {

// A TOML basic string: quotes, backslashes and control characters escaped.
std::string Quoted(const std::string& value) {
  std::string out = "\"";
  for (const char c : value) {
    const auto byte = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (byte < 0x20 || byte == 0x7f) {
      char escape[8];
      (void)std::snprintf(escape, sizeof escape, "\\u%04x", byte);
      out += escape;
    } else {
      out += c;
    }
  }
  return out + "\"";
}

// Account names become TOML bare keys and directory names.
bool ValidAccountName(const std::string& name) {
  if (name.empty() || name.size() > 64) return false;
  for (const char c : name) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_') return false;
  }
  return true;
}

// Providers that accept OAuth 2.0 only: no password to ask for.
bool OAuthOnly(const Provider* provider) {
  return provider != nullptr && provider->auth == AuthMechanism::kXoauth2;
}

std::string ProviderNames() {
  std::string names;
  for (const Provider& provider : Providers()) {
    names += (names.empty() ? "" : ", ") + std::string(provider.name);
  }
  return names;
}

std::string Parent(const std::string& path) {
  const size_t slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  return slash == 0 ? "/" : path.substr(0, slash);
}

}  // namespace

std::string InitConfigText(const InitOptions& options, const std::string& password) {
  const Provider* provider = options.provider.empty() ? nullptr : FindProvider(options.provider);
  std::string text;
  text += "# mailmirror configuration, written by `mailmirror init` on " +
          FormatLocalTime(std::time(nullptr), "%Y-%m-%d") +
          ".\n# Every key, with its default, is described in mailmirror.conf(5).\n\n"
          "# Accounts synced at once when `mailmirror sync` names none.\n"
          "# max_accounts = 4\n\n";
  text += "[accounts." + options.account + "]\n";
  if (provider != nullptr) {
    text += "provider = " + Quoted(provider->name) + "  # sets host, port, TLS and sign-in (" +
            provider->host + ")\n";
  }
  if (!options.host.empty()) {
    text += "host = " + Quoted(options.host) + "\n";
  } else {
    text += "# host = \"imap.example.com\"  # overrides the provider's\n";
  }
  if (options.port != 0) {
    text += "port = " + std::to_string(options.port) + "\n";
  } else {
    text += "# port = 993\n";
  }
  if (!options.tls.empty()) {
    text += "tls = " + Quoted(options.tls) + "  # \"implicit\", \"starttls\" or \"none\"\n";
  } else {
    text += "# tls = \"implicit\"  # or \"starttls\" (port 143), \"none\"\n";
  }
  if (!options.ca_file.empty()) text += "ca_file = " + Quoted(options.ca_file) + "\n";
  text += "user = " + Quoted(options.user) + "\n";
  if (OAuthOnly(provider)) {
    text += "# Signs in with OAuth 2.0: run `mailmirror auth " + options.account +
            "` once; sync refreshes the token.\n";
    if (!options.oauth_client_id.empty()) {
      text += "oauth_client_id = " + Quoted(options.oauth_client_id) + "\n";
    } else {
      text += "# oauth_client_id = \"<the id of your app registration>\"  # needed by auth\n";
    }
  } else if (!options.password_cmd.empty()) {
    text += "password_cmd = " + Quoted(options.password_cmd) +
            "  # prints the password on its first line\n";
  } else {
    text += "password = " + Quoted(password) + "\n# password_cmd = \"pass show mail/" +
            options.account + "\"  # instead of keeping the password here\n";
  }
  text += "maildir = " + Quoted(options.maildir) + "\n";
  text +=
      "# layout = \"verbatim\"  # Archive/2023 -> <maildir>/Archive/2023; \"maildir++\": "
      ".Archive.2023\n"
      "# folders = [\"*\", \"!Trash\"]  # globs on folder names; \"!\" excludes; last match wins\n"
      "# direction = \"both\"  # or \"pull\" (the server is the master), \"push\"\n"
      "# expunge = \"both\"  # where deletions are repeated: \"both\", \"local\", \"remote\", "
      "\"none\"\n"
      "# connections = 4  # IMAP sessions at once\n";
  return text;
}

int RunInit(InitOptions options, const Prompt& prompt, bool quiet) {
  auto fail = [](ErrorKind kind, const std::string& message) {
    Log(LogLevel::kError, message);
    return ExitCodeFor(kind);
  };
  if (!ValidAccountName(options.account)) {
    return fail(ErrorKind::kUsage,
                "--account " + options.account + ": use letters, digits, '-' and '_' (at most 64)");
  }
  auto ask = [&prompt](const std::string& question, bool secret) -> std::optional<std::string> {
    if (!prompt) return std::nullopt;
    std::optional<std::string> answer = prompt(question, secret);
    if (answer && !secret) *answer = std::string(Trim(*answer));
    return answer;
  };

  if (options.provider.empty() && options.host.empty()) {
    std::optional<std::string> answer =
        ask("Provider (" + ProviderNames() + ") or IMAP server host name: ", false);
    if (!answer || answer->empty()) {
      return fail(ErrorKind::kUsage, "init needs --provider or --host (" + ProviderNames() + ")");
    }
    (FindProvider(*answer) != nullptr ? options.provider : options.host) = *answer;
  }
  const Provider* provider = nullptr;
  if (!options.provider.empty()) {
    provider = FindProvider(options.provider);
    if (provider == nullptr) {
      return fail(ErrorKind::kUsage,
                  "unknown provider \"" + options.provider + "\"; known: " + ProviderNames());
    }
  }
  if (options.user.empty()) {
    std::optional<std::string> answer = ask("User name (usually your mail address): ", false);
    if (!answer || answer->empty()) return fail(ErrorKind::kUsage, "init needs --user");
    options.user = *answer;
  }
  std::string password;
  if (!OAuthOnly(provider) && options.password_cmd.empty()) {
    std::optional<std::string> answer = ask("Password (not shown): ", true);
    if (!answer || answer->empty()) {
      return fail(ErrorKind::kUsage,
                  "init needs a password: give --password-cmd COMMAND, or run it on a terminal "
                  "to type the password");
    }
    password = *answer;
  }
  if (options.maildir.empty()) options.maildir = "~/Mail/" + options.account;

  struct stat st {};
  if (::stat(options.config_path.c_str(), &st) == 0 && !options.force) {
    return fail(ErrorKind::kCantCreate, "cannot create " + options.config_path +
                                            ": it exists; edit it, or give --force to replace it");
  }
  if (Status made = MakeDirectories(Parent(options.config_path), 0700); !made.ok()) {
    return fail(made.error().kind, made.error().message);
  }
  // 0600: the file may hold a password.
  if (Status written =
          WriteFileAtomically(options.config_path, InitConfigText(options, password), 0600, true);
      !written.ok()) {
    return fail(written.error().kind, written.error().message);
  }
  if (!quiet) std::cout << "Wrote " << options.config_path << " (mode 0600).\n";

  if (OAuthOnly(provider)) {
    if (!quiet) {
      std::cout << "Next: "
                << (options.oauth_client_id.empty()
                        ? "set oauth_client_id in the file (your app registration), then "
                        : "")
                << "run `mailmirror auth " << options.account
                << "` to sign in, then `mailmirror sync " << options.account << "`.\n";
    }
    return 0;
  }
  if (!options.check) return 0;

  // The check: load the file as sync will, log in, list.
  Result<Config> config = LoadConfig(options.config_path);
  if (!config.ok()) return fail(config.error().kind, config.error().message);
  Result<std::vector<const AccountConfig*>> accounts = SelectAccounts(*config, {options.account});
  if (!accounts.ok()) return fail(accounts.error().kind, accounts.error().message);
  std::vector<AccountListing> listings = ListAccounts(*accounts);
  if (!listings.front().mailboxes.ok()) {
    const Error& error = listings.front().mailboxes.error();
    Log(LogLevel::kError, error.Wrap("account " + options.account).message);
    Log(LogLevel::kError, "the configuration is kept in " + options.config_path +
                              ": correct it, or run init again with --force");
    return ExitCodeFor(error.kind);
  }
  const AccountConfig& account = *accounts->front();
  size_t selected = 0;
  for (const imap::MailboxInfo& mailbox : *listings.front().mailboxes) {
    if (mailbox.selectable && store::FolderSelected(account.folders, mailbox.name)) ++selected;
  }
  if (!quiet) {
    std::cout << "Logged in. `mailmirror sync " << options.account << "` would mirror "
              << CountOf(selected, "folder", "folders") << " into " << account.maildir << ":\n";
    PrintListings(listings, std::cout);
  }
  return 0;
}

namespace {

// The terminal's settings while a secret is typed with echo off, for the
// signal handler below.
termios g_echoing{};

// Ctrl-C (or a kill) at the password question must not leave the terminal
// without echo: restore it, then die of the signal as we would have.
void RestoreEchoAndDie(int signal_number) {
  (void)::tcsetattr(STDIN_FILENO, TCSANOW, &g_echoing);
  (void)std::signal(signal_number, SIG_DFL);
  (void)std::raise(signal_number);
}

}  // namespace

Prompt TerminalPrompt() {
  if (::isatty(STDIN_FILENO) == 0) return nullptr;
  return [](const std::string& question, bool secret) -> std::optional<std::string> {
    std::cerr << question << std::flush;
    termios saved{};
    const bool hide = secret && ::tcgetattr(STDIN_FILENO, &saved) == 0;
    constexpr int kSignals[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT};
    using Handler = void (*)(int);
    Handler previous[std::size(kSignals)] = {};
    if (hide) {
      g_echoing = saved;
      for (size_t i = 0; i < std::size(kSignals); ++i) {
        previous[i] = std::signal(kSignals[i], RestoreEchoAndDie);
      }
      termios quiet = saved;
      quiet.c_lflag &= ~static_cast<tcflag_t>(ECHO);
      (void)::tcsetattr(STDIN_FILENO, TCSANOW, &quiet);  // keeps typed-ahead input
    }
    std::string answer;
    const bool got = static_cast<bool>(std::getline(std::cin, answer));
    if (hide) {
      (void)::tcsetattr(STDIN_FILENO, TCSANOW, &saved);
      for (size_t i = 0; i < std::size(kSignals); ++i) (void)std::signal(kSignals[i], previous[i]);
      std::cerr << '\n';  // the Enter the terminal did not echo
    }
    if (!got) return std::nullopt;
    return answer;
  };
}

}  // namespace mailmirror::cli
