#include "store/maildir.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <xxhash.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <regex>
#include <set>
#include <sstream>
#include <thread>

#include "util/fs.h"

namespace mailmirror::store {
namespace {

namespace fs = std::filesystem;

// A fresh directory per test, removed afterwards.
class TempDir {
 public:
  TempDir() {
    std::string pattern = (fs::temp_directory_path() / "maildir_test.XXXXXX").string();
    char* made = ::mkdtemp(pattern.data());
    if (made == nullptr) ADD_FAILURE() << "mkdtemp failed: " << std::strerror(errno);
    path_ = pattern;
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

std::vector<std::string> ListDir(const std::string& path) {
  std::vector<std::string> names;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(path, ec)) {
    names.push_back(entry.path().filename().string());
  }
  std::sort(names.begin(), names.end());
  return names;
}

uint64_t Xxh3(std::string_view bytes) { return XXH3_64bits(bytes.data(), bytes.size()); }

// The reference conversion: every CR LF becomes LF, nothing else changes.
std::string CrlfToLf(std::string_view in) {
  std::string out;
  for (size_t i = 0; i < in.size(); ++i) {
    if (in[i] == '\r' && i + 1 < in.size() && in[i + 1] == '\n') continue;
    out += in[i];
  }
  return out;
}

std::unique_ptr<MaildirFolder> OpenFolder(const std::string& path) {
  Result<std::unique_ptr<MaildirFolder>> folder = MaildirFolder::Open(path, /*create=*/true);
  EXPECT_TRUE(folder.ok()) << folder.error().message;
  return folder.ok() ? std::move(folder).value() : nullptr;
}

std::unique_ptr<TmpMessage> WriteMessage(MaildirFolder& folder, std::string_view text) {
  Result<std::unique_ptr<TmpMessage>> message = folder.BeginMessage();
  EXPECT_TRUE(message.ok()) << message.error().message;
  if (!message.ok()) return nullptr;
  Status status = (*message)->Write(text);
  EXPECT_TRUE(status.ok()) << status.error().message;
  status = (*message)->Finish();
  EXPECT_TRUE(status.ok()) << status.error().message;
  return std::move(message).value();
}

size_t ResidentBytes() {
  std::ifstream statm("/proc/self/statm");
  size_t total_pages = 0;
  size_t resident_pages = 0;
  statm >> total_pages >> resident_pages;
  return resident_pages * static_cast<size_t>(::sysconf(_SC_PAGESIZE));
}

// --- Flags.

TEST(FlagsTest, LettersRoundTripInAsciiOrder) {
  EXPECT_EQ(FlagLetters(0), "");
  EXPECT_EQ(FlagLetters(kFlagSeen | kFlagDraft | kFlagDeleted | kFlagAnswered | kFlagFlagged |
                        kFlagForwarded),
            "DFPRST");
  EXPECT_EQ(FlagLetters(kFlagSeen | kFlagFlagged), "FS");
  for (uint32_t flags = 0; flags < 64; ++flags) {
    std::string letters = FlagLetters(flags);
    EXPECT_TRUE(std::is_sorted(letters.begin(), letters.end())) << letters;
    EXPECT_EQ(FlagsFromLetters(letters), flags) << letters;
  }
}

TEST(FlagsTest, UnknownLettersAreIgnoredAndOrderDoesNotMatter) {
  EXPECT_EQ(FlagsFromLetters("abcSz"), kFlagSeen);
  EXPECT_EQ(FlagsFromLetters("SFS"), kFlagSeen | kFlagFlagged);
  EXPECT_EQ(FlagsFromLetters("XYZ"), 0u);
  EXPECT_EQ(FlagLetters(1u << 20), "");  // bits without a letter
}

TEST(FlagsTest, ImapNames) {
  EXPECT_EQ(FlagFromImap("\\Seen"), kFlagSeen);
  EXPECT_EQ(FlagFromImap("\\SEEN"), kFlagSeen);
  EXPECT_EQ(FlagFromImap("\\answered"), kFlagAnswered);
  EXPECT_EQ(FlagFromImap("\\Draft"), kFlagDraft);
  EXPECT_EQ(FlagFromImap("\\Flagged"), kFlagFlagged);
  EXPECT_EQ(FlagFromImap("\\Deleted"), kFlagDeleted);
  EXPECT_EQ(FlagFromImap("$forwarded"), kFlagForwarded);
  EXPECT_EQ(FlagFromImap("\\Recent"), 0u);
  EXPECT_EQ(FlagFromImap("$Junk"), 0u);
  EXPECT_EQ(FlagFromImap("Seen"), 0u);
  EXPECT_EQ(ImapFlagsFromBits(kFlagSeen | kFlagFlagged),
            (std::vector<std::string>{"\\Flagged", "\\Seen"}));
  EXPECT_TRUE(ImapFlagsFromBits(0).empty());
  for (uint32_t flags = 0; flags < 64; ++flags) {
    uint32_t back = 0;
    for (const std::string& name : ImapFlagsFromBits(flags)) back |= FlagFromImap(name);
    EXPECT_EQ(back, flags);
  }
}

// --- Names.

struct NameCase {
  const char* file_name;
  const char* stem;
  uint32_t uid;
  uint32_t flags;
  bool has_info;
  const char* other_letters;
};

class ParseNameTest : public ::testing::TestWithParam<NameCase> {};

TEST_P(ParseNameTest, Parses) {
  const NameCase& c = GetParam();
  std::optional<MaildirName> name = ParseMaildirName(c.file_name);
  ASSERT_TRUE(name.has_value()) << c.file_name;
  EXPECT_EQ(name->stem, c.stem);
  EXPECT_EQ(name->uid, c.uid);
  EXPECT_EQ(name->flags, c.flags);
  EXPECT_EQ(name->has_info, c.has_info);
  EXPECT_EQ(name->other_letters, c.other_letters);
  // Writing the name back keeps stem, UID and every letter.
  std::optional<MaildirName> again =
      ParseMaildirName(MakeMaildirName(name->stem, name->uid, name->flags, name->other_letters));
  ASSERT_TRUE(again.has_value());
  EXPECT_EQ(again->stem, name->stem);
  EXPECT_EQ(again->uid, name->uid);
  EXPECT_EQ(again->flags, name->flags);
  EXPECT_EQ(again->other_letters, name->other_letters);
}

constexpr uint32_t kFS = kFlagFlagged | kFlagSeen;
constexpr uint32_t kRS = kFlagAnswered | kFlagSeen;

INSTANTIATE_TEST_SUITE_P(
    RealWorld, ParseNameTest,
    ::testing::Values(
        // mbsync with its UID tag.
        NameCase{"1700000000.M1P2.host,U=17:2,FS", "1700000000.M1P2.host", 17, kFS, true, ""},
        NameCase{"1700000000.12345_1.host,U=4711:2,S", "1700000000.12345_1.host", 4711, kFlagSeen,
                 true, ""},
        NameCase{"1700000000.12345_1.host,U=4294967295:2,", "1700000000.12345_1.host", 4294967295u,
                 0, true, ""},
        // mbsync's older pid_counter form, no flags.
        NameCase{"1700000000.123_4.host:2,", "1700000000.123_4.host", 0, 0, true, ""},
        // Dovecot: size attributes stay in the stem, keyword letters are kept.
        NameCase{"1700000000.M1P2.host,S=1234,W=1260:2,RS", "1700000000.M1P2.host,S=1234,W=1260", 0,
                 kRS, true, ""},
        NameCase{"1491941793.M41850P8566V000000000000FD01I0000000000A3F5E2_0.mx1.example.com,"
                 "S=10956:2,STln",
                 "1491941793.M41850P8566V000000000000FD01I0000000000A3F5E2_0.mx1.example.com,"
                 "S=10956",
                 0, kFlagSeen | kFlagDeleted, true, "ln"},
        // Attributes after our tag are dropped.
        NameCase{"1700000000.M1P2.host,U=17,S=99:2,T", "1700000000.M1P2.host", 17, kFlagDeleted,
                 true, ""},
        // mutt and notmuch/mu style unique parts.
        NameCase{"1700000000.R4021739486543721573.laptop:2,RS",
                 "1700000000.R4021739486543721573.laptop", 0, kRS, true, ""},
        NameCase{"1700000000.6a3a8f0c2d6e1f4b.myhost:2,S", "1700000000.6a3a8f0c2d6e1f4b.myhost", 0,
                 kFlagSeen, true, ""},
        // Names in new/ carry no info.
        NameCase{"1700000000.M1P2.host", "1700000000.M1P2.host", 0, 0, false, ""},
        NameCase{"1700000000.M1P2.host,U=3", "1700000000.M1P2.host", 3, 0, false, ""},
        NameCase{"1700000000.V803I1a2M123.host", "1700000000.V803I1a2M123.host", 0, 0, false, ""},
        // Escaped host names, out-of-order and repeated letters, unknown ones.
        NameCase{"1700000000.M1P2.a\\057b\\072c,U=9:2,SFS", "1700000000.M1P2.a\\057b\\072c", 9, kFS,
                 true, ""},
        NameCase{"1700000000.M1P2.host:2,XSa", "1700000000.M1P2.host", 0, kFlagSeen, true, "Xa"},
        // Leading zeros are tolerated.
        NameCase{"x,U=007:2,", "x", 7, 0, true, ""}));

TEST(ParseMaildirNameTest, RejectsNamesThatAreNotMessages) {
  const char* bad[] = {
      "",
      ".",
      "..",
      ".hidden",
      ".1700000000.M1P2.host:2,S",
      "x:1,S",              // obsolete experimental info: left alone
      "x:2",                // no comma
      "x:",                 //
      "x:foo",              //
      "x:2,S:2,F",          // a second info
      ",U=5:2,S",           // empty stem
      ":2,S",               //
      "x,U=:2,",            // tag without a number
      "x,U=abc:2,",         //
      "x,U=12a:2,",         //
      "x,U=-1:2,",          //
      "x,U=+1:2,",          //
      "x,U=0:2,",           // UID 0 does not exist
      "x,U=4294967296:2,",  // too large
  };
  for (const char* name : bad) EXPECT_FALSE(ParseMaildirName(name).has_value()) << name;
  EXPECT_FALSE(ParseMaildirName(std::string_view("a\0b", 3)).has_value());
}

TEST(MakeMaildirNameTest, Formats) {
  EXPECT_EQ(MakeMaildirName("1764079200.M123456P4242Q17.myhost", 42, kFS),
            "1764079200.M123456P4242Q17.myhost,U=42:2,FS");
  EXPECT_EQ(MakeMaildirName("s", 0, 0), "s:2,");
  EXPECT_EQ(MakeMaildirName("s", 1, 0x3f), "s,U=1:2,DFPRST");
  EXPECT_EQ(MakeMaildirName("s", 1, kFlagSeen, "ln"), "s,U=1:2,Sln");
  EXPECT_EQ(MakeMaildirName("s", 1, kFS, "aXa"), "s,U=1:2,FSXa");
  EXPECT_EQ(MakeMaildirName("s", 1, kFS, ""), MakeMaildirName("s", 1, kFS));
}

TEST(NewStemTest, UniqueAndSafe) {
  const std::regex form(R"(\d+\.M\d{1,6}P\d+Q\d+\..+)");
  std::set<std::string> stems;
  for (int i = 0; i < 10000; ++i) {
    std::string stem = NewStem();
    EXPECT_EQ(stem.find('/'), std::string::npos) << stem;
    EXPECT_EQ(stem.find(':'), std::string::npos) << stem;
    EXPECT_EQ(stem.find(",U="), std::string::npos) << stem;
    EXPECT_NE(stem.front(), '.');
    EXPECT_TRUE(std::regex_match(stem, form)) << stem;
    std::optional<MaildirName> parsed = ParseMaildirName(MakeMaildirName(stem, 5, kFlagSeen));
    ASSERT_TRUE(parsed.has_value());
    EXPECT_EQ(parsed->stem, stem);
    stems.insert(std::move(stem));
  }
  EXPECT_EQ(stems.size(), 10000u);
}

TEST(NewStemTest, UniqueAcrossThreads) {
  constexpr int kThreads = 4;
  constexpr int kPerThread = 2500;
  std::vector<std::vector<std::string>> results(kThreads);
  std::vector<std::thread> threads;
  threads.reserve(kThreads);
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&results, t] {
      for (int i = 0; i < kPerThread; ++i) results[t].push_back(NewStem());
    });
  }
  for (std::thread& thread : threads) thread.join();
  std::set<std::string> all;
  for (const auto& list : results) all.insert(list.begin(), list.end());
  EXPECT_EQ(all.size(), static_cast<size_t>(kThreads * kPerThread));
}

