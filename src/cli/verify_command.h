// `mailmirror verify [--deep] [--sample N] [ACCOUNT...]`: prints what
// sync::AuditAccount found, one line per difference and a summary line per
// account.
#pragma once

#include <ostream>
#include <vector>

#include "sync/mirror_audit.h"

namespace mailmirror::cli {

// The differences, then per account a summary (left out when `quiet` and
// the account's mirror matches). Accounts that failed print nothing here.
void PrintAudits(const std::vector<sync::AuditReport>& reports, bool quiet, std::ostream& out);

}  // namespace mailmirror::cli
