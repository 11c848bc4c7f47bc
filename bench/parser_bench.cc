// Throughput of imap::ResponseParser on the responses that dominate a sync:
// flag-only FETCH lines (flag resync of a large mailbox), FETCH with large
// body literals streamed to a sink, and LIST output. Input is fed in 16 KiB
// chunks, about what one TLS read delivers.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

#include "imap/parser.h"

namespace {

using mailmirror::Status;
using mailmirror::imap::LiteralSink;
using mailmirror::imap::Response;
using mailmirror::imap::ResponseHandler;
using mailmirror::imap::ResponseParser;
using mailmirror::imap::ResponseType;

constexpr size_t kChunk = 16 * 1024;

// Touches what a session would read, so the work is not optimized away.
class CountingHandler : public ResponseHandler {
 public:
  Status OnResponse(const Response& response) override {
    ++responses;
    if (response.type == ResponseType::kFetch && response.fetch.uid) uid_sum += *response.fetch.uid;
    if (response.type == ResponseType::kList) uid_sum += response.list.mailbox.size();
    return Status::Ok();
  }
  uint64_t responses = 0;
  uint64_t uid_sum = 0;
};

class NullSink : public LiteralSink {
 public:
  Status OnLiteralBegin(uint32_t, std::string_view, uint64_t) override { return Status::Ok(); }
  Status OnLiteralData(std::string_view chunk) override {
    bytes += chunk.size();
    return Status::Ok();
  }
  Status OnLiteralEnd() override { return Status::Ok(); }
  uint64_t bytes = 0;
};

void FeedAll(benchmark::State& state, const std::string& input, size_t expected_responses,
             bool with_sink) {
  CountingHandler handler;
  NullSink sink;
  ResponseParser parser(&handler, with_sink ? &sink : nullptr);
  for (auto _ : state) {
    std::string_view rest = input;
    while (!rest.empty()) {
      size_t n = std::min(kChunk, rest.size());
      Status status = parser.Feed(rest.substr(0, n));
      if (!status.ok()) {
        state.SkipWithError(status.error().message.c_str());
        return;
      }
      rest.remove_prefix(n);
    }
  }
  benchmark::DoNotOptimize(handler.uid_sum);
  if (handler.responses != expected_responses * state.iterations()) {
    state.SkipWithError("wrong number of responses");
  }
  state.SetBytesProcessed(static_cast<int64_t>(input.size()) * state.iterations());
  state.SetItemsProcessed(static_cast<int64_t>(expected_responses) * state.iterations());
}

// "* n FETCH (UID n FLAGS (\Seen) MODSEQ (n))" x 10,000.
std::string FlagLines() {
  std::string input;
  for (int i = 1; i <= 10000; ++i) {
    std::string n = std::to_string(i);
    input += "* " + n + " FETCH (UID " + n + " FLAGS (\\Seen) MODSEQ (" + n + "))\r\n";
  }
  return input;
}

void BM_FetchFlagLines(benchmark::State& state) { FeedAll(state, FlagLines(), 10000, true); }
BENCHMARK(BM_FetchFlagLines);

// FETCH with 50 KB body literals, streamed to a null sink.
std::string BodyStream() {
  std::string body;
  while (body.size() < 50 * 1024) body += "Lorem ipsum dolor sit amet, consectetur adipiscing.\r\n";
  body.resize(50 * 1024);
  std::string input;
  for (int i = 1; i <= 100; ++i) {
    std::string n = std::to_string(i);
    input += "* " + n + " FETCH (UID " + n + " FLAGS (\\Seen) RFC822.SIZE 51200 BODY[] {" +
             std::to_string(body.size()) + "}\r\n" + body + ")\r\n";
  }
  return input;
}

void BM_FetchStreamedBodies(benchmark::State& state) { FeedAll(state, BodyStream(), 100, true); }
BENCHMARK(BM_FetchStreamedBodies);

// The baseline for both: copying the same buffers in the same 16 KiB chunks
// (what a parser that only moved the bytes would cost). Reported bandwidth
// of a parse benchmark divided by this one's is the "fraction of memcpy".
void CopyAll(benchmark::State& state, const std::string& input) {
  std::string out(kChunk, '\0');
  for (auto _ : state) {
    for (size_t at = 0; at < input.size(); at += kChunk) {
      size_t n = std::min(kChunk, input.size() - at);
      std::memcpy(out.data(), input.data() + at, n);
      benchmark::ClobberMemory();
    }
  }
  benchmark::DoNotOptimize(out.data());
  state.SetBytesProcessed(static_cast<int64_t>(input.size()) * state.iterations());
}

void BM_MemcpyFlagLines(benchmark::State& state) { CopyAll(state, FlagLines()); }
BENCHMARK(BM_MemcpyFlagLines);

void BM_MemcpyBodyStream(benchmark::State& state) { CopyAll(state, BodyStream()); }
BENCHMARK(BM_MemcpyBodyStream);

// The same bodies kept inline (no sink): the cost of copying them.
void BM_FetchInlineBodies(benchmark::State& state) {
  std::string body(50 * 1024, 'x');
  std::string input;
  for (int i = 1; i <= 100; ++i) {
    input += "* " + std::to_string(i) + " FETCH (UID 1 BODY[] {51200}\r\n" + body + ")\r\n";
  }
  FeedAll(state, input, 100, false);
}
BENCHMARK(BM_FetchInlineBodies);

// LIST output of a large account: quoted names, some with escapes, some
// as literals.
void BM_ListResponses(benchmark::State& state) {
  std::string input;
  for (int i = 0; i < 2000; ++i) {
    std::string n = std::to_string(i);
    switch (i % 4) {
      case 0:
        input += "* LIST (\\HasNoChildren) \"/\" \"Projects/Client " + n + "/Archive\"\r\n";
        break;
      case 1:
        input += "* LIST (\\HasChildren \\Subscribed) \"/\" INBOX/Folder" + n + "\r\n";
        break;
      case 2:
        input += "* LIST (\\HasNoChildren) \"/\" \"Quote \\\"" + n + "\\\" here\"\r\n";
        break;
      default: {
        std::string name = "Literal \"" + n + "\" name";
        input += "* LIST (\\HasNoChildren \\Marked) \"/\" {" + std::to_string(name.size()) +
                 "}\r\n" + name + "\r\n";
      }
    }
  }
  FeedAll(state, input, 2000, true);
}
BENCHMARK(BM_ListResponses);

}  // namespace
