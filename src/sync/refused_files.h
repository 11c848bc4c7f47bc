// Local files of a folder that are no message or cannot be uploaded: a
// symbolic link, FIFO, socket, device or subdirectory in cur/ or new/, a
// name that is no Maildir message name, an empty file, NUL bytes, a message
// above the upload limit, one the server refused. Each is reported once
// (a warning) and remembered in the index with a fingerprint; later runs
// leave it alone without a word while it stays as it was, and try again
// once it changed. The folder and the run still succeed.
//
// Threading: the loop thread.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "store/index.h"

namespace mailmirror::sync {

class RefusedFiles {
 public:
  // `recorded`: the folder's refusals as the index holds them.
  RefusedFiles(const std::vector<store::RefusedFile>& recorded, std::string log_context);

  // The key of a file: "cur/<name>" or "new/<name>".
  static std::string KeyOf(const std::string& file_name, bool in_cur);
  // A fingerprint of the file at `path` (not following a symbolic link):
  // its type, size, times and inode. 0 when it cannot be examined.
  static uint64_t Fingerprint(const std::string& path);

  // True when the file was refused before and has not changed since: it is
  // refused again, silently.
  bool Unchanged(const std::string& key, uint64_t fingerprint);
  // Refuses a file for `reason` (e.g. "an empty file"): a warning unless it
  // was refused before for the same reason and has not changed.
  void Refuse(const std::string& key, uint64_t fingerprint, const std::string& reason);

  // Files refused in this run (new and old).
  uint32_t count() const { return static_cast<uint32_t>(current_.size()); }
  // The index updates, when this run's refusals differ from the recorded
  // ones: the folder's records replaced by this run's.
  bool changed() const;
  void AddTo(store::Index::Batch& batch, uint32_t folder_id) const;

 private:
  // The record of `key` when it has this fingerprint (0 never matches).
  const store::RefusedFile* RecordedAs(const std::string& key, uint64_t fingerprint) const;

  std::map<std::string, store::RefusedFile> recorded_;  // by key
  std::map<std::string, store::RefusedFile> current_;
  std::string log_context_;
};

}  // namespace mailmirror::sync
