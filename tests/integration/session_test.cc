// The library's IMAP session against a real Dovecot: login over each
// transport, ENABLE, LIST with counts, LOGOUT.
#include <gtest/gtest.h>

#include <optional>
#include <set>

#include "account/imap_connection.h"
#include "net/event_loop.h"
#include "support/dovecot_fixture.h"

namespace mailmirror {
namespace {

using testing::DovecotOptions;
using testing::DovecotServer;

struct SessionRun {
  Status login = Status::Ok();
  std::optional<std::set<std::string>> enabled;
  std::optional<std::vector<imap::MailboxInfo>> mailboxes;
  bool closed = false;
};

// Logs in, enables CONDSTORE and QRESYNC, lists, logs out.
SessionRun RunSession(const AccountConfig& account, const std::string& password) {
  SessionRun run;
  net::EventLoop loop;
  account::ImapConnection connection(&loop, account);
  account::Credentials credentials = account::Credentials::WithPassword(account, password);
  connection.Open(
      &credentials,
      [&](Status status) {
        run.login = status;
        if (!status.ok()) return connection.Finish();
        connection.session().Enable({"CONDSTORE", "QRESYNC"},
                                    [&](Result<std::set<std::string>> enabled) {
                                      if (enabled.ok()) run.enabled = enabled.value();
                                      connection.session().ListMailboxes(
                                          [&](Result<std::vector<imap::MailboxInfo>> mailboxes) {
                                            if (mailboxes.ok())
                                              run.mailboxes = std::move(mailboxes).value();
                                            connection.Finish();
                                          });
                                    });
      },
      [&] { run.closed = true; });
  loop.Run();
  return run;
}

AccountConfig Account(const DovecotServer& server, TlsMode tls) {
  AccountConfig account;
  account.name = "test";
  account.host = "127.0.0.1";
  account.tls = tls;
  account.port = tls == TlsMode::kImplicit ? server.imaps_port() : server.imap_port();
  account.ca_file = server.ca_file();
  account.user = "alice";
  return account;
}

const imap::MailboxInfo* Find(const std::vector<imap::MailboxInfo>& boxes,
                              const std::string& name) {
  for (const imap::MailboxInfo& box : boxes) {
    if (box.name == name) return &box;
  }
  return nullptr;
}

TEST(SessionIntegrationTest, EveryTransportLogsInEnablesAndLists) {
  std::unique_ptr<DovecotServer> server = DovecotServer::Start({});
  ASSERT_NE(server, nullptr);
  ASSERT_TRUE(server->Seed("alice"));
  for (TlsMode tls : {TlsMode::kImplicit, TlsMode::kStartTls, TlsMode::kNone}) {
    SCOPED_TRACE(static_cast<int>(tls));
    SessionRun run = RunSession(Account(*server, tls), "alice-secret");
    ASSERT_TRUE(run.login.ok()) << run.login.error().message;
    EXPECT_TRUE(run.closed);
    ASSERT_TRUE(run.enabled.has_value());
    EXPECT_EQ(*run.enabled, (std::set<std::string>{"CONDSTORE", "QRESYNC"}));
    ASSERT_TRUE(run.mailboxes.has_value());
    const imap::MailboxInfo* inbox = Find(*run.mailboxes, "INBOX");
    ASSERT_NE(inbox, nullptr);
    EXPECT_EQ(inbox->messages, 5u);
    EXPECT_EQ(inbox->unseen, 3u);
    EXPECT_EQ(inbox->uidnext, 6u);
    EXPECT_TRUE(inbox->uidvalidity.has_value());
    EXPECT_TRUE(inbox->highestmodseq.has_value());
    const imap::MailboxInfo* drafts = Find(*run.mailboxes, "Entwürfe");
    ASSERT_NE(drafts, nullptr);
    EXPECT_EQ(drafts->raw_name, "Entw&APw-rfe");
    EXPECT_EQ(drafts->delimiter, '/');
  }
}

TEST(SessionIntegrationTest, HiddenCondstoreIsNeitherEnabledNorAskedFor) {
  DovecotOptions options;
  options.hide_capabilities = {"CONDSTORE", "QRESYNC"};
  std::unique_ptr<DovecotServer> server = DovecotServer::Start(options);
  ASSERT_NE(server, nullptr);
  ASSERT_TRUE(server->Seed("alice"));
  SessionRun run = RunSession(Account(*server, TlsMode::kImplicit), "alice-secret");
  ASSERT_TRUE(run.login.ok()) << run.login.error().message;
  ASSERT_TRUE(run.enabled.has_value());
  EXPECT_TRUE(run.enabled->empty());
  ASSERT_TRUE(run.mailboxes.has_value());
  const imap::MailboxInfo* inbox = Find(*run.mailboxes, "INBOX");
  ASSERT_NE(inbox, nullptr);
  EXPECT_EQ(inbox->messages, 5u);
  EXPECT_FALSE(inbox->highestmodseq.has_value());
}

TEST(SessionIntegrationTest, PasswordWithQuoteBackslashAndSpace) {
  std::unique_ptr<DovecotServer> server = DovecotServer::Start({});
  ASSERT_NE(server, nullptr);
  AccountConfig account = Account(*server, TlsMode::kImplicit);
  account.user = "pw-user";
  SessionRun run = RunSession(account, "p\"w\\ d");
  EXPECT_TRUE(run.login.ok()) << run.login.error().message;
  SessionRun wrong = RunSession(account, "p\"w\\ e");
  ASSERT_FALSE(wrong.login.ok());
  EXPECT_EQ(wrong.login.error().kind, ErrorKind::kAuth);
  EXPECT_TRUE(wrong.closed);
}

// The push primitives of two-way sync: conditional STORE (a message changed
// since the given mod-sequence is left alone and named), UID EXPUNGE that
// removes exactly the given UIDs, not another client's \Deleted mail,
// APPEND with the UID the server gave the new message, and UID MOVE.
TEST(SessionIntegrationTest, ConditionalStoreUidExpungeAppendAndMove) {
  std::unique_ptr<DovecotServer> server = DovecotServer::Start({});
  ASSERT_NE(server, nullptr);
  ASSERT_TRUE(server->Seed("alice"));
  const int archive_before = server->Count("alice", "Archive");
  net::EventLoop loop;
  const AccountConfig account = Account(*server, TlsMode::kImplicit);  // outlives the connection
  account::ImapConnection connection(&loop, account);
  imap::Session& session = connection.session();
  std::vector<std::string> failures;
  auto check = [&](const Status& status, const char* step) {
    if (!status.ok()) failures.push_back(std::string(step) + ": " + status.error().message);
    return status.ok();
  };
  uint64_t highest = 0;
  std::optional<imap::Session::StoreResult> first;
  std::optional<imap::Session::StoreResult> conflicted;
  std::optional<imap::UidRanges> left;
  std::optional<imap::Session::AppendResult> appended;
  std::optional<imap::Session::MoveResult> moved;
  uint32_t uidvalidity = 0;
  account::Credentials credentials = account::Credentials::WithPassword(account, "alice-secret");
  connection.Open(
      &credentials,
      [&](Status status) {
        if (!check(status, "login")) return connection.Finish();
        session.Enable({"CONDSTORE"}, [&](const Result<std::set<std::string>>&) {
          session.Select("INBOX", false, [&](Result<imap::SelectedMailbox> selected) {
            if (!check(selected.status(), "select")) return connection.Finish();
            highest = selected->highestmodseq.value_or(0);
            uidvalidity = selected->uidvalidity;
            // Unchanged since `highest`: stored.
            session.StoreFlags("1", true, {"\\Flagged"}, highest,
                               [&](Result<imap::Session::StoreResult> stored) {
                                 if (stored.ok()) first = std::move(stored).value();
                               });
            // Another client changes UID 2 after `highest` ...
            session.StoreFlags("2", true, {"\\Answered"}, 0,
                               [](const Result<imap::Session::StoreResult>&) {});
            // ... so a store conditional on `highest` leaves it alone.
            session.StoreFlags("2", false, {"\\Seen"}, highest,
                               [&](Result<imap::Session::StoreResult> stored) {
                                 if (stored.ok()) conflicted = std::move(stored).value();
                               });
            // UID 4 is another client's \Deleted message; we expunge UID 3 only.
            session.StoreFlags("3:4", true, {"\\Deleted"}, 0,
                               [](const Result<imap::Session::StoreResult>&) {});
            session.UidExpunge("3", [&](const Status& expunged) {
              check(expunged, "expunge");
              session.Append("INBOX", {"\\Seen", "$Forwarded"}, " 7-Jul-2024 10:00:00 +0200",
                             "Subject: appended\r\n\r\nhello\r\n",
                             [&](Result<imap::Session::AppendResult> result) {
                               if (check(result.status(), "append")) appended = result.value();
                               session.UidMove(
                                   "5", "Archive", [&](Result<imap::Session::MoveResult> move) {
                                     if (check(move.status(), "move")) moved = move.value();
                                     session.SearchAllUids([&](Result<imap::UidRanges> uids) {
                                       if (uids.ok()) left = std::move(uids).value();
                                       connection.Finish();
                                     });
                                   });
                             });
            });
          });
        });
      },
      [] {});
  loop.Run();
  for (const std::string& failure : failures) ADD_FAILURE() << failure;
  ASSERT_TRUE(first.has_value());
  EXPECT_TRUE(first->modified.empty());
  ASSERT_EQ(first->updates.size(), 1u);
  EXPECT_GT(first->updates[0].modseq, highest);
  ASSERT_TRUE(conflicted.has_value());
  EXPECT_EQ(conflicted->modified, (imap::UidRanges{{2, 2}}));
  // The appended message has the UID APPENDUID named, after the seed's 5.
  ASSERT_TRUE(appended.has_value());
  EXPECT_EQ(appended->uidvalidity, uidvalidity);
  EXPECT_EQ(appended->uid, 6u);
  // UID 5 moved to Archive (Dovecot has MOVE), paired by COPYUID.
  ASSERT_TRUE(moved.has_value());
  ASSERT_EQ(moved->moved.size(), 1u);
  EXPECT_EQ(moved->moved[0].first, 5u);
  EXPECT_GT(moved->uidvalidity, 0u);
  EXPECT_EQ(server->Count("alice", "Archive"), archive_before + 1);
  ASSERT_TRUE(left.has_value());
  EXPECT_EQ(*left, (imap::UidRanges{{1, 2}, {4, 4}, {6, 6}}));
}

}  // namespace
}  // namespace mailmirror
