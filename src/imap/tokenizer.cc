#include "imap/tokenizer.h"

#include <cstring>
#include <limits>
#include <string>

namespace mailmirror::imap {

Tokenizer::Tokenizer(char* data, size_t size, std::span<const StreamedLiteral> streamed,
                     int max_depth)
    : data_(data), size_(size), streamed_(streamed), max_depth_(max_depth) {}

bool Tokenizer::Fail(std::string message) { return FailAt(pos_, std::move(message)); }

bool Tokenizer::FailAt(size_t pos, std::string message) {
  // Keep the first error: it is the one closest to the cause.
  if (error_.empty()) {
    error_ = std::move(message);
    error_pos_ = pos;
  }
  return false;
}

bool Tokenizer::ExpectSpaces(std::string_view context) {
  if (Peek() != ' ') return Fail("expected space " + std::string(context));
  SkipSpaces();
  return true;
}

bool Tokenizer::ExpectEnd(std::string_view context) {
  SkipSpaces();  // Office 365 sends trailing spaces
  if (!AtEnd()) return Fail("unexpected data " + std::string(context));
  return true;
}

std::string_view Tokenizer::Rest() {
  std::string_view rest(data_ + pos_, size_ - pos_);
  pos_ = size_;
  return rest;
}

bool Tokenizer::ReadAtom(std::string_view* out, std::string_view what) {
  size_t start = pos_;
  while (pos_ < size_ && IsLooseAtomChar(static_cast<unsigned char>(data_[pos_]))) ++pos_;
  if (pos_ == start) return Fail("expected " + std::string(what));
  *out = std::string_view(data_ + start, pos_ - start);
  return true;
}

bool Tokenizer::ReadNumber(uint64_t max, uint64_t* out, std::string_view what,
                           std::string_view bits) {
  size_t start = pos_;
  size_t end = pos_;
  while (end < size_ && data_[end] >= '0' && data_[end] <= '9') ++end;
  if (end == start) return Fail("expected " + std::string(what));
  uint64_t value = 0;
  if (end - start <= 9) {
    // Nine digits cannot overflow any limit we use: skip the checks.
    for (size_t i = start; i < end; ++i) value = value * 10 + static_cast<uint64_t>(data_[i] - '0');
  } else {
    for (size_t i = start; i < end; ++i) {
      uint64_t digit = static_cast<uint64_t>(data_[i] - '0');
      if (__builtin_mul_overflow(value, 10, &value) ||
          __builtin_add_overflow(value, digit, &value) || value > max) {
        return Fail(std::string(what) + " does not fit in " + std::string(bits) + " bits");
      }
    }
  }
  pos_ = end;
  *out = value;
  return true;
}

bool Tokenizer::ReadNumber32(uint32_t* out, std::string_view what) {
  uint64_t value = 0;
  if (!ReadNumber(std::numeric_limits<uint32_t>::max(), &value, what, "32")) return false;
  *out = static_cast<uint32_t>(value);
  return true;
}

bool Tokenizer::ReadNumber64(uint64_t* out, std::string_view what) {
  return ReadNumber(std::numeric_limits<uint64_t>::max(), out, what, "64");
}

bool Tokenizer::ReadQuoted(std::string_view* out) {
  // Caller saw the opening quote. Unescape in place: the write position
  // trails the read position only once the first backslash was seen.
  size_t begin = pos_ + 1;
  size_t read = begin;
  size_t write = begin;
  while (read < size_) {
    char c = data_[read];
    if (c == '"') {
      *out = std::string_view(data_ + begin, write - begin);
      pos_ = read + 1;
      return true;
    }
    if (c == '\r' || c == '\n') break;
    if (c == '\\') {
      // Only \" and \\ are escapes, but servers put a backslash before
      // other bytes too; keep the byte after it whatever it is.
      if (read + 1 >= size_ || data_[read + 1] == '\r' || data_[read + 1] == '\n') break;
      c = data_[++read];
    }
    data_[write++] = c;
    ++read;
  }
  return Fail("unterminated quoted string");
}

bool Tokenizer::ReadLiteral(StringToken* out) {
  Consume('~');  // literal8 (RFC 3516): same framing, may hold NUL
  if (!Consume('{')) return Fail("expected '{' of a literal");
  uint64_t size = 0;
  if (!ReadNumber64(&size, "literal size")) return false;
  if (!Consume('}')) return Fail("expected '}' closing literal size");
  // The framer ends every literal header with CRLF, so anything else means
  // the braces were not a literal header at the end of a line.
  if (!Consume('\r') || !Consume('\n')) return Fail("expected line end after literal header");
  while (next_streamed_ < streamed_.size() && streamed_[next_streamed_].offset < pos_) {
    ++next_streamed_;
  }
  out->nil = false;
  out->size = size;
  if (next_streamed_ < streamed_.size() && streamed_[next_streamed_].offset == pos_) {
    ++next_streamed_;
    out->streamed = true;
    out->data = {};
    return true;
  }
  out->streamed = false;
  if (size > size_ - pos_) return Fail("literal extends past the end of the response");
  out->data = std::string_view(data_ + pos_, static_cast<size_t>(size));
  pos_ += static_cast<size_t>(size);
  return true;
}

bool Tokenizer::ReadString(StringToken* out, std::string_view what) {
  int c = Peek();
  if (c == '"') {
    out->nil = false;
    out->streamed = false;
    if (!ReadQuoted(&out->data)) return false;
    out->size = out->data.size();
    return true;
  }
  if (c == '{' || (c == '~' && pos_ + 1 < size_ && data_[pos_ + 1] == '{')) {
    return ReadLiteral(out);
  }
  return Fail("expected string for " + std::string(what));
}

bool Tokenizer::ReadNString(StringToken* out, std::string_view what) {
  int c = Peek();
  if (c == 'N' || c == 'n') {
    std::string_view atom;
    if (!ReadAtom(&atom, what)) return false;
    if (!EqualsUpper(atom, "NIL")) return Fail("expected string or NIL for " + std::string(what));
    *out = StringToken{};
    out->nil = true;
    return true;
  }
  return ReadString(out, what);
}

bool Tokenizer::ReadAString(std::string_view* out, std::string_view what) {
  int c = Peek();
  if (c == '"' || c == '{' || (c == '~' && pos_ + 1 < size_ && data_[pos_ + 1] == '{')) {
    StringToken token;
    if (!ReadString(&token, what)) return false;
    // Streamed literals only occur for FETCH bodies, never for astrings.
    if (token.streamed) return Fail("unexpected streamed literal for " + std::string(what));
    *out = token.data;
    return true;
  }
  return ReadAtom(out, what);
}

bool Tokenizer::ReadList(std::vector<std::string_view>* out, std::string_view what) {
  // Flat: an item is an atom or a string, so a nested '(' fails below.
  if (!Consume('(')) return Fail("expected '(' opening " + std::string(what));
  for (;;) {
    SkipSpaces();
    int c = Peek();
    if (c == ')') {
      Advance();
      return true;
    }
    if (c < 0) return Fail("unterminated " + std::string(what));
    std::string_view item;
    if (!ReadAString(&item, what)) return false;
    out->push_back(item);
    c = Peek();
    if (c != ' ' && c != ')') return Fail("expected space or ')' in " + std::string(what));
  }
}

bool Tokenizer::ReadSection(std::string_view* out) {
  if (!Consume('[')) return Fail("expected '[' opening section");
  size_t begin = pos_;
  int parens = 0;
  while (pos_ < size_) {
    char c = data_[pos_];
    if (c == ']' && parens == 0) {
      *out = std::string_view(data_ + begin, pos_ - begin);
      ++pos_;
      return true;
    }
    if (c == '\r' || c == '\n') break;
    if (c == '(') ++parens;
    if (c == ')' && parens > 0) --parens;
    if (c == '"') {
      // Skip the quoted string without unescaping: the section text is
      // handed out raw, and unescaping would change it under the view.
      ++pos_;
      while (pos_ < size_ && data_[pos_] != '"' && data_[pos_] != '\r') {
        if (data_[pos_] == '\\' && pos_ + 1 < size_) ++pos_;
        ++pos_;
      }
      if (pos_ >= size_ || data_[pos_] != '"') break;
    }
    ++pos_;
  }
  return Fail("unterminated section '[...]'");
}

bool Tokenizer::SkipValue(int depth) {
  int open = 0;  // lists opened by this call and not yet closed
  for (;;) {
    int c = Peek();
    if (c == '(') {
      if (depth + open + 1 > max_depth_) {
        return Fail("parentheses nested deeper than the limit of " + std::to_string(max_depth_));
      }
      ++open;
      Advance();
      continue;
    }
    if (c == ')') {
      if (open == 0) return Fail("expected a value");
      --open;
      Advance();
    } else if (c == ' ') {
      if (open == 0) return Fail("expected a value");
      Advance();
      continue;
    } else if (c == '"' || c == '{' || (c == '~' && pos_ + 1 < size_ && data_[pos_ + 1] == '{')) {
      StringToken token;
      if (!ReadString(&token, "value")) return false;
    } else if (c < 0) {
      return Fail(open > 0 ? "unterminated parenthesized list" : "expected a value");
    } else if (c == '\r' || c == '\n') {
      return Fail("unexpected line end");
    } else {
      // Atom, number or NIL; lenient about bytes servers put in atoms
      // (brackets, 8-bit, "-1" in body-fld-lines).
      size_t start = pos_;
      while (pos_ < size_) {
        char b = data_[pos_];
        if (b == ' ' || b == '(' || b == ')' || b == '"' || b == '{' || b == '\r' || b == '\n') {
          break;
        }
        ++pos_;
      }
      if (pos_ == start) return Fail("unexpected byte in value");
    }
    if (open == 0) return true;
  }
}

}  // namespace mailmirror::imap
