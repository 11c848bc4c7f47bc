// Maildir folders: unique file names carrying the UID and flags, streaming
// delivery through tmp/ with CRLF turned into LF, and the durable ordering
// that makes a crash at any instant harmless (see DeliveryBatch).
//
// File name: "<stem>,U=<uid>:2,<flags>", e.g.
//   "1764079200.M123456P4242Q17.myhost,U=42:2,FS"
// where the stem is unique (time, microseconds, pid, a per-process counter,
// host name with '/', ':' and ',' escaped) and flags are single letters in
// ASCII order: D (\Draft), F (\Flagged), P ($Forwarded), R (\Answered),
// S (\Seen), T (\Deleted). Messages with \Seen live in cur/, others in new/.
// Like mbsync, names written into new/ carry the info too (":2," plus any
// flags other than S); every Maildir reader accepts that.
//
// Threading: see MaildirFolder and DeliveryBatch.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "mailmirror/status.h"

namespace mailmirror::store {

enum Flag : uint32_t {
  kFlagDraft = 1u << 0,      // D
  kFlagFlagged = 1u << 1,    // F
  kFlagForwarded = 1u << 2,  // P ($Forwarded)
  kFlagAnswered = 1u << 3,   // R
  kFlagSeen = 1u << 4,       // S
  kFlagDeleted = 1u << 5,    // T
};

// "DFPRST" letters for `flags`, in ASCII order.
std::string FlagLetters(uint32_t flags);
// Flag bits from the letters after ":2,"; unknown letters are ignored.
uint32_t FlagsFromLetters(std::string_view letters);
// IMAP flag name (case-insensitive: "\\Seen", "$Forwarded") to its bit, 0 if
// it has no Maildir letter.
uint32_t FlagFromImap(std::string_view name);
// A message's IMAP flags split into Flag bits and keywords (flags without a
// Maildir letter that do not start with '\\'; \Recent and unknown system
// flags are dropped).
struct ImapFlags {
  uint32_t bits = 0;
  std::vector<std::string> keywords;
};
ImapFlags SplitImapFlags(const std::vector<std::string>& flags);
// IMAP names of the bits in bit order, e.g. {"\\Flagged", "\\Seen"}.
std::vector<std::string> ImapFlagsFromBits(uint32_t flags);

// A parsed Maildir file name.
struct MaildirName {
  std::string stem;  // before ",U=" or ":2,"
  uint32_t uid = 0;  // 0 when the name carries no ",U="
  uint32_t flags = 0;
  bool has_info = false;  // ":2," present
  // Info letters without a Flag bit (Dovecot keyword letters a-z, unknown
  // uppercase letters of other tools), in their original order. A rename
  // must keep them: pass them to MakeMaildirName.
  std::string other_letters;
};
// Parses a name from cur/ or new/:
//   <stem>[,U=<uid>[,<ignored attributes>]][:2,<letters>]
// The stem is everything before the first ",U=" or ':', so attributes of
// other tools before ",U=" stay in it (Dovecot's "x,S=1234,W=1260:2,S" has
// the stem "x,S=1234,W=1260"); attributes after ",U=<uid>" are dropped.
// <uid> must be a decimal from 1 to 2^32-1. Returns nullopt for dot files,
// an empty stem, a malformed ",U=", and an info other than ":2," (the
// obsolete ":1," and anything unknown are left alone, not interpreted).
std::optional<MaildirName> ParseMaildirName(std::string_view file_name);
// The file name for a message: "<stem>,U=<uid>:2,<letters>", without ",U="
// when `uid` is 0. `stem` must come from NewStem or ParseMaildirName (it
// holds no ':' and no ",U=").
std::string MakeMaildirName(std::string_view stem, uint32_t uid, uint32_t flags);
// The same, keeping `other_letters` (MaildirName::other_letters): the info
// is the union of the flag letters and these, in ASCII order, each once.
std::string MakeMaildirName(std::string_view stem, uint32_t uid, uint32_t flags,
                            std::string_view other_letters);
// A new unique stem (see the file comment). Thread-safe; unique within the
// process (counter) and across processes (pid, microseconds).
std::string NewStem();
// True when `name` is a stem NewStem wrote on this host (any process).
bool IsOwnStem(std::string_view name);
// The pid of the process that wrote such a stem; nullopt for other names.
std::optional<pid_t> OwnStemWriter(std::string_view name);

// A message being written into tmp/. Write() takes the server's bytes in
// chunks of any size and splits, stores them with CRLF turned into LF, and
// hashes what it stores (XXH3-64). Nothing is held in memory beyond a 64 KiB
// buffer. A lone CR (not followed by LF) is stored as is.
//
// Errors: kIo naming the tmp file ("writing <path>: No space left on
// device"); after an error every later call fails the same way.
class TmpMessage {
 public:
  // A message that was not delivered (unfinished, failed, or finished but
  // never renamed by a DeliveryBatch) is unlinked from tmp/.
  virtual ~TmpMessage() = default;
  virtual Status Write(std::string_view chunk) = 0;
  // Flushes the buffer and closes the file; the file is complete (but not
  // yet fsynced: DeliveryBatch does that). Calling it again is a no-op.
  virtual Status Finish() = 0;
  virtual const std::string& stem() const = 0;
  virtual uint64_t size() const = 0;    // bytes stored so far
  virtual uint64_t digest() const = 0;  // valid after Finish
};

// One folder's directory with cur/, new/ and tmp/.
//
// Threading: one thread at a time, except that BeginMessage, path and
// EntryPath may run on one thread while a DeliveryBatch delivers into the
// folder, or SyncDirectories runs, on another.
class MaildirFolder {
 public:
  // Opens the Maildir at `path`, creating it and its parents (mode 0700)
  // when `create`. With a `root` (the account's Maildir root, which `path`
  // lies in), no directory below the root may be a symbolic link: a folder
  // never leads outside the root (os_errno ELOOP). Errors: kIo naming the
  // path.
  static Result<std::unique_ptr<MaildirFolder>> Open(const std::string& path, bool create,
                                                     const std::string& root = "");
  virtual ~MaildirFolder() = default;

