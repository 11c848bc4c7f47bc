// Framing: the parser collects one response at a time in line_. A response is
// a sequence of line segments, each ended by CRLF; a segment that ends with a
// literal header "{n}" or "~{n}" is followed by exactly n octets, which are
// copied (or streamed) without being looked at, and then by another segment.
// The first segment not ending in a literal header ends the response, and
// only then does the tokenizer run (response_reader.cc).
#include "imap/parser.h"

#include <algorithm>
#include <cstring>
#include <string>
#include <utility>

#include "imap/response_reader.h"

namespace mailmirror::imap {
namespace {

constexpr size_t kExcerptMax = 80;

// Printable ASCII only, so that a hostile server cannot put control
// sequences into our logs or terminal.
std::string Sanitize(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) out += (c >= 0x20 && c < 0x7f) ? c : '.';
  return out;
}

// A short excerpt of `line` around `pos`, quoted, for error messages.
std::string Excerpt(std::string_view line, size_t pos) {
  size_t begin = pos > kExcerptMax / 2 ? pos - kExcerptMax / 2 : 0;
  begin = std::min(begin, line.size());
  size_t length = std::min(kExcerptMax, line.size() - begin);
  std::string out = "\"";
  if (begin > 0) out += "...";
  out += Sanitize(line.substr(begin, length));
  if (begin + length < line.size()) out += "...";
  out += '"';
  return out;
}

Error ProtocolError(std::string message) {
  return MakeError(ErrorKind::kProtocol, std::move(message));
}

bool IsDigit(char c) { return c >= '0' && c <= '9'; }

bool IsConditionWord(std::string_view word) {
  return EqualsUpper(word, "OK") || EqualsUpper(word, "NO") || EqualsUpper(word, "BAD") ||
         EqualsUpper(word, "PREAUTH") || EqualsUpper(word, "BYE");
}

// Decides from the text before a literal header whether the literal is a
// message body: the FETCH item right before it is BODY[...]<n>, BINARY[...]
// or one of the rev1 RFC822 items. Sets *section to the bracketed text (or
// its BODY[] equivalent for RFC822 items). `head` is the current segment up
// to the literal header.
bool FindBodyItem(std::string_view head, std::string_view* section) {
  size_t end = head.size();
  while (end > 0 && head[end - 1] == ' ') --end;
  if (end == head.size() || end == 0) return false;  // no space before the literal
  head = head.substr(0, end);
  if (head.back() == '>') {  // <origin> of a partial fetch
    size_t lt = head.rfind('<');
    if (lt == std::string_view::npos || lt + 2 > head.size() - 1) return false;
    for (size_t i = lt + 1; i + 1 < head.size(); ++i) {
      if (!IsDigit(head[i])) return false;
    }
    head = head.substr(0, lt);
  }
  auto name_ending_at = [&](size_t stop) {
    size_t start = stop;
    while (start > 0 && head[start - 1] != ' ' && head[start - 1] != '(') --start;
    return head.substr(start, stop - start);
  };
  if (!head.empty() && head.back() == ']') {
    size_t open = head.rfind('[');
    if (open == std::string_view::npos) return false;
    std::string_view name = name_ending_at(open);
    if (!EqualsUpper(name, "BODY") && !EqualsUpper(name, "BINARY")) return false;
    *section = head.substr(open + 1, head.size() - open - 2);
    return true;
  }
  std::string_view name = name_ending_at(head.size());
  if (EqualsUpper(name, "RFC822")) {
    *section = "";
  } else if (EqualsUpper(name, "RFC822.HEADER")) {
    *section = "HEADER";
  } else if (EqualsUpper(name, "RFC822.TEXT")) {
    *section = "TEXT";
  } else {
    return false;
  }
  return true;
}

// --- The flag-only FETCH fast path.
//
// "* 12 FETCH (UID 40 FLAGS (\Seen $Forwarded) MODSEQ (90))" is nearly all a
// full flag scan or CONDSTORE resync receives, one line per message. This
// reads exactly that shape, as servers send it (upper-case names, single
// spaces, items UID, FLAGS and MODSEQ each at most once, numbers without
// leading zeros), straight from the input, with no tokenizer. Anything else
// returns false and goes the general way, which accepts the whole grammar;
// the tests check that both agree.

bool IsFlagChar(unsigned char c) {
  // ATOM-CHAR of RFC 3501 minus nothing: no atom-specials, no CTL, ASCII.
  return c > 0x20 && c < 0x7f && c != '(' && c != ')' && c != '{' && c != '%' && c != '*' &&
         c != '"' && c != '\\' && c != ']';
}

// A decimal without leading zeros, at most `max`, at *p.
bool TakeNumber(const char*& p, const char* end, uint64_t max, uint64_t* out) {
  if (p == end || *p < '1' || *p > '9') return false;
  uint64_t value = 0;
  do {
    uint64_t digit = static_cast<uint64_t>(*p - '0');
    if (value > (max - digit) / 10) return false;
    value = value * 10 + digit;
    ++p;
  } while (p != end && IsDigit(*p));
  *out = value;
  return true;
}

bool TakeWord(const char*& p, const char* end, std::string_view word) {
  if (static_cast<size_t>(end - p) < word.size() || std::memcmp(p, word.data(), word.size()) != 0) {
    return false;
  }
  p += word.size();
  return true;
}

// `line` without its CRLF. Fills `fetch` (cleared by the caller) and the
// message number.
bool ParseFlagFetch(std::string_view line, FetchData* fetch) {
  const char* p = line.data();
  const char* end = p + line.size();
  uint64_t number = 0;
  if (!TakeWord(p, end, "* ") || !TakeNumber(p, end, UINT32_MAX, &number) ||
      !TakeWord(p, end, " FETCH (")) {
    return false;
  }
  fetch->seq = static_cast<uint32_t>(number);
  bool any = false;
  for (;;) {
    if (p == end) return false;
    if (*p == 'U' && TakeWord(p, end, "UID ")) {
      if (fetch->uid || !TakeNumber(p, end, UINT32_MAX, &number)) return false;
      fetch->uid = static_cast<uint32_t>(number);
    } else if (*p == 'F' && TakeWord(p, end, "FLAGS (")) {
      if (fetch->has_flags) return false;
      fetch->has_flags = true;
      while (p != end && *p != ')') {
        const char* start = p;
        if (*p == '\\') ++p;
        const char* name = p;
        while (p != end && IsFlagChar(static_cast<unsigned char>(*p))) ++p;
        if (p == name) return false;
        fetch->flags.emplace_back(start, static_cast<size_t>(p - start));
        if (p != end && *p == ' ' && p + 1 != end && p[1] != ')') ++p;
      }
      if (p == end) return false;
      ++p;  // ')'
    } else if (*p == 'M' && TakeWord(p, end, "MODSEQ (")) {
      if (fetch->modseq || !TakeNumber(p, end, UINT64_MAX, &number) || p == end || *p != ')') {
        return false;
      }
      fetch->modseq = number;
      ++p;
    } else {
      return false;
    }
    any = true;
    if (p == end) return false;
    if (*p == ')') return any && p + 1 == end;
    if (*p != ' ') return false;
    ++p;
  }
}

}  // namespace

