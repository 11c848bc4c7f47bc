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
};

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
