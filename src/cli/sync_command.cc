#include "cli/sync_command.h"

#include <algorithm>
#include <cstdio>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "cli/progress_display.h"
#include "net/event_loop.h"
#include "util/log.h"
#include "util/strings.h"

namespace mailmirror::cli {
namespace {

// What a dry run found for a folder: each side's changes, nothing done.
std::string DryRunLine(const AccountConfig& account, const sync::FolderReport& folder) {
  std::string line = account.name + ": " + folder.local_name + ": ";
  if (!folder.status.ok()) return line + "FAILED";
  std::vector<std::string> parts;
  auto add = [&parts](uint32_t n, const char* one, const char* many) {
    if (n > 0) parts.push_back(CountOf(n, one, many));
  };
  add(folder.matched, "local file to adopt (no download)", "local files to adopt (no download)");
  add(folder.would_fetch, "message to download", "messages to download");
  add(folder.appended, "message to upload", "messages to upload");
  add(folder.flag_changes, "local flag change", "local flag changes");
  add(folder.pushed_flags, "server flag change", "server flag changes");
  add(folder.expunged, "local deletion", "local deletions");
  add(folder.pushed_expunges, "server expunge", "server expunges");
  add(folder.restored, "deleted message to restore", "deleted messages to restore");
  add(folder.conflicts, "conflict to merge", "conflicts to merge");
  if (parts.empty()) return line + "nothing to do (dry run)";
  for (size_t i = 0; i < parts.size(); ++i) line += (i > 0 ? ", " : "") + parts[i];
  return line + " (dry run)";
}

std::string FolderLine(const AccountConfig& account, const sync::FolderReport& folder) {
  std::string line = account.name + ": " + folder.local_name + ": ";
  if (!folder.status.ok()) return line + "FAILED";
  const bool pushed = folder.appended + folder.pushed_flags + folder.pushed_expunges +
                          folder.linked + folder.restored >
                      0;
  if (folder.fetched == 0 && folder.flag_changes == 0 && folder.expunged == 0 && !pushed &&
      folder.label_links == 0) {
    line += "up to date";
  } else if (folder.fetched == 0) {
    line += "no new messages";
  } else {
    line += std::to_string(folder.fetched) +
            (folder.fetched == 1 ? " new message (" : " new messages (") +
            HumanBytes(folder.bytes) + ")";
  }
  if (folder.label_links > 0) {
    line += ", " + CountOf(folder.label_links, "linked from another label's copy",
                           "linked from other labels' copies");
  }
  if (folder.adopted > 0)
    line += ", " + std::to_string(folder.adopted) + " recovered from an interrupted run";
  if (folder.uidvalidity_changed) {
    line += ", UIDVALIDITY changed: " + std::to_string(folder.matched) + " kept";
  } else if (folder.matched > 0) {
    line += ", " + CountOf(folder.matched, "message re-indexed from its file",
                           "messages re-indexed from their files");
  }
  if (folder.flag_changes > 0) {
    line += ", " + CountOf(folder.flag_changes, "flag change", "flag changes");
  }
  if (folder.expunged > 0) line += ", " + std::to_string(folder.expunged) + " expunged";
  if (folder.appended > 0) line += ", " + CountOf(folder.appended, "uploaded", "uploaded");
  if (folder.refused > 0) {
    line += ", " + CountOf(folder.refused, "local file not uploaded (kept here)",
                           "local files not uploaded (kept here)");
  }
  if (folder.refused_folder) line += ", refused: its directory leads outside the Maildir root";
  if (folder.linked > 0)
    line += ", " + CountOf(folder.linked, "local file matched", "local files matched");
  if (folder.pushed_flags > 0) {
    line += ", " + CountOf(folder.pushed_flags, "flag change sent", "flag changes sent");
  }
  if (folder.pushed_expunges > 0) {
    line += ", " + CountOf(folder.pushed_expunges, "deletion sent", "deletions sent");
  }
  if (folder.restored > 0)
    line += ", " + CountOf(folder.restored, "deletion undone", "deletions undone");
  if (folder.conflicts > 0)
    line += ", " + CountOf(folder.conflicts, "conflict merged", "conflicts merged");
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
  if (!report.created.empty()) {
    line += ", " + CountOf(report.created.size(), "folder", "folders") +
            (report.dry_run ? " to create on the server" : " created on the server");
  }
  if (report.moved > 0) {
    line += ", " + CountOf(report.moved, "message moved", "messages moved") +
            (report.dry_run ? " (dry run)" : "");
  }
  if (failed > 0) line += ", " + CountOf(failed, "folder", "folders") + " failed";
  if (report.dry_run) line += "; dry run: nothing was changed";
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
  std::function<void()> finished_one;
  size_t next = 0;  // accounts started
  size_t running = 0;

  // The live lines, under everything else printed meanwhile.
  std::optional<ProgressDisplay> display;
  auto redraw = [&] {
    std::vector<std::string> lines;
    for (size_t i = 0; i < next; ++i) {
      const sync::SyncProgress progress = syncs[i]->progress();
      if (!progress.finished) lines.push_back(ProgressLine(accounts[i]->name, progress));
    }
    display->Draw(lines);
  };
  std::function<void()> tick = [&] {
    if (next == syncs.size() && running == 0) return;  // the loop may end
    redraw();
    loop.PostIdle(tick, 250);  // the loop ends with the last account, not the display
  };
  if (output.progress && output.out != nullptr) {
    display.emplace(*output.out, TerminalColumns());
    SetLogHooks([&] { display->Clear(); }, [&] { redraw(); });
  }

  for (size_t i = 0; i < accounts.size(); ++i) {
    auto on_folder = [&output, &display, &redraw](const AccountConfig& account,
                                                  const sync::FolderReport& folder) {
      if (output.out == nullptr) return;
      if (display) display->Clear();
      *output.out << EscapeControls(output.options.dry_run ? DryRunLine(account, folder)
                                                           : FolderLine(account, folder))
                  << std::endl;
      if (display) redraw();
    };
    auto done = [&reports, &finished_one, &accounts, i](sync::AccountReport report) {
      Log(LogLevel::kInfo, "account " + accounts[i]->name + ": finished");
      reports[i] = std::move(report);
      finished_one();
    };
    syncs.push_back(
        std::make_unique<sync::AccountSync>(&loop, *accounts[i], output.options, on_folder, done));
  }
  // Up to max_accounts at once, the next starting as one finishes.
  const size_t limit = std::max<size_t>(1, output.max_accounts);
  std::function<void()> start_more = [&] {
    while (running < limit && next < syncs.size()) {
      ++running;
      Log(LogLevel::kInfo, "account " + accounts[next]->name + ": starting");
      syncs[next++]->Start();
    }
  };
  finished_one = [&] {
    --running;
    loop.Post(start_more);  // not from inside the finished account's callback
  };
  start_more();
  if (display) tick();
  loop.Run();
  if (display) {
    display->Clear();
    SetLogHooks(nullptr, nullptr);
  }
  for (size_t i = 0; i < accounts.size(); ++i) {
    if (reports[i].account != nullptr) continue;
    // The loop ran dry with work unreported: a bug, never a silent success.
    reports[i].account = accounts[i];
    reports[i].status = MakeError(ErrorKind::kInternal,
                                  "account " + accounts[i]->name +
                                      ": the sync stopped without finishing (please report this)");
  }
  if (output.out != nullptr) {
    for (const sync::AccountReport& report : reports) {
      if (report.account == nullptr || !report.status.ok()) continue;
      *output.out << EscapeControls(SummaryLine(report)) << '\n';
      if (!report.old_index.empty()) {
        *output.out << report.account->name << ": index rebuilt; the old one is kept in "
                    << report.old_index << '\n';
      }
    }
    output.out->flush();
  }
  return reports;
}

}  // namespace mailmirror::cli
