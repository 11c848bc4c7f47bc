// OAuth 2.0 test helpers: access tokens the Dovecot fixture accepts (JWTs
// signed with its HS256 key), and a stand-in for an identity platform's
// endpoints: an HTTPS server on 127.0.0.1 that answers form POSTs with
// scripted JSON (device authorization, token, refresh).
//
// Not for production code. Threading: the public methods may be called
// from any thread while the server runs.
#pragma once

#include <atomic>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace mailmirror::testing {

// The raw HMAC key of scripts/dovecot-fixture's oauth2 passdb.
inline constexpr const char* kFixtureOAuth2Key = "mailmirror-fixture-oauth2-hs256-key";

// A JWT for `subject` (the user name) expiring at `expires_at` (Unix time),
// signed with `key` (HS256).
std::string MintAccessToken(const std::string& subject, int64_t expires_at,
                            const std::string& key = kFixtureOAuth2Key);

struct StubReply {
  int status = 200;
  std::string body;  // JSON
};

struct StubRequest {
  std::string path;
  std::map<std::string, std::string> form;  // decoded fields
};

class HttpsStub {
 public:
  // Writes a self-signed certificate for 127.0.0.1 into `dir` and listens
  // on an ephemeral port; null (with a test failure) on error.
  static std::unique_ptr<HttpsStub> Start(const std::string& dir);
  ~HttpsStub();
  HttpsStub(const HttpsStub&) = delete;
  HttpsStub& operator=(const HttpsStub&) = delete;

  // Replies for `path`, in order; the last one repeats. Unscripted paths
  // get 404.
  void Queue(const std::string& path, StubReply reply);
  std::vector<StubRequest> requests() const;
  size_t CountRequests(const std::string& path) const;

  std::string url(const std::string& path) const;  // https://127.0.0.1:PORT/path
  const std::string& ca_file() const { return cert_file_; }

 private:
  HttpsStub() = default;
  void Serve();
  void Handle(int client);

  std::string cert_file_;
  std::string key_file_;
  void* ssl_context_ = nullptr;  // SSL_CTX
  int listener_ = -1;
  int port_ = 0;
  std::atomic<bool> stopping_{false};
  mutable std::mutex mutex_;
  std::map<std::string, std::deque<StubReply>> replies_;
  std::vector<StubRequest> requests_;
  std::thread thread_;
};

}  // namespace mailmirror::testing