  virtual const std::string& path() const = 0;

  // Starts a message in tmp/ under a fresh stem.
  virtual Result<std::unique_ptr<TmpMessage>> BeginMessage() = 0;
  // A finished message in tmp/ that is a hard link to `source`, a stored
  // message (of this or another folder on the same file system) of `size`
  // bytes with XXH3-64 `digest`: the same message under another Gmail
  // label, stored once. Errors: kIo naming the file (ENOENT when a reader
  // renamed or removed it meanwhile, EXDEV across file systems, EMLINK).
  virtual Result<std::unique_ptr<TmpMessage>> LinkMessage(const std::string& source, uint64_t size,
                                                          uint64_t digest) = 0;

  // Every message in cur/ and new/ (no reads; a stat only where readdir
  // does not tell the file type), cur/ first. Only regular files whose
  // names ParseMaildirName accepts are messages; dot files are skipped
  // silently, anything else (symbolic links, FIFOs, sockets, devices,
  // subdirectories, malformed names) is listed in `refused` when given.
  // Errors: kIo naming the directory.
  struct Entry {
    MaildirName name;
    bool in_cur = false;
    std::string file_name;
  };
  struct RefusedEntry {
    std::string file_name;
    bool in_cur = false;
    std::string reason;  // "a symbolic link, not a file", ...
  };
  virtual Result<std::vector<Entry>> Scan(std::vector<RefusedEntry>* refused) = 0;
  Result<std::vector<Entry>> Scan() { return Scan(nullptr); }

  // Removes leftovers of runs that died from tmp/: our own files (IsOwnStem)
  // last modified before `before` (seconds since the epoch) or written by a
  // process that no longer exists, and other programs' files 36 hours older
  // than `before`, since one may still be being written. Dot files and anything that is not a
  // regular file are left alone. Returns how many were removed.
  virtual Result<size_t> CleanTmp(int64_t before) = 0;

