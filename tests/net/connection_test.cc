// Tests for net::Connection and net::EventLoop against real sockets on
// 127.0.0.1: a blocking test server (plain or OpenSSL) runs in a thread, the
// client runs on the libuv loop of the test thread.
//
// The certificates are made here with the OpenSSL API, so the tests need no
// openssl binary and no configuration file. This test includes uv.h (it is
// part of the net module) only to check that every loop ends with no handle
// left open.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>
#include <uv.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "net/connection.h"
#include "net/event_loop.h"

namespace mailmirror::net {
namespace {

using Clock = std::chrono::steady_clock;

constexpr int kServerIoTimeoutMs = 4000;  // bounds every blocking server call
constexpr uint64_t kLoopLimitMs = 4000;   // bounds every client loop run

// --- Certificates -----------------------------------------------------------

struct Identity {
  EVP_PKEY* key = nullptr;
  X509* cert = nullptr;
};

void AddExtension(X509* cert, X509V3_CTX* ctx, int nid, const char* value) {
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, ctx, nid, value);
  ASSERT_NE(ext, nullptr) << "extension " << value;
  X509_add_ext(cert, ext, -1);
  X509_EXTENSION_free(ext);
}

// A P-256 key and a certificate for it, signed by `issuer` (self-signed if
// null). `san` may be null for no subjectAltName.
Identity MakeIdentity(const char* cn, const char* san, const Identity* issuer, bool is_ca) {
  static long serial = 1;
  Identity id;
  id.key = EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256");
  X509* cert = X509_new();
  X509_set_version(cert, 2);
  ASN1_INTEGER_set(X509_get_serialNumber(cert), serial++);
  X509_gmtime_adj(X509_getm_notBefore(cert), -3600);
  X509_gmtime_adj(X509_getm_notAfter(cert), 24 * 3600);
  X509_set_pubkey(cert, id.key);
  X509_NAME_add_entry_by_txt(X509_get_subject_name(cert), "CN", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>(cn), -1, -1, 0);
  X509* issuer_cert = issuer != nullptr ? issuer->cert : cert;
  X509_set_issuer_name(cert, X509_get_subject_name(issuer_cert));
  X509V3_CTX ctx;
  X509V3_set_ctx(&ctx, issuer_cert, cert, nullptr, nullptr, 0);
  AddExtension(cert, &ctx, NID_basic_constraints, is_ca ? "critical,CA:TRUE" : "CA:FALSE");
  AddExtension(cert, &ctx, NID_key_usage,
               is_ca ? "critical,keyCertSign,cRLSign" : "critical,digitalSignature");
  AddExtension(cert, &ctx, NID_subject_key_identifier, "hash");
  if (!is_ca) AddExtension(cert, &ctx, NID_ext_key_usage, "serverAuth");
  if (issuer != nullptr) AddExtension(cert, &ctx, NID_authority_key_identifier, "keyid:always");
  if (san != nullptr) AddExtension(cert, &ctx, NID_subject_alt_name, san);
  X509_sign(cert, issuer != nullptr ? issuer->key : id.key, EVP_sha256());
  id.cert = cert;
  return id;
}

// Everything the tests trust or present, made once per process.
struct Pki {
  std::string dir;
  std::string ca_file;   // PEM of `ca`, for ConnectOptions::ca_file
  Identity ca;           // throwaway CA
  Identity server;       // by ca: SAN DNS:localhost, IP:127.0.0.1
  Identity dns_only;     // by ca: SAN DNS:localhost
  Identity other_name;   // by ca: SAN DNS:mail.example.net
  Identity cn_only;      // by ca: CN=localhost, SAN IP:127.0.0.1 (no DNS SAN)
  Identity self_signed;  // self-signed, SAN DNS:localhost, IP:127.0.0.1
};

Pki* g_pki = nullptr;

class PkiEnvironment : public ::testing::Environment {
 public:
  void SetUp() override {
    auto* pki = new Pki;
    g_pki = pki;  // TearDown frees it even if a step below fails
    std::string tmpl = (std::filesystem::temp_directory_path() / "mailmirror-net-XXXXXX").string();
    ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
    pki->dir = tmpl;
    pki->ca = MakeIdentity("mailmirror test CA", nullptr, nullptr, true);
    pki->server = MakeIdentity("localhost", "DNS:localhost,IP:127.0.0.1", &pki->ca, false);
    pki->dns_only = MakeIdentity("localhost", "DNS:localhost", &pki->ca, false);
    pki->other_name = MakeIdentity("mail.example.net", "DNS:mail.example.net", &pki->ca, false);
    pki->cn_only = MakeIdentity("localhost", "IP:127.0.0.1", &pki->ca, false);
    pki->self_signed = MakeIdentity("localhost", "DNS:localhost,IP:127.0.0.1", nullptr, false);
    pki->ca_file = pki->dir + "/ca.pem";
    std::FILE* f = std::fopen(pki->ca_file.c_str(), "w");
    ASSERT_NE(f, nullptr);
    EXPECT_EQ(PEM_write_X509(f, pki->ca.cert), 1);
    EXPECT_EQ(std::fclose(f), 0);
  }

