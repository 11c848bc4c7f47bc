// LmdbIndex: the Index of index.h on one LMDB environment.
//
// On-disk schema, version 4
// -------------------------
// Files: <dir>/data.mdb and <dir>/lock.mdb (mode 0600; <dir> is 0700).
// Named databases (key -> value):
//
//   meta        "schema_version"           -> u32 LE (currently 4)
//               "next_folder_id"           -> u32 LE, the next id to hand out
//   folders     folder key                 -> FolderRecord value
//   folder_ids  u32 BE folder id           -> remote name (raw bytes)
//   messages    u32 BE folder id, u32 BE uid -> MessageRecord value
//   stems       u32 BE folder id, stem bytes -> u32 BE uid
//   digests     u64 BE digest              -> u32 BE folder id, u32 BE uid
//               (MDB_DUPSORT | MDB_DUPFIXED: one key, many 8-byte values)
//   gm_msgids   u64 BE X-GM-MSGID          -> u32 BE folder id, u32 BE uid
//               (the same shape: Gmail's message ids across label folders)
//
// Integers in keys are big-endian so that LMDB's bytewise key order is
// numeric order: a cursor walks one folder's messages in UID order, and the
// 4-byte folder prefix bounds a range scan to exactly one folder.
//
// Folder key: the remote name itself when it has at most 400 bytes. Longer
// names (LMDB keys are limited to 511 bytes) use their first 400 bytes
// followed by the 16-byte XXH3-128 of the whole name; the key length (400 vs
// 416) tells the two forms apart, and the record repeats the full name,
// which reads check.
//
// Values start with a format byte (1). Then: unsigned integers are LEB128
// varints, signed ones zigzag-encoded varints, strings a varint length and
// the bytes, digests 8 bytes little-endian (hashes do not shrink as varints).
//
//   FolderRecord:  0x03 | id | remote_name | local_name | uidvalidity |
//                  uidnext | highestmodseq | messages + 1 (0: unknown) |
//                  bits (bit 0: fetch_pending) | local_stamp (8 bytes LE)
//                  Schema 2 wrote format 0x02, without local_stamp; it reads
//                  as stamp 0 (unknown). Schema 1 wrote format 0x01, without
//                  the last three fields; it still reads, as messages
//                  unknown and fetch pending (nothing proves that its last
//                  download completed).
//   MessageRecord: 0x01 | bits (one byte; bit 0: in_cur) | flags | stem |
//                  keyword count | keywords... | size | remote_size |
//                  internaldate (zigzag) | digest (8 bytes LE)
//                  Format 0x02 (schema 4, written only for messages with a
//                  Gmail message id) adds | gm_msgid (varint).
//                  The UID is not repeated: it is in the key.
//
// Opening a schema 1, 2 or 3 index stores version 4: its records stay
// readable, and its gm_msgids database starts empty, as no record has an id.
//
// A value with another format byte or with trailing bytes is reported as
// corruption (kIo): a format change bumps the schema version, and Open
// refuses versions it does not know, so an old binary never rewrites records
// it only half understands.
//
// Invariants every write transaction keeps:
//   - stems[(f, m.stem)] == m.uid for each message m of folder f with a
//     non-empty stem, and stems holds nothing else;
//   - digests holds (m.digest -> (f, m.uid)) for each message with a non-zero
//     digest, and nothing else; gm_msgids likewise for m.gm_msgid;
//   - folder_ids[r.id] == r.remote_name for each folder record r, and
//     next_folder_id exceeds every id ever handed out.
#include "store/index.h"

#include <lmdb.h>
#include <sys/stat.h>
#include <xxhash.h>

#include <cerrno>
#include <limits>
#include <mutex>
#include <set>
#include <shared_mutex>
#include <system_error>
#include <utility>

#include "util/fs.h"
#include "util/strings.h"

namespace mailmirror::store {
namespace {

constexpr uint32_t kSchemaVersion = 4;
constexpr uint8_t kRecordFormat = 1;       // messages; folders written by schema 1
constexpr uint8_t kRecordFormatGmail = 2;  // messages with a gm_msgid
constexpr uint8_t kFolderFormatV2 = 2;
constexpr uint8_t kFolderFormat = 3;
// Named databases at most: nine are in use; LMDB's cost per slot is a few
// bytes, so there is room for years of schema growth.
constexpr unsigned int kMaxDbs = 32;
// The file is sparse, so a large map costs address space, not disk.
constexpr uint64_t kDefaultMapSize = sizeof(void*) >= 8 ? (uint64_t{8} << 30) : (uint64_t{1} << 30);
constexpr uint64_t kMapSizeGranule = 64 * 1024;  // a multiple of any page size
// Doubling 32 times takes even a 64 KiB test map past any real need; the cap
// only stops a loop should LMDB keep reporting a full map after growth.
constexpr int kMaxMapGrowths = 32;
constexpr size_t kMaxDirectFolderKey = 400;
constexpr std::string_view kSchemaVersionKey = "schema_version";
constexpr std::string_view kNextFolderIdKey = "next_folder_id";
constexpr std::string_view kAccountKey = "account";

// --- Byte encodings.

void AppendBe32(std::string& out, uint32_t v) {
  for (int shift = 24; shift >= 0; shift -= 8) out.push_back(static_cast<char>(v >> shift));
}

std::string Be32(uint32_t v) {
  std::string out;
  AppendBe32(out, v);
  return out;
}

void AppendBe64(std::string& out, uint64_t v) {
  for (int shift = 56; shift >= 0; shift -= 8) out.push_back(static_cast<char>(v >> shift));
}

uint32_t ReadBe32(const char* p) {
  uint32_t v = 0;
  for (int i = 0; i < 4; ++i) v = (v << 8) | static_cast<uint8_t>(p[i]);
  return v;
}

std::string Le32(uint32_t v) {
  std::string out;
  for (int shift = 0; shift < 32; shift += 8) out.push_back(static_cast<char>(v >> shift));
  return out;
}

std::optional<uint32_t> ParseLe32(std::string_view in) {
  if (in.size() != 4) return std::nullopt;
  uint32_t v = 0;
  for (int i = 3; i >= 0; --i) v = (v << 8) | static_cast<uint8_t>(in[i]);
  return v;
}

void AppendVarint(std::string& out, uint64_t v) {
  while (v >= 0x80) {
    out.push_back(static_cast<char>((v & 0x7f) | 0x80));
    v >>= 7;
  }
  out.push_back(static_cast<char>(v));
}

void AppendFixed64Le(std::string& out, uint64_t v) {
  for (int shift = 0; shift < 64; shift += 8) out.push_back(static_cast<char>(v >> shift));
}

void AppendString(std::string& out, std::string_view s) {
  AppendVarint(out, s.size());
  out.append(s);
}

uint64_t ZigZag(int64_t v) {
  return (static_cast<uint64_t>(v) << 1) ^ static_cast<uint64_t>(v >> 63);
}

int64_t UnZigZag(uint64_t v) { return static_cast<int64_t>((v >> 1) ^ (0 - (v & 1))); }

// Reads the encodings above; every method returns false on truncated or
// malformed input and leaves the output unspecified.
class Decoder {
 public:
  explicit Decoder(std::string_view in) : in_(in) {}

  bool Byte(uint8_t* out) {
    if (in_.empty()) return false;
    *out = static_cast<uint8_t>(in_[0]);
    in_.remove_prefix(1);
    return true;
  }

  bool Varint(uint64_t* out) {
    uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      uint8_t byte = 0;
      if (!Byte(&byte)) return false;
      v |= static_cast<uint64_t>(byte & 0x7f) << shift;
      if ((byte & 0x80) == 0) {
        *out = v;
        return true;
      }
    }
    return false;  // more than ten bytes
  }

  bool Varint32(uint32_t* out) {
    uint64_t v = 0;
    if (!Varint(&v) || v > std::numeric_limits<uint32_t>::max()) return false;
    *out = static_cast<uint32_t>(v);
    return true;
  }

  bool String(std::string* out) {
    uint64_t size = 0;
    if (!Varint(&size) || size > in_.size()) return false;
    out->assign(in_.substr(0, size));
    in_.remove_prefix(size);
    return true;
  }

  bool Fixed64Le(uint64_t* out) {
    if (in_.size() < 8) return false;
    uint64_t v = 0;
    for (int i = 7; i >= 0; --i) v = (v << 8) | static_cast<uint8_t>(in_[i]);
    in_.remove_prefix(8);
    *out = v;
    return true;
  }

  size_t remaining() const { return in_.size(); }

