// Session tests replay server transcripts through a scripted transport and
// check what the client sends back and what the callbacks report.
#include "imap/session.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "util/base64.h"

namespace mailmirror::imap {
namespace {

class ScriptedTransport : public Transport {
 public:
  void Send(std::string_view bytes) override {
    sent += bytes;
    if (count_queued) queued += bytes.size();
  }
  size_t queued_bytes() const override { return queued; }
  void StartTls() override { tls_started = true; }
  void Close() override { closed = true; }

  // Returns and forgets what the client sent so far.
  std::string TakeSent() {
    std::string out = std::move(sent);
    sent.clear();
    return out;
  }

  std::string sent;
  bool count_queued = false;  // like a socket that writes nothing until drained
  size_t queued = 0;
  bool tls_started = false;
  bool closed = false;
};

class SessionTest : public ::testing::Test {
 protected:
  void MakeSession(Security security, ParserLimits limits = {}) {
    SessionOptions options;
    options.server = "imap.test:993";
    options.security = security;
    options.limits = limits;
    session_ = std::make_unique<Session>(&transport_, options);
  }

  void StartLogin(const std::string& user = "alice", const std::string& password = "secret") {
    session_->Login(user, password, [this](Status status) {
      ASSERT_FALSE(login_status_.has_value()) << "login reported twice";
      login_status_ = status;
    });
  }

  void Server(std::string_view bytes) { session_->OnData(bytes); }

  ScriptedTransport transport_;
  std::unique_ptr<Session> session_;
  std::optional<Status> login_status_;
};

std::string PlainInitialResponse(const std::string& user, const std::string& password) {
  return Base64Encode(std::string("\0", 1) + user + std::string("\0", 1) + password);
}

TEST_F(SessionTest, SaslIrLoginUsesCapabilitiesFromGreetingAndOk) {
  MakeSession(Security::kTls);
  StartLogin();
  EXPECT_EQ(transport_.TakeSent(), "");  // nothing before the greeting
  Server("* OK [CAPABILITY IMAP4rev1 SASL-IR AUTH=PLAIN LITERAL+] ready\r\n");
  EXPECT_EQ(transport_.TakeSent(),
            "A1 AUTHENTICATE PLAIN " + PlainInitialResponse("alice", "secret") + "\r\n");
  Server("A1 OK [CAPABILITY IMAP4rev1 CONDSTORE LIST-STATUS] Logged in\r\n");
  ASSERT_TRUE(login_status_.has_value());
  EXPECT_TRUE(login_status_->ok());
  EXPECT_TRUE(session_->authenticated());
  EXPECT_TRUE(session_->capabilities().Has("condstore"));
  EXPECT_FALSE(session_->capabilities().Has("SASL-IR"));  // replaced by the new list
  EXPECT_EQ(transport_.TakeSent(), "");                   // no extra CAPABILITY
}

TEST_F(SessionTest, LoginCommandWhenNoPlainMechanism) {
  MakeSession(Security::kTls);
  StartLogin("alice", "p\"w\\ d");
  Server("* OK hello\r\n");
  EXPECT_EQ(transport_.TakeSent(), "A1 CAPABILITY\r\n");
  Server("* CAPABILITY IMAP4rev1 AUTH=LOGIN\r\nA1 OK done\r\n");
  EXPECT_EQ(transport_.TakeSent(), "A2 LOGIN alice \"p\\\"w\\\\ d\"\r\n");
  Server("A2 OK Logged in\r\n");
  // No capabilities in the OK: ask again, since they change after login.
  EXPECT_EQ(transport_.TakeSent(), "A3 CAPABILITY\r\n");
  EXPECT_FALSE(login_status_.has_value());
  Server("* CAPABILITY IMAP4rev1 MOVE\r\nA3 OK done\r\n");
  ASSERT_TRUE(login_status_.has_value());
  EXPECT_TRUE(login_status_->ok());
  EXPECT_TRUE(session_->capabilities().Has("MOVE"));
}

TEST_F(SessionTest, PlainWithoutSaslIrWaitsForContinuation) {
  MakeSession(Security::kTls);
  StartLogin();
  Server("* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN] ready\r\n");
  EXPECT_EQ(transport_.TakeSent(), "A1 AUTHENTICATE PLAIN\r\n");
  Server("+\r\n");  // some servers send a bare "+"
  EXPECT_EQ(transport_.TakeSent(), PlainInitialResponse("alice", "secret") + "\r\n");
  Server("A1 OK [CAPABILITY IMAP4rev1] ok\r\n");
  ASSERT_TRUE(login_status_.has_value());
  EXPECT_TRUE(login_status_->ok());
}

TEST_F(SessionTest, EightBitPasswordGoesAsSynchronizingLiteral) {
  MakeSession(Security::kTls);
  StartLogin("alice", "s\xC3\xA9same");
  Server("* OK [CAPABILITY IMAP4rev1] ready\r\n");
  EXPECT_EQ(transport_.TakeSent(), "A1 LOGIN alice {7}\r\n");
  Server("+ go ahead\r\n");
  EXPECT_EQ(transport_.TakeSent(), "s\xC3\xA9same\r\n");
  Server("A1 OK [CAPABILITY IMAP4rev1] ok\r\n");
  ASSERT_TRUE(login_status_.has_value());
  EXPECT_TRUE(login_status_->ok());
}

TEST_F(SessionTest, WrongPasswordIsAnAuthError) {
  MakeSession(Security::kTls);
  StartLogin();
  Server("* OK [CAPABILITY IMAP4rev1 SASL-IR AUTH=PLAIN] ready\r\n");
  transport_.TakeSent();
  Server("A1 NO [AUTHENTICATIONFAILED] Authentication failed.\r\n");
  ASSERT_TRUE(login_status_.has_value());
  ASSERT_FALSE(login_status_->ok());
  EXPECT_EQ(login_status_->error().kind, ErrorKind::kAuth);
  EXPECT_NE(login_status_->error().message.find("[AUTHENTICATIONFAILED] Authentication failed"),
            std::string::npos)
      << login_status_->error().message;
  EXPECT_NE(login_status_->error().message.find("alice"), std::string::npos);
  EXPECT_FALSE(session_->authenticated());
}

TEST_F(SessionTest, UnavailableDuringLoginIsTemporary) {
  MakeSession(Security::kTls);
  StartLogin();
  Server("* OK [CAPABILITY IMAP4rev1 SASL-IR AUTH=PLAIN] ready\r\n");
  Server("A1 NO [UNAVAILABLE] Try later\r\n");
  ASSERT_TRUE(login_status_.has_value());
  EXPECT_EQ(login_status_->error().kind, ErrorKind::kTemporary);
}

TEST_F(SessionTest, GmailConnectionLimitAtLoginIsThrottling) {
  MakeSession(Security::kTls);
  StartLogin();
  Server("* OK [CAPABILITY IMAP4rev1 SASL-IR AUTH=PLAIN] ready\r\n");
  Server("A1 NO [ALERT] Too many simultaneous connections. (Failure)\r\n");
  ASSERT_TRUE(login_status_.has_value());
  EXPECT_EQ(login_status_->error().kind, ErrorKind::kTemporary);
  EXPECT_TRUE(login_status_->error().throttle_ms.has_value());
  EXPECT_TRUE(Transient(login_status_->error()));
}

TEST_F(SessionTest, ByeGreetingIsUnavailable) {
  MakeSession(Security::kTls);
  StartLogin();
  Server("* BYE Too many connections\r\n");
  ASSERT_TRUE(login_status_.has_value());
  ASSERT_FALSE(login_status_->ok());
  EXPECT_EQ(login_status_->error().kind, ErrorKind::kUnavailable);
  EXPECT_NE(login_status_->error().message.find("Too many connections"), std::string::npos);
  EXPECT_TRUE(transport_.closed);
  EXPECT_EQ(transport_.TakeSent(), "");
}

TEST_F(SessionTest, NonImapGreetingIsAProtocolError) {
  MakeSession(Security::kTls);
  StartLogin();
  Server("A1 OK what\r\n");
  ASSERT_TRUE(login_status_.has_value());
  EXPECT_EQ(login_status_->error().kind, ErrorKind::kProtocol);
  EXPECT_TRUE(transport_.closed);
}

TEST_F(SessionTest, StartTlsDiscardsInjectedPlaintextAndForgetsCapabilities) {
  MakeSession(Security::kStartTls);
  StartLogin();
  Server("* OK [CAPABILITY IMAP4rev1 STARTTLS LOGINDISABLED] ready\r\n");
  EXPECT_EQ(transport_.TakeSent(), "A1 STARTTLS\r\n");
  // A man in the middle appends a response after the OK: it must be ignored.
  Server("A1 OK Begin TLS\r\n* CAPABILITY IMAP4rev1 AUTH=PLAIN SASL-IR\r\nA2 OK fake\r\n");
  EXPECT_TRUE(transport_.tls_started);
  EXPECT_EQ(transport_.TakeSent(), "");
  EXPECT_FALSE(login_status_.has_value());
  session_->OnTlsStarted();
  EXPECT_EQ(transport_.TakeSent(), "A2 CAPABILITY\r\n");
  Server("* CAPABILITY IMAP4rev1 AUTH=PLAIN\r\nA2 OK done\r\n");
  EXPECT_EQ(transport_.TakeSent(), "A3 AUTHENTICATE PLAIN\r\n");
}

TEST_F(SessionTest, MissingStartTlsSendsNoCredentials) {
  MakeSession(Security::kStartTls);
  StartLogin();
  Server("* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN] ready\r\n");
  ASSERT_TRUE(login_status_.has_value());
  EXPECT_EQ(login_status_->error().kind, ErrorKind::kUnavailable);
  EXPECT_NE(login_status_->error().message.find("STARTTLS"), std::string::npos);
  EXPECT_EQ(transport_.TakeSent(), "");
  EXPECT_TRUE(transport_.closed);
}

TEST_F(SessionTest, PreauthWithStartTlsIsRefused) {
  MakeSession(Security::kStartTls);
  StartLogin();
  Server("* PREAUTH [CAPABILITY IMAP4rev1 STARTTLS] hi\r\n");
  ASSERT_TRUE(login_status_.has_value());
  EXPECT_EQ(login_status_->error().kind, ErrorKind::kUnavailable);
  EXPECT_FALSE(Transient(login_status_->error()));  // a downgrade is not retried
}

TEST_F(SessionTest, RefusedStartTlsIsNotRetried) {
  MakeSession(Security::kStartTls);
  StartLogin();
  Server("* OK [CAPABILITY IMAP4rev1 STARTTLS] ready\r\n");
  EXPECT_EQ(transport_.TakeSent(), "A1 STARTTLS\r\n");
  Server("A1 NO not today\r\n");
  ASSERT_TRUE(login_status_.has_value());
  EXPECT_EQ(login_status_->error().kind, ErrorKind::kUnavailable);
  EXPECT_FALSE(Transient(login_status_->error()));
  EXPECT_EQ(transport_.TakeSent(), "");
}

TEST_F(SessionTest, PreauthSkipsLogin) {
  MakeSession(Security::kTls);
  StartLogin();
  Server("* PREAUTH [CAPABILITY IMAP4rev1] hi\r\n");
  ASSERT_TRUE(login_status_.has_value());
  EXPECT_TRUE(login_status_->ok());
  EXPECT_EQ(transport_.TakeSent(), "");
}

TEST_F(SessionTest, LoginDisabledWithoutPlainIsAConfigError) {
  MakeSession(Security::kNone);
  StartLogin();
  Server("* OK [CAPABILITY IMAP4rev1 LOGINDISABLED] ready\r\n");
  ASSERT_TRUE(login_status_.has_value());
  EXPECT_EQ(login_status_->error().kind, ErrorKind::kConfig);
  EXPECT_EQ(transport_.TakeSent(), "");
}

TEST_F(SessionTest, ConnectionLostDuringLogin) {
  MakeSession(Security::kTls);
  StartLogin();
  Server("* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN SASL-IR] ready\r\n");
  session_->OnClosed(Status::Ok());
  ASSERT_TRUE(login_status_.has_value());
  EXPECT_EQ(login_status_->error().kind, ErrorKind::kUnavailable);
  EXPECT_NE(login_status_->error().message.find("closed unexpectedly"), std::string::npos);
}

TEST_F(SessionTest, TransportErrorIsPassedThrough) {
  MakeSession(Security::kTls);
  StartLogin();
  session_->OnClosed(MakeError(ErrorKind::kUnavailable, "certificate verify failed"));
  ASSERT_TRUE(login_status_.has_value());
  EXPECT_EQ(login_status_->error().message, "certificate verify failed");
}

TEST_F(SessionTest, OverlongLineIsAProtocolError) {
  ParserLimits limits;
  limits.max_line = 1024;
  MakeSession(Security::kTls, limits);
  StartLogin();
  Server("* OK " + std::string(2000, 'x'));
  ASSERT_TRUE(login_status_.has_value());
  EXPECT_EQ(login_status_->error().kind, ErrorKind::kProtocol);
  EXPECT_TRUE(transport_.closed);
}

TEST_F(SessionTest, UnexpectedContinuationIsAProtocolError) {
  MakeSession(Security::kTls);
  StartLogin();
  Server("* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN SASL-IR] ready\r\n");
  Server("+ what?\r\n");
  ASSERT_TRUE(login_status_.has_value());
  EXPECT_EQ(login_status_->error().kind, ErrorKind::kProtocol);
}

class LoggedInSessionTest : public SessionTest {
 protected:
  void LogIn(const std::string& capabilities) {
    MakeSession(Security::kTls);
    StartLogin();
    Server("* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN SASL-IR] ready\r\n");
    Server("A1 OK [CAPABILITY " + capabilities + "] Logged in\r\n");
    ASSERT_TRUE(login_status_.has_value() && login_status_->ok());
    transport_.TakeSent();
  }