// The host name is escaped ('/', ':', ','). Runs in a re-executed child
// (threadsafe death-test style) so that NewStem's cached host name is fresh,
// in its own UTS namespace so that changing the host name is harmless.
TEST(NewStemTest, EscapesTheHostName) {
  pid_t probe = ::fork();
  ASSERT_GE(probe, 0);
  if (probe == 0) _exit(::unshare(CLONE_NEWUTS) == 0 ? 0 : 1);
  int wstatus = 0;
  ASSERT_EQ(::waitpid(probe, &wstatus, 0), probe);
  if (!WIFEXITED(wstatus) || WEXITSTATUS(wstatus) != 0) {
    GTEST_SKIP() << "cannot create a UTS namespace here";
  }
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(
      {
        const char host[] = "mail/host:1,x";
        if (::unshare(CLONE_NEWUTS) != 0 || ::sethostname(host, sizeof(host) - 1) != 0) {
          _exit(2);
        }
        std::string stem = NewStem();
        const std::string want = ".mail\\057host\\0721\\054x";
        bool ok = stem.size() > want.size() &&
                  stem.compare(stem.size() - want.size(), want.size(), want) == 0;
        _exit(ok ? 0 : 1);
      },
      ::testing::ExitedWithCode(0), "");
}

// --- Folders.

