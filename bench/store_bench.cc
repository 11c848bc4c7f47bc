// Cost of the per-account index on the operations a sync leans on: durable
// commits of 500 downloaded messages (one fsync'ed LMDB transaction each),
// listing a 100,000-message folder (the base of every merge), point
// lookups by UID, and on a 1,000,000-message folder the two reads of an
// incremental resync: the UID list (keys only) and the records of 1,000
// changed messages. The index lives in a fresh directory under $TMPDIR, so
// commit figures include that file system's fsync.
#include <benchmark/benchmark.h>

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <system_error>
#include <vector>

#include "store/index.h"

namespace {

namespace fs = std::filesystem;
using mailmirror::Result;
using mailmirror::Status;
using mailmirror::store::FolderRecord;
using mailmirror::store::Index;
using mailmirror::store::MessageRecord;

constexpr uint32_t kBatchSize = 500;
constexpr uint32_t kBigFolderSize = 100000;

// A temporary directory holding one index, removed when done.
class TempIndex {
 public:
  TempIndex() {
    std::string pattern = (fs::temp_directory_path() / "store_bench.XXXXXX").string();
    if (mkdtemp(pattern.data()) == nullptr) return;
    dir_ = pattern;
    Result<std::unique_ptr<Index>> opened = Index::Open(dir_ + "/index");
    if (opened.ok()) index_ = std::move(opened.value());
  }
  TempIndex(const TempIndex&) = delete;
  TempIndex& operator=(const TempIndex&) = delete;
  ~TempIndex() {
    index_.reset();
    std::error_code ignored;
    if (!dir_.empty()) fs::remove_all(dir_, ignored);
  }

  Index* get() const { return index_.get(); }