 private:
  std::string_view in_;
};

std::string EncodeFolder(const FolderRecord& folder) {
  std::string out;
  out.reserve(24 + folder.remote_name.size() + folder.local_name.size());
  out.push_back(static_cast<char>(kFolderFormat));
  AppendVarint(out, folder.id);
  AppendString(out, folder.remote_name);
  AppendString(out, folder.local_name);
  AppendVarint(out, folder.uidvalidity);
  AppendVarint(out, folder.uidnext);
  AppendVarint(out, folder.highestmodseq);
  AppendVarint(out, folder.messages ? uint64_t{*folder.messages} + 1 : 0);
  out.push_back(static_cast<char>(folder.fetch_pending ? 1 : 0));
  AppendFixed64Le(out, folder.local_stamp);
  return out;
}

bool DecodeFolder(std::string_view in, FolderRecord* folder) {
  Decoder d(in);
  uint8_t format = 0;
  if (!d.Byte(&format) ||
      (format != kFolderFormat && format != kFolderFormatV2 && format != kRecordFormat) ||
      !d.Varint32(&folder->id) || !d.String(&folder->remote_name) ||
      !d.String(&folder->local_name) || !d.Varint32(&folder->uidvalidity) ||
      !d.Varint32(&folder->uidnext) || !d.Varint(&folder->highestmodseq)) {
    return false;
  }
  if (format == kRecordFormat) {
    folder->messages.reset();
    folder->fetch_pending = true;
    return d.remaining() == 0;
  }
  uint64_t messages = 0;
  uint8_t bits = 0;
  if (!d.Varint(&messages) || messages > uint64_t{std::numeric_limits<uint32_t>::max()} + 1 ||
      !d.Byte(&bits) || bits > 1) {
    return false;
  }
  folder->local_stamp = 0;
  if (format == kFolderFormat && !d.Fixed64Le(&folder->local_stamp)) return false;
  if (d.remaining() != 0) return false;
  folder->messages =
      messages == 0 ? std::nullopt : std::optional<uint32_t>(static_cast<uint32_t>(messages - 1));
  folder->fetch_pending = (bits & 1) != 0;
  return true;
}

std::string EncodeMessage(const MessageRecord& message) {
  std::string out;
  size_t keyword_bytes = 0;
  for (const std::string& keyword : message.keywords) keyword_bytes += keyword.size() + 1;
  out.reserve(40 + message.stem.size() + keyword_bytes);
  out.push_back(static_cast<char>(message.gm_msgid != 0 ? kRecordFormatGmail : kRecordFormat));
  out.push_back(static_cast<char>(message.in_cur ? 1 : 0));
  AppendVarint(out, message.flags);
  AppendString(out, message.stem);
  AppendVarint(out, message.keywords.size());
  for (const std::string& keyword : message.keywords) AppendString(out, keyword);
  AppendVarint(out, message.size);
  AppendVarint(out, message.remote_size);
  AppendVarint(out, ZigZag(message.internaldate));
  AppendFixed64Le(out, message.digest);
  if (message.gm_msgid != 0) AppendVarint(out, message.gm_msgid);
  return out;
}

bool DecodeMessage(std::string_view in, uint32_t uid, MessageRecord* message) {
  Decoder d(in);
  uint8_t format = 0;
  uint8_t bits = 0;
  uint64_t keyword_count = 0;
  if (!d.Byte(&format) || (format != kRecordFormat && format != kRecordFormatGmail) ||
      !d.Byte(&bits) || bits > 1 || !d.Varint32(&message->flags) || !d.String(&message->stem) ||
      !d.Varint(&keyword_count) ||
      keyword_count > d.remaining()) {  // each keyword takes at least its length byte
    return false;
  }
  message->uid = uid;
  message->in_cur = (bits & 1) != 0;
  message->keywords.resize(keyword_count);
  for (std::string& keyword : message->keywords) {
    if (!d.String(&keyword)) return false;
  }
  uint64_t internaldate = 0;
  if (!d.Varint(&message->size) || !d.Varint(&message->remote_size) || !d.Varint(&internaldate) ||
      !d.Fixed64Le(&message->digest)) {
    return false;
  }
  message->gm_msgid = 0;
  if (format == kRecordFormatGmail && (!d.Varint(&message->gm_msgid) || message->gm_msgid == 0)) {
    return false;
  }
  if (d.remaining() != 0) return false;
  message->internaldate = UnZigZag(internaldate);
  return true;
}

// --- Keys.

std::string FolderKey(std::string_view remote_name) {
  if (remote_name.size() <= kMaxDirectFolderKey) return std::string(remote_name);
  std::string key(remote_name.substr(0, kMaxDirectFolderKey));
  XXH128_hash_t hash = XXH3_128bits(remote_name.data(), remote_name.size());
  AppendBe64(key, hash.high64);
  AppendBe64(key, hash.low64);
  return key;
}

// Also the value of a digests or gm_msgids entry.
std::string MessageKey(uint32_t folder_id, uint32_t uid) {
  std::string key;
  AppendBe32(key, folder_id);
  AppendBe32(key, uid);
  return key;
}

std::string StemKey(uint32_t folder_id, std::string_view stem) {
  std::string key;
  key.reserve(4 + stem.size());
  AppendBe32(key, folder_id);
  key.append(stem);
  return key;
}

// Key of a digests or gm_msgids entry.
std::string DigestKey(uint64_t digest) {
  std::string key;
  AppendBe64(key, digest);
  return key;
}

// Migration records (copies database): a 128-bit hash of the target's
// name (keys stay short whatever it is), then 'M' folder uid (a copied
// message), 'S' folder (the source UIDVALIDITY and filter fingerprint), or
// 'T' and the target folder's raw name as FolderKey bounds it (its
// CopyTargetState). Values: two LE32.
std::string CopyKey(std::string_view target, char kind) {
  const XXH128_hash_t hash = XXH3_128bits(target.data(), target.size());
  std::string key;
  AppendBe64(key, hash.high64);
  AppendBe64(key, hash.low64);
  key += kind;
  return key;
}

std::string CopyMessagePrefix(std::string_view target, uint32_t folder_id) {
  std::string key = CopyKey(target, 'M');
  AppendBe32(key, folder_id);
  return key;
}

std::string CopySourceKey(std::string_view target, uint32_t folder_id) {
  std::string key = CopyKey(target, 'S');
  AppendBe32(key, folder_id);
  return key;
}

std::string CopyTargetKey(std::string_view target, std::string_view raw_name) {
  return CopyKey(target, 'T') + FolderKey(raw_name);
}

std::string TwoLe32(uint32_t first, uint32_t second) { return Le32(first) + Le32(second); }

// --- LMDB glue.

// LMDB never writes through mv_data of keys and data passed in; the
// non-const pointer is a C API artifact.
MDB_val Val(std::string_view bytes) {
  return MDB_val{bytes.size(), const_cast<char*>(bytes.data())};
}

// mdb_put for keys that usually come in ascending order (a folder's new
// UIDs, time-based stems). LMDB splits a full page in the middle, which
// leaves pages filled by ascending inserts half empty; MDB_APPEND splits at
// the end instead and packs them. It refuses a key that is not past the
// last one: then it is an ordinary put.
int PutPackingAppends(MDB_txn* txn, MDB_dbi dbi, MDB_val* key, MDB_val* value) {
  int rc = mdb_put(txn, dbi, key, value, MDB_APPEND);
  if (rc != MDB_KEYEXIST) return rc;
  return mdb_put(txn, dbi, key, value, 0);
}

// Valid until the transaction ends or the database is written to.
std::string_view View(const MDB_val& val) {
  return {static_cast<const char*>(val.mv_data), val.mv_size};
}

std::string LmdbText(int rc) { return mdb_strerror(rc); }

std::string ErrnoText(int error) { return std::generic_category().message(error); }

// Aborts a transaction that was neither committed nor aborted.
class TxnGuard {
 public:
  TxnGuard() = default;
  TxnGuard(const TxnGuard&) = delete;
  TxnGuard& operator=(const TxnGuard&) = delete;
  ~TxnGuard() { Abort(); }

  MDB_txn** out() { return &txn_; }
  MDB_txn* get() const { return txn_; }
  MDB_txn* release() { return std::exchange(txn_, nullptr); }
  void Abort() {
    if (txn_ != nullptr) mdb_txn_abort(release());
  }

 private:
  MDB_txn* txn_ = nullptr;
};

// Closes a cursor. Declare it after the TxnGuard of its transaction, so it
// closes first: a write transaction frees its cursors when it ends.
class CursorGuard {
 public:
  CursorGuard() = default;
  CursorGuard(const CursorGuard&) = delete;
  CursorGuard& operator=(const CursorGuard&) = delete;
  ~CursorGuard() {
    if (cursor_ != nullptr) mdb_cursor_close(cursor_);
  }

  MDB_cursor** out() { return &cursor_; }
  MDB_cursor* get() const { return cursor_; }

