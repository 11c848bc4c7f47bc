// The user's configuration: a TOML file with one [accounts.NAME] table per
// IMAP account. See mailmirror.conf(5).
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "mailmirror/providers.h"
#include "mailmirror/status.h"

namespace mailmirror {

enum class TlsMode {
  kImplicit,  // TLS from the first byte (port 993)
  kStartTls,  // plaintext greeting, then STARTTLS; refuse servers without it
  kNone,      // no encryption at all (testing, local tunnels)
};

enum class CompressMode {
  kAuto,  // COMPRESS=DEFLATE when offered, except on loopback connections
  kYes,   // whenever the server offers it
  kNo,
};

// Which way changes may flow (`direction`).
enum class SyncDirection {
  kBoth,  // server changes reach the Maildir and local changes the server
  kPull,  // the server is the master: local changes are not sent
  kPush,  // the Maildir is the master: server changes are not applied
};

// Which sides a kind of change may be applied to (`expunge`, `create`):
// kRemote means "on the server", kLocal "in the Maildir".
enum class Sides { kBoth, kRemote, kLocal, kNone };

inline bool IncludesRemote(Sides sides) { return sides == Sides::kBoth || sides == Sides::kRemote; }
inline bool IncludesLocal(Sides sides) { return sides == Sides::kBoth || sides == Sides::kLocal; }

struct AccountConfig {
  std::string name;      // the NAME of [accounts.NAME]
  std::string provider;  // the preset it started from (providers.h), or empty
  std::string host;
  uint16_t port = 993;
  TlsMode tls = TlsMode::kImplicit;
  CompressMode compress = CompressMode::kAuto;
  std::string ca_file;  // extra trusted CA certificates (PEM), may be empty
  // SHA-256 of the server's certificate (32 bytes), or empty: when set, that
  // certificate is accepted whoever signed it and whatever names it lists.
  std::string tls_fingerprint;
  std::string user;
  std::string password;      // set when the config holds the password itself
  std::string password_cmd;  // else: a shell command printing it
  AuthMechanism auth = AuthMechanism::kAuto;
  // A shell command printing an OAuth 2.0 access token; run again once when
  // the server rejects the token (it may have expired).
  std::string oauth_token_cmd;
  // The built-in OAuth 2.0 client (`mailmirror auth`): from the preset,
  // overridden by the oauth_* keys.
  OAuthEndpoints oauth;
  std::string oauth_client_secret;  // some platforms want one even for device flows
  // Local messages larger than this are not uploaded (the server would
  // refuse them): kept and reported. 0: no limit. From the preset.
  uint64_t max_upload_bytes = 0;
  // maildir, state_dir and ca_file are "~" expanded and lexically normal:
  // no "." or ".." component, no doubled or trailing '/' (string
  // comparisons rely on it).
  std::string maildir;               // local root; required by sync
  std::string layout = "verbatim";   // "verbatim" or "maildir++"
  std::string state_dir;             // index and lock; default <maildir>/.mailmirror
  std::vector<std::string> folders;  // glob patterns, "!" excludes; empty: all
  uint32_t connect_timeout_seconds = 30;
  uint32_t timeout_seconds = 120;  // no data from the server for this long
  // Bytes per second an answer must at least arrive at once it has begun,
  // measured over `timeout` seconds: a server trickling data is cut like a
  // silent one. 0: no floor. Logging in must also finish within
  // connect_timeout + timeout.
  uint32_t min_rate = 1024;
  uint32_t connections = 4;  // IMAP sessions at most, folders in parallel
  SyncDirection direction = SyncDirection::kBoth;
  Sides expunge = Sides::kBoth;  // where deletions of the other side are repeated
  Sides create = Sides::kBoth;   // where folders of the other side are created
  // A run may delete at most this fraction of a folder's messages on either
  // side (folders of more than 20 messages); more stops the folder.
  double max_delete_fraction = 0.5;
  // A dropped, stalled or throttled connection is tried again up to
  // `retries` times, after retry_delay seconds doubled per attempt (with
  // jitter), or as long as a throttling server asks, up to max_retry_wait.
  uint32_t retries = 3;
  // Gmail (servers with X-GM-EXT-1): a message under several labels is
  // stored once and hard-linked into the other label folders ("link"), or
  // downloaded into each ("copy"); [Gmail]/All Mail (the \All folder) is
  // skipped unless gmail_all_mail.
  bool gmail_link_labels = true;
  bool gmail_all_mail = false;
  double retry_delay_seconds = 1;
  double max_retry_wait_seconds = 300;
};

// Whether the account can log in with an OAuth 2.0 access token: a token
// command, or the built-in client (client id and token endpoint known).
inline bool HasTokenSource(const AccountConfig& account) {
  return !account.oauth_token_cmd.empty() ||
         (!account.oauth.client_id.empty() && !account.oauth.token_url.empty());
}
inline bool HasPasswordSource(const AccountConfig& account) {
  return !account.password.empty() || !account.password_cmd.empty();
}

// One rule of a migration's `map` table: a source folder name (UTF-8, '/'
// between levels) and where it goes in the target. Either both end in "*"
// (a prefix move: "Archive/*" = "Old/Archive/*" also maps "Archive" itself
// to "Old/Archive"; "*" alone is every folder) or neither does (an exact
// rename).
struct FolderRule {
  std::string from;
  std::string to;
};

// A [migrations.NAME] table: how `mailmirror migrate` copies the mail of one
// configured account into another. See mailmirror.conf(5).
struct MigrationConfig {
  std::string name;    // the NAME of [migrations.NAME]
  std::string source;  // account names, both in `accounts`, not the same
  std::string target;
  std::vector<std::string> folders;  // source folders: glob patterns, "!" excludes; empty: all
  std::vector<FolderRule> map;       // in file order: the first rule that matches decides
  // A folder no rule maps that has a special-use attribute (RFC 6154: \Sent,
  // \Drafts, \Trash, \Junk, \Archive) goes to the target's folder with the
  // same attribute, whatever its name.
  bool special_use = true;
  // INTERNALDATE bounds, seconds since the epoch (UTC midnight of the date
  // given): only messages at or after `since` and before `before`; 0: none.
  int64_t since = 0;
  int64_t before = 0;
  // Larger messages are skipped and reported; 0: the target account's
  // max_upload_size (its provider's limit), else no limit.
  uint64_t max_bytes = 0;
  // Messages carrying any of these flags (IMAP names, e.g. "\\Deleted" or a
  // keyword) are skipped.
  std::vector<std::string> skip_flags;
  // APPEND sessions to the target at most; 0: the target's `connections`.
  uint32_t connections = 0;
};

struct Config {
  std::string path;                         // the file it was read from
  uint32_t max_accounts = 4;                // accounts synced at once (top-level max_accounts)
  std::vector<AccountConfig> accounts;      // in file order
  std::vector<MigrationConfig> migrations;  // in file order
  // Problems worth a warning that do not stop a run, e.g. a file holding a
  // password that others may read, or tls = "none" to another machine.
  std::vector<std::string> warnings;
};

// The default config path: $XDG_CONFIG_HOME/mailmirror/config.toml, else
// ~/.config/mailmirror/config.toml.
std::string DefaultConfigPath();

// Reads and validates the config file. Errors are kConfig and name the file,
// the line and the key, e.g.
//   "/home/me/.config/mailmirror/config.toml:7: accounts.work.port: expected
//    an integer from 1 to 65535".
Result<Config> LoadConfig(const std::string& path);

// Parses config text; `path` is used in messages only. Besides each key,
// checks that no two accounts share or nest their maildir or state_dir
// (symbolic links followed, so this reads the file system).
Result<Config> ParseConfig(const std::string& text, const std::string& path);

// The account's password: `password`, or the first line printed by
// `password_cmd` (see RunSecretCommand).
Result<std::string> ResolvePassword(const AccountConfig& account);

// The first line (without its CR LF) that `command`, the value of `key`
// (e.g. "oauth_token_cmd"), prints when run through /bin/sh -c. The command
// inherits stdin and stderr (it may prompt) and no descriptor beyond them and
// the pipe. Blocks until it exits. Errors are kConfig and name the key and
// the account, never the command (it may hold a secret): a non-zero exit
// status, death by a signal, empty output, or more than 64 KiB of output
// (the command is then killed).
Result<std::string> RunSecretCommand(const AccountConfig& account, const std::string& key,
                                     const std::string& command);

}  // namespace mailmirror