TEST(MaildirFolderTest, OpenCreatesPrivateDirectoriesAndParents) {
  TempDir dir;
  std::string path = dir.path() + "/a/b/Mail";
  Result<std::unique_ptr<MaildirFolder>> missing = MaildirFolder::Open(path, false);
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.error().kind, ErrorKind::kIo);
  EXPECT_NE(missing.error().message.find(path + "/cur"), std::string::npos)
      << missing.error().message;

  Result<std::unique_ptr<MaildirFolder>> created = MaildirFolder::Open(path + "//", true);
  ASSERT_TRUE(created.ok()) << created.error().message;
  EXPECT_EQ((*created)->path(), path);
  for (const char* sub : {"", "/cur", "/new", "/tmp"}) {
    struct stat st {};
    ASSERT_EQ(::stat((path + sub).c_str(), &st), 0) << sub;
    EXPECT_TRUE(S_ISDIR(st.st_mode));
    EXPECT_EQ(st.st_mode & 07777, 0700u) << sub;
  }
  // Existing: opening again, with or without create, works.
  EXPECT_TRUE(MaildirFolder::Open(path, true).ok());
  EXPECT_TRUE(MaildirFolder::Open(path, false).ok());
}

TEST(MaildirFolderTest, OpenRejectsAFileInPlaceOfASubdirectory) {
  TempDir dir;
  std::string path = dir.path() + "/m";
  ASSERT_TRUE(fs::create_directories(path + "/cur"));
  ASSERT_TRUE(fs::create_directories(path + "/new"));
  std::ofstream(path + "/tmp") << "x";
  Result<std::unique_ptr<MaildirFolder>> folder = MaildirFolder::Open(path, false);
  ASSERT_FALSE(folder.ok());
  EXPECT_EQ(folder.error().kind, ErrorKind::kIo);
  EXPECT_NE(folder.error().message.find(path + "/tmp: not a directory"), std::string::npos)
      << folder.error().message;
  Result<std::unique_ptr<MaildirFolder>> create = MaildirFolder::Open(path, true);
  EXPECT_FALSE(create.ok());
}

// Only regular files with message names are mail: links, FIFOs, sockets,
// devices, subdirectories and malformed names are listed as refused, and
// reading one never follows a link nor waits on a FIFO (issue 19).
TEST(MaildirFolderTest, ScanRefusesWhatIsNoMessageAndDigestNeverFollowsOrBlocks) {
  TempDir dir;
  Result<std::unique_ptr<MaildirFolder>> opened = MaildirFolder::Open(dir.path() + "/m", true);
  ASSERT_TRUE(opened.ok()) << opened.error().message;
  MaildirFolder& folder = **opened;
  const std::string cur = folder.path() + "/cur/";
  std::ofstream(dir.path() + "/secret") << "secret\n";
  std::ofstream(cur + "good:2,S") << "Subject: x\n\nbody\n";
  fs::create_symlink(dir.path() + "/secret", cur + "link:2,S");
  fs::create_symlink("/dev/zero", cur + "zero:2,S");
  ASSERT_EQ(::mkfifo((cur + "fifo:2,S").c_str(), 0600), 0);
  fs::create_directory(cur + "sub:2,S");
  std::ofstream(cur + "old:1,S") << "x";
  std::ofstream(cur + ".hidden") << "x";

  std::vector<MaildirFolder::RefusedEntry> refused;
  Result<std::vector<MaildirFolder::Entry>> entries = folder.Scan(&refused);
  ASSERT_TRUE(entries.ok()) << entries.error().message;
  ASSERT_EQ(entries->size(), 1u);
  EXPECT_EQ((*entries)[0].file_name, "good:2,S");
  std::map<std::string, std::string> reasons;
  for (const MaildirFolder::RefusedEntry& entry : refused) reasons[entry.file_name] = entry.reason;
  EXPECT_EQ(reasons.size(), 5u);
  EXPECT_EQ(reasons["link:2,S"], "a symbolic link, not a file");
  EXPECT_EQ(reasons["zero:2,S"], "a symbolic link, not a file");
  EXPECT_EQ(reasons["fifo:2,S"], "a FIFO, not a file");
  EXPECT_EQ(reasons["sub:2,S"], "a directory, not a file");
  EXPECT_EQ(reasons["old:1,S"], "its name is not a Maildir message name");

  for (const char* name : {"link:2,S", "zero:2,S", "fifo:2,S", "sub:2,S"}) {
    Result<std::pair<uint64_t, uint64_t>> digest = folder.DigestOf(name, true);
    ASSERT_FALSE(digest.ok()) << name;
    EXPECT_TRUE(IsNotRegularFile(digest.error())) << name << ": " << digest.error().message;
  }
  Result<std::pair<uint64_t, uint64_t>> gone = folder.DigestOf("gone:2,S", true);
  ASSERT_FALSE(gone.ok());
  EXPECT_EQ(gone.error().os_errno, ENOENT);
  EXPECT_TRUE(folder.DigestOf("good:2,S", true).ok());
}

TEST(MaildirFolderTest, OpenWithARootRefusesSymlinkedFolders) {
  TempDir dir;
  const std::string root = dir.path() + "/root";
  const std::string elsewhere = dir.path() + "/elsewhere";
  for (const char* sub : {"/cur", "/new", "/tmp"}) fs::create_directories(elsewhere + sub);
  fs::create_directories(root);
  fs::create_symlink(elsewhere, root + "/Ext");
  fs::create_symlink(elsewhere, root + "/Parent");
  for (const std::string& path : {root + "/Ext", root + "/Parent/Child"}) {
    for (bool create : {false, true}) {
      Result<std::unique_ptr<MaildirFolder>> folder = MaildirFolder::Open(path, create, root);
      ASSERT_FALSE(folder.ok()) << path;
      EXPECT_EQ(folder.error().os_errno, ELOOP) << folder.error().message;
    }
  }
  EXPECT_FALSE(fs::exists(elsewhere + "/Child"));
  // A symlinked cur/ is refused too; the root itself may be a link.
  fs::create_directories(root + "/Odd/new");
  fs::create_directories(root + "/Odd/tmp");
  fs::create_symlink(elsewhere + "/cur", root + "/Odd/cur");
  EXPECT_FALSE(MaildirFolder::Open(root + "/Odd", false, root).ok());
  fs::create_symlink(root, dir.path() + "/alias");
  EXPECT_TRUE(MaildirFolder::Open(dir.path() + "/alias/INBOX", true, dir.path() + "/alias").ok());
}

