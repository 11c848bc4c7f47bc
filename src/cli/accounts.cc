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

}  // namespace mailmirror::cli