ResponseParser::ResponseParser(ResponseHandler* handler, LiteralSink* sink, ParserLimits limits)
    : handler_(handler), sink_(sink), limits_(limits) {}

bool ResponseParser::idle() const { return state_ == State::kLine && line_.empty(); }

void ResponseParser::Reset() {
  if (in_callback_) {
    // line_ still backs the Response the handler is looking at.
    reset_requested_ = true;
    return;
  }
  ResetAll();
}

void ResponseParser::ResetAll() {
  ClearResponseState();
  state_ = State::kLine;
  literal_left_ = 0;
  stream_sink_ = nullptr;
  error_.reset();
  reset_requested_ = false;
  pause_requested_ = false;
}

void ResponseParser::ClearResponseState() {
  line_.clear();  // keeps capacity
  segment_start_ = 0;
  classified_ = false;
  literals_allowed_ = true;
  fetch_seq_.reset();
  streamed_.clear();
}

template <typename Callback>
Status ResponseParser::RunCallback(Callback callback) {
  in_callback_ = true;
  Status status = callback();
  in_callback_ = false;
  return status;
}

Status ResponseParser::Feed(std::string_view data) {
  size_t consumed = 0;
  return Feed(data, &consumed);
}

Status ResponseParser::Feed(std::string_view data, size_t* consumed) {
  *consumed = 0;
  if (error_) return *error_;
  const size_t total = data.size();
  while (!data.empty()) {
    size_t used = 0;
    Status status;
    switch (state_) {
      case State::kLine:
        status = ConsumeLine(data, &used);
        break;
      case State::kInlineLiteral:
        status = ConsumeInlineLiteral(data, &used);
        break;
      case State::kStreamedLiteral:
        status = ConsumeStreamedLiteral(data, &used);
        break;
    }
    if (!status.ok()) {
      reset_requested_ = false;
      error_ = status.error();
      return status;
    }
    if (reset_requested_) {
      // A callback asked for Reset (e.g. after STARTTLS's OK): whatever
      // follows in this input predates the reset and must not be parsed.
      ResetAll();
      return Status::Ok();
    }
    data.remove_prefix(used);
    if (pause_requested_) {
      pause_requested_ = false;
      break;
    }
  }
  *consumed = total - data.size();
  return Status::Ok();
}

