// The per-account state index: one LMDB environment holding, per folder,
// the server's UIDVALIDITY/UIDNEXT/HIGHESTMODSEQ as of the last sync, and per
// message what both sides looked like then. It is the base of every merge.
//
// Durability contract: the sync engine commits a Batch only after the files
// it describes are durable on disk, so the index never points at a file that
// a crash could lose. The reverse is allowed (a durable file the index does
// not know yet); the engine recovers those from the UID in the file name.
//
// Threading: reads may run on one thread while Commit runs on another (as
// the sync engine commits on a pool thread); beyond that, one thread at a
// time. Only this module includes lmdb.h.
#pragma once

#include <cstdint>
#include <iterator>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "mailmirror/status.h"

namespace mailmirror::store {

// A folder as the index knows it. `id` is assigned by the index when the
// folder is first stored (PutFolder with id 0) and never reused.
struct FolderRecord {
  uint32_t id = 0;
  std::string remote_name;   // the server's raw name: the folder's key
  std::string local_name;    // UTF-8 with '/' separators, e.g. "Archive/2023"
  uint32_t uidvalidity = 0;  // 0: never synced
  uint32_t uidnext = 0;      // every UID below it has been seen and stored
  uint64_t highestmodseq = 0;
  // The server's MESSAGES when the last sync completed; nullopt when
  // unknown (an index written before schema 2, or no sync completed yet).
  std::optional<uint32_t> messages;
  // A download of new messages began and has not completed: files of it may
  // be in the Maildir under their UID without index records (see
  // sync/folder_pull.h), so the next run must look for them.
  bool fetch_pending = false;
  // A fingerprint of the folder's cur/ and new/ directories (their times
  // and inodes) when the Maildir was last found to match the index; 0 when
  // unknown. While the directories still have it, no file in them was
  // added, removed or renamed, so a run need not list them.
  uint64_t local_stamp = 0;
};

// A message as of the last sync.
struct MessageRecord {
  uint32_t uid = 0;
  std::string stem;                   // unique part of the file name (before ",U=" / ":2,")
  bool in_cur = false;                // file lives in cur/ (else new/)
  uint32_t flags = 0;                 // store::Flag bits (maildir.h)
  std::vector<std::string> keywords;  // IMAP keywords without a Maildir letter
  uint64_t size = 0;                  // bytes of the local file (LF line ends)
  uint64_t remote_size = 0;           // RFC822.SIZE as the server reported it
  int64_t internaldate = 0;           // seconds since the epoch (UTC)
  uint64_t digest = 0;                // XXH3-64 of the local file's bytes
  // Gmail's X-GM-MSGID: the same message under several labels (folders)
  // has the same id; 0: unknown or not Gmail.
  uint64_t gm_msgid = 0;
};

// Migrations (`mailmirror migrate`) remember, per target mailbox, which of
// this account's messages reached it. `target` names that mailbox (e.g.
// "user@host:993"); it must not hold NUL.
//
// Where the copy of a message landed; uid 0 when the server did not say.
struct CopyMark {
  uint32_t uidvalidity = 0;
  uint32_t uid = 0;
};

// What a source folder's copy records refer to: its UIDVALIDITY, and a
// fingerprint of the migration's settings for it (target folder, filters),
// so that changing them makes the target's contents decide again.
struct CopySource {
  uint32_t uidvalidity = 0;
  uint32_t fingerprint = 0;
};

// A target folder as a migration last left it: every message at or above
// `uidnext` arrived after the last commit of copies into it, so only those
// can be copies the index does not know (an interrupted run).
struct CopyTargetState {
  uint32_t uidvalidity = 0;
  uint32_t uidnext = 0;
};

// A local file of a folder that is no message or could not be uploaded
// (a symbolic link, a FIFO, a malformed name, an empty file, NUL bytes, a
// message the server refused): reported once, then left alone while it
// stays as it was.
struct RefusedFile {
  std::string file_name;     // "cur/<name>" or "new/<name>"
  uint64_t fingerprint = 0;  // of its size, change time and inode: a change means "try again"
  std::string reason;        // for status and the log
};

// Tuning for Index::Open; the defaults suit production.
struct IndexOptions {
  // Initial size of the memory map, which bounds the database file until the
  // index grows it (it doubles the map when a commit runs out of room and
  // retries, so this is not a hard limit). 0: 8 GiB on 64-bit systems, 1 GiB
  // on 32-bit; the file is sparse, so a big map costs address space only.
  // Tests set a tiny value to exercise the growth path.
  uint64_t map_size = 0;
};

class Index {
 public:
  // Opens (creating if missing) the environment in directory `dir`, which is
  // created with mode 0700 if needed (missing parents too). Errors: kIo for
  // file system and LMDB failures and for a corrupt index (message names the
  // path); kConfig when the stored schema version is newer or unknown
  // ("written by a newer mailmirror"). One Index per directory per process:
  // LMDB forbids opening an environment twice in one process.
  static Result<std::unique_ptr<Index>> Open(const std::string& dir);
  static Result<std::unique_ptr<Index>> Open(const std::string& dir, const IndexOptions& options);

