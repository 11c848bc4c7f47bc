#include "cli/json_report.h"

#include <nlohmann/json.hpp>

namespace mailmirror::cli {
namespace {

using Json = nlohmann::json;

Json ErrorOf(const Status& status) {
  return status.ok() ? Json(nullptr) : Json(status.error().message);
}

Json FolderJson(const sync::FolderReport& folder) {
  return {{"name", folder.local_name},
          {"ok", folder.status.ok()},
          {"error", ErrorOf(folder.status)},
          {"path", folder.path},
          {"seconds", folder.seconds},
          {"fetched", folder.fetched},
          {"bytes", folder.bytes},
          {"label_links", folder.label_links},
          {"adopted", folder.adopted},
          {"matched", folder.matched},
          {"skipped", folder.skipped},
          {"flag_changes", folder.flag_changes},
          {"expunged", folder.expunged},
          {"pushed_flags", folder.pushed_flags},
          {"pushed_expunges", folder.pushed_expunges},
          {"appended", folder.appended},
          {"too_large", folder.too_large},
          {"refused", folder.refused},
          {"refused_folder", folder.refused_folder},
          {"linked", folder.linked},
          {"conflicts", folder.conflicts},
          {"restored", folder.restored},
          {"would_fetch", folder.would_fetch},
          {"uidvalidity_changed", folder.uidvalidity_changed}};
}

Json AccountJson(const sync::AccountReport& report) {
  Json folders = Json::array();
  for (const sync::FolderReport& folder : report.folders) folders.push_back(FolderJson(folder));
  return {{"name", report.account != nullptr ? report.account->name : ""},
          {"ok", report.status.ok()},
          {"error", ErrorOf(report.status)},
          {"seconds", report.seconds},
          {"moved", report.moved},
          {"created", report.created},
          {"skipped", report.skipped},
          {"folders", std::move(folders)}};
}

}  // namespace

std::string SyncReportJson(const std::vector<sync::AccountReport>& reports, double seconds,
                           int exit_code, const Status& run_status) {
  Json accounts = Json::array();
  bool dry_run = false;
  for (const sync::AccountReport& report : reports) {
    dry_run = dry_run || report.dry_run;
    accounts.push_back(AccountJson(report));
  }
  Json run = {{"exit_code", exit_code},
              {"error", ErrorOf(run_status)},
              {"seconds", seconds},
              {"dry_run", dry_run},
              {"accounts", std::move(accounts)}};
  // Server-supplied text may hold invalid UTF-8: replaced, never a throw.
  return run.dump(-1, ' ', false, Json::error_handler_t::replace);
}

std::string MigrationReportJson(const MigrationRunInfo& run, const migrate::MigrationReport* report,
                                const sync::AccountReport* source_sync, int exit_code,
                                const Status& run_status) {
  Json folders = Json::array();
  if (report != nullptr) {
    for (const migrate::FolderMigration& folder : report->folders) {
      folders.push_back({{"source", folder.source},
                         {"target", folder.target},
                         {"mapped_by", folder.reason},
                         {"create", folder.create},
                         {"mirrored", folder.mirrored},
                         {"ok", folder.status.ok()},
                         {"error", ErrorOf(folder.status)},
                         {"selected", folder.selected},
                         {"copied", folder.copied},
                         {"present", folder.present},
                         {"skipped", folder.skipped},
                         {"skip_reasons", folder.skip_reasons},
                         {"failed", folder.failed},
                         {"failures", folder.failures},
                         {"bytes", folder.bytes}});
    }
  }
  Json out = {{"exit_code", exit_code},
              {"error", ErrorOf(run_status)},
              {"seconds", run.seconds},
              {"dry_run", run.dry_run},
              {"migration", run.name},
              {"source", run.source},
              {"target", run.target},
              {"source_sync", source_sync != nullptr ? AccountJson(*source_sync) : Json(nullptr)},
              {"folders", std::move(folders)}};
  return out.dump(-1, ' ', false, Json::error_handler_t::replace);
}

}  // namespace mailmirror::cli
