#include "cli/accounts.h"

#include <algorithm>

namespace mailmirror::cli {

Result<std::vector<const AccountConfig*>> SelectAccounts(const Config& config,
                                                         const std::vector<std::string>& names) {
  std::vector<const AccountConfig*> selected;
  for (const std::string& name : names) {
    auto it = std::find_if(config.accounts.begin(), config.accounts.end(),
                           [&](const AccountConfig& account) { return account.name == name; });
    if (it == config.accounts.end()) {
      std::string known;
      for (const AccountConfig& account : config.accounts) {
        known += known.empty() ? "" : ", ";
        known += account.name;
      }
      std::string message = "unknown account \"" + name + "\" (";
      message += config.path;
      message += " defines: ";
      message += known;
      message += ')';
      return MakeError(ErrorKind::kUsage, std::move(message));
    }
  }
  for (const AccountConfig& account : config.accounts) {
    if (names.empty() || std::find(names.begin(), names.end(), account.name) != names.end()) {
      selected.push_back(&account);
    }
  }
  return selected;
}

Result<Shard> ParseShard(const std::string& text) {
  auto bad = [&text] {
    return MakeError(ErrorKind::kUsage,
                     "--shard expects I/N with 0 <= I < N, e.g. 0/4 (got \"" + text + "\")");
  };
  const size_t slash = text.find('/');
  if (slash == std::string::npos || slash == 0 || slash + 1 == text.size()) return bad();
  auto number = [](std::string_view digits, uint64_t& out) {
    if (digits.empty() || digits.size() > 7) return false;
    out = 0;
    for (char c : digits) {
      if (c < '0' || c > '9') return false;
      out = out * 10 + static_cast<uint64_t>(c - '0');
    }
    return true;
  };
  uint64_t index = 0;
  uint64_t count = 0;
  if (!number(std::string_view(text).substr(0, slash), index) ||
      !number(std::string_view(text).substr(slash + 1), count) || count == 0 || count > 1000000 ||
      index >= count) {
    return bad();
  }
  return Shard{static_cast<uint32_t>(index), static_cast<uint32_t>(count)};
}

bool InShard(const std::string& name, const Shard& shard) {
  uint64_t hash = 0xcbf29ce484222325ull;  // FNV-1a offset basis
  for (unsigned char c : name) {
    hash ^= c;
    hash *= 0x100000001b3ull;  // FNV prime
  }
  return hash % shard.count == shard.index;
}

}  // namespace mailmirror::cli
