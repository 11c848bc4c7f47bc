#include "sync/local_scan.h"

#include <sys/stat.h>

#include <string_view>
#include <unordered_map>
#include <utility>

namespace mailmirror::sync {

LocalFolderState CompareWithIndex(std::vector<store::MaildirFolder::Entry> entries,
                                  const std::vector<store::MessageRecord>& records) {
  LocalFolderState state;
  state.known.resize(records.size());
  std::unordered_map<uint32_t, size_t> by_uid;
  std::unordered_map<std::string_view, size_t> by_stem;
  by_uid.reserve(records.size());
  by_stem.reserve(records.size());
  for (size_t i = 0; i < records.size(); ++i) {
    by_uid.emplace(records[i].uid, i);
    if (!records[i].stem.empty()) by_stem.emplace(records[i].stem, i);
  }
  for (store::MaildirFolder::Entry& entry : entries) {
    std::optional<size_t> match;
    if (entry.name.uid != 0) {
      auto it = by_uid.find(entry.name.uid);
      if (it != by_uid.end() && records[it->second].stem == entry.name.stem) match = it->second;
    } else {
      auto it = by_stem.find(entry.name.stem);
      if (it != by_stem.end()) match = it->second;
    }
    // A second file for one record (a copy made with cp) is a message of
    // its own, not the record's.
    if (match && !state.known[*match]) {
      state.known[*match] = std::move(entry);
    } else {
      state.unknown.push_back(std::move(entry));
    }
  }
  return state;
}

namespace {

// splitmix64's finaliser: every input bit reaches every output bit.
uint64_t Mix(uint64_t hash, uint64_t value) {
  uint64_t z = hash ^ (value + 0x9e3779b97f4a7c15ULL + (hash << 6) + (hash >> 2));
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

}  // namespace

uint64_t DirectoryStamp(const std::string& path, int64_t now) {
  constexpr int64_t kSettleSeconds = 2;
  uint64_t stamp = 0;
  for (const char* sub : {"/cur", "/new"}) {
    struct stat st {};
    if (::stat((path + sub).c_str(), &st) != 0) return 0;
    if (st.st_mtim.tv_sec > now - kSettleSeconds || st.st_ctim.tv_sec > now - kSettleSeconds) {
      return 0;
    }
    for (uint64_t value :
         {static_cast<uint64_t>(st.st_dev), static_cast<uint64_t>(st.st_ino),
          static_cast<uint64_t>(st.st_mtim.tv_sec), static_cast<uint64_t>(st.st_mtim.tv_nsec),
          static_cast<uint64_t>(st.st_ctim.tv_sec), static_cast<uint64_t>(st.st_ctim.tv_nsec)}) {
      stamp = Mix(stamp, value);
    }
  }
  return stamp == 0 ? 1 : stamp;
}

bool HasLocalChanges(const LocalSide& side) {
  return !side.state.unknown.empty() || HasKnownChanges(side);
}

bool HasKnownChanges(const LocalSide& side) {
  if (side.missing) return true;
  for (size_t i = 0; i < side.records.size(); ++i) {
    const std::optional<store::MaildirFolder::Entry>& file = side.state.known[i];
    if (!file || file->name.flags != side.records[i].flags) return true;
  }
  return false;
}

Result<LocalFolderState> ScanLocalFolder(store::MaildirFolder& folder,
                                         const std::vector<store::MessageRecord>& records) {
  std::vector<store::MaildirFolder::RefusedEntry> refused;
  Result<std::vector<store::MaildirFolder::Entry>> entries = folder.Scan(&refused);
  if (!entries.ok()) return entries.error();
  LocalFolderState state = CompareWithIndex(std::move(entries).value(), records);
  state.refused = std::move(refused);
  return state;
}

std::vector<LocalMove> FindLocalMoves(std::vector<FolderScan>& folders) {
  // Stems of records whose file is gone from their folder.
  struct Missing {
    size_t folder;
    uint32_t uid;
    bool taken = false;
  };
  std::unordered_map<std::string_view, Missing> missing;
  for (size_t f = 0; f < folders.size(); ++f) {
    const std::vector<store::MessageRecord>& records = *folders[f].records;
    for (size_t i = 0; i < records.size(); ++i) {
      if (!folders[f].state->known[i] && !records[i].stem.empty()) {
        missing.emplace(records[i].stem, Missing{f, records[i].uid});
      }
    }
  }
  std::vector<LocalMove> moves;
  if (missing.empty()) return moves;
  for (size_t f = 0; f < folders.size(); ++f) {
    std::vector<store::MaildirFolder::Entry>& unknown = folders[f].state->unknown;
    std::vector<store::MaildirFolder::Entry> still_unknown;
    for (store::MaildirFolder::Entry& entry : unknown) {
      auto it = missing.find(entry.name.stem);
      if (it == missing.end() || it->second.taken || it->second.folder == f) {
        still_unknown.push_back(std::move(entry));
        continue;
      }
      it->second.taken = true;
      moves.push_back(LocalMove{folders[it->second.folder].local_name, it->second.uid,
                                folders[f].local_name, std::move(entry)});
    }
    unknown = std::move(still_unknown);
  }
  return moves;
}

}  // namespace mailmirror::sync