Error ResponseParser::TooLongError(std::string_view tail) const {
  // Excerpt from the start of the line; at most max_line bytes so the text
  // does not depend on how the input was split.
  size_t keep = std::min(kExcerptMax, limits_.max_line);
  std::string start = line_.substr(0, keep);
  if (start.size() < keep) start.append(tail.substr(0, keep - start.size()));
  return ProtocolError("server response line exceeds " + std::to_string(limits_.max_line) +
                       " bytes (limit): \"" + Sanitize(start) + "...\"");
}

Status ResponseParser::ConsumeLine(std::string_view data, size_t* used) {
  const void* lf = std::memchr(data.data(), '\n', data.size());
  size_t take =
      lf ? static_cast<size_t>(static_cast<const char*>(lf) - data.data()) + 1 : data.size();
  if (lf != nullptr && line_.empty()) {
    // A whole line in the input: the common flag-only FETCH is read in place.
    std::string_view line = data.substr(0, take - 1);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    Status status;
    if (line.size() <= limits_.max_line && TryFlagFetch(line, &status)) {
      *used = take;
      return status;
    }
  }
  // Check before appending, so a server that never sends LF cannot grow the
  // buffer past the limit (+2 for the CRLF, checked exactly in EndSegment).
  if (take > limits_.max_line + 2 || line_.size() > limits_.max_line + 2 - take) {
    return TooLongError(data.substr(0, take));
  }
  line_.append(data.data(), take);
  *used = take;
  return lf ? EndSegment() : Status::Ok();
}

Status ResponseParser::EndSegment() {
  line_.pop_back();  // LF
  // CRLF is the rule; a bare LF is tolerated. A CR before segment_start_
  // belongs to the preceding literal.
  if (line_.size() > segment_start_ && line_.back() == '\r') line_.pop_back();
  if (line_.size() > limits_.max_line) return TooLongError({});
  if (!classified_) ClassifyFirstSegment();
  if (literals_allowed_) {
    std::string_view segment(line_.data() + segment_start_, line_.size() - segment_start_);
    if (!segment.empty() && segment.back() == '}') {
      size_t digits = segment.size() - 1;
      while (digits > 0 && IsDigit(segment[digits - 1])) --digits;
      if (digits > 0 && digits < segment.size() - 1 && segment[digits - 1] == '{') {
        size_t marker = digits - 1;
        if (marker > 0 && segment[marker - 1] == '~') --marker;  // literal8
        uint64_t size = 0;
        for (size_t i = digits; i < segment.size() - 1; ++i) {
          uint64_t digit = static_cast<uint64_t>(segment[i] - '0');
          if (size > (UINT64_MAX - digit) / 10) {
            return ProtocolError("server announced a literal whose size does not fit in 64 bits: " +
                                 Excerpt(line_, segment_start_ + marker));
          }
          size = size * 10 + digit;
        }
        return StartLiteral(segment_start_ + marker, size);
      }
    }
  }
  return Dispatch();
}

