// Building IMAP commands: arguments quoted or sent as literals as the
// grammar requires, split where a synchronizing literal makes the client
// wait for the server's "+".
#pragma once

#include <cstdint>
#include <memory>
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

// The bytes of a literal too large to hold in memory (APPEND of a big
// message), read in pieces while the connection drains.
class LiteralSource {
 public:
  virtual ~LiteralSource() = default;
  // Exactly how many bytes Read delivers in all.
  virtual uint64_t size() const = 0;
  // Appends the next bytes, at most `max` and at least one while any are
  // left, to `out`. An error (the file changed or cannot be read) fails the
  // session: a literal cut short cannot be taken back.
  virtual Status Read(size_t max, std::string* out) = 0;
};

// A command ready to send, without its tag. After sending parts[i]
// (i < last) the sender waits for a continuation request before sending
// parts[i + 1], except around a streamed literal: `stream` is sent right
// after parts[stream_after] (after the "+" only when `stream_waits`), and
// parts[stream_after + 1] follows it at once. The last part ends with CRLF.
struct Command {
  std::vector<std::string> parts;
  std::string verb;        // e.g. "LOGIN", for logs and error messages
  bool sensitive = false;  // carries a secret: never log its arguments
  std::shared_ptr<LiteralSource> stream = nullptr;
  size_t stream_after = 0;
  bool stream_waits = false;
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
  // The same for a literal read from `source` while it is sent (one per
  // command); the source checks its own bytes (no NUL).
  CommandBuilder& StreamedLiteral(std::shared_ptr<LiteralSource> source);
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