TEST(TmpMessageTest, ConvertsCrlfAtEveryChunkSplit) {
  TempDir dir;
  auto folder = OpenFolder(dir.path() + "/m");
  ASSERT_TRUE(folder);
  // CRLF, CR CR LF, lone CRs, NUL and 8-bit bytes, a CR at the very end.
  const char kInput[] = "a\r\nb\r\r\nc\rd\r\n\r\n\0\xff\x80\r\r\r\n\n\r\ne\r\0\rx\r";
  const char kExpected[] = "a\nb\r\nc\rd\n\n\0\xff\x80\r\r\n\n\ne\r\0\rx\r";
  const std::string input(kInput, sizeof(kInput) - 1);
  const std::string expected(kExpected, sizeof(kExpected) - 1);
  ASSERT_EQ(CrlfToLf(input), expected);
  auto check = [&](const std::vector<std::string_view>& chunks, const std::string& label) {
    Result<std::unique_ptr<TmpMessage>> message = folder->BeginMessage();
    ASSERT_TRUE(message.ok()) << message.error().message;
    for (std::string_view chunk : chunks) ASSERT_TRUE((*message)->Write(chunk).ok()) << label;
    ASSERT_TRUE((*message)->Finish().ok());
    EXPECT_EQ(ReadFile(folder->path() + "/tmp/" + (*message)->stem()), expected) << label;
    EXPECT_EQ((*message)->size(), expected.size()) << label;
    EXPECT_EQ((*message)->digest(), Xxh3(expected)) << label;
  };
  std::string_view all = input;
  for (size_t i = 0; i <= all.size(); ++i) {
    for (size_t j = i; j <= all.size(); ++j) {
      check({all.substr(0, i), all.substr(i, j - i), all.substr(j)},
            "splits at " + std::to_string(i) + ", " + std::to_string(j));
    }
  }
  std::vector<std::string_view> bytes;
  for (size_t i = 0; i < all.size(); ++i) bytes.push_back(all.substr(i, 1));
  check(bytes, "one byte at a time");
  // Undelivered messages left nothing behind.
  EXPECT_TRUE(ListDir(folder->path() + "/tmp").empty());
}

TEST(TmpMessageTest, RandomChunksAcrossBufferBoundaries) {
  TempDir dir;
  auto folder = OpenFolder(dir.path() + "/m");
  ASSERT_TRUE(folder);
  std::mt19937 rng(12345);
  std::string input(300 * 1024, '\0');
  const char alphabet[] = {'\r', '\n', 'a', '\0', '\xff'};
  for (char& c : input) c = alphabet[rng() % sizeof(alphabet)];
  // CRs exactly at the first buffer boundaries of the converted stream too.
  input[65535] = '\r';
  input[65536] = '\n';
  const std::string expected = CrlfToLf(input);
  for (int round = 0; round < 20; ++round) {
    Result<std::unique_ptr<TmpMessage>> message = folder->BeginMessage();
    ASSERT_TRUE(message.ok());
    size_t pos = 0;
    while (pos < input.size()) {
      size_t n = round == 0 ? 65536 : rng() % 140000;
      n = std::min(n, input.size() - pos);
      ASSERT_TRUE((*message)->Write(std::string_view(input).substr(pos, n)).ok());
      pos += n;
    }
    ASSERT_TRUE((*message)->Finish().ok());
    ASSERT_EQ(ReadFile(folder->path() + "/tmp/" + (*message)->stem()), expected)
        << "round " << round;
    EXPECT_EQ((*message)->digest(), Xxh3(expected));
  }
}

TEST(TmpMessageTest, LargeMessageStreamsInBoundedMemory) {
  TempDir dir;
  auto folder = OpenFolder(dir.path() + "/m");
  ASSERT_TRUE(folder);
  constexpr size_t kTotal = 20 * 1024 * 1024;
  constexpr size_t kChunk = 64 * 1024;
  std::string chunk(kChunk, 'x');
  for (size_t i = 76; i < kChunk; i += 78) {  // 76-byte lines ending in CRLF
    chunk[i] = '\r';
    chunk[i + 1] = '\n';
  }
  chunk[kChunk - 1] = '\r';  // and a CRLF split across every chunk pair
  chunk[0] = '\n';
  Result<std::unique_ptr<TmpMessage>> message = folder->BeginMessage();
  ASSERT_TRUE(message.ok());
  XXH3_state_t* expected_hash = XXH3_createState();
  ASSERT_NE(expected_hash, nullptr);
  ASSERT_EQ(XXH3_64bits_reset(expected_hash), XXH_OK);
  // What each chunk stores: its last CR waits for the next chunk's LF.
  const std::string first = CrlfToLf(chunk.substr(0, kChunk - 1));
  const std::string later = CrlfToLf("\r" + chunk.substr(0, kChunk - 1));
  uint64_t expected_size = 0;
  // Nothing in the loop allocates (ASan's quarantine would count it).
  size_t before = ResidentBytes();
  for (size_t written = 0; written < kTotal; written += kChunk) {
    ASSERT_TRUE((*message)->Write(chunk).ok());
    const std::string& stored = written == 0 ? first : later;
    (void)XXH3_64bits_update(expected_hash, stored.data(), stored.size());
    expected_size += stored.size();
  }
  ASSERT_TRUE((*message)->Finish().ok());
  size_t after = ResidentBytes();
  (void)XXH3_64bits_update(expected_hash, "\r", 1);  // the final lone CR
  expected_size += 1;
  uint64_t expected_digest = XXH3_64bits_digest(expected_hash);
  XXH3_freeState(expected_hash);
  EXPECT_LT(after > before ? after - before : 0, 8u * 1024 * 1024);
  EXPECT_EQ((*message)->size(), expected_size);
  EXPECT_EQ((*message)->digest(), expected_digest);

  DeliveryBatch batch;
  batch.Add({folder.get(), std::move(message).value(), 7, kFlagSeen, 0});
  ASSERT_TRUE(batch.Deliver().ok());
  Result<std::pair<uint64_t, uint64_t>> digest = folder->DigestOf(batch.delivered_names()[0], true);
  ASSERT_TRUE(digest.ok()) << digest.error().message;
  EXPECT_EQ(digest->first, expected_digest);
  EXPECT_EQ(digest->second, expected_size);
}

