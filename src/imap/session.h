// One IMAP connection's client state machine: greeting, STARTTLS,
// CAPABILITY, authentication, and the commands the engine runs, pipelined.
//
// The session knows no sockets: bytes go out through a Transport, and the
// owner feeds what arrives into OnData (and forwards the transport's other
// events). That keeps it testable by replaying recorded server transcripts.
//
// Threading and lifetime: one thread (the loop's). Completion callbacks run
// from inside OnData/OnClosed; they may start further commands on this
// session but must not destroy it — destroy it after the transport closed,
// from a later loop turn. Every callback passed to a method is called exactly
// once: on completion, or with an error when the connection fails.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "imap/command.h"
#include "imap/deflate_stream.h"
#include "imap/parser.h"
#include "imap/sequence_set.h"
#include "mailmirror/providers.h"
#include "mailmirror/status.h"

namespace mailmirror::imap {

// What a Session needs from the byte stream below it.
class Transport {
 public:
  virtual ~Transport() = default;
  virtual void Send(std::string_view bytes) = 0;
  // Bytes handed to Send and not yet on the network. A transport that says
  // more than 0 calls Session::OnTransportDrained once it has written most
  // of them: streamed literals wait for that (bounded memory).
  virtual size_t queued_bytes() const { return 0; }
  // Starts TLS on the stream; the owner calls Session::OnTlsStarted when
  // the handshake has verified the server, or OnClosed on failure.
  virtual void StartTls() = 0;
  virtual void Close() = 0;
};

// The server's capabilities, compared case-insensitively.
class Capabilities {
 public:
  void Assign(const std::vector<std::string_view>& names);
  void Clear() { names_.clear(); }
  bool empty() const { return names_.empty(); }
  bool Has(std::string_view name) const;
  std::string ToString() const;
  const std::set<std::string>& items() const { return names_; }  // upper-case

 private:
  std::set<std::string> names_;  // upper-case
};

enum class Security {
  kTls,       // the transport is already encrypted (implicit TLS)
  kStartTls,  // upgrade with STARTTLS before anything else; fail without it
  kNone,      // plaintext, as the user asked
};

struct SessionOptions {
  std::string server;  // "host:port", for messages
  Security security = Security::kTls;
  ParserLimits limits;
  size_t max_in_flight = 64;  // pipelined commands awaiting their tagged reply
  std::string trace_label;    // tells sessions apart in the protocol trace
};

// A tagged reply, copied out of the parser's buffer.
struct TaggedReply {
  Condition condition = Condition::kOk;
  std::string code;      // response code name, upper-case, may be empty
  std::string code_raw;  // its payload
  std::string text;
  std::string challenge;  // text of the last "+" the command got (SASL), may be empty
};

// What Login authenticates with. An empty token means none; a password
// counts when has_password (it may be empty).
struct LoginCredentials {
  std::string user;
  std::string password;
  bool has_password = false;
  std::string token;  // OAuth 2.0 access token
  AuthMechanism mechanism = AuthMechanism::kAuto;
  // Sent in OAUTHBEARER's initial response (RFC 7628 §3.1).
  std::string host;
  uint16_t port = 0;
};

struct MailboxInfo {
  std::string raw_name;  // the server's bytes: the key for later commands
  std::string name;      // UTF-8 for display (decoded modified UTF-7)
  char delimiter = 0;    // 0: flat name (NIL)
  std::vector<std::string> attributes;
  bool selectable = true;  // false for \Noselect and \NonExistent
  std::optional<uint32_t> messages;
  std::optional<uint32_t> unseen;
  std::optional<uint32_t> uidnext;
  std::optional<uint32_t> uidvalidity;
  std::optional<uint64_t> highestmodseq;
  std::optional<uint64_t> size;  // octets of all messages (STATUS=SIZE, RFC 8438)
};

// Whether a LIST entry has the attribute `name` (e.g. "\\All"), in any case.
bool HasAttribute(const std::vector<std::string>& attributes, std::string_view name);

// A message's flags as the server reported them (FETCH ... FLAGS).
struct FlagUpdate {
  uint32_t uid = 0;
  std::vector<std::string> flags;
  uint64_t modseq = 0;  // 0 when not reported
};

// QRESYNC parameters for SELECT (RFC 7162 §3.2.5): what the client knew.
struct QresyncParams {
  uint32_t uidvalidity = 0;
  uint64_t modseq = 0;
};

// The state of a mailbox after SELECT or EXAMINE.
struct SelectedMailbox {
  std::string raw_name;
  uint32_t uidvalidity = 0;
  uint32_t uidnext = 0;  // 0 when the server did not report it
  uint32_t exists = 0;
  std::optional<uint64_t> highestmodseq;
  bool nomodseq = false;  // [NOMODSEQ]: the mailbox keeps no mod-sequences
  bool read_only = false;
  std::vector<std::string> permanent_flags;
  // With QRESYNC parameters: what changed since the given mod-sequence.
  std::vector<std::string> vanished_earlier;  // raw UID sets of VANISHED (EARLIER)
  std::vector<FlagUpdate> changed;            // FETCH FLAGS reported during SELECT
};

// The personal namespace (RFC 2342), e.g. prefix "INBOX." delimiter '.'.
struct PersonalNamespace {
  std::string prefix;
  char delimiter = 0;
};

// One message of a FETCH response, copied out of the parser's buffer.
struct FetchedMessage {
  uint32_t seq = 0;
  std::optional<uint32_t> uid;
  bool has_flags = false;
  std::vector<std::string> flags;
  std::optional<std::string> internaldate;
  std::optional<uint64_t> rfc822_size;
  std::optional<uint64_t> modseq;
  std::optional<uint64_t> gm_msgid;  // Gmail's X-GM-MSGID
  // BODY[] (or BODY[]<0>): streamed through the FetchSink's OnBody* calls
  // just before this message is delivered, or NIL.
  bool has_body = false;
  bool body_nil = false;
};

// Receives what FETCH commands bring: body literals as they stream in, then
// each message's other items. Errors stop the session's parse, fail the
// connection and are reported to the command.
class FetchSink {
 public:
  virtual ~FetchSink() = default;
  virtual Status OnBodyBegin(uint32_t seq, uint64_t size) = 0;
  virtual Status OnBodyData(std::string_view chunk) = 0;
  virtual Status OnBodyEnd() = 0;
  virtual Status OnMessage(const FetchedMessage& message) = 0;
};

class Session : private ResponseHandler, private LiteralSink {
 public:
  using Done = std::function<void(Status)>;
  using UntaggedHandler = std::function<void(const Response&)>;
  using ReplyHandler = std::function<void(Result<TaggedReply>)>;