  // Renames a message to `new_file_name` in cur/ (`to_cur`) or new/, e.g. to
  // change the UID or flags in its name. Not durable until SyncDirectories.
  // Errors: kIo naming the file.
  virtual Status RenameEntry(const Entry& entry, const std::string& new_file_name, bool to_cur) = 0;
  Status RenameEntry(const Entry& entry, const std::string& new_file_name) {
    return RenameEntry(entry, new_file_name, entry.in_cur);
  }

  // Deletes a message file. Not durable until SyncDirectories. A file that
  // is already gone is not an error.
  virtual Status RemoveEntry(const Entry& entry) = 0;

  // RenameEntry and RemoveEntry for an entry the caller expects rather than
  // one Scan listed (its name computed from the index): a file that is not
  // there is reported as false, not as an error, since a reader may have
  // renamed it meanwhile; the caller then finds it with a Scan.
  virtual Result<bool> RenameIfPresent(const Entry& entry, const std::string& new_file_name,
                                       bool to_cur) = 0;
  virtual Result<bool> RemoveIfPresent(const Entry& entry) = 0;

  // fsyncs cur/ and new/, making renames in them durable.
  virtual Status SyncDirectories() = 0;

  // The full path of file `file_name` in cur/ (`in_cur`) or new/.
  std::string FilePath(const std::string& file_name, bool in_cur) const {
    return path() + (in_cur ? "/cur/" : "/new/") + file_name;
  }
  // The full path of a message listed by Scan.
  std::string EntryPath(const Entry& entry) const {
    return FilePath(entry.file_name, entry.in_cur);
  }

  // Reads a stored message and returns its XXH3-64 digest and size. Errors:
  // kIo naming the file (os_errno ENOENT when a reader renamed it meanwhile:
  // rescan; kNotRegularFile, util/fs.h, for anything but a regular file),
  // kInternal for a `file_name` that is not a plain file name.
  virtual Result<std::pair<uint64_t, uint64_t>> DigestOf(const std::string& file_name,
                                                         bool in_cur) = 0;
};

// Moves finished TmpMessages into place durably, many at a time:
//   1. fsync every tmp file of the batch,
//   2. rename each into new/ or cur/ under its final name,
//   3. fsync each directory that received a file (once per batch),
// and only then may the caller commit the index records for them. A crash
// before 2 leaves only tmp/ files (cleaned later); a crash between 2 and the
// index commit leaves durable files whose names carry their UID.
class DeliveryBatch {
 public:
  struct Item {
    MaildirFolder* folder = nullptr;
    std::unique_ptr<TmpMessage> message;  // finished
    uint32_t uid = 0;
    uint32_t flags = 0;
    int64_t mtime = 0;  // INTERNALDATE, seconds since the epoch; 0: leave
  };
  void Add(Item item) { items_.push_back(std::move(item)); }
  // Moves `other`'s items to the end of this batch (one delivery for both).
  void Append(DeliveryBatch& other) {
    for (Item& item : other.items_) items_.push_back(std::move(item));
    other.Clear();
  }
  bool empty() const { return items_.empty(); }
  size_t size() const { return items_.size(); }

  // Runs steps 1-3. Step 1 also sets the file times to Item::mtime (when
  // non-zero). On error (kIo, naming the file) the files already renamed
  // stay where they are (durable or not) and the rest are unlinked;
  // delivered_names() then holds the names of the renamed ones, items
  // 0..k-1. The items are kept for the caller: item i's final file name is
  // delivered_names()[i] (MakeMaildirName(stem, uid, flags)), in cur/ when
  // its flags hold kFlagSeen, else new/. Every message must come from
  // MaildirFolder::BeginMessage and be finished; otherwise kInternal and no
  // file is touched. The target folder is Item::folder (it may differ from
  // the folder that began the message if both are on one file system).
  Status Deliver();
  const std::vector<Item>& items() const { return items_; }
  const std::vector<std::string>& delivered_names() const { return names_; }
  void Clear() {
    items_.clear();
    names_.clear();
  }

 private:
  std::vector<Item> items_;
  std::vector<std::string> names_;
};

}  // namespace mailmirror::store