TEST(TmpMessageTest, UnfinishedOrUndeliveredMessagesLeaveNoFile) {
  TempDir dir;
  auto folder = OpenFolder(dir.path() + "/m");
  ASSERT_TRUE(folder);
  {
    Result<std::unique_ptr<TmpMessage>> message = folder->BeginMessage();
    ASSERT_TRUE(message.ok());
    ASSERT_TRUE((*message)->Write("Subject: x\r\n\r\nbody\r").ok());
    EXPECT_EQ(ListDir(folder->path() + "/tmp"), std::vector<std::string>{(*message)->stem()});
  }
  EXPECT_TRUE(ListDir(folder->path() + "/tmp").empty());
  {
    auto message = WriteMessage(*folder, "finished but never delivered\r\n");
    ASSERT_TRUE(message);
    EXPECT_EQ(ListDir(folder->path() + "/tmp").size(), 1u);
  }
  EXPECT_TRUE(ListDir(folder->path() + "/tmp").empty());
}

TEST(TmpMessageTest, WriteAfterFinishIsRefusedAndFinishIsIdempotent) {
  TempDir dir;
  auto folder = OpenFolder(dir.path() + "/m");
  ASSERT_TRUE(folder);
  auto message = WriteMessage(*folder, "a\r");
  ASSERT_TRUE(message);
  EXPECT_TRUE(message->Finish().ok());
  EXPECT_EQ(message->size(), 2u);  // the lone CR at the end is kept
  Status late = message->Write("more");
  ASSERT_FALSE(late.ok());
  EXPECT_EQ(late.error().kind, ErrorKind::kInternal);
}

TEST(DeliveryBatchTest, SeenGoesToCurOthersToNewWithNamesAndTimes) {
  TempDir dir;
  auto folder = OpenFolder(dir.path() + "/m");
  ASSERT_TRUE(folder);
  const int64_t kInternalDate = 1600000000;  // 2020-09-13
  DeliveryBatch batch;
  EXPECT_TRUE(batch.empty());
  auto seen = WriteMessage(*folder, "seen\r\n");
  auto unseen = WriteMessage(*folder, "unseen\r\n");
  auto plain = WriteMessage(*folder, "plain\r\n");
  ASSERT_TRUE(seen && unseen && plain);
  std::string seen_stem = seen->stem();
  std::string unseen_stem = unseen->stem();
  std::string plain_stem = plain->stem();
  batch.Add({folder.get(), std::move(seen), 10, kFlagSeen | kFlagAnswered, kInternalDate});
  batch.Add({folder.get(), std::move(unseen), 11, kFlagFlagged, kInternalDate});
  batch.Add({folder.get(), std::move(plain), 12, 0, 0});
  EXPECT_EQ(batch.size(), 3u);
  int64_t start = std::time(nullptr);
  Status status = batch.Deliver();
  ASSERT_TRUE(status.ok()) << status.error().message;

  ASSERT_EQ(batch.delivered_names().size(), 3u);
  EXPECT_EQ(batch.delivered_names()[0], seen_stem + ",U=10:2,RS");
  EXPECT_EQ(batch.delivered_names()[1], unseen_stem + ",U=11:2,F");
  EXPECT_EQ(batch.delivered_names()[2], plain_stem + ",U=12:2,");
  EXPECT_EQ(ListDir(folder->path() + "/cur"), std::vector<std::string>{batch.delivered_names()[0]});
  std::vector<std::string> in_new = {batch.delivered_names()[1], batch.delivered_names()[2]};
  std::sort(in_new.begin(), in_new.end());
  EXPECT_EQ(ListDir(folder->path() + "/new"), in_new);
  EXPECT_TRUE(ListDir(folder->path() + "/tmp").empty());

  // Times first: reading the file would move its atime.
  struct stat st {};
  ASSERT_EQ(::stat((folder->path() + "/cur/" + batch.delivered_names()[0]).c_str(), &st), 0);
  EXPECT_EQ(st.st_mtim.tv_sec, kInternalDate);
  EXPECT_EQ(st.st_atim.tv_sec, kInternalDate);
  ASSERT_EQ(::stat((folder->path() + "/new/" + batch.delivered_names()[1]).c_str(), &st), 0);
  EXPECT_EQ(st.st_mtim.tv_sec, kInternalDate);
  ASSERT_EQ(::stat((folder->path() + "/new/" + batch.delivered_names()[2]).c_str(), &st), 0);
  EXPECT_GE(st.st_mtim.tv_sec, start - 5);  // mtime 0: left alone
  EXPECT_EQ(ReadFile(folder->path() + "/cur/" + batch.delivered_names()[0]), "seen\n");

  // The messages are kept for the caller, and destroying them after a
  // delivery removes nothing.
  EXPECT_EQ(batch.items()[0].uid, 10u);
  batch.Clear();
  EXPECT_TRUE(batch.empty());
  EXPECT_EQ(ListDir(folder->path() + "/cur").size(), 1u);
  EXPECT_EQ(ListDir(folder->path() + "/new").size(), 2u);

  // What Scan reports matches what was delivered.
  Result<std::vector<MaildirFolder::Entry>> entries = folder->Scan();
  ASSERT_TRUE(entries.ok());
  ASSERT_EQ(entries->size(), 3u);
  for (const MaildirFolder::Entry& entry : *entries) {
    EXPECT_EQ(entry.in_cur, entry.name.uid == 10) << entry.file_name;
    EXPECT_TRUE(entry.name.has_info);
  }
}