  virtual ~Index() = default;

  // --- Reads (each in its own read transaction). Errors: kIo.
  virtual Result<std::optional<FolderRecord>> GetFolder(std::string_view remote_name) = 0;
  // Every folder, in byte order of the remote name.
  virtual Result<std::vector<FolderRecord>> ListFolders() = 0;
  virtual Result<std::optional<MessageRecord>> GetMessage(uint32_t folder_id, uint32_t uid) = 0;
  // All messages of a folder in ascending UID order.
  virtual Result<std::vector<MessageRecord>> ListMessages(uint32_t folder_id) = 0;
  // The UIDs of a folder's messages, ascending; reads keys only, so it costs
  // little more than the walk (no record is decoded).
  virtual Result<std::vector<uint32_t>> ListUids(uint32_t folder_id) = 0;
  // The records of those of `uids` the index holds, in one read transaction,
  // in the order of `uids` (unknown UIDs are left out).
  virtual Result<std::vector<MessageRecord>> GetMessages(uint32_t folder_id,
                                                         const std::vector<uint32_t>& uids) = 0;
  // The UID of the folder's message whose file has this stem (nullopt for an
  // empty stem: those are not indexed).
  virtual Result<std::optional<uint32_t>> UidForStem(uint32_t folder_id, std::string_view stem) = 0;
  // Every (folder id, uid) whose digest is `digest`, across folders, ordered
  // by folder id then UID. Digest 0 means "unknown" and is not indexed, so
  // FindDigest(0) is always empty.
  virtual Result<std::vector<std::pair<uint32_t, uint32_t>>> FindDigest(uint64_t digest) = 0;
  // Every (folder id, uid) holding the Gmail message `msgid`, ordered as
  // FindDigest's; FindGmailMessage(0) is always empty.
  virtual Result<std::vector<std::pair<uint32_t, uint32_t>>> FindGmailMessage(uint64_t msgid) = 0;

  // --- Migrations (see CopyMark).
  // The copied messages of a source folder, by source UID, ascending.
  virtual Result<std::vector<std::pair<uint32_t, CopyMark>>> ListCopies(std::string_view target,
                                                                        uint32_t folder_id) = 0;
  // What the source folder's copies refer to (ResetCopies).
  virtual Result<std::optional<CopySource>> GetCopySource(std::string_view target,
                                                          uint32_t folder_id) = 0;
  // A target folder by its raw name on the target server.
  virtual Result<std::optional<CopyTargetState>> GetCopyTarget(std::string_view target,
                                                               std::string_view raw_name) = 0;

  // The refused files of a folder, by file name.
  virtual Result<std::vector<RefusedFile>> ListRefused(uint32_t folder_id) = 0;

  // The account the index belongs to ("user@host:port", e.g.
  // "alice@imap.example.org:993"): recorded by the first call, compared by
  // every later one, so that two accounts never share one Maildir through
  // one index. Only the user and host must match (a new port is recorded).
  // Errors: kConfig naming both accounts when they differ.
  virtual Status ClaimAccount(std::string_view identity) = 0;

