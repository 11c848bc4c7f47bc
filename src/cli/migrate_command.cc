#include "cli/migrate_command.h"

#include <algorithm>
#include <cstdio>

#include "cli/sync_command.h"
#include "util/strings.h"

namespace mailmirror::cli {
namespace {

const AccountConfig* FindAccount(const Config& config, const std::string& name) {
  for (const AccountConfig& account : config.accounts) {
    if (account.name == name) return &account;
  }
  return nullptr;
}

std::string FolderLine(const migrate::FolderMigration& folder, bool dry_run) {
  std::string line = folder.source + " -> " + folder.target;
  std::vector<std::string> notes;
  if (folder.reason != "same name" && folder.reason != "INBOX") notes.push_back(folder.reason);
  if (folder.create) notes.emplace_back(dry_run ? "to create" : "created");
  if (!notes.empty()) {
    line += " (";
    for (size_t i = 0; i < notes.size(); ++i) line += (i > 0 ? ", " : "") + notes[i];
    line += ")";
  }
  line += ": ";
  if (!folder.mirrored) {
    line += std::to_string(folder.selected) +
            " on the server, not in the mirror yet (counted after its first sync)";
    if (!folder.status.ok()) line += "; FAILED: " + folder.status.error().message;
    return line;
  }
  std::vector<std::string> parts;
  parts.push_back(std::to_string(folder.selected) + " selected");
  if (folder.copied > 0) {
    parts.push_back(std::to_string(folder.copied) + (dry_run ? " to copy (" : " copied (") +
                    HumanBytes(folder.bytes) + ")");
  }
  if (folder.present > 0) parts.push_back(std::to_string(folder.present) + " already there");
  if (folder.skipped > 0) {
    std::string skipped = std::to_string(folder.skipped) + " skipped (";
    bool first = true;
    for (const auto& [reason, count] : folder.skip_reasons) {
      skipped += (first ? "" : ", ") + std::to_string(count) + " " + reason;
      first = false;
    }
    parts.push_back(skipped + ")");
  }
  if (folder.failed > 0) parts.push_back(std::to_string(folder.failed) + " failed");
  for (size_t i = 0; i < parts.size(); ++i) line += (i > 0 ? ", " : "") + parts[i];
  if (!folder.status.ok()) line += "; FAILED: " + folder.status.error().message;
  return line;
}

}  // namespace

Result<MigrationConfig> ResolveMigration(const Config& config,
                                         const std::vector<std::string>& arguments) {
  auto usage = [](const std::string& message) { return MakeError(ErrorKind::kUsage, message); };
  if (arguments.size() == 1) {
    for (const MigrationConfig& migration : config.migrations) {
      if (migration.name == arguments[0]) return migration;
    }
    return usage("no migration named \"" + arguments[0] + "\" in " + config.path +
                 " (give SOURCE TARGET accounts, or add [migrations." + arguments[0] + "])");
  }
  if (arguments.size() != 2) return usage("migrate takes SOURCE TARGET, or a migration's NAME");
  for (const std::string& name : arguments) {
    if (FindAccount(config, name) == nullptr) {
      return usage("no account named \"" + name + "\" in " + config.path);
    }
  }
  if (arguments[0] == arguments[1]) return usage("source and target are the same account");
  const MigrationConfig* found = nullptr;
  for (const MigrationConfig& migration : config.migrations) {
    if (migration.source != arguments[0] || migration.target != arguments[1]) continue;
    if (found != nullptr) {
      return usage("migrations " + found->name + " and " + migration.name + " both copy " +
                   arguments[0] + " to " + arguments[1] + ": name the one to run");
    }
    found = &migration;
  }
  if (found != nullptr) return *found;
  MigrationConfig defaults;
  defaults.name = arguments[0] + "-to-" + arguments[1];
  defaults.source = arguments[0];
  defaults.target = arguments[1];
  return defaults;
}

void PrintMigration(const migrate::MigrationReport& report, const MigrationConfig& migration,
                    std::ostream& out) {
  const std::string prefix = migration.source + " -> " + migration.target + ": ";
  uint64_t selected = 0;
  uint64_t copied = 0;
  uint64_t present = 0;
  uint64_t skipped = 0;
  uint64_t failed = 0;
  uint64_t bytes = 0;
  size_t failed_folders = 0;
  for (const migrate::FolderMigration& folder : report.folders) {
    out << prefix << FolderLine(folder, report.dry_run) << '\n';
    for (const std::string& failure : folder.failures) {
      out << prefix << folder.source << ": " << failure << '\n';
    }
    selected += folder.selected;
    copied += folder.copied;
    present += folder.present;
    skipped += folder.skipped;
    failed += folder.failed;
    bytes += folder.bytes;
    if (!folder.status.ok()) ++failed_folders;
  }
  char seconds[32];
  (void)std::snprintf(seconds, sizeof seconds, "%.1f", report.seconds);
  out << "migration " << migration.name << ": "
      << CountOf(report.folders.size(), "folder", "folders") << ", " << selected << " selected, "
      << copied << (report.dry_run ? " to copy (" : " copied (") << HumanBytes(bytes) << "), "
      << present << " already there, " << skipped << " skipped, " << failed << " failed";
  if (failed_folders > 0) out << ", " << CountOf(failed_folders, "folder", "folders") << " failed";
  out << " in " << seconds << " s";
  if (report.dry_run) out << "; dry run: nothing was changed";
  out << '\n';
}

}  // namespace mailmirror::cli