// Gmail labels: a message stored in one label folder is hard-linked into
// another, not copied.
TEST(DeliveryBatchTest, LinkedMessageSharesTheStoredFile) {
  TempDir dir;
  auto inbox = OpenFolder(dir.path() + "/INBOX");
  auto work = OpenFolder(dir.path() + "/Work");
  ASSERT_TRUE(inbox && work);
  auto original = WriteMessage(*inbox, "Subject: once\r\n\r\nbody\r\n");
  ASSERT_TRUE(original);
  const uint64_t size = original->size();
  const uint64_t digest = original->digest();
  DeliveryBatch first;
  first.Add({inbox.get(), std::move(original), 5, kFlagSeen, 1700000000});
  ASSERT_TRUE(first.Deliver().ok());
  const std::string source = inbox->path() + "/cur/" + first.delivered_names()[0];

  Result<std::unique_ptr<TmpMessage>> linked = work->LinkMessage(source, size, digest);
  ASSERT_TRUE(linked.ok()) << linked.error().message;
  EXPECT_EQ((*linked)->size(), size);
  EXPECT_EQ((*linked)->digest(), digest);
  EXPECT_TRUE((*linked)->Finish().ok());  // already finished: a no-op
  const std::string stem = (*linked)->stem();
  DeliveryBatch second;
  second.Add({work.get(), std::move(linked).value(), 9, kFlagSeen | kFlagFlagged, 1700000000});
  Status delivered = second.Deliver();
  ASSERT_TRUE(delivered.ok()) << delivered.error().message;
  EXPECT_EQ(second.delivered_names()[0], stem + ",U=9:2,FS");
  const std::string target = work->path() + "/cur/" + second.delivered_names()[0];
  struct stat a {};
  struct stat b {};
  ASSERT_EQ(::stat(source.c_str(), &a), 0);
  ASSERT_EQ(::stat(target.c_str(), &b), 0);
  EXPECT_EQ(a.st_ino, b.st_ino);
  EXPECT_EQ(b.st_nlink, 2u);
  EXPECT_EQ(ReadFile(target), "Subject: once\n\nbody\n");
  EXPECT_TRUE(ListDir(work->path() + "/tmp").empty());

  // A link never delivered is removed from tmp/; the source stays.
  {
    Result<std::unique_ptr<TmpMessage>> dropped = work->LinkMessage(source, size, digest);
    ASSERT_TRUE(dropped.ok());
  }
  EXPECT_TRUE(ListDir(work->path() + "/tmp").empty());
  ASSERT_EQ(::stat(source.c_str(), &a), 0);
  EXPECT_EQ(a.st_nlink, 2u);

  // A source a reader renamed meanwhile: an error naming it (the caller
  // downloads instead).
  Result<std::unique_ptr<TmpMessage>> missing = work->LinkMessage(source + "-gone", size, digest);
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.error().kind, ErrorKind::kIo);
  EXPECT_NE(missing.error().message.find(source + "-gone"), std::string::npos);
}

TEST(DeliveryBatchTest, HundredMessagesAcrossTwoFolders) {
  TempDir dir;
  auto inbox = OpenFolder(dir.path() + "/INBOX");
  auto archive = OpenFolder(dir.path() + "/Archive/2023");
  ASSERT_TRUE(inbox && archive);
  DeliveryBatch batch;
  std::vector<std::string> bodies;
  for (uint32_t i = 0; i < 100; ++i) {
    MaildirFolder* folder = i % 2 == 0 ? inbox.get() : archive.get();
    bodies.push_back("Message-ID: <" + std::to_string(i) + "@x>\r\n\r\nbody " + std::to_string(i) +
                     "\r\n");
    auto message = WriteMessage(*folder, bodies.back());
    ASSERT_TRUE(message);
    batch.Add({folder, std::move(message), i + 1, i % 3 == 0 ? kFlagSeen : 0u,
               1700000000 + static_cast<int64_t>(i)});
  }
  Status status = batch.Deliver();
  ASSERT_TRUE(status.ok()) << status.error().message;
  ASSERT_EQ(batch.delivered_names().size(), 100u);
  for (uint32_t i = 0; i < 100; ++i) {
    const DeliveryBatch::Item& item = batch.items()[i];
    bool in_cur = (item.flags & kFlagSeen) != 0;
    std::string path =
        item.folder->path() + (in_cur ? "/cur/" : "/new/") + batch.delivered_names()[i];
    EXPECT_EQ(ReadFile(path), CrlfToLf(bodies[i])) << path;
    Result<std::pair<uint64_t, uint64_t>> digest =
        item.folder->DigestOf(batch.delivered_names()[i], in_cur);
    ASSERT_TRUE(digest.ok());
    EXPECT_EQ(digest->first, item.message->digest());
    EXPECT_EQ(digest->second, item.message->size());
  }
  for (MaildirFolder* folder : {inbox.get(), archive.get()}) {
    EXPECT_TRUE(ListDir(folder->path() + "/tmp").empty());
    Result<std::vector<MaildirFolder::Entry>> entries = folder->Scan();
    ASSERT_TRUE(entries.ok());
    EXPECT_EQ(entries->size(), 50u);
  }
}

TEST(DeliveryBatchTest, RenameFailureKeepsDeliveredFilesAndRemovesTheRest) {
  TempDir dir;
  auto good = OpenFolder(dir.path() + "/good");
  auto broken = OpenFolder(dir.path() + "/broken");
  ASSERT_TRUE(good && broken);
  DeliveryBatch batch;
  batch.Add({good.get(), WriteMessage(*good, "one"), 1, 0, 0});
  batch.Add({broken.get(), WriteMessage(*broken, "two"), 2, 0, 0});
  batch.Add({good.get(), WriteMessage(*good, "three"), 3, 0, 0});
  std::string failing_tmp = broken->path() + "/tmp/" + batch.items()[1].message->stem();
  ASSERT_EQ(::rmdir((broken->path() + "/new").c_str()), 0);

  Status status = batch.Deliver();
  ASSERT_FALSE(status.ok());
  EXPECT_EQ(status.error().kind, ErrorKind::kIo);
  EXPECT_NE(status.error().message.find(failing_tmp), std::string::npos) << status.error().message;
  EXPECT_NE(status.error().message.find("No such file or directory"), std::string::npos);
  ASSERT_EQ(batch.delivered_names().size(), 1u);
  EXPECT_EQ(ListDir(good->path() + "/new"), batch.delivered_names());
  EXPECT_TRUE(ListDir(good->path() + "/tmp").empty());
  EXPECT_TRUE(ListDir(broken->path() + "/tmp").empty());
  batch.Clear();
  EXPECT_EQ(ListDir(good->path() + "/new").size(), 1u);
}

class FakeMessage : public TmpMessage {
 public:
  Status Write(std::string_view /*chunk*/) override { return Status::Ok(); }
  Status Finish() override { return Status::Ok(); }
  const std::string& stem() const override { return stem_; }
  uint64_t size() const override { return 0; }
  uint64_t digest() const override { return 0; }

 private:
  std::string stem_ = "fake";
};

TEST(DeliveryBatchTest, RefusesForeignOrUnfinishedMessagesWithoutTouchingFiles) {
  TempDir dir;
  auto folder = OpenFolder(dir.path() + "/m");
  ASSERT_TRUE(folder);
  {
    DeliveryBatch batch;
    batch.Add({folder.get(), WriteMessage(*folder, "ok"), 1, 0, 0});
    batch.Add({folder.get(), std::make_unique<FakeMessage>(), 2, 0, 0});
    Status status = batch.Deliver();
    ASSERT_FALSE(status.ok());
    EXPECT_EQ(status.error().kind, ErrorKind::kInternal);
    EXPECT_EQ(ListDir(folder->path() + "/tmp").size(), 1u);
    EXPECT_TRUE(ListDir(folder->path() + "/new").empty());
  }
  {
    Result<std::unique_ptr<TmpMessage>> unfinished = folder->BeginMessage();
    ASSERT_TRUE(unfinished.ok());
    DeliveryBatch batch;
    batch.Add({folder.get(), std::move(unfinished).value(), 1, 0, 0});
    Status status = batch.Deliver();
    ASSERT_FALSE(status.ok());
    EXPECT_EQ(status.error().kind, ErrorKind::kInternal);
    EXPECT_EQ(ListDir(folder->path() + "/tmp").size(), 1u);
  }
  EXPECT_TRUE(ListDir(folder->path() + "/tmp").empty());
  {
    DeliveryBatch batch;
    batch.Add({nullptr, WriteMessage(*folder, "no folder"), 1, 0, 0});
    EXPECT_FALSE(batch.Deliver().ok());
  }
  DeliveryBatch empty;
  EXPECT_TRUE(empty.Deliver().ok());
}

