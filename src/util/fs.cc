#include "util/fs.h"

#include <sys/stat.h>

#include <cerrno>
#include <cstring>

namespace mailmirror {

Status MakeDirectories(const std::string& path, unsigned mode) {
  for (size_t slash = path.find('/', 1);; slash = path.find('/', slash + 1)) {
    std::string prefix = path.substr(0, slash);
    if (!prefix.empty() && prefix.back() != '/' && ::mkdir(prefix.c_str(), mode) != 0 &&
        errno != EEXIST) {
      return MakeError(ErrorKind::kIo,
                       "creating directory " + prefix + ": " + std::strerror(errno));
    }
    if (slash == std::string::npos) break;
  }
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
    return MakeError(ErrorKind::kIo, path + ": not a directory");
  }
  return Status::Ok();
}

}  // namespace mailmirror