  // --- Writes, batched: nothing is visible or durable until Commit.
  // Operations apply in the order they were added, so a batch may delete a
  // message and put another that reuses its stem.
  class Batch {
   public:
    // Creates or updates a folder by remote name. A new folder (id 0) gets
    // its id at Commit; use AllocateFolderId first when messages must be put
    // in the same batch. An existing folder keeps its id (a non-zero id that
    // differs from the stored one fails the Commit with kInternal). A known
    // id under a new remote name renames the folder: the old name is
    // dropped, the id and its messages stay.
    void PutFolder(const FolderRecord& folder);
    // Removes a folder by remote name with all its messages; its id is never
    // reused. No-op when the folder is unknown.
    void DeleteFolder(std::string_view remote_name);
    // Adds or replaces a message (and its stem and digest reverse entries).
    // Folder id and UID must be non-zero, and a stem belongs to one UID per
    // folder: putting a stem that another UID of the folder holds fails the
    // Commit with kInternal. An empty stem is stored but not indexed.
    void PutMessage(uint32_t folder_id, const MessageRecord& message);
    // No-op when the message is unknown.
    void DeleteMessage(uint32_t folder_id, uint32_t uid);
    // Removes every message of the folder (UIDVALIDITY change); the folder
    // record stays.
    void ClearFolderMessages(uint32_t folder_id);
    // Migrations: a copy of message `uid` of the folder reached `target`.
    void PutCopy(std::string_view target, uint32_t folder_id, uint32_t uid, CopyMark mark);
    // Forgets every copy of the folder's messages to `target` and records
    // what the next ones refer to.
    void ResetCopies(std::string_view target, uint32_t folder_id, CopySource source);
    void PutCopyTarget(std::string_view target, std::string_view raw_name, CopyTargetState state);
    // Forgets a target folder's state: its next run looks at all of it.
    void ForgetCopyTarget(std::string_view target, std::string_view raw_name);
    // Records a refused file of the folder (replacing one of the same name).
    void PutRefused(uint32_t folder_id, const RefusedFile& file);
    // Forgets every refused file of the folder (before putting the current ones).
    void ClearRefused(uint32_t folder_id);
    // Moves `other`'s operations to the end of this batch, in their order.
    void Append(Batch& other) {
      ops_.insert(ops_.end(), std::make_move_iterator(other.ops_.begin()),
                  std::make_move_iterator(other.ops_.end()));
      other.ops_.clear();
    }
    bool empty() const { return ops_.empty(); }
    size_t size() const { return ops_.size(); }
    void clear() { ops_.clear(); }

   private:
    friend class LmdbIndex;
    struct PutFolderOp {
      FolderRecord folder;
    };
    struct DeleteFolderOp {
      std::string remote_name;
    };
    struct PutMessageOp {
      uint32_t folder_id;
      MessageRecord message;
    };
    struct DeleteMessageOp {
      uint32_t folder_id;
      uint32_t uid;
    };
    struct ClearFolderOp {
      uint32_t folder_id;
    };
    // Records of the plain key-value databases (migration copies, refused
    // files): one key, or every key under a prefix (keys built in index.cc).
    enum class RawDb { kCopies, kRefused };
    struct PutRawOp {
      RawDb db;
      std::string key;
      std::string value;
    };
    struct ClearRawOp {
      RawDb db;
      std::string prefix;
      bool exact = false;  // only the key equal to `prefix`
    };
    using Op = std::variant<PutFolderOp, DeleteFolderOp, PutMessageOp, DeleteMessageOp,
                            ClearFolderOp, PutRawOp, ClearRawOp>;
    std::vector<Op> ops_;
  };

  // Returns a fresh folder id (never 0, never reused), durable at once.
  virtual Result<uint32_t> AllocateFolderId() = 0;

  // Applies the batch in one LMDB write transaction, durably (fsync), and
  // empties it. All or nothing: on error nothing is applied and the batch is
  // left as it was, so the caller may retry or clear() it. Errors: kIo for
  // LMDB failures ("commit to index <dir> failed: ..."), kInternal for a
  // batch that breaks the rules above.
  virtual Status Commit(Batch& batch) = 0;
};

}  // namespace mailmirror::store