TEST(MaildirFolderTest, CleanTmpRemovesOnlyOldFiles) {
  TempDir dir;
  auto folder = OpenFolder(dir.path() + "/m");
  ASSERT_TRUE(folder);
  const int64_t now = std::time(nullptr);
  const std::string tmp = folder->path() + "/tmp/";
  auto make = [&](const std::string& name, int64_t mtime) {
    std::ofstream(tmp + name) << "leftover";
    const timespec times[2] = {{static_cast<time_t>(mtime), 0}, {static_cast<time_t>(mtime), 0}};
    ASSERT_EQ(::utimensat(AT_FDCWD, (tmp + name).c_str(), times, 0), 0);
  };
  make("old", now - 3 * 86400);
  make("recent", now - 3600);
  make(".old-dotfile", now - 3 * 86400);  // not ours to judge
  ASSERT_TRUE(fs::create_directory(tmp + "olddir"));
  const timespec old_times[2] = {{static_cast<time_t>(now - 3 * 86400), 0},
                                 {static_cast<time_t>(now - 3 * 86400), 0}};
  ASSERT_EQ(::utimensat(AT_FDCWD, (tmp + "olddir").c_str(), old_times, 0), 0);
  // A message being written right now.
  Result<std::unique_ptr<TmpMessage>> writing = folder->BeginMessage();
  ASSERT_TRUE(writing.ok());

  // One of our own leftovers, from a run a minute ago.
  const std::string own = NewStem();
  make(own, now - 60);
  ASSERT_TRUE(IsOwnStem(own));
  EXPECT_FALSE(IsOwnStem("old"));

  // Before a run that started now: our leftover goes at once, another
  // program's file only once it is 36 hours older than the run.
  Result<size_t> removed = folder->CleanTmp(now);
  ASSERT_TRUE(removed.ok()) << removed.error().message;
  EXPECT_EQ(*removed, 2u);  // "old" (3 days) and our own leftover
  std::vector<std::string> left = {".old-dotfile", "olddir", "recent", (*writing)->stem()};
  std::sort(left.begin(), left.end());
  EXPECT_EQ(ListDir(tmp), left);

  removed = folder->CleanTmp(now - 60);
  ASSERT_TRUE(removed.ok());
  EXPECT_EQ(*removed, 0u);  // "recent" is another program's; ours is in progress
  EXPECT_TRUE((*writing)->Write("still fine").ok());
}

TEST(MaildirFolderTest, CleanTmpRemovesAFreshFileOfAProcessThatIsGone) {
  TempDir dir;
  auto folder = OpenFolder(dir.path() + "/m");
  ASSERT_TRUE(folder);
  pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) ::_exit(0);
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  // Stems as a killed run (that pid, now gone) and a running one (pid 1,
  // always there) would have written them, this very second.
  auto stem_of = [](pid_t pid) {
    std::string stem = NewStem();
    size_t p = stem.find('P');
    size_t q = stem.find('Q');
    return stem.substr(0, p + 1) + std::to_string(pid) + stem.substr(q);
  };
  const std::string killed = stem_of(child);
  const std::string running = stem_of(1);
  ASSERT_EQ(OwnStemWriter(killed), std::optional<pid_t>(child));
  ASSERT_EQ(OwnStemWriter(running), std::optional<pid_t>(1));
  EXPECT_EQ(OwnStemWriter("1700000000.M1P2.otherhost"), std::nullopt);
  std::ofstream(folder->path() + "/tmp/" + killed) << "half a message";
  std::ofstream(folder->path() + "/tmp/" + running) << "half a message";

  Result<size_t> removed = folder->CleanTmp(std::time(nullptr) - 60);
  ASSERT_TRUE(removed.ok()) << removed.error().message;
  EXPECT_EQ(*removed, 1u);
  EXPECT_FALSE(fs::exists(folder->path() + "/tmp/" + killed));
  EXPECT_TRUE(fs::exists(folder->path() + "/tmp/" + running));
}

TEST(MaildirFolderTest, RenameEntryKeepsTheDirectory) {
  TempDir dir;
  auto folder = OpenFolder(dir.path() + "/m");
  ASSERT_TRUE(folder);
  std::ofstream(folder->path() + "/cur/1700000000.M1P2.host,U=5:2,S") << "x";
  Result<std::vector<MaildirFolder::Entry>> entries = folder->Scan();
  ASSERT_TRUE(entries.ok());
  ASSERT_EQ(entries->size(), 1u);
  const MaildirFolder::Entry& entry = (*entries)[0];
  EXPECT_EQ(folder->EntryPath(entry), folder->path() + "/cur/1700000000.M1P2.host,U=5:2,S");
  ASSERT_TRUE(folder->RenameEntry(entry, "1700000000.M1P2.host,U=9:2,S").ok());
  EXPECT_TRUE(fs::exists(folder->path() + "/cur/1700000000.M1P2.host,U=9:2,S"));
  EXPECT_FALSE(fs::exists(folder->path() + "/cur/1700000000.M1P2.host,U=5:2,S"));
  EXPECT_TRUE(folder->SyncDirectories().ok());
  Status missing = folder->RenameEntry(entry, "other:2,");  // the old name is gone
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.error().kind, ErrorKind::kIo);
  EXPECT_NE(missing.error().message.find("U=5"), std::string::npos) << missing.error().message;
}