  void TearDown() override {
    if (g_pki == nullptr) return;
    std::error_code ignored;
    std::filesystem::remove_all(g_pki->dir, ignored);
    for (Identity* id : {&g_pki->ca, &g_pki->server, &g_pki->dns_only, &g_pki->other_name,
                         &g_pki->cn_only, &g_pki->self_signed}) {
      X509_free(id->cert);
      EVP_PKEY_free(id->key);
    }
    delete g_pki;
    g_pki = nullptr;
  }
};

[[maybe_unused]] ::testing::Environment* const kPkiEnvironment =
    ::testing::AddGlobalTestEnvironment(new PkiEnvironment);

const Pki& ThePki() { return *g_pki; }

// --- Test server --------------------------------------------------------------

// The accepted side of one connection: blocking I/O, every call bounded by
// kServerIoTimeoutMs, optionally upgraded to TLS.
class ServerConn {
 public:
  explicit ServerConn(int fd) : fd_(fd) {
    timeval tv{kServerIoTimeoutMs / 1000, 0};
    setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd_, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
  }
  ~ServerConn() {
    if (ssl_ != nullptr) SSL_free(ssl_);
    if (ctx_ != nullptr) SSL_CTX_free(ctx_);
    close(fd_);
  }

  // Server side of a TLS handshake with `id`. Records the SNI it received.
  // `max_version`: offer nothing newer (e.g. TLS1_1_VERSION); 0 for any.
  bool StartTls(const Identity& id, int max_version = 0) {
    ctx_ = SSL_CTX_new(TLS_server_method());
    if (max_version != 0) {
      SSL_CTX_set_security_level(ctx_, 0);  // let this server speak old TLS at all
      SSL_CTX_set_min_proto_version(ctx_, TLS1_VERSION);
      SSL_CTX_set_max_proto_version(ctx_, max_version);
    }
    SSL_CTX_use_certificate(ctx_, id.cert);
    SSL_CTX_use_PrivateKey(ctx_, id.key);
    ssl_ = SSL_new(ctx_);
    SSL_set_fd(ssl_, fd_);
    bool ok = SSL_accept(ssl_) == 1;
    const char* name = SSL_get_servername(ssl_, TLSEXT_NAMETYPE_host_name);
    sni_ = name != nullptr ? std::optional<std::string>(name) : std::nullopt;
    ERR_clear_error();
    if (!ok) {
      // Whatever comes after a failed handshake is read raw from now on.
      SSL_free(ssl_);
      ssl_ = nullptr;
    }
    return ok;
  }

  const std::optional<std::string>& sni() const { return sni_; }

  // Some bytes (decrypted when TLS is on); "" on EOF, error or timeout.
  std::string ReadSome() {
    char buf[64 * 1024];
    int n = ssl_ != nullptr ? SSL_read(ssl_, buf, sizeof(buf))
                            : static_cast<int>(recv(fd_, buf, sizeof(buf), 0));
    return n > 0 ? std::string(buf, static_cast<size_t>(n)) : std::string();
  }

  // Reads until `needle` has arrived (or the stream ends); returns all read.
  std::string ReadUntil(std::string_view needle) {
    std::string got;
    while (got.find(needle) == std::string::npos) {
      std::string more = ReadSome();
      if (more.empty()) break;
      got += more;
    }
    return got;
  }

  std::string ReadExactly(size_t n) {
    std::string got;
    while (got.size() < n) {
      std::string more = ReadSome();
      if (more.empty()) break;
      got += more;
    }
    return got;
  }

  // Reads until the client closes (TLS: close_notify or EOF).
  std::string ReadToEnd() {
    std::string got;
    for (std::string more = ReadSome(); !more.empty(); more = ReadSome()) got += more;
    return got;
  }

  bool Write(std::string_view data) {
    size_t done = 0;
    while (done < data.size()) {
      int n =
          ssl_ != nullptr
              ? SSL_write(ssl_, data.data() + done, static_cast<int>(data.size() - done))
              : static_cast<int>(send(fd_, data.data() + done, data.size() - done, MSG_NOSIGNAL));
      if (n <= 0) return false;
      done += static_cast<size_t>(n);
    }
    return true;
  }

  void SendCloseNotify() {
    if (ssl_ != nullptr) SSL_shutdown(ssl_);
  }

 private:
  int fd_;
  SSL_CTX* ctx_ = nullptr;
  SSL* ssl_ = nullptr;
  std::optional<std::string> sni_;
};

// Listens on 127.0.0.1 (ephemeral port) and runs `script` in a thread on the
// first connection accepted within kServerIoTimeoutMs.
class TestServer {
 public:
  using Script = std::function<void(ServerConn&)>;

  explicit TestServer(Script script) {
    listen_fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(addr);
    if (bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), len) != 0 ||
        listen(listen_fd_, 4) != 0 ||
        getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
      ADD_FAILURE() << "cannot listen on 127.0.0.1";
      return;
    }
    port_ = ntohs(addr.sin_port);
    thread_ = std::thread([this, script = std::move(script)] {
      pollfd pfd{listen_fd_, POLLIN, 0};
      if (poll(&pfd, 1, kServerIoTimeoutMs) != 1) return;
      int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (fd < 0) return;
      accepted_ = true;
      ServerConn conn(fd);
      script(conn);
    });
  }

  ~TestServer() {
    Join();
    close(listen_fd_);
  }

  // Waits for the script to finish; its results are safe to read after.
  void Join() {
    if (thread_.joinable()) thread_.join();
  }

  uint16_t port() const { return port_; }
  bool accepted() const { return accepted_; }

 private:
  int listen_fd_ = -1;
  uint16_t port_ = 0;
  std::atomic<bool> accepted_{false};
  std::thread thread_;
};

// A loopback port with nothing listening: bound, then closed.
uint16_t ClosedPort() {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(addr);
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), len) != 0 ||
      getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    ADD_FAILURE() << "cannot bind a port on 127.0.0.1";
  }
  close(fd);
  return ntohs(addr.sin_port);
}

// --- Client side ------------------------------------------------------------

