#include "migrate/folder_mapping.h"

#include <gtest/gtest.h>

namespace mailmirror::migrate {
namespace {

MigrationConfig WithRules(std::vector<FolderRule> rules) {
  MigrationConfig migration;
  migration.source = "old";
  migration.target = "new";
  migration.map = std::move(rules);
  return migration;
}

const std::map<std::string, std::string> kTargetSpecialUse = {
    {"\\Sent", "Sent Items"}, {"\\Trash", "Deleted Items"}, {"\\Junk", "Junk Email"}};

std::string Target(const MigrationConfig& migration, const std::string& source,
                   const std::string& special_use = "") {
  return MapFolder(migration, source, special_use, kTargetSpecialUse).target;
}

TEST(FolderMappingTest, SpecialUseOfPicksTheAttributesMigrationsMap) {
  EXPECT_EQ(SpecialUseOf({"\\HasNoChildren", "\\sent"}), "\\Sent");
  EXPECT_EQ(SpecialUseOf({"\\Archive"}), "\\Archive");
  EXPECT_EQ(SpecialUseOf({"\\Drafts", "\\Trash"}), "\\Drafts");
  // \All and \Flagged are views of other folders, not places to copy to.
  EXPECT_EQ(SpecialUseOf({"\\All", "\\Flagged", "\\Noselect"}), "");
  EXPECT_EQ(SpecialUseOf({}), "");
}

TEST(FolderMappingTest, WithoutRulesNamesStayAndSpecialUseFoldersMeet) {
  const MigrationConfig migration = WithRules({});
  EXPECT_EQ(Target(migration, "INBOX"), "INBOX");
  EXPECT_EQ(Target(migration, "Projects/2024"), "Projects/2024");
  MappedFolder sent = MapFolder(migration, "Sent Messages", "\\Sent", kTargetSpecialUse);
  EXPECT_EQ(sent.target, "Sent Items");
  EXPECT_EQ(sent.reason, "special-use \\Sent");
  EXPECT_EQ(Target(migration, "Papierkorb", "\\Trash"), "Deleted Items");
  // The target has no \Archive folder: the name decides.
  EXPECT_EQ(Target(migration, "Archiv", "\\Archive"), "Archiv");
  MigrationConfig names_only = migration;
  names_only.special_use = false;
  EXPECT_EQ(Target(names_only, "Sent Messages", "\\Sent"), "Sent Messages");
}

TEST(FolderMappingTest, RulesApplyInOrderBeforeSpecialUse) {
  const MigrationConfig migration = WithRules({
      {"Sent Messages", "Sent/From Old"},
      {"Archive/2019", "Attic/2019"},
      {"Archive/*", "Old/Archive/*"},
      {"Archive/2020", "never reached"},
  });
  EXPECT_EQ(Target(migration, "Sent Messages", "\\Sent"), "Sent/From Old");
  EXPECT_EQ(Target(migration, "Archive/2019"), "Attic/2019");
  EXPECT_EQ(Target(migration, "Archive/2020"), "Old/Archive/2020");
  EXPECT_EQ(Target(migration, "Archive/2020/Q1"), "Old/Archive/2020/Q1");
  // A prefix move takes the folder itself along.
  EXPECT_EQ(Target(migration, "Archive"), "Old/Archive");
  // ...but not a folder that merely starts with the same letters.
  EXPECT_EQ(Target(migration, "Archived"), "Archived");
  EXPECT_EQ(MapFolder(migration, "Archive/2020", "", kTargetSpecialUse).reason,
            "rule \"Archive/*\" = \"Old/Archive/*\"");
}

TEST(FolderMappingTest, StarRulesMoveEverythingUnderOrOutOfAPrefix) {
  const MigrationConfig under = WithRules({{"*", "Imported/*"}});
  EXPECT_EQ(Target(under, "INBOX"), "Imported/INBOX");
  EXPECT_EQ(Target(under, "A/B"), "Imported/A/B");
  const MigrationConfig lift = WithRules({{"Old Server/*", "*"}});
  EXPECT_EQ(Target(lift, "Old Server/Work"), "Work");
  EXPECT_EQ(Target(lift, "Old Server/Work/2020"), "Work/2020");
  EXPECT_EQ(Target(lift, "Old Server"), "Old Server");
  EXPECT_EQ(Target(lift, "INBOX"), "INBOX");
}

}  // namespace
}  // namespace mailmirror::migrate
