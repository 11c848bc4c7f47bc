// Choosing the accounts a command works on.
#pragma once

#include <string>
#include <vector>

#include "mailmirror/config.h"
#include "mailmirror/status.h"

namespace mailmirror::cli {

// The accounts named on the command line, in config order; all of them when
// `names` is empty. An unknown name is a kUsage error listing the known ones.
Result<std::vector<const AccountConfig*>> SelectAccounts(const Config& config,
                                                         const std::vector<std::string>& names);

}  // namespace mailmirror::cli