  void List() {
    session_->ListMailboxes([this](Result<std::vector<MailboxInfo>> result) {
      ASSERT_FALSE(listed_.has_value()) << "list reported twice";
      listed_ = std::move(result);
    });
  }

  std::optional<Result<std::vector<MailboxInfo>>> listed_;
};

TEST_F(LoggedInSessionTest, ListStatusInOneCommand) {
  LogIn("IMAP4rev1 LIST-STATUS CONDSTORE LITERAL+");
  List();
  EXPECT_EQ(transport_.TakeSent(),
            "A2 LIST \"\" \"*\" RETURN (STATUS (MESSAGES UNSEEN UIDNEXT UIDVALIDITY "
            "HIGHESTMODSEQ))\r\n");
  Server(
      "* LIST (\\HasNoChildren) \"/\" Inbox\r\n"
      "* STATUS INBOX (MESSAGES 5 UNSEEN 3 UIDNEXT 6 UIDVALIDITY 1700000000 HIGHESTMODSEQ 9)\r\n"
      "* LIST (\\Noselect \\HasChildren) \"/\" Archive\r\n"
      "* LIST (\\HasNoChildren) \"/\" \"Entw&APw-rfe\"\r\n"
      "* STATUS \"Entw&APw-rfe\" (MESSAGES 2 UNSEEN 1 UIDNEXT 3 UIDVALIDITY 1700000001)\r\n"
      "* LIST (\\HasNoChildren) \"/\" {10}\r\nSent Items\r\n"
      "* STATUS {10}\r\nSent Items (MESSAGES 4 UNSEEN 0)\r\n"
      "A2 OK List completed\r\n");
  ASSERT_TRUE(listed_.has_value());
  ASSERT_TRUE(listed_->ok()) << listed_->error().message;
  const std::vector<MailboxInfo>& boxes = listed_->value();
  ASSERT_EQ(boxes.size(), 4u);
  EXPECT_EQ(boxes[0].raw_name, "INBOX");  // "Inbox" normalized
  EXPECT_EQ(boxes[0].messages, 5u);
  EXPECT_EQ(boxes[0].unseen, 3u);
  EXPECT_EQ(boxes[0].uidvalidity, 1700000000u);
  EXPECT_EQ(boxes[0].highestmodseq, 9u);
  EXPECT_EQ(boxes[0].delimiter, '/');
  EXPECT_FALSE(boxes[1].selectable);
  EXPECT_FALSE(boxes[1].messages.has_value());
  EXPECT_EQ(boxes[2].raw_name, "Entw&APw-rfe");
  EXPECT_EQ(boxes[2].name, "Entwürfe");
  EXPECT_EQ(boxes[2].messages, 2u);
  EXPECT_EQ(boxes[3].name, "Sent Items");
  EXPECT_EQ(boxes[3].messages, 4u);
  EXPECT_EQ(boxes[3].unseen, 0u);
  EXPECT_EQ(transport_.TakeSent(), "");
}

TEST_F(LoggedInSessionTest, PipelinedStatusWithoutListStatus) {
  LogIn("IMAP4rev1");
  List();
  EXPECT_EQ(transport_.TakeSent(), "A2 LIST \"\" \"*\"\r\n");
  Server(
      "* LIST (\\HasNoChildren) \".\" INBOX\r\n"
      "* LIST (\\Noselect) \".\" Shared\r\n"
      "* LIST (\\HasNoChildren) \".\" \"Sent Items\"\r\n"
      "* LIST (\\HasNoChildren) \".\" Gone\r\n"
      "A2 OK done\r\n");
  // Every STATUS is sent before any reply comes back.
  EXPECT_EQ(transport_.TakeSent(),
            "A3 STATUS INBOX (MESSAGES UNSEEN UIDNEXT UIDVALIDITY)\r\n"
            "A4 STATUS \"Sent Items\" (MESSAGES UNSEEN UIDNEXT UIDVALIDITY)\r\n"
            "A5 STATUS Gone (MESSAGES UNSEEN UIDNEXT UIDVALIDITY)\r\n");
  Server("* STATUS INBOX (MESSAGES 7 UNSEEN 1 UIDNEXT 8 UIDVALIDITY 42) \r\n");  // trailing space
  Server("A3 OK done\r\n");
  Server("* STATUS \"Sent Items\" (MESSAGES 2 UNSEEN 0 UIDNEXT 3 UIDVALIDITY 43)\r\n");
  EXPECT_FALSE(listed_.has_value());
  Server("A4 OK done\r\nA5 NO Mailbox doesn't exist: Gone\r\n");
  ASSERT_TRUE(listed_.has_value());
  ASSERT_TRUE(listed_->ok());
  const std::vector<MailboxInfo>& boxes = listed_->value();
  ASSERT_EQ(boxes.size(), 4u);
  EXPECT_EQ(boxes[0].messages, 7u);
  EXPECT_EQ(boxes[0].delimiter, '.');
  EXPECT_EQ(boxes[2].messages, 2u);
  EXPECT_FALSE(boxes[3].messages.has_value());  // vanished between LIST and STATUS
}

TEST_F(LoggedInSessionTest, ListFailureIsReported) {
  LogIn("IMAP4rev1");
  List();
  Server("A2 BAD no\r\n");
  ASSERT_TRUE(listed_.has_value());
  ASSERT_FALSE(listed_->ok());
  EXPECT_EQ(listed_->error().kind, ErrorKind::kProtocol);
}

TEST_F(LoggedInSessionTest, ConnectionLossFailsEveryPendingCommandOnce) {
  LogIn("IMAP4rev1");
  List();
  Server("* LIST () \"/\" A\r\n* LIST () \"/\" B\r\nA2 OK done\r\n");
  Server("* BYE shutting down\r\n");
  session_->OnClosed(Status::Ok());
  ASSERT_TRUE(listed_.has_value());
  ASSERT_FALSE(listed_->ok());
  EXPECT_EQ(listed_->error().kind, ErrorKind::kUnavailable);
  EXPECT_NE(listed_->error().message.find("shutting down"), std::string::npos);
}

TEST_F(LoggedInSessionTest, ThrottlingByeCarriesTheSuggestedBackoff) {
  LogIn("IMAP4rev1");
  List();
  Server("* BYE Request is throttled. Suggested Backoff Time: 299961 milliseconds\r\n");
  // The transport reports its own reason; the BYE says more.
  session_->OnClosed(MakeError(ErrorKind::kUnavailable, "connection closed by the server"));
  ASSERT_TRUE(listed_.has_value());
  ASSERT_FALSE(listed_->ok());
  EXPECT_EQ(listed_->error().kind, ErrorKind::kTemporary);
  EXPECT_EQ(listed_->error().throttle_ms, 299961U);
  EXPECT_NE(listed_->error().message.find("throttled"), std::string::npos);
}

TEST_F(LoggedInSessionTest, ThrottledAndOverQuotaReplies) {
  LogIn("IMAP4rev1 LITERAL+ UIDPLUS");
  List();
  Server("A2 NO [THROTTLED] slow down\r\n");
  ASSERT_TRUE(listed_.has_value());
  EXPECT_EQ(listed_->error().kind, ErrorKind::kTemporary);
  EXPECT_EQ(listed_->error().throttle_ms, 0U);
  EXPECT_TRUE(Transient(listed_->error()));
  std::optional<Result<Session::AppendResult>> appended;
  session_->Append("INBOX", {}, "", "x\r\n",
                   [&](Result<Session::AppendResult> result) { appended = std::move(result); });
  transport_.TakeSent();
  Server("A3 NO [OVERQUOTA] Quota exceeded (mailbox for user is full)\r\n");
  ASSERT_TRUE(appended.has_value());
  ASSERT_FALSE(appended->ok());
  EXPECT_EQ(appended->error().kind, ErrorKind::kTemporary);
  EXPECT_FALSE(Transient(appended->error()));  // waiting within the run does not help
}

TEST_F(LoggedInSessionTest, CommandsAfterLogoutFailAtOnce) {
  LogIn("IMAP4rev1");
  session_->Logout([](const Status&) {});
  Server("* BYE Logging out\r\nA2 OK Logout completed.\r\n");
  session_->OnClosed(Status::Ok());
  List();
  ASSERT_TRUE(listed_.has_value());
  ASSERT_FALSE(listed_->ok());
  EXPECT_EQ(listed_->error().kind, ErrorKind::kUnavailable);
}

TEST_F(LoggedInSessionTest, LogoutClosesTheTransport) {
  LogIn("IMAP4rev1");
  std::optional<Status> logged_out;
  session_->Logout([&](Status status) { logged_out = status; });
  EXPECT_EQ(transport_.TakeSent(), "A2 LOGOUT\r\n");
  Server("* BYE Logging out\r\nA2 OK Logout completed.\r\n");
  ASSERT_TRUE(logged_out.has_value());
  EXPECT_TRUE(logged_out->ok());
  EXPECT_TRUE(transport_.closed);
  session_->OnClosed(Status::Ok());  // the expected close reports nothing
}

// The server's end of a compressed connection: what it sends, compressed,
// and what the client sent, decompressed.
class DeflatePeer {
 public:
  DeflatePeer() : stream_(std::move(DeflateStream::Create()).value()) {}
  std::string Compress(std::string_view plain) {
    std::string out;
    EXPECT_TRUE(stream_->Compress(plain, &out).ok());
    return out;
  }
  std::string Decompress(std::string_view compressed) {
    std::string out;
    EXPECT_TRUE(stream_
                    ->Decompress(compressed,
                                 [&out](std::string_view chunk) {
                                   out.append(chunk);
                                   return Status::Ok();
                                 })
                    .ok());
    return out;
  }

