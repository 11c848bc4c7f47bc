// `mailmirror list [ACCOUNT...]`: each account's folders with their message
// and unread counts, like `mbsync -l` with numbers.
#pragma once

#include <ostream>
#include <string>
#include <vector>

#include "imap/session.h"
#include "mailmirror/config.h"
#include "mailmirror/status.h"

namespace mailmirror::cli {

struct AccountListing {
  const AccountConfig* account = nullptr;
  Result<std::vector<imap::MailboxInfo>> mailboxes = MakeError(ErrorKind::kInternal, "not listed");
};

// Connects to every account at once on one event loop and lists its
// folders. Never fails as a whole: each account carries its own outcome.
std::vector<AccountListing> ListAccounts(const std::vector<const AccountConfig*>& accounts);

// Prints the listings that succeeded as aligned tables, INBOX first, then
// by name.
void PrintListings(const std::vector<AccountListing>& listings, std::ostream& out);

}  // namespace mailmirror::cli