// Records every callback; optional hooks act on them.
class Recorder : public ConnectionObserver {
 public:
  void OnConnected() override {
    events.push_back("connected");
    ++connected;
    if (on_connected) on_connected();
  }
  void OnData(std::string_view data) override {
    if (events.empty() || events.back() != "data") events.push_back("data");
    ++data_calls;
    received.append(data);
    if (on_data) on_data(data);
  }
  void OnTlsStarted() override {
    events.push_back("tls");
    ++tls_started;
    if (on_tls_started) on_tls_started();
  }
  void OnClosed(Status s) override {
    events.push_back("closed");
    ++closed;
    closed_at = Clock::now();
    status = std::move(s);
    if (on_closed) on_closed();
  }

  std::function<void()> on_connected;
  std::function<void(std::string_view)> on_data;
  std::function<void()> on_tls_started;
  std::function<void()> on_closed;

  std::vector<std::string> events;
  int connected = 0;
  int data_calls = 0;
  int tls_started = 0;
  int closed = 0;
  std::string received;
  std::optional<Status> status;
  Clock::time_point closed_at;
};

uv_loop_t* Uv(EventLoop& loop) { return static_cast<uv_loop_t*>(loop.raw()); }

int CountHandles(EventLoop& loop) {
  int n = 0;
  uv_walk(
      Uv(loop), [](uv_handle_t*, void* arg) { ++*static_cast<int*>(arg); }, &n);
  return n;
}

// Runs the loop until nothing is left. A watchdog, which does not keep the
// loop alive itself, fails the test and calls on_stuck (e.g. Close) if that
// takes longer than kLoopLimitMs. Then checks that no handle is left.
void RunBounded(EventLoop& loop, std::function<void()> on_stuck) {
  struct Watchdog {
    uv_timer_t timer;
    std::function<void()> on_stuck;
  } dog{{}, std::move(on_stuck)};
  uv_timer_init(Uv(loop), &dog.timer);
  dog.timer.data = &dog;
  uv_timer_start(
      &dog.timer,
      [](uv_timer_t* t) {
        ADD_FAILURE() << "the loop was still busy after " << kLoopLimitMs << " ms";
        auto* d = static_cast<Watchdog*>(t->data);
        if (d->on_stuck) d->on_stuck();
      },
      kLoopLimitMs, 0);
  uv_unref(reinterpret_cast<uv_handle_t*>(&dog.timer));
  loop.Run();
  uv_close(reinterpret_cast<uv_handle_t*>(&dog.timer), nullptr);
  loop.Run();  // lets the watchdog's close finish
  EXPECT_EQ(CountHandles(loop), 0) << "handles left open on the loop";
}

ConnectOptions Options(uint16_t port, bool implicit_tls, const std::string& host = "127.0.0.1") {
  ConnectOptions o;
  o.host = host;
  o.port = port;
  o.implicit_tls = implicit_tls;
  o.ca_file = ThePki().ca_file;
  o.connect_timeout_ms = 3000;
  o.read_timeout_ms = 3000;
  return o;
}

std::string Pattern(size_t n, unsigned seed) {
  std::string s(n, '\0');
  for (size_t i = 0; i < n; ++i) s[i] = static_cast<char>((i * 131 + seed) % 251);
  return s;
}

bool Contains(const std::string& haystack, std::string_view needle) {
  return haystack.find(needle) != std::string::npos;
}

void ExpectError(const Recorder& rec, ErrorKind kind, std::string_view fragment) {
  ASSERT_EQ(rec.closed, 1);
  ASSERT_TRUE(rec.status.has_value());
  ASSERT_FALSE(rec.status->ok()) << "expected an error mentioning: " << fragment;
  EXPECT_EQ(rec.status->error().kind, kind) << rec.status->error().message;
  EXPECT_TRUE(Contains(rec.status->error().message, fragment))
      << "message: " << rec.status->error().message << "\nexpected to contain: " << fragment;
}

void ExpectClosedOk(const Recorder& rec) {
  ASSERT_EQ(rec.closed, 1);
  ASSERT_TRUE(rec.status.has_value());
  EXPECT_TRUE(rec.status->ok()) << rec.status->error().message;
}

// --- EventLoop ----------------------------------------------------------------

TEST(EventLoopTest, PostRunsCallbacksInDelayOrder) {
  EventLoop loop;
  std::string order;
  loop.Post([&] { order += "c"; }, 30);
  loop.Post([&] { order += "a"; });
  loop.Post(
      [&] {
        order += "b";
        loop.Post([&] { order += "d"; }, 40);  // posting from a posted call
      },
      10);
  RunBounded(loop, nullptr);
  EXPECT_EQ(order, "abcd");
}

TEST(EventLoopTest, DestructorDropsPendingPostsWithoutRunningThem) {
  bool called = false;
  auto start = Clock::now();
  {
    EventLoop loop;
    loop.Post([&] { called = true; }, 60000);
  }
  EXPECT_FALSE(called);
  EXPECT_LT(Clock::now() - start, std::chrono::seconds(1));
}

// --- Plaintext ----------------------------------------------------------------

TEST(ConnectionTest, PlaintextRoundTrip) {
  std::string server_got;
  TestServer server([&](ServerConn& c) {
    c.Write("* OK hello\r\n");
    server_got = c.ReadUntil("a NOOP\r\n");
    c.Write("a OK done\r\n");
    c.ReadToEnd();
  });
  EventLoop loop;
  Recorder rec;
  Connection conn(&loop, &rec);
  rec.on_connected = [&] { conn.Write("a NOOP\r\n"); };
  rec.on_data = [&](std::string_view) {
    if (Contains(rec.received, "a OK done\r\n")) conn.Close();
  };
  conn.Connect(Options(server.port(), /*implicit_tls=*/false));
  RunBounded(loop, [&] { conn.Close(); });
  server.Join();

  ExpectClosedOk(rec);
  EXPECT_EQ(rec.connected, 1);
  EXPECT_FALSE(conn.tls_active());
  EXPECT_EQ(rec.received, "* OK hello\r\na OK done\r\n");
  EXPECT_EQ(server_got, "a NOOP\r\n");
}