 private:
  std::string dir_;
  std::unique_ptr<Index> index_;
};

// What a downloaded message looks like in the index.
MessageRecord MakeMessage(uint32_t uid) {
  MessageRecord m;
  m.uid = uid;
  m.stem = "1764079200.M" + std::to_string(100000 + uid) + "P4242Q" + std::to_string(uid) +
           ".mail.example.org";
  m.in_cur = uid % 3 != 0;
  m.flags = uid % 5 == 0 ? 0x12 : 0x10;
  if (uid % 10 == 0) m.keywords = {"$Label1", "work"};
  m.size = 4000 + uid % 50000;
  m.remote_size = m.size + 80;
  m.internaldate = 1700000000 + uid;
  m.digest = 0x9E3779B97F4A7C15ULL * uid;
  return m;
}

uint32_t AddFolder(Index* index, const std::string& name) {
  Result<uint32_t> id = index->AllocateFolderId();
  if (!id.ok()) return 0;
  Index::Batch batch;
  batch.PutFolder(FolderRecord{*id, name, name, 1, 1, 0, std::nullopt, false});
  return index->Commit(batch).ok() ? *id : 0;
}

// One index with a folder of `size` messages, built once for the read
// benchmarks.
struct BigFolder {
  explicit BigFolder(uint32_t size = kBigFolderSize) {
    if (index.get() == nullptr) return;
    folder_id = AddFolder(index.get(), "INBOX");
    Index::Batch batch;
    for (uint32_t uid = 1; uid <= size; ++uid) {
      batch.PutMessage(folder_id, MakeMessage(uid));
      if (uid % 10000 == 0 && !index.get()->Commit(batch).ok()) {
        folder_id = 0;
        return;
      }
    }
  }
  TempIndex index;
  uint32_t folder_id = 0;
};

BigFolder& SharedBigFolder() {
  static BigFolder big;
  return big;
}

void BM_CommitPutMessages(benchmark::State& state) {
  TempIndex index;
  if (index.get() == nullptr) {
    state.SkipWithError("cannot open the index");
    return;
  }
  uint32_t folder_id = AddFolder(index.get(), "INBOX");
  uint32_t uid = 0;
  for (auto _ : state) {  // NOLINT(clang-analyzer-deadcode.DeadStores): the idiom
    state.PauseTiming();
    Index::Batch batch;
    for (uint32_t i = 0; i < kBatchSize; ++i) batch.PutMessage(folder_id, MakeMessage(++uid));
    state.ResumeTiming();
    Status status = index.get()->Commit(batch);
    if (!status.ok()) {
      state.SkipWithError(status.error().message.c_str());
      return;
    }
  }
  state.SetItemsProcessed(state.iterations() * kBatchSize);
}
BENCHMARK(BM_CommitPutMessages)->Unit(benchmark::kMillisecond)->UseRealTime();

void BM_ListMessages100k(benchmark::State& state) {
  BigFolder& big = SharedBigFolder();
  if (big.folder_id == 0) {
    state.SkipWithError("cannot build the folder");
    return;
  }
  for (auto _ : state) {  // NOLINT(clang-analyzer-deadcode.DeadStores): the idiom
    Result<std::vector<MessageRecord>> messages = big.index.get()->ListMessages(big.folder_id);
    if (!messages.ok() || messages->size() != kBigFolderSize) {
      state.SkipWithError("wrong listing");
      return;
    }
    benchmark::DoNotOptimize(messages->back().digest);
  }
  state.SetItemsProcessed(state.iterations() * kBigFolderSize);
}
BENCHMARK(BM_ListMessages100k)->Unit(benchmark::kMillisecond);

void BM_GetMessage(benchmark::State& state) {
  BigFolder& big = SharedBigFolder();
  if (big.folder_id == 0) {
    state.SkipWithError("cannot build the folder");
    return;
  }
  std::mt19937 random(42);
  std::uniform_int_distribution<uint32_t> uids(1, kBigFolderSize);
  for (auto _ : state) {  // NOLINT(clang-analyzer-deadcode.DeadStores): the idiom
    Result<std::optional<MessageRecord>> message =
        big.index.get()->GetMessage(big.folder_id, uids(random));
    if (!message.ok() || !message->has_value()) {
      state.SkipWithError("lookup failed");
      return;
    }
    benchmark::DoNotOptimize((*message)->digest);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_GetMessage);

constexpr uint32_t kHugeFolderSize = 1000000;

BigFolder& SharedHugeFolder() {
  static BigFolder* huge = [] {
    auto* folder = new BigFolder(kHugeFolderSize);
    return folder;
  }();
  return *huge;
}

void BM_ListUids1M(benchmark::State& state) {
  BigFolder& huge = SharedHugeFolder();
  if (huge.folder_id == 0) {
    state.SkipWithError("cannot build the folder");
    return;
  }
  for (auto _ : state) {  // NOLINT(clang-analyzer-deadcode.DeadStores): the idiom
    Result<std::vector<uint32_t>> uids = huge.index.get()->ListUids(huge.folder_id);
    if (!uids.ok() || uids->size() != kHugeFolderSize) {
      state.SkipWithError("wrong listing");
      return;
    }
    benchmark::DoNotOptimize(uids->back());
  }
  state.SetItemsProcessed(state.iterations() * kHugeFolderSize);
}
BENCHMARK(BM_ListUids1M)->Unit(benchmark::kMillisecond);

void BM_GetMessages1kOf1M(benchmark::State& state) {
  BigFolder& huge = SharedHugeFolder();
  if (huge.folder_id == 0) {
    state.SkipWithError("cannot build the folder");
    return;
  }
  std::mt19937 random(7);
  std::uniform_int_distribution<uint32_t> pick(1, kHugeFolderSize);
  std::vector<uint32_t> changed(1000);
  for (uint32_t& uid : changed) uid = pick(random);
  for (auto _ : state) {  // NOLINT(clang-analyzer-deadcode.DeadStores): the idiom
    Result<std::vector<MessageRecord>> records =
        huge.index.get()->GetMessages(huge.folder_id, changed);
    if (!records.ok() || records->size() != changed.size()) {
      state.SkipWithError("lookup failed");
      return;
    }
    benchmark::DoNotOptimize(records->back().digest);
  }
  state.SetItemsProcessed(state.iterations() * changed.size());
}
BENCHMARK(BM_GetMessages1kOf1M)->Unit(benchmark::kMicrosecond);

}  // namespace
