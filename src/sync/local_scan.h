// What a folder's Maildir holds compared with the index: the local half of
// two-way sync's input. Names only (from MaildirFolder::Scan: no stat, no
// reads), matched to the index's records by UID and stem.
//
// A file matches a record when its name carries the record's UID and stem
// (",U=<uid>"), or no UID but the record's stem (a reader that dropped the
// UID part). Everything else is unknown to this folder: a new message, a
// copy, or a message moved here from another folder, which FindLocalMoves
// tells apart by the stem (stems are unique in an account).
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "mailmirror/status.h"
#include "store/index.h"
#include "store/maildir.h"

namespace mailmirror::sync {

struct LocalFolderState {
  // One per record passed in, in the same order: the file found for it, or
  // nullopt when it is gone from this folder.
  std::vector<std::optional<store::MaildirFolder::Entry>> known;
  // Files no record matches, in scan order.
  std::vector<store::MaildirFolder::Entry> unknown;
  // What is no message: never uploaded, never renamed (ScanLocalFolder).
  std::vector<store::MaildirFolder::RefusedEntry> refused;
};

// A folder's Maildir at the start of a run, with the index records it was
// compared with: what two-way sync pushes.
struct LocalSide {
  std::vector<store::MessageRecord> records;  // the folder's, ascending UID
  LocalFolderState state;                     // state.known[i] is records[i]'s file
  bool missing = false;                       // the folder's directory is gone
  // --dry-run: known messages whose files moved to another folder (UID to
  // that folder's local name); a real run repeats such moves on the server
  // before the folders sync.
  std::map<uint32_t, std::string> moved_out;
};

// True when the Maildir differs from the index: a known file gone or its
// flags changed, or a file the index does not know.
bool HasLocalChanges(const LocalSide& side);
// The part of those that the server must be told of with STORE or EXPUNGE
// (which need a read-write SELECT): a known file gone or its flags changed.
bool HasKnownChanges(const LocalSide& side);

// The fingerprint of the Maildir folder at `path` for FolderRecord::
// local_stamp: the change and modification times and inodes of its cur/
// and new/. Any file added to, removed from or renamed in them changes it.
// 0 (unknown) when a directory cannot be read or changed less than two
// seconds before `now` (seconds since the epoch): a change in the same
// clock tick might leave the times as they were.
uint64_t DirectoryStamp(const std::string& path, int64_t now);

// `entries` as MaildirFolder::Scan returns them.
LocalFolderState CompareWithIndex(std::vector<store::MaildirFolder::Entry> entries,
                                  const std::vector<store::MessageRecord>& records);

// Scan + CompareWithIndex. Errors: kIo from the scan.
Result<LocalFolderState> ScanLocalFolder(store::MaildirFolder& folder,
                                         const std::vector<store::MessageRecord>& records);

// One folder of the account, for FindLocalMoves.
struct FolderScan {
  std::string local_name;
  const std::vector<store::MessageRecord>* records = nullptr;
  LocalFolderState* state = nullptr;
};

struct LocalMove {
  std::string from;  // local folder names
  uint32_t uid = 0;  // the record in `from`
  std::string to;
  store::MaildirFolder::Entry file;  // the file in `to`
};

// Files unknown to their folder whose stem is that of a record missing from
// another folder: the user moved the message. They are taken out of
// `unknown` (they are not new messages) and reported, one per record.
std::vector<LocalMove> FindLocalMoves(std::vector<FolderScan>& folders);

}  // namespace mailmirror::sync
