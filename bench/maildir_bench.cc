// The local scan of two-way sync over a folder of 100,000 unchanged files
// (names read, matched to index records), and the Maildir writer against
// the floor of any Maildir writer on the same
// file system, in one run: batches of 256 messages streamed in 16 KiB
// chunks with CRLF lines (stored as LF, hashed), then delivered as a sync
// delivers them (file times, one syncfs, renames into cur/, directory
// fsync); and the bare system calls a delivery cannot avoid for the same
// files (create in tmp/, write, close, set times, syncfs, rename). Their
// ratio is the writer's own cost; the bare figure is what bounds an
// initial sync of many small messages. Files go to a fresh directory under
// $TMPDIR.
#include <benchmark/benchmark.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <system_error>

#include "store/index.h"
#include "store/maildir.h"
#include "sync/local_scan.h"

namespace {

namespace fs = std::filesystem;
using mailmirror::Result;
using mailmirror::Status;
using mailmirror::store::DeliveryBatch;
using mailmirror::store::kFlagSeen;
using mailmirror::store::MaildirFolder;
using mailmirror::store::TmpMessage;

constexpr int kBatch = 256;
constexpr size_t kChunk = 16 * 1024;
constexpr int64_t kMtime = 1700000000;

class TempDir {
 public:
  TempDir() {
    std::string pattern = (fs::temp_directory_path() / "maildir_bench.XXXXXX").string();
    if (mkdtemp(pattern.data()) != nullptr) path_ = pattern;
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  ~TempDir() {
    std::error_code ignored;
    if (!path_.empty()) fs::remove_all(path_, ignored);
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// A message of `size` bytes in CRLF lines of 78 characters.
std::string MakeMessage(size_t size) {
  std::string text;
  text.reserve(size + 80);
  while (text.size() < size) text += std::string(76, 'x') + "\r\n";
  text.resize(size);
  return text;
}

void BM_MaildirWriter(benchmark::State& state) {
  const auto size = static_cast<size_t>(state.range(0));
  const std::string text = MakeMessage(size);
  TempDir dir;
  Result<std::unique_ptr<MaildirFolder>> folder = MaildirFolder::Open(dir.path() + "/m", true);
  if (!folder.ok()) return state.SkipWithError(folder.error().message.c_str());
  uint32_t uid = 0;
  for (auto _ : state) {
    DeliveryBatch batch;
    for (int i = 0; i < kBatch; ++i) {
      Result<std::unique_ptr<TmpMessage>> message = (*folder)->BeginMessage();
      if (!message.ok()) return state.SkipWithError(message.error().message.c_str());
      for (size_t at = 0; at < text.size(); at += kChunk) {
        if (!(*message)->Write(std::string_view(text).substr(at, kChunk)).ok()) {
          return state.SkipWithError("write failed");
        }
      }
      if (!(*message)->Finish().ok()) return state.SkipWithError("finish failed");
      batch.Add({folder->get(), std::move(message).value(), ++uid, kFlagSeen, kMtime});
    }
    Status delivered = batch.Deliver();
    if (!delivered.ok()) return state.SkipWithError(delivered.error().message.c_str());
  }
  state.SetItemsProcessed(state.iterations() * kBatch);
  state.SetBytesProcessed(state.iterations() * kBatch * static_cast<int64_t>(size));
}
BENCHMARK(BM_MaildirWriter)->Arg(4096)->Arg(65536)->Iterations(100)->UseRealTime();

void BM_BareCreateWriteRename(benchmark::State& state) {
  const auto size = static_cast<size_t>(state.range(0));
  const std::string text = MakeMessage(size);  // written as is: no conversion, no hash
  TempDir dir;
  const std::string root = dir.path() + "/m";
  for (const char* sub : {"", "/tmp", "/cur", "/new"}) ::mkdir((root + sub).c_str(), 0700);
  const timespec times[2] = {{kMtime, 0}, {kMtime, 0}};
  uint64_t counter = 0;
  for (auto _ : state) {
    std::string names[kBatch];
    for (std::string& name : names) {
      name = std::to_string(++counter) + ".bench";
      const std::string tmp = root + "/tmp/" + name;
      int fd = ::open(tmp.c_str(), O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0600);
      if (fd < 0 || ::write(fd, text.data(), text.size()) != static_cast<ssize_t>(text.size()) ||
          ::close(fd) != 0 || ::utimensat(AT_FDCWD, tmp.c_str(), times, 0) != 0) {
        return state.SkipWithError("file system call failed");
      }
    }
    int dir_fd = ::open(root.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    ::syncfs(dir_fd);
    for (const std::string& name : names) {
      if (::rename((root + "/tmp/" + name).c_str(), (root + "/cur/" + name + ":2,S").c_str()) !=
          0) {
        return state.SkipWithError("rename failed");
      }
    }
    int cur_fd = ::open((root + "/cur").c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    ::fsync(cur_fd);
    ::close(cur_fd);
    ::close(dir_fd);
  }
  state.SetItemsProcessed(state.iterations() * kBatch);
  state.SetBytesProcessed(state.iterations() * kBatch * static_cast<int64_t>(size));
}
BENCHMARK(BM_BareCreateWriteRename)->Arg(4096)->Arg(65536)->Iterations(100)->UseRealTime();

void BM_ScanAndCompare100k(benchmark::State& state) {
  constexpr uint32_t kFiles = 100000;
  TempDir dir;
  Result<std::unique_ptr<MaildirFolder>> folder = MaildirFolder::Open(dir.path() + "/m", true);
  if (!folder.ok()) return state.SkipWithError(folder.error().message.c_str());
  std::vector<mailmirror::store::MessageRecord> records;
  records.reserve(kFiles);
  for (uint32_t uid = 1; uid <= kFiles; ++uid) {
    mailmirror::store::MessageRecord record;
    record.uid = uid;
    record.stem = "1700000000.M" + std::to_string(uid) + "P4242Q" + std::to_string(uid) + ".host";
    record.flags = kFlagSeen;
    record.in_cur = true;
    const std::string path =
        (*folder)->path() + "/cur/" + record.stem + ",U=" + std::to_string(uid) + ":2,S";
    int fd = ::open(path.c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
    if (fd < 0 || ::close(fd) != 0) return state.SkipWithError("cannot create the files");
    records.push_back(std::move(record));
  }
  size_t matched = 0;
  for (auto _ : state) {
    Result<mailmirror::sync::LocalFolderState> scanned =
        mailmirror::sync::ScanLocalFolder(**folder, records);
    if (!scanned.ok()) return state.SkipWithError(scanned.error().message.c_str());
    matched = scanned->known.size() - scanned->unknown.size();
    benchmark::DoNotOptimize(scanned->known.data());
  }
  state.SetItemsProcessed(state.iterations() * kFiles);
  state.counters["matched"] = static_cast<double>(matched);
}
BENCHMARK(BM_ScanAndCompare100k)->Unit(benchmark::kMillisecond)->Iterations(5)->UseRealTime();

}  // namespace
