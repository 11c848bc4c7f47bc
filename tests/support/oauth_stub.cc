#include "support/oauth_stub.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdlib>
#include <string_view>

#include "support/run_command.h"

namespace mailmirror::testing {
namespace {

std::string Base64Url(std::string_view data) {
  std::string out(4 * ((data.size() + 2) / 3) + 1, '\0');
  int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                          reinterpret_cast<const unsigned char*>(data.data()),
                          static_cast<int>(data.size()));
  out.resize(static_cast<size_t>(n));
  while (!out.empty() && out.back() == '=') out.pop_back();
  for (char& c : out) {
    if (c == '+') c = '-';
    if (c == '/') c = '_';
  }
  return out;
}

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::string FormDecode(std::string_view text) {
  std::string out;
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '+') {
      out += ' ';
    } else if (text[i] == '%' && i + 2 < text.size() && HexValue(text[i + 1]) >= 0 &&
               HexValue(text[i + 2]) >= 0) {
      out += static_cast<char>(HexValue(text[i + 1]) * 16 + HexValue(text[i + 2]));
      i += 2;
    } else {
      out += text[i];
    }
  }
  return out;
}

}  // namespace

std::string MintAccessToken(const std::string& subject, int64_t expires_at,
                            const std::string& key) {
  const std::string header = Base64Url(R"({"alg":"HS256","typ":"JWT"})");
  const std::string body =
      Base64Url("{\"sub\":\"" + subject + "\",\"exp\":" + std::to_string(expires_at) + "}");
  const std::string signed_part = header + "." + body;
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int mac_size = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
       reinterpret_cast<const unsigned char*>(signed_part.data()), signed_part.size(), mac,
       &mac_size);
  return signed_part + "." +
         Base64Url(std::string_view(reinterpret_cast<const char*>(mac), mac_size));
}

std::unique_ptr<HttpsStub> HttpsStub::Start(const std::string& dir) {
  std::unique_ptr<HttpsStub> stub(new HttpsStub());
  stub->cert_file_ = dir + "/stub-cert.pem";
  stub->key_file_ = dir + "/stub-key.pem";
  CommandResult made = RunCommand(
      "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 "
      "-subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 -keyout " +
      ShellQuote(stub->key_file_) + " -out " + ShellQuote(stub->cert_file_));
  if (made.exit_code != 0) {
    ADD_FAILURE() << "openssl req failed: " << made.err;
    return nullptr;
  }
  SSL_CTX* context = SSL_CTX_new(TLS_server_method());
  stub->ssl_context_ = context;
  if (context == nullptr ||
      SSL_CTX_use_certificate_chain_file(context, stub->cert_file_.c_str()) != 1 ||
      SSL_CTX_use_PrivateKey_file(context, stub->key_file_.c_str(), SSL_FILETYPE_PEM) != 1) {
    ADD_FAILURE() << "cannot load the stub's certificate";
    return nullptr;
  }
  stub->listener_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof address;
  if (stub->listener_ < 0 ||
      ::bind(stub->listener_, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0 ||
      ::listen(stub->listener_, 16) != 0 ||
      ::getsockname(stub->listener_, reinterpret_cast<sockaddr*>(&address), &length) != 0) {
    ADD_FAILURE() << "cannot listen on 127.0.0.1";
    return nullptr;
  }
  stub->port_ = ntohs(address.sin_port);
  stub->thread_ = std::thread([raw = stub.get()] { raw->Serve(); });
  return stub;
}

HttpsStub::~HttpsStub() {
  stopping_ = true;
  if (thread_.joinable()) thread_.join();
  if (listener_ >= 0) ::close(listener_);
  SSL_CTX_free(static_cast<SSL_CTX*>(ssl_context_));
}

void HttpsStub::Queue(const std::string& path, StubReply reply) {
  std::lock_guard<std::mutex> lock(mutex_);
  replies_[path].push_back(std::move(reply));
}

std::vector<StubRequest> HttpsStub::requests() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return requests_;
}

size_t HttpsStub::CountRequests(const std::string& path) const {
  std::lock_guard<std::mutex> lock(mutex_);
  size_t count = 0;
  for (const StubRequest& request : requests_) count += request.path == path ? 1 : 0;
  return count;
}

std::string HttpsStub::url(const std::string& path) const {
  return "https://127.0.0.1:" + std::to_string(port_) + path;
}

void HttpsStub::Serve() {
  while (!stopping_) {
    pollfd ready{listener_, POLLIN, 0};
    if (::poll(&ready, 1, 50) <= 0) continue;
    int client = ::accept4(listener_, nullptr, nullptr, SOCK_CLOEXEC);
    if (client < 0) continue;
    timeval timeout{5, 0};
    ::setsockopt(client, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
    Handle(client);
    ::close(client);
  }
}

// One request per connection (the client sends Connection: close or
// simply gets it).
void HttpsStub::Handle(int client) {
  SSL* ssl = SSL_new(static_cast<SSL_CTX*>(ssl_context_));
  SSL_set_fd(ssl, client);
  if (SSL_accept(ssl) != 1) {
    SSL_free(ssl);
    return;
  }
  std::string request;
  size_t header_end = std::string::npos;
  size_t content_length = 0;
  char buffer[4096];
  for (;;) {
    if (header_end != std::string::npos && request.size() >= header_end + 4 + content_length) {
      break;
    }
    int n = SSL_read(ssl, buffer, sizeof buffer);
    if (n <= 0) break;
    request.append(buffer, static_cast<size_t>(n));
    if (header_end == std::string::npos) {
      header_end = request.find("\r\n\r\n");
      if (header_end != std::string::npos) {
        std::string headers = request.substr(0, header_end);
        for (char& c : headers) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        size_t at = headers.find("content-length:");
        if (at != std::string::npos)
          content_length = std::strtoul(headers.c_str() + at + 15, nullptr, 10);
      }
    }
  }
  StubRequest parsed;
  const size_t path_start = request.find(' ');
  const size_t path_end = request.find(' ', path_start + 1);
  if (path_start != std::string::npos && path_end != std::string::npos) {
    parsed.path = request.substr(path_start + 1, path_end - path_start - 1);
  }
  if (header_end != std::string::npos) {
    std::string_view body = std::string_view(request).substr(header_end + 4);
    while (!body.empty()) {
      size_t amp = body.find('&');
      std::string_view field = body.substr(0, amp);
      size_t eq = field.find('=');
      parsed.form[FormDecode(field.substr(0, eq))] =
          eq == std::string_view::npos ? "" : FormDecode(field.substr(eq + 1));
      if (amp == std::string_view::npos) break;
      body.remove_prefix(amp + 1);
    }
  }
  StubReply reply{404, R"({"error":"not_found"})"};
  {
    std::lock_guard<std::mutex> lock(mutex_);
    requests_.push_back(parsed);
    auto it = replies_.find(parsed.path);
    if (it != replies_.end() && !it->second.empty()) {
      reply = it->second.front();
      if (it->second.size() > 1) it->second.pop_front();
    }
  }
  std::string response = "HTTP/1.1 " + std::to_string(reply.status) +
                         " Stub\r\nContent-Type: application/json\r\nContent-Length: " +
                         std::to_string(reply.body.size()) + "\r\nConnection: close\r\n\r\n" +
                         reply.body;
  SSL_write(ssl, response.data(), static_cast<int>(response.size()));
  SSL_shutdown(ssl);
  SSL_free(ssl);
}

}  // namespace mailmirror::testing