// --- Implicit TLS -----------------------------------------------------------------

TEST(ConnectionTest, ImplicitTlsCarriesMegabytesBothWays) {
  const std::string upload = Pattern(5 * 1024 * 1024 + 17, 1);
  const std::string download = Pattern(3 * 1024 * 1024 + 5, 2);
  bool handshake_ok = false;
  std::optional<std::string> sni;
  bool upload_intact = false;
  TestServer server([&](ServerConn& c) {
    handshake_ok = c.StartTls(ThePki().server);
    sni = c.sni();
    if (!handshake_ok) return;
    upload_intact = c.ReadExactly(upload.size()) == upload;
    c.Write(download);
    c.ReadToEnd();
  });
  EventLoop loop;
  Recorder rec;
  Connection conn(&loop, &rec);
  rec.on_data = [&](std::string_view) {
    if (rec.received.size() >= download.size()) conn.Close();
  };
  conn.Connect(Options(server.port(), /*implicit_tls=*/true));
  // Queued before the handshake; must go out encrypted once it is verified.
  conn.Write(upload);
  RunBounded(loop, [&] { conn.Close(); });
  server.Join();

  ExpectClosedOk(rec);
  EXPECT_TRUE(handshake_ok);
  EXPECT_FALSE(sni.has_value()) << "no SNI for an IP literal, got " << sni.value_or("");
  EXPECT_TRUE(upload_intact);
  EXPECT_EQ(rec.connected, 1);
  EXPECT_TRUE(conn.tls_active());
  EXPECT_EQ(rec.received.size(), download.size());
  EXPECT_TRUE(rec.received == download) << "downloaded bytes differ";
}

TEST(ConnectionTest, ImplicitTlsByHostNameSendsSniAndChecksDnsName) {
  std::optional<std::string> sni;
  TestServer server([&](ServerConn& c) {
    if (!c.StartTls(ThePki().dns_only)) return;
    sni = c.sni();
    c.Write("* OK secure\r\n");
    c.ReadToEnd();
  });
  EventLoop loop;
  Recorder rec;
  Connection conn(&loop, &rec);
  rec.on_data = [&](std::string_view) {
    if (Contains(rec.received, "\r\n")) conn.Close();
  };
  conn.Connect(Options(server.port(), /*implicit_tls=*/true, "localhost"));
  RunBounded(loop, [&] { conn.Close(); });
  server.Join();

  ExpectClosedOk(rec);
  EXPECT_EQ(rec.received, "* OK secure\r\n");
  EXPECT_EQ(sni.value_or("(none)"), "localhost");
}

// A client that verified nothing yet must not have sent the Write it was
// given before the handshake; the server must see no application byte.
TEST(ConnectionTest, UntrustedSelfSignedCertificateIsRejectedBeforeAnyByteIsSent) {
  bool handshake_ok = true;
  std::string after_handshake;
  TestServer server([&](ServerConn& c) {
    handshake_ok = c.StartTls(ThePki().self_signed);
    after_handshake = c.ReadToEnd();  // decrypted if it succeeded, raw if not
  });
  EventLoop loop;
  Recorder rec;
  Connection conn(&loop, &rec);
  ConnectOptions options = Options(server.port(), /*implicit_tls=*/true);
  conn.Connect(options);
  conn.Write("a LOGIN user secret\r\n");
  RunBounded(loop, [&] { conn.Close(); });
  server.Join();

  ExpectError(rec, ErrorKind::kUnavailable, "certificate verify failed");
  ExpectError(rec, ErrorKind::kUnavailable, "TLS handshake with 127.0.0.1:");
  ExpectError(rec, ErrorKind::kUnavailable, "ca_file");
  EXPECT_EQ(rec.connected, 0);
  EXPECT_FALSE(handshake_ok);
  EXPECT_EQ(after_handshake, "");
  EXPECT_FALSE(conn.tls_active());
}

TEST(ConnectionTest, VerifyCertificateFalseAcceptsSelfSigned) {
  TestServer server([&](ServerConn& c) {
    if (!c.StartTls(ThePki().self_signed)) return;
    c.Write("* OK secure\r\n");
    c.ReadToEnd();
  });
  EventLoop loop;
  Recorder rec;
  Connection conn(&loop, &rec);
  rec.on_data = [&](std::string_view) { conn.Close(); };
  ConnectOptions options = Options(server.port(), /*implicit_tls=*/true);
  options.ca_file.clear();
  options.verify_certificate = false;
  conn.Connect(options);
  RunBounded(loop, [&] { conn.Close(); });
  server.Join();

  ExpectClosedOk(rec);
  EXPECT_EQ(rec.connected, 1);
  EXPECT_EQ(rec.received, "* OK secure\r\n");
}

std::string Sha256Of(X509* cert) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  EXPECT_EQ(X509_digest(cert, EVP_sha256(), digest, &length), 1);
  return std::string(reinterpret_cast<const char*>(digest), length);
}

