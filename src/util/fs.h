// Small file system helpers shared by the store and the sync engine.
#pragma once

#include <string>
#include <string_view>

#include "mailmirror/status.h"

namespace mailmirror {

// mkdir -p: creates `path` and its missing parents with `mode`; existing
// directories keep theirs. Errors: kIo naming the directory that could not
// be created, or the path when it exists but is not a directory.
Status MakeDirectories(const std::string& path, unsigned mode = 0700);

// Replaces the file at `path` with `text` all at once: writes <path>.tmp
// with `mode` (also when such a file existed with another), fsyncs it when
// `durable`, and renames it over `path`. On error (kIo naming the file)
// `path` is as it was and the temporary file is gone.
Status WriteFileAtomically(const std::string& path, std::string_view text, unsigned mode,
                           bool durable);

}  // namespace mailmirror
