// Choosing the accounts a command works on.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "mailmirror/config.h"
#include "mailmirror/status.h"

namespace mailmirror::cli {

// The accounts named on the command line, in config order; all of them when
// `names` is empty. An unknown name is a kUsage error listing the known ones.
Result<std::vector<const AccountConfig*>> SelectAccounts(const Config& config,
                                                         const std::vector<std::string>& names);

// `--shard i/n`: which of n stable parts of the accounts to take.
struct Shard {
  uint32_t index = 0;  // 0 <= index < count
  uint32_t count = 1;
};
// Parses "i/n" (n from 1 to 1,000,000); a kUsage error otherwise.
Result<Shard> ParseShard(const std::string& text);
// Whether `name` belongs to `shard`: FNV-1a (64 bits) of the name modulo n,
// the same on every host and in every release, so that schedulers that run
// `sync --shard i/n` on n machines split the accounts without talking to
// each other.
bool InShard(const std::string& name, const Shard& shard);

}  // namespace mailmirror::cli