TEST(ConnectionTest, PinnedFingerprintAcceptsItsSelfSignedCertificate) {
  TestServer server([&](ServerConn& c) {
    if (!c.StartTls(ThePki().self_signed)) return;
    c.Write("* OK pinned\r\n");
    c.ReadToEnd();
  });
  EventLoop loop;
  Recorder rec;
  Connection conn(&loop, &rec);
  rec.on_data = [&](std::string_view) { conn.Close(); };
  ConnectOptions options = Options(server.port(), /*implicit_tls=*/true);
  options.ca_file.clear();
  options.pinned_sha256 = Sha256Of(ThePki().self_signed.cert);
  conn.Connect(options);
  RunBounded(loop, [&] { conn.Close(); });
  server.Join();

  ExpectClosedOk(rec);
  EXPECT_EQ(rec.received, "* OK pinned\r\n");
}

TEST(ConnectionTest, PinnedFingerprintMismatchIsRefusedBeforeAnyByteIsSent) {
  std::string after_handshake;
  TestServer server([&](ServerConn& c) {
    c.StartTls(ThePki().server);  // trusted by ca_file, but not the pinned one
    after_handshake = c.ReadToEnd();
  });
  EventLoop loop;
  Recorder rec;
  Connection conn(&loop, &rec);
  ConnectOptions options = Options(server.port(), /*implicit_tls=*/true);
  options.pinned_sha256 = Sha256Of(ThePki().self_signed.cert);
  conn.Connect(options);
  conn.Write("a LOGIN user secret\r\n");
  RunBounded(loop, [&] { conn.Close(); });
  server.Join();

  ExpectError(rec, ErrorKind::kUnavailable, "SHA-256 fingerprint is ");
  ExpectError(rec, ErrorKind::kUnavailable, ", not the pinned ");
  ASSERT_FALSE(rec.status.value().ok());
  EXPECT_TRUE(rec.status->error().lasting);
  EXPECT_EQ(rec.connected, 0);
  EXPECT_EQ(after_handshake.find("LOGIN"), std::string::npos);
}

TEST(ConnectionTest, TlsBelowVersion12IsRefused) {
  TestServer server([&](ServerConn& c) {
    c.StartTls(ThePki().server, TLS1_1_VERSION);
    c.ReadToEnd();
  });
  EventLoop loop;
  Recorder rec;
  Connection conn(&loop, &rec);
  conn.Connect(Options(server.port(), /*implicit_tls=*/true));
  conn.Write("a LOGIN user secret\r\n");
  RunBounded(loop, [&] { conn.Close(); });
  server.Join();

  ExpectError(rec, ErrorKind::kUnavailable, "TLS handshake with 127.0.0.1:");
  ASSERT_FALSE(rec.status.value().ok());
  EXPECT_TRUE(rec.status->error().lasting) << rec.status->error().message;
  EXPECT_EQ(rec.connected, 0);
}

TEST(ConnectionTest, IpAddressMissingFromCertificateIsRejected) {
  TestServer server([&](ServerConn& c) {
    c.StartTls(ThePki().dns_only);  // DNS:localhost only
    c.ReadToEnd();
  });
  EventLoop loop;
  Recorder rec;
  Connection conn(&loop, &rec);
  conn.Connect(Options(server.port(), /*implicit_tls=*/true, "127.0.0.1"));
  RunBounded(loop, [&] { conn.Close(); });
  server.Join();

  ExpectError(rec, ErrorKind::kUnavailable, "IP address mismatch");
  EXPECT_EQ(rec.connected, 0);
}

TEST(ConnectionTest, HostNameMissingFromCertificateIsRejected) {
  TestServer server([&](ServerConn& c) {
    c.StartTls(ThePki().other_name);  // DNS:mail.example.net, trusted CA
    c.ReadToEnd();
  });
  EventLoop loop;
  Recorder rec;
  Connection conn(&loop, &rec);
  conn.Connect(Options(server.port(), /*implicit_tls=*/true, "localhost"));
  RunBounded(loop, [&] { conn.Close(); });
  server.Join();

  ExpectError(rec, ErrorKind::kUnavailable, "hostname mismatch");
  ExpectError(rec, ErrorKind::kUnavailable, "not valid for localhost");
  EXPECT_EQ(rec.connected, 0);
}

// RFC 9525: no fallback to the subject CN, even when the cert has no DNS SAN.
TEST(ConnectionTest, CommonNameIsNotAcceptedAsHostName) {
  TestServer server([&](ServerConn& c) {
    c.StartTls(ThePki().cn_only);  // CN=localhost, SAN IP:127.0.0.1 only
    c.ReadToEnd();
  });
  EventLoop loop;
  Recorder rec;
  Connection conn(&loop, &rec);
  conn.Connect(Options(server.port(), /*implicit_tls=*/true, "localhost"));
  RunBounded(loop, [&] { conn.Close(); });
  server.Join();

  ExpectError(rec, ErrorKind::kUnavailable, "hostname mismatch");
}

TEST(ConnectionTest, ImplicitTlsAgainstPlaintextServerFails) {
  TestServer server([&](ServerConn& c) {
    c.Write("* OK IMAP4rev1 ready, no TLS here\r\n");
    c.ReadToEnd();
  });
  EventLoop loop;
  Recorder rec;
  Connection conn(&loop, &rec);
  conn.Connect(Options(server.port(), /*implicit_tls=*/true));
  RunBounded(loop, [&] { conn.Close(); });
  server.Join();

  ExpectError(rec, ErrorKind::kUnavailable, "TLS handshake with 127.0.0.1:");
  EXPECT_EQ(rec.connected, 0);
  EXPECT_EQ(rec.data_calls, 0);
}

// --- STARTTLS -------------------------------------------------------------------

