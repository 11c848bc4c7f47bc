#include "store/maildir.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <charconv>
#include <csignal>
#include <cstring>
#include <ctime>
#include <limits>
#include <system_error>
#include <utility>

#include "store/line_ends.h"
#include "util/fs.h"
#include "util/strings.h"

namespace mailmirror::store {
namespace {

// Large enough that a write(2) per buffer costs little next to the network,
// small enough that many messages in flight stay cheap.
constexpr size_t kBufferSize = 64 * 1024;

// How often BeginMessage tries a fresh stem when O_EXCL finds the name
// taken. Stems are unique, so a clash means a foreign file with our name;
// retrying (as DJB's delivery procedure says) is enough.
constexpr int kCreateAttempts = 5;
// Batches at least this large are made durable with syncfs(2).
constexpr size_t kGroupSyncMinimum = 8;
// Maildir readers leave others' tmp/ files alone for 36 hours.
constexpr int64_t kForeignTmpGraceSeconds = 36 * 3600;

struct FlagInfo {
  char letter;
  Flag bit;
  const char* imap_name;
};
// In ASCII order of the letters, which is the order a name must list them.
constexpr FlagInfo kFlags[] = {
    {'D', kFlagDraft, "\\Draft"},        {'F', kFlagFlagged, "\\Flagged"},
    {'P', kFlagForwarded, "$Forwarded"}, {'R', kFlagAnswered, "\\Answered"},
    {'S', kFlagSeen, "\\Seen"},          {'T', kFlagDeleted, "\\Deleted"},
};

FileKind KindOfEntry(unsigned char d_type) {
  switch (d_type) {
    case DT_REG:
      return FileKind::kRegular;
    case DT_LNK:
      return FileKind::kSymlink;
    case DT_DIR:
      return FileKind::kDirectory;
    case DT_FIFO:
      return FileKind::kFifo;
    case DT_SOCK:
      return FileKind::kSocket;
    case DT_CHR:
    case DT_BLK:
      return FileKind::kDevice;
    default:
      return FileKind::kOther;
  }
}

uint32_t FlagFromLetter(char letter) {
  for (const FlagInfo& info : kFlags) {
    if (info.letter == letter) return info.bit;
  }
  return 0;
}

Error IoError(const std::string& what, int err) { return ErrnoError(what, err); }

int OpenRetrying(const std::string& path, int flags, mode_t mode = 0) {
  int fd = -1;
  do {
    fd = ::open(path.c_str(), flags, mode);
  } while (fd < 0 && errno == EINTR);
  return fd;
}

// Writes all of `data`, resuming after signals and short writes. Returns 0
// or the errno of the failure.
int WriteAll(int fd, const char* data, size_t size) {
  while (size > 0) {
    ssize_t n = ::write(fd, data, size);
    if (n < 0) {
      if (errno == EINTR) continue;
      return errno;
    }
    // A zero-byte write of a non-empty buffer makes no progress; treat it
    // like the "disk full" it means on the file systems that do it.
    if (n == 0) return ENOSPC;
    data += n;
    size -= static_cast<size_t>(n);
  }
  return 0;
}

int FsyncRetrying(int fd) {
  while (::fsync(fd) != 0) {
    if (errno != EINTR) return errno;
  }
  return 0;
}

Status SyncDirectory(const std::string& dir) {
  UniqueFd fd(OpenRetrying(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (fd.get() < 0) {
    int err = errno;
    return IoError("opening directory " + dir, err);
  }
  if (int err = FsyncRetrying(fd.get()); err != 0) {
    return IoError("syncing directory " + dir, err);
  }
  if (int err = fd.Close(); err != 0) return IoError("closing directory " + dir, err);
  return Status::Ok();
}

Status CheckDirectory(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return IoError(path, errno);
  if (!S_ISDIR(st.st_mode)) return Error{ErrorKind::kIo, path + ": not a directory"};
  return Status::Ok();
}

using HashState = std::unique_ptr<XXH3_state_t, decltype(&XXH3_freeState)>;

HashState NewHashState() {
  HashState state(XXH3_createState(), &XXH3_freeState);
  // Reset fails only for a null state; a failed allocation would already
  // have been fatal elsewhere, but stay defined: the caller checks.
  if (state && XXH3_64bits_reset(state.get()) != XXH_OK) state.reset();
  return state;
}

// The host name as the last part of a stem. '/' and ':' would break the
// Maildir name (DJB's escapes); ',' is escaped the same way so that no stem
// of ours can contain ",U=" and mislead ParseMaildirName.
std::string EscapedHostName() {
  char buf[256] = {};
  if (::gethostname(buf, sizeof(buf) - 1) != 0 || buf[0] == '\0') return "localhost";
  std::string out;
  for (const char* p = buf; *p != '\0'; ++p) {
    switch (*p) {
      case '/':
        out += "\\057";
        break;
      case ':':
        out += "\\072";
        break;
      case ',':
        out += "\\054";
        break;
      default:
        out += *p;
    }
  }
  return out;
}

class TmpMessageImpl final : public TmpMessage {
 public:
  // Creates tmp/<stem> in `folder_path`; kIo on failure.
  static Result<std::unique_ptr<TmpMessageImpl>> Create(const std::string& folder_path) {
    HashState hash = NewHashState();
    if (!hash) return Error{ErrorKind::kInternal, "cannot allocate an XXH3 state"};
    for (int attempt = 1;; ++attempt) {
      std::string stem = NewStem();
      std::string path = folder_path;
      path += "/tmp/";
      path += stem;
      int fd = OpenRetrying(path, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0600);
      if (fd >= 0) {
        return std::unique_ptr<TmpMessageImpl>(
            new TmpMessageImpl(fd, std::move(stem), std::move(path), std::move(hash)));
      }
      int err = errno;
      if (err != EEXIST || attempt == kCreateAttempts) return IoError("creating " + path, err);
    }
  }

  // A finished message in tmp/ that is a hard link to `source` (a stored
  // message with this size and digest): nothing is copied.
  static Result<std::unique_ptr<TmpMessageImpl>> CreateLink(const std::string& folder_path,
                                                            const std::string& source,
                                                            uint64_t size, uint64_t digest) {
    for (int attempt = 1;; ++attempt) {
      std::string stem = NewStem();
      std::string path = folder_path;
      path += "/tmp/";
      path += stem;
      if (::link(source.c_str(), path.c_str()) == 0) {
        std::unique_ptr<TmpMessageImpl> message(new TmpMessageImpl(
            -1, std::move(stem), std::move(path), HashState(nullptr, &XXH3_freeState)));
        message->size_ = size;
        message->digest_ = digest;
        message->state_ = State::kFinished;
        std::string().swap(message->buffer_);
        return message;
      }
      int err = errno;
      if (err != EEXIST || attempt == kCreateAttempts) {
        std::string what = "linking " + source;
        what += " into ";
        what += folder_path;
        what += "/tmp";
        return IoError(what, err);
      }
    }
  }

  TmpMessageImpl(const TmpMessageImpl&) = delete;
  TmpMessageImpl& operator=(const TmpMessageImpl&) = delete;

  ~TmpMessageImpl() override { Discard(); }

  Status Write(std::string_view chunk) override {
    if (state_ != State::kWriting) return NotWritable();
    return line_ends_.Feed(chunk,
                           [this](const char* data, size_t size) { return Append(data, size); });
  }

  Status Finish() override {
    if (state_ == State::kFinished) return Status::Ok();
    if (state_ != State::kWriting) return NotWritable();
    if (Status s =
            line_ends_.End([this](const char* data, size_t size) { return Append(data, size); });
        !s.ok()) {
      return s;
    }
    if (Status s = Flush(); !s.ok()) return s;
    digest_ = XXH3_64bits_digest(hash_.get());
    // A delivery batch holds hundreds of finished messages: keep none of
    // the 64 KiB buffers or hash states.
    std::string().swap(buffer_);
    hash_.reset();
    // Closed now rather than kept for DeliveryBatch: a batch may hold
    // thousands of messages, more than the default descriptor limit.
    // Deliver reopens the file to fsync it, which Linux allows on a
    // read-only descriptor and which reports writeback errors not yet seen.
    if (int err = fd_.Close(); err != 0) return Fail(IoError("closing " + path_, err));
    state_ = State::kFinished;
    return Status::Ok();
  }

  const std::string& stem() const override { return stem_; }
  uint64_t size() const override { return size_; }
  uint64_t digest() const override { return digest_; }

  // For DeliveryBatch.
  const std::string& tmp_path() const { return path_; }
  bool finished() const { return state_ == State::kFinished; }

  // Step 1 of a delivery: the file times, then fsync.
  // Sets the file times and, when `fsync`, makes the file durable.
  Status SyncToDisk(int64_t mtime, bool fsync) const {
    const timespec times[2] = {{static_cast<time_t>(mtime), 0}, {static_cast<time_t>(mtime), 0}};
    if (!fsync) {
      // The batch is made durable by syncfs: one system call, not three.
      if (mtime != 0 && ::utimensat(AT_FDCWD, path_.c_str(), times, 0) != 0) {
        int err = errno;
        return IoError("setting the modification time of " + path_, err);
      }
      return Status::Ok();
    }
    UniqueFd fd(OpenRetrying(path_, O_RDONLY | O_CLOEXEC));
    if (fd.get() < 0) {
      int err = errno;
      return IoError("opening " + path_, err);
    }
    if (mtime != 0) {
      // Set before the fsync so that the times are as durable as the data.
      if (::futimens(fd.get(), times) != 0) {
        int err = errno;
        return IoError("setting the modification time of " + path_, err);
      }
    }
    if (int err = FsyncRetrying(fd.get()); err != 0) return IoError("syncing " + path_, err);
    if (int err = fd.Close(); err != 0) return IoError("closing " + path_, err);
    return Status::Ok();
  }

  // The file has been renamed out of tmp/: nothing left to clean up.
  void MarkDelivered() { state_ = State::kGone; }

  // Unlinks the tmp file now unless it was delivered.
  void Discard() {
    if (fd_.get() >= 0) (void)fd_.Close();
    if (state_ == State::kGone) return;
    state_ = State::kGone;
    // A failure here leaves a stale file that CleanTmp removes on a later
    // run; there is nobody to report it to.
    (void)::unlink(path_.c_str());
  }

 private:
  enum class State { kWriting, kFinished, kFailed, kGone };

  TmpMessageImpl(int fd, std::string stem, std::string path, HashState hash)
      : fd_(fd), stem_(std::move(stem)), path_(std::move(path)), hash_(std::move(hash)) {
    buffer_.reserve(kBufferSize);
  }

  // Adds converted bytes to the buffer, writing it out whenever it fills.
  Status Append(const char* data, size_t size) {
    while (size > 0) {
      size_t take = std::min(size, kBufferSize - buffer_.size());
      buffer_.append(data, take);
      size_ += take;
      data += take;
      size -= take;
      if (buffer_.size() == kBufferSize) {
        if (Status s = Flush(); !s.ok()) return s;
      }
    }
    return Status::Ok();
  }

  Status Flush() {
    if (buffer_.empty()) return Status::Ok();
    // Hashing here sees exactly the bytes that reach the file.
    (void)XXH3_64bits_update(hash_.get(), buffer_.data(), buffer_.size());
    if (int err = WriteAll(fd_.get(), buffer_.data(), buffer_.size()); err != 0) {
      return Fail(IoError("writing " + path_, err));
    }
    buffer_.clear();
    return Status::Ok();
  }

  Status Fail(Error error) {
    state_ = State::kFailed;
    error_ = std::move(error);
    buffer_.clear();
    return *error_;
  }

  Status NotWritable() const {
    if (state_ == State::kFailed) return *error_;
    return Error{ErrorKind::kInternal, "message " + path_ + " is no longer open for writing"};
  }

  UniqueFd fd_;
  std::string stem_;
  std::string path_;
  HashState hash_;
  std::string buffer_;  // converted bytes not yet written
  CrlfToLf line_ends_;
  uint64_t size_ = 0;
  uint64_t digest_ = 0;
  State state_ = State::kWriting;
  std::optional<Error> error_;  // set in kFailed
};

class MaildirFolderImpl final : public MaildirFolder {
 public:
  using MaildirFolder::RenameEntry;
  using MaildirFolder::Scan;
  explicit MaildirFolderImpl(std::string path) : path_(std::move(path)) {}

  const std::string& path() const override { return path_; }

  Result<std::unique_ptr<TmpMessage>> BeginMessage() override {
    Result<std::unique_ptr<TmpMessageImpl>> message = TmpMessageImpl::Create(path_);
    if (!message.ok()) return message.error();
    return std::unique_ptr<TmpMessage>(std::move(message).value());
  }

  Result<std::unique_ptr<TmpMessage>> LinkMessage(const std::string& source, uint64_t size,
                                                  uint64_t digest) override {
    Result<std::unique_ptr<TmpMessageImpl>> message =
        TmpMessageImpl::CreateLink(path_, source, size, digest);
    if (!message.ok()) return message.error();
    return std::unique_ptr<TmpMessage>(std::move(message).value());
  }

  Result<std::vector<Entry>> Scan(std::vector<RefusedEntry>* refused) override {
    std::vector<Entry> entries;
    for (bool in_cur : {true, false}) {
      std::string dir = path_ + (in_cur ? "/cur" : "/new");
      Status status = ForEachEntry(dir, [&](int dir_fd, const dirent& entry) -> Status {
        // Only regular files are mail. d_type spares a stat when the file
        // system fills it in; DT_UNKNOWN asks lstat (never following links).
        FileKind kind = KindOfEntry(entry.d_type);
        if (entry.d_type == DT_UNKNOWN) {
          struct stat st {};
          if (::fstatat(dir_fd, entry.d_name, &st, AT_SYMLINK_NOFOLLOW) != 0) {
            if (errno == ENOENT) return Status::Ok();  // renamed meanwhile
            return IoError(dir + "/" + entry.d_name, errno);
          }
          kind = FileKindOf(st.st_mode);
        }
        std::optional<MaildirName> name;
        if (kind == FileKind::kRegular) name = ParseMaildirName(entry.d_name);
        if (name) {
          entries.push_back(Entry{std::move(*name), in_cur, entry.d_name});
        } else if (refused != nullptr) {
          refused->push_back(RefusedEntry{entry.d_name, in_cur,
                                          kind == FileKind::kRegular
                                              ? "its name is not a Maildir message name"
                                              : std::string(FileKindName(kind)) + ", not a file"});
        }
        return Status::Ok();
      });
      if (!status.ok()) return status.error();
    }
    return entries;
  }

  Result<size_t> CleanTmp(int64_t before) override {
    size_t removed = 0;
    std::string dir = path_ + "/tmp";
    Status status = ForEachEntry(dir, [&](int dir_fd, const dirent& entry) -> Status {
      struct stat st {};
      if (::fstatat(dir_fd, entry.d_name, &st, AT_SYMLINK_NOFOLLOW) != 0) {
        int err = errno;
        if (err == ENOENT) return Status::Ok();  // removed meanwhile
        return IoError(dir + "/" + entry.d_name, err);
      }
      // Only plain files are ours; a directory or link is someone else's.
      // Another program's file (mutt, a delivery agent) may still be being
      // written: by Maildir custom it is left alone for 36 hours.
      if (!S_ISREG(st.st_mode)) return Status::Ok();
      std::optional<pid_t> writer = OwnStemWriter(entry.d_name);
      int64_t limit = writer ? before : before - kForeignTmpGraceSeconds;
      // Ours, from a process that is gone: stale however recent (a run
      // killed a moment before this one started). A reused pid only delays
      // this to the time rule.
      bool writer_gone =
          writer && *writer != ::getpid() && ::kill(*writer, 0) != 0 && errno == ESRCH;
      if (st.st_mtim.tv_sec >= limit && !writer_gone) return Status::Ok();
      if (::unlinkat(dir_fd, entry.d_name, 0) != 0) {
        int err = errno;
        if (err == ENOENT) return Status::Ok();
        return IoError("removing " + dir + "/" + entry.d_name, err);
      }
      ++removed;
      return Status::Ok();
    });
    if (!status.ok()) return status.error();
    return removed;
  }

  Status RenameEntry(const Entry& entry, const std::string& new_file_name, bool to_cur) override {
    Result<bool> renamed = Rename(entry, new_file_name, to_cur, /*missing_ok=*/false);
    return renamed.ok() ? Status::Ok() : Status(renamed.error());
  }

  Result<bool> RenameIfPresent(const Entry& entry, const std::string& new_file_name,
                               bool to_cur) override {
    return Rename(entry, new_file_name, to_cur, /*missing_ok=*/true);
  }

  Status RemoveEntry(const Entry& entry) override {
    Result<bool> removed = RemoveIfPresent(entry);
    return removed.ok() ? Status::Ok() : Status(removed.error());
  }

  Result<bool> RemoveIfPresent(const Entry& entry) override {
    std::string path = EntryPath(entry);
    if (::unlink(path.c_str()) == 0) return true;
    int err = errno;
    if (err == ENOENT) return false;
    return IoError("removing " + path, err);
  }

  Status SyncDirectories() override {
    for (const char* sub : {"/cur", "/new"}) {
      if (Status s = SyncDirectory(path_ + sub); !s.ok()) return s;
    }
    return Status::Ok();
  }

  Result<std::pair<uint64_t, uint64_t>> DigestOf(const std::string& file_name,
                                                 bool in_cur) override {
    if (file_name.empty() || file_name == "." || file_name == ".." ||
        file_name.find('/') != std::string::npos) {
      return Error{ErrorKind::kInternal,
                   "not a message file name: \"" + Printable(file_name) + "\""};
    }
    std::string path = FilePath(file_name, in_cur);
    Result<UniqueFd> fd = OpenRegularFile(path);
    if (!fd.ok()) return fd.error();
    HashState hash = NewHashState();
    if (!hash) return Error{ErrorKind::kInternal, "cannot allocate an XXH3 state"};
    std::vector<char> buffer(kBufferSize);
    uint64_t size = 0;
    for (;;) {
      ssize_t n = ::read(fd->get(), buffer.data(), buffer.size());
      if (n < 0) {
        int err = errno;
        if (err == EINTR) continue;
        return IoError("reading " + path, err);
      }
      if (n == 0) break;
      (void)XXH3_64bits_update(hash.get(), buffer.data(), static_cast<size_t>(n));
      size += static_cast<uint64_t>(n);
    }
    return std::make_pair(static_cast<uint64_t>(XXH3_64bits_digest(hash.get())), size);
  }

 private:
  Result<bool> Rename(const Entry& entry, const std::string& new_file_name, bool to_cur,
                      bool missing_ok) {
    std::string from = EntryPath(entry);
    if (new_file_name == entry.file_name && to_cur == entry.in_cur) {
      // Nothing to rename; the caller still learns whether the file is there.
      if (!missing_ok || ::access(from.c_str(), F_OK) == 0) return true;
      return false;
    }
    std::string to = FilePath(new_file_name, to_cur);
    if (::rename(from.c_str(), to.c_str()) == 0) return true;
    int err = errno;
    if (err == ENOENT && missing_ok) return false;
    return IoError("renaming " + from, err);
  }

  // Calls `visit(dir_fd, entry)` for every entry of `dir` except those whose
  // name starts with '.' (".", "..", and hidden files, which Maildir readers
  // ignore too); stops at the first error `visit` returns.
  template <typename Visit>
  static Status ForEachEntry(const std::string& dir, Visit&& visit) {
    DIR* raw = ::opendir(dir.c_str());
    if (raw == nullptr) {
      int err = errno;
      return IoError("opening directory " + dir, err);
    }
    std::unique_ptr<DIR, int (*)(DIR*)> stream(raw, &::closedir);
    for (;;) {
      errno = 0;
      const dirent* entry = ::readdir(stream.get());
      if (entry == nullptr) {
        int err = errno;
        if (err != 0) return IoError("reading directory " + dir, err);
        return Status::Ok();
      }
      if (entry->d_name[0] == '.') continue;
      if (Status s = visit(::dirfd(stream.get()), *entry); !s.ok()) return s;
    }
  }

  std::string path_;
};

}  // namespace

std::string FlagLetters(uint32_t flags) {
  std::string out;
  for (const FlagInfo& info : kFlags) {
    if ((flags & info.bit) != 0) out += info.letter;
  }
  return out;
}

uint32_t FlagsFromLetters(std::string_view letters) {
  uint32_t flags = 0;
  for (char c : letters) flags |= FlagFromLetter(c);
  return flags;
}

uint32_t FlagFromImap(std::string_view name) {
  for (const FlagInfo& info : kFlags) {
    if (EqualsIgnoreCase(name, info.imap_name)) return info.bit;
  }
  return 0;
}

ImapFlags SplitImapFlags(const std::vector<std::string>& flags) {
  ImapFlags split;
  for (const std::string& flag : flags) {
    uint32_t bit = FlagFromImap(flag);
    if (bit != 0) {
      split.bits |= bit;
    } else if (!flag.empty() && flag[0] != '\\') {
      split.keywords.push_back(flag);
    }
  }
  return split;
}

std::vector<std::string> ImapFlagsFromBits(uint32_t flags) {
  std::vector<std::string> out;
  for (const FlagInfo& info : kFlags) {
    if ((flags & info.bit) != 0) out.emplace_back(info.imap_name);
  }
  return out;
}

std::optional<MaildirName> ParseMaildirName(std::string_view file_name) {
  if (file_name.empty() || file_name.front() == '.') return std::nullopt;
  if (file_name.find('/') != std::string_view::npos ||
      file_name.find('\0') != std::string_view::npos) {
    return std::nullopt;
  }
  MaildirName out;
  std::string_view base = file_name;
  // A unique name holds no ':' (DJB), so the first one starts the info.
  if (size_t colon = file_name.find(':'); colon != std::string_view::npos) {
    std::string_view info = file_name.substr(colon + 1);
    if (info.substr(0, 2) != "2," || info.find(':') != std::string_view::npos) {
      return std::nullopt;
    }
    for (char c : info.substr(2)) {
      uint32_t bit = FlagFromLetter(c);
      if (bit != 0) {
        out.flags |= bit;
      } else {
        out.other_letters += c;
      }
    }
    out.has_info = true;
    base = file_name.substr(0, colon);
  }
  if (size_t tag = base.find(",U="); tag != std::string_view::npos) {
    std::string_view digits = base.substr(tag + 3);
    digits = digits.substr(0, digits.find(','));
    uint32_t uid = 0;
    auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), uid);
    // A stem must never contain ",U=", or a rename through MakeMaildirName
    // would produce a name that parses differently; so a malformed tag
    // makes the whole name unusable rather than part of the stem.
    if (ec != std::errc() || end != digits.data() + digits.size() || uid == 0) {
      return std::nullopt;
    }
    out.uid = uid;
    base = base.substr(0, tag);
  }
  if (base.empty()) return std::nullopt;
  out.stem = std::string(base);
  return out;
}

std::string MakeMaildirName(std::string_view stem, uint32_t uid, uint32_t flags) {
  return MakeMaildirName(stem, uid, flags, {});
}

std::string MakeMaildirName(std::string_view stem, uint32_t uid, uint32_t flags,
                            std::string_view other_letters) {
  std::string letters = FlagLetters(flags);
  if (!other_letters.empty()) {
    letters += other_letters;
    std::sort(letters.begin(), letters.end());
    letters.erase(std::unique(letters.begin(), letters.end()), letters.end());
  }
  std::string out(stem);
  if (uid != 0) {
    out += ",U=";
    out += std::to_string(uid);
  }
  out += ":2,";
  out += letters;
  return out;
}

bool IsOwnStem(std::string_view name) { return OwnStemWriter(name).has_value(); }

std::optional<pid_t> OwnStemWriter(std::string_view name) {
  // "<sec>.M<usec>P<pid>Q<counter>.<host>", as NewStem writes on this host.
  static const std::string host = EscapedHostName();
  size_t pos = 0;
  uint64_t pid = 0;
  auto digits = [&](uint64_t* value) {
    size_t start = pos;
    for (; pos < name.size() && name[pos] >= '0' && name[pos] <= '9'; ++pos) {
      if (value != nullptr && *value < (uint64_t{1} << 40))
        *value = *value * 10 + (name[pos] - '0');
    }
    return pos > start;
  };
  auto expect = [&](std::string_view text) {
    if (name.substr(pos, text.size()) != text) return false;
    pos += text.size();
    return true;
  };
  if (digits(nullptr) && expect(".M") && digits(nullptr) && expect("P") && digits(&pid) &&
      expect("Q") && digits(nullptr) && expect(".") && name.substr(pos) == host &&
      pid <= static_cast<uint64_t>(std::numeric_limits<pid_t>::max())) {
    return static_cast<pid_t>(pid);
  }
  return std::nullopt;
}

std::string NewStem() {
  static const std::string host = EscapedHostName();
  static std::atomic<uint64_t> counter{0};
  uint64_t count = counter.fetch_add(1, std::memory_order_relaxed) + 1;
  timespec now{};
  // CLOCK_REALTIME cannot fail with a valid clock id and pointer.
  (void)::clock_gettime(CLOCK_REALTIME, &now);
  std::string out = std::to_string(now.tv_sec);
  out += ".M";
  out += std::to_string(now.tv_nsec / 1000);
  out += 'P';
  static const pid_t pid = ::getpid();  // no stems are made in forked children
  out += std::to_string(pid);
  out += 'Q';
  out += std::to_string(count);
  out += '.';
  out += host;
  return out;
}

Result<std::unique_ptr<MaildirFolder>> MaildirFolder::Open(const std::string& path, bool create,
                                                           const std::string& mail_root) {
  std::string root = path;
  while (root.size() > 1 && root.back() == '/') root.pop_back();
  if (root.empty()) return Error{ErrorKind::kIo, "opening Maildir: empty path"};
  if (!mail_root.empty()) {
    if (Status inside = CheckNoSymlinkBelow(mail_root, root); !inside.ok()) return inside.error();
  }
  if (create) {
    if (Status s = MakeDirectories(root); !s.ok()) {
      return s.error().Wrap("creating Maildir " + root);
    }
    for (const char* sub : {"/cur", "/new", "/tmp"}) {
      std::string dir = root + sub;
      if (::mkdir(dir.c_str(), 0700) != 0) {
        int err = errno;
        if (err != EEXIST) {
          return IoError("creating directory " + dir, err).Wrap("creating Maildir " + root);
        }
      }
    }
  }
  for (const char* sub : {"/cur", "/new", "/tmp"}) {
    // The folder itself was checked from the root: only the last step is left.
    if (!mail_root.empty()) {
      if (Status inside = CheckNoSymlinkBelow(root, root + sub); !inside.ok()) {
        return inside.error();
      }
    }
    if (Status s = CheckDirectory(root + sub); !s.ok()) {
      return s.error().Wrap("opening Maildir " + root);
    }
  }
  return std::unique_ptr<MaildirFolder>(new MaildirFolderImpl(std::move(root)));
}

namespace {

// syncfs(2) on the file system holding `path`: every dirty page and inode
// of it reaches the disk (errors from writeback are reported since Linux 5.8).
Status SyncFileSystem(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (fd.get() < 0) {
    int err = errno;
    return IoError("opening " + path, err);
  }
  if (::syncfs(fd.get()) != 0) {
    int err = errno;
    return IoError("syncing the file system of " + path, err);
  }
  return Status::Ok();
}

}  // namespace

Status DeliveryBatch::Deliver() {
  names_.clear();
  std::vector<TmpMessageImpl*> messages;
  messages.reserve(items_.size());
  for (const Item& item : items_) {
    auto* message = dynamic_cast<TmpMessageImpl*>(item.message.get());
    if (item.folder == nullptr || message == nullptr) {
      return Error{ErrorKind::kInternal,
                   "delivery batch item without a folder or without a message begun by "
                   "MaildirFolder::BeginMessage"};
    }
    if (!message->finished()) {
      return Error{ErrorKind::kInternal,
                   "message " + message->tmp_path() + " delivered before Finish succeeded"};
    }
    messages.push_back(message);
  }
  auto discard_from = [&](size_t first) {
    for (size_t i = first; i < messages.size(); ++i) messages[i]->Discard();
  };

  // Group commit: a batch of many messages is made durable with one
  // syncfs(2) per file system instead of one fsync per file in series, which
  // costs a journal commit each. Small batches keep the precise fsyncs.
  const bool group = items_.size() >= kGroupSyncMinimum;
  std::vector<std::string> file_systems;  // one folder path per distinct device
  if (group) {
    std::vector<dev_t> devices;
    std::vector<const MaildirFolder*> seen;  // one stat per folder, not per message
    for (const Item& item : items_) {
      if (std::find(seen.begin(), seen.end(), item.folder) != seen.end()) continue;
      seen.push_back(item.folder);
      struct stat st {};
      if (::stat(item.folder->path().c_str(), &st) != 0) {
        int err = errno;
        discard_from(0);
        return IoError("examining " + item.folder->path(), err);
      }
      if (std::find(devices.begin(), devices.end(), st.st_dev) == devices.end()) {
        devices.push_back(st.st_dev);
        file_systems.push_back(item.folder->path());
      }
    }
  }

  // 1. Data (and times) durable before any name points at it.
  for (size_t i = 0; i < items_.size(); ++i) {
    if (Status s = messages[i]->SyncToDisk(items_[i].mtime, !group); !s.ok()) {
      discard_from(0);
      return s;
    }
  }
  if (group) {
    for (const std::string& path : file_systems) {
      if (Status s = SyncFileSystem(path); !s.ok()) {
        discard_from(0);
        return s;
      }
    }
  }

  // 2. The renames: each message becomes visible to readers here.
  std::vector<std::string> directories;
  for (size_t i = 0; i < items_.size(); ++i) {
    const Item& item = items_[i];
    std::string dir = item.folder->path() + ((item.flags & kFlagSeen) != 0 ? "/cur" : "/new");
    std::string name = MakeMaildirName(messages[i]->stem(), item.uid, item.flags);
    std::string target = dir;
    target += '/';
    target += name;
    if (::rename(messages[i]->tmp_path().c_str(), target.c_str()) != 0) {
      int err = errno;
      discard_from(i);
      return IoError("moving " + messages[i]->tmp_path() + " to " + target, err);
    }
    messages[i]->MarkDelivered();
    names_.push_back(std::move(name));
    if (std::find(directories.begin(), directories.end(), dir) == directories.end()) {
      directories.push_back(std::move(dir));
    }
  }

  // 3. The new directory entries durable, once per directory. tmp/ is not
  // synced: if its old entry comes back after a crash, it is a second link
  // to a delivered file, and CleanTmp removing it loses nothing.
  if (group) {
    for (const std::string& path : file_systems) {
      if (Status s = SyncFileSystem(path); !s.ok()) return s;
    }
    return Status::Ok();
  }
  for (const std::string& dir : directories) {
    if (Status s = SyncDirectory(dir); !s.ok()) return s;
  }
  return Status::Ok();
}

}  // namespace mailmirror::store
