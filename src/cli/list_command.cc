#include "cli/list_command.h"

#include <algorithm>
#include <memory>

#include "account/imap_connection.h"
#include "net/event_loop.h"
#include "util/strings.h"

namespace mailmirror::cli {
namespace {

std::string PadRight(const std::string& text, size_t width) {
  size_t used = DisplayWidth(text);
  return used >= width ? text : text + std::string(width - used, ' ');
}

std::string PadLeft(const std::string& text, size_t width) {
  return text.size() >= width ? text : std::string(width - text.size(), ' ') + text;
}

std::string CountOrDash(const std::optional<uint32_t>& count) {
  return count ? std::to_string(*count) : "-";
}

}  // namespace

std::vector<AccountListing> ListAccounts(const std::vector<const AccountConfig*>& accounts) {
  std::vector<AccountListing> listings(accounts.size());
  net::EventLoop loop;
  std::vector<std::unique_ptr<account::ImapConnection>> connections;
  std::vector<std::unique_ptr<account::Credentials>> credentials;
  for (size_t i = 0; i < accounts.size(); ++i) {
    AccountListing& listing = listings[i];
    listing.account = accounts[i];
    Result<account::Credentials> resolved = account::Credentials::Resolve(*accounts[i]);
    if (!resolved.ok()) {
      listing.mailboxes = resolved.error();
      continue;
    }
    credentials.push_back(std::make_unique<account::Credentials>(std::move(resolved).value()));
    auto connection = std::make_unique<account::ImapConnection>(&loop, *accounts[i]);
    account::ImapConnection* raw = connection.get();
    connections.push_back(std::move(connection));
    raw->Open(
        credentials.back().get(),
        [raw, &listing](const Status& status) {
          if (!status.ok()) {
            listing.mailboxes = status.error();
            raw->Finish();
            return;
          }
          raw->session().ListMailboxes(
              [raw, &listing](Result<std::vector<imap::MailboxInfo>> mailboxes) {
                listing.mailboxes = std::move(mailboxes);
                raw->Finish();
              });
        },
        [] {});
  }
  loop.Run();
  return listings;
}

void PrintListings(const std::vector<AccountListing>& listings, std::ostream& out) {
  bool first = true;
  for (const AccountListing& listing : listings) {
    if (!listing.mailboxes.ok()) continue;
    std::vector<imap::MailboxInfo> mailboxes = listing.mailboxes.value();
    std::stable_sort(mailboxes.begin(), mailboxes.end(),
                     [](const imap::MailboxInfo& a, const imap::MailboxInfo& b) {
                       bool a_inbox = a.raw_name == "INBOX";
                       bool b_inbox = b.raw_name == "INBOX";
                       if (a_inbox != b_inbox) return a_inbox;
                       return a.name < b.name;
                     });
    const std::string kFolder = "FOLDER";
    size_t width = kFolder.size();
    for (const imap::MailboxInfo& mailbox : mailboxes) {
      width = std::max(width, DisplayWidth(mailbox.name));
    }
    if (!first) out << '\n';
    first = false;
    const AccountConfig& account = *listing.account;
    out << "account " << account.name << " (" << account.user << " at " << account.host << ":"
        << account.port << ")\n";
    out << "  " << PadRight(kFolder, width) << "  MESSAGES  UNREAD\n";
    for (const imap::MailboxInfo& mailbox : mailboxes) {
      out << "  " << PadRight(mailbox.name, width) << "  "
          << PadLeft(CountOrDash(mailbox.messages), 8) << "  "
          << PadLeft(CountOrDash(mailbox.unseen), 6) << '\n';
    }
  }
}

}  // namespace mailmirror::cli