 private:
  std::unique_ptr<DeflateStream> stream_;
};

TEST_F(LoggedInSessionTest, CompressDeflateCompressesBothDirections) {
  LogIn("IMAP4rev1 COMPRESS=DEFLATE");
  std::optional<Result<bool>> compressed;
  std::optional<Result<TaggedReply>> noop;
  session_->Compress([&](Result<bool> result) {
    compressed = std::move(result);
    // Sent compressed at once, from inside the reply to COMPRESS.
    session_->Execute(Command{{"NOOP\r\n"}, "NOOP", false}, nullptr,
                      [&](Result<TaggedReply> reply) { noop = std::move(reply); });
  });
  EXPECT_EQ(transport_.TakeSent(), "A2 COMPRESS DEFLATE\r\n");
  DeflatePeer server;
  // The OK and the first compressed bytes arrive in one read: the parser
  // must stop at the OK and hand the rest to the decompressor.
  Server("A2 OK DEFLATE active\r\n" + server.Compress("* 4 EXISTS\r\nA3 OK NOOP done\r\n"));
  ASSERT_TRUE(compressed.has_value() && compressed->ok());
  EXPECT_TRUE(compressed->value());
  EXPECT_TRUE(session_->compressed());
  EXPECT_EQ(server.Decompress(transport_.TakeSent()), "A3 NOOP\r\n");
  ASSERT_TRUE(noop.has_value() && noop->ok());
  EXPECT_EQ(noop->value().text, "NOOP done");

  std::optional<Status> logged_out;
  session_->Logout([&](Status status) { logged_out = status; });
  EXPECT_EQ(server.Decompress(transport_.TakeSent()), "A4 LOGOUT\r\n");
  const std::string reply = server.Compress("* BYE bye\r\nA4 OK Logout completed.\r\n");
  for (char byte : reply) Server(std::string_view(&byte, 1));  // split anywhere
  ASSERT_TRUE(logged_out.has_value());
  EXPECT_TRUE(logged_out->ok());
}

TEST_F(LoggedInSessionTest, RefusedCompressLeavesTheSessionPlain) {
  LogIn("IMAP4rev1 COMPRESS=DEFLATE");
  std::optional<Result<bool>> compressed;
  session_->Compress([&](Result<bool> result) { compressed = std::move(result); });
  EXPECT_EQ(transport_.TakeSent(), "A2 COMPRESS DEFLATE\r\n");
  Server("A2 NO [COMPRESSIONACTIVE] DEFLATE active via TLS\r\n");
  ASSERT_TRUE(compressed.has_value() && compressed->ok());
  EXPECT_FALSE(compressed->value());
  EXPECT_FALSE(session_->compressed());
  session_->Logout([](const Status&) {});
  EXPECT_EQ(transport_.TakeSent(), "A3 LOGOUT\r\n");
}

TEST_F(LoggedInSessionTest, CorruptCompressedStreamFailsTheSession) {
  LogIn("IMAP4rev1 COMPRESS=DEFLATE");
  std::optional<Result<bool>> compressed;
  session_->Compress([&](Result<bool> result) { compressed = std::move(result); });
  Server("A2 OK DEFLATE active\r\n");
  ASSERT_TRUE(compressed.has_value() && compressed->ok() && compressed->value());
  std::optional<Result<TaggedReply>> noop;
  session_->Execute(Command{{"NOOP\r\n"}, "NOOP", false}, nullptr,
                    [&](Result<TaggedReply> reply) { noop = std::move(reply); });
  Server("\xff\xff\xff\xff not deflate");
  ASSERT_TRUE(noop.has_value());
  ASSERT_FALSE(noop->ok());
  EXPECT_EQ(noop->error().kind, ErrorKind::kProtocol);
  EXPECT_NE(noop->error().message.find("bad response from imap.test:993"), std::string::npos)
      << noop->error().message;
  EXPECT_TRUE(transport_.closed);
}

TEST_F(LoggedInSessionTest, CompressRefusesToPipeline) {
  LogIn("IMAP4rev1 COMPRESS=DEFLATE");
  session_->Execute(Command{{"NOOP\r\n"}, "NOOP", false}, nullptr,
                    [](const Result<TaggedReply>&) {});
  std::optional<Result<bool>> compressed;
  session_->Compress([&](Result<bool> result) { compressed = std::move(result); });
  ASSERT_TRUE(compressed.has_value());
  ASSERT_FALSE(compressed->ok());
  EXPECT_EQ(compressed->error().kind, ErrorKind::kInternal);
  EXPECT_EQ(transport_.TakeSent(), "A2 NOOP\r\n");  // COMPRESS never sent
}

TEST_F(LoggedInSessionTest, EnableAsksOnlyForAdvertisedExtensions) {
  LogIn("IMAP4rev1 ENABLE CONDSTORE");
  std::optional<Result<std::set<std::string>>> enabled;
  session_->Enable({"CONDSTORE", "QRESYNC"},
                   [&](Result<std::set<std::string>> result) { enabled = std::move(result); });
  EXPECT_EQ(transport_.TakeSent(), "A2 ENABLE CONDSTORE\r\n");
  Server("* ENABLED condstore\r\nA2 OK Enabled\r\n");
  ASSERT_TRUE(enabled.has_value() && enabled->ok());
  EXPECT_EQ(enabled->value(), std::set<std::string>{"CONDSTORE"});
  EXPECT_EQ(session_->enabled().count("CONDSTORE"), 1u);
}

TEST_F(LoggedInSessionTest, EnableWithoutTheCapabilitySendsNothing) {
  LogIn("IMAP4rev1 CONDSTORE");
  std::optional<Result<std::set<std::string>>> enabled;
  session_->Enable({"CONDSTORE"},
                   [&](Result<std::set<std::string>> result) { enabled = std::move(result); });
  EXPECT_EQ(transport_.TakeSent(), "");
  ASSERT_TRUE(enabled.has_value() && enabled->ok());
  EXPECT_TRUE(enabled->value().empty());
}

TEST_F(LoggedInSessionTest, ExamineCollectsMailboxState) {
  LogIn("IMAP4rev1");
  std::optional<Result<SelectedMailbox>> selected;
  session_->Select("Entw&APw-rfe", true,
                   [&](Result<SelectedMailbox> result) { selected = std::move(result); });
  EXPECT_EQ(transport_.TakeSent(), "A2 EXAMINE Entw&APw-rfe\r\n");
  Server(
      "* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft)\r\n"
      "* OK [PERMANENTFLAGS ()] Read-only mailbox.\r\n"
      "* 12 EXISTS\r\n* 0 RECENT\r\n"
      "* OK [UIDVALIDITY 1700000001] UIDs valid\r\n"
      "* OK [UIDNEXT 13] Predicted next UID\r\n"
      "* OK [HIGHESTMODSEQ 40]\r\n"
      "A2 OK [READ-ONLY] Examine completed\r\n");
  ASSERT_TRUE(selected.has_value());
  ASSERT_TRUE(selected->ok()) << selected->error().message;
  EXPECT_EQ(selected->value().exists, 12u);
  EXPECT_EQ(selected->value().uidvalidity, 1700000001u);
  EXPECT_EQ(selected->value().uidnext, 13u);
  EXPECT_EQ(selected->value().highestmodseq, 40u);
  EXPECT_TRUE(selected->value().read_only);
}

TEST_F(LoggedInSessionTest, SelectFailureNamesTheMailbox) {
  LogIn("IMAP4rev1");
  std::optional<Result<SelectedMailbox>> selected;
  session_->Select("Gone", false,
                   [&](Result<SelectedMailbox> result) { selected = std::move(result); });
  Server("A2 NO Mailbox doesn't exist: Gone\r\n");
  ASSERT_TRUE(selected.has_value());
  ASSERT_FALSE(selected->ok());
  EXPECT_NE(selected->error().message.find("SELECT Gone"), std::string::npos);
  EXPECT_FALSE(transport_.closed);  // the session stays usable
}

TEST_F(LoggedInSessionTest, PersonalNamespace) {
  LogIn("IMAP4rev1 NAMESPACE");
  std::optional<Result<std::optional<PersonalNamespace>>> found;
  session_->GetPersonalNamespace(
      [&](Result<std::optional<PersonalNamespace>> result) { found = std::move(result); });
  EXPECT_EQ(transport_.TakeSent(), "A2 NAMESPACE\r\n");
  Server("* NAMESPACE ((\"INBOX.\" \".\")) NIL ((\"#shared.\" \".\"))\r\nA2 OK done\r\n");
  ASSERT_TRUE(found.has_value() && found->ok());
  ASSERT_TRUE(found->value().has_value());
  EXPECT_EQ(found->value()->prefix, "INBOX.");
  EXPECT_EQ(found->value()->delimiter, '.');
}

class RecordingSink : public FetchSink {
 public:
  Status OnBodyBegin(uint32_t seq, uint64_t size) override {
    events.push_back("begin " + std::to_string(seq) + " " + std::to_string(size));
    body.clear();
    return Status::Ok();
  }
  Status OnBodyData(std::string_view chunk) override {
    body += chunk;
    return fail_data ? Status(MakeError(ErrorKind::kIo, "disk full")) : Status::Ok();
  }
  Status OnBodyEnd() override {
    events.push_back("end " + body);
    return Status::Ok();
  }
  Status OnMessage(const FetchedMessage& message) override {
    std::string flags;
    for (const std::string& flag : message.flags) flags += flag + ",";
    events.push_back("message uid=" + std::to_string(message.uid.value_or(0)) +
                     " body=" + (message.has_body ? (message.body_nil ? "nil" : "yes") : "no") +
                     " flags=" + flags + " date=" + message.internaldate.value_or("") +
                     " size=" + std::to_string(message.rfc822_size.value_or(0)));
    return Status::Ok();
  }
  std::vector<std::string> events;
  std::string body;
  bool fail_data = false;
};

TEST_F(LoggedInSessionTest, UidFetchStreamsBodiesToTheSink) {
  LogIn("IMAP4rev1");
  RecordingSink sink;
  std::optional<Status> done;
  session_->UidFetch("1:*", "UID FLAGS BODY.PEEK[]", &sink, [&](const Status& s) { done = s; });
  EXPECT_EQ(transport_.TakeSent(), "A2 UID FETCH 1:* (UID FLAGS BODY.PEEK[])\r\n");
  // The UID comes after the body, and the literal is split across reads.
  Server("* 1 FETCH (FLAGS (\\Seen $Junk) BODY[] {12}\r\nSubj");
  Server("ect: x\r\n UID 7 INTERNALDATE \" 7-Jul-2024 10:00:00 +0200\" RFC822.SIZE 12)\r\n");
  Server("* 2 FETCH (UID 9 BODY[] NIL)\r\n* 3 FETCH (UID 10 FLAGS ())\r\nA2 OK done\r\n");
  ASSERT_TRUE(done.has_value() && done->ok());
  ASSERT_EQ(sink.events.size(), 5u);
  EXPECT_EQ(sink.events[0], "begin 1 12");
  EXPECT_EQ(sink.events[1], "end Subject: x\r\n");
  EXPECT_EQ(sink.events[2],
            "message uid=7 body=yes flags=\\Seen,$Junk, date= 7-Jul-2024 10:00:00 +0200 size=12");
  EXPECT_EQ(sink.events[3], "message uid=9 body=nil flags= date= size=0");
  EXPECT_EQ(sink.events[4], "message uid=10 body=no flags= date= size=0");
}

TEST_F(LoggedInSessionTest, PipelinedFetchesEachGetOnlyTheirOwnMessages) {
  LogIn("IMAP4rev1");
  RecordingSink first;
  RecordingSink second;  // serves two commands
  std::vector<std::string> done;
  session_->UidFetch("1:2", "UID BODY.PEEK[]", &first,
                     [&](const Status&) { done.push_back("A2"); });
  session_->UidFetch("3", "UID BODY.PEEK[]", &second, [&](const Status&) { done.push_back("A3"); });
  session_->UidFetch("4", "UID BODY.PEEK[]", &second, [&](const Status&) { done.push_back("A4"); });
  EXPECT_EQ(transport_.TakeSent(),
            "A2 UID FETCH 1:2 (UID BODY.PEEK[])\r\nA3 UID FETCH 3 (UID BODY.PEEK[])\r\n"
            "A4 UID FETCH 4 (UID BODY.PEEK[])\r\n");
  Server(
      "* 1 FETCH (UID 1 BODY[] {1}\r\na)\r\n* 2 FETCH (UID 2 BODY[] {1}\r\nb)\r\nA2 OK done\r\n"
      "* 3 FETCH (UID 3 BODY[] {1}\r\nc)\r\nA3 OK done\r\n"
      "* 4 FETCH (UID 4 BODY[] {1}\r\nd)\r\nA4 OK done\r\n");
  EXPECT_EQ(done, (std::vector<std::string>{"A2", "A3", "A4"}));
  ASSERT_EQ(first.events.size(), 6u);
  EXPECT_EQ(first.events[2], "message uid=1 body=yes flags= date= size=0");
  EXPECT_EQ(first.events[5], "message uid=2 body=yes flags= date= size=0");
  // Once each, not once per command in flight.
  ASSERT_EQ(second.events.size(), 6u);
  EXPECT_EQ(second.events[1], "end c");
  EXPECT_EQ(second.events[2], "message uid=3 body=yes flags= date= size=0");
  EXPECT_EQ(second.events[4], "end d");
  EXPECT_EQ(second.events[5], "message uid=4 body=yes flags= date= size=0");
}

TEST_F(LoggedInSessionTest, StoreFlagsReportsUpdatesAndModifiedConflicts) {
  LogIn("IMAP4rev1 CONDSTORE UIDPLUS");
  std::optional<Result<Session::StoreResult>> stored;
  session_->StoreFlags("4:6,9", true, {"\\Seen", "$Forwarded"}, 120,
                       [&](Result<Session::StoreResult> result) { stored = std::move(result); });
  EXPECT_EQ(transport_.TakeSent(),
            "A2 UID STORE 4:6,9 (UNCHANGEDSINCE 120) +FLAGS (\\Seen $Forwarded)\r\n");
  // UID 5 changed on the server after modseq 120: left alone, named in
  // [MODIFIED]; the others were stored.
  Server(
      "* 1 FETCH (UID 4 MODSEQ (131) FLAGS (\\Seen $Forwarded))\r\n"
      "* 3 FETCH (UID 6 MODSEQ (132) FLAGS (\\Seen $Forwarded \\Flagged))\r\n"
      "A2 OK [MODIFIED 5,9] Conditional STORE failed\r\n");
  ASSERT_TRUE(stored.has_value() && stored->ok()) << stored->error().message;
  EXPECT_EQ(stored->value().modified, (UidRanges{{5, 5}, {9, 9}}));
  ASSERT_EQ(stored->value().updates.size(), 2u);
  EXPECT_EQ(stored->value().updates[1].uid, 6u);
  EXPECT_EQ(stored->value().updates[1].modseq, 132u);
  EXPECT_EQ(stored->value().updates[1].flags.size(), 3u);

  session_->StoreFlags("7", false, {"\\Flagged"}, 0,
                       [&](Result<Session::StoreResult> result) { stored = std::move(result); });
  EXPECT_EQ(transport_.TakeSent(), "A3 UID STORE 7 -FLAGS (\\Flagged)\r\n");
  Server("A3 NO [CANNOT] no\r\n");
  ASSERT_FALSE(stored->ok());
  EXPECT_EQ(stored->error().kind, ErrorKind::kProtocol);
  EXPECT_NE(stored->error().message.find("UID STORE failed"), std::string::npos);

  session_->StoreFlags("8", true, {"\\Seen"}, 5,
                       [&](Result<Session::StoreResult> result) { stored = std::move(result); });
  transport_.TakeSent();
  Server("A4 OK [MODIFIED 1:x] hm\r\n");  // hostile: a conflict set that does not parse
  ASSERT_FALSE(stored->ok());
  EXPECT_NE(stored->error().message.find("malformed [MODIFIED"), std::string::npos);
}

TEST_F(LoggedInSessionTest, AppendWithLiteralPlusReportsTheAppendUid) {
  LogIn("IMAP4rev1 LITERAL+ UIDPLUS");
  std::optional<Result<Session::AppendResult>> appended;
  session_->Append("Sent Items", {"\\Seen", "$Forwarded"}, " 7-Jul-2024 10:00:00 +0200",
                   "Subject: hi\r\n\r\nbody\r\n",
                   [&](Result<Session::AppendResult> result) { appended = std::move(result); });
  EXPECT_EQ(transport_.TakeSent(),
            "A2 APPEND \"Sent Items\" (\\Seen $Forwarded) \" 7-Jul-2024 10:00:00 +0200\" {21+}\r\n"
            "Subject: hi\r\n\r\nbody\r\n\r\n");
  Server("A2 OK [APPENDUID 1700000000 42] Append completed\r\n");
  ASSERT_TRUE(appended.has_value() && appended->ok());
  EXPECT_EQ(appended->value().uidvalidity, 1700000000u);
  EXPECT_EQ(appended->value().uid, 42u);
}

TEST_F(LoggedInSessionTest, MultiAppendSendsTheMessagesInOneCommandAndPairsTheUids) {
  LogIn("IMAP4rev1 LITERAL+ UIDPLUS MULTIAPPEND");
  std::optional<Result<Session::MultiAppendResult>> appended;
  auto record = [&](Result<Session::MultiAppendResult> result) { appended = std::move(result); };
  session_->AppendMany("Old/Archive",
                       {{{"\\Seen"}, " 1-Jan-2020 00:00:00 +0000", "a\r\n"},
                        {{}, "", "bc\r\n"},
                        {{"$Label1"}, " 2-Jan-2020 00:00:00 +0000", "d\r\n"}},
                       record);
  EXPECT_EQ(transport_.TakeSent(),
            "A2 APPEND Old/Archive (\\Seen) \" 1-Jan-2020 00:00:00 +0000\" {3+}\r\na\r\n"
            " () {4+}\r\nbc\r\n"
            " ($Label1) \" 2-Jan-2020 00:00:00 +0000\" {3+}\r\nd\r\n\r\n");
  Server("A2 OK [APPENDUID 77 10:11,15] Append completed\r\n");
  ASSERT_TRUE(appended.has_value() && appended->ok()) << appended->error().message;
  EXPECT_EQ(appended->value().uidvalidity, 77u);
  EXPECT_EQ(appended->value().uids, (std::vector<uint32_t>{10, 11, 15}));

  // A UID set that does not name one UID per message is no answer at all.
  appended.reset();
  session_->AppendMany("INBOX", {{{}, "", "a\r\n"}, {{}, "", "b\r\n"}}, record);
  transport_.TakeSent();
  Server("A3 OK [APPENDUID 77 20] Append completed\r\n");
  ASSERT_TRUE(appended.has_value() && appended->ok());
  EXPECT_TRUE(appended->value().uids.empty());

  // All or none: a NO fails the whole command.
  appended.reset();
  session_->AppendMany("INBOX", {{{}, "", "a\r\n"}, {{}, "", "b\r\n"}}, record);
  transport_.TakeSent();
  Server("A4 NO [LIMIT] Message too large\r\n");
  ASSERT_TRUE(appended.has_value());
  EXPECT_FALSE(appended->ok());
}

TEST_F(LoggedInSessionTest, SeveralMessagesInOneAppendNeedMultiAppend) {
  LogIn("IMAP4rev1 LITERAL+ UIDPLUS");
  std::optional<Result<Session::MultiAppendResult>> appended;
  session_->AppendMany(
      "INBOX", {{{}, "", "a\r\n"}, {{}, "", "b\r\n"}},
      [&](Result<Session::MultiAppendResult> result) { appended = std::move(result); });
  ASSERT_TRUE(appended.has_value());
  ASSERT_FALSE(appended->ok());
  EXPECT_EQ(appended->error().kind, ErrorKind::kInternal);
  EXPECT_EQ(transport_.TakeSent(), "");
}

// `size` bytes of a repeating line, read in pieces; `fail_at` makes a read
// fail once that many were delivered (the file changed).
class PatternSource : public LiteralSource {
 public:
  explicit PatternSource(uint64_t size, uint64_t fail_at = UINT64_MAX)
      : size_(size), fail_at_(fail_at) {}
  uint64_t size() const override { return size_; }
  Status Read(size_t max, std::string* out) override {
    if (produced_ >= fail_at_) return MakeError(ErrorKind::kIo, "file changed");
    const uint64_t n = std::min<uint64_t>(max, size_ - produced_);
    for (uint64_t i = 0; i < n; ++i) *out += static_cast<char>('a' + (produced_ + i) % 26);
    produced_ += n;
    return Status::Ok();
  }

