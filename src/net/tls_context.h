// Shared OpenSSL client contexts, one per trust configuration.
//
// Loading the system CA store costs milliseconds of CPU and hundreds of KiB
// per SSL_CTX, so connections that trust the same extra CA file share one
// context, and reconnects reuse it: contexts are kept for the life of the
// process (one per distinct ca_file, so the cache stays as small as the
// configuration). A CA file edited while the process runs is therefore not
// re-read. Thread-safe; an SSL_CTX is never modified after creation, which
// is what OpenSSL requires for sharing it across threads.
//
// Internal to net/: callers outside net/ never see OpenSSL types.
#pragma once

#include <memory>
#include <string>

#include "mailmirror/status.h"

struct ssl_ctx_st;  // OpenSSL's SSL_CTX, kept out of this header

namespace mailmirror::net {

class TlsContext {
 public:
  // The client context that trusts the system store plus `ca_file` (PEM; may
  // be empty). TLS 1.2 is the minimum version; verification mode and the
  // name check are set per connection. Errors (kConfig) name the file: it is
  // missing, unreadable, or holds no certificate.
  static Result<std::shared_ptr<TlsContext>> ForCaFile(const std::string& ca_file);

  ~TlsContext();
  TlsContext(const TlsContext&) = delete;
  TlsContext& operator=(const TlsContext&) = delete;

  ssl_ctx_st* get() const { return ctx_; }

 private:
  explicit TlsContext(ssl_ctx_st* ctx) : ctx_(ctx) {}
  static Result<std::shared_ptr<TlsContext>> Create(const std::string& ca_file);

  ssl_ctx_st* ctx_;  // owned
};

// The text of the oldest error on this thread's OpenSSL error queue, without
// the library prefix (e.g. "wrong version number"), or "" if the queue is empty.
std::string OpenSslErrorText();

}  // namespace mailmirror::net
