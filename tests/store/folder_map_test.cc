#include "store/folder_map.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>

namespace mailmirror::store {
namespace {

const ServerNaming kSlash{'/', ""};
const ServerNaming kDot{'.', ""};
const ServerNaming kCourier{'.', "INBOX."};  // Courier, Cyrus: everything under INBOX.
const ServerNaming kFlat{'\0', ""};

struct MapCase {
  const char* raw;
  ServerNaming naming;
  const char* local;
};

void PrintTo(const MapCase& c, std::ostream* os) { *os << '"' << c.raw << '"'; }

class NameMappingTest : public ::testing::TestWithParam<MapCase> {};

TEST_P(NameMappingTest, MapsBothWays) {
  const MapCase& c = GetParam();
  Result<std::string> local = LocalNameFor(c.raw, c.naming);
  ASSERT_TRUE(local.ok()) << local.error().message;
  EXPECT_EQ(*local, c.local);
  Result<std::string> remote = RemoteNameFor(*local, c.naming);
  ASSERT_TRUE(remote.ok()) << remote.error().message;
  // INBOX comes back in its canonical spelling; everything else exactly.
  EXPECT_EQ(*remote, *local == "INBOX" ? std::string("INBOX") : std::string(c.raw));
}

INSTANTIATE_TEST_SUITE_P(
    Cases, NameMappingTest,
    ::testing::Values(
        // INBOX in any case, with or without a namespace prefix.
        MapCase{"INBOX", kSlash, "INBOX"}, MapCase{"inbox", kSlash, "INBOX"},
        MapCase{"InBoX", kDot, "INBOX"}, MapCase{"INBOX", kCourier, "INBOX"},
        MapCase{"Inbox", kCourier, "INBOX"}, MapCase{"INBOX", kFlat, "INBOX"},
        // Hierarchy with the server's delimiter, prefix stripped.
        MapCase{"Archive/2023", kSlash, "Archive/2023"},
        MapCase{"Archive.2023", kDot, "Archive/2023"},
        MapCase{"INBOX.Archive.2023", kCourier, "Archive/2023"},
        MapCase{"INBOX.Sent", kCourier, "Sent"},
        MapCase{"INBOX/sub", kSlash, "INBOX/sub"},  // a child of INBOX without a prefix
        MapCase{"INBOX.INBOX.x", kCourier, "INBOX/x"},
        MapCase{"[Gmail]/Sent Mail", kSlash, "[Gmail]/Sent Mail"},
        // Levels with the other separator, which only matter for some layouts.
        MapCase{"Sent.Old", kSlash, "Sent.Old"}, MapCase{"Archive.2023", kFlat, "Archive.2023"},
        MapCase{"a.b.c", kFlat, "a.b.c"},
        // Modified UTF-7.
        MapCase{"Entw&APw-rfe", kSlash, "Entwürfe"},
        MapCase{"INBOX.Entw&APw-rfe.2023", kCourier, "Entwürfe/2023"}, MapCase{"R&-D", kDot, "R&D"},
        MapCase{"~peter/mail/&U,BTFw-/&ZeVnLIqe-", kSlash, "~peter/mail/台北/日本語"},
        MapCase{"Mail &2D3c5w-", kFlat, "Mail \xF0\x9F\x93\xA7"},
        // Names that merely resemble reserved ones.
        MapCase{"Cur", kSlash, "Cur"}, MapCase{"curry", kSlash, "curry"},
        MapCase{"...a", kSlash, "...a"}, MapCase{"new mail", kSlash, "new mail"}));

struct RefusalCase {
  std::string raw;
  ServerNaming naming;
  const char* reason;  // a part of the message
};

void PrintTo(const RefusalCase& c, std::ostream* os) { *os << ::testing::PrintToString(c.raw); }

class LocalNameRefusalTest : public ::testing::TestWithParam<RefusalCase> {};

TEST_P(LocalNameRefusalTest, Refuses) {
  const RefusalCase& c = GetParam();
  Result<std::string> local = LocalNameFor(c.raw, c.naming);
  ASSERT_FALSE(local.ok()) << "accepted as " << *local;
  EXPECT_EQ(local.error().kind, ErrorKind::kProtocol);
  EXPECT_NE(local.error().message.find(c.reason), std::string::npos) << local.error().message;
  EXPECT_EQ(local.error().message.rfind("folder \"", 0), 0u) << local.error().message;
}

INSTANTIATE_TEST_SUITE_P(
    Unsafe, LocalNameRefusalTest,
    ::testing::Values(
        RefusalCase{"..", kSlash, "\"..\" level"}, RefusalCase{"a/../b", kSlash, "\"..\" level"},
        RefusalCase{"a..b..", kDot, "empty level"},  // "a", "", "b", "", ""
        RefusalCase{"a.....b", kDot, "empty level"},
        RefusalCase{"INBOX...", kCourier, "empty level"}, RefusalCase{".", kSlash, "\".\" level"},
        RefusalCase{"a/./b", kSlash, "\".\" level"}, RefusalCase{"/abs", kSlash, "empty level"},
        RefusalCase{"a//b", kSlash, "empty level"}, RefusalCase{"a/", kSlash, "empty level"},
        RefusalCase{"", kSlash, "empty level"}, RefusalCase{"INBOX.", kCourier, "empty level"},
        RefusalCase{std::string("a\0b", 3), kSlash, "NUL byte"},
        RefusalCase{"\x01", kSlash, "control character"},
        RefusalCase{"a\x7f", kSlash, "control character"},
        RefusalCase{"a&AAk-b", kSlash, "control character"},  // an encoded TAB
        RefusalCase{"&AIU-", kSlash, "control character"},    // U+0085, a C1 control
        RefusalCase{"cur", kSlash, "collide"}, RefusalCase{"new", kSlash, "collide"},
        RefusalCase{"a/tmp", kSlash, "collide"}, RefusalCase{"INBOX.cur", kCourier, "collide"},
        RefusalCase{"a/b", kDot, "'/' inside a level"},
        RefusalCase{"a/b", kFlat, "'/' inside a level"},
        RefusalCase{"Entw&APw", kSlash, "not valid modified UTF-7"},
        RefusalCase{"&AGE-", kSlash, "not valid modified UTF-7"},
        RefusalCase{"caf\xC3\xA9", kSlash, "not valid modified UTF-7"},
        RefusalCase{std::string(256, 'x'), kSlash, "longer than 255 bytes"},
        RefusalCase{"Shared.team", kCourier, "outside the personal namespace \"INBOX.\""},
        RefusalCase{"Mail", ServerNaming{'/', "Mail/"}, "outside the personal namespace"},
        RefusalCase{"INBOX.INBOX", kCourier, "clash with the real INBOX"},
        RefusalCase{"INBOX.inbox", kCourier, "clash with the real INBOX"}));

TEST(LocalNameForTest, ExactMessageForAnEscape) {
  Result<std::string> local = LocalNameFor("a/../b", kSlash);
  ASSERT_FALSE(local.ok());
  EXPECT_EQ(local.error().message,
            "folder \"a/../b\" skipped: its name contains a \"..\" level, which could escape "
            "the Maildir root");
  Result<std::string> control = LocalNameFor("bad\x01name", kSlash);
  ASSERT_FALSE(control.ok());
  EXPECT_EQ(control.error().message,
            "folder \"bad\\x01name\" skipped: its name contains a control character");
}

TEST(LocalNameForTest, LevelOf255BytesIsFine) {
  std::string name(255, 'x');
  Result<std::string> local = LocalNameFor(name + "/" + name, kSlash);
  ASSERT_TRUE(local.ok()) << local.error().message;
  EXPECT_EQ(*local, name + "/" + name);
}

// INBOX is recognised before the namespace prefix is looked at.
TEST(LocalNameForTest, InboxIsInboxWhateverThePrefix) {
  Result<std::string> local = LocalNameFor("INBOX", ServerNaming{'/', "Mail/"});
  ASSERT_TRUE(local.ok());
  EXPECT_EQ(*local, "INBOX");
  Result<std::string> child = LocalNameFor("Mail/Sent", ServerNaming{'/', "Mail/"});
  ASSERT_TRUE(child.ok());
  EXPECT_EQ(*child, "Sent");
}

TEST(RemoteNameForTest, MapsLocalNames) {
  EXPECT_EQ(*RemoteNameFor("Archive/2023", kCourier), "INBOX.Archive.2023");
  EXPECT_EQ(*RemoteNameFor("INBOX", kCourier), "INBOX");
  EXPECT_EQ(*RemoteNameFor("inbox", kCourier), "INBOX");
  EXPECT_EQ(*RemoteNameFor("INBOX/x", kCourier), "INBOX.INBOX.x");
  EXPECT_EQ(*RemoteNameFor("Entwürfe", kSlash), "Entw&APw-rfe");
  EXPECT_EQ(*RemoteNameFor("R&D/Q1", kDot), "R&-D.Q1");
  EXPECT_EQ(*RemoteNameFor("Sent.Old", kSlash), "Sent.Old");
  EXPECT_EQ(*RemoteNameFor("Archive", kFlat), "Archive");
}

TEST(RemoteNameForTest, RefusesWhatCannotBeMappedBack) {
  const std::pair<std::string, ServerNaming> bad[] = {
      {"a/b", kFlat},      // no hierarchy on the server
      {"Sent.Old", kDot},  // would read back as Sent/Old
      {"Sent.Old", kCourier},
      {"\xff", kSlash},     // not UTF-8
      {"caf\xC3", kSlash},  // truncated UTF-8
      {"../x", kSlash},     //
      {"a//b", kSlash},     //
      {"", kSlash},         //
      {"a/", kSlash},       //
      {"cur", kSlash},      //
      {"a\tb", kSlash},     //
      {std::string("a\0b", 3), kSlash},
  };
  for (const auto& [local, naming] : bad) {
    Result<std::string> remote = RemoteNameFor(local, naming);
    EXPECT_FALSE(remote.ok()) << "\"" << local << "\" -> " << *remote;
    if (!remote.ok()) {
      EXPECT_EQ(remote.error().kind, ErrorKind::kProtocol);
    }
  }
}

struct PathCase {
  const char* root;
  std::string local;
  Layout layout;
  const char* path;  // nullptr: refused
};

void PrintTo(const PathCase& c, std::ostream* os) {
  *os << c.root << " + " << ::testing::PrintToString(c.local)
      << (c.layout == Layout::kVerbatim ? " (verbatim)" : " (maildir++)");
}

class LocalPathTest : public ::testing::TestWithParam<PathCase> {};

TEST_P(LocalPathTest, Maps) {
  const PathCase& c = GetParam();
  Result<std::string> path = LocalPathFor(c.root, c.local, c.layout);
  if (c.path == nullptr) {
    ASSERT_FALSE(path.ok()) << "accepted as " << *path;
    EXPECT_EQ(path.error().kind, ErrorKind::kProtocol);
    EXPECT_NE(path.error().message.find("has no safe path under"), std::string::npos)
        << path.error().message;
  } else {
    ASSERT_TRUE(path.ok()) << path.error().message;
    EXPECT_EQ(*path, c.path);
  }
}

constexpr Layout kV = Layout::kVerbatim;
constexpr Layout kPP = Layout::kMaildirPlusPlus;

INSTANTIATE_TEST_SUITE_P(
    Layouts, LocalPathTest,
    ::testing::Values(
        PathCase{"/m", "INBOX", kV, "/m/INBOX"},
        PathCase{"/m/", "Archive/2023", kV, "/m/Archive/2023"},
        PathCase{"/m//", "Entwürfe", kV, "/m/Entwürfe"}, PathCase{"/", "a", kV, "/a"},
        PathCase{"rel", "a/b", kV, "rel/a/b"}, PathCase{"/m", "Sent.Old", kV, "/m/Sent.Old"},
        PathCase{"/m", "a/x...", kV, "/m/a/x..."},
        PathCase{"/m", "a/...", kV, nullptr},  // not an escape, but hidden
        PathCase{"/m", "..", kV, nullptr}, PathCase{"/m", "a/../b", kV, nullptr},
        PathCase{"/m", "../m2", kV, nullptr}, PathCase{"/m", "/abs", kV, nullptr},
        PathCase{"/m", "a//b", kV, nullptr}, PathCase{"/m", "", kV, nullptr},
        PathCase{"/m", "a/", kV, nullptr}, PathCase{"/m", ".", kV, nullptr},
        PathCase{"/m", "a/.", kV, nullptr}, PathCase{"/m", ".hidden", kV, nullptr},
        PathCase{"/m", "a/.mailmirror", kV, nullptr}, PathCase{"/m", "cur", kV, nullptr},
        PathCase{"/m", "a/tmp", kV, nullptr},
        PathCase{"/m", std::string("a\0/../../etc", 12), kV, nullptr},
        PathCase{"/m", "INBOX", kPP, "/m"}, PathCase{"/m/", "INBOX", kPP, "/m"},
        PathCase{"/m", "inbox", kPP, "/m"}, PathCase{"/m", "Archive/2023", kPP, "/m/.Archive.2023"},
        PathCase{"/m", "INBOX/sub", kPP, "/m/.INBOX.sub"},
        PathCase{"/m", "cur", kPP, "/m/.cur"},  // no clash in this layout
        PathCase{"/m", "Entwürfe", kPP, "/m/.Entwürfe"}, PathCase{"/m", "Sent.Old", kPP, nullptr},
        PathCase{"/m", "a/b.c", kPP, nullptr}, PathCase{"/m", "..", kPP, nullptr},
        PathCase{"/m", "a//b", kPP, nullptr}, PathCase{"/m", "", kPP, nullptr},
        PathCase{"/m", std::string(255, 'x'), kPP, nullptr}));

TEST(LocalPathForTest, EmptyRootIsAConfigError) {
  Result<std::string> path = LocalPathFor("", "INBOX", kV);
  ASSERT_FALSE(path.ok());
  EXPECT_EQ(path.error().kind, ErrorKind::kConfig);
}

TEST(LocalPathForTest, MaildirPlusPlusNameAtTheLengthLimit) {
  // "." plus 254 bytes is exactly NAME_MAX; one more is refused.
  Result<std::string> path = LocalPathFor("/m", std::string(254, 'x'), kPP);
  ASSERT_TRUE(path.ok()) << path.error().message;
  EXPECT_EQ(*path, "/m/." + std::string(254, 'x'));
  EXPECT_FALSE(LocalPathFor("/m", std::string(127, 'x') + "/" + std::string(127, 'y'), kPP).ok());
}

struct GlobCase {
  const char* pattern;
  const char* name;
  bool match;
};

class GlobTest : public ::testing::TestWithParam<GlobCase> {};

TEST_P(GlobTest, Matches) {
  const GlobCase& c = GetParam();
  EXPECT_EQ(GlobMatch(c.pattern, c.name), c.match) << c.pattern << " vs " << c.name;
}

INSTANTIATE_TEST_SUITE_P(
    Table, GlobTest,
    ::testing::Values(
        GlobCase{"*", "", true}, GlobCase{"*", "INBOX", true}, GlobCase{"*", "a/b/c", true},
        GlobCase{"", "", true}, GlobCase{"", "a", false}, GlobCase{"INBOX", "INBOX", true},
        GlobCase{"INBOX", "inbox", false}, GlobCase{"INBOX", "INBOX/x", false},
        GlobCase{"Archive/*", "Archive/2023", true}, GlobCase{"Archive/*", "Archive/2023/Q1", true},
        GlobCase{"Archive/*", "Archive", false}, GlobCase{"Archive*", "Archive", true},
        GlobCase{"Archive*", "Archives/x", true}, GlobCase{"*/2023", "Archive/2023", true},
        GlobCase{"*/2023", "Archive/2023/x", false}, GlobCase{"a?c", "abc", true},
        GlobCase{"a?c", "a/c", true}, GlobCase{"a?c", "ac", false}, GlobCase{"a?c", "abbc", false},
        GlobCase{"?", "ü", true}, GlobCase{"??", "ü", false},
        GlobCase{"Entw?rfe", "Entwürfe", true}, GlobCase{"*?", "日", true},
        GlobCase{"*??", "日", false}, GlobCase{"a*b*c", "aXbYc", true},
        GlobCase{"a*b*c", "aXbY", false}, GlobCase{"a*b*c", "abcbc", true},
        GlobCase{"**", "x", true}, GlobCase{"*.Old", "Sent.Old", true},
        GlobCase{"*x", "xxxxy", false}, GlobCase{"[Gmail]/*", "[Gmail]/Sent Mail", true}));

TEST(GlobMatchTest, PathologicalPatternIsFast) {
  std::string name(2000, 'a');
  std::string pattern;
  for (int i = 0; i < 30; ++i) pattern += "a*";
  pattern += "b";
  auto start = std::chrono::steady_clock::now();
  EXPECT_FALSE(GlobMatch(pattern, name));
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(1));
}

struct SelectCase {
  std::vector<std::string> patterns;
  const char* name;
  bool selected;
};

class FolderSelectedTest : public ::testing::TestWithParam<SelectCase> {};

TEST_P(FolderSelectedTest, Selects) {
  const SelectCase& c = GetParam();
  EXPECT_EQ(FolderSelected(c.patterns, c.name), c.selected) << c.name;
}

INSTANTIATE_TEST_SUITE_P(
    Table, FolderSelectedTest,
    ::testing::Values(
        SelectCase{{}, "INBOX", true}, SelectCase{{"*"}, "Anything/x", true},
        // Only exclusions: everything else is in.
        SelectCase{{"!Trash"}, "Trash", false}, SelectCase{{"!Trash"}, "INBOX", true},
        SelectCase{{"!Archive/*"}, "Sent", true}, SelectCase{{"!Archive/*"}, "Archive/2023", false},
        // Positive patterns: only what matches.
        SelectCase{{"INBOX", "Archive/*"}, "INBOX", true},
        SelectCase{{"INBOX", "Archive/*"}, "Archive/2023", true},
        SelectCase{{"INBOX", "Archive/*"}, "Sent", false},
        // The last matching pattern decides.
        SelectCase{{"*", "!Spam"}, "Spam", false}, SelectCase{{"*", "!Spam"}, "Ham", true},
        SelectCase{{"!Spam", "*"}, "Spam", true},
        SelectCase{{"Archive/*", "!Archive/Old*"}, "Archive/Old2020", false},
        SelectCase{{"Archive/*", "!Archive/Old*"}, "Archive/New", true},
        SelectCase{{"Archive/*", "!Archive/Old*"}, "Sent", false},
        SelectCase{{"Archive/*", "!Archive/Old*", "Archive/Old2020"}, "Archive/Old2020", true},
        // "!" alone excludes only the empty name.
        SelectCase{{"!"}, "INBOX", true}));

// A Maildir tree as a mail reader leaves it: folders at several levels,
// plain directories between them, dot files and our state directory.
TEST(ListLocalFoldersTest, FindsMaildirFoldersInBothLayouts) {
  const std::string root = ::testing::TempDir() + "/mm-list-local-" + std::to_string(::getpid());
  std::filesystem::remove_all(root);
  auto maildir = [](const std::string& path) {
    for (const char* sub : {"/cur", "/new", "/tmp"}) {
      std::filesystem::create_directories(path + sub);
    }
  };
  maildir(root + "/INBOX");
  maildir(root + "/Projects/2024");  // "Projects" itself is a plain directory
  maildir(root + "/Sent Items");
  maildir(root + "/.mailmirror/junk");                   // hidden: never a folder
  std::filesystem::create_directories(root + "/Notes");  // no cur/
  Result<std::vector<std::string>> verbatim = ListLocalFolders(root, Layout::kVerbatim);
  ASSERT_TRUE(verbatim.ok()) << verbatim.error().message;
  EXPECT_EQ(*verbatim, (std::vector<std::string>{"INBOX", "Projects/2024", "Sent Items"}));

  const std::string plus = root + "/plus";
  maildir(plus);
  maildir(plus + "/.Archive.2023");
  maildir(plus + "/.Drafts");
  std::filesystem::create_directories(plus + "/.Broken");  // no cur/
  Result<std::vector<std::string>> dotted = ListLocalFolders(plus, Layout::kMaildirPlusPlus);
  ASSERT_TRUE(dotted.ok()) << dotted.error().message;
  EXPECT_EQ(*dotted, (std::vector<std::string>{"Archive/2023", "Drafts", "INBOX"}));

  Result<std::vector<std::string>> missing = ListLocalFolders(root + "/none", Layout::kVerbatim);
  ASSERT_TRUE(missing.ok());
  EXPECT_TRUE(missing->empty());
  std::filesystem::remove_all(root);
}

}  // namespace
}  // namespace mailmirror::store
