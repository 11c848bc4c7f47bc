#include "cli/app.h"

#include <unistd.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdlib>
#include <iostream>
#include <string>
#include <thread>
#include <vector>

#include "cli/accounts.h"
#include "cli/init_command.h"
#include "cli/json_report.h"
#include "cli/list_command.h"
#include "cli/migrate_command.h"
#include "cli/status_command.h"
#include "cli/sync_command.h"
#include "cli/verify_command.h"
#include "mailmirror/config.h"
#include "mailmirror/providers.h"
#include "mailmirror/status.h"
#include "oauth/oauth_client.h"
#include "util/log.h"
#include "util/strings.h"
#include "util/version.h"

namespace mailmirror::cli {
namespace {

constexpr int kExitOk = 0;
constexpr int kExitMirrorDiffers = 1;  // verify found differences

int Report(const Error& error) {
  Log(LogLevel::kError, error.message);
  return ExitCodeFor(error.kind);
}

// Commands report every failure; their exit code is the first one's.
class FirstFailure {
 public:
  void Note(const Error& error) {
    const int code = Report(error);
    if (code_ == kExitOk) code_ = code;
  }
  int code() const { return code_; }

 private:
  int code_ = kExitOk;
};

struct GlobalOptions {
  std::string config_path;
  std::string log_file;
  int verbosity = 0;
  bool quiet = false;
};

// Live progress lines only for a person watching: stdout is a terminal
// that can move its cursor, and neither -q nor --json was given.
bool ShowProgress(const GlobalOptions& global, bool json) {
  if (global.quiet || json || ::isatty(STDOUT_FILENO) == 0) return false;
  const char* term = std::getenv("TERM");
  return term != nullptr && *term != '\0' && std::string_view(term) != "dumb";
}

// Loads the config and prints its warnings.
Result<Config> Load(const GlobalOptions& global) {
  Result<Config> config = LoadConfig(global.config_path);
  if (config.ok()) {
    for (const std::string& warning : config->warnings) Log(LogLevel::kWarning, warning);
  }
  return config;
}

int RunList(const GlobalOptions& global, const std::vector<std::string>& names) {
  Result<Config> config = Load(global);
  if (!config.ok()) return Report(config.error());
  Result<std::vector<const AccountConfig*>> accounts = SelectAccounts(*config, names);
  if (!accounts.ok()) return Report(accounts.error());

  std::vector<AccountListing> listings = ListAccounts(*accounts);
  PrintListings(listings, std::cout);
  std::cout.flush();
  FirstFailure failures;
  for (const AccountListing& listing : listings) {
    if (listing.mailboxes.ok()) continue;
    failures.Note(listing.mailboxes.error().Wrap("account " + listing.account->name));
  }
  return failures.code();
}

// What `sync` prints besides its own lines: --shard, --json.
struct SyncFlags {
  std::string shard;
  bool json = false;
};

int RunSync(const GlobalOptions& global, const std::vector<std::string>& names,
            const sync::SyncOptions& options, const SyncFlags& flags = {}) {
  const auto started = std::chrono::steady_clock::now();
  // A run stopped before any account: still one JSON object with --json.
  auto stopped = [&](const Error& error) {
    const int code = Report(error);
    if (flags.json) std::cout << SyncReportJson({}, 0, code, error) << std::endl;
    return code;
  };
  const std::string& shard_text = flags.shard;
  Result<Config> config = Load(global);
  if (!config.ok()) return stopped(config.error());
  Result<std::vector<const AccountConfig*>> accounts = SelectAccounts(*config, names);
  if (!accounts.ok()) return stopped(accounts.error());
  if (!shard_text.empty()) {
    Result<Shard> shard = ParseShard(shard_text);
    if (!shard.ok()) return stopped(shard.error());
    std::erase_if(*accounts,
                  [&](const AccountConfig* account) { return !InShard(account->name, *shard); });
    Log(LogLevel::kInfo,
        "shard " + shard_text + ": " + std::to_string(accounts->size()) + " account(s)");
    if (accounts->empty()) {
      if (flags.json) std::cout << SyncReportJson({}, 0, kExitOk) << std::endl;
      return kExitOk;
    }
  }

  SyncOutput output;
  output.max_accounts = config->max_accounts;
  if (!global.quiet && !flags.json) output.out = &std::cout;
  output.options = options;
  output.progress = ShowProgress(global, flags.json);
  output.options.folder_sizes = output.progress;
  std::vector<sync::AccountReport> reports = SyncAccounts(*accounts, output);
  FirstFailure failures;
  for (size_t i = 0; i < reports.size(); ++i) {
    const sync::AccountReport& report = reports[i];
    const std::string context = "account " + (*accounts)[i]->name;
    if (!report.status.ok()) failures.Note(report.status.error().Wrap(context));
    for (const sync::FolderReport& folder : report.folders) {
      if (!folder.status.ok()) failures.Note(folder.status.error().Wrap(context));
    }
  }
  if (flags.json) {
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    std::cout << SyncReportJson(reports, seconds, failures.code()) << std::endl;
  }
  return failures.code();
}

// Sets the index aside and syncs, which rebuilds it (folders whose flags
// differ between the sides get their second pass within the run).
int RunRepair(const GlobalOptions& global, const std::vector<std::string>& names) {
  sync::SyncOptions rebuild;
  rebuild.rebuild_index = true;
  return RunSync(global, names, rebuild);
}

int RunStatus(const GlobalOptions& global, const std::vector<std::string>& names, bool remote) {
  Result<Config> config = Load(global);
  if (!config.ok()) return Report(config.error());
  Result<std::vector<const AccountConfig*>> accounts = SelectAccounts(*config, names);
  if (!accounts.ok()) return Report(accounts.error());
  std::vector<AccountStatus> statuses = CollectStatus(*accounts, remote);
  PrintStatus(statuses, std::cout);
  std::cout.flush();
  FirstFailure failures;
  for (const AccountStatus& status : statuses) {
    if (status.status.ok()) continue;
    failures.Note(status.status.error().Wrap("account " + status.account->name));
  }
  return failures.code();
}

// Audits each account's mirror; exits 1 when it differs from the server.
int RunVerify(const GlobalOptions& global, const std::vector<std::string>& names,
              const sync::AuditOptions& options) {
  Result<Config> config = Load(global);
  if (!config.ok()) return Report(config.error());
  Result<std::vector<const AccountConfig*>> accounts = SelectAccounts(*config, names);
  if (!accounts.ok()) return Report(accounts.error());
  sync::AuditOptions audit = options;
  audit.deep = audit.deep || audit.sample > 0;  // --sample N implies --deep
  std::vector<sync::AuditReport> reports;
  for (const AccountConfig* account : *accounts) {
    reports.push_back(sync::AuditAccount(*account, audit));
  }
  PrintAudits(reports, global.quiet, std::cout);
  std::cout.flush();
  FirstFailure failures;
  bool differs = false;
  for (const sync::AuditReport& report : reports) {
    const std::string context = "account " + report.account->name;
    if (!report.status.ok()) failures.Note(report.status.error().Wrap(context));
    for (const sync::FolderAudit& folder : report.folders) {
      if (!folder.status.ok()) failures.Note(folder.status.error().Wrap(context));
    }
    differs = differs || !report.findings.empty();
  }
  if (failures.code() != kExitOk) return failures.code();
  return differs ? kExitMirrorDiffers : kExitOk;
}

struct MigrateFlags {
  bool dry_run = false;
  bool json = false;
};

// Syncs the source's mirror (pull only: a migration never changes the
// source server), then copies what the target lacks.
int RunMigrate(const GlobalOptions& global, const std::vector<std::string>& arguments,
               const MigrateFlags& flags) {
  const auto started = std::chrono::steady_clock::now();
  MigrationRunInfo info;
  info.dry_run = flags.dry_run;
  auto finish = [&](const migrate::MigrationReport* report, const sync::AccountReport* source_sync,
                    int code, const Status& status) {
    if (flags.json) {
      info.seconds =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
      std::cout << MigrationReportJson(info, report, source_sync, code, status) << std::endl;
    }
    return code;
  };
  auto stopped = [&](const Error& error) { return finish(nullptr, nullptr, Report(error), error); };
  Result<Config> config = Load(global);
  if (!config.ok()) return stopped(config.error());
  Result<MigrationConfig> migration = ResolveMigration(*config, arguments);
  if (!migration.ok()) return stopped(migration.error());
  info.name = migration->name;
  info.source = migration->source;
  info.target = migration->target;
  const AccountConfig* source = nullptr;
  const AccountConfig* target = nullptr;
  for (const AccountConfig& account : config->accounts) {
    if (account.name == migration->source) source = &account;
    if (account.name == migration->target) target = &account;
  }
  if (source->maildir.empty()) {
    return stopped(MakeError(ErrorKind::kConfig,
                             "account " + source->name +
                                 " has no maildir: a migration copies through its local mirror"));
  }
  std::optional<sync::AccountReport> source_sync;
  if (!flags.dry_run) {
    AccountConfig pull = *source;
    pull.direction = SyncDirection::kPull;
    SyncOutput output;
    if (!global.quiet && !flags.json) output.out = &std::cout;
    output.progress = ShowProgress(global, flags.json);
    std::vector<sync::AccountReport> synced = SyncAccounts({&pull}, output);
    source_sync = std::move(synced.front());
    source_sync->account = source;
    if (!source_sync->status.ok()) {
      const Error error = source_sync->status.error().Wrap("account " + source->name);
      return finish(nullptr, &*source_sync, Report(error), error);
    }
  }
  migrate::MigrateOptions options;
  options.dry_run = flags.dry_run;
  if (source_sync) options.source_listing = &source_sync->mailboxes;
  migrate::MigrationReport report = migrate::Migrate(*migration, *source, *target, options);
  if (!flags.json && !global.quiet) PrintMigration(report, *migration, std::cout);
  std::cout.flush();
  FirstFailure failures;
  const std::string context = "migration " + migration->name;
  if (!report.status.ok()) failures.Note(report.status.error().Wrap(context));
  uint64_t failed_messages = 0;
  for (const migrate::FolderMigration& folder : report.folders) {
    if (!folder.status.ok())
      failures.Note(folder.status.error().Wrap(context + ": " + folder.source));
    failed_messages += folder.failed;
  }
  if (failed_messages > 0) {
    failures.Note(MakeError(ErrorKind::kProtocol,
                            context + ": " + CountOf(failed_messages, "message", "messages") +
                                " could not be copied to " + target->name + " (see above)"));
  }
  return finish(&report, source_sync ? &*source_sync : nullptr, failures.code(), report.status);
}

// Signs an account in with the OAuth 2.0 device flow and stores its tokens.
int RunAuth(const GlobalOptions& global, const std::string& name) {
  Result<Config> config = Load(global);
  if (!config.ok()) return Report(config.error());
  Result<std::vector<const AccountConfig*>> accounts = SelectAccounts(*config, {name});
  if (!accounts.ok()) return Report(accounts.error());
  const AccountConfig& account = *accounts->front();
  Result<oauth::TokenSet> tokens = oauth::RunDeviceFlow(account, std::cout, [](int64_t seconds) {
    std::this_thread::sleep_for(std::chrono::seconds(seconds));
  });
  if (!tokens.ok()) return Report(tokens.error());
  if (!global.quiet) {
    std::cout << "Signed in. Tokens stored in " << oauth::TokenFilePath(account)
              << " (mode 0600); `mailmirror sync " << account.name
              << "` refreshes them as they expire.\n";
  }
  return kExitOk;
}

// The presets `provider = "NAME"` selects, with what each fills in.
int RunProviders() {
  for (const Provider& provider : Providers()) {
    std::cout << provider.name << ": " << provider.description << "\n"
              << "  host = \"" << provider.host << "\", port = " << provider.port
              << ", tls = \"implicit\", auth = \"" << AuthMechanismName(provider.auth) << "\"\n";
    if (!provider.oauth.token_url.empty()) {
      std::cout << "  oauth_device_url = \"" << provider.oauth.device_authorization_url << "\"\n"
                << "  oauth_token_url = \"" << provider.oauth.token_url << "\"\n"
                << "  oauth_scope = \"" << provider.oauth.scope << "\"\n";
    }
    if (provider.max_upload_mb != 0) {
      std::cout << "  max_upload_size = " << provider.max_upload_mb << "\n";
    }
    std::cout << "  " << provider.notes << "\n";
  }
  return kExitOk;
}

}  // namespace

int Main(int argc, char** argv) {
  CLI::App app{"mailmirror: mirror IMAP accounts into Maildir folders, both ways", "mailmirror"};
  app.set_version_flag("--version", std::string("mailmirror ") + kVersion);
  app.require_subcommand(1);
  app.fallthrough();  // global options may follow the subcommand

  GlobalOptions global;
  global.config_path = DefaultConfigPath();
  app.add_option("-c,--config", global.config_path, "Configuration file")
      ->capture_default_str()
      ->option_text("FILE");
  app.add_flag("-v,--verbose", global.verbosity,
               "More diagnostics on stderr (-vv debug, -vvv protocol trace)");
  app.add_flag("-q,--quiet", global.quiet, "Only errors on stderr");
  app.add_option("--log-file", global.log_file,
                 "Append the diagnostics (at the -v level chosen) to FILE with their time; "
                 "stderr keeps the errors only")
      ->option_text("FILE");

  InitOptions init_options;
  CLI::App* init = app.add_subcommand(
      "init",
      "Write a commented configuration with one account (asking on a terminal for what is "
      "missing), then log in and list the folders sync would mirror");
  init->add_option("--account", init_options.account, "The account's name")
      ->capture_default_str()
      ->option_text("NAME");
  init->add_option("--provider", init_options.provider,
                   "A preset: office365, outlook, gmail, yahoo, icloud, aol (see providers)")
      ->option_text("P");
  init->add_option("--host", init_options.host, "The IMAP server")->option_text("HOST");
  init->add_option("--port", init_options.port, "The server's port (default: by TLS mode)")
      ->option_text("N");
  init->add_option("--tls", init_options.tls, "implicit (default), starttls or none")
      ->check(CLI::IsMember({"implicit", "starttls", "none"}))
      ->option_text("MODE");
  init->add_option("--ca-file", init_options.ca_file,
                   "Trust the certificate authority in FILE (PEM) for this server")
      ->option_text("FILE");
  init->add_option("--user", init_options.user, "The login name")->option_text("U");
  init->add_option("--password-cmd", init_options.password_cmd,
                   "A shell command printing the password, stored instead of the password")
      ->option_text("CMD");
  init->add_option("--oauth-client-id", init_options.oauth_client_id,
                   "office365, outlook: the OAuth 2.0 application (client) id")
      ->option_text("ID");
  init->add_option("--maildir", init_options.maildir,
                   "The local Maildir root (default ~/Mail/NAME)")
      ->option_text("DIR");
  init->add_flag("--force", init_options.force, "Replace an existing configuration file");
  bool init_no_check = false;
  init->add_flag("--no-check", init_no_check, "Do not log in to check the configuration");

  std::vector<std::string> list_accounts;
  CLI::App* list =
      app.add_subcommand("list", "List each account's folders with message and unread counts");
  list->add_option("ACCOUNT", list_accounts, "Accounts to list (default: all)");

  std::vector<std::string> sync_accounts;
  CLI::App* sync = app.add_subcommand(
      "sync",
      "Sync every folder of each account with its Maildir, both ways (see direction in "
      "mailmirror.conf(5))");
  sync->add_option("ACCOUNT", sync_accounts, "Accounts to sync (default: all)");
  sync::SyncOptions sync_options;
  sync->add_flag("-n,--dry-run", sync_options.dry_run,
                 "Print what each folder would download, upload, change and delete on either "
                 "side; change nothing");
  SyncFlags sync_flags;
  sync->add_flag("--json", sync_flags.json,
                 "Print the run as one JSON object on stdout (per account and folder: counts, "
                 "bytes, seconds, how changes were found, errors) instead of the summary lines");
  sync->add_option("--shard", sync_flags.shard,
                   "Sync only part I of N of the accounts (I from 0 to N-1), chosen by a stable "
                   "hash of each account's name: run I/N on N hosts to split many accounts")
      ->option_text("I/N");
  sync->add_flag("--allow-mass-delete", sync_options.allow_mass_delete,
                 "Delete even when a folder would lose more than max_delete_fraction of its "
                 "messages, or its Maildir directory is gone");

  std::vector<std::string> status_accounts;
  bool status_remote = false;
  CLI::App* status = app.add_subcommand(
      "status",
      "Show each account's folders as of the last sync: local and server counts, unread, local "
      "changes not yet synced, when each folder last synced (offline; --remote asks the server)");
  status->add_option("ACCOUNT", status_accounts, "Accounts to show (default: all)");
  status->add_flag("--remote", status_remote, "Ask the server for its message counts now");

  std::vector<std::string> verify_accounts;
  sync::AuditOptions verify_options;
  CLI::App* verify = app.add_subcommand(
      "verify",
      "Audit each account's mirror against the server and the index, changing nothing: every "
      "message present on both sides with the same size and flags, no orphan or duplicate "
      "files; exits 1 when anything differs");
  verify->add_option("ACCOUNT", verify_accounts, "Accounts to verify (default: all)");
  verify->add_flag("--deep", verify_options.deep,
                   "Also download each message and compare it with the local file");
  verify
      ->add_option(
          "--sample", verify_options.sample,
          "Compare the bodies of N randomly chosen messages per folder (--deep compares all)")
      ->option_text("N");

  std::string auth_account;
  CLI::App* auth = app.add_subcommand(
      "auth",
      "Sign an account in with OAuth 2.0 (device flow: prints a URL and a code to enter there) "
      "and store its tokens for sync");
  auth->add_option("ACCOUNT", auth_account, "The account to sign in")->required();

  CLI::App* providers = app.add_subcommand(
      "providers", "List the provider presets (provider = \"NAME\") and what each sets");

  std::vector<std::string> migrate_arguments;
  MigrateFlags migrate_flags;
  CLI::App* migrate_command = app.add_subcommand(
      "migrate",
      "Copy every message of account SOURCE into account TARGET with its flags and date, "
      "through SOURCE's mirror (synced first, pull only); a rerun copies only what TARGET "
      "lacks (see [migrations.NAME] in mailmirror.conf(5))");
  migrate_command
      ->add_option("SOURCE_TARGET", migrate_arguments,
                   "SOURCE TARGET (two accounts), or the NAME of a [migrations.NAME] table")
      ->required()
      ->expected(1, 2);
  migrate_command->add_flag("-n,--dry-run", migrate_flags.dry_run,
                            "Show the folder mapping and what would be copied, skipped or "
                            "already there; change nothing (the mirror is not synced)");
  migrate_command->add_flag("--json", migrate_flags.json,
                            "Print the run as one JSON object on stdout instead of the lines");

  std::vector<std::string> repair_accounts;
  CLI::App* repair = app.add_subcommand(
      "repair",
      "Rebuild each account's index from its Maildir and one scan of the server (the old "
      "index is kept aside), then sync");
  repair->add_option("ACCOUNT", repair_accounts, "Accounts to repair (default: all)");

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::cerr << "mailmirror: " << e.what() << "\n"
              << "Run 'mailmirror --help' for usage.\n";
    return ExitCodeFor(ErrorKind::kUsage);
  }