TEST(ConnectionTest, StartTlsUpgradesAndDropsPlaintextLeftovers) {
  std::string server_plain;
  std::string server_secure;
  bool handshake_ok = false;
  TestServer server([&](ServerConn& c) {
    c.Write("* OK plain\r\n");
    server_plain = c.ReadUntil("a STARTTLS\r\n");
    // The injected bytes ride in front of the handshake, as in a
    // response-injection attack; they must never count as protected data.
    c.Write("a OK begin TLS\r\nINJECTED");
    handshake_ok = c.StartTls(ThePki().server);
    if (!handshake_ok) return;
    c.Write("* OK secure\r\n");
    server_secure = c.ReadUntil("b CAPABILITY\r\n");
    c.Write("b OK done\r\n");
    c.ReadToEnd();
  });
  EventLoop loop;
  Recorder rec;
  Connection conn(&loop, &rec);
  std::string plain;
  std::string secure;
  bool asked = false;
  bool upgraded = false;
  rec.on_data = [&](std::string_view data) {
    if (!upgraded) {
      plain.append(data);
      if (!asked && Contains(plain, "* OK plain\r\n")) {
        asked = true;
        conn.Write("a STARTTLS\r\n");
      }
      if (Contains(plain, "a OK begin TLS\r\nINJECTED")) {
        upgraded = true;
        plain.clear();  // what the IMAP layer does with its buffer
        conn.StartTls();
        conn.Write("b CAPABILITY\r\n");  // queued until the server is verified
        EXPECT_FALSE(conn.tls_active());
      }
      return;
    }
    secure.append(data);
    if (Contains(secure, "b OK done\r\n")) conn.Close();
  };
  conn.Connect(Options(server.port(), /*implicit_tls=*/false));
  RunBounded(loop, [&] { conn.Close(); });
  server.Join();

  ExpectClosedOk(rec);
  EXPECT_TRUE(handshake_ok);
  EXPECT_EQ(server_plain, "a STARTTLS\r\n");
  EXPECT_EQ(server_secure, "b CAPABILITY\r\n");
  EXPECT_EQ(secure, "* OK secure\r\nb OK done\r\n");
  EXPECT_TRUE(conn.tls_active());
  EXPECT_EQ(rec.tls_started, 1);
  std::vector<std::string> expected = {"connected", "data", "tls", "data", "closed"};
  EXPECT_EQ(rec.events, expected);
}

TEST(ConnectionTest, StartTlsWithUntrustedCertificateFails) {
  std::string after;
  TestServer server([&](ServerConn& c) {
    c.Write("* OK plain\r\n");
    c.StartTls(ThePki().self_signed);
    after = c.ReadToEnd();
  });
  EventLoop loop;
  Recorder rec;
  Connection conn(&loop, &rec);
  rec.on_data = [&](std::string_view) {
    conn.StartTls();
    conn.Write("a LOGIN user secret\r\n");
  };
  conn.Connect(Options(server.port(), /*implicit_tls=*/false));
  RunBounded(loop, [&] { conn.Close(); });
  server.Join();

  ExpectError(rec, ErrorKind::kUnavailable, "certificate verify failed");
  EXPECT_EQ(rec.tls_started, 0);
  EXPECT_EQ(after, "");
}

TEST(ConnectionTest, StartTlsOnATlsConnectionIsAnInternalError) {
  TestServer server([&](ServerConn& c) {
    if (!c.StartTls(ThePki().server)) return;
    c.ReadToEnd();
  });
  EventLoop loop;
  Recorder rec;
  Connection conn(&loop, &rec);
  rec.on_connected = [&] {
    conn.StartTls();
    EXPECT_EQ(rec.closed, 0) << "OnClosed must not run inside StartTls";
  };
  conn.Connect(Options(server.port(), /*implicit_tls=*/true));
  RunBounded(loop, [&] { conn.Close(); });
  server.Join();

  ExpectError(rec, ErrorKind::kInternal, "already uses TLS");
}

// --- Connect failures and timeouts ---------------------------------------------

TEST(ConnectionTest, ConnectionRefused) {
  uint16_t port = ClosedPort();
  EventLoop loop;
  Recorder rec;
  Connection conn(&loop, &rec);
  conn.Connect(Options(port, /*implicit_tls=*/false));
  RunBounded(loop, [&] { conn.Close(); });

  ExpectError(rec, ErrorKind::kUnavailable,
              "connect to 127.0.0.1:" + std::to_string(port) + " failed: connection refused");
  EXPECT_EQ(rec.connected, 0);
}

TEST(ConnectionTest, ConnectionRefusedByHostName) {
  uint16_t port = ClosedPort();
  EventLoop loop;
  Recorder rec;
  Connection conn(&loop, &rec);
  conn.Connect(Options(port, /*implicit_tls=*/true, "localhost"));
  RunBounded(loop, [&] { conn.Close(); });

  ExpectError(rec, ErrorKind::kUnavailable, "connect to localhost:" + std::to_string(port));
  ExpectError(rec, ErrorKind::kUnavailable, "connection refused");
}

// IPv6 literals, with or without URL brackets, appear bracketed in messages.
// Nothing listens on [::1] here; depending on the host's IPv6 support the
// attempt is refused or the address is unusable, but it fails cleanly.
TEST(ConnectionTest, Ipv6LiteralFailureNamesTheBracketedAddress) {
  uint16_t port = ClosedPort();
  for (const char* host : {"::1", "[::1]"}) {
    EventLoop loop;
    Recorder rec;
    Connection conn(&loop, &rec);
    conn.Connect(Options(port, /*implicit_tls=*/true, host));
    RunBounded(loop, [&] { conn.Close(); });
    ExpectError(rec, ErrorKind::kUnavailable,
                "connect to [::1]:" + std::to_string(port) + " failed: ");
  }
}

