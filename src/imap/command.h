// Building IMAP commands: arguments quoted or sent as literals as the
// grammar requires, split where a synchronizing literal makes the client
// wait for the server's "+".
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "mailmirror/status.h"

namespace mailmirror::imap {

// How the server lets us send literals (RFC 7888).
enum class LiteralPolicy {
  kSynchronizing,  // plain IMAP4rev1: "{n}" then wait for "+"
  kPlusAny,        // LITERAL+: "{n+}" of any size, no wait
  kPlusSmall,      // LITERAL- / IMAP4rev2: "{n+}" only up to 4096 octets
};

// A command ready to send, without its tag. parts.size() - 1 is the number
// of synchronizing literals: after sending parts[i] (i < last) the sender
// waits for a continuation request before sending parts[i + 1]. The last
// part ends with CRLF.
struct Command {
  std::vector<std::string> parts;
  std::string verb;        // e.g. "LOGIN", for logs and error messages
  bool sensitive = false;  // carries a secret: never log its arguments
};

class CommandBuilder {
 public:
  // verb is written as is, e.g. "UID FETCH".
  CommandBuilder(std::string_view verb, LiteralPolicy policy);

  // Appends " " and the bytes unchanged (atoms, lists, sequence sets).
  CommandBuilder& Raw(std::string_view text);
  // Appends " " and `value` as an astring: a bare atom when every byte is
  // an ASTRING-CHAR, a quoted string when 7-bit and free of CR/LF, else a
  // literal.
  CommandBuilder& AString(std::string_view value);
  // Like AString but never a bare atom (for LIST patterns and the like).
  CommandBuilder& String(std::string_view value);
  // Appends " " and `value` as a literal whatever its bytes (APPEND's
  // message data), synchronizing or not as the policy allows.
  CommandBuilder& Literal(std::string_view value);
  // Marks the command as carrying a secret.
  CommandBuilder& Sensitive();

  // Finishes the command. Fails (kInternal... or kConfig for user data)
  // when an argument holds NUL, which no IMAP string can carry.
  Result<Command> Build();

 private:
  void AppendLiteral(std::string_view value);

  LiteralPolicy policy_;
  Command command_;
  bool has_nul_ = false;
};

// True when every byte of `value` may stand in a bare astring atom.
bool IsAstringAtom(std::string_view value);

// `value` as a quoted string: wrapped in '"' with '"' and '\' escaped.
std::string Quote(std::string_view value);

}  // namespace mailmirror::imap