  Session(Transport* transport, SessionOptions options);
  ~Session() override;
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  // --- Events from the transport.
  void OnData(std::string_view data);
  // The transport wrote most of what it had queued (Transport::queued_bytes).
  void OnTransportDrained();
  void OnTlsStarted();
  void OnClosed(const Status& status);

  // --- Operations.

  // Waits for the greeting, upgrades with STARTTLS if asked, learns the
  // capabilities and authenticates with the mechanism asked for, or (auto)
  // the strongest the server offers that the credentials satisfy:
  // OAUTHBEARER, then XOAUTH2 with a token; PLAIN, then LOGIN with a
  // password; with SASL-IR when offered. Errors: kAuth when the server
  // rejects the credentials (an OAuth error challenge decoded into the
  // message; see token_refused()), kUnavailable for BYE greetings and
  // missing STARTTLS, kConfig when the server offers no mechanism we could
  // use. After a kAuth failure the session may Login again.
  void Login(LoginCredentials credentials, Done done);
  // Password login as above, for tests and tools.
  void Login(std::string user, std::string password, Done done);
  // Whether the last login failed because the server refused the OAuth
  // token as invalid or expired (a fresh token may pass).
  bool token_refused() const { return token_refused_; }

  // Lists every mailbox with its message, unseen and UID counts, using
  // LIST-STATUS when offered, else LIST and pipelined STATUS commands.
  // `with_size`: also STATUS SIZE where the server has STATUS=SIZE (RFC
  // 8438), for progress estimates only: a server may read every message
  // the first time to answer it.
  void ListMailboxes(std::function<void(Result<std::vector<MailboxInfo>>)> done,
                     bool with_size = false);

  // Turns on extensions with ENABLE (RFC 5161), asking only for those the
  // server advertises. `done` gets the names the server reports ENABLED
  // (upper-case; empty when none were advertised or ENABLE is missing).
  void Enable(const std::vector<std::string>& extensions,
              std::function<void(Result<std::set<std::string>>)> done);

  // NAMESPACE (RFC 2342) when offered: the first personal namespace, or
  // nullopt when the server has none or does not support NAMESPACE.
  void GetPersonalNamespace(std::function<void(Result<std::optional<PersonalNamespace>>)> done);

  // SELECT (read_only: EXAMINE) a mailbox by its raw name. A NO is a
  // kProtocol error naming the mailbox; the session stays usable.
  void Select(const std::string& raw_name, bool read_only,
              std::function<void(Result<SelectedMailbox>)> done,
              std::optional<QresyncParams> qresync = std::nullopt);

  // UID FETCH <uid_set> (UID FLAGS) [(CHANGEDSINCE modseq)]: the flags of the
  // messages in the set (changed since `changed_since` when non-zero).
  void FetchFlags(const std::string& uid_set, uint64_t changed_since,
                  std::function<void(Result<std::vector<FlagUpdate>>)> done);