TEST(ConnectionTest, SilentServerTimesOutTheHandshakeWithinConnectTimeout) {
  TestServer server([&](ServerConn& c) { c.ReadToEnd(); });  // never answers
  EventLoop loop;
  Recorder rec;
  Connection conn(&loop, &rec);
  ConnectOptions options = Options(server.port(), /*implicit_tls=*/true);
  options.connect_timeout_ms = 300;
  auto start = Clock::now();
  conn.Connect(options);
  RunBounded(loop, [&] { conn.Close(); });
  server.Join();

  ExpectError(rec, ErrorKind::kTemporary, "TLS handshake with 127.0.0.1:");
  ExpectError(rec, ErrorKind::kTemporary, "timed out after 0.3 s");
  EXPECT_TRUE(server.accepted());
  auto elapsed = rec.closed_at - start;
  EXPECT_GE(elapsed, std::chrono::milliseconds(250));
  EXPECT_LT(elapsed, std::chrono::milliseconds(1500));
}

TEST(ConnectionTest, ReadTimeoutIsTemporary) {
  TestServer server([&](ServerConn& c) {
    c.Write("* OK hello\r\n");
    c.ReadToEnd();  // then silence
  });
  EventLoop loop;
  Recorder rec;
  Connection conn(&loop, &rec);
  ConnectOptions options = Options(server.port(), /*implicit_tls=*/false);
  options.read_timeout_ms = 300;
  Clock::time_point last_data;
  rec.on_data = [&](std::string_view) { last_data = Clock::now(); };
  conn.Connect(options);
  RunBounded(loop, [&] { conn.Close(); });
  server.Join();

  ExpectError(rec, ErrorKind::kTemporary,
              "no data from 127.0.0.1:" + std::to_string(server.port()) + " for 0.3 s");
  EXPECT_EQ(rec.received, "* OK hello\r\n");
  // Measured from the last bytes received, not from the connect.
  EXPECT_GE(rec.closed_at - last_data, std::chrono::milliseconds(250));
  EXPECT_LT(rec.closed_at - last_data, std::chrono::milliseconds(1500));
}

// Data arriving more often than the timeout keeps the connection alive; the
// timeout counts from the last arrival.
TEST(ConnectionTest, ReadTimeoutCountsFromTheLastArrival) {
  TestServer server([&](ServerConn& c) {
    for (int i = 0; i < 4; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(150));
      c.Write("* tick\r\n");
    }
    c.ReadToEnd();
  });
  EventLoop loop;
  Recorder rec;
  Connection conn(&loop, &rec);
  ConnectOptions options = Options(server.port(), /*implicit_tls=*/false);
  options.read_timeout_ms = 300;
  Clock::time_point last_data;
  rec.on_data = [&](std::string_view) { last_data = Clock::now(); };
  conn.Connect(options);
  RunBounded(loop, [&] { conn.Close(); });
  server.Join();

  ExpectError(rec, ErrorKind::kTemporary, "for 0.3 s");
  EXPECT_EQ(rec.received, "* tick\r\n* tick\r\n* tick\r\n* tick\r\n");
  EXPECT_GE(rec.closed_at - last_data, std::chrono::milliseconds(250));
}

TEST(ConnectionTest, MissingCaFileIsAnErrorNamingThePath) {
  const std::string missing = ThePki().dir + "/no-such-ca.pem";
  EventLoop loop;
  Recorder rec;
  Connection conn(&loop, &rec);
  ConnectOptions options = Options(ClosedPort(), /*implicit_tls=*/true);
  options.ca_file = missing;
  conn.Connect(options);
  EXPECT_EQ(rec.closed, 0) << "OnClosed must not run inside Connect";
  RunBounded(loop, [&] { conn.Close(); });

  ExpectError(rec, ErrorKind::kConfig, missing);
  ExpectError(rec, ErrorKind::kConfig, "No such file or directory");
}

TEST(ConnectionTest, CaFileWithoutCertificatesIsAnErrorNamingThePath) {
  const std::string bogus = ThePki().dir + "/not-a-ca.pem";
  std::FILE* f = std::fopen(bogus.c_str(), "w");
  ASSERT_NE(f, nullptr);
  EXPECT_GE(std::fputs("this is not PEM\n", f), 0);
  EXPECT_EQ(std::fclose(f), 0);
  EventLoop loop;
  Recorder rec;
  Connection conn(&loop, &rec);
  ConnectOptions options = Options(ClosedPort(), /*implicit_tls=*/true);
  options.ca_file = bogus;
  conn.Connect(options);
  RunBounded(loop, [&] { conn.Close(); });

  ExpectError(rec, ErrorKind::kConfig, bogus);
}

// --- Connection loss ------------------------------------------------------------

TEST(ConnectionTest, PlaintextServerCloseIsConnectionLoss) {
  TestServer server([&](ServerConn& c) { c.Write("* BYE\r\n"); });
  EventLoop loop;
  Recorder rec;
  Connection conn(&loop, &rec);
  conn.Connect(Options(server.port(), /*implicit_tls=*/false));
  RunBounded(loop, [&] { conn.Close(); });

  ExpectError(rec, ErrorKind::kUnavailable, "closed by the server");
  EXPECT_EQ(rec.received, "* BYE\r\n");
}