 private:
  MDB_cursor* cursor_ = nullptr;
};

// A write transaction that remembers the first LMDB error code seen while
// applying it, so the retry loop can tell a full map (grow and retry) from
// failures that retrying would not fix.
class WriteTxn {
 public:
  explicit WriteTxn(MDB_txn* txn) : txn_(txn) {}

  MDB_txn* get() const { return txn_; }
  int rc() const { return rc_; }

  // A kIo error for LMDB code `rc` while doing `what` (may be empty).
  Error Fail(int rc, std::string_view what) {
    if (rc_ == MDB_SUCCESS) rc_ = rc;
    if (what.empty()) return Error{ErrorKind::kIo, LmdbText(rc)};
    return Error{ErrorKind::kIo, std::string(what) + ": " + LmdbText(rc)};
  }
  Status Check(int rc, std::string_view what) {
    if (rc == MDB_SUCCESS) return Status::Ok();
    return Fail(rc, what);
  }

 private:
  MDB_txn* txn_;
  int rc_ = MDB_SUCCESS;
};

Error Internal(std::string message) { return Error{ErrorKind::kInternal, std::move(message)}; }

// Environments open in this process, by directory identity. LMDB forbids
// opening one twice in a process, and with its fcntl locks the second close
// would silently drop the first handle's locks; so a second Open fails.
class OpenDirectories {
 public:
  using Id = std::pair<dev_t, ino_t>;
  static bool Add(Id id) {
    std::lock_guard<std::mutex> lock(mutex());
    return ids().insert(id).second;
  }
  static void Remove(Id id) {
    std::lock_guard<std::mutex> lock(mutex());
    ids().erase(id);
  }

 private:
  static std::mutex& mutex() {
    static std::mutex m;
    return m;
  }
  static std::set<Id>& ids() {
    static std::set<Id> s;
    return s;
  }
};

}  // namespace

class LmdbIndex final : public Index {
 public:
  explicit LmdbIndex(std::string dir) : dir_(std::move(dir)) {}
  LmdbIndex(const LmdbIndex&) = delete;
  LmdbIndex& operator=(const LmdbIndex&) = delete;
  ~LmdbIndex() override {
    if (env_ != nullptr) mdb_env_close(env_);
    if (registered_) OpenDirectories::Remove(*registered_);
  }

  Status Init(const IndexOptions& options);

  Result<std::optional<FolderRecord>> GetFolder(std::string_view remote_name) override;
  Result<std::vector<FolderRecord>> ListFolders() override;
  Result<std::optional<MessageRecord>> GetMessage(uint32_t folder_id, uint32_t uid) override;
  Result<std::vector<MessageRecord>> ListMessages(uint32_t folder_id) override;
  Result<std::vector<uint32_t>> ListUids(uint32_t folder_id) override;
  // Calls visit(uid, record bytes) for each message of the folder in UID
  // order, in one read transaction; stops at the first error.
  template <typename Visit>
  Status ForEachMessage(uint32_t folder_id, std::string_view what, Visit&& visit);
  Result<std::vector<MessageRecord>> GetMessages(uint32_t folder_id,
                                                 const std::vector<uint32_t>& uids) override;
  Result<std::optional<uint32_t>> UidForStem(uint32_t folder_id, std::string_view stem) override;
  Result<std::vector<std::pair<uint32_t, uint32_t>>> FindDigest(uint64_t digest) override;
  Result<std::vector<std::pair<uint32_t, uint32_t>>> FindGmailMessage(uint64_t msgid) override;
  Result<std::vector<std::pair<uint32_t, CopyMark>>> ListCopies(std::string_view target,
                                                                uint32_t folder_id) override;
  Result<std::optional<CopySource>> GetCopySource(std::string_view target,
                                                  uint32_t folder_id) override;
  Result<std::optional<CopyTargetState>> GetCopyTarget(std::string_view target,
                                                       std::string_view raw_name) override;
  Result<std::vector<RefusedFile>> ListRefused(uint32_t folder_id) override;
  Status ClaimAccount(std::string_view identity) override;
  Result<uint32_t> AllocateFolderId() override;
  Status Commit(Batch& batch) override;

 private:
  // Runs `apply` in a write transaction and commits it; when the map is full
  // it aborts, doubles the map and runs `apply` again from scratch. Errors
  // come back without context.
  template <typename Fn>
  Status Write(Fn&& apply);
  Status GrowMap();
  // `held`: the caller's shared map lock, let go while the map is resized.
  int BeginTxn(unsigned int flags, MDB_txn** txn, std::shared_lock<std::shared_mutex>& held);
  Status BeginRead(TxnGuard& txn, std::shared_lock<std::shared_mutex>& held);
  // Calls `visit(key, value)` (Result<bool>: false stops) for each record
  // of `dbi` whose key starts with `prefix`, in key order, in one read
  // transaction; `what` names the walk in errors.
  template <typename Visit>
  Status ReadPrefix(MDB_dbi dbi, std::string_view prefix, const char* what, Visit&& visit);

  Status InitSchema(WriteTxn& txn);
  Result<uint32_t> NextFolderId(WriteTxn& txn);
  Status Apply(WriteTxn& txn, const Batch::PutFolderOp& op);
  Status Apply(WriteTxn& txn, const Batch::DeleteFolderOp& op);
  Status Apply(WriteTxn& txn, const Batch::PutMessageOp& op);
  Status Apply(WriteTxn& txn, const Batch::DeleteMessageOp& op);
  Status Apply(WriteTxn& txn, const Batch::ClearFolderOp& op);
  Status Apply(WriteTxn& txn, const Batch::PutRawOp& op);
  Status Apply(WriteTxn& txn, const Batch::ClearRawOp& op);
  MDB_dbi RawDbi(Batch::RawDb db) const { return db == Batch::RawDb::kCopies ? copies_ : refused_; }
  // The copies database's value for `key` as two LE32, or nullopt.
  Result<std::optional<std::pair<uint32_t, uint32_t>>> GetCopyValue(const std::string& key);
  Status RemoveStem(WriteTxn& txn, uint32_t folder_id, uint32_t uid, std::string_view stem);
  // Reverse entries value -> (folder, uid) of digests_ and gm_msgids_
  // (`what` names them in messages); value 0 is never stored.
  Result<std::vector<std::pair<uint32_t, uint32_t>>> FindReverse(MDB_dbi dbi, uint64_t value,
                                                                 const char* what);
  Status PutReverse(WriteTxn& txn, MDB_dbi dbi, uint64_t value, const std::string& message_key,
                    const char* what);
  Status RemoveReverse(WriteTxn& txn, MDB_dbi dbi, uint32_t folder_id, uint32_t uid, uint64_t value,
                       const char* what);

  Error ReadError(int rc, std::string_view what) const {
    return Error{ErrorKind::kIo,
                 "read index " + dir_ + ": " + std::string(what) + ": " + LmdbText(rc)};
  }
  Error Corrupt(std::string_view what) const {
    return Error{ErrorKind::kIo, "index " + dir_ + " is corrupt: " + std::string(what) +
                                     " (move the directory away to rebuild it)"};
  }

  std::string dir_;
  MDB_env* env_ = nullptr;
  MDB_dbi meta_ = 0;
  MDB_dbi folders_ = 0;
  MDB_dbi folder_ids_ = 0;
  MDB_dbi messages_ = 0;
  MDB_dbi stems_ = 0;
  MDB_dbi digests_ = 0;
  MDB_dbi gm_msgids_ = 0;
  MDB_dbi copies_ = 0;
  MDB_dbi refused_ = 0;
  std::optional<OpenDirectories::Id> registered_;
  std::shared_mutex map_mutex_;  // readers shared, GrowMap exclusive
};

// --- Setup.