 private:
  uint64_t size_;
  uint64_t fail_at_;
  uint64_t produced_ = 0;
};

// A streamed literal goes out as the transport drains: about a megabyte
// waits in it at most, whatever the message's size, and nothing else is
// sent in the middle of it (issue 19).
TEST_F(LoggedInSessionTest, StreamedAppendGoesOutInPiecesAsTheTransportDrains) {
  LogIn("IMAP4rev1 LITERAL+ UIDPLUS");
  transport_.count_queued = true;
  constexpr uint64_t kSize = 5 << 20;
  std::optional<Result<Session::AppendResult>> appended;
  session_->AppendStreamed(
      "INBOX", {"\\Seen"}, "", std::make_shared<PatternSource>(kSize),
      [&](Result<Session::AppendResult> result) { appended = std::move(result); });
  std::optional<bool> noop;
  session_->Execute(Command{{"NOOP\r\n"}, "NOOP", false}, nullptr,
                    [&](Result<TaggedReply> reply) { noop = reply.ok(); });
  const std::string header = "A2 APPEND INBOX (\\Seen) {" + std::to_string(kSize) + "+}\r\n";
  std::string all = transport_.TakeSent();
  ASSERT_EQ(all.substr(0, header.size()), header);
  size_t pieces = 1;
  while (all.size() < header.size() + kSize + 2 && pieces < 1000) {
    ASSERT_LE(transport_.queued, (1u << 20) + (64u << 10) + header.size());
    transport_.queued = 0;
    session_->OnTransportDrained();
    all += transport_.TakeSent();
    ++pieces;
  }
  EXPECT_GT(pieces, 4u);
  const std::string rest = all.substr(header.size() + kSize);
  EXPECT_EQ(rest, "\r\nA3 NOOP\r\n");  // the NOOP only after the literal's line ended
  EXPECT_EQ(all[header.size()], 'a');
  EXPECT_EQ(all[header.size() + kSize - 1], static_cast<char>('a' + (kSize - 1) % 26));
  Server("A2 OK [APPENDUID 9 31] Append completed\r\nA3 OK done\r\n");
  ASSERT_TRUE(appended.has_value() && appended->ok());
  EXPECT_EQ(appended->value().uid, 31u);
  EXPECT_TRUE(noop.value_or(false));
}

TEST_F(LoggedInSessionTest, StreamedAppendWaitsForTheContinuationAndFailsOnAReadError) {
  LogIn("IMAP4rev1");
  std::optional<Result<Session::AppendResult>> appended;
  session_->AppendStreamed(
      "INBOX", {}, "", std::make_shared<PatternSource>(200000, 70000),
      [&](Result<Session::AppendResult> result) { appended = std::move(result); });
  EXPECT_EQ(transport_.TakeSent(), "A2 APPEND INBOX () {200000}\r\n");
  Server("+ Ready for literal data\r\n");
  // The source fails part way: the literal cannot be finished, so the
  // session fails rather than send wrong bytes.
  ASSERT_TRUE(appended.has_value());
  EXPECT_FALSE(appended->ok());
  EXPECT_NE(appended->error().message.find("file changed"), std::string::npos);
  EXPECT_TRUE(transport_.closed);
}

TEST_F(LoggedInSessionTest, AppendWaitsForTheContinuationWithoutLiteralPlus) {
  LogIn("IMAP4rev1");
  std::optional<Result<Session::AppendResult>> appended;
  session_->Append("INBOX", {}, "", "x\r\n",
                   [&](Result<Session::AppendResult> result) { appended = std::move(result); });
  EXPECT_EQ(transport_.TakeSent(), "A2 APPEND INBOX () {3}\r\n");
  Server("+ Ready for literal data\r\n");
  EXPECT_EQ(transport_.TakeSent(), "x\r\n\r\n");
  // No UIDPLUS: no UID, and the caller must find the message by content.
  Server("A2 OK Append completed\r\n");
  ASSERT_TRUE(appended.has_value() && appended->ok());
  EXPECT_EQ(appended->value().uid, 0u);
}

TEST_F(LoggedInSessionTest, AppendFailuresAndBadAppendUids) {
  LogIn("IMAP4rev1 LITERAL+ UIDPLUS");
  std::optional<Result<Session::AppendResult>> appended;
  auto record = [&](Result<Session::AppendResult> result) { appended = std::move(result); };
  session_->Append("Gone", {}, "", "x\r\n", record);
  Server("A2 NO [TRYCREATE] Mailbox doesn't exist: Gone\r\n");
  ASSERT_FALSE(appended->ok());
  EXPECT_EQ(appended->error().kind, ErrorKind::kProtocol);
  EXPECT_NE(appended->error().message.find("APPEND to Gone failed"), std::string::npos);
  EXPECT_NE(appended->error().message.find("TRYCREATE"), std::string::npos);
  // A hostile or broken [APPENDUID] gives no UID rather than a wrong one.
  int tag = 3;
  for (const char* code : {"0 5", "1 0", "1 99999999999", "1 5 6", "1"}) {
    appended.reset();
    session_->Append("INBOX", {}, "", "x\r\n", record);
    transport_.TakeSent();
    Server("A" + std::to_string(tag++) + " OK [APPENDUID " + code + "] done\r\n");
    ASSERT_TRUE(appended.has_value() && appended->ok()) << code;
    EXPECT_EQ(appended->value().uid, 0u) << code;
    EXPECT_EQ(appended->value().uidvalidity, 0u) << code;
  }
  // Not numbers at all: the parser refuses the response, failing the session.
  appended.reset();
  session_->Append("INBOX", {}, "", "x\r\n", record);
  Server("A" + std::to_string(tag) + " OK [APPENDUID x y] done\r\n");
  ASSERT_TRUE(appended.has_value());
  ASSERT_FALSE(appended->ok());
  EXPECT_EQ(appended->error().kind, ErrorKind::kProtocol);
}

TEST_F(LoggedInSessionTest, UidMovePairsUidsFromTheUntaggedCopyUid) {
  LogIn("IMAP4rev1 MOVE UIDPLUS");
  std::optional<Result<Session::MoveResult>> moved;
  session_->UidMove("4,7:8", "Sent Items",
                    [&](Result<Session::MoveResult> result) { moved = std::move(result); });
  EXPECT_EQ(transport_.TakeSent(), "A2 UID MOVE 4,7:8 \"Sent Items\"\r\n");
  Server(
      "* OK [COPYUID 1700000001 8,4,7 102,100:101] Moved UIDs.\r\n"
      "* 2 EXPUNGE\r\n* 2 EXPUNGE\r\n* 1 EXPUNGE\r\nA2 OK Move completed\r\n");
  ASSERT_TRUE(moved.has_value() && moved->ok());
  EXPECT_EQ(moved->value().uidvalidity, 1700000001u);
  // In the order listed, not sorted: 8->102, 4->100, 7->101.
  EXPECT_EQ(moved->value().moved,
            (std::vector<std::pair<uint32_t, uint32_t>>{{8, 102}, {4, 100}, {7, 101}}));
}

TEST_F(LoggedInSessionTest, UidMoveWithoutMoveCopiesThenExpungesExactlyThoseUids) {
  LogIn("IMAP4rev1 UIDPLUS");
  std::optional<Result<Session::MoveResult>> moved;
  session_->UidMove("5", "Archive",
                    [&](Result<Session::MoveResult> result) { moved = std::move(result); });
  EXPECT_EQ(transport_.TakeSent(), "A2 UID COPY 5 Archive\r\n");
  Server("A2 OK [COPYUID 9 5 33] Copy completed\r\n");
  EXPECT_EQ(transport_.TakeSent(), "A3 UID STORE 5 +FLAGS (\\Deleted)\r\n");
  Server("* 3 FETCH (UID 5 FLAGS (\\Deleted))\r\nA3 OK done\r\n");
  EXPECT_EQ(transport_.TakeSent(), "A4 UID EXPUNGE 5\r\n");
  EXPECT_FALSE(moved.has_value());
  Server("* 3 EXPUNGE\r\nA4 OK done\r\n");
  ASSERT_TRUE(moved.has_value() && moved->ok());
  EXPECT_EQ(moved->value().moved, (std::vector<std::pair<uint32_t, uint32_t>>{{5, 33}}));
}

TEST_F(LoggedInSessionTest, UidMoveRefusesServersThatWouldNeedAPlainExpunge) {
  LogIn("IMAP4rev1");
  std::optional<Result<Session::MoveResult>> moved;
  session_->UidMove("5", "Archive",
                    [&](Result<Session::MoveResult> result) { moved = std::move(result); });
  ASSERT_TRUE(moved.has_value());
  ASSERT_FALSE(moved->ok());
  EXPECT_NE(moved->error().message.find("neither MOVE nor UIDPLUS"), std::string::npos);
  EXPECT_EQ(transport_.TakeSent(), "");
}

TEST_F(LoggedInSessionTest, HostileCopyUidIsIgnoredNotTrusted) {
  LogIn("IMAP4rev1 MOVE UIDPLUS");
  for (const char* code : {"1 1:4294967295 1:4294967295",  // far more pairs than asked for
                           "1 3 9",                        // a UID we did not move
                           "1 4 9:10",                     // unequal lengths
                           "1 4 *", "0:2 4 9", "1 4"}) {
    std::optional<Result<Session::MoveResult>> moved;
    session_->UidMove("4", "Archive",
                      [&](Result<Session::MoveResult> result) { moved = std::move(result); });
    const std::string sent = transport_.TakeSent();
    const std::string tag = sent.substr(0, sent.find(' '));
    Server(std::string("* OK [COPYUID ") + code + "] x\r\n" + tag + " OK done\r\n");
    ASSERT_TRUE(moved.has_value() && moved->ok()) << code;
    EXPECT_TRUE(moved->value().moved.empty()) << code;
  }
}

TEST_F(LoggedInSessionTest, UidExpungeNeedsUidplusAndNeverFallsBackToExpunge) {
  LogIn("IMAP4rev1");
  std::optional<Status> expunged;
  session_->UidExpunge("3,5", [&](Status status) { expunged = status; });
  ASSERT_TRUE(expunged.has_value());
  ASSERT_FALSE(expunged->ok());
  EXPECT_NE(expunged->error().message.find("lacks UIDPLUS"), std::string::npos);
  EXPECT_EQ(transport_.TakeSent(), "");  // nothing sent, least of all EXPUNGE
}

TEST_F(LoggedInSessionTest, UidExpungeRemovesExactlyTheGivenUids) {
  LogIn("IMAP4rev1 UIDPLUS");
  std::optional<Status> expunged;
  session_->UidExpunge("3,5", [&](Status status) { expunged = status; });
  EXPECT_EQ(transport_.TakeSent(), "A2 UID EXPUNGE 3,5\r\n");
  Server("* 3 EXPUNGE\r\n* 2 EXPUNGE\r\nA2 OK Expunge completed\r\n");
  ASSERT_TRUE(expunged.has_value() && expunged->ok());
}

TEST_F(LoggedInSessionTest, SinkErrorFailsTheSessionWithItsOwnKind) {
  LogIn("IMAP4rev1");
  RecordingSink sink;
  sink.fail_data = true;
  std::optional<Status> done;
  session_->UidFetch("1:*", "UID BODY.PEEK[]", &sink, [&](const Status& s) { done = s; });
  Server("* 1 FETCH (UID 1 BODY[] {5}\r\nhello)\r\n");
  ASSERT_TRUE(done.has_value());
  ASSERT_FALSE(done->ok());
  EXPECT_EQ(done->error().kind, ErrorKind::kIo);
  EXPECT_EQ(done->error().message, "disk full");
  EXPECT_TRUE(transport_.closed);
}

TEST_F(LoggedInSessionTest, QresyncExamineCollectsVanishedAndChangedFlags) {
  LogIn("IMAP4rev1 ENABLE QRESYNC CONDSTORE");
  session_->Enable({"QRESYNC"}, [](Result<std::set<std::string>>) {});
  Server("* ENABLED QRESYNC\r\nA2 OK done\r\n");
  transport_.TakeSent();
  std::optional<Result<SelectedMailbox>> selected;
  session_->Select(
      "INBOX", true, [&](Result<SelectedMailbox> result) { selected = std::move(result); },
      QresyncParams{67890007, 90060115194045000ull});
  EXPECT_EQ(transport_.TakeSent(), "A3 EXAMINE INBOX (QRESYNC (67890007 90060115194045000))\r\n");
  Server(
      "* 314 EXISTS\r\n* OK [UIDVALIDITY 67890007] ok\r\n* OK [UIDNEXT 567] ok\r\n"
      "* OK [HIGHESTMODSEQ 90060115205545359] ok\r\n"
      "* VANISHED (EARLIER) 41,43:116,118,120:211,214:540\r\n"
      "* 49 FETCH (UID 117 FLAGS (\\Seen \\Answered) MODSEQ (90060115194045001))\r\n"
      "* 50 FETCH (UID 119 FLAGS (\\Draft $MDNSent) MODSEQ (90060115194045308))\r\n"
      "A3 OK [READ-ONLY] done\r\n");
  ASSERT_TRUE(selected.has_value() && selected->ok());
  const SelectedMailbox& box = selected->value();
  ASSERT_EQ(box.vanished_earlier.size(), 1u);
  EXPECT_EQ(box.vanished_earlier[0], "41,43:116,118,120:211,214:540");
  ASSERT_EQ(box.changed.size(), 2u);
  EXPECT_EQ(box.changed[0].uid, 117u);
  EXPECT_EQ(box.changed[0].flags, (std::vector<std::string>{"\\Seen", "\\Answered"}));
  EXPECT_EQ(box.changed[1].modseq, 90060115194045308ull);
  EXPECT_EQ(box.highestmodseq, 90060115205545359ull);
}

TEST_F(LoggedInSessionTest, CondstoreFlagsAndEsearchUids) {
  LogIn("IMAP4rev1 ESEARCH CONDSTORE");
  std::optional<Result<std::vector<FlagUpdate>>> updates;
  std::optional<Result<UidRanges>> uids;
  session_->FetchFlags(
      "1:600", 12345, [&](Result<std::vector<FlagUpdate>> result) { updates = std::move(result); });
  session_->SearchAllUids([&](Result<UidRanges> result) { uids = std::move(result); });
  EXPECT_EQ(transport_.TakeSent(),
            "A2 UID FETCH 1:600 (UID FLAGS) (CHANGEDSINCE 12345)\r\n"
            "A3 UID SEARCH RETURN (ALL) ALL\r\n");
  Server("* 7 FETCH (UID 9 FLAGS (\\Flagged) MODSEQ (12350))\r\nA2 OK done\r\n");
  Server("* ESEARCH (TAG \"A3\") UID ALL 1:5,9,12:600\r\nA3 OK done\r\n");
  ASSERT_TRUE(updates.has_value() && updates->ok());
  ASSERT_EQ(updates->value().size(), 1u);
  EXPECT_EQ(updates->value()[0].uid, 9u);
  ASSERT_TRUE(uids.has_value() && uids->ok());
  EXPECT_EQ(uids->value(), (UidRanges{{1, 5}, {9, 9}, {12, 600}}));
}

TEST_F(LoggedInSessionTest, InterleavedResponsesOfPipelinedCommandsReachTheirCommands) {
  LogIn("IMAP4rev1 ESEARCH CONDSTORE");
  std::optional<Result<std::vector<FlagUpdate>>> updates;
  std::optional<Result<UidRanges>> uids;
  session_->FetchFlags(
      "1:9", 7, [&](Result<std::vector<FlagUpdate>> result) { updates = std::move(result); });
  session_->SearchAllUids([&](Result<UidRanges> result) { uids = std::move(result); });
  // The search result arrives while the FETCH is still in flight.
  Server("* ESEARCH (TAG \"A3\") UID ALL 1:4,9\r\n");
  Server("* 2 FETCH (UID 2 FLAGS (\\Seen) MODSEQ (8))\r\nA3 OK done\r\nA2 OK done\r\n");
  ASSERT_TRUE(uids.has_value() && uids->ok());
  EXPECT_EQ(uids->value(), (UidRanges{{1, 4}, {9, 9}}));
  ASSERT_TRUE(updates.has_value() && updates->ok());
  ASSERT_EQ(updates->value().size(), 1u);
  EXPECT_EQ(updates->value()[0].uid, 2u);
}

TEST_F(LoggedInSessionTest, PlainSearchWithoutEsearch) {
  LogIn("IMAP4rev1");
  std::optional<Result<UidRanges>> uids;
  session_->SearchAllUids([&](Result<UidRanges> result) { uids = std::move(result); });
  EXPECT_EQ(transport_.TakeSent(), "A2 UID SEARCH ALL\r\n");
  Server("* SEARCH 4 2 3 9\r\nA2 OK done\r\n");
  ASSERT_TRUE(uids.has_value() && uids->ok());
  EXPECT_EQ(uids->value(), (UidRanges{{2, 4}, {9, 9}}));
}

TEST_F(LoggedInSessionTest, UnknownTagIsIgnored) {
  LogIn("IMAP4rev1");
  Server("Z9 OK stray\r\n");
  EXPECT_FALSE(transport_.closed);
}

}  // namespace
// --- OAuth 2.0 (XOAUTH2, OAUTHBEARER) and the choice of mechanism.

class OAuthSessionTest : public SessionTest {
 protected:
  void StartTokenLogin(AuthMechanism mechanism, const std::string& token = "tok-1",
                       bool with_password = false) {
    LoginCredentials credentials;
    credentials.user = "alice@example.com";
    credentials.token = token;
    credentials.mechanism = mechanism;
    credentials.host = "imap.test";
    credentials.port = 993;
    if (with_password) {
      credentials.password = "secret";
      credentials.has_password = true;
    }
    login_status_.reset();
    session_->Login(credentials, [this](Status status) { login_status_ = status; });
  }
};

std::string Xoauth2(const std::string& user, const std::string& token) {
  return Base64Encode("user=" + user + "\x01" + "auth=Bearer " + token + "\x01\x01");
}

TEST_F(OAuthSessionTest, Xoauth2WithSaslIr) {
  MakeSession(Security::kTls);
  StartTokenLogin(AuthMechanism::kXoauth2);
  Server("* OK [CAPABILITY IMAP4rev1 SASL-IR AUTH=PLAIN AUTH=XOAUTH2] ready\r\n");
  EXPECT_EQ(transport_.TakeSent(),
            "A1 AUTHENTICATE XOAUTH2 " + Xoauth2("alice@example.com", "tok-1") + "\r\n");
  Server("A1 OK [CAPABILITY IMAP4rev1 IDLE] Logged in\r\n");
  ASSERT_TRUE(login_status_.has_value());
  EXPECT_TRUE(login_status_->ok());
  EXPECT_TRUE(session_->authenticated());
  EXPECT_EQ(transport_.TakeSent(), "");  // the error acknowledgement is never sent
}

TEST_F(OAuthSessionTest, AutoPrefersOAuthBearerWithItsGs2Header) {
  MakeSession(Security::kTls);
  StartTokenLogin(AuthMechanism::kAuto, "tok-1", /*with_password=*/true);
  Server("* OK [CAPABILITY IMAP4rev1 SASL-IR AUTH=PLAIN AUTH=XOAUTH2 AUTH=OAUTHBEARER] hi\r\n");
  EXPECT_EQ(transport_.TakeSent(),
            "A1 AUTHENTICATE OAUTHBEARER " +
                Base64Encode("n,a=alice@example.com,\x01host=imap.test\x01port=993\x01"
                             "auth=Bearer tok-1\x01\x01") +
                "\r\n");
}

TEST_F(OAuthSessionTest, AutoFallsBackToXoauth2ThenToThePassword) {
  MakeSession(Security::kTls);
  StartTokenLogin(AuthMechanism::kAuto, "tok-1", /*with_password=*/true);
  Server("* OK [CAPABILITY IMAP4rev1 SASL-IR AUTH=PLAIN AUTH=XOAUTH2] hi\r\n");
  EXPECT_NE(transport_.TakeSent().find("AUTHENTICATE XOAUTH2 "), std::string::npos);

  MakeSession(Security::kTls);
  StartTokenLogin(AuthMechanism::kAuto, "tok-1", /*with_password=*/true);
  Server("* OK [CAPABILITY IMAP4rev1 SASL-IR AUTH=PLAIN] hi\r\n");
  EXPECT_EQ(
      transport_.TakeSent(),
      "A1 AUTHENTICATE PLAIN " + PlainInitialResponse("alice@example.com", "secret") + "\r\n");
}

TEST_F(OAuthSessionTest, Xoauth2WithoutSaslIrWaitsForTheContinuation) {
  MakeSession(Security::kTls);
  StartTokenLogin(AuthMechanism::kXoauth2);
  Server("* OK [CAPABILITY IMAP4rev1 AUTH=XOAUTH2] ready\r\n");
  EXPECT_EQ(transport_.TakeSent(), "A1 AUTHENTICATE XOAUTH2\r\n");
  Server("+ \r\n");
  EXPECT_EQ(transport_.TakeSent(), Xoauth2("alice@example.com", "tok-1") + "\r\n");
  Server("A1 OK [CAPABILITY IMAP4rev1] done\r\n");
  ASSERT_TRUE(login_status_.has_value());
  EXPECT_TRUE(login_status_->ok());
}

TEST_F(OAuthSessionTest, Xoauth2ErrorChallengeIsAnsweredAndDecoded) {
  MakeSession(Security::kTls);
  StartTokenLogin(AuthMechanism::kXoauth2);
  Server("* OK [CAPABILITY IMAP4rev1 SASL-IR AUTH=XOAUTH2] ready\r\n");
  transport_.TakeSent();
  Server("+ " +
         Base64Encode(R"({"status":"401","schemes":"bearer","scope":"https://mail.google.com/"})") +
         "\r\n");
  EXPECT_EQ(transport_.TakeSent(), "\r\n");  // XOAUTH2's empty response
  EXPECT_FALSE(login_status_.has_value());
  Server("A1 NO [AUTHENTICATIONFAILED] Invalid credentials (Failure)\r\n");
  ASSERT_TRUE(login_status_.has_value());
  ASSERT_FALSE(login_status_->ok());
  EXPECT_EQ(login_status_->error().kind, ErrorKind::kAuth);
  const std::string& message = login_status_->error().message;
  EXPECT_NE(message.find("rejected XOAUTH2 login as \"alice@example.com\""), std::string::npos)
      << message;
  EXPECT_NE(message.find("the access token is invalid or expired (status 401"), std::string::npos)
      << message;
  EXPECT_TRUE(session_->token_refused());
  EXPECT_EQ(message.find("tok-1"), std::string::npos);

  // The session stays usable: a fresh token logs in on it.
  StartTokenLogin(AuthMechanism::kXoauth2, "tok-2");
  EXPECT_EQ(transport_.TakeSent(),
            "A2 AUTHENTICATE XOAUTH2 " + Xoauth2("alice@example.com", "tok-2") + "\r\n");
  Server("A2 OK [CAPABILITY IMAP4rev1] welcome\r\n");
  ASSERT_TRUE(login_status_.has_value());
  EXPECT_TRUE(login_status_->ok()) << login_status_->error().message;
  EXPECT_FALSE(session_->token_refused());
}

TEST_F(OAuthSessionTest, OAuthBearerMissingScopeIsNotAnExpiredToken) {
  MakeSession(Security::kTls);
  StartTokenLogin(AuthMechanism::kOauthBearer);
  Server("* OK [CAPABILITY IMAP4rev1 SASL-IR AUTH=OAUTHBEARER] ready\r\n");
  transport_.TakeSent();
  Server("+ " + Base64Encode(R"({"status":"insufficient_scope","scope":"mail.read"})") + "\r\n");
  EXPECT_EQ(transport_.TakeSent(), "AQ==\r\n");  // RFC 7628: a single ^A
  Server("A1 NO [AUTHENTICATIONFAILED] Authentication failed.\r\n");
  ASSERT_TRUE(login_status_.has_value());
  ASSERT_FALSE(login_status_->ok());
  EXPECT_NE(login_status_->error().message.find("lacks the scope the server needs (mail.read)"),
            std::string::npos)
      << login_status_->error().message;
  EXPECT_FALSE(session_->token_refused());
}

TEST_F(OAuthSessionTest, MicrosoftsBareNoMayBeAnExpiredToken) {
  MakeSession(Security::kTls);
  StartTokenLogin(AuthMechanism::kXoauth2);
  Server("* OK [CAPABILITY IMAP4rev1 SASL-IR AUTH=XOAUTH2] ready\r\n");
  transport_.TakeSent();
  Server("A1 NO AUTHENTICATE failed.\r\n");
  ASSERT_TRUE(login_status_.has_value());
  ASSERT_FALSE(login_status_->ok());
  EXPECT_EQ(login_status_->error().kind, ErrorKind::kAuth);
  EXPECT_TRUE(session_->token_refused());
  EXPECT_NE(login_status_->error().message.find("that the token is for this account"),
            std::string::npos);
}

TEST_F(OAuthSessionTest, TokenWithoutAnOAuthMechanismSendsNothing) {
  MakeSession(Security::kTls);
  StartTokenLogin(AuthMechanism::kAuto);
  Server("* OK [CAPABILITY IMAP4rev1 SASL-IR AUTH=PLAIN AUTH=LOGIN] ready\r\n");
  EXPECT_EQ(transport_.TakeSent(), "");
  ASSERT_TRUE(login_status_.has_value());
  ASSERT_FALSE(login_status_->ok());
  EXPECT_EQ(login_status_->error().kind, ErrorKind::kConfig);
  EXPECT_NE(login_status_->error().message.find(
                "does not offer an OAuth 2.0 mechanism (AUTH=OAUTHBEARER or AUTH=XOAUTH2) (it "
                "offers AUTH=LOGIN AUTH=PLAIN)"),
            std::string::npos)
      << login_status_->error().message;
}

TEST_F(OAuthSessionTest, ExplicitLoginUsesTheLoginCommandEvenWithPlainOffered) {
  MakeSession(Security::kTls);
  LoginCredentials credentials;
  credentials.user = "alice";
  credentials.password = "secret";
  credentials.has_password = true;
  credentials.mechanism = AuthMechanism::kLogin;
  session_->Login(credentials, [this](Status status) { login_status_ = status; });
  Server("* OK [CAPABILITY IMAP4rev1 SASL-IR AUTH=PLAIN] ready\r\n");
  EXPECT_EQ(transport_.TakeSent(), "A1 LOGIN alice secret\r\n");
}

}  // namespace mailmirror::imap
