#include "sync/run_record.h"

#include <cerrno>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "util/fs.h"

namespace mailmirror::sync {
namespace {

using Json = nlohmann::json;

int64_t Integer(const Json& json, const char* key) {
  auto it = json.find(key);
  return it != json.end() && it->is_number_integer() ? it->get<int64_t>() : 0;
}

std::string Text(const Json& json, const char* key) {
  auto it = json.find(key);
  return it != json.end() && it->is_string() ? it->get<std::string>() : std::string();
}

}  // namespace

std::string RunRecordPath(const std::string& state_dir) { return state_dir + "/last-sync.json"; }

Result<RunRecord> ReadRunRecord(const std::string& state_dir) {
  RunRecord record;
  const std::string path = RunRecordPath(state_dir);
  std::ifstream in(path);
  if (!in) {
    if (errno == ENOENT) return record;
    return MakeError(ErrorKind::kIo, "cannot read " + path + ": " + std::strerror(errno));
  }
  std::stringstream text;
  text << in.rdbuf();
  Json json = Json::parse(text.str(), nullptr, /*allow_exceptions=*/false);
  if (!json.is_object()) {
    return MakeError(ErrorKind::kIo, path + " is malformed (remove it; the next sync rewrites it)");
  }
  record.finished = Integer(json, "finished");
  record.error = Text(json, "error");
  auto folders = json.find("folders");
  if (folders != json.end() && folders->is_object()) {
    for (const auto& [name, folder] : folders->items()) {
      if (!folder.is_object()) continue;
      FolderRun& run = record.folders[name];
      run.synced = Integer(folder, "synced");
      run.finished = Integer(folder, "finished");
      run.error = Text(folder, "error");
    }
  }
  return record;
}

Status WriteRunRecord(const std::string& state_dir, const AccountReport& report, int64_t now) {
  Result<RunRecord> previous = ReadRunRecord(state_dir);
  RunRecord record = previous.ok() ? std::move(previous).value() : RunRecord{};
  record.finished = now;
  record.error = report.status.ok() ? "" : report.status.error().message;
  for (const FolderReport& folder : report.folders) {
    FolderRun& run = record.folders[folder.local_name];
    run.finished = now;
    run.error = folder.status.ok() ? "" : folder.status.error().message;
    if (folder.status.ok()) run.synced = now;
    if (!folder.status.ok() && record.error.empty()) record.error = run.error;
  }
  Json json = {{"finished", record.finished}, {"error", record.error}, {"folders", Json::object()}};
  for (const auto& [name, run] : record.folders) {
    json["folders"][name] = {
        {"synced", run.synced}, {"finished", run.finished}, {"error", run.error}};
  }
  // Folder names are UTF-8 (decoded from modified UTF-7); anything else is
  // replaced rather than making dump() fail.
  // Not fsynced: a record lost in a crash costs only what status shows.
  return WriteFileAtomically(RunRecordPath(state_dir),
                             json.dump(2, ' ', false, Json::error_handler_t::replace) + "\n", 0600,
                             /*durable=*/false);
}

}  // namespace mailmirror::sync