Status LmdbIndex::Init(const IndexOptions& options) {
  const std::string context = "open index " + dir_;
  struct stat st = {};
  if (stat(dir_.c_str(), &st) != 0) return Error{ErrorKind::kIo, context + ": " + ErrnoText(errno)};
  if (!OpenDirectories::Add({st.st_dev, st.st_ino})) {
    return Internal(context + ": already open in this process");
  }
  registered_ = OpenDirectories::Id{st.st_dev, st.st_ino};
  int rc = mdb_env_create(&env_);
  if (rc != MDB_SUCCESS) {
    env_ = nullptr;
    return Error{ErrorKind::kIo, context + ": " + LmdbText(rc)};
  }
  uint64_t map_size = options.map_size;
  if (map_size == 0 || map_size > std::numeric_limits<size_t>::max() - kMapSizeGranule) {
    map_size = kDefaultMapSize;
  }
  map_size = (map_size + kMapSizeGranule - 1) / kMapSizeGranule * kMapSizeGranule;
  if ((rc = mdb_env_set_maxdbs(env_, kMaxDbs)) != MDB_SUCCESS ||
      (rc = mdb_env_set_mapsize(env_, static_cast<size_t>(map_size))) != MDB_SUCCESS) {
    return Error{ErrorKind::kIo, context + ": " + LmdbText(rc)};
  }
  // MDB_NOTLS ties a read transaction's reader slot to the transaction, not
  // to the thread, so an Index handed from thread to thread (one at a time)
  // neither leaks slots nor trips over a slot another thread holds. No sync
  // flags: every commit is durable (data pages, then the meta page).
  rc = mdb_env_open(env_, dir_.c_str(), MDB_NOTLS, 0600);
  if (rc != MDB_SUCCESS) {
    std::string hint = rc == MDB_INVALID || rc == MDB_VERSION_MISMATCH
                           ? " (not an index of this LMDB version; move it away to rebuild it)"
                           : "";
    return Error{ErrorKind::kIo, context + ": " + LmdbText(rc) + hint};
  }
  // A process killed while reading leaves its reader slot behind, which
  // would pin old pages forever; clear such slots now.
  int stale = 0;
  if ((rc = mdb_reader_check(env_, &stale)) != MDB_SUCCESS) {
    return Error{ErrorKind::kIo, context + ": reader check: " + LmdbText(rc)};
  }
  Status status = Write([this](WriteTxn& txn) { return InitSchema(txn); });
  if (!status.ok() && status.error().kind != ErrorKind::kConfig) {
    return status.error().Wrap(context);
  }
  return status;
}

Status LmdbIndex::InitSchema(WriteTxn& txn) {
  // Read the version before opening anything else: a newer schema may have
  // databases with other flags, which mdb_dbi_open would refuse with a less
  // helpful message.
  if (int rc = mdb_dbi_open(txn.get(), "meta", MDB_CREATE, &meta_); rc != MDB_SUCCESS) {
    return txn.Fail(rc, "open database meta");
  }
  MDB_val key = Val(kSchemaVersionKey);
  MDB_val value;
  int rc = mdb_get(txn.get(), meta_, &key, &value);
  if (rc == MDB_NOTFOUND) {
    // A new environment. (An index always has its version: it is written
    // in the transaction that creates the databases.)
    std::string version_bytes = Le32(kSchemaVersion);
    std::string next_bytes = Le32(1);
    MDB_val version = Val(version_bytes);
    MDB_val next_key = Val(kNextFolderIdKey);
    MDB_val next = Val(next_bytes);
    if (Status s = txn.Check(mdb_put(txn.get(), meta_, &key, &version, 0), "write schema version");
        !s.ok()) {
      return s;
    }
    if (Status s = txn.Check(mdb_put(txn.get(), meta_, &next_key, &next, 0), "write folder id");
        !s.ok()) {
      return s;
    }
  } else if (rc != MDB_SUCCESS) {
    return txn.Fail(rc, "read schema version");
  } else {
    std::optional<uint32_t> version = ParseLe32(View(value));
    if (!version || *version == 0) return Corrupt("schema version is malformed");
    if (*version > kSchemaVersion) {
      return Error{ErrorKind::kConfig, dir_ + ": index schema version " + std::to_string(*version) +
                                           " was written by a newer mailmirror (this one knows " +
                                           std::to_string(kSchemaVersion) + ")"};
    }
    if (*version < kSchemaVersion) {
      // Older records stay readable; newer writes need a newer reader.
      std::string version_bytes = Le32(kSchemaVersion);
      MDB_val upgraded = Val(version_bytes);
      if (Status s =
              txn.Check(mdb_put(txn.get(), meta_, &key, &upgraded, 0), "write schema version");
          !s.ok()) {
        return s;
      }
    }
  }
  struct Db {
    const char* name;
    unsigned int flags;
    MDB_dbi* dbi;
  };
  const Db dbs[] = {
      {"folders", 0, &folders_},
      {"folder_ids", 0, &folder_ids_},
      {"messages", 0, &messages_},
      {"stems", 0, &stems_},
      {"digests", MDB_DUPSORT | MDB_DUPFIXED, &digests_},
      {"gm_msgids", MDB_DUPSORT | MDB_DUPFIXED, &gm_msgids_},
      {"copies", 0, &copies_},
      {"refused", 0, &refused_},
  };
  for (const Db& db : dbs) {
    if (int open_rc = mdb_dbi_open(txn.get(), db.name, db.flags | MDB_CREATE, db.dbi);
        open_rc != MDB_SUCCESS) {
      return txn.Fail(open_rc, std::string("open database ") + db.name);
    }
  }
  return Status::Ok();
}

// --- Transactions.

int LmdbIndex::BeginTxn(unsigned int flags, MDB_txn** txn,
                        std::shared_lock<std::shared_mutex>& held) {
  int rc = mdb_txn_begin(env_, nullptr, flags, txn);
  if (rc != MDB_MAP_RESIZED) return rc;
  // Another process grew the map: adopt its size (0 = the stored size).
  // LMDB allows that only while no transaction of this process is open, and
  // every transaction runs under the shared map lock: take it exclusively.
  held.unlock();
  {
    std::unique_lock exclusive(map_mutex_);
    rc = mdb_env_set_mapsize(env_, 0);
  }
  held.lock();
  if (rc == MDB_SUCCESS) rc = mdb_txn_begin(env_, nullptr, flags, txn);
  return rc;
}

Status LmdbIndex::BeginRead(TxnGuard& txn, std::shared_lock<std::shared_mutex>& held) {
  int rc = BeginTxn(MDB_RDONLY, txn.out(), held);
  if (rc != MDB_SUCCESS) return ReadError(rc, "begin read transaction");
  return Status::Ok();
}

template <typename Fn>
Status LmdbIndex::Write(Fn&& apply) {
  for (int growths = 0;; ++growths) {
    std::shared_lock map_lock(map_mutex_);  // see GrowMap
    TxnGuard guard;
    if (int rc = BeginTxn(0, guard.out(), map_lock); rc != MDB_SUCCESS) {
      return Error{ErrorKind::kIo, "begin write transaction: " + LmdbText(rc)};
    }
    WriteTxn txn(guard.get());
    Status status = apply(txn);
    if (status.ok()) {
      // mdb_txn_commit frees the transaction even when it fails.
      int rc = mdb_txn_commit(guard.release());
      if (rc == MDB_SUCCESS) return Status::Ok();
      status = txn.Fail(rc, "");  // the caller's context says "commit"
    }
    guard.Abort();  // mdb_env_set_mapsize needs no write transaction active
    map_lock.unlock();
    if (txn.rc() != MDB_MAP_FULL || growths == kMaxMapGrowths) return status;
    if (Status grown = GrowMap(); !grown.ok()) {
      return grown.error().Wrap(status.error().message);
    }
  }
}

// mdb_env_set_mapsize needs every transaction of the process ended: read
// transactions may run on another thread than Commit, so every transaction
// holds the map lock shared and this holds it exclusively.
Status LmdbIndex::GrowMap() {
  std::unique_lock map_lock(map_mutex_);
  MDB_envinfo info = {};
  if (int rc = mdb_env_info(env_, &info); rc != MDB_SUCCESS) {
    return Error{ErrorKind::kIo, "grow map: " + LmdbText(rc)};
  }
  if (info.me_mapsize > std::numeric_limits<size_t>::max() / 2) {
    return Error{ErrorKind::kIo,
                 "cannot grow the map beyond " + std::to_string(info.me_mapsize) + " bytes"};
  }
  size_t size = info.me_mapsize * 2;
  if (int rc = mdb_env_set_mapsize(env_, size); rc != MDB_SUCCESS) {
    return Error{ErrorKind::kIo, "grow map to " + std::to_string(size) + " bytes: " + LmdbText(rc)};
  }
  return Status::Ok();
}

// --- Reads.

Result<std::optional<FolderRecord>> LmdbIndex::GetFolder(std::string_view remote_name) {
  if (remote_name.empty()) return std::optional<FolderRecord>();
  std::shared_lock map_lock(map_mutex_);  // see GrowMap
  TxnGuard txn;
  if (Status s = BeginRead(txn, map_lock); !s.ok()) return s.error();
  std::string key_bytes = FolderKey(remote_name);
  MDB_val key = Val(key_bytes);
  MDB_val value;
  int rc = mdb_get(txn.get(), folders_, &key, &value);
  if (rc == MDB_NOTFOUND) return std::optional<FolderRecord>();
  if (rc != MDB_SUCCESS) return ReadError(rc, "get folder");
  FolderRecord folder;
  if (!DecodeFolder(View(value), &folder) || folder.remote_name != remote_name) {
    return Corrupt("record of folder \"" + Printable(remote_name) + "\"");
  }
  return std::optional<FolderRecord>(std::move(folder));
}

