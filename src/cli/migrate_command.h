// `mailmirror migrate`: which migration the arguments name, and its report
// as text.
#pragma once

#include <ostream>
#include <string>
#include <vector>

#include "mailmirror/config.h"
#include "mailmirror/status.h"
#include "migrate/migration.h"

namespace mailmirror::cli {

// `migrate NAME` runs [migrations.NAME]; `migrate SOURCE TARGET` runs the
// migration configured for those two accounts, or (none configured) one
// with the defaults: every folder, special-use mapping, no filters.
// Errors: kUsage for unknown names or an ambiguous pair.
Result<MigrationConfig> ResolveMigration(const Config& config,
                                         const std::vector<std::string>& arguments);

// One line per source folder, then a summary line.
void PrintMigration(const migrate::MigrationReport& report, const MigrationConfig& migration,
                    std::ostream& out);

}  // namespace mailmirror::cli