  // Every UID of the selected mailbox (UID SEARCH ALL, as ESEARCH ranges
  // when offered).
  void SearchAllUids(std::function<void(Result<UidRanges>)> done);

  // UID STORE <uid_set> [(UNCHANGEDSINCE m)] +FLAGS/-FLAGS (<flags>) on the
  // selected mailbox (`add` false: -FLAGS). With `unchanged_since` (needs
  // CONDSTORE; 0 for none) the server leaves alone every message changed
  // after that mod-sequence and names it in `modified`: a conflict for the
  // caller to merge (RFC 7162 §3.1.3). `updates` holds the FETCH responses
  // for UIDs of the set that arrived while it ran (flags and MODSEQ after
  // it; a pipelined store of the same UIDs sees them too).
  struct StoreResult {
    UidRanges modified;
    std::vector<FlagUpdate> updates;
  };
  void StoreFlags(const std::string& uid_set, bool add, const std::vector<std::string>& flags,
                  uint64_t unchanged_since, std::function<void(Result<StoreResult>)> done);

  // APPEND <mailbox> (<flags>) ["<internaldate>"] {n}: `message` with CRLF
  // line ends, as a literal (LITERAL+ when offered). The result carries the
  // new message's UIDVALIDITY and UID from [APPENDUID] (UIDPLUS); both 0
  // when the server did not say, and the caller must find the message by
  // its content, never by guessing. A NO (e.g. [TRYCREATE], [OVERQUOTA]) is
  // a kProtocol error naming the mailbox.
  struct AppendResult {
    uint32_t uidvalidity = 0;
    uint32_t uid = 0;
  };
  void Append(const std::string& raw_mailbox, const std::vector<std::string>& flags,
              const std::string& internaldate, std::string_view message,
              std::function<void(Result<AppendResult>)> done);
  // The same with the message read from `message` while it is sent, in
  // bounded memory whatever its size.
  void AppendStreamed(const std::string& raw_mailbox, const std::vector<std::string>& flags,
                      const std::string& internaldate, std::shared_ptr<LiteralSource> message,
                      std::function<void(Result<AppendResult>)> done);

  // APPEND of several messages in one command (MULTIAPPEND, RFC 3502): the
  // server stores all of them or none. One message needs no MULTIAPPEND;
  // more without it is a kInternal error. `uids` pairs with `messages` in
  // order, from [APPENDUID]; empty when the server did not say.
  struct AppendMessage {
    std::vector<std::string> flags;
    std::string internaldate;  // may be empty
    std::string_view message;  // CRLF line ends; must stay valid until the call returns
  };
  struct MultiAppendResult {
    uint32_t uidvalidity = 0;
    std::vector<uint32_t> uids;
  };
  void AppendMany(const std::string& raw_mailbox, const std::vector<AppendMessage>& messages,
                  std::function<void(Result<MultiAppendResult>)> done);

  // UID MOVE <uid_set> <mailbox> (RFC 6851); without MOVE, UID COPY, then
  // \Deleted and UID EXPUNGE of exactly those UIDs (which needs UIDPLUS:
  // without it, a kProtocol error and nothing is copied). `moved` pairs each
  // source UID with its UID in the destination from [COPYUID] (empty when
  // the server did not say; the caller then finds the messages by content).
  struct MoveResult {
    uint32_t uidvalidity = 0;  // of the destination
    std::vector<std::pair<uint32_t, uint32_t>> moved;
  };
  void UidMove(const std::string& uid_set, const std::string& raw_mailbox,
               std::function<void(Result<MoveResult>)> done);

  // CREATE <mailbox>. A mailbox that already exists ([ALREADYEXISTS],
  // RFC 5530) is not an error: another client may have created it first.
  void Create(const std::string& raw_mailbox, Done done);

  // SUBSCRIBE <mailbox>. A NO is a kProtocol error naming the mailbox.
  void Subscribe(const std::string& raw_mailbox, Done done);

  // UID EXPUNGE <uid_set> (UIDPLUS, RFC 4315): removes exactly those
  // messages among the ones marked \Deleted, never another client's. kProtocol
  // error without UIDPLUS (a bare EXPUNGE is never sent instead).
  void UidExpunge(const std::string& uid_set, Done done);

  // UID FETCH <uid_set> (<items>) on the selected mailbox. Body literals and
  // FETCH responses go to `sink` (which must outlive the command); `done`
  // runs after the tagged reply. Unsolicited FETCH responses arriving
  // meanwhile reach the sink too: callers filter by UID.
  void UidFetch(const std::string& uid_set, const std::string& items, FetchSink* sink, Done done);