Result<std::vector<FolderRecord>> LmdbIndex::ListFolders() {
  std::shared_lock map_lock(map_mutex_);  // see GrowMap
  TxnGuard txn;
  if (Status s = BeginRead(txn, map_lock); !s.ok()) return s.error();
  CursorGuard cursor;
  if (int rc = mdb_cursor_open(txn.get(), folders_, cursor.out()); rc != MDB_SUCCESS) {
    return ReadError(rc, "list folders");
  }
  std::vector<FolderRecord> folders;
  MDB_val key;
  MDB_val value;
  int rc = mdb_cursor_get(cursor.get(), &key, &value, MDB_FIRST);
  for (; rc == MDB_SUCCESS; rc = mdb_cursor_get(cursor.get(), &key, &value, MDB_NEXT)) {
    FolderRecord& folder = folders.emplace_back();
    if (!DecodeFolder(View(value), &folder)) {
      return Corrupt("record of folder \"" + Printable(View(key)) + "\"");
    }
  }
  if (rc != MDB_NOTFOUND) return ReadError(rc, "list folders");
  return folders;
}

Result<std::optional<MessageRecord>> LmdbIndex::GetMessage(uint32_t folder_id, uint32_t uid) {
  Result<std::vector<MessageRecord>> found = GetMessages(folder_id, {uid});
  if (!found.ok()) return found.error();
  if (found->empty()) return std::optional<MessageRecord>();
  return std::optional<MessageRecord>(std::move(found->front()));
}

template <typename Visit>
Status LmdbIndex::ForEachMessage(uint32_t folder_id, std::string_view what, Visit&& visit) {
  std::shared_lock map_lock(map_mutex_);  // see GrowMap
  TxnGuard txn;
  if (Status s = BeginRead(txn, map_lock); !s.ok()) return s;
  CursorGuard cursor;
  if (int rc = mdb_cursor_open(txn.get(), messages_, cursor.out()); rc != MDB_SUCCESS) {
    return ReadError(rc, what);
  }
  std::string start = MessageKey(folder_id, 0);
  MDB_val key = Val(start);
  MDB_val value;
  int rc = mdb_cursor_get(cursor.get(), &key, &value, MDB_SET_RANGE);
  for (; rc == MDB_SUCCESS; rc = mdb_cursor_get(cursor.get(), &key, &value, MDB_NEXT)) {
    std::string_view key_view = View(key);
    if (key_view.size() != 8 || key_view.substr(0, 4) != std::string_view(start).substr(0, 4)) {
      break;  // the next folder's messages
    }
    if (Status s = visit(ReadBe32(key_view.data() + 4), View(value)); !s.ok()) return s;
  }
  if (rc != MDB_SUCCESS && rc != MDB_NOTFOUND) return ReadError(rc, what);
  return Status::Ok();
}

Result<std::vector<MessageRecord>> LmdbIndex::ListMessages(uint32_t folder_id) {
  std::vector<MessageRecord> messages;
  Status status = ForEachMessage(folder_id, "list messages",
                                 [&](uint32_t uid, std::string_view value) -> Status {
                                   if (DecodeMessage(value, uid, &messages.emplace_back())) {
                                     return Status::Ok();
                                   }
                                   return Corrupt("record of UID " + std::to_string(uid) +
                                                  " in folder " + std::to_string(folder_id));
                                 });
  if (!status.ok()) return status.error();
  return messages;
}

Result<std::vector<uint32_t>> LmdbIndex::ListUids(uint32_t folder_id) {
  std::vector<uint32_t> uids;
  Status status =
      ForEachMessage(folder_id, "list UIDs", [&](uint32_t uid, std::string_view /*value*/) {
        uids.push_back(uid);
        return Status::Ok();
      });
  if (!status.ok()) return status.error();
  return uids;
}

Result<std::vector<MessageRecord>> LmdbIndex::GetMessages(uint32_t folder_id,
                                                          const std::vector<uint32_t>& uids) {
  std::shared_lock map_lock(map_mutex_);  // see GrowMap
  TxnGuard txn;
  if (Status s = BeginRead(txn, map_lock); !s.ok()) return s.error();
  std::vector<MessageRecord> messages;
  messages.reserve(uids.size());
  for (uint32_t uid : uids) {
    std::string key_bytes = MessageKey(folder_id, uid);
    MDB_val key = Val(key_bytes);
    MDB_val value;
    int rc = mdb_get(txn.get(), messages_, &key, &value);
    if (rc == MDB_NOTFOUND) continue;
    if (rc != MDB_SUCCESS) return ReadError(rc, "get messages");
    if (!DecodeMessage(View(value), uid, &messages.emplace_back())) {
      return Corrupt("record of UID " + std::to_string(uid) + " in folder " +
                     std::to_string(folder_id));
    }
  }
  return messages;
}

Result<std::optional<uint32_t>> LmdbIndex::UidForStem(uint32_t folder_id, std::string_view stem) {
  if (stem.empty()) return std::optional<uint32_t>();
  std::shared_lock map_lock(map_mutex_);  // see GrowMap
  TxnGuard txn;
  if (Status s = BeginRead(txn, map_lock); !s.ok()) return s.error();
  std::string key_bytes = StemKey(folder_id, stem);
  MDB_val key = Val(key_bytes);
  MDB_val value;
  int rc = mdb_get(txn.get(), stems_, &key, &value);
  if (rc == MDB_NOTFOUND) return std::optional<uint32_t>();
  if (rc != MDB_SUCCESS) return ReadError(rc, "get stem");
  if (value.mv_size != 4) return Corrupt("stem entry \"" + Printable(stem) + "\"");
  return std::optional<uint32_t>(ReadBe32(static_cast<const char*>(value.mv_data)));
}

Result<std::vector<std::pair<uint32_t, uint32_t>>> LmdbIndex::FindDigest(uint64_t digest) {
  return FindReverse(digests_, digest, "digest");
}

Result<std::vector<std::pair<uint32_t, uint32_t>>> LmdbIndex::FindGmailMessage(uint64_t msgid) {
  return FindReverse(gm_msgids_, msgid, "gmail message id");
}

template <typename Visit>
Status LmdbIndex::ReadPrefix(MDB_dbi dbi, std::string_view prefix, const char* what,
                             Visit&& visit) {
  std::shared_lock map_lock(map_mutex_);  // see GrowMap
  TxnGuard txn;
  if (Status s = BeginRead(txn, map_lock); !s.ok()) return s;
  CursorGuard cursor;
  if (int rc = mdb_cursor_open(txn.get(), dbi, cursor.out()); rc != MDB_SUCCESS) {
    return ReadError(rc, what);
  }
  MDB_val key = Val(prefix);
  MDB_val value;
  int rc = mdb_cursor_get(cursor.get(), &key, &value, MDB_SET_RANGE);
  for (; rc == MDB_SUCCESS; rc = mdb_cursor_get(cursor.get(), &key, &value, MDB_NEXT)) {
    std::string_view key_view = View(key);
    if (key_view.substr(0, prefix.size()) != prefix) break;
    Result<bool> more = visit(key_view, View(value));
    if (!more.ok()) return more.error();
    if (!*more) break;
  }
  if (rc != MDB_SUCCESS && rc != MDB_NOTFOUND) return ReadError(rc, what);
  return Status::Ok();
}

Result<std::vector<std::pair<uint32_t, CopyMark>>> LmdbIndex::ListCopies(std::string_view target,
                                                                         uint32_t folder_id) {
  std::vector<std::pair<uint32_t, CopyMark>> copies;
  const std::string prefix = CopyMessagePrefix(target, folder_id);
  Status walked = ReadPrefix(
      copies_, prefix, "list copies",
      [&](std::string_view key_view, std::string_view bytes) -> Result<bool> {
        if (key_view.size() != prefix.size() + 4) return false;
        std::optional<uint32_t> validity = ParseLe32(bytes.substr(0, 4));
        std::optional<uint32_t> uid = bytes.size() == 8 ? ParseLe32(bytes.substr(4)) : std::nullopt;
        if (!validity || !uid) return Corrupt("copy record of folder " + std::to_string(folder_id));
        copies.emplace_back(ReadBe32(key_view.data() + prefix.size()), CopyMark{*validity, *uid});
        return true;
      });
  if (!walked.ok()) return walked.error();
  return copies;
}