TEST(ConnectionTest, TlsCloseNotifyIsConnectionLoss) {
  TestServer server([&](ServerConn& c) {
    if (!c.StartTls(ThePki().server)) return;
    c.Write("* BYE\r\n");
    c.SendCloseNotify();
    c.ReadToEnd();
  });
  EventLoop loop;
  Recorder rec;
  Connection conn(&loop, &rec);
  conn.Connect(Options(server.port(), /*implicit_tls=*/true));
  RunBounded(loop, [&] { conn.Close(); });

  ExpectError(rec, ErrorKind::kUnavailable, "closed by the server");
  EXPECT_EQ(rec.received, "* BYE\r\n");
}

TEST(ConnectionTest, TlsEofWithoutCloseNotifyIsConnectionLoss) {
  TestServer server([&](ServerConn& c) {
    if (!c.StartTls(ThePki().server)) return;
    c.Write("* BYE\r\n");
  });  // the socket closes without close_notify
  EventLoop loop;
  Recorder rec;
  Connection conn(&loop, &rec);
  conn.Connect(Options(server.port(), /*implicit_tls=*/true));
  RunBounded(loop, [&] { conn.Close(); });

  ExpectError(rec, ErrorKind::kUnavailable, "without TLS close_notify");
  EXPECT_EQ(rec.received, "* BYE\r\n");
}

// --- Close and lifetime -----------------------------------------------------------

void CloseFromOnData(bool tls) {
  TestServer server([&](ServerConn& c) {
    if (tls && !c.StartTls(ThePki().server)) return;
    // Two TLS records (or two segments) that likely arrive in one read.
    c.Write("* first\r\n");
    c.Write("* second\r\n");
    c.ReadToEnd();
  });
  EventLoop loop;
  Recorder rec;
  Connection conn(&loop, &rec);
  rec.on_data = [&](std::string_view) {
    conn.Close();
    conn.Close();  // idempotent
    conn.Write("ignored after Close");
    conn.StartTls();  // ignored after Close
    EXPECT_EQ(rec.closed, 0) << "OnClosed must not run inside Close";
  };
  conn.Connect(Options(server.port(), tls));
  RunBounded(loop, [&] { conn.Close(); });
  server.Join();

  ExpectClosedOk(rec);
  EXPECT_EQ(rec.data_calls, 1) << "no OnData after Close";
  EXPECT_EQ(rec.events.back(), "closed");
}

TEST(ConnectionTest, CloseFromOnDataIsSafePlaintext) { CloseFromOnData(false); }
TEST(ConnectionTest, CloseFromOnDataIsSafeTls) { CloseFromOnData(true); }

TEST(ConnectionTest, CloseSendsQueuedBytesThenCloseNotify) {
  std::string got;
  TestServer server([&](ServerConn& c) {
    if (!c.StartTls(ThePki().server)) return;
    got = c.ReadToEnd();  // ends cleanly on close_notify
  });
  EventLoop loop;
  Recorder rec;
  Connection conn(&loop, &rec);
  rec.on_connected = [&] {
    conn.Write("a LOGOUT\r\n");
    conn.Close();
  };
  conn.Connect(Options(server.port(), /*implicit_tls=*/true));
  RunBounded(loop, [&] { conn.Close(); });
  server.Join();

  ExpectClosedOk(rec);
  EXPECT_EQ(got, "a LOGOUT\r\n");
}

TEST(ConnectionTest, CloseBeforeConnectReportsOkFromTheLoop) {
  EventLoop loop;
  Recorder rec;
  Connection conn(&loop, &rec);
  conn.Close();
  conn.Close();
  EXPECT_EQ(rec.closed, 0);
  conn.Connect(Options(ClosedPort(), false));  // ignored after Close
  RunBounded(loop, nullptr);
  ExpectClosedOk(rec);
  EXPECT_EQ(rec.events, std::vector<std::string>{"closed"});
}

TEST(ConnectionTest, DestroyingWithoutConnectIsFine) {
  EventLoop loop;
  Recorder rec;
  { Connection conn(&loop, &rec); }
  RunBounded(loop, nullptr);
  EXPECT_EQ(rec.closed, 0);
}

TEST(ConnectionTest, OwnerMayDestroyTheConnectionAfterOnClosed) {
  TestServer server([&](ServerConn& c) { c.Write("* BYE\r\n"); });
  EventLoop loop;
  Recorder rec;
  auto conn = std::make_unique<Connection>(&loop, &rec);
  rec.on_closed = [&] { loop.Post([&] { conn.reset(); }); };
  conn->Connect(Options(server.port(), /*implicit_tls=*/false));
  RunBounded(loop, [&] { conn->Close(); });
  EXPECT_EQ(conn, nullptr);
  EXPECT_EQ(rec.closed, 1);
}

// A safety net, not a licence: the contract says to wait for OnClosed.
TEST(ConnectionTest, DestroyingAnOpenConnectionClosesItQuietly) {
  bool server_saw_end = false;
  TestServer server([&](ServerConn& c) {
    c.ReadToEnd();
    server_saw_end = true;
  });
  EventLoop loop;
  Recorder rec;
  auto conn = std::make_unique<Connection>(&loop, &rec);
  conn->Connect(Options(server.port(), /*implicit_tls=*/true));  // handshake never ends
  // Destroy it mid-handshake: once the server has accepted, plus a little.
  std::function<void()> destroy_when_accepted = [&] {
    if (server.accepted()) {
      loop.Post([&] { conn.reset(); }, 20);
    } else {
      loop.Post(destroy_when_accepted, 5);
    }
  };
  loop.Post(destroy_when_accepted);
  RunBounded(loop, nullptr);
  EXPECT_EQ(conn, nullptr);
  server.Join();
  EXPECT_EQ(rec.closed, 0);
  EXPECT_TRUE(server_saw_end);
}

}  // namespace
}  // namespace mailmirror::net
