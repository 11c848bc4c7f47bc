// libFuzzer target: the IMAP response parser on arbitrary server bytes, fed
// in pieces whose sizes the input chooses (first byte), with a streaming
// sink for body literals and the limits production uses, tightened so that
// the fuzzer reaches them. Nothing may crash, leak or grow without bound;
// every error must be a Status.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "imap/parser.h"

namespace {

using mailmirror::Status;
using mailmirror::imap::LiteralSink;
using mailmirror::imap::ParserLimits;
using mailmirror::imap::Response;
using mailmirror::imap::ResponseHandler;
using mailmirror::imap::ResponseParser;

class CountingHandler : public ResponseHandler {
 public:
  Status OnResponse(const Response& /*response*/) override {
    ++responses;
    return Status::Ok();
  }
  size_t responses = 0;
};

class CountingSink : public LiteralSink {
 public:
  Status OnLiteralBegin(uint32_t /*seq*/, std::string_view /*section*/,
                        uint64_t /*size*/) override {
    return Status::Ok();
  }
  Status OnLiteralData(std::string_view chunk) override {
    bytes += chunk.size();
    return Status::Ok();
  }
  Status OnLiteralEnd() override { return Status::Ok(); }
  uint64_t bytes = 0;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const size_t piece = 1 + data[0] % 64;  // 1..64 bytes per Feed
  std::string_view input(reinterpret_cast<const char*>(data) + 1, size - 1);
  CountingHandler handler;
  CountingSink sink;
  ParserLimits limits;
  limits.max_line = 4096;
  limits.max_literal = 1 << 20;
  limits.inline_literal_max = 256;
  limits.max_depth = 16;
  ResponseParser parser(&handler, &sink, limits);
  while (!input.empty()) {
    std::string_view chunk = input.substr(0, piece);
    input.remove_prefix(chunk.size());
    if (!parser.Feed(chunk).ok()) break;
  }
  return 0;
}
