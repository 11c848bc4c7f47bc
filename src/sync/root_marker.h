// A record, outside the Maildir, that an account has synced into a Maildir
// root: with the default state_dir the index lives inside the root, so a
// root that was moved away or whose disk is not mounted would otherwise
// look like a first run and be filled again from the server, silently.
//
// The record is $XDG_STATE_HOME/mailmirror/roots/<hash of the root's path>
// (~/.local/state without XDG_STATE_HOME), holding the account's name and
// the path for whoever reads it.
#pragma once

#include <string>

#include "mailmirror/status.h"

namespace mailmirror::sync {

// The record's path for `maildir` (a normalised path); "" when neither
// XDG_STATE_HOME nor HOME is set (no record is kept then).
std::string RootMarkerPath(const std::string& maildir);

// Whether an account synced into `maildir` before.
bool SyncedBefore(const std::string& maildir);

// Records that `account` synced into `maildir` (once; later calls only
// check that the record is there). Errors: kIo naming the file.
Status RecordSynced(const std::string& maildir, const std::string& account);

// A Maildir root that is missing or an empty directory (an unmounted disk).
bool RootMissingOrEmpty(const std::string& maildir);

}  // namespace mailmirror::sync
