#include "cli/sync_command.h"

#include <cstdio>
#include <memory>
#include <string>

#include "net/event_loop.h"
#include "util/log.h"

namespace mailmirror::cli {
namespace {

std::string FolderLine(const AccountConfig& account, const sync::FolderReport& folder) {
  std::string line = account.name + ": " + folder.local_name + ": ";
  if (!folder.status.ok()) return line + "FAILED";
  if (folder.fetched == 0 && folder.flag_changes == 0 && folder.expunged == 0) {
    line += "up to date";
  } else if (folder.fetched == 0) {
    line += "no new messages";
  } else {
    line += std::to_string(folder.fetched) +
            (folder.fetched == 1 ? " new message (" : " new messages (") +
            HumanBytes(folder.bytes) + ")";
  }
  if (folder.adopted > 0)
    line += ", " + std::to_string(folder.adopted) + " recovered from an interrupted run";
  if (folder.uidvalidity_changed) {
    line += ", UIDVALIDITY changed: " + std::to_string(folder.matched) + " kept";
  }
  if (folder.flag_changes > 0) {
    line += ", " + std::to_string(folder.flag_changes) +
            (folder.flag_changes == 1 ? " flag change" : " flag changes");
  }
  if (folder.expunged > 0) line += ", " + std::to_string(folder.expunged) + " expunged";
  if (folder.skipped > 0)
    line += ", " + std::to_string(folder.skipped) + " not delivered by the server";
  // With -v: how the server's changes were found.
  if (LogEnabled(LogLevel::kInfo) && !folder.path.empty()) line += " [" + folder.path + "]";
  return line;
}

std::string SummaryLine(const sync::AccountReport& report) {
  uint32_t messages = 0;
  uint64_t bytes = 0;
  size_t failed = 0;
  for (const sync::FolderReport& folder : report.folders) {
    messages += folder.fetched;
    bytes += folder.bytes;
    if (!folder.status.ok()) ++failed;
  }
  char seconds[32];
  (void)std::snprintf(seconds, sizeof seconds, "%.1f", report.seconds);
  std::string line = report.account->name + ": " + std::to_string(report.folders.size()) +
                     (report.folders.size() == 1 ? " folder, " : " folders, ") +
                     std::to_string(messages) +
                     (messages == 1 ? " new message (" : " new messages (") + HumanBytes(bytes) +
                     ") in " + seconds + " s";
  if (failed > 0)
    line += ", " + std::to_string(failed) + (failed == 1 ? " folder" : " folders") + " failed";
  return line;
}

}  // namespace

std::string HumanBytes(uint64_t bytes) {
  static constexpr const char* kUnits[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double value = static_cast<double>(bytes);
  size_t unit = 0;
  while (value >= 1024 && unit + 1 < std::size(kUnits)) {
    value /= 1024;
    ++unit;
  }
  char text[32];
  if (unit == 0) {
    (void)std::snprintf(text, sizeof text, "%llu B", static_cast<unsigned long long>(bytes));
  } else {
    (void)std::snprintf(text, sizeof text, "%.1f %s", value, kUnits[unit]);
  }
  return text;
}

std::vector<sync::AccountReport> SyncAccounts(const std::vector<const AccountConfig*>& accounts,
                                              const SyncOutput& output) {
  std::vector<sync::AccountReport> reports(accounts.size());
  net::EventLoop loop;
  std::vector<std::unique_ptr<sync::AccountSync>> syncs;
  for (size_t i = 0; i < accounts.size(); ++i) {
    auto on_folder = [&output](const AccountConfig& account, const sync::FolderReport& folder) {
      if (output.out != nullptr) *output.out << FolderLine(account, folder) << std::endl;
    };
    auto done = [&reports, i](sync::AccountReport report) { reports[i] = std::move(report); };
    syncs.push_back(std::make_unique<sync::AccountSync>(&loop, *accounts[i], on_folder, done));
  }
  for (auto& account_sync : syncs) account_sync->Start();
  loop.Run();
  if (output.out != nullptr) {
    for (const sync::AccountReport& report : reports) {
      if (report.account != nullptr && report.status.ok())
        *output.out << SummaryLine(report) << '\n';
    }
    output.out->flush();
  }
  return reports;
}

}  // namespace mailmirror::cli
