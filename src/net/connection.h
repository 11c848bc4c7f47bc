// A client byte stream over TCP, optionally TLS, driven by a libuv loop.
//
// TLS runs through OpenSSL memory BIOs: the socket never sees OpenSSL, and
// OpenSSL never sees the socket. Certificate verification is on by default:
// the chain must verify against the system store (plus ConnectOptions::
// ca_file), the certificate must match the configured host name (DNS SAN, or
// IP SAN for an IP literal; no CN fallback), and SNI carries the host name.
//
// Threading and lifetime: a Connection lives on its loop's thread. Observer
// callbacks are called from the loop, never from inside a Connection method
// (a call that fails synchronously reports through OnClosed on a later loop
// turn), and no callback may destroy the Connection: the owner destroys it
// only after OnClosed, or without ever calling Connect.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "mailmirror/status.h"

namespace mailmirror::net {

class EventLoop;

struct ConnectOptions {
  std::string host;  // DNS name or IP literal; also used for SNI and the name check
  uint16_t port = 993;
  bool implicit_tls = true;  // TLS handshake right after TCP connect
  std::string ca_file;       // extra trusted CA certificates (PEM), optional
  bool verify_certificate = true;
  // SHA-256 of the server certificate (32 bytes) to accept instead of a
  // chain to a trusted CA and a matching name: a pinned self-signed server.
  std::string pinned_sha256;
  uint32_t connect_timeout_ms = 30000;  // resolve + TCP connect + TLS handshake
  uint32_t read_timeout_ms = 120000;    // no bytes received for this long
  // Bytes per second a response must at least arrive at once it has begun
  // (SetMidResponse), over windows of read_timeout_ms: a server trickling a
  // byte at a time never looks idle, but is cut like a stalled one. 0: none.
  uint32_t min_rate = 0;
};

class ConnectionObserver {
 public:
  virtual ~ConnectionObserver() = default;
  // TCP is up and, with implicit TLS, the handshake has verified the server.
  virtual void OnConnected() = 0;
  // Plaintext bytes from the server (decrypted when TLS is on). The view is
  // valid only during the call.
  virtual void OnData(std::string_view data) = 0;
  // StartTls finished its handshake; the stream is now encrypted.
  virtual void OnTlsStarted() = 0;
  // Called exactly once, last. ok() after Close(); otherwise the error:
  // kUnavailable for resolve/connect/TLS/verification failures and lost
  // connections, kTemporary for timeouts.
  virtual void OnClosed(Status status) = 0;
  // What was queued (queued_bytes) went mostly out: a writer holding back
  // may write more.
  virtual void OnDrained() {}
};

class Connection {
 public:
  Connection(EventLoop* loop, ConnectionObserver* observer);
  ~Connection();
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  // Starts resolving and connecting. Outcome: OnConnected or OnClosed.
  void Connect(const ConnectOptions& options);

  // Queues bytes for sending (encrypted when TLS is on). Ignored after Close.
  void Write(std::string_view data);

  // Starts a TLS handshake on the connected plaintext stream (STARTTLS).
  // Bytes received but not yet delivered are discarded. Outcome:
  // OnTlsStarted or OnClosed.
  void StartTls();

  // Closes the connection; OnClosed(ok) follows from the loop.
  void Close();
  // Closes the connection at once; OnClosed(error) follows from the loop.
  void Abort(const Error& error);

  // Whether the reader holds part of a response and waits for the rest:
  // while it does, ConnectOptions::min_rate applies.
  void SetMidResponse(bool mid_response);

  bool tls_active() const;

  // Bytes given to Write and not yet handed to the kernel. Once it has
  // been above kDrainedBytes, OnDrained follows when it falls below.
  size_t queued_bytes() const;
  static constexpr size_t kDrainedBytes = 256 << 10;

  // True when connected to a loopback address (127.0.0.0/8, ::1), where
  // compressing the stream costs CPU and saves nothing.
  bool peer_is_loopback() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace mailmirror::net
