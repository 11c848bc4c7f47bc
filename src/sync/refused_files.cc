#include "sync/refused_files.h"

#include <sys/stat.h>
#include <xxhash.h>

#include <utility>

#include "util/log.h"

namespace mailmirror::sync {

RefusedFiles::RefusedFiles(const std::vector<store::RefusedFile>& recorded, std::string log_context)
    : log_context_(std::move(log_context)) {
  for (const store::RefusedFile& file : recorded) recorded_.emplace(file.file_name, file);
}

std::string RefusedFiles::KeyOf(const std::string& file_name, bool in_cur) {
  return (in_cur ? "cur/" : "new/") + file_name;
}

uint64_t RefusedFiles::Fingerprint(const std::string& path) {
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0) return 0;
  const uint64_t fields[] = {
      static_cast<uint64_t>(st.st_mode),         static_cast<uint64_t>(st.st_size),
      static_cast<uint64_t>(st.st_ino),          static_cast<uint64_t>(st.st_mtim.tv_sec),
      static_cast<uint64_t>(st.st_mtim.tv_nsec), static_cast<uint64_t>(st.st_ctim.tv_sec),
      static_cast<uint64_t>(st.st_ctim.tv_nsec),
  };
  uint64_t fingerprint = XXH3_64bits(fields, sizeof fields);
  return fingerprint == 0 ? 1 : fingerprint;  // 0 means "unknown"
}

const store::RefusedFile* RefusedFiles::RecordedAs(const std::string& key,
                                                   uint64_t fingerprint) const {
  auto it = recorded_.find(key);
  if (it == recorded_.end() || fingerprint == 0 || it->second.fingerprint != fingerprint) {
    return nullptr;
  }
  return &it->second;
}

bool RefusedFiles::Unchanged(const std::string& key, uint64_t fingerprint) {
  const store::RefusedFile* recorded = RecordedAs(key, fingerprint);
  if (recorded == nullptr) return false;
  current_[key] = *recorded;
  return true;
}

void RefusedFiles::Refuse(const std::string& key, uint64_t fingerprint, const std::string& reason) {
  const store::RefusedFile* recorded = RecordedAs(key, fingerprint);
  if (recorded == nullptr || recorded->reason != reason) {
    Log(LogLevel::kWarning,
        log_context_ + ": " + key + ": " + reason + "; kept here, not uploaded");
  }
  current_[key] = store::RefusedFile{key, fingerprint, reason};
}

bool RefusedFiles::changed() const {
  if (current_.size() != recorded_.size()) return true;
  for (const auto& [key, file] : current_) {
    auto it = recorded_.find(key);
    if (it == recorded_.end() || it->second.fingerprint != file.fingerprint ||
        it->second.reason != file.reason) {
      return true;
    }
  }
  return false;
}

void RefusedFiles::AddTo(store::Index::Batch& batch, uint32_t folder_id) const {
  batch.ClearRefused(folder_id);
  for (const auto& [key, file] : current_) batch.PutRefused(folder_id, file);
}

}  // namespace mailmirror::sync