Result<std::optional<std::pair<uint32_t, uint32_t>>> LmdbIndex::GetCopyValue(
    const std::string& key_bytes) {
  std::shared_lock map_lock(map_mutex_);  // see GrowMap
  TxnGuard txn;
  if (Status s = BeginRead(txn, map_lock); !s.ok()) return s.error();
  MDB_val key = Val(key_bytes);
  MDB_val value;
  int rc = mdb_get(txn.get(), copies_, &key, &value);
  if (rc == MDB_NOTFOUND) return std::optional<std::pair<uint32_t, uint32_t>>();
  if (rc != MDB_SUCCESS) return ReadError(rc, "get copy record");
  std::string_view bytes = View(value);
  std::optional<uint32_t> first = ParseLe32(bytes.substr(0, 4));
  std::optional<uint32_t> second = bytes.size() == 8 ? ParseLe32(bytes.substr(4)) : std::nullopt;
  if (!first || !second) return Corrupt("copy record");
  return std::optional<std::pair<uint32_t, uint32_t>>(std::make_pair(*first, *second));
}

Result<std::optional<CopySource>> LmdbIndex::GetCopySource(std::string_view target,
                                                           uint32_t folder_id) {
  auto value = GetCopyValue(CopySourceKey(target, folder_id));
  if (!value.ok()) return value.error();
  if (!*value) return std::optional<CopySource>();
  return std::optional<CopySource>(CopySource{(*value)->first, (*value)->second});
}

Result<std::optional<CopyTargetState>> LmdbIndex::GetCopyTarget(std::string_view target,
                                                                std::string_view raw_name) {
  auto value = GetCopyValue(CopyTargetKey(target, raw_name));
  if (!value.ok()) return value.error();
  if (!*value) return std::optional<CopyTargetState>();
  return std::optional<CopyTargetState>(CopyTargetState{(*value)->first, (*value)->second});
}

Result<std::vector<std::pair<uint32_t, uint32_t>>> LmdbIndex::FindReverse(MDB_dbi dbi,
                                                                          uint64_t value,
                                                                          const char* what) {
  std::vector<std::pair<uint32_t, uint32_t>> found;
  if (value == 0) return found;
  std::shared_lock map_lock(map_mutex_);  // see GrowMap
  TxnGuard txn;
  if (Status s = BeginRead(txn, map_lock); !s.ok()) return s.error();
  CursorGuard cursor;
  if (int rc = mdb_cursor_open(txn.get(), dbi, cursor.out()); rc != MDB_SUCCESS) {
    return ReadError(rc, std::string("find ") + what);
  }
  std::string key_bytes = DigestKey(value);
  MDB_val key = Val(key_bytes);
  MDB_val entry;
  int rc = mdb_cursor_get(cursor.get(), &key, &entry, MDB_SET);
  for (; rc == MDB_SUCCESS; rc = mdb_cursor_get(cursor.get(), &key, &entry, MDB_NEXT_DUP)) {
    if (entry.mv_size != 8) return Corrupt(std::string(what) + " entry");
    const char* bytes = static_cast<const char*>(entry.mv_data);
    found.emplace_back(ReadBe32(bytes), ReadBe32(bytes + 4));
  }
  if (rc != MDB_NOTFOUND) return ReadError(rc, std::string("find ") + what);
  return found;
}

// --- Writes.

Result<uint32_t> LmdbIndex::NextFolderId(WriteTxn& txn) {
  MDB_val key = Val(kNextFolderIdKey);
  MDB_val value;
  if (int rc = mdb_get(txn.get(), meta_, &key, &value); rc != MDB_SUCCESS) {
    return txn.Fail(rc, "read next folder id");
  }
  std::optional<uint32_t> next = ParseLe32(View(value));
  if (!next || *next == 0) return Corrupt("next folder id is malformed");
  return *next;
}

Result<uint32_t> LmdbIndex::AllocateFolderId() {
  uint32_t id = 0;
  Status status = Write([&](WriteTxn& txn) -> Status {
    Result<uint32_t> next = NextFolderId(txn);
    if (!next.ok()) return next.error();
    if (*next == std::numeric_limits<uint32_t>::max()) {
      return Error{ErrorKind::kIo, "folder ids exhausted"};
    }
    id = *next;
    std::string next_bytes = Le32(id + 1);
    MDB_val key = Val(kNextFolderIdKey);
    MDB_val value = Val(next_bytes);
    return txn.Check(mdb_put(txn.get(), meta_, &key, &value, 0), "write next folder id");
  });
  if (!status.ok()) return status.error().Wrap("allocate folder id in index " + dir_ + " failed");
  return id;
}

Status LmdbIndex::Commit(Batch& batch) {
  if (batch.empty()) return Status::Ok();
  Status status = Write([&](WriteTxn& txn) -> Status {
    for (const Batch::Op& op : batch.ops_) {
      Status applied = std::visit([&](const auto& typed) { return Apply(txn, typed); }, op);
      if (!applied.ok()) return applied;
    }
    return Status::Ok();
  });
  if (!status.ok()) return status.error().Wrap("commit to index " + dir_ + " failed");
  batch.clear();
  return Status::Ok();
}

Status LmdbIndex::Apply(WriteTxn& txn, const Batch::PutFolderOp& op) {
  FolderRecord folder = op.folder;
  const std::string name = Printable(folder.remote_name);
  if (folder.remote_name.empty()) return Internal("folder with an empty remote name");
  std::string key_bytes = FolderKey(folder.remote_name);
  MDB_val key = Val(key_bytes);
  MDB_val value;
  int rc = mdb_get(txn.get(), folders_, &key, &value);
  if (rc == MDB_SUCCESS) {
    FolderRecord stored;
    if (!DecodeFolder(View(value), &stored) || stored.remote_name != folder.remote_name) {
      return Corrupt("record of folder \"" + name + "\"");
    }
    if (folder.id == 0) {
      folder.id = stored.id;
    } else if (folder.id != stored.id) {
      return Internal("folder \"" + name + "\" has id " + std::to_string(stored.id) +
                      " in the index, not " + std::to_string(folder.id));
    }
  } else if (rc != MDB_NOTFOUND) {
    return txn.Fail(rc, "get folder \"" + name + "\"");
  } else {
    Result<uint32_t> next = NextFolderId(txn);
    if (!next.ok()) return next.error();
    uint32_t new_next = *next;
    if (folder.id == 0) {
      folder.id = *next;
      new_next = *next + 1;
    } else if (folder.id >= *next) {
      // An id the caller made up rather than allocated: never hand it out.
      if (folder.id == std::numeric_limits<uint32_t>::max()) {
        return Internal("folder \"" + name + "\" has an out-of-range id");
      }
      new_next = folder.id + 1;
    }
    if (new_next != *next) {
      std::string next_bytes = Le32(new_next);
      MDB_val next_key = Val(kNextFolderIdKey);
      MDB_val next_value = Val(next_bytes);
      if (Status s = txn.Check(mdb_put(txn.get(), meta_, &next_key, &next_value, 0),
                               "write next folder id");
          !s.ok()) {
        return s;
      }
    }
    // A known id under a new name: a rename, so drop the old name's record.
    std::string id_bytes = Be32(folder.id);
    MDB_val id_key = Val(id_bytes);
    MDB_val old_name;
    rc = mdb_get(txn.get(), folder_ids_, &id_key, &old_name);
    if (rc == MDB_SUCCESS) {
      std::string old_key_bytes = FolderKey(View(old_name));
      MDB_val old_key = Val(old_key_bytes);
      rc = mdb_del(txn.get(), folders_, &old_key, nullptr);
      if (rc != MDB_SUCCESS && rc != MDB_NOTFOUND) {
        return txn.Fail(rc, "rename folder \"" + name + "\"");
      }
    } else if (rc != MDB_NOTFOUND) {
      return txn.Fail(rc, "get folder id " + std::to_string(folder.id));
    }
  }
  std::string record = EncodeFolder(folder);
  value = Val(record);
  if (Status s =
          txn.Check(mdb_put(txn.get(), folders_, &key, &value, 0), "put folder \"" + name + "\"");
      !s.ok()) {
    return s;
  }
  std::string id_bytes = Be32(folder.id);
  MDB_val id_key = Val(id_bytes);
  MDB_val id_value = Val(folder.remote_name);
  return txn.Check(mdb_put(txn.get(), folder_ids_, &id_key, &id_value, 0),
                   "put folder id " + std::to_string(folder.id));
}

