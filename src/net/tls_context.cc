#include "net/tls_context.h"

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <utility>

namespace mailmirror::net {

namespace {

struct Cache {
  std::mutex mu;
  std::map<std::string, std::shared_ptr<TlsContext>> by_ca_file;
};

Cache& TheCache() {
  // Never destroyed: freeing an SSL_CTX during static destruction could run
  // after OpenSSL's own atexit cleanup.
  static Cache* cache = new Cache;
  return *cache;
}

// The system's trusted CAs. The hashed directory (/etc/ssl/certs on Debian,
// or SSL_CERT_DIR) is read lazily, one file per lookup during verification;
// the bundle file would be parsed whole (some 150 certificates, tens of
// milliseconds) on every run, which a cron job syncing an unchanged mailbox
// would notice. A bundle named by SSL_CERT_FILE is still loaded: the user
// asked for it.
Status LoadSystemCertificates(SSL_CTX* ctx) {
  const char* file = std::getenv(X509_get_default_cert_file_env());
  const char* dir = std::getenv(X509_get_default_cert_dir_env());
  if (dir == nullptr) {
    dir = X509_get_default_cert_dir();
    struct stat st {};
    if (dir != nullptr && (::stat(dir, &st) != 0 || !S_ISDIR(st.st_mode))) dir = nullptr;
  }
  bool loaded = file == nullptr && dir == nullptr
                    ? SSL_CTX_set_default_verify_paths(ctx) == 1
                    : SSL_CTX_load_verify_locations(ctx, file, dir) == 1;
  if (loaded) return Status::Ok();
  return MakeError(ErrorKind::kInternal,
                   "cannot load the system CA certificates: " + OpenSslErrorText());
}

}  // namespace

std::string OpenSslErrorText() {
  unsigned long code = ERR_get_error();
  if (code == 0) return "";
  ERR_clear_error();  // later entries only repeat the first one's cause
  if (const char* reason = ERR_reason_error_string(code)) return reason;
  char buf[256];
  ERR_error_string_n(code, buf, sizeof(buf));
  return buf;
}

Result<std::shared_ptr<TlsContext>> TlsContext::ForCaFile(const std::string& ca_file) {
  Cache& cache = TheCache();
  std::lock_guard<std::mutex> lock(cache.mu);
  if (auto it = cache.by_ca_file.find(ca_file); it != cache.by_ca_file.end()) return it->second;
  // Failures are not cached: the user may fix the file and retry.
  Result<std::shared_ptr<TlsContext>> created = Create(ca_file);
  if (created.ok()) cache.by_ca_file[ca_file] = *created;
  return created;
}

Result<std::shared_ptr<TlsContext>> TlsContext::Create(const std::string& ca_file) {
  if (!ca_file.empty()) {
    // Check readability ourselves: OpenSSL's error for a missing file does
    // not say which file, and the user needs the path and the reason.
    std::FILE* f = std::fopen(ca_file.c_str(), "r");
    if (f == nullptr) {
      return MakeError(ErrorKind::kConfig,
                       "cannot read CA file " + ca_file + ": " + std::strerror(errno));
    }
    (void)std::fclose(f);  // opened for reading only
  }

  ERR_clear_error();
  SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
  if (ctx == nullptr) {
    return MakeError(ErrorKind::kInternal, "cannot create a TLS context: " + OpenSslErrorText());
  }
  auto context = std::shared_ptr<TlsContext>(new TlsContext(ctx));

  // RFC 8996 deprecates TLS 1.0 and 1.1; RFC 8314 asks mail clients for 1.2+.
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION);  // CRIME
  // Idle IMAP sessions are common; don't keep 2 x 16 KiB of buffers each.
  SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
  SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nullptr);
  if (Status system = LoadSystemCertificates(ctx); !system.ok()) return system.error();
  if (!ca_file.empty() && SSL_CTX_load_verify_locations(ctx, ca_file.c_str(), nullptr) != 1) {
    std::string reason = OpenSslErrorText();
    return MakeError(ErrorKind::kConfig, "cannot load CA certificates from " + ca_file + ": " +
                                             (reason.empty() ? "unknown error" : reason) +
                                             " (ca_file must hold PEM certificates)");
  }
  return context;
}

TlsContext::~TlsContext() { SSL_CTX_free(ctx_); }

}  // namespace mailmirror::net