void ResponseParser::ClassifyFirstSegment() {
  classified_ = true;
  std::string_view line = line_;
  // Continuation requests and status responses (tagged or untagged OK, NO,
  // BAD, PREAUTH, BYE) end at the first CRLF: their grammar has no literals,
  // and free text such as "done {5}" must not make us wait for 5 octets.
  if (!line.empty() && line[0] == '+') {
    literals_allowed_ = false;
    return;
  }
  size_t space = line.find(' ');
  if (space == std::string_view::npos) return;
  std::string_view tag = line.substr(0, space);
  std::string_view rest = line.substr(space + 1);
  std::string_view word = rest.substr(0, rest.find_first_of(" [("));
  if (IsConditionWord(word)) {
    literals_allowed_ = false;
    return;
  }
  // "* n FETCH (": remember n for OnLiteralBegin.
  if (tag != "*" || word.empty() || word.size() > 10) return;
  uint64_t seq = 0;
  for (char c : word) {
    if (!IsDigit(c)) return;
    seq = seq * 10 + static_cast<uint64_t>(c - '0');
  }
  if (seq > UINT32_MAX) return;  // the tokenizer reports it
  rest.remove_prefix(word.size());
  if (rest.size() < 7 || rest[0] != ' ' || !EqualsUpper(rest.substr(1, 5), "FETCH") ||
      rest[6] != ' ') {
    return;
  }
  fetch_seq_ = static_cast<uint32_t>(seq);
}

Status ResponseParser::StartLiteral(size_t marker_pos, uint64_t size) {
  if (size > limits_.max_literal) {
    return ProtocolError("server announced a literal of " + std::to_string(size) +
                         " bytes, above the limit of " + std::to_string(limits_.max_literal) +
                         " bytes: " + Excerpt(line_, marker_pos));
  }
  // The tokenizer expects exactly CRLF after every literal header.
  line_ += "\r\n";
  std::string_view head(line_.data() + segment_start_, marker_pos - segment_start_);
  std::string_view section;
  if (sink_ != nullptr && fetch_seq_ && size > limits_.inline_literal_max &&
      FindBodyItem(head, &section)) {
    stream_sink_ = sink_;
    streamed_.push_back(StreamedLiteral{line_.size(), size});
    state_ = State::kStreamedLiteral;
    literal_left_ = size;
    uint32_t seq = *fetch_seq_;
    return RunCallback([&] { return stream_sink_->OnLiteralBegin(seq, section, size); });
  }
  if (line_.size() > limits_.max_line || size > limits_.max_line - line_.size()) {
    return TooLongError({});
  }
  literal_left_ = size;
  if (size == 0) {
    segment_start_ = line_.size();
    return Status::Ok();
  }
  line_.reserve(line_.size() + static_cast<size_t>(size));
  state_ = State::kInlineLiteral;
  return Status::Ok();
}

Status ResponseParser::ConsumeInlineLiteral(std::string_view data, size_t* used) {
  size_t take = static_cast<size_t>(std::min<uint64_t>(literal_left_, data.size()));
  line_.append(data.data(), take);
  literal_left_ -= take;
  *used = take;
  if (literal_left_ == 0) {
    state_ = State::kLine;
    segment_start_ = line_.size();
  }
  return Status::Ok();
}

Status ResponseParser::ConsumeStreamedLiteral(std::string_view data, size_t* used) {
  size_t take = static_cast<size_t>(std::min<uint64_t>(literal_left_, data.size()));
  literal_left_ -= take;
  *used = take;
  // Straight from the caller's buffer: the body is never copied here.
  Status status = RunCallback([&] { return stream_sink_->OnLiteralData(data.substr(0, take)); });
  if (!status.ok() || literal_left_ > 0) return status;
  state_ = State::kLine;
  segment_start_ = line_.size();
  LiteralSink* sink = std::exchange(stream_sink_, nullptr);
  return RunCallback([&] { return sink->OnLiteralEnd(); });
}

bool ResponseParser::TryFlagFetch(std::string_view line, Status* status) {
  // Cheap rejection first: most other lines fail on the first bytes.
  if (line.size() < 12 || line[0] != '*' || line.back() != ')') return false;
  ClearResponse(&response_, &spare_code_items_);
  if (!ParseFlagFetch(line, &response_.fetch)) return false;
  response_.type = ResponseType::kFetch;
  response_.number = response_.fetch.seq;
  *status = RunCallback([&] { return handler_->OnResponse(response_); });
  ClearResponseState();
  return true;
}

Status ResponseParser::Dispatch() {
  ClearResponse(&response_, &spare_code_items_);
  Tokenizer tokens(line_.data(), line_.size(), streamed_, limits_.max_depth);
  if (!ReadResponse(&tokens, &response_, &spare_code_items_)) {
    return ProtocolError("malformed server response: " + tokens.error() + ", at byte " +
                         std::to_string(tokens.error_pos()) + " of " +
                         Excerpt(line_, tokens.error_pos()));
  }
  Status status = RunCallback([&] { return handler_->OnResponse(response_); });
  ClearResponseState();
  return status;
}

}  // namespace mailmirror::imap