Status LmdbIndex::Apply(WriteTxn& txn, const Batch::DeleteFolderOp& op) {
  if (op.remote_name.empty()) return Status::Ok();
  const std::string name = Printable(op.remote_name);
  std::string key_bytes = FolderKey(op.remote_name);
  MDB_val key = Val(key_bytes);
  MDB_val value;
  int rc = mdb_get(txn.get(), folders_, &key, &value);
  if (rc == MDB_NOTFOUND) return Status::Ok();
  if (rc != MDB_SUCCESS) return txn.Fail(rc, "get folder \"" + name + "\"");
  FolderRecord stored;
  if (!DecodeFolder(View(value), &stored) || stored.remote_name != op.remote_name) {
    return Corrupt("record of folder \"" + name + "\"");
  }
  if (Status s = Apply(txn, Batch::ClearFolderOp{stored.id}); !s.ok()) return s;
  if (Status s = Apply(txn, Batch::ClearRawOp{Batch::RawDb::kRefused, Be32(stored.id)}); !s.ok()) {
    return s;
  }
  if (Status s =
          txn.Check(mdb_del(txn.get(), folders_, &key, nullptr), "delete folder \"" + name + "\"");
      !s.ok()) {
    return s;
  }
  std::string id_bytes = Be32(stored.id);
  MDB_val id_key = Val(id_bytes);
  rc = mdb_del(txn.get(), folder_ids_, &id_key, nullptr);
  if (rc != MDB_SUCCESS && rc != MDB_NOTFOUND) {
    return txn.Fail(rc, "delete folder id " + std::to_string(stored.id));
  }
  return Status::Ok();
}

Status LmdbIndex::RemoveStem(WriteTxn& txn, uint32_t folder_id, uint32_t uid,
                             std::string_view stem) {
  if (stem.empty()) return Status::Ok();
  std::string key_bytes = StemKey(folder_id, stem);
  MDB_val key = Val(key_bytes);
  MDB_val value;
  int rc = mdb_get(txn.get(), stems_, &key, &value);
  if (rc == MDB_NOTFOUND) return Status::Ok();
  if (rc != MDB_SUCCESS) return txn.Fail(rc, "get stem");
  // Only the owner's entry goes; the invariants make this always the owner,
  // but the check costs nothing and keeps a damaged index from getting worse.
  if (value.mv_size != 4 || ReadBe32(static_cast<const char*>(value.mv_data)) != uid) {
    return Status::Ok();
  }
  return txn.Check(mdb_del(txn.get(), stems_, &key, nullptr), "delete stem");
}

Status LmdbIndex::PutReverse(WriteTxn& txn, MDB_dbi dbi, uint64_t value,
                             const std::string& message_key, const char* what) {
  if (value == 0) return Status::Ok();
  std::string key_bytes = DigestKey(value);
  MDB_val key = Val(key_bytes);
  MDB_val entry = Val(message_key);
  int rc = mdb_put(txn.get(), dbi, &key, &entry, MDB_NODUPDATA);
  if (rc == MDB_KEYEXIST) return Status::Ok();
  return txn.Check(rc, std::string("put ") + what);
}

Status LmdbIndex::RemoveReverse(WriteTxn& txn, MDB_dbi dbi, uint32_t folder_id, uint32_t uid,
                                uint64_t value, const char* what) {
  if (value == 0) return Status::Ok();
  std::string key_bytes = DigestKey(value);
  std::string value_bytes = MessageKey(folder_id, uid);
  MDB_val key = Val(key_bytes);
  MDB_val entry = Val(value_bytes);
  int rc = mdb_del(txn.get(), dbi, &key, &entry);
  if (rc == MDB_NOTFOUND) return Status::Ok();
  return txn.Check(rc, std::string("delete ") + what);
}

Status LmdbIndex::Apply(WriteTxn& txn, const Batch::PutMessageOp& op) {
  const MessageRecord& message = op.message;
  const std::string where =
      "UID " + std::to_string(message.uid) + " in folder " + std::to_string(op.folder_id);
  if (op.folder_id == 0 || message.uid == 0) return Internal("message with " + where);
  std::string key_bytes = MessageKey(op.folder_id, message.uid);
  MDB_val key = Val(key_bytes);
  MDB_val value;
  int rc = mdb_get(txn.get(), messages_, &key, &value);
  bool stem_indexed = false;
  bool digest_indexed = false;
  bool msgid_indexed = false;
  if (rc == MDB_SUCCESS) {
    // Replacing: drop the reverse entries the new record does not share.
    MessageRecord old;
    if (!DecodeMessage(View(value), message.uid, &old)) return Corrupt("record of " + where);
    stem_indexed = old.stem == message.stem;
    digest_indexed = old.digest == message.digest;
    msgid_indexed = old.gm_msgid == message.gm_msgid;
    if (!stem_indexed) {
      if (Status s = RemoveStem(txn, op.folder_id, old.uid, old.stem); !s.ok()) return s;
    }
    if (!digest_indexed) {
      Status s = RemoveReverse(txn, digests_, op.folder_id, old.uid, old.digest, "digest");
      if (!s.ok()) return s;
    }
    if (!msgid_indexed) {
      Status s =
          RemoveReverse(txn, gm_msgids_, op.folder_id, old.uid, old.gm_msgid, "gmail message id");
      if (!s.ok()) return s;
    }
  } else if (rc != MDB_NOTFOUND) {
    return txn.Fail(rc, "get " + where);
  }

  if (!stem_indexed && !message.stem.empty()) {
    std::string stem_bytes = StemKey(op.folder_id, message.stem);
    MDB_val stem_key = Val(stem_bytes);
    MDB_val stem_value;
    rc = mdb_get(txn.get(), stems_, &stem_key, &stem_value);
    if (rc == MDB_SUCCESS) {
      uint32_t owner =
          stem_value.mv_size == 4 ? ReadBe32(static_cast<const char*>(stem_value.mv_data)) : 0;
      if (owner != message.uid) {
        return Internal("stem \"" + Printable(message.stem) + "\" of " + where +
                        " already belongs to UID " + std::to_string(owner));
      }
    } else if (rc != MDB_NOTFOUND) {
      return txn.Fail(rc, "get stem of " + where);
    }
    std::string uid_bytes = Be32(message.uid);
    stem_value = Val(uid_bytes);
    if (Status s = txn.Check(PutPackingAppends(txn.get(), stems_, &stem_key, &stem_value),
                             "put stem of " + where);
        !s.ok()) {
      return s;
    }
  }

  if (!digest_indexed) {
    Status s = PutReverse(txn, digests_, message.digest, key_bytes, "digest");
    if (!s.ok()) return s;
  }
  if (!msgid_indexed) {
    Status s = PutReverse(txn, gm_msgids_, message.gm_msgid, key_bytes, "gmail message id");
    if (!s.ok()) return s;
  }

  std::string record = EncodeMessage(message);
  value = Val(record);
  return txn.Check(PutPackingAppends(txn.get(), messages_, &key, &value), "put " + where);
}

Status LmdbIndex::Apply(WriteTxn& txn, const Batch::DeleteMessageOp& op) {
  const std::string where =
      "UID " + std::to_string(op.uid) + " in folder " + std::to_string(op.folder_id);
  std::string key_bytes = MessageKey(op.folder_id, op.uid);
  MDB_val key = Val(key_bytes);
  MDB_val value;
  int rc = mdb_get(txn.get(), messages_, &key, &value);
  if (rc == MDB_NOTFOUND) return Status::Ok();
  if (rc != MDB_SUCCESS) return txn.Fail(rc, "get " + where);
  MessageRecord old;
  if (!DecodeMessage(View(value), op.uid, &old)) return Corrupt("record of " + where);
  if (Status s = RemoveStem(txn, op.folder_id, op.uid, old.stem); !s.ok()) return s;
  if (Status s = RemoveReverse(txn, digests_, op.folder_id, op.uid, old.digest, "digest");
      !s.ok()) {
    return s;
  }
  if (Status s =
          RemoveReverse(txn, gm_msgids_, op.folder_id, op.uid, old.gm_msgid, "gmail message id");
      !s.ok()) {
    return s;
  }
  return txn.Check(mdb_del(txn.get(), messages_, &key, nullptr), "delete " + where);
}

