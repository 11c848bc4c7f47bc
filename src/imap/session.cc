#include "imap/session.h"

#include <cstdio>

#include <algorithm>
#include <map>
#include <memory>
#include <utility>

#include "imap/mailbox_name.h"
#include "imap/sasl.h"
#include "imap/throttle.h"
#include "util/base64.h"
#include "util/log.h"
#include "util/strings.h"

namespace mailmirror::imap {
namespace {

Error ConnectionLost(const std::string& server, const std::string& bye_code,
                     const std::string& bye_text) {
  std::string message = "connection to " + server + " closed unexpectedly";
  if (!bye_text.empty()) message += " (server said: " + Printable(bye_text) + ")";
  Error error = MakeError(ErrorKind::kUnavailable, message);
  // Office 365 says "BYE Request is throttled. Suggested Backoff Time: ...".
  if (std::optional<uint64_t> delay = ThrottleDelayMs(bye_code, bye_text)) {
    error.kind = ErrorKind::kTemporary;
    error.throttle_ms = delay;
  }
  return error;
}

// A FETCH response's UID, flags and MODSEQ, copied out of the parser.
FlagUpdate ToFlagUpdate(const FetchData& fetch) {
  FlagUpdate update;
  update.uid = fetch.uid.value_or(0);
  update.flags.assign(fetch.flags.begin(), fetch.flags.end());
  update.modseq = fetch.modseq.value_or(0);
  return update;
}

std::string DescribeReply(const TaggedReply& reply) {
  std::string out;
  if (!reply.code.empty()) out += "[" + reply.code + "] ";
  out += Printable(reply.text);
  return out;
}

// A refusal that trying again will not change (a downgrade attempt).
Error Lasting(Error error) {
  error.lasting = true;
  return error;
}

// A command the server refused: a protocol error, unless the server says it
// is throttling or overloaded (worth waiting for) or out of quota.
Error CommandError(const std::string& what, const TaggedReply& reply) {
  Error error = MakeError(ErrorKind::kProtocol, what + ": " + DescribeReply(reply));
  if (std::optional<uint64_t> delay = ThrottleDelayMs(reply.code, reply.text)) {
    error.kind = ErrorKind::kTemporary;
    error.throttle_ms = delay;
  } else if (IsOverQuota(reply.code)) {
    error.kind = ErrorKind::kTemporary;
    error.lasting = true;  // until someone makes room
  }
  return error;
}

void ApplyStatus(const StatusData& status, MailboxInfo& info) {
  if (status.messages) info.messages = status.messages;
  if (status.unseen) info.unseen = status.unseen;
  if (status.uidnext) info.uidnext = status.uidnext;
  if (status.uidvalidity) info.uidvalidity = status.uidvalidity;
  if (status.highestmodseq) info.highestmodseq = status.highestmodseq;
  if (status.size) info.size = status.size;
}

// Reads one quoted string (or NIL, giving nullopt) at `pos` of a NAMESPACE
// response, advancing pos.
std::optional<std::string> ReadNamespaceString(std::string_view text, size_t& pos) {
  while (pos < text.size() && text[pos] == ' ') ++pos;
  if (text.substr(pos, 3) == "NIL" || text.substr(pos, 3) == "nil") {
    pos += 3;
    return std::nullopt;
  }
  if (pos >= text.size() || text[pos] != '"') return std::nullopt;
  std::string out;
  for (++pos; pos < text.size() && text[pos] != '"'; ++pos) {
    if (text[pos] == '\\' && pos + 1 < text.size()) ++pos;
    out += text[pos];
  }
  ++pos;  // closing quote
  return out;
}

// The first personal namespace of "* NAMESPACE ((prefix delim) ...) ...".
std::optional<PersonalNamespace> ParsePersonalNamespace(std::string_view raw) {
  size_t pos = raw.find_first_not_of(' ');
  if (pos == std::string_view::npos || raw.substr(pos, 2) != "((") return std::nullopt;
  pos += 2;
  std::optional<std::string> prefix = ReadNamespaceString(raw, pos);
  if (!prefix) return std::nullopt;
  std::optional<std::string> delimiter = ReadNamespaceString(raw, pos);
  PersonalNamespace result;
  result.prefix = *prefix;
  result.delimiter = delimiter && delimiter->size() == 1 ? (*delimiter)[0] : 0;
  return result;
}

// INBOX is case-insensitive (RFC 3501 §5.1); Office 365 says "Inbox".
std::string CanonicalName(std::string_view raw) {
  return EqualsIgnoreCase(raw, "INBOX") ? std::string("INBOX") : std::string(raw);
}

}  // namespace

// --- Capabilities

void Capabilities::Assign(const std::vector<std::string_view>& names) {
  names_.clear();
  for (std::string_view name : names) names_.insert(ToUpperAscii(name));
}

bool Capabilities::Has(std::string_view name) const { return names_.count(ToUpperAscii(name)) > 0; }

std::string Capabilities::ToString() const {
  std::string out;
  for (const std::string& name : names_) {
    if (!out.empty()) out += ' ';
    out += name;
  }
  return out;
}

// --- Session

bool HasAttribute(const std::vector<std::string>& attributes, std::string_view name) {
  for (const std::string& attribute : attributes) {
    if (EqualsIgnoreCase(attribute, name)) return true;
  }
  return false;
}

Session::Session(Transport* transport, SessionOptions options)
    : transport_(transport),
      options_(std::move(options)),
      parser_(this, nullptr, options_.limits) {}

Session::~Session() = default;

void Session::OnData(std::string_view data) {
  // After STARTTLS succeeded, plaintext bytes still buffered are never
  // interpreted: they may have been injected before the handshake.
  if (state_ == State::kClosed || state_ == State::kStartingTls) return;
  Status status = compression_
                      ? compression_->Decompress(
                            data, [this](std::string_view plain) { return FeedParser(plain); })
                      : FeedParser(data);
  if (status.ok() || failure_) return;
  // Protocol errors are the server's; others (a full disk under a fetch
  // sink) keep their own kind and message.
  Fail(status.error().kind == ErrorKind::kProtocol
           ? status.error().Wrap("bad response from " + options_.server)
           : status.error());
}

Status Session::FeedParser(std::string_view plain) {
  if (LogEnabled(LogLevel::kTrace))
    Log(LogLevel::kTrace, TracePrefix() + "S: " + Printable(plain, 500));
  size_t consumed = 0;
  Status status = parser_.Feed(plain, &consumed);
  if (!status.ok() || consumed == plain.size() || failure_) return status;
  // Paused after COMPRESS's OK: the rest of this read is compressed.
  return compression_->Decompress(plain.substr(consumed),
                                  [this](std::string_view more) { return FeedParser(more); });
}

void Session::Send(std::string_view bytes) {
  if (!compression_) {
    transport_->Send(bytes);
    return;
  }
  std::string compressed;
  Status status = compression_->Compress(bytes, &compressed);
  if (!status.ok()) {
    Fail(status.error());
    return;
  }
  transport_->Send(compressed);
}

void Session::OnTlsStarted() {
  if (state_ != State::kStartingTls) return;
  parser_.Reset();
  state_ = State::kNotAuthenticated;
  tls_started_ = true;
  // RFC 2595 §3.1: capabilities learned before TLS are void.
  capabilities_.Clear();
  EnsureCapabilities([this] { Authenticate(); });
}

void Session::OnClosed(const Status& status) {
  if (failure_) return;
  // After a BYE its reason (e.g. throttling) says more than the transport.
  Error error = status.ok() || !bye_text_.empty()
                    ? ConnectionLost(options_.server, bye_code_, bye_text_)
                    : status.error();
  if (state_ == State::kClosed && in_flight_.empty() && queued_.empty() && !login_done_) {
    return;  // closed after LOGOUT, as expected
  }
  failure_ = error;
  state_ = State::kClosed;
  FailAll(error);
}

void Session::Fail(const Error& error) {
  if (failure_) return;
  Log(LogLevel::kDebug, "session " + options_.server + " failed: " + error.message);
  failure_ = error;
  state_ = State::kClosed;
  transport_->Close();
  FailAll(error);
}

void Session::FailAll(const Error& error) {
  std::deque<Pending> in_flight = std::move(in_flight_);
  std::deque<Pending> queued = std::move(queued_);
  in_flight_.clear();
  queued_.clear();
  awaiting_continuation_ = false;
  for (Pending& pending : in_flight) pending.on_reply(error);
  for (Pending& pending : queued) pending.on_reply(error);
  if (login_done_) FinishLogin(error);
}

Status Session::OnResponse(const Response& response) {
  if (failure_) return *failure_;
  if (state_ == State::kStartingTls) return Status::Ok();  // see OnData

  // Capabilities can change with any response that carries them.
  if (response.type == ResponseType::kCapability) capabilities_.Assign(response.capabilities);
  if ((response.type == ResponseType::kTagged || response.type == ResponseType::kCondition) &&
      response.code && EqualsIgnoreCase(response.code->name, "CAPABILITY")) {
    capabilities_.Assign(response.code->items);
  }
  if (state_ == State::kGreeting) return OnGreeting(response);

  switch (response.type) {
    case ResponseType::kTagged:
      OnTagged(response);
      break;
    case ResponseType::kContinuation:
      OnContinuation(response.text);
      break;
    case ResponseType::kCondition:
      if (response.condition == Condition::kBye) {
        bye_text_ = std::string(response.text);
        if (response.code) bye_code_ = std::string(response.code->name);
      }
      if (response.code && EqualsIgnoreCase(response.code->name, "ALERT")) {
        Log(LogLevel::kWarning, "alert from " + options_.server + ": " + Printable(response.text));
      }
      [[fallthrough]];
    default:
      DispatchUntagged(response);
      break;
  }
  if (!sink_status_.ok()) {
    Fail(sink_status_.error());
    return sink_status_;
  }
  return failure_ ? Status(*failure_) : Status::Ok();
}

// Untagged data goes to every command in flight that asked for it, each
// taking the kinds it cares about: a server may interleave the responses of
// pipelined commands (Dovecot runs some in parallel), so "the oldest command"
// is not a safe owner. ESEARCH names its command with (TAG "...").
void Session::DispatchUntagged(const Response& response) {
  if (response.type == ResponseType::kEsearch) {
    std::string_view raw = response.raw;
    size_t open = raw.find("(TAG \"");
    if (open != std::string_view::npos) {
      size_t start = open + 6;
      std::string_view tag = raw.substr(start, raw.find('"', start) - start);
      for (Pending& pending : in_flight_) {
        if (pending.tag == tag && pending.on_untagged) pending.on_untagged(response);
      }
      return;
    }
  }
  // Handlers may queue commands; index-based so that growth is harmless.
  // A FETCH response belongs to one body-fetching command only, the oldest
  // (which also receives its literal): pipelined UID FETCH commands must not
  // each see every message.
  const size_t count = in_flight_.size();
  bool fetch_taken = false;
  for (size_t i = 0; i < count && i < in_flight_.size(); ++i) {
    Pending& pending = in_flight_[i];
    if (pending.fetch_sink != nullptr && response.type == ResponseType::kFetch) {
      if (fetch_taken) continue;
      fetch_taken = true;
    }
    if (pending.on_untagged) pending.on_untagged(response);
  }
}

Status Session::OnGreeting(const Response& response) {
  if (response.type != ResponseType::kCondition) {
    Fail(MakeError(ErrorKind::kProtocol, "server " + options_.server +
                                             " sent no IMAP greeting (is this an IMAP "
                                             "port? check host, port and tls)"));
    return *failure_;
  }
  switch (response.condition) {
    case Condition::kOk:
      state_ = State::kNotAuthenticated;
      AfterGreeting();
      break;
    case Condition::kPreauth:
      if (options_.security == Security::kStartTls) {
        Fail(Lasting(
            MakeError(ErrorKind::kUnavailable,
                      "server " + options_.server +
                          " sent PREAUTH before STARTTLS; refusing to continue unencrypted")));
        break;
      }
      state_ = State::kAuthenticated;
      AfterGreeting();
      break;
    case Condition::kBye:
      Fail(MakeError(
          ErrorKind::kUnavailable,
          "server " + options_.server + " refused the connection: " + Printable(response.text)));
      break;
    default:
      Fail(MakeError(
          ErrorKind::kProtocol,
          "server " + options_.server + " sent an invalid greeting: " + Printable(response.text)));
      break;
  }
  return failure_ ? Status(*failure_) : Status::Ok();
}

void Session::OnTagged(const Response& response) {
  for (auto it = in_flight_.begin(); it != in_flight_.end(); ++it) {
    if (it->tag != response.tag) continue;
    TaggedReply reply;
    reply.condition = response.condition;
    if (response.code) {
      reply.code = ToUpperAscii(response.code->name);
      reply.code_raw = std::string(response.code->raw);
    }
    reply.text = std::string(response.text);
    reply.challenge = std::move(it->challenge);
    Pending pending = std::move(*it);
    in_flight_.erase(it);
    if (pending.fetch_sink != nullptr && CurrentFetchSink() == nullptr) {
      parser_.set_sink(nullptr);  // literals of other commands stay inline
    }
    // A NO/BAD instead of "+" means: do not send the literal.
    if (pending.parts_sent < pending.command.parts.size()) awaiting_continuation_ = false;
    Log(LogLevel::kTrace,
        "tagged " + pending.tag + " " + pending.command.verb + ": " + DescribeReply(reply));
    pending.on_reply(std::move(reply));
    SendQueued();
    return;
  }
  Log(LogLevel::kDebug, "ignoring reply for unknown tag " + Printable(response.tag));
}

void Session::OnContinuation(std::string_view text) {
  if (!awaiting_continuation_ || in_flight_.empty()) {
    Fail(MakeError(ErrorKind::kProtocol,
                   "server " + options_.server + " sent an unexpected continuation request"));
    return;
  }
  // Nothing is sent after a command that waits for "+", so it is the last.
  Pending& pending = in_flight_.back();
  pending.challenge = std::string(text);
  const Command& command = pending.command;
  if (command.stream && pending.parts_sent == command.stream_after + 1) {
    awaiting_continuation_ = false;
    return StartStream(pending);
  }
  SendNextPart(pending);
  SendQueued();
}

// The literal goes out in pieces, each once the transport has room: a
// message of any size costs a few chunks of memory.
void Session::StartStream(Pending& pending) {
  Stream stream;
  stream.source = pending.command.stream;
  stream.left = stream.source->size();
  stream.tag = pending.tag;
  const size_t next = pending.command.stream_after + 1;
  stream.next_part = next < pending.command.parts.size() ? pending.command.parts[next] : "";
  stream_ = std::move(stream);
  PumpStream();
}

void Session::PumpStream() {
  // Enough in the transport to keep the link busy; little enough memory.
  constexpr size_t kHighWater = 1 << 20;
  constexpr size_t kChunk = 64 << 10;
  while (stream_ && !failure_) {
    if (stream_->left > 0) {
      if (transport_->queued_bytes() >= kHighWater) return;  // OnTransportDrained resumes
      std::string chunk;
      Status read = stream_->source->Read(
          static_cast<size_t>(std::min<uint64_t>(kChunk, stream_->left)), &chunk);
      if (read.ok() && (chunk.empty() || chunk.size() > stream_->left)) {
        read = MakeError(ErrorKind::kIo, "the message changed while it was being uploaded");
      }
      if (!read.ok()) return Fail(read.error());
      stream_->left -= chunk.size();
      Send(chunk);
      continue;
    }
    // Done: what follows the literal, then the queue moves again.
    Stream done = std::move(*stream_);
    stream_.reset();
    auto it = std::find_if(in_flight_.begin(), in_flight_.end(),
                           [&done](const Pending& p) { return p.tag == done.tag; });
    if (it != in_flight_.end()) {
      SendNextPart(*it);
    } else {
      Send(done.next_part);  // answered early: the line must still end
    }
    SendQueued();
  }
}

void Session::OnTransportDrained() {
  if (stream_) PumpStream();
}

void Session::Execute(Command command, UntaggedHandler on_untagged, ReplyHandler on_reply) {
  Pending pending;
  pending.command = std::move(command);
  pending.on_untagged = std::move(on_untagged);
  pending.on_reply = std::move(on_reply);
  Enqueue(std::move(pending));
}

void Session::Enqueue(Pending pending) {
  if (failure_) {
    pending.on_reply(*failure_);
    return;
  }
  if (state_ == State::kClosed) {
    // Logged out: nothing will ever answer.
    pending.on_reply(
        MakeError(ErrorKind::kUnavailable, "the session to " + options_.server + " is closed"));
    return;
  }
  pending.tag = "A" + std::to_string(next_tag_++);
  queued_.push_back(std::move(pending));
  SendQueued();
}

void Session::SendQueued() {
  while (!failure_ && !awaiting_continuation_ && !stream_ && !queued_.empty() &&
         in_flight_.size() < options_.max_in_flight) {
    in_flight_.push_back(std::move(queued_.front()));
    queued_.pop_front();
    if (in_flight_.back().fetch_sink != nullptr) parser_.set_sink(this);
    SendNextPart(in_flight_.back());
  }
}

void Session::SendNextPart(Pending& pending) {
  std::string bytes;
  if (pending.parts_sent == 0) bytes = pending.tag + " ";
  const size_t index = pending.parts_sent++;
  bytes += pending.command.parts[index];
  const bool before_stream = pending.command.stream && index == pending.command.stream_after;
  awaiting_continuation_ = before_stream ? pending.command.stream_waits
                                         : pending.parts_sent < pending.command.parts.size();
  if (LogEnabled(LogLevel::kTrace)) {
    Log(LogLevel::kTrace,
        TracePrefix() + "C: " +
            (pending.command.sensitive ? pending.tag + " " + pending.command.verb + " <secret>"
                                       : Printable(bytes, 500)));
  }
  Send(bytes);
  if (before_stream && !pending.command.stream_waits) StartStream(pending);
}

LiteralPolicy Session::literal_policy() const {
  if (capabilities_.Has("LITERAL+")) return LiteralPolicy::kPlusAny;
  if (capabilities_.Has("LITERAL-") || capabilities_.Has("IMAP4rev2")) {
    return LiteralPolicy::kPlusSmall;
  }
  return LiteralPolicy::kSynchronizing;
}

// --- Login

void Session::Login(LoginCredentials credentials, Done done) {
  if (failure_) {
    done(*failure_);
    return;
  }
  credentials_ = std::move(credentials);
  token_refused_ = false;
  login_done_ = std::move(done);
  if (state_ != State::kGreeting) AfterGreeting();
}

void Session::Login(std::string user, std::string password, Done done) {
  LoginCredentials credentials;
  credentials.user = std::move(user);
  credentials.password = std::move(password);
  credentials.has_password = true;
  Login(std::move(credentials), std::move(done));
}

void Session::AfterGreeting() {
  if (!login_done_) return;  // Login() continues from here when called
  if (state_ == State::kAuthenticated) {
    EnsureCapabilities([this] { FinishLogin(Status::Ok()); });
  } else if (options_.security == Security::kStartTls && !tls_started_) {
    EnsureCapabilities([this] { StartTlsUpgrade(); });
  } else {
    EnsureCapabilities([this] { Authenticate(); });
  }
}

void Session::EnsureCapabilities(std::function<void()> next) {
  if (!capabilities_.empty()) {
    next();
    return;
  }
  Execute(Command{{"CAPABILITY\r\n"}, "CAPABILITY", false}, nullptr,
          [this, next = std::move(next)](Result<TaggedReply> reply) {
            if (!reply.ok()) return;  // FailAll reports to the login
            if (reply->condition != Condition::kOk || capabilities_.empty()) {
              Fail(CommandError("CAPABILITY failed on " + options_.server, *reply));
              return;
            }
            next();
          });
}

void Session::StartTlsUpgrade() {
  if (!capabilities_.Has("STARTTLS")) {
    Fail(Lasting(MakeError(ErrorKind::kUnavailable,
                           "server " + options_.server +
                               " does not offer STARTTLS; refusing to send credentials "
                               "unencrypted (use tls = \"implicit\" with its TLS port, usually "
                               "993)")));
    return;
  }
  Execute(Command{{"STARTTLS\r\n"}, "STARTTLS", false}, nullptr, [this](Result<TaggedReply> reply) {
    if (!reply.ok()) return;
    if (reply->condition != Condition::kOk) {
      Fail(Lasting(
          MakeError(ErrorKind::kUnavailable,
                    "server " + options_.server + " refused STARTTLS: " + DescribeReply(*reply))));
      return;
    }
    state_ = State::kStartingTls;
    transport_->StartTls();
  });
}

namespace {

// "AUTH=PLAIN AUTH=XOAUTH2", or "none", for messages.
std::string OfferedMechanisms(const Capabilities& capabilities) {
  std::string offered;
  for (const std::string& capability : capabilities.items()) {
    if (capability.rfind("AUTH=", 0) == 0) offered += (offered.empty() ? "" : " ") + capability;
  }
  return offered.empty() ? "none" : offered;
}

// An AUTHENTICATE command: the initial response with SASL-IR, else after
// the first "+"; then `error_ack`, sent only if the server answers with a
// challenge (its error report) instead of a tagged reply.
Command SaslCommand(const std::string& mechanism, const std::string& initial, bool sasl_ir,
                    std::optional<std::string_view> error_ack) {
  Command command;
  command.verb = "AUTHENTICATE";
  command.sensitive = true;
  const std::string encoded = Base64Encode(initial);
  if (sasl_ir) {
    command.parts = {"AUTHENTICATE " + mechanism + " " + (encoded.empty() ? "=" : encoded) +
                     "\r\n"};
  } else {
    command.parts = {"AUTHENTICATE " + mechanism + "\r\n", encoded + "\r\n"};
  }
  if (error_ack) command.parts.push_back(Base64Encode(*error_ack) + "\r\n");
  return command;
}

}  // namespace

Result<Command> Session::LoginCommand(std::string& mechanism) const {
  const LoginCredentials& login = credentials_;
  const bool token = !login.token.empty();
  const bool password = login.has_password;
  auto offers = [this](const char* name) { return capabilities_.Has(std::string("AUTH=") + name); };
  const bool sasl_ir = capabilities_.Has("SASL-IR");
  auto not_offered = [&](const std::string& what) {
    return MakeError(ErrorKind::kConfig, "server " + options_.server + " does not offer " + what +
                                             " (it offers " + OfferedMechanisms(capabilities_) +
                                             "); check auth in the config");
  };

  AuthMechanism chosen = login.mechanism;
  if (chosen == AuthMechanism::kAuto) {
    if (token && offers("OAUTHBEARER")) {
      chosen = AuthMechanism::kOauthBearer;
    } else if (token && offers("XOAUTH2")) {
      chosen = AuthMechanism::kXoauth2;
    } else if (password && offers("PLAIN")) {
      chosen = AuthMechanism::kPlain;
    } else if (password) {
      chosen = AuthMechanism::kLogin;
    } else {
      return not_offered("an OAuth 2.0 mechanism (AUTH=OAUTHBEARER or AUTH=XOAUTH2)");
    }
  }
  switch (chosen) {
    case AuthMechanism::kOauthBearer:
      if (!offers("OAUTHBEARER")) return not_offered("AUTH=OAUTHBEARER");
      mechanism = "OAUTHBEARER";
      return SaslCommand(mechanism,
                         OAuthBearerResponse(login.user, login.host, login.port, login.token),
                         sasl_ir, kOAuthBearerErrorAck);
    case AuthMechanism::kXoauth2:
      if (!offers("XOAUTH2")) return not_offered("AUTH=XOAUTH2");
      mechanism = "XOAUTH2";
      return SaslCommand(mechanism, Xoauth2Response(login.user, login.token), sasl_ir,
                         kXoauth2ErrorAck);
    case AuthMechanism::kPlain:
      if (!offers("PLAIN")) return not_offered("AUTH=PLAIN");
      mechanism = "PLAIN";
      return SaslCommand(mechanism, PlainResponse(login.user, login.password), sasl_ir,
                         std::nullopt);
    case AuthMechanism::kLogin:
    case AuthMechanism::kAuto:
      break;
  }
  mechanism = "LOGIN";
  if (capabilities_.Has("LOGINDISABLED")) {
    return MakeError(ErrorKind::kConfig,
                     "server " + options_.server +
                         " forbids LOGIN on this connection (LOGINDISABLED) and offers no "
                         "mechanism mailmirror can use with this config (it offers " +
                         OfferedMechanisms(capabilities_) +
                         "); use tls = \"implicit\" or \"starttls\", or check auth");
  }
  return CommandBuilder("LOGIN", literal_policy())
      .AString(login.user)
      .AString(login.password)
      .Sensitive()
      .Build();
}

void Session::Authenticate() {
  std::string mechanism;
  Result<Command> command = LoginCommand(mechanism);
  if (!command.ok()) {
    Fail(command.error());
    return;
  }
  Log(LogLevel::kDebug,
      "logging in to " + options_.server + " as " + credentials_.user + " with " + mechanism);
  Execute(std::move(command).value(), nullptr, [this, mechanism](Result<TaggedReply> reply) {
    if (!reply.ok()) return;
    if (reply->condition == Condition::kOk) {
      credentials_.password.assign(credentials_.password.size(), '\0');
      credentials_.password.clear();
      credentials_.token.assign(credentials_.token.size(), '\0');
      credentials_.token.clear();
      state_ = State::kAuthenticated;
      // Servers advertise more after login; the list in the OK is current.
      if (reply->code != "CAPABILITY") capabilities_.Clear();
      EnsureCapabilities([this] { FinishLogin(Status::Ok()); });
      return;
    }
    ErrorKind kind = ErrorKind::kAuth;
    // "[UNAVAILABLE]", Gmail's "Too many simultaneous connections": later.
    std::optional<uint64_t> delay = ThrottleDelayMs(reply->code, reply->text);
    if (delay) kind = ErrorKind::kTemporary;
    if (reply->condition == Condition::kBad) kind = ErrorKind::kProtocol;
    const bool oauth = mechanism == "XOAUTH2" || mechanism == "OAUTHBEARER";
    std::string reason;
    if (oauth) {
      std::optional<std::string> challenge = Base64Decode(reply->challenge);
      if (challenge) {
        reason = DescribeOAuthError(*challenge);
        token_refused_ = OAuthErrorIsInvalidToken(*challenge);
      }
      // Servers that send no JSON (Microsoft's "AUTHENTICATE failed.")
      // leave open whether the token expired: a fresh one may pass.
      if (reason.empty() && kind == ErrorKind::kAuth) token_refused_ = true;
    }
    std::string hint = kind != ErrorKind::kAuth ? ""
                       : !reason.empty()        ? ": " + reason
                       : oauth ? " (check user, and that the token is for this account)"
                               : " (check user and password)";
    Error error =
        MakeError(kind, "server " + options_.server + " rejected " + mechanism + " login as \"" +
                            credentials_.user + "\": " + DescribeReply(*reply) + hint);
    error.throttle_ms = delay;
    FinishLogin(error);
  });
}

void Session::FinishLogin(Status status) {
  if (!login_done_) return;
  Done done = std::move(login_done_);
  login_done_ = nullptr;
  done(std::move(status));
}

// --- Commands

void Session::ListMailboxes(std::function<void(Result<std::vector<MailboxInfo>>)> done,
                            bool with_size) {
  struct ListState {
    std::vector<MailboxInfo> mailboxes;
    std::map<std::string, size_t> by_name;  // raw name -> index
    size_t status_pending = 0;
    std::function<void(Result<std::vector<MailboxInfo>>)> done;
  };
  auto state = std::make_shared<ListState>();
  state->done = std::move(done);

  std::string items = "MESSAGES UNSEEN UIDNEXT UIDVALIDITY";
  if (capabilities_.Has("CONDSTORE")) items += " HIGHESTMODSEQ";
  if (with_size && capabilities_.Has("STATUS=SIZE")) items += " SIZE";
  const bool list_status = capabilities_.Has("LIST-STATUS");

  auto collect = [state](const Response& response) {
    if (response.type == ResponseType::kList && !response.list.lsub) {
      MailboxInfo info;
      info.raw_name = CanonicalName(response.list.mailbox);
      info.name = DisplayMailboxName(info.raw_name);
      info.delimiter = response.list.delimiter;
      for (std::string_view attribute : response.list.attributes) {
        info.attributes.emplace_back(attribute);
      }
      info.selectable = !HasAttribute(info.attributes, "\\Noselect") &&
                        !HasAttribute(info.attributes, "\\NonExistent");
      if (state->by_name.count(info.raw_name) == 0) {
        state->by_name[info.raw_name] = state->mailboxes.size();
        state->mailboxes.push_back(std::move(info));
      }
    } else if (response.type == ResponseType::kStatus) {
      auto it = state->by_name.find(CanonicalName(response.status.mailbox));
      if (it != state->by_name.end()) ApplyStatus(response.status, state->mailboxes[it->second]);
    }
  };

  CommandBuilder list("LIST", literal_policy());
  list.String("").String("*");
  // Special-use attributes (\Sent, \All, ...) come with LIST only when
  // asked for on servers such as Dovecot (RFC 6154 §2); Gmail always sends them.
  const bool special_use = capabilities_.Has("SPECIAL-USE") && capabilities_.Has("LIST-EXTENDED");
  std::string returns = special_use ? "SPECIAL-USE" : "";
  if (list_status) returns += std::string(returns.empty() ? "" : " ") + "STATUS (" + items + ")";
  if (!returns.empty()) list.Raw("RETURN (" + returns + ")");
  Result<Command> command = list.Build();
  Execute(std::move(command).value(), collect,
          [this, state, items, list_status, collect](Result<TaggedReply> reply) {
            if (!reply.ok()) return state->done(reply.error());
            if (reply->condition != Condition::kOk) {
              return state->done(CommandError("LIST failed on " + options_.server, *reply));
            }
            if (list_status) return state->done(std::move(state->mailboxes));
            // No LIST-STATUS: one STATUS per mailbox, all pipelined.
            for (const MailboxInfo& info : state->mailboxes) {
              if (!info.selectable) continue;
              Result<Command> status = CommandBuilder("STATUS", literal_policy())
                                           .AString(info.raw_name)
                                           .Raw("(" + items + ")")
                                           .Build();
              if (!status.ok()) continue;  // a name with NUL cannot be asked about
              ++state->status_pending;
              Execute(std::move(status).value(), collect,
                      [this, state, name = info.name](Result<TaggedReply> status_reply) {
                        if (state->status_pending == 0) return;  // already failed
                        if (!status_reply.ok()) {
                          state->status_pending = 0;
                          return state->done(status_reply.error());
                        }
                        if (status_reply->condition != Condition::kOk) {
                          // The folder may have vanished since LIST: keep it without counts.
                          Log(LogLevel::kWarning, "STATUS " + name + " failed on " +
                                                      options_.server + ": " +
                                                      DescribeReply(*status_reply));
                        }
                        if (--state->status_pending == 0) {
                          state->done(std::move(state->mailboxes));
                        }
                      });
            }
            if (state->status_pending == 0) state->done(std::move(state->mailboxes));
          });
}

void Session::Enable(const std::vector<std::string>& extensions,
                     std::function<void(Result<std::set<std::string>>)> done) {
  std::string wanted;
  for (const std::string& extension : extensions) {
    if (!capabilities_.Has(extension)) continue;
    wanted += ' ';
    wanted += extension;
  }
  if (wanted.empty() || !capabilities_.Has("ENABLE")) {
    done(enabled_);
    return;
  }
  Execute(
      Command{{"ENABLE" + wanted + "\r\n"}, "ENABLE", false},
      [this](const Response& response) {
        if (response.type != ResponseType::kEnabled) return;
        for (std::string_view name : response.capabilities) enabled_.insert(ToUpperAscii(name));
      },
      [this, done = std::move(done)](Result<TaggedReply> reply) {
        if (!reply.ok()) return done(reply.error());
        if (reply->condition != Condition::kOk) {
          return done(CommandError("ENABLE failed on " + options_.server, *reply));
        }
        done(enabled_);
      });
}

void Session::GetPersonalNamespace(
    std::function<void(Result<std::optional<PersonalNamespace>>)> done) {
  if (!capabilities_.Has("NAMESPACE")) {
    done(std::optional<PersonalNamespace>());
    return;
  }
  auto found = std::make_shared<std::optional<PersonalNamespace>>();
  Execute(
      Command{{"NAMESPACE\r\n"}, "NAMESPACE", false},
      [found](const Response& response) {
        if (response.type == ResponseType::kOther &&
            EqualsIgnoreCase(response.keyword, "NAMESPACE")) {
          *found = ParsePersonalNamespace(response.raw);
        }
      },
      [this, found, done = std::move(done)](Result<TaggedReply> reply) {
        if (!reply.ok()) return done(reply.error());
        if (reply->condition != Condition::kOk) {
          return done(CommandError("NAMESPACE failed on " + options_.server, *reply));
        }
        done(*found);
      });
}

void Session::Select(const std::string& raw_name, bool read_only,
                     std::function<void(Result<SelectedMailbox>)> done,
                     std::optional<QresyncParams> qresync) {
  auto selected = std::make_shared<SelectedMailbox>();
  selected->raw_name = raw_name;
  const char* verb = read_only ? "EXAMINE" : "SELECT";
  CommandBuilder builder(verb, literal_policy());
  builder.AString(raw_name);
  if (qresync) {
    builder.Raw("(QRESYNC (" + std::to_string(qresync->uidvalidity) + " " +
                std::to_string(qresync->modseq) + "))");
  } else if (enabled_.count("CONDSTORE") > 0 || enabled_.count("QRESYNC") > 0) {
    builder.Raw("(CONDSTORE)");
  }
  Result<Command> command = builder.Build();
  if (!command.ok()) {
    done(command.error());
    return;
  }
  Execute(
      std::move(command).value(),
      [selected](const Response& response) {
        if (response.type == ResponseType::kExists) {
          selected->exists = response.number;
        } else if (response.type == ResponseType::kVanished && response.vanished.earlier) {
          selected->vanished_earlier.emplace_back(response.vanished.uid_set);
        } else if (response.type == ResponseType::kFetch && response.fetch.uid &&
                   response.fetch.has_flags) {
          selected->changed.push_back(ToFlagUpdate(response.fetch));
        } else if (response.type == ResponseType::kCondition && response.code) {
          const ResponseCode& code = *response.code;
          if (EqualsIgnoreCase(code.name, "UIDVALIDITY") && code.number) {
            selected->uidvalidity = static_cast<uint32_t>(*code.number);
          } else if (EqualsIgnoreCase(code.name, "UIDNEXT") && code.number) {
            selected->uidnext = static_cast<uint32_t>(*code.number);
          } else if (EqualsIgnoreCase(code.name, "HIGHESTMODSEQ") && code.number) {
            selected->highestmodseq = code.number;
          } else if (EqualsIgnoreCase(code.name, "NOMODSEQ")) {
            selected->nomodseq = true;
          } else if (EqualsIgnoreCase(code.name, "PERMANENTFLAGS")) {
            selected->permanent_flags.assign(code.items.begin(), code.items.end());
          }
        }
      },
      [this, selected, verb, read_only, done = std::move(done)](Result<TaggedReply> reply) {
        if (!reply.ok()) return done(reply.error());
        if (reply->condition != Condition::kOk) {
          return done(CommandError(std::string(verb) + " " +
                                       DisplayMailboxName(selected->raw_name) + " failed on " +
                                       options_.server,
                                   *reply));
        }
        selected->read_only = read_only || reply->code == "READ-ONLY";
        if (selected->uidvalidity == 0) {
          return done(MakeError(ErrorKind::kProtocol, "server " + options_.server +
                                                          " reported no UIDVALIDITY for " +
                                                          DisplayMailboxName(selected->raw_name)));
        }
        done(std::move(*selected));
      });
}

void Session::UidFetch(const std::string& uid_set, const std::string& items, FetchSink* sink,
                       Done done) {
  Pending pending;
  pending.command = Command{{"UID FETCH " + uid_set + " (" + items + ")\r\n"}, "UID FETCH", false};
  pending.fetch_sink = sink;
  pending.on_untagged = [this, sink](const Response& response) {
    if (response.type != ResponseType::kFetch || !sink_status_.ok()) return;
    const FetchData& fetch = response.fetch;
    FetchedMessage message;
    message.seq = fetch.seq;
    message.uid = fetch.uid;
    message.has_flags = fetch.has_flags;
    message.flags.assign(fetch.flags.begin(), fetch.flags.end());
    if (fetch.internaldate) message.internaldate = std::string(*fetch.internaldate);
    message.rfc822_size = fetch.rfc822_size;
    message.gm_msgid = fetch.gm_msgid;
    message.modseq = fetch.modseq;
    for (const BodySection& body : fetch.bodies) {
      if (!body.section.empty()) continue;  // only the whole message, BODY[]
      message.has_body = true;
      message.body_nil = body.nil || (!body.streamed && body.data.empty());
      if (!body.streamed && !body.nil && !body.data.empty()) {
        // Delivered inline (no sink was set when its header arrived).
        sink_status_ = sink->OnBodyBegin(fetch.seq, body.data.size());
        if (sink_status_.ok()) sink_status_ = sink->OnBodyData(body.data);
        if (sink_status_.ok()) sink_status_ = sink->OnBodyEnd();
        if (!sink_status_.ok()) return;
      }
    }
    sink_status_ = sink->OnMessage(message);
  };
  pending.on_reply = [this, done = std::move(done)](Result<TaggedReply> reply) {
    if (!reply.ok()) return done(reply.error());
    if (reply->condition != Condition::kOk) {
      return done(CommandError("UID FETCH failed on " + options_.server, *reply));
    }
    done(Status::Ok());
  };
  Enqueue(std::move(pending));
}

void Session::FetchFlags(const std::string& uid_set, uint64_t changed_since,
                         std::function<void(Result<std::vector<FlagUpdate>>)> done) {
  auto updates = std::make_shared<std::vector<FlagUpdate>>();
  std::string line = "UID FETCH " + uid_set + " (UID FLAGS)";
  if (changed_since != 0) line += " (CHANGEDSINCE " + std::to_string(changed_since) + ")";
  Execute(
      Command{{line + "\r\n"}, "UID FETCH", false},
      [updates](const Response& response) {
        if (response.type != ResponseType::kFetch || !response.fetch.uid ||
            !response.fetch.has_flags) {
          return;
        }
        updates->push_back(ToFlagUpdate(response.fetch));
      },
      [this, updates, done = std::move(done)](Result<TaggedReply> reply) {
        if (!reply.ok()) return done(reply.error());
        if (reply->condition != Condition::kOk) {
          return done(CommandError("UID FETCH FLAGS failed on " + options_.server, *reply));
        }
        done(std::move(*updates));
      });
}

void Session::StoreFlags(const std::string& uid_set, bool add,
                         const std::vector<std::string>& flags, uint64_t unchanged_since,
                         std::function<void(Result<StoreResult>)> done) {
  std::string line = "UID STORE " + uid_set;
  if (unchanged_since != 0) line += " (UNCHANGEDSINCE " + std::to_string(unchanged_since) + ")";
  line += add ? " +FLAGS (" : " -FLAGS (";
  for (size_t i = 0; i < flags.size(); ++i) line += (i == 0 ? "" : " ") + flags[i];
  line += ")\r\n";
  auto result = std::make_shared<StoreResult>();
  // FETCH responses reach every command in flight: keep those of this set.
  auto wanted = std::make_shared<UidRanges>(ParseSequenceSet(uid_set).value_or(UidRanges{}));
  Execute(
      Command{{line}, "UID STORE", false},
      [result, wanted](const Response& response) {
        if (response.type != ResponseType::kFetch || !response.fetch.uid) return;
        if (!Contains(*wanted, *response.fetch.uid)) return;
        result->updates.push_back(ToFlagUpdate(response.fetch));
      },
      [this, result, done = std::move(done)](Result<TaggedReply> reply) {
        if (!reply.ok()) return done(reply.error());
        if (reply->condition != Condition::kOk) {
          return done(CommandError("UID STORE failed on " + options_.server, *reply));
        }
        if (reply->code == "MODIFIED") {
          std::optional<UidRanges> modified = ParseSequenceSet(reply->code_raw);
          if (!modified) {
            return done(MakeError(ErrorKind::kProtocol, "server " + options_.server +
                                                            " sent a malformed [MODIFIED " +
                                                            Printable(reply->code_raw, 100) + "]"));
          }
          result->modified = std::move(*modified);
        }
        done(std::move(*result));
      });
}

namespace {

// A COPYUID set's UIDs in the order listed (the pairing depends on it,
// RFC 4315 §3), at most `limit` of them; nullopt when malformed.
std::optional<std::vector<uint32_t>> ExpandInOrder(std::string_view text, size_t limit) {
  std::vector<uint32_t> out;
  while (!text.empty()) {
    size_t comma = text.find(',');
    std::string_view item = text.substr(0, comma);
    text = comma == std::string_view::npos ? std::string_view() : text.substr(comma + 1);
    size_t colon = item.find(':');
    std::optional<UidRanges> low = ParseSequenceSet(item.substr(0, colon));
    std::optional<UidRanges> high =
        colon == std::string_view::npos ? low : ParseSequenceSet(item.substr(colon + 1));
    if (!low || !high || low->size() != 1 || high->size() != 1 ||
        low->front().first != low->front().second || high->front().first != high->front().second) {
      return std::nullopt;  // empty, "*", or not a number
    }
    uint32_t a = std::min(low->front().first, high->front().first);
    uint32_t b = std::max(low->front().first, high->front().first);
    if (b - a >= limit - std::min(limit, out.size())) return std::nullopt;
    for (uint64_t uid = a; uid <= b; ++uid) out.push_back(static_cast<uint32_t>(uid));
  }
  if (out.empty()) return std::nullopt;
  return out;
}

// [COPYUID uidvalidity source-set destination-set] (RFC 4315 §3) as pairs;
// nullopt when malformed or when a source UID is outside `asked`.
std::optional<Session::MoveResult> ParseCopyUid(std::string_view raw, const UidRanges& asked) {
  size_t first = raw.find(' ');
  size_t second = first == std::string_view::npos ? first : raw.find(' ', first + 1);
  if (second == std::string_view::npos) return std::nullopt;
  std::optional<UidRanges> validity = ParseSequenceSet(raw.substr(0, first));
  if (!validity || validity->size() != 1 || validity->front().first != validity->front().second) {
    return std::nullopt;
  }
  // No more pairs than UIDs we asked to move: a hostile set cannot make us
  // expand four billion of them.
  size_t limit = 0;
  for (const auto& range : asked) limit += size_t{range.second} - range.first + 1;
  std::optional<std::vector<uint32_t>> sources =
      ExpandInOrder(raw.substr(first + 1, second - first - 1), limit);
  std::optional<std::vector<uint32_t>> targets = ExpandInOrder(raw.substr(second + 1), limit);
  if (!sources || !targets || sources->size() != targets->size()) return std::nullopt;
  Session::MoveResult result;
  result.uidvalidity = validity->front().first;
  for (size_t i = 0; i < sources->size(); ++i) {
    if (!Contains(asked, (*sources)[i])) return std::nullopt;
    result.moved.emplace_back((*sources)[i], (*targets)[i]);
  }
  return result;
}

}  // namespace

namespace {

// "(\\Seen $Forwarded)": an APPEND's flag list.
std::string FlagList(const std::vector<std::string>& flags) {
  std::string list = "(";
  for (size_t i = 0; i < flags.size(); ++i) list += (i == 0 ? "" : " ") + flags[i];
  return list + ")";
}

// The outcome of an APPEND of one message.
Result<Session::AppendResult> OneAppended(Result<Session::MultiAppendResult> appended) {
  if (!appended.ok()) return appended.error();
  Session::AppendResult result;
  if (appended->uids.size() == 1) {
    result.uidvalidity = appended->uidvalidity;
    result.uid = appended->uids.front();
  }
  return result;
}

}  // namespace

void Session::Append(const std::string& raw_mailbox, const std::vector<std::string>& flags,
                     const std::string& internaldate, std::string_view message,
                     std::function<void(Result<AppendResult>)> done) {
  AppendMany(raw_mailbox, {AppendMessage{flags, internaldate, message}},
             [done = std::move(done)](Result<MultiAppendResult> appended) {
               done(OneAppended(std::move(appended)));
             });
}

void Session::AppendStreamed(const std::string& raw_mailbox, const std::vector<std::string>& flags,
                             const std::string& internaldate,
                             std::shared_ptr<LiteralSource> message,
                             std::function<void(Result<AppendResult>)> done) {
  const std::string what = "APPEND to " + Printable(raw_mailbox, 100);
  CommandBuilder builder("APPEND", literal_policy());
  builder.AString(raw_mailbox);
  builder.Raw(FlagList(flags));
  if (!internaldate.empty()) builder.Raw("\"" + internaldate + "\"");
  builder.StreamedLiteral(std::move(message));
  Result<Command> command = builder.Build();
  if (!command.ok()) return done(command.error().Wrap(what));
  Execute(std::move(command).value(), nullptr,
          [this, what, done = std::move(done)](Result<TaggedReply> reply) {
            done(OneAppended(AppendReply(what, 1, std::move(reply))));
          });
}

void Session::AppendMany(const std::string& raw_mailbox, const std::vector<AppendMessage>& messages,
                         std::function<void(Result<MultiAppendResult>)> done) {
  const std::string what = "APPEND to " + Printable(raw_mailbox, 100);
  if (messages.empty()) return done(MultiAppendResult{});
  if (messages.size() > 1 && !capabilities_.Has("MULTIAPPEND")) {
    return done(MakeError(ErrorKind::kInternal, what + ": the server does not offer MULTIAPPEND"));
  }
  CommandBuilder builder("APPEND", literal_policy());
  builder.AString(raw_mailbox);
  for (const AppendMessage& message : messages) {
    builder.Raw(FlagList(message.flags));
    if (!message.internaldate.empty()) builder.Raw("\"" + message.internaldate + "\"");
    builder.Literal(message.message);
  }
  Result<Command> command = builder.Build();
  if (!command.ok()) return done(command.error().Wrap(what));
  Execute(std::move(command).value(), nullptr,
          [this, what, count = messages.size(), done = std::move(done)](Result<TaggedReply> reply) {
            done(AppendReply(what, count, std::move(reply)));
          });
}

Result<Session::MultiAppendResult> Session::AppendReply(const std::string& what, size_t count,
                                                        Result<TaggedReply> reply) const {
  if (!reply.ok()) return reply.error();
  if (reply->condition != Condition::kOk) {
    return CommandError(what + " failed on " + options_.server, *reply);
  }
  MultiAppendResult result;
  if (reply->code == "APPENDUID") {
    // "uidvalidity uid-set", the UIDs in the order of the messages
    // (RFC 4315 §3, RFC 3502); anything else is unusable.
    const std::string_view raw = reply->code_raw;
    const size_t space = raw.find(' ');
    std::optional<UidRanges> validity = ParseSequenceSet(raw.substr(0, space));
    std::optional<std::vector<uint32_t>> uids = space == std::string_view::npos
                                                    ? std::nullopt
                                                    : ExpandInOrder(raw.substr(space + 1), count);
    if (validity && validity->size() == 1 && validity->front().first == validity->front().second &&
        uids && uids->size() == count) {
      result.uidvalidity = validity->front().first;
      result.uids = std::move(*uids);
    }
  }
  return result;
}

void Session::UidMove(const std::string& uid_set, const std::string& raw_mailbox,
                      std::function<void(Result<MoveResult>)> done) {
  const bool move = capabilities_.Has("MOVE");
  if (!move && !capabilities_.Has("UIDPLUS")) {
    done(MakeError(ErrorKind::kProtocol,
                   "server " + options_.server +
                       " has neither MOVE nor UIDPLUS: mailmirror does not move messages "
                       "there, since removing the originals would need a plain EXPUNGE"));
    return;
  }
  Result<Command> command = CommandBuilder(move ? "UID MOVE" : "UID COPY", literal_policy())
                                .Raw(uid_set)
                                .AString(raw_mailbox)
                                .Build();
  if (!command.ok()) {
    done(command.error());
    return;
  }
  auto asked = std::make_shared<UidRanges>(ParseSequenceSet(uid_set).value_or(UidRanges{}));
  auto result = std::make_shared<MoveResult>();
  auto on_copyuid = [result, asked](std::string_view raw) {
    if (!result->moved.empty()) return;
    if (std::optional<MoveResult> parsed = ParseCopyUid(raw, *asked)) *result = std::move(*parsed);
  };
  const std::string verb = move ? "UID MOVE" : "UID COPY";
  Execute(
      std::move(command).value(),
      [on_copyuid](const Response& response) {
        // MOVE reports COPYUID in an untagged OK before the expunges.
        if (response.type == ResponseType::kCondition && response.code &&
            EqualsIgnoreCase(response.code->name, "COPYUID")) {
          on_copyuid(response.code->raw);
        }
      },
      [this, move, uid_set, verb, raw_mailbox, result, on_copyuid,
       done = std::move(done)](Result<TaggedReply> reply) mutable {
        if (!reply.ok()) return done(reply.error());
        if (reply->condition != Condition::kOk) {
          return done(CommandError(
              verb + " to " + Printable(raw_mailbox, 100) + " failed on " + options_.server,
              *reply));
        }
        if (reply->code == "COPYUID") on_copyuid(reply->code_raw);
        if (move) return done(std::move(*result));
        // COPY done: remove exactly the originals.
        StoreFlags(uid_set, true, {"\\Deleted"}, 0,
                   [this, uid_set, result, done](const Result<StoreResult>& stored) mutable {
                     if (!stored.ok()) return done(stored.error());
                     UidExpunge(uid_set, [result, done](const Status& expunged) {
                       if (!expunged.ok()) return done(expunged.error());
                       done(std::move(*result));
                     });
                   });
      });
}

void Session::Create(const std::string& raw_mailbox, Done done) {
  CommandBuilder builder("CREATE", literal_policy());
  builder.AString(raw_mailbox);
  Result<Command> command = builder.Build();
  if (!command.ok()) return done(command.error());
  Execute(std::move(command).value(), nullptr,
          [this, raw_mailbox, done = std::move(done)](Result<TaggedReply> reply) {
            if (!reply.ok()) return done(reply.error());
            if (reply->condition != Condition::kOk && reply->code != "ALREADYEXISTS") {
              return done(
                  CommandError("CREATE " + raw_mailbox + " failed on " + options_.server, *reply));
            }
            done(Status::Ok());
          });
}

void Session::Subscribe(const std::string& raw_mailbox, Done done) {
  CommandBuilder builder("SUBSCRIBE", literal_policy());
  builder.AString(raw_mailbox);
  Result<Command> command = builder.Build();
  if (!command.ok()) return done(command.error());
  Execute(std::move(command).value(), nullptr,
          [this, raw_mailbox, done = std::move(done)](Result<TaggedReply> reply) {
            if (!reply.ok()) return done(reply.error());
            if (reply->condition != Condition::kOk) {
              return done(CommandError(
                  "SUBSCRIBE " + Printable(raw_mailbox, 100) + " failed on " + options_.server,
                  *reply));
            }
            done(Status::Ok());
          });
}

void Session::UidExpunge(const std::string& uid_set, Done done) {
  if (!capabilities_.Has("UIDPLUS")) {
    done(MakeError(ErrorKind::kProtocol,
                   "server " + options_.server +
                       " lacks UIDPLUS: mailmirror does not expunge without it, since a plain "
                       "EXPUNGE would also remove other clients' deleted messages"));
    return;
  }
  Execute(Command{{"UID EXPUNGE " + uid_set + "\r\n"}, "UID EXPUNGE", false}, nullptr,
          [this, done = std::move(done)](Result<TaggedReply> reply) {
            if (!reply.ok()) return done(reply.error());
            if (reply->condition != Condition::kOk) {
              return done(CommandError("UID EXPUNGE failed on " + options_.server, *reply));
            }
            done(Status::Ok());
          });
}

void Session::SearchAllUids(std::function<void(Result<UidRanges>)> done) {
  auto found = std::make_shared<UidRanges>();
  auto malformed = std::make_shared<bool>(false);
  const bool esearch = capabilities_.Has("ESEARCH");
  std::string line = esearch ? "UID SEARCH RETURN (ALL) ALL\r\n" : "UID SEARCH ALL\r\n";
  Execute(
      Command{{line}, "UID SEARCH", false},
      [found, malformed](const Response& response) {
        if (response.type == ResponseType::kSearch) {
          std::vector<uint32_t> uids(response.numbers.begin(), response.numbers.end());
          std::sort(uids.begin(), uids.end());
          for (uint32_t uid : uids) {
            if (!found->empty() && found->back().second + 1 == uid) {
              found->back().second = uid;
            } else {
              found->emplace_back(uid, uid);
            }
          }
        } else if (response.type == ResponseType::kEsearch) {
          // "(TAG "A5") UID ALL 1:5,9": the set follows the ALL keyword.
          std::string_view raw = response.raw;
          size_t all = raw.find(" ALL ");
          if (all == std::string_view::npos) return;  // no matches at all
          std::string_view set = raw.substr(all + 5);
          set = set.substr(0, set.find(' '));
          std::optional<UidRanges> ranges = ParseSequenceSet(set);
          if (!ranges) {
            *malformed = true;
            return;
          }
          *found = std::move(*ranges);
        }
      },
      [this, found, malformed, done = std::move(done)](Result<TaggedReply> reply) {
        if (!reply.ok()) return done(reply.error());
        if (reply->condition != Condition::kOk || *malformed) {
          return done(CommandError("UID SEARCH failed on " + options_.server, *reply));
        }
        done(std::move(*found));
      });
}

FetchSink* Session::CurrentFetchSink() const {
  for (const Pending& pending : in_flight_) {
    if (pending.fetch_sink != nullptr) return pending.fetch_sink;
  }
  return nullptr;
}

Status Session::OnLiteralBegin(uint32_t seq, std::string_view section, uint64_t size) {
  streaming_sink_ = CurrentFetchSink();
  if (streaming_sink_ == nullptr || !section.empty()) {
    // Not a whole-message body we asked for: there is nowhere to put it.
    return MakeError(ErrorKind::kProtocol,
                     "server " + options_.server + " sent an unrequested message body");
  }
  sink_status_ = streaming_sink_->OnBodyBegin(seq, size);
  return sink_status_;
}

Status Session::OnLiteralData(std::string_view chunk) {
  sink_status_ = streaming_sink_->OnBodyData(chunk);
  return sink_status_;
}

Status Session::OnLiteralEnd() {
  sink_status_ = streaming_sink_->OnBodyEnd();
  streaming_sink_ = nullptr;
  return sink_status_;
}

void Session::Compress(std::function<void(Result<bool>)> done) {
  if (failure_) {
    done(*failure_);
    return;
  }
  if (compression_ || !in_flight_.empty() || !queued_.empty()) {
    // RFC 4978 §3: nothing may be pipelined behind COMPRESS.
    done(MakeError(ErrorKind::kInternal, "COMPRESS requested with other commands pending"));
    return;
  }
  Execute(Command{{"COMPRESS DEFLATE\r\n"}, "COMPRESS", false}, nullptr,
          [this, done = std::move(done)](const Result<TaggedReply>& reply) {
            if (!reply.ok()) {
              done(reply.error());
              return;
            }
            if (reply->condition != Condition::kOk) {
              Log(LogLevel::kDebug,
                  "server " + options_.server + " refused COMPRESS: " + DescribeReply(*reply));
              done(false);
              return;
            }
            Result<std::unique_ptr<DeflateStream>> stream = DeflateStream::Create();
            if (!stream.ok()) {
              Fail(stream.error());
              done(stream.error());
              return;
            }
            compression_ = std::move(stream).value();
            parser_.Pause();
            done(true);
          });
}

void Session::Logout(Done done) {
  if (failure_) {
    done(*failure_);
    return;
  }
  Execute(Command{{"LOGOUT\r\n"}, "LOGOUT", false}, nullptr,
          [this, done = std::move(done)](const Result<TaggedReply>& reply) {
            if (reply.ok()) {
              state_ = State::kClosed;
              transport_->Close();
            }
            // Some servers close right after their BYE, before the tagged OK.
            done(reply.ok() || !bye_text_.empty() ? Status::Ok() : reply.status());
          });
}

}  // namespace mailmirror::imap
