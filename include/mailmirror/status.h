// Error values for the whole engine.
//
// Failures travel as values, never as exceptions: a function that can fail
// returns Status (no payload) or Result<T>. An Error carries a kind, which
// decides the process exit code (sysexits.h), and a message written for the
// user: what failed and what to check.
#pragma once

#include <cassert>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <variant>

namespace mailmirror {

enum class ErrorKind {
  kUsage,        // bad command line                         -> 64 EX_USAGE
  kConfig,       // missing or malformed configuration       -> 78 EX_CONFIG
  kAuth,         // server refused our credentials           -> 77 EX_NOPERM
  kUnavailable,  // server unreachable, TLS failure, BYE     -> 69 EX_UNAVAILABLE
  kProtocol,     // server sent something we cannot accept   -> 76 EX_PROTOCOL
  kIo,           // local file system error                  -> 74 EX_IOERR
  kTemporary,    // try again later (timeouts, throttling)   -> 75 EX_TEMPFAIL
  kCantCreate,   // a file that must not be replaced exists  -> 73 EX_CANTCREAT
  kInternal,     // a bug in mailmirror                      -> 70 EX_SOFTWARE
};

// The sysexits.h code for an error kind.
int ExitCodeFor(ErrorKind kind);

// Short lower-case name of the kind, e.g. "config error".
const char* ErrorKindName(ErrorKind kind);

struct Error {
  Error(ErrorKind error_kind, std::string text) : kind(error_kind), message(std::move(text)) {}

  ErrorKind kind;
  std::string message;
  // An unavailable server that waiting will not change (a certificate that
  // does not verify, a server refusing STARTTLS): not retried.
  bool lasting = false;
  // Set when the server is throttling us: how long it asked to be left
  // alone in milliseconds (0: it did not say).
  std::optional<uint64_t> throttle_ms;
  // The errno behind a local failure (kIo), 0 when there is none: callers
  // tell "the file is gone" (ENOENT) from other failures by it, never by
  // the message's text.
  int os_errno = 0;

  // Returns a copy whose message is prefixed with `context`, e.g.
  // err.Wrap("account work") turns "connection refused" into
  // "account work: connection refused".
  [[nodiscard]] Error Wrap(const std::string& context) const {
    Error wrapped = *this;
    wrapped.message = context + ": " + message;
    return wrapped;
  }
};

// True for failures that may pass when tried again: a dropped or stalled
// connection, an unreachable server, throttling.
inline bool Transient(const Error& error) {
  return !error.lasting &&
         (error.kind == ErrorKind::kUnavailable || error.kind == ErrorKind::kTemporary);
}

inline Error MakeError(ErrorKind kind, std::string message) {
  return Error{kind, std::move(message)};
}

// Success or an Error. Cheap to copy on success.
class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(Error error) : error_(std::move(error)) {}  // NOLINT: implicit by design

  static Status Ok() { return Status(); }

  bool ok() const { return !error_.has_value(); }
  explicit operator bool() const { return ok(); }
  const Error& error() const {
    assert(error_);
    return *error_;
  }

 private:
  std::optional<Error> error_;
};

// A value of type T or an Error, in the spirit of std::expected.
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : storage_(std::move(value)) {}      // NOLINT: implicit by design
  Result(Error error) : storage_(std::move(error)) {}  // NOLINT: implicit by design

  bool ok() const { return storage_.index() == 0; }
  explicit operator bool() const { return ok(); }

  T& value() & {
    assert(ok());
    return std::get<0>(storage_);
  }
  const T& value() const& {
    assert(ok());
    return std::get<0>(storage_);
  }
  T&& value() && {
    assert(ok());
    return std::get<0>(std::move(storage_));
  }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }

  const Error& error() const {
    assert(!ok());
    return std::get<1>(storage_);
  }
  Status status() const { return ok() ? Status() : Status(error()); }

 private:
  std::variant<T, Error> storage_;
};

}  // namespace mailmirror
