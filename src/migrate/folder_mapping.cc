#include "migrate/folder_mapping.h"

#include <optional>

#include "util/strings.h"

namespace mailmirror::migrate {
namespace {

constexpr std::string_view kMappedSpecialUses[] = {"\\Sent", "\\Drafts", "\\Trash", "\\Junk",
                                                   "\\Archive"};

// `name` under `rule`, or nullopt when the rule does not apply. A prefix
// rule "A/*" = "B/*" maps "A" to "B" and "A/x" to "B/x"; "*" = "B/*" maps
// every name under B; "A/*" = "*" lifts A's subfolders to the top.
std::optional<std::string> Apply(const FolderRule& rule, std::string_view name) {
  if (rule.from.empty() || rule.from.back() != '*') {
    if (name != rule.from) return std::nullopt;
    return rule.to;
  }
  const std::string_view from_prefix = std::string_view(rule.from).substr(0, rule.from.size() - 1);
  const std::string_view to_prefix = std::string_view(rule.to).substr(0, rule.to.size() - 1);
  std::string_view rest;
  if (from_prefix.empty()) {
    rest = name;
  } else if (name.size() >= from_prefix.size() &&
             name.substr(0, from_prefix.size()) == from_prefix) {
    rest = name.substr(from_prefix.size());  // "A/x" -> "x"
  } else if (name == from_prefix.substr(0, from_prefix.size() - 1)) {
    rest = "";  // "A" itself
  } else {
    return std::nullopt;
  }
  if (rest.empty()) {
    // The folder itself: the target prefix without its '/', or (for "*")
    // nothing to lift it into, so it keeps its name.
    if (to_prefix.empty()) return std::string(name.substr(name.rfind('/') + 1));
    return std::string(to_prefix.substr(0, to_prefix.size() - 1));
  }
  return std::string(to_prefix) + std::string(rest);
}

}  // namespace

std::string SpecialUseOf(const std::vector<std::string>& attributes) {
  for (const std::string& attribute : attributes) {
    for (std::string_view known : kMappedSpecialUses) {
      if (EqualsIgnoreCase(attribute, known)) return std::string(known);
    }
  }
  return "";
}

MappedFolder MapFolder(const MigrationConfig& migration, std::string_view source,
                       std::string_view special_use,
                       const std::map<std::string, std::string>& target_special_use) {
  for (const FolderRule& rule : migration.map) {
    if (std::optional<std::string> target = Apply(rule, source)) {
      return {*target, "rule \"" + rule.from + "\" = \"" + rule.to + "\""};
    }
  }
  if (EqualsIgnoreCase(source, "INBOX")) return {"INBOX", "INBOX"};
  if (migration.special_use && !special_use.empty()) {
    auto found = target_special_use.find(std::string(special_use));
    if (found != target_special_use.end()) {
      return {found->second, "special-use " + std::string(special_use)};
    }
  }
  return {std::string(source), "same name"};
}

}  // namespace mailmirror::migrate