TEST(MaildirFolderTest, IfPresentVariantsReportAMissingFileInsteadOfFailing) {
  TempDir dir;
  auto folder = OpenFolder(dir.path() + "/m");
  ASSERT_TRUE(folder);
  std::ofstream(folder->path() + "/new/1700000000.M1P2.host,U=5:2,") << "x";
  // An entry computed from the index, not listed by a Scan.
  MaildirFolder::Entry expected;
  expected.name.stem = "1700000000.M1P2.host";
  expected.name.uid = 5;
  expected.in_cur = false;
  expected.file_name = "1700000000.M1P2.host,U=5:2,";

  Result<bool> renamed = folder->RenameIfPresent(expected, "1700000000.M1P2.host,U=5:2,S", true);
  ASSERT_TRUE(renamed.ok()) << renamed.error().message;
  EXPECT_TRUE(*renamed);
  EXPECT_TRUE(fs::exists(folder->path() + "/cur/1700000000.M1P2.host,U=5:2,S"));
  // A reader renamed it meanwhile (here: we did): false, no error.
  renamed = folder->RenameIfPresent(expected, "1700000000.M1P2.host,U=5:2,F", false);
  ASSERT_TRUE(renamed.ok());
  EXPECT_FALSE(*renamed);
  // Same name: nothing to do, but presence is still reported.
  renamed = folder->RenameIfPresent(expected, expected.file_name, false);
  ASSERT_TRUE(renamed.ok());
  EXPECT_FALSE(*renamed);

  expected.in_cur = true;
  expected.file_name = "1700000000.M1P2.host,U=5:2,S";
  renamed = folder->RenameIfPresent(expected, expected.file_name, true);
  ASSERT_TRUE(renamed.ok());
  EXPECT_TRUE(*renamed);
  Result<bool> removed = folder->RemoveIfPresent(expected);
  ASSERT_TRUE(removed.ok());
  EXPECT_TRUE(*removed);
  EXPECT_FALSE(fs::exists(folder->path() + "/cur/1700000000.M1P2.host,U=5:2,S"));
  removed = folder->RemoveIfPresent(expected);
  ASSERT_TRUE(removed.ok());
  EXPECT_FALSE(*removed);
  EXPECT_TRUE(folder->RemoveEntry(expected).ok());  // gone is not an error there either
}

TEST(MaildirFolderTest, ScanSkipsDotFilesDirectoriesAndJunk) {
  TempDir dir;
  auto folder = OpenFolder(dir.path() + "/m");
  ASSERT_TRUE(folder);
  const std::string cur = folder->path() + "/cur/";
  const std::string nw = folder->path() + "/new/";
  for (const char* name : {"1700000000.M1P2.host,U=17:2,FS", ".hidden", ".1700.M1P2.h:2,S",
                           "junk:1,S", "x,U=abc:2,S", "1700000001.123_4.host:2,S"}) {
    std::ofstream(cur + name) << "x";
  }
  ASSERT_TRUE(fs::create_directory(cur + "subdir"));
  for (const char* name : {"1700000002.M5P6.host", ".nfs000001", "y,U=0"}) {
    std::ofstream(nw + name) << "x";
  }
  Result<std::vector<MaildirFolder::Entry>> entries = folder->Scan();
  ASSERT_TRUE(entries.ok()) << entries.error().message;
  std::vector<std::string> found;
  for (const MaildirFolder::Entry& entry : *entries) {
    found.push_back((entry.in_cur ? "cur/" : "new/") + entry.file_name);
  }
  std::sort(found.begin(), found.end());
  EXPECT_EQ(found, (std::vector<std::string>{"cur/1700000000.M1P2.host,U=17:2,FS",
                                             "cur/1700000001.123_4.host:2,S",
                                             "new/1700000002.M5P6.host"}));
  for (const MaildirFolder::Entry& entry : *entries) {
    if (entry.name.uid == 17) {
      EXPECT_EQ(entry.name.stem, "1700000000.M1P2.host");
      EXPECT_EQ(entry.name.flags, kFS);
    }
  }
}

TEST(MaildirFolderTest, ScanAndDigestReportMissingDirectoriesAndFiles) {
  TempDir dir;
  auto folder = OpenFolder(dir.path() + "/m");
  ASSERT_TRUE(folder);
  Result<std::pair<uint64_t, uint64_t>> missing = folder->DigestOf("nope:2,S", true);
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.error().kind, ErrorKind::kIo);
  EXPECT_NE(missing.error().message.find(folder->path() + "/cur/nope:2,S"), std::string::npos);
  Result<std::pair<uint64_t, uint64_t>> escape = folder->DigestOf("../tmp/x", false);
  ASSERT_FALSE(escape.ok());
  EXPECT_EQ(escape.error().kind, ErrorKind::kInternal);

  { std::ofstream empty_file(folder->path() + "/new/empty"); }
  Result<std::pair<uint64_t, uint64_t>> empty = folder->DigestOf("empty", false);
  ASSERT_TRUE(empty.ok());
  EXPECT_EQ(empty->first, Xxh3(""));
  EXPECT_EQ(empty->second, 0u);

  ASSERT_EQ(::rmdir((folder->path() + "/cur").c_str()), 0);
  Result<std::vector<MaildirFolder::Entry>> entries = folder->Scan();
  ASSERT_FALSE(entries.ok());
  EXPECT_EQ(entries.error().kind, ErrorKind::kIo);
  EXPECT_NE(entries.error().message.find(folder->path() + "/cur"), std::string::npos);
}

// A full disk: a 1 MiB tmpfs (needs CAP_SYS_ADMIN; skipped without it).
TEST(TmpMessageTest, NoSpaceLeftIsAnIoErrorNamingTheFile) {
  TempDir dir;
  std::string mount_point = dir.path() + "/small";
  ASSERT_TRUE(fs::create_directory(mount_point));
  if (::mount("tmpfs", mount_point.c_str(), "tmpfs", 0, "size=1m,mode=0700") != 0) {
    GTEST_SKIP() << "cannot mount a tmpfs: " << std::strerror(errno);
  }
  struct Unmount {
    std::string path;
    ~Unmount() { (void)::umount2(path.c_str(), MNT_DETACH); }
  } unmount{mount_point};

  auto folder = OpenFolder(mount_point + "/m");
  ASSERT_TRUE(folder);
  Result<std::unique_ptr<TmpMessage>> message = folder->BeginMessage();
  ASSERT_TRUE(message.ok());
  const std::string path = folder->path() + "/tmp/" + (*message)->stem();
  const std::string chunk(64 * 1024, 'z');
  Status status;
  for (int i = 0; i < 64 && status.ok(); ++i) status = (*message)->Write(chunk);
  if (status.ok()) status = (*message)->Finish();
  ASSERT_FALSE(status.ok());
  EXPECT_EQ(status.error().kind, ErrorKind::kIo);
  EXPECT_EQ(status.error().message, "writing " + path + ": No space left on device");
  // Later calls report the same failure; nothing reached cur/ or new/.
  Status again = (*message)->Finish();
  ASSERT_FALSE(again.ok());
  EXPECT_EQ(again.error().message, status.error().message);
  EXPECT_TRUE(ListDir(folder->path() + "/cur").empty());
  EXPECT_TRUE(ListDir(folder->path() + "/new").empty());
  std::move(message).value().reset();
  EXPECT_TRUE(ListDir(folder->path() + "/tmp").empty());
  // The space is back: a small message fits again.
  auto small = WriteMessage(*folder, "fits\r\n");
  ASSERT_TRUE(small);
}

}  // namespace
}  // namespace mailmirror::store
