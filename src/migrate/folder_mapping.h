// Where a migration puts each source folder in the target account: the
// `map` rules of [migrations.NAME] in file order, then special-use folders
// matched by attribute, then the same name. Names here are local names
// (UTF-8, '/' between levels) on both sides, so the servers' delimiters and
// namespace prefixes never meet: store::RemoteNameFor turns the result into
// the target server's name.
#pragma once

#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "mailmirror/config.h"

namespace mailmirror::migrate {

// The special-use attribute (RFC 6154) among a LIST entry's attributes that
// migrations map: \Sent, \Drafts, \Trash, \Junk or \Archive, in that
// spelling; empty when none.
std::string SpecialUseOf(const std::vector<std::string>& attributes);

struct MappedFolder {
  std::string target;  // local name in the target account
  std::string reason;  // how it was chosen, for the report
};

// The target folder of source folder `source` (its special-use attribute
// `special_use`, maybe empty). `target_special_use` maps each attribute to
// the target folder carrying it. INBOX stays INBOX unless a rule names it.
MappedFolder MapFolder(const MigrationConfig& migration, std::string_view source,
                       std::string_view special_use,
                       const std::map<std::string, std::string>& target_special_use);

}  // namespace mailmirror::migrate
