// A private, throwaway Dovecot IMAP server on 127.0.0.1 for integration
// tests, wrapping scripts/dovecot-fixture (see the script for the details of
// the configuration).
//
//   auto server = DovecotServer::Start();
//   ASSERT_NE(server, nullptr);  // Start() already reported why
//   ASSERT_TRUE(server->Seed("alice"));
//   ... connect to server->host():server->imap_port() (STARTTLS or plain
//   LOGIN) or server->imaps_port() (TLS; trust server->ca_file(), name
//   "localhost" or 127.0.0.1) ...
//
// Each server has its own directory, ports, certificate and users, so tests
// may run several at once. The server stops and its directory is removed
// when the object is destroyed, including when the test failed; set
// MAILMIRROR_KEEP_FIXTURE=1 to keep the directory for a post-mortem.
//
// Threading: an object may be used from one thread at a time.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace mailmirror::testing {

// The users every server has (passwd-file, plain passwords).
struct FixtureUser {
  const char* name;
  const char* password;
};
inline constexpr FixtureUser kAlice{"alice", "alice-secret"};
inline constexpr FixtureUser kBob{"bob", "bob-secret"};
// Password with a double quote, a backslash and a space, to test quoting.
inline constexpr FixtureUser kPwUser{"pw-user", "p\"w\\ d"};

// The standard sample set that Seed() writes, per folder. UTF-8 names; the
// hierarchy delimiter is "/". Within a folder the \Seen messages come first
// (lowest UIDs).
struct SeededFolder {
  const char* name;       // UTF-8
  const char* wire_name;  // as the server sends it (modified UTF-7)
  int messages;
  int seen;
};
inline constexpr SeededFolder kSeededFolders[] = {
    {"INBOX", "INBOX", 5, 2},
    {"Archive", "Archive", 2, 2},
    {"Archive/2023", "Archive/2023", 3, 1},
    {"Archive/2023/Q1", "Archive/2023/Q1", 1, 0},
    {"Entw\xC3\xBCrfe", "Entw&APw-rfe", 2, 1},
    {"Sent Items", "Sent Items", 4, 4},
    {"Empty", "Empty", 0, 0},
};
// INBOX message 3 has an RFC 2047 subject ("Grüße aus Köln"); INBOX message 4
// is ~200 KB with a base64 attachment.

// The bulk set that SeedBulk() writes (scripts/dovecot-fixture seed-bulk
// has the details): with the default options 420 ordinary messages spread
// over INBOX (200), Archive (5), Archive/2023 (145), Entwürfe (20, all
// \Draft) and Sent Items (50, all \Seen), plus "Empty" with none; a mix of
// \Seen, \Flagged, \Answered and the keyword $Important; and 8 special
// INBOX messages after the ordinary ones: a raw Latin-1 body, a 100,000
// character line, lone CRs, an unencoded UTF-8 header, no final newline, an
// empty body, every 8-bit byte, and (big_mb > 0) a message with a big_mb MiB
// base64 attachment, \Flagged and unseen. Every message has a unique
// Message-ID; dates and INTERNALDATEs are fixed; server files are LF-only.
struct BulkOptions {
  int count = 420;  // ordinary messages, split in the proportions above
  int big_mb = 20;  // 0: no big message
};
inline constexpr const char* kBulkFolders[] = {
    "INBOX", "Archive", "Archive/2023", "Entw\xC3\xBCrfe", "Sent Items", "Empty",
};
inline constexpr int kBulkSpecialMessages = 7;  // plus the big one

// One message as the server stores it.
struct ServerMessage {
  std::string folder;  // UTF-8
  uint32_t uid = 0;
  std::vector<std::string> flags;  // system flags and keywords, without \Recent
  std::string file;                // the server's Maildir file (LF line ends)
};

struct DovecotOptions {
  // Capabilities to leave out of the post-login CAPABILITY list, e.g.
  // {"CONDSTORE", "QRESYNC", "ENABLE"} to imitate Office 365. The server
  // still implements them; it only stops advertising them. The pre-login
  // greeting then shows the same reduced list.
  std::vector<std::string> hide_capabilities;
  // Offer COMPRESS=DEFLATE (off by default).
  bool compress = false;
  // Sessions one user may have open from one address at a time, as
  // providers cap them (0: effectively unlimited).
  int max_connections = 0;
  // A folder that gets the \All special-use attribute, as Gmail's
  // "[Gmail]/All Mail" has (empty: none).
  std::string all_mail_folder;
  // Special-use attributes for folders of every user, "NAME=\\Flag" each
  // (e.g. "Sent Messages=\\Sent"), as Dovecot's mailbox settings give them.
  std::vector<std::string> special_use;
};

class DovecotServer {
 public:
  // Creates a fresh directory under $TMPDIR (or /tmp) and starts a server in
  // it. On failure reports a GoogleTest failure (ADD_FAILURE) with the
  // script's output and returns nullptr.
  static std::unique_ptr<DovecotServer> Start(const DovecotOptions& options = {});

  // Stops the server and removes its directory.
  ~DovecotServer();
  DovecotServer(const DovecotServer&) = delete;
  DovecotServer& operator=(const DovecotServer&) = delete;

  const std::string& host() const { return host_; }        // "127.0.0.1"
  int imap_port() const { return imap_port_; }             // plain, STARTTLS offered
  int imaps_port() const { return imaps_port_; }           // implicit TLS
  const std::string& ca_file() const { return ca_file_; }  // PEM, self-signed
  const std::string& dir() const { return dir_; }
  std::string log_path() const { return dir_ + "/dovecot.log"; }
  pid_t master_pid() const { return master_pid_; }

  // Writes the standard sample set (kSeededFolders) for `user`. A second call
  // for the same user does nothing. Returns false (and adds a test failure)
  // on error.
  bool Seed(const std::string& user);

  // Stores `message` (RFC 5322 text) in `folder` (UTF-8, created if missing)
  // of `user`, as the newest message, with \Seen if `seen`. Returns false
  // (and adds a test failure) on error.
  bool AddMessage(const std::string& user, const std::string& folder, const std::string& message,
                  bool seen = false);

  // Writes the bulk set (BulkOptions) for `user`, whose store must be
  // empty. Returns false (and adds a test failure) on error.
  bool SeedBulk(const std::string& user, const BulkOptions& options = {});

  // Every message of `user` with its flags and server file, read with
  // doveadm (no IMAP session, so \Seen and the rest stay as they are).
  // nullopt (with a test failure) on error.
  std::optional<std::vector<ServerMessage>> Messages(const std::string& user);

  // Deletes `folder` of `user` and creates it anew with the same messages
  // (bytes, flags, INTERNALDATEs): a new UIDVALIDITY, and UIDs from
  // `min_next_uid` on. Returns false (and adds a test failure) on error.
  bool Recreate(const std::string& user, const std::string& folder, int min_next_uid = 1000);

  // The number of messages in `folder` of `user`, or -1 (with a test
  // failure) if it cannot be read, e.g. the folder does not exist.
  int Count(const std::string& user, const std::string& folder);

  // Stops the server now; the destructor then only removes the directory.
  // Idempotent. Returns false (and adds a test failure) if it did not stop.
  bool Stop();

 private:
  DovecotServer() = default;

  std::string host_ = "127.0.0.1";
  std::string dir_;
  std::string ca_file_;
  int imap_port_ = 0;
  int imaps_port_ = 0;
  pid_t master_pid_ = 0;
  bool running_ = false;
};

}  // namespace mailmirror::testing
