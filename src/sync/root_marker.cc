#include "sync/root_marker.h"

#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <memory>

#include "util/fs.h"

namespace mailmirror::sync {

std::string RootMarkerPath(const std::string& maildir) {
  std::string base;
  if (const char* state = std::getenv("XDG_STATE_HOME"); state != nullptr && state[0] == '/') {
    base = state;
  } else if (const char* home = std::getenv("HOME"); home != nullptr && home[0] != '\0') {
    base = std::string(home) + "/.local/state";
  } else {
    return "";
  }
  const XXH128_hash_t hash = XXH3_128bits(maildir.data(), maildir.size());
  char hex[33];
  (void)std::snprintf(hex, sizeof hex, "%016llx%016llx",
                      static_cast<unsigned long long>(hash.high64),
                      static_cast<unsigned long long>(hash.low64));
  return base + "/mailmirror/roots/" + hex;
}

namespace {

bool Exists(const std::string& path) {
  struct stat st {};
  return !path.empty() && ::stat(path.c_str(), &st) == 0;
}

}  // namespace

bool SyncedBefore(const std::string& maildir) { return Exists(RootMarkerPath(maildir)); }

Status RecordSynced(const std::string& maildir, const std::string& account) {
  const std::string path = RootMarkerPath(maildir);
  if (path.empty() || Exists(path)) return Status::Ok();
  if (Status made = MakeDirectories(path.substr(0, path.rfind('/')), 0700); !made.ok()) {
    return made;
  }
  return WriteFileAtomically(path, "account " + account + "\nmaildir " + maildir + "\n", 0600,
                             /*durable=*/false);
}

bool RootMissingOrEmpty(const std::string& maildir) {
  std::unique_ptr<DIR, int (*)(DIR*)> dir(::opendir(maildir.c_str()), &::closedir);
  if (!dir) return errno == ENOENT;
  while (const dirent* entry = ::readdir(dir.get())) {
    const std::string name = entry->d_name;
    if (name != "." && name != "..") return false;
  }
  return true;
}

}  // namespace mailmirror::sync