  // COMPRESS DEFLATE (RFC 4978) on an authenticated session with nothing
  // else in flight: from the server's OK on, both directions are compressed.
  // `done` gets true when compression is on, false when the server said NO
  // (the session goes on uncompressed).
  void Compress(std::function<void(Result<bool>)> done);

  // Sends LOGOUT and closes the transport once the server confirms.
  void Logout(Done done);

  // Sends one command, pipelined behind those in flight. Each untagged
  // response goes to every in-flight command that has an on_untagged handler
  // (ESEARCH only to the command its TAG names): handlers pick the kinds of
  // response they asked for. If the session has already failed, on_reply is
  // called at once with the error.
  void Execute(Command command, UntaggedHandler on_untagged, ReplyHandler on_reply);

  const Capabilities& capabilities() const { return capabilities_; }
  const std::set<std::string>& enabled() const { return enabled_; }
  bool authenticated() const { return state_ == State::kAuthenticated; }
  // Part of a response has arrived and the rest has not (a trickling
  // server shows here, not as silence).
  bool mid_response() const { return !parser_.idle(); }
  // The error that ended the session, if one did.
  const std::optional<Error>& failure() const { return failure_; }
  bool compressed() const { return compression_ != nullptr; }

 private:
  enum class State { kGreeting, kNotAuthenticated, kStartingTls, kAuthenticated, kClosed };

  // A streamed literal (Command::stream) being sent: nothing else goes out
  // until it is done.
  struct Stream {
    std::shared_ptr<LiteralSource> source;
    uint64_t left = 0;
    std::string tag;        // its command's
    std::string next_part;  // what follows the literal, should the command be gone
  };
  struct Pending {
    std::string tag;
    Command command;
    size_t parts_sent = 0;
    UntaggedHandler on_untagged;
    ReplyHandler on_reply;
    FetchSink* fetch_sink = nullptr;  // UID FETCH commands
    std::string challenge;            // the last continuation's text
  };

  void StartStream(Pending& pending);
  void PumpStream();
  // The outcome of an APPEND of `count` messages.
  Result<MultiAppendResult> AppendReply(const std::string& what, size_t count,
                                        Result<TaggedReply> reply) const;

  Status OnResponse(const Response& response) override;
  // LiteralSink: body literals go to the fetch sink of the oldest FETCH.
  Status OnLiteralBegin(uint32_t seq, std::string_view section, uint64_t size) override;
  Status OnLiteralData(std::string_view chunk) override;
  Status OnLiteralEnd() override;
  FetchSink* CurrentFetchSink() const;
  Status OnGreeting(const Response& response);
  void DispatchUntagged(const Response& response);
  void OnTagged(const Response& response);
  void OnContinuation(std::string_view text);

  void AfterGreeting();
  void StartTlsUpgrade();
  void EnsureCapabilities(std::function<void()> next);
  void Authenticate();
  // The AUTHENTICATE or LOGIN command for credentials_ and the server's
  // capabilities; `mechanism` gets its name.
  Result<Command> LoginCommand(std::string& mechanism) const;
  void FinishLogin(Status status);

  // Parses plaintext from the server; bytes left after COMPRESS's OK go
  // through the decompressor first.
  Status FeedParser(std::string_view plain);
  // Every byte to the server goes through here (and the compressor).
  void Send(std::string_view bytes);

  LiteralPolicy literal_policy() const;
  void Enqueue(Pending pending);
  void SendQueued();
  void SendNextPart(Pending& pending);
  void Fail(const Error& error);
  void FailAll(const Error& error);

  Transport* transport_;
  std::string TracePrefix() const {
    return options_.trace_label.empty() ? "" : "[" + options_.trace_label + "] ";
  }

  SessionOptions options_;
  ResponseParser parser_;
  State state_ = State::kGreeting;
  bool tls_started_ = false;
  Capabilities capabilities_;
  std::set<std::string> enabled_;  // upper-case names the server ENABLED
  uint32_t next_tag_ = 1;
  std::deque<Pending> queued_;     // built, not sent yet
  std::deque<Pending> in_flight_;  // sent (at least partly), awaiting a tagged reply
  bool awaiting_continuation_ = false;
  std::optional<Stream> stream_;
  std::optional<Error> failure_;                // the first fatal error
  std::string bye_code_;                        // response code of an untagged BYE
  std::string bye_text_;                        // text of an untagged BYE, for messages
  FetchSink* streaming_sink_ = nullptr;         // receives the literal in progress
  Status sink_status_;                          // first error a fetch sink returned
  std::unique_ptr<DeflateStream> compression_;  // after COMPRESS DEFLATE

  // Login in progress.
  LoginCredentials credentials_;
  Done login_done_;
  bool token_refused_ = false;
};

}  // namespace mailmirror::imap
