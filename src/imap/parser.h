// Incremental, zero-copy IMAP response parser.
//
// The parser never touches a socket: the owner feeds it bytes as they arrive,
// in chunks of any size and split anywhere, and it calls back for every
// complete response. Framing finds line ends and literal markers with memchr;
// tokens are string_views into the parser's line buffer (escapes in quoted
// strings are removed in place), so steady-state parsing allocates nothing.
//
// Large literals that carry message data (BODY[...] / BINARY[...] in FETCH)
// are not buffered: once their size exceeds ParserLimits::inline_literal_max
// they are handed to a LiteralSink in chunks as they arrive, and the FETCH
// response that follows marks that section as streamed. All other literals
// (mailbox names, small bodies) are kept inline, within max_line.
//
// Threading: a parser belongs to one connection on one thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "imap/response.h"
#include "imap/tokenizer.h"
#include "mailmirror/status.h"

namespace mailmirror::imap {

struct ParserLimits {
  // Longest response line, counting inline literals, before the response is
  // rejected as a protocol error. Bounds the parser's memory.
  size_t max_line = 1 << 20;
  // Largest literal accepted at all (streamed or not).
  uint64_t max_literal = uint64_t{2} << 30;
  // Body literals above this size go to the LiteralSink instead of memory.
  size_t inline_literal_max = 0;
  // Deepest parenthesis nesting accepted.
  int max_depth = 64;
};

// Receives streamed body literals. OnLiteralBegin is called once when the
// literal's size is known, OnLiteralData zero or more times with consecutive
// chunks, OnLiteralEnd once after the last byte. `chunk` views are valid only
// during the call. The FETCH response carrying the literal (with its UID,
// which may come after the body) is delivered after OnLiteralEnd.
//
// A sink returns an error Status to abort the connection's parse; the parser
// then reports that error from Feed.
class LiteralSink {
 public:
  virtual ~LiteralSink() = default;
  // seq: the FETCH message sequence number; section: text in brackets.
  virtual Status OnLiteralBegin(uint32_t seq, std::string_view section, uint64_t size) = 0;
  virtual Status OnLiteralData(std::string_view chunk) = 0;
  virtual Status OnLiteralEnd() = 0;
};

// Receives complete responses. The Response and every view in it are valid
// only during the call. Returning an error Status stops Feed, which returns
// that error.
class ResponseHandler {
 public:
  virtual ~ResponseHandler() = default;
  virtual Status OnResponse(const Response& response) = 0;
};

class ResponseParser {
 public:
  // handler must outlive the parser; sink may be null (then every literal is
  // kept inline and limited by max_line).
  ResponseParser(ResponseHandler* handler, LiteralSink* sink, ParserLimits limits = {});

  // Consumes all of `data`, calling the handler for each response completed
  // by it. Returns an error of kind kProtocol for malformed or over-limit
  // input, or the error a handler or sink returned; after an error the parser
  // is unusable (the connection must be closed), and further Feed calls
  // return the same error. Not reentrant: callbacks must not call Feed.
  Status Feed(std::string_view data);
  // As above, but stops early when a callback asked for Pause: *consumed
  // tells how much of `data` was parsed (all of it unless paused).
  Status Feed(std::string_view data, size_t* consumed);

  // Called from inside a handler callback: Feed returns once the callback
  // does, leaving the rest of its input unparsed for the caller (after
  // COMPRESS DEFLATE's "OK", the rest of the read is compressed).
  void Pause() { pause_requested_ = true; }

  // Drops any partially received response: used after STARTTLS, when bytes
  // buffered from the plaintext phase must never be interpreted. Also clears
  // a sticky error, so the parser can serve a new connection. A literal being
  // streamed is abandoned without OnLiteralEnd.
  //
  // Called from inside a handler or sink callback, Reset takes effect when
  // the callback returns, and Feed then discards the rest of its input: the
  // bytes after a STARTTLS "OK" in the same read are never parsed.
  void Reset();

  // True when no partial response is buffered.
  bool idle() const;

  // Takes effect from the next literal header; one being streamed keeps
  // going to the sink that received its OnLiteralBegin.
  void set_sink(LiteralSink* sink) { sink_ = sink; }

 private:
  enum class State {
    kLine,             // reading a line segment up to LF
    kInlineLiteral,    // copying literal octets into line_
    kStreamedLiteral,  // passing literal octets to stream_sink_
  };

  // Each consumes a prefix of `data`, sets *used to its length, and returns
  // an error to stop Feed.
  Status ConsumeLine(std::string_view data, size_t* used);
  // A whole flag-only FETCH line found in the caller's buffer, dispatched
  // without a copy; false (nothing done) for anything else.
  bool TryFlagFetch(std::string_view line, Status* status);
  Status ConsumeInlineLiteral(std::string_view data, size_t* used);
  Status ConsumeStreamedLiteral(std::string_view data, size_t* used);
  // A segment ended with LF (now in line_): start a literal or finish the
  // response.
  Status EndSegment();
  // Examines the first segment: which responses may carry literals, and the
  // sequence number of a FETCH.
  void ClassifyFirstSegment();
  Status StartLiteral(size_t marker_pos, uint64_t size);
  // Parses line_ and calls the handler.
  Status Dispatch();
  // Runs a handler or sink callback, noting a Reset() requested inside it.
  template <typename Callback>
  Status RunCallback(Callback callback);
  void ClearResponseState();
  void ResetAll();
  Error TooLongError(std::string_view tail) const;

  ResponseHandler* handler_;
  LiteralSink* sink_;
  ParserLimits limits_;
  std::string line_;  // current response: line segments and inline literals

  State state_ = State::kLine;
  size_t segment_start_ = 0;               // where the current line segment starts in line_
  uint64_t literal_left_ = 0;              // octets of the current literal still to come
  bool classified_ = false;                // first segment examined
  bool literals_allowed_ = true;           // false for status and continuation lines
  std::optional<uint32_t> fetch_seq_;      // set for "* n FETCH (" responses
  LiteralSink* stream_sink_ = nullptr;     // receives the literal being streamed
  std::vector<StreamedLiteral> streamed_;  // streamed literals of line_

  Response response_;  // reused between responses to keep vector capacity
  std::vector<std::string_view> spare_code_items_;

  std::optional<Error> error_;  // sticky
  bool in_callback_ = false;
  bool reset_requested_ = false;
  bool pause_requested_ = false;
};

}  // namespace mailmirror::imap
