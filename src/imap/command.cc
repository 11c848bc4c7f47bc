#include "imap/command.h"

#include <string>

namespace mailmirror::imap {
namespace {

// Quoted strings longer than this go as literals: long lines are what some
// servers choke on, and a literal costs nothing extra with LITERAL+.
constexpr size_t kMaxQuotedLength = 1024;
// RFC 7888 §5: LITERAL- allows non-synchronizing literals up to 4096 octets.
constexpr size_t kLiteralMinusMax = 4096;

bool IsAtomSpecial(unsigned char c) {
  return c == '(' || c == ')' || c == '{' || c == ' ' || c < 0x20 || c == 0x7f || c == '%' ||
         c == '*' || c == '"' || c == '\\';
}

bool IsQuotable(std::string_view value) {
  if (value.size() > kMaxQuotedLength) return false;
  for (unsigned char c : value) {
    if (c == 0 || c == '\r' || c == '\n' || c >= 0x80) return false;
  }
  return true;
}

}  // namespace

bool IsAstringAtom(std::string_view value) {
  if (value.empty()) return false;
  for (unsigned char c : value) {
    // ASTRING-CHAR = ATOM-CHAR / resp-specials (']'); 8-bit bytes are not CHARs.
    if (c >= 0x80 || IsAtomSpecial(c)) return false;
  }
  return true;
}

std::string Quote(std::string_view value) {
  std::string out;
  out.reserve(value.size() + 2);
  out += '"';
  for (char c : value) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  out += '"';
  return out;
}

CommandBuilder::CommandBuilder(std::string_view verb, LiteralPolicy policy) : policy_(policy) {
  command_.verb = std::string(verb);
  command_.parts.emplace_back(verb);
}

CommandBuilder& CommandBuilder::Raw(std::string_view text) {
  command_.parts.back() += ' ';
  command_.parts.back() += text;
  return *this;
}

CommandBuilder& CommandBuilder::AString(std::string_view value) {
  // NIL as an atom is an astring, but some servers read it as nil: quote it.
  if (IsAstringAtom(value) && value.size() <= kMaxQuotedLength && value != "NIL" &&
      value != "nil") {
    return Raw(value);
  }
  return String(value);
}

CommandBuilder& CommandBuilder::String(std::string_view value) {
  if (value.find('\0') != std::string_view::npos) {
    has_nul_ = true;
    return *this;
  }
  if (IsQuotable(value)) return Raw(Quote(value));
  AppendLiteral(value);
  return *this;
}

CommandBuilder& CommandBuilder::Sensitive() {
  command_.sensitive = true;
  return *this;
}

void CommandBuilder::AppendLiteral(std::string_view value) {
  bool non_sync = policy_ == LiteralPolicy::kPlusAny ||
                  (policy_ == LiteralPolicy::kPlusSmall && value.size() <= kLiteralMinusMax);
  std::string& current = command_.parts.back();
  current += " {";
  current += std::to_string(value.size());
  current += non_sync ? "+}\r\n" : "}\r\n";
  if (non_sync) {
    current += value;
  } else {
    command_.parts.emplace_back(value);
  }
}

CommandBuilder& CommandBuilder::Literal(std::string_view value) {
  if (value.find('\0') != std::string_view::npos) has_nul_ = true;
  AppendLiteral(value);
  return *this;
}

CommandBuilder& CommandBuilder::StreamedLiteral(std::shared_ptr<LiteralSource> source) {
  const uint64_t size = source->size();
  const bool non_sync = policy_ == LiteralPolicy::kPlusAny ||
                        (policy_ == LiteralPolicy::kPlusSmall && size <= kLiteralMinusMax);
  std::string& current = command_.parts.back();
  current += " {";
  current += std::to_string(size);
  current += non_sync ? "+}\r\n" : "}\r\n";
  command_.stream = std::move(source);
  command_.stream_after = command_.parts.size() - 1;
  command_.stream_waits = !non_sync;
  command_.parts.emplace_back();  // what follows the literal
  return *this;
}

Result<Command> CommandBuilder::Build() {
  if (has_nul_) {
    return MakeError(ErrorKind::kConfig,
                     command_.verb + " argument contains a NUL byte, which IMAP cannot send");
  }
  command_.parts.back() += "\r\n";
  return std::move(command_);
}

}  // namespace mailmirror::imap
