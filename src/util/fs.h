// Small file system helpers shared by the store and the sync engine.
#pragma once

#include <string>

#include "mailmirror/status.h"

namespace mailmirror {

// mkdir -p: creates `path` and its missing parents with `mode`; existing
// directories keep theirs. Errors: kIo naming the directory that could not
// be created, or the path when it exists but is not a directory.
Status MakeDirectories(const std::string& path, unsigned mode = 0700);

}  // namespace mailmirror