  LogLevel level = LogLevel::kWarning;
  if (global.quiet) {
    level = LogLevel::kError;
  } else if (global.verbosity > 0) {
    level =
        static_cast<LogLevel>(std::min(static_cast<int>(LogLevel::kTrace),
                                       static_cast<int>(LogLevel::kWarning) + global.verbosity));
  }
  SetLogLevel(level);
  if (!global.log_file.empty()) {
    if (Status opened = SetLogFile(global.log_file); !opened.ok()) {
      const int code = Report(opened.error());
      // Monitoring reads stdout: --json still gets its object.
      if (sync->parsed() && sync_flags.json) {
        std::cout << SyncReportJson({}, 0, code, opened) << std::endl;
      }
      if (migrate_command->parsed() && migrate_flags.json) {
        std::cout << MigrationReportJson({}, nullptr, nullptr, code, opened) << std::endl;
      }
      return code;
    }
  }

  if (init->parsed()) {
    init_options.config_path = global.config_path;
    init_options.check = !init_no_check;
    return RunInit(init_options, TerminalPrompt(), global.quiet);
  }
  if (list->parsed()) return RunList(global, list_accounts);
  if (sync->parsed()) return RunSync(global, sync_accounts, sync_options, sync_flags);
  if (repair->parsed()) return RunRepair(global, repair_accounts);
  if (providers->parsed()) return RunProviders();
  if (status->parsed()) return RunStatus(global, status_accounts, status_remote);
  if (auth->parsed()) return RunAuth(global, auth_account);
  if (verify->parsed()) return RunVerify(global, verify_accounts, verify_options);
  if (migrate_command->parsed()) return RunMigrate(global, migrate_arguments, migrate_flags);
  return ExitCodeFor(ErrorKind::kUsage);
}

}  // namespace mailmirror::cli
