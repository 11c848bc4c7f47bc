// The sync planner's set arithmetic at the scale of a 1,000,000-message
// folder: which UIDs to fetch (UIDNEXT range minus what the index holds),
// reading a server's UID set (UID SEARCH / VANISHED answers), finding the
// known UIDs that set no longer holds (expunges), and the two-way merge.
#include <benchmark/benchmark.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "imap/sequence_set.h"
#include "store/maildir.h"
#include "sync/merge_plan.h"

namespace {

using mailmirror::imap::FormatSetExcluding;
using mailmirror::imap::ParseSequenceSet;
using mailmirror::imap::UidRanges;

constexpr uint32_t kUids = 1000000;

// Known UIDs 1..1,000,000 with every 97th missing (never downloaded).
std::vector<uint32_t> KnownWithGaps() {
  std::vector<uint32_t> known;
  known.reserve(kUids);
  for (uint32_t uid = 1; uid <= kUids; ++uid) {
    if (uid % 97 != 0) known.push_back(uid);
  }
  return known;
}

// The server's UID set after 1 in 50 messages were expunged, as text.
std::string ServerSet() {
  std::string text;
  uint32_t start = 1;
  for (uint32_t uid = 50; uid <= kUids; uid += 50) {
    if (!text.empty()) text += ',';
    text += std::to_string(start) + ':' + std::to_string(uid - 1);
    start = uid + 1;
  }
  return text;
}

void BM_FetchSetFor1M(benchmark::State& state) {
  const std::vector<uint32_t> known = KnownWithGaps();
  size_t size = 0;
  for (auto _ : state) {  // NOLINT(clang-analyzer-deadcode.DeadStores): the idiom
    std::string set = FormatSetExcluding(1, kUids + 100, known);
    size = set.size();
    benchmark::DoNotOptimize(set.data());
  }
  state.SetItemsProcessed(state.iterations() * kUids);
  state.counters["set_bytes"] = static_cast<double>(size);
}
BENCHMARK(BM_FetchSetFor1M)->Unit(benchmark::kMillisecond);

void BM_ParseServerSet1M(benchmark::State& state) {
  const std::string text = ServerSet();
  for (auto _ : state) {  // NOLINT(clang-analyzer-deadcode.DeadStores): the idiom
    std::optional<UidRanges> ranges = ParseSequenceSet(text);
    if (!ranges) {
      state.SkipWithError("parse failed");
      return;
    }
    benchmark::DoNotOptimize(ranges->data());
  }
  state.SetBytesProcessed(static_cast<int64_t>(text.size()) * state.iterations());
}
BENCHMARK(BM_ParseServerSet1M)->Unit(benchmark::kMillisecond);

// The walk FolderPull does on the CONDSTORE path: every known UID against
// the server's ranges, collecting the ones that are gone.
void BM_ExpungedAmong1M(benchmark::State& state) {
  const std::vector<uint32_t> known = KnownWithGaps();
  const UidRanges existing = *ParseSequenceSet(ServerSet());
  size_t gone_count = 0;
  for (auto _ : state) {  // NOLINT(clang-analyzer-deadcode.DeadStores): the idiom
    std::vector<uint32_t> gone;
    size_t next = 0;
    for (uint32_t uid : known) {
      while (next < existing.size() && existing[next].second < uid) ++next;
      if (next == existing.size() || existing[next].first > uid) gone.push_back(uid);
    }
    gone_count = gone.size();
    benchmark::DoNotOptimize(gone.data());
  }
  state.SetItemsProcessed(state.iterations() * known.size());
  state.counters["gone"] = static_cast<double>(gone_count);
}
BENCHMARK(BM_ExpungedAmong1M)->Unit(benchmark::kMillisecond);

// The two-way merge of a 1,000,000-message folder where 1% changed flags on
// each side and 0.1% were deleted on each side.
void BM_MergePlan1M(benchmark::State& state) {
  using mailmirror::sync::KnownMessage;
  std::vector<KnownMessage> messages(kUids);
  for (uint32_t i = 0; i < kUids; ++i) {
    KnownMessage& m = messages[i];
    m.uid = i + 1;
    m.base_flags = mailmirror::store::kFlagSeen;
    m.local.flags = m.remote.flags = m.base_flags;
    if (i % 100 == 3) m.local.flags |= mailmirror::store::kFlagFlagged;
    if (i % 100 == 51) m.remote.flags = 0;
    if (i % 1000 == 7) m.local.present = false;
    if (i % 1000 == 507) m.remote.present = false;
  }
  size_t actions = 0;
  for (auto _ : state) {  // NOLINT(clang-analyzer-deadcode.DeadStores): the idiom
    mailmirror::sync::FolderPlan plan = mailmirror::sync::PlanFolder(messages, {});
    actions = plan.local_flags.size() + plan.remote_flags.size() + plan.remote_expunge.size() +
              plan.local_delete.size();
    benchmark::DoNotOptimize(plan.new_base.data());
  }
  state.SetItemsProcessed(state.iterations() * kUids);
  state.counters["actions"] = static_cast<double>(actions);
}
BENCHMARK(BM_MergePlan1M)->Unit(benchmark::kMillisecond);

}  // namespace
