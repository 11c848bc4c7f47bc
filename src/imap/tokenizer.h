// Token reader over one complete IMAP response, as framed by ResponseParser.
//
// The buffer holds the response exactly as received, minus its final CRLF:
// line segments, each literal header followed by CRLF, and the literal's
// bytes, except for literals that were streamed to a LiteralSink, whose
// bytes are absent (the framer records where they would have been).
//
// Tokens are string_views into the buffer. Quoted strings are unescaped in
// place, so the buffer is mutable and a view is valid as long as the buffer
// is neither changed nor freed. Every read is bounds-checked: malformed input
// makes a reader return false with a description (error(), error_pos()),
// never read past the end.
//
// Not thread-safe; one tokenizer per response.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace mailmirror::imap {

// A literal whose bytes went to the LiteralSink instead of the buffer.
struct StreamedLiteral {
  size_t offset = 0;  // buffer position right after the literal header's CRLF
  uint64_t size = 0;
};

// A string, NIL or literal read from the response.
struct StringToken {
  std::string_view data;  // empty for NIL and streamed literals
  bool nil = false;
  bool streamed = false;  // literal went to the sink; only `size` is known
  uint64_t size = 0;      // length of the string's data
};

// True for bytes that may appear in an atom of the lenient kind servers send:
// anything but SP, CTL, '(', ')', '{' and '"'. Allows 8-bit bytes, '\\', '%',
// '*' and ']' (flags like "\*", names like "[Gmail]/Sent").
inline bool IsLooseAtomChar(unsigned char c) {
  return c > 0x20 && c != 0x7f && c != '(' && c != ')' && c != '{' && c != '"';
}

// ASCII case-insensitive comparison; `upper` must be upper case.
inline bool EqualsUpper(std::string_view text, std::string_view upper) {
  if (text.size() != upper.size()) return false;
  for (size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (c >= 'a' && c <= 'z') c = static_cast<char>(c - ('a' - 'A'));
    if (c != upper[i]) return false;
  }
  return true;
}

// A set of bytes tested with one table lookup; build them constexpr.
class ByteSet {
 public:
  constexpr explicit ByteSet(std::string_view bytes) {
    for (char c : bytes) bits_[static_cast<unsigned char>(c)] = true;
  }
  constexpr bool contains(char c) const { return bits_[static_cast<unsigned char>(c)]; }

 private:
  bool bits_[256] = {};
};

class Tokenizer {
 public:
  // `streamed` must be sorted by offset and outlive the tokenizer.
  Tokenizer(char* data, size_t size, std::span<const StreamedLiteral> streamed, int max_depth);

  size_t pos() const { return pos_; }
  bool AtEnd() const { return pos_ >= size_; }
  // The next byte, or -1 at the end.
  int Peek() const { return pos_ < size_ ? static_cast<unsigned char>(data_[pos_]) : -1; }
  void Advance() {
    if (pos_ < size_) ++pos_;
  }
  // Consumes `c` if it is next.
  bool Consume(char c) {
    if (pos_ < size_ && data_[pos_] == c) {
      ++pos_;
      return true;
    }
    return false;
  }
  void SkipSpaces() {
    while (pos_ < size_ && data_[pos_] == ' ') ++pos_;
  }
  // Consumes one or more spaces; fails with "expected space <context>" if none.
  bool ExpectSpaces(std::string_view context);
  // Skips trailing spaces; fails with "unexpected data <context>" unless the
  // response ends there.
  bool ExpectEnd(std::string_view context);
  // The remaining bytes, unparsed; moves to the end.
  std::string_view Rest();
  // Bytes up to the next byte in `stops` (or the end), possibly empty.
  std::string_view ReadUntil(const ByteSet& stops) {
    size_t start = pos_;
    while (pos_ < size_ && !stops.contains(data_[pos_])) ++pos_;
    return std::string_view(data_ + start, pos_ - start);
  }

  // 1+ IsLooseAtomChar bytes; `what` names the item for the error message.
  bool ReadAtom(std::string_view* out, std::string_view what);
  // Unsigned decimal numbers, overflow-checked against 32 or 64 bits.
  bool ReadNumber32(uint32_t* out, std::string_view what);
  bool ReadNumber64(uint64_t* out, std::string_view what);
  // Quoted string or literal ({n} or ~{n}).
  bool ReadString(StringToken* out, std::string_view what);
  // String or NIL.
  bool ReadNString(StringToken* out, std::string_view what);
  // String or atom (astring; a bare NIL is the name "NIL").
  bool ReadAString(std::string_view* out, std::string_view what);
  // "(" [item *(SP item)] ")" where an item is an atom or a string, e.g. a
  // flag list. Runs of spaces are tolerated.
  bool ReadList(std::vector<std::string_view>* out, std::string_view what);
  // "[" ... "]" with nested parentheses and quoted strings inside (FETCH
  // sections); *out is the raw text between the brackets.
  bool ReadSection(std::string_view* out);
  // Skips one value of any shape: atom, number, NIL, string, literal, or a
  // parenthesized list nested at most max_depth levels counting `depth`
  // enclosing levels. Iterative, so hostile nesting cannot exhaust the stack.
  bool SkipValue(int depth);

  // The raw bytes in [begin, end) of the buffer.
  std::string_view Slice(size_t begin, size_t end) const {
    return std::string_view(data_ + begin, end - begin);
  }
  // A tokenizer over [begin, end) alone (no literals), e.g. a code payload.
  Tokenizer Sub(size_t begin, size_t end) const {
    return Tokenizer(data_ + begin, end - begin, {}, max_depth_);
  }

  // Records an error at the current position (or at `pos`); always returns
  // false. The first error recorded wins.
  bool Fail(std::string message);
  bool FailAt(size_t pos, std::string message);

  const std::string& error() const { return error_; }
  size_t error_pos() const { return error_pos_; }

 private:
  bool ReadQuoted(std::string_view* out);
  bool ReadLiteral(StringToken* out);
  bool ReadNumber(uint64_t max, uint64_t* out, std::string_view what, std::string_view bits);

  char* data_;
  size_t size_;
  size_t pos_ = 0;
  std::span<const StreamedLiteral> streamed_;
  size_t next_streamed_ = 0;
  int max_depth_;
  std::string error_;
  size_t error_pos_ = 0;
};

}  // namespace mailmirror::imap