Status LmdbIndex::Apply(WriteTxn& txn, const Batch::ClearFolderOp& op) {
  const std::string folder = "folder " + std::to_string(op.folder_id);
  const std::string prefix = Be32(op.folder_id);
  // Messages (and their digests), then stems; both are one range each.
  {
    CursorGuard cursor;
    if (int rc = mdb_cursor_open(txn.get(), messages_, cursor.out()); rc != MDB_SUCCESS) {
      return txn.Fail(rc, "clear " + folder);
    }
    MDB_val key = Val(prefix);
    MDB_val value;
    int rc = mdb_cursor_get(cursor.get(), &key, &value, MDB_SET_RANGE);
    for (; rc == MDB_SUCCESS; rc = mdb_cursor_get(cursor.get(), &key, &value, MDB_NEXT)) {
      std::string_view key_view = View(key);
      if (key_view.size() != 8 || key_view.substr(0, 4) != prefix) break;
      uint32_t uid = ReadBe32(key_view.data() + 4);
      MessageRecord old;
      if (!DecodeMessage(View(value), uid, &old)) {
        return Corrupt("record of UID " + std::to_string(uid) + " in " + folder);
      }
      if (Status s = RemoveReverse(txn, digests_, op.folder_id, uid, old.digest, "digest");
          !s.ok()) {
        return s;
      }
      if (Status s =
              RemoveReverse(txn, gm_msgids_, op.folder_id, uid, old.gm_msgid, "gmail message id");
          !s.ok()) {
        return s;
      }
      // After a cursor delete, MDB_NEXT yields the entry that followed.
      if (Status s = txn.Check(mdb_cursor_del(cursor.get(), 0), "clear " + folder); !s.ok()) {
        return s;
      }
    }
    if (rc != MDB_SUCCESS && rc != MDB_NOTFOUND) return txn.Fail(rc, "clear " + folder);
  }
  CursorGuard cursor;
  if (int rc = mdb_cursor_open(txn.get(), stems_, cursor.out()); rc != MDB_SUCCESS) {
    return txn.Fail(rc, "clear stems of " + folder);
  }
  MDB_val key = Val(prefix);
  MDB_val value;
  int rc = mdb_cursor_get(cursor.get(), &key, &value, MDB_SET_RANGE);
  for (; rc == MDB_SUCCESS; rc = mdb_cursor_get(cursor.get(), &key, &value, MDB_NEXT)) {
    if (View(key).substr(0, 4) != prefix) break;
    if (Status s = txn.Check(mdb_cursor_del(cursor.get(), 0), "clear stems of " + folder);
        !s.ok()) {
      return s;
    }
  }
  if (rc != MDB_SUCCESS && rc != MDB_NOTFOUND) return txn.Fail(rc, "clear stems of " + folder);
  return Status::Ok();
}

Status LmdbIndex::Apply(WriteTxn& txn, const Batch::PutRawOp& op) {
  MDB_val key = Val(op.key);
  MDB_val value = Val(op.value);
  return txn.Check(mdb_put(txn.get(), RawDbi(op.db), &key, &value, 0), "put record");
}

Status LmdbIndex::Apply(WriteTxn& txn, const Batch::ClearRawOp& op) {
  CursorGuard cursor;
  if (int rc = mdb_cursor_open(txn.get(), RawDbi(op.db), cursor.out()); rc != MDB_SUCCESS) {
    return txn.Fail(rc, "clear records");
  }
  MDB_val key = Val(op.prefix);
  MDB_val value;
  int rc = mdb_cursor_get(cursor.get(), &key, &value, MDB_SET_RANGE);
  for (; rc == MDB_SUCCESS; rc = mdb_cursor_get(cursor.get(), &key, &value, MDB_NEXT)) {
    if (View(key).substr(0, op.prefix.size()) != op.prefix) break;
    if (op.exact && View(key).size() != op.prefix.size()) break;
    if (Status s = txn.Check(mdb_cursor_del(cursor.get(), 0), "clear records"); !s.ok()) {
      return s;
    }
  }
  if (rc != MDB_SUCCESS && rc != MDB_NOTFOUND) return txn.Fail(rc, "clear records");
  return Status::Ok();
}

Result<std::vector<RefusedFile>> LmdbIndex::ListRefused(uint32_t folder_id) {
  const std::string prefix = Be32(folder_id);
  std::vector<RefusedFile> files;
  Status walked = ReadPrefix(refused_, prefix, "list refused files",
                             [&](std::string_view name, std::string_view data) -> Result<bool> {
                               if (data.size() < 8)
                                 return Corrupt("a refused-file record is too short");
                               RefusedFile file;
                               file.file_name = std::string(name.substr(prefix.size()));
                               for (int i = 0; i < 8; ++i)
                                 file.fingerprint = (file.fingerprint << 8) | uint8_t(data[i]);
                               file.reason = std::string(data.substr(8));
                               files.push_back(std::move(file));
                               return true;
                             });
  if (!walked.ok()) return walked.error();
  return files;
}

Status LmdbIndex::ClaimAccount(std::string_view identity) {
  // "user@host:port": another port (STARTTLS instead of TLS, a tunnel) is
  // the same mailbox, and the record follows it; another user or host is not.
  auto mailbox = [](std::string_view id) { return id.substr(0, id.rfind(':')); };
  std::string recorded;
  Status status = Write([&](WriteTxn& txn) -> Status {
    MDB_val key = Val(kAccountKey);
    MDB_val value;
    int rc = mdb_get(txn.get(), meta_, &key, &value);
    if (rc == MDB_SUCCESS) {
      recorded = std::string(View(value));
      if (recorded == identity || mailbox(recorded) != mailbox(identity)) return Status::Ok();
    } else if (rc != MDB_NOTFOUND) {
      return txn.Fail(rc, "read the account");
    }
    MDB_val mine = Val(identity);
    return txn.Check(mdb_put(txn.get(), meta_, &key, &mine, 0), "record the account");
  });
  if (!status.ok()) return status.error().Wrap("index " + dir_);
  if (!recorded.empty() && mailbox(recorded) != mailbox(identity)) {
    return Error{ErrorKind::kConfig,
                 "the index in " + dir_ + " belongs to " + Printable(recorded) + ", not to " +
                     Printable(std::string(identity)) +
                     ": two accounts cannot share one Maildir or state_dir; give each account "
                     "its own (if the account only moved to another server name, `mailmirror "
                     "repair` rebuilds the index from the Maildir)"};
  }
  return Status::Ok();
}

// --- Batch and factory.

void Index::Batch::PutCopy(std::string_view target, uint32_t folder_id, uint32_t uid,
                           CopyMark mark) {
  std::string key = CopyMessagePrefix(target, folder_id);
  AppendBe32(key, uid);
  ops_.emplace_back(PutRawOp{RawDb::kCopies, std::move(key), TwoLe32(mark.uidvalidity, mark.uid)});
}

void Index::Batch::ResetCopies(std::string_view target, uint32_t folder_id, CopySource source) {
  ops_.emplace_back(ClearRawOp{RawDb::kCopies, CopyMessagePrefix(target, folder_id)});
  ops_.emplace_back(PutRawOp{RawDb::kCopies, CopySourceKey(target, folder_id),
                             TwoLe32(source.uidvalidity, source.fingerprint)});
}

void Index::Batch::ForgetCopyTarget(std::string_view target, std::string_view raw_name) {
  ops_.emplace_back(ClearRawOp{RawDb::kCopies, CopyTargetKey(target, raw_name), /*exact=*/true});
}

void Index::Batch::PutCopyTarget(std::string_view target, std::string_view raw_name,
                                 CopyTargetState state) {
  ops_.emplace_back(PutRawOp{RawDb::kCopies, CopyTargetKey(target, raw_name),
                             TwoLe32(state.uidvalidity, state.uidnext)});
}

void Index::Batch::PutRefused(uint32_t folder_id, const RefusedFile& file) {
  std::string key = Be32(folder_id) + file.file_name;
  std::string value;
  AppendBe64(value, file.fingerprint);
  value += file.reason;
  ops_.emplace_back(PutRawOp{RawDb::kRefused, std::move(key), std::move(value)});
}

void Index::Batch::ClearRefused(uint32_t folder_id) {
  ops_.emplace_back(ClearRawOp{RawDb::kRefused, Be32(folder_id)});
}

void Index::Batch::PutFolder(const FolderRecord& folder) { ops_.emplace_back(PutFolderOp{folder}); }

void Index::Batch::DeleteFolder(std::string_view remote_name) {
  ops_.emplace_back(DeleteFolderOp{std::string(remote_name)});
}

void Index::Batch::PutMessage(uint32_t folder_id, const MessageRecord& message) {
  ops_.emplace_back(PutMessageOp{folder_id, message});
}

void Index::Batch::DeleteMessage(uint32_t folder_id, uint32_t uid) {
  ops_.emplace_back(DeleteMessageOp{folder_id, uid});
}

void Index::Batch::ClearFolderMessages(uint32_t folder_id) {
  ops_.emplace_back(ClearFolderOp{folder_id});
}

Result<std::unique_ptr<Index>> Index::Open(const std::string& dir) {
  return Open(dir, IndexOptions{});
}

Result<std::unique_ptr<Index>> Index::Open(const std::string& dir, const IndexOptions& options) {
  if (dir.empty()) return Error{ErrorKind::kIo, "open index: empty directory name"};
  if (Status made = MakeDirectories(dir); !made.ok()) {
    return made.error().Wrap("creating index directory");
  }
  auto index = std::make_unique<LmdbIndex>(dir);
  if (Status status = index->Init(options); !status.ok()) return status.error();
  return std::unique_ptr<Index>(std::move(index));
}

}  // namespace mailmirror::store
