// The raw-fetch reference for bench/e2e: what the server can deliver. Logs
// in with K sessions, and each takes the next folder, EXAMINEs it and
// fetches every body (UID FETCH 1:* BODY.PEEK[]), discarding the bytes as
// they arrive. No parsing beyond the protocol, no disk, no index: the floor
// under any sync tool's initial download on the same server and network.
//
//   raw_fetch HOST PORT CA_FILE USER PASSWORD [K]
//
// Prints one line: messages, bytes, seconds, sessions.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <memory>
#include <string>
#include <vector>

#include "account/imap_connection.h"
#include "mailmirror/config.h"
#include "net/event_loop.h"

namespace mm = mailmirror;

namespace {

class Discard : public mm::imap::FetchSink {
 public:
  mm::Status OnBodyBegin(uint32_t /*seq*/, uint64_t /*size*/) override { return mm::Status::Ok(); }
  mm::Status OnBodyData(std::string_view chunk) override {
    bytes += chunk.size();
    return mm::Status::Ok();
  }
  mm::Status OnBodyEnd() override { return mm::Status::Ok(); }
  mm::Status OnMessage(const mm::imap::FetchedMessage& message) override {
    if (message.has_body) ++messages;
    return mm::Status::Ok();
  }
  uint64_t bytes = 0;
  uint64_t messages = 0;
};

struct Reference {
  mm::net::EventLoop loop;
  mm::AccountConfig account;
  std::string password;
  std::vector<std::unique_ptr<mm::account::Credentials>> credentials;
  std::deque<std::string> folders;
  std::vector<std::unique_ptr<mm::account::ImapConnection>> sessions;
  Discard sink;
  int failures = 0;

  void Next(mm::account::ImapConnection* connection) {
    if (folders.empty()) return connection->Finish();
    std::string folder = folders.front();
    folders.pop_front();
    connection->session().Select(
        folder, /*read_only=*/true, [this, connection](mm::Result<mm::imap::SelectedMailbox> box) {
          if (!box.ok() || box->exists == 0) {
            if (!box.ok()) ++failures;
            return Next(connection);
          }
          connection->session().UidFetch("1:*", "BODY.PEEK[]", &sink,
                                         [this, connection](const mm::Status& status) {
                                           if (!status.ok()) ++failures;
                                           Next(connection);
                                         });
        });
  }

  mm::account::ImapConnection* Open(std::function<void(mm::account::ImapConnection*)> ready) {
    auto connection = std::make_unique<mm::account::ImapConnection>(&loop, account);
    mm::account::ImapConnection* raw = connection.get();
    sessions.push_back(std::move(connection));
    credentials.push_back(std::make_unique<mm::account::Credentials>(
        mm::account::Credentials::WithPassword(account, password)));
    raw->Open(
        credentials.back().get(),
        [this, raw, ready](const mm::Status& status) {
          if (!status.ok()) {
            std::fprintf(stderr, "raw_fetch: %s\n", status.error().message.c_str());
            ++failures;
            return raw->Finish();
          }
          ready(raw);
        },
        [] {});
    return raw;
  }
};

}  // namespace

int main(int argc, char** argv) {
  if (argc < 6) {
    std::fprintf(stderr, "usage: raw_fetch HOST PORT CA_FILE USER PASSWORD [K]\n");
    return 64;
  }
  Reference ref;
  ref.account.name = "raw";
  ref.account.host = argv[1];
  ref.account.port = static_cast<uint16_t>(std::atoi(argv[2]));
  ref.account.tls = mm::TlsMode::kImplicit;
  ref.account.ca_file = argv[3];
  ref.account.user = argv[4];
  ref.password = argv[5];
  int k = argc > 6 ? std::max(1, std::atoi(argv[6])) : 4;

  auto start = std::chrono::steady_clock::now();
  ref.Open([&ref, k](mm::account::ImapConnection* first) {
    first->session().ListMailboxes(
        [&ref, k, first](mm::Result<std::vector<mm::imap::MailboxInfo>> list) {
          if (!list.ok()) {
            ++ref.failures;
            return first->Finish();
          }
          for (const mm::imap::MailboxInfo& box : *list) {
            if (box.selectable) ref.folders.push_back(box.raw_name);
          }
          for (int i = 1; i < k; ++i) {
            ref.Open([&ref](mm::account::ImapConnection* more) { ref.Next(more); });
          }
          ref.Next(first);
        });
  });
  ref.loop.Run();
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("%llu messages, %llu bytes, %.3f s, %d sessions\n",
              static_cast<unsigned long long>(ref.sink.messages),
              static_cast<unsigned long long>(ref.sink.bytes), seconds, k);
  return ref.failures == 0 ? 0 : 1;
}
