// Incremental `mailmirror sync` (issue 4) end to end: remote flag changes and
// expunges reach the Maildir, against a real Dovecot offering QRESYNC and
// CONDSTORE, CONDSTORE only (like Gmail) or neither (like Office 365).
//
// The server is changed as another client would change it, without going
// through mailmirror: doveadm flags add/remove and doveadm expunge (which
// update Dovecot's index and mod-sequences exactly like IMAP STORE/EXPUNGE),
// and `dovecot-fixture add` for new mail. The server's side is read with
// DovecotServer::Messages (doveadm, no IMAP session, so \Seen stays as it
// is), and every local file is compared with it: UIDs, flag letters
// (including P for $Forwarded and T for \Deleted), cur/ versus new/, bytes,
// no extra files, no duplicates. What a run downloaded is counted from the
// server's log (body_count= in Dovecot's imap_logout_format), and what it
// sent from the -vvv protocol trace ("mailmirror: C: A5 EXAMINE ...").
//
// The helpers for the local tree, the server log and child processes are
// shared with sync_test.cc (issue 3's tests) in tests/support/sync_checks.h.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "support/dovecot_fixture.h"
#include "support/run_command.h"
#include "support/sync_checks.h"

namespace mailmirror {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;
using testing::BulkOptions;
using testing::Child;
using testing::ChildExit;
using testing::CommandResult;
using testing::DovecotOptions;
using testing::DovecotServer;
using testing::Excerpt;
using testing::ExpectedLetters;
using testing::FetchesSince;
using testing::FetchStats;
using testing::Join;
using testing::LocalFile;
using testing::LocalTree;
using testing::LogSize;
using testing::ReadFile;
using testing::Report;
using testing::RunCommand;
using testing::RunOptions;
using testing::ScanLocal;
using testing::Seconds;
using testing::ServerMessage;
using testing::ShellQuote;
using testing::SyncCommand;

const std::string kDrafts = "Entw\xC3\xBCrfe";
// A keyword of our own: no Maildir letter, but it must not upset anything.
const std::string kCustomKeyword = "mmcustom";

using Key = std::pair<std::string, uint32_t>;  // folder, UID

// --- Small helpers -------------------------------------------------------------

// Problems sorted so that the worst kinds come first (lost or duplicated
// mail, wrong bytes, then wrong flags, then the wrong directory), so that a
// flood of one minor kind does not hide the rest; with a count per kind.
std::string JoinByKind(std::vector<std::string> problems, size_t max = 40) {
  static const std::vector<std::pair<std::string, std::string>> kKinds = {
      {"lost:", "lost"},
      {"times", "stored twice"},
      {"missing locally", "missing"},
      {"no server message", "no such server message"},
      {"content of", "wrong bytes"},
      {"no ,U=", "no UID"},
      {"flags of", "wrong flags"},
      {"no :2,", "no flags"},
      {" is in ", "wrong directory"},
  };
  auto rank = [](const std::string& problem) {
    for (size_t i = 0; i < kKinds.size(); ++i) {
      if (problem.find(kKinds[i].first) != std::string::npos) return i;
    }
    return kKinds.size();
  };
  std::stable_sort(problems.begin(), problems.end(),
                   [&](const std::string& a, const std::string& b) { return rank(a) < rank(b); });
  std::map<size_t, size_t> per_kind;
  for (const std::string& problem : problems) per_kind[rank(problem)]++;
  std::string text = "  by kind:";
  for (const auto& [kind, count] : per_kind) {
    text += " " + (kind < kKinds.size() ? kKinds[kind].second : std::string("other")) + " " +
            std::to_string(count) + ";";
  }
  text += "\n";
  // At most 8 of each kind.
  std::vector<std::string> shown;
  std::map<size_t, size_t> listed;
  for (const std::string& problem : problems) {
    if (listed[rank(problem)]++ < 8) shown.push_back(problem);
  }
  return text + Join(shown, max);
}

std::string KeyText(const Key& key) { return key.first + " UID " + std::to_string(key.second); }

// --- The local Maildir tree ---------------------------------------------------------

// The messages (folder, UID) whose files are in cur/.
std::set<std::pair<std::string, uint32_t>> InCur(const LocalTree* tree) {
  std::set<std::pair<std::string, uint32_t>> keys;
  if (tree == nullptr) return keys;
  for (const LocalFile& file : tree->files) {
    if (file.uid && file.subdir == "cur") keys.insert({file.folder, *file.uid});
  }
  return keys;
}

std::set<std::string> LocalPaths(const LocalTree& tree) {
  std::set<std::string> paths;
  for (const LocalFile& file : tree.files) paths.insert(file.path);
  return paths;
}

std::string Describe(const LocalTree& tree) {
  std::map<std::string, std::pair<int, int>> per_folder;  // cur, new
  for (const LocalFile& file : tree.files) {
    auto& counts = per_folder[file.folder];
    (file.subdir == "cur" ? counts.first : counts.second)++;
  }
  std::ostringstream text;
  text << "local tree: " << tree.files.size() << " files, " << tree.tmp_files.size()
       << " in tmp/\n";
  for (const std::string& folder : tree.folders) {
    text << "  " << folder << ": cur " << per_folder[folder].first << ", new "
         << per_folder[folder].second << "\n";
  }
  return text.str();
}

// One state of the server's messages: flags and bytes by (folder, UID). The
// bytes are read when the state is taken, so that messages expunged later
// can still be compared.
struct ServerState {
  std::map<Key, std::vector<std::string>> flags;
  std::map<Key, std::string> bytes;
  std::map<Key, std::string> file;  // the server's file, for mtimes
  size_t size() const { return flags.size(); }
};

ServerState TakeState(const std::vector<ServerMessage>& messages) {
  ServerState state;
  for (const ServerMessage& m : messages) {
    const Key key{m.folder, m.uid};
    std::vector<std::string> flags = m.flags;
    std::sort(flags.begin(), flags.end());
    state.flags[key] = flags;
    state.bytes[key] = ReadFile(m.file);
    state.file[key] = m.file;
  }
  return state;
}

// Read mail must be in cur/. Unread mail is in new/, or in cur/ when it was
// there before (`was_in_cur`: read once and marked unread again; mailmirror,
// like mutt, never moves a message back to new/).
void CheckPlace(const LocalFile& file, const std::string& letters, bool was_in_cur,
                std::vector<std::string>* problems) {
  const bool seen = letters.find('S') != std::string::npos;
  if (seen && file.subdir != "cur") {
    problems->push_back(file.path + " is in " + file.subdir + "/, want cur/");
  } else if (!seen && file.subdir == "cur" && !was_in_cur) {
    problems->push_back(file.path + " is in cur/, want new/ (unread, and not in cur/ before)");
  }
}

// No message stored in two files, no stem used twice in a folder.
void CheckStoredOnce(const std::map<Key, std::vector<std::string>>& seen_keys,
                     const std::map<std::string, std::vector<std::string>>& seen_stems,
                     std::vector<std::string>* problems) {
  for (const auto& [key, paths] : seen_keys) {
    if (paths.size() > 1) {
      std::string list;
      for (const auto& p : paths) list += "\n    " + p;
      problems->push_back(KeyText(key) + " is stored " + std::to_string(paths.size()) +
                          " times:" + list);
    }
  }
  for (const auto& [stem, paths] : seen_stems) {
    if (paths.size() > 1) {
      problems->push_back("file stem " + stem + " is used " + std::to_string(paths.size()) +
                          " times");
    }
  }
}

// Every difference between the local tree and the server state `want`, one
// line each: exactly one file per server message, right name, place, flags
// and bytes, and no other file.
//
// Read mail must be in cur/. Unread mail must be in new/, except a message
// that was in cur/ in `previous` (the tree before the run, if given): read
// once and marked unread again, it may stay in cur/ (mailmirror, like mutt,
// never moves a message back to new/). Without `previous`, all unread mail
// must be in new/.
std::vector<std::string> CompareExact(const LocalTree& local, const ServerState& want,
                                      const LocalTree* previous = nullptr) {
  const auto was_in_cur = InCur(previous);
  std::vector<std::string> problems;
  std::map<Key, std::vector<std::string>> seen_keys;
  std::map<std::string, std::vector<std::string>> seen_stems;
  for (const LocalFile& file : local.files) {
    seen_stems[file.folder + "/" + file.stem].push_back(file.path);
    if (!file.uid) {
      problems.push_back("no ,U=<uid> in the name of " + file.path);
      continue;
    }
    const Key key{file.folder, *file.uid};
    seen_keys[key].push_back(file.path);
    auto it = want.flags.find(key);
    if (it == want.flags.end()) {
      problems.push_back("no server message " + KeyText(key) + " for " + file.path);
      continue;
    }
    const std::string& bytes = want.bytes.at(key);
    const std::string have = ReadFile(file.path);
    if (have != bytes) {
      problems.push_back("content of " + file.path + " differs from the server's (" +
                         std::to_string(have.size()) + " bytes, want " +
                         std::to_string(bytes.size()) + ")");
    }
    const std::string letters = ExpectedLetters(it->second);
    if (!file.flags) {
      problems.push_back("no :2, info in " + file.path + " (want :2," + letters + ")");
    } else if (*file.flags != letters) {
      problems.push_back("flags of " + file.path + " are \"" + *file.flags + "\", want \"" +
                         letters + "\"");
    }
    CheckPlace(file, letters, was_in_cur.count(key) != 0, &problems);
  }
  CheckStoredOnce(seen_keys, seen_stems, &problems);
  size_t missing = 0;
  for (const auto& [key, flags] : want.flags) {
    if (seen_keys.count(key) == 0 && ++missing <= 20) {
      problems.push_back("missing locally: " + KeyText(key));
    }
  }
  if (missing > 20) problems.push_back("... " + std::to_string(missing - 20) + " more missing");
  return problems;
}

// What must hold at any moment of a run that goes from `before` to `after`
// (e.g. right after a SIGKILL): every file is a message of either state, with
// the right bytes and the flags of one of the two states (in the directory
// those flags call for); no message is stored twice; and no message that is
// on the server in both states is missing (a rename is atomic: there is no
// moment without the file). New messages may be missing, expunged ones may
// still be there.
// As in CompareExact, unread mail in cur/ must have been in cur/ in
// `previous` (if given).
std::vector<std::string> CompareInBetween(const LocalTree& local, const ServerState& before,
                                          const ServerState& after,
                                          const LocalTree* previous = nullptr) {
  const auto was_in_cur = InCur(previous);
  std::vector<std::string> problems;
  std::map<Key, std::vector<std::string>> seen_keys;
  std::map<std::string, std::vector<std::string>> seen_stems;
  for (const LocalFile& file : local.files) {
    seen_stems[file.folder + "/" + file.stem].push_back(file.path);
    if (!file.uid) {
      problems.push_back("no ,U=<uid> in the name of " + file.path);
      continue;
    }
    const Key key{file.folder, *file.uid};
    seen_keys[key].push_back(file.path);
    auto in_before = before.flags.find(key);
    auto in_after = after.flags.find(key);
    if (in_before == before.flags.end() && in_after == after.flags.end()) {
      problems.push_back("no server message " + KeyText(key) + " (before or after) for " +
                         file.path);
      continue;
    }
    const std::string& bytes =
        in_after != after.flags.end() ? after.bytes.at(key) : before.bytes.at(key);
    if (ReadFile(file.path) != bytes) {
      problems.push_back("content of " + file.path + " differs from the server's");
    }
    std::set<std::string> allowed;
    if (in_before != before.flags.end()) allowed.insert(ExpectedLetters(in_before->second));
    if (in_after != after.flags.end()) allowed.insert(ExpectedLetters(in_after->second));
    if (!file.flags || allowed.count(*file.flags) == 0) {
      std::string list;
      for (const auto& a : allowed) list += " \"" + a + "\"";
      problems.push_back("flags of " + file.path + " are " +
                         (file.flags ? "\"" + *file.flags + "\"" : "missing") + ", want one of" +
                         list);
    } else {
      CheckPlace(file, *file.flags, was_in_cur.count(key) != 0, &problems);
    }
  }
  CheckStoredOnce(seen_keys, seen_stems, &problems);
  for (const auto& [key, flags] : before.flags) {
    if (after.flags.count(key) != 0 && seen_keys.count(key) == 0) {
      problems.push_back("lost: " + KeyText(key) + " is on the server but has no local file");
    }
  }
  return problems;
}

// Messages whose flags differ between two server states (a sync must change
// none: it only reads). Messages in only one of them are reported too.
std::vector<std::string> ServerFlagChanges(const ServerState& from, const ServerState& to) {
  auto text = [](const std::vector<std::string>& flags) {
    std::string joined;
    for (const auto& f : flags) joined += (joined.empty() ? "" : " ") + f;
    return "(" + joined + ")";
  };
  std::vector<std::string> changes;
  for (const auto& [key, flags] : from.flags) {
    auto it = to.flags.find(key);
    if (it == to.flags.end()) {
      changes.push_back(KeyText(key) + " disappeared from the server");
    } else if (it->second != flags) {
      changes.push_back(KeyText(key) + " flags " + text(flags) + " -> " + text(it->second));
    }
  }
  for (const auto& [key, flags] : to.flags) {
    if (from.flags.count(key) == 0) changes.push_back(KeyText(key) + " appeared on the server");
  }
  return changes;
}

// --- The -vvv trace and the -v folder lines ---------------------------------------------

// The commands the client sent, from a -vvv trace ("mailmirror: C: A5 EXAMINE
// ...\r\n"), without the tag and the escaped line end.
std::vector<std::string> SentCommands(const std::string& trace) {
  std::vector<std::string> commands;
  std::istringstream lines(trace);
  std::string line;
  while (std::getline(lines, line)) {
    const size_t c = line.find("C: ");
    if (c == std::string::npos) continue;
    std::string command = line.substr(c + 3);
    const size_t space = command.find(' ');
    command = space == std::string::npos ? "" : command.substr(space + 1);  // drop the tag
    if (command.size() >= 4 && command.compare(command.size() - 4, 4, "\\r\\n") == 0) {
      command.resize(command.size() - 4);
    }
    commands.push_back(command);
  }
  return commands;
}

bool StartsWithWord(const std::string& command, const std::string& word) {
  if (command.size() < word.size()) return false;
  for (size_t i = 0; i < word.size(); ++i) {
    if (std::toupper(static_cast<unsigned char>(command[i])) != word[i]) return false;
  }
  return command.size() == word.size() || command[word.size()] == ' ';
}

struct TraceCounts {
  size_t selects = 0;       // SELECT or EXAMINE
  size_t fetches = 0;       // FETCH or UID FETCH
  size_t body_fetches = 0;  // ... with BODY.PEEK[] or BODY[]
  size_t total = 0;
  std::string listing;  // the commands, one per line
};

TraceCounts CountCommands(const std::string& trace) {
  TraceCounts counts;
  for (const std::string& command : SentCommands(trace)) {
    ++counts.total;
    counts.listing += "    " + command.substr(0, 140) + "\n";
    if (StartsWithWord(command, "SELECT") || StartsWithWord(command, "EXAMINE")) ++counts.selects;
    if (StartsWithWord(command, "FETCH") || StartsWithWord(command, "UID FETCH")) {
      ++counts.fetches;
      if (command.find("BODY.PEEK[]") != std::string::npos ||
          command.find("BODY[]") != std::string::npos) {
        ++counts.body_fetches;
      }
    }
  }
  return counts;
}

// The line `mailmirror sync` printed for `folder` of account "test", from
// stdout or (failing that) stderr; "" if none.
std::string FolderLine(const CommandResult& result, const std::string& folder) {
  const std::string prefix = "test: " + folder + ": ";
  for (const std::string* text : {&result.out, &result.err}) {
    std::istringstream lines(*text);
    std::string line;
    while (std::getline(lines, line)) {
      const size_t at = line.find(prefix);
      if (at == 0 || (at != std::string::npos && line.compare(0, 11, "mailmirror:") == 0)) {
        return line.substr(at);
      }
    }
  }
  return "";
}

// The number right before `what` in `line` ("10 flag changes": 10 for "flag
// change"), 0 when `what` is not there or "no" is before it, -1 when there
// is no number before it.
long CountIn(const std::string& line, const std::string& what) {
  const size_t at = line.find(what);
  if (at == std::string::npos) return 0;
  size_t end = at;
  while (end > 0 && line[end - 1] == ' ') --end;
  size_t begin = end;
  while (begin > 0 && std::isdigit(static_cast<unsigned char>(line[begin - 1]))) --begin;
  if (begin == end) {  // "no new messages"
    return end >= 2 && line.compare(end - 2, 2, "no") == 0 ? 0 : -1;
  }
  return std::strtol(line.substr(begin, end - begin).c_str(), nullptr, 10);
}

// --- Fixture ------------------------------------------------------------------------

struct CapabilitySet {
  const char* name;
  std::vector<std::string> hide;
  const char* path;  // the bracketed path a changed folder's line must show
  bool modseq;       // CONDSTORE or QRESYNC offered
};

// For GoogleTest's messages, instead of the object's bytes.
void PrintTo(const CapabilitySet& set, std::ostream* os) { *os << set.name; }

const CapabilitySet kCapabilitySets[] = {
    {"QresyncAndCondstore", {}, "[QRESYNC]", true},
    {"CondstoreOnly", {"QRESYNC"}, "[CONDSTORE]", true},
    {"Neither", {"CONDSTORE", "QRESYNC"}, "[full scan]", false},
};

class IncrementalSyncTest : public ::testing::TestWithParam<CapabilitySet> {
 protected:
  void StartServer(int count) {
    DovecotOptions options;
    options.hide_capabilities = GetParam().hide;
    server_ = DovecotServer::Start(options);
    ASSERT_NE(server_, nullptr);
    ASSERT_TRUE(server_->SeedBulk("alice", {.count = count, .big_mb = 0}));
    dir_ = server_->dir() + "/local";
    fs::create_directories(dir_);
    root_ = dir_ + "/mail";
    config_ = dir_ + "/config.toml";
    std::ofstream out(config_);
    out << testing::AliceAccount(*server_, root_);
  }

  CommandResult Sync(const std::string& flags = "",
                     milliseconds timeout = std::chrono::seconds(60)) {
    RunOptions options;
    options.timeout = timeout;
    return RunCommand(SyncCommand(config_, flags), options);
  }

  ServerState State() {
    auto messages = server_->Messages("alice");
    EXPECT_TRUE(messages);
    return TakeState(messages ? *messages : std::vector<ServerMessage>{});
  }

  // The first, full sync; checks that it mirrored the server and (given the
  // state before) changed nothing there. Returns the server's state.
  ServerState InitialSync(const ServerState* seeded = nullptr) {
    const CommandResult result = Sync();
    EXPECT_EQ(result.exit_code, 0) << Report(result);
    const ServerState after = State();
    if (seeded != nullptr) {
      const std::vector<std::string> changed = ServerFlagChanges(*seeded, after);
      EXPECT_TRUE(changed.empty()) << "the first sync changed the server:\n" << Join(changed);
    }
    const LocalTree tree = ScanLocal(root_);
    const std::vector<std::string> problems = CompareExact(tree, after);
    EXPECT_TRUE(problems.empty()) << "the first sync is not a mirror:\n"
                                  << JoinByKind(problems) << Describe(tree);
    return after;
  }

  // doveadm for alice, as `dovecot-fixture` runs it: no IMAP session, the
  // same index and mod-sequences as an IMAP STORE or EXPUNGE.
  void Doveadm(const std::string& arguments) {
    const std::string command = testing::DoveadmCommand(*server_, "alice", arguments);
    const CommandResult result = RunCommand(command);
    ASSERT_EQ(result.exit_code, 0) << command << "\n" << Report(result);
  }
  void Flags(const std::string& verb, const std::string& flags, const std::string& folder,
             const std::string& uids) {
    Doveadm("flags " + verb + " " + ShellQuote(flags) + " mailbox " + ShellQuote(folder) + " uid " +
            uids);
  }
  void Expunge(const std::string& folder, const std::string& uids) {
    Doveadm("expunge mailbox " + ShellQuote(folder) + " uid " + uids);
  }
  void Append(const std::string& folder, int n, bool seen) {
    const std::string message =
        "From: Other Client <other@example.org>\nTo: alice@example.test\nSubject: appended " +
        std::to_string(n) + " to " + folder + "\nMessage-ID: <appended-" + std::to_string(n) +
        "@mailmirror.test>\nDate: Tue, 02 Jul 2024 09:00:00 +0000\n\nAppended by another client, " +
        (seen ? "already read" : "unread") + ".\n";
    ASSERT_TRUE(server_->AddMessage("alice", folder, message, seen));
  }

  std::unique_ptr<DovecotServer> server_;
  std::string dir_;
  std::string root_;
  std::string config_;
};

// Picks messages for the changes: the first one of `folder` (lowest UID
// first) that `fits` and was not picked before.
class Picker {
 public:
  explicit Picker(const ServerState& state) : state_(state) {}
  uint32_t Pick(const std::string& folder,
                const std::function<bool(const std::vector<std::string>&)>& fits) {
    for (const auto& [key, flags] : state_.flags) {
      if (key.first != folder || used_.count(key) != 0 || !fits(flags)) continue;
      used_.insert(key);
      return key.second;
    }
    ADD_FAILURE() << "no message in " << folder << " fits";
    return 0;
  }

 private:
  const ServerState& state_;
  std::set<Key> used_;
};

auto Without(const std::string& flag) {
  return [flag](const std::vector<std::string>& flags) {
    return std::find(flags.begin(), flags.end(), flag) == flags.end();
  };
}
auto With(const std::string& flag) {
  return [flag](const std::vector<std::string>& flags) {
    return std::find(flags.begin(), flags.end(), flag) != flags.end();
  };
}

// What a folder's line should say after the changes.
struct Expected {
  long letter_changes = 0;   // messages whose Maildir name changes
  long keyword_changes = 0;  // messages with only a keyword without letter changed
  long expunged = 0;
  long appended = 0;
};

// --- Tests ------------------------------------------------------------------------

// Flags changed on some messages (every kind: \Seen added and removed,
// \Flagged added and removed, $Forwarded, \Deleted without expunge, a custom
// keyword, several at once), messages expunged (including the highest UID of
// a folder and one whose flags changed as well) and appended, by another
// client; the next sync makes the Maildir match exactly, renaming files
// rather than downloading them again, and says which path it took.
TEST_P(IncrementalSyncTest, RemoteFlagChangesExpungesAndAppendsMakeAnExactMirror) {
  ASSERT_NO_FATAL_FAILURE(StartServer(300));
  const ServerState seeded = State();
  const ServerState synced = InitialSync(&seeded);
  ASSERT_FALSE(HasFailure());
  const LocalTree local_before = ScanLocal(root_);
  std::map<Key, LocalFile> before_files;
  for (const LocalFile& file : local_before.files) before_files[{file.folder, *file.uid}] = file;

  // The changes: ~3% of the 307 messages, so that every kind is there.
  Picker pick(synced);
  std::map<std::string, Expected> expected;
  auto flag = [&](const std::string& verb, const std::string& flags, const std::string& folder,
                  uint32_t uid, bool changes_letters) {
    Flags(verb, flags, folder, std::to_string(uid));
    (changes_letters ? expected[folder].letter_changes : expected[folder].keyword_changes)++;
  };
  const std::string archive = "Archive/2023";
  const std::string sent = "Sent Items";
  flag("add", "\\Seen", "INBOX", pick.Pick("INBOX", Without("\\Seen")), true);
  flag("remove", "\\Seen", "INBOX", pick.Pick("INBOX", With("\\Seen")), true);
  flag("add", "\\Flagged", "INBOX", pick.Pick("INBOX", Without("\\Flagged")), true);
  flag("add", "$Forwarded", "INBOX", pick.Pick("INBOX", Without("$Forwarded")), true);
  flag("add", "\\Deleted", "INBOX", pick.Pick("INBOX", Without("\\Deleted")), true);
  flag("add", kCustomKeyword, "INBOX", pick.Pick("INBOX", Without(kCustomKeyword)), false);
  flag("remove", "\\Flagged", archive, pick.Pick(archive, With("\\Flagged")), true);
  flag("add", "\\Seen \\Flagged $Forwarded " + kCustomKeyword, archive,
       pick.Pick(archive, Without("\\Seen")), true);
  flag("add", "\\Seen", kDrafts, pick.Pick(kDrafts, Without("\\Seen")), true);
  // Changed, then expunged: only the expunge counts.
  const uint32_t changed_then_gone = pick.Pick("INBOX", Without("\\Flagged"));
  Flags("add", "\\Flagged", "INBOX", std::to_string(changed_then_gone));
  Expunge("INBOX", std::to_string(changed_then_gone));
  Expunge("INBOX", std::to_string(pick.Pick("INBOX", With("\\Seen"))));
  Expunge("INBOX", std::to_string(pick.Pick("INBOX", Without("\\Seen"))));
  expected["INBOX"].expunged = 3;
  uint32_t archive_last = 0;
  for (const auto& [key, flags] : synced.flags) {
    if (key.first == archive) archive_last = std::max(archive_last, key.second);
  }
  Expunge(archive, std::to_string(archive_last));
  expected[archive].expunged = 1;
  Expunge(sent, std::to_string(pick.Pick(sent, With("\\Seen"))));
  Expunge(sent, std::to_string(pick.Pick(sent, With("\\Seen"))));
  expected[sent].expunged = 2;
  ASSERT_NO_FATAL_FAILURE(Append("INBOX", 1, false));
  ASSERT_NO_FATAL_FAILURE(Append("INBOX", 2, true));
  ASSERT_NO_FATAL_FAILURE(Append(sent, 3, true));
  expected["INBOX"].appended = 2;
  expected[sent].appended = 1;
  ASSERT_FALSE(HasFailure());
  const ServerState changed = State();
  ASSERT_EQ(changed.size(), synced.size() - 6 + 3);

  const size_t mark = LogSize(*server_);
  const CommandResult result = Sync("-v");
  const FetchStats stats = FetchesSince(*server_, mark, "alice");
  ASSERT_EQ(result.exit_code, 0) << Report(result);
  std::cout << "[ info ] " << GetParam().name << ": sync after the changes:\n" << result.out;

  // The Maildir is the server's state, exactly.
  const LocalTree tree = ScanLocal(root_);
  const std::vector<std::string> problems = CompareExact(tree, changed, &local_before);
  EXPECT_TRUE(problems.empty()) << problems.size() << " differences from the server:\n"
                                << JoinByKind(problems) << Describe(tree) << Report(result);
  EXPECT_EQ(tree.files.size(), changed.size()) << Describe(tree);
  EXPECT_TRUE(tree.tmp_files.empty()) << Describe(tree);

  // Renamed, not downloaded again: same stem for every message kept, the
  // very same path for every message whose letters did not change, and only
  // the three new bodies came from the server.
  size_t stem_changes = 0;
  for (const LocalFile& file : tree.files) {
    if (!file.uid) continue;
    auto it = before_files.find({file.folder, *file.uid});
    if (it == before_files.end()) continue;
    if (it->second.stem != file.stem && ++stem_changes <= 10) {
      ADD_FAILURE() << KeyText({file.folder, *file.uid}) << " was " << it->second.path << ", now "
                    << file.path << ": a new stem, not a rename";
    }
    auto now = changed.flags.find({file.folder, *file.uid});
    if (now == changed.flags.end()) continue;  // expunged: reported above
    if (ExpectedLetters(synced.flags.at(now->first)) == ExpectedLetters(now->second)) {
      EXPECT_EQ(file.path, it->second.path) << "renamed although its letters did not change";
    }
  }
  EXPECT_EQ(stem_changes, 0u);
  EXPECT_EQ(stats.body_count, 3) << "bodies downloaded (server log); only the 3 new ones should be";

  // The line of each folder: the path taken and the counts.
  for (const std::string& folder : {std::string("INBOX"), std::string("Archive"), archive,
                                    std::string("Empty"), kDrafts, sent}) {
    const std::string line = FolderLine(result, folder);
    SCOPED_TRACE("folder " + folder + ", line \"" + line + "\"");
    ASSERT_NE(line, "") << "no line for " << folder << " in:\n" << Report(result);
    auto it = expected.find(folder);
    if (it == expected.end()) {
      // Untouched. With mod-sequences the folder is skipped without SELECT.
      if (GetParam().modseq) {
        EXPECT_NE(line.find("[unchanged]"), std::string::npos);
      }
      EXPECT_EQ(CountIn(line, "flag change"), 0);
      EXPECT_EQ(CountIn(line, "expunged"), 0);
      EXPECT_EQ(CountIn(line, "new message"), 0);
      continue;
    }
    const Expected& want = it->second;
    EXPECT_NE(line.find(GetParam().path), std::string::npos) << "want the path " << GetParam().path;
    // A keyword without a Maildir letter may or may not count as a change.
    const long flag_changes = CountIn(line, "flag change");
    EXPECT_GE(flag_changes, want.letter_changes);
    EXPECT_LE(flag_changes, want.letter_changes + want.keyword_changes);
    EXPECT_EQ(CountIn(line, "expunged"), want.expunged);
    EXPECT_EQ(CountIn(line, "new message"), want.appended);
  }

  // The sync changed nothing on the server (\Seen above all).
  const std::vector<std::string> server_changes = ServerFlagChanges(changed, State());
  EXPECT_TRUE(server_changes.empty()) << "the sync changed the server:\n" << Join(server_changes);
}

// Nothing changed since the last sync (which itself was incremental): with
// CONDSTORE or QRESYNC the next run neither selects a folder nor fetches
// anything; without them it may select, but downloads no body. Either way
// no local file changes.
TEST_P(IncrementalSyncTest, NothingChangedMeansNoSelectAndNoFetch) {
  ASSERT_NO_FATAL_FAILURE(StartServer(300));
  (void)InitialSync();
  ASSERT_FALSE(HasFailure());
  const LocalTree synced_tree = ScanLocal(root_);
  // One incremental sync first, so that what it stored is what is checked.
  Flags("add", "\\Flagged $Forwarded", "INBOX", "1:3");
  Flags("remove", "\\Seen", "Sent Items", "1");
  Expunge("Archive/2023", "2");
  ASSERT_NO_FATAL_FAILURE(Append("INBOX", 1, false));
  const ServerState state = State();
  CommandResult result = Sync();
  ASSERT_EQ(result.exit_code, 0) << Report(result);
  const LocalTree before = ScanLocal(root_);
  const std::vector<std::string> problems = CompareExact(before, state, &synced_tree);
  EXPECT_TRUE(problems.empty()) << JoinByKind(problems) << Report(result);

  for (int run = 1; run <= 2; ++run) {
    SCOPED_TRACE("no-change run " + std::to_string(run));
    const size_t mark = LogSize(*server_);
    const auto start = Clock::now();
    result = Sync("-vvv");
    const double seconds = Seconds(Clock::now() - start);
    const FetchStats stats = FetchesSince(*server_, mark, "alice");
    ASSERT_EQ(result.exit_code, 0) << Report(result);
    const TraceCounts counts = CountCommands(result.err);
    std::cout << "[ info ] " << GetParam().name << ": no-change run " << run << ": " << seconds
              << " s, " << counts.total << " commands:\n"
              << counts.listing << result.out;
    ASSERT_GT(counts.total, 0u) << "no protocol trace on stderr with -vvv:\n" << Report(result);
    EXPECT_EQ(counts.body_fetches, 0u) << counts.listing;
    EXPECT_EQ(stats.body_count, 0) << "bodies downloaded (server log)";
    if (GetParam().modseq) {
      EXPECT_EQ(counts.selects, 0u) << "SELECT/EXAMINE sent although nothing changed:\n"
                                    << counts.listing;
      EXPECT_EQ(counts.fetches, 0u) << "FETCH sent although nothing changed:\n" << counts.listing;
      for (const char* folder : testing::kBulkFolders) {
        const std::string line = FolderLine(result, folder);
        EXPECT_NE(line.find("[unchanged]"), std::string::npos)
            << "folder " << folder << ": \"" << line << "\"";
      }
    }
    EXPECT_EQ(LocalPaths(ScanLocal(root_)), LocalPaths(before)) << "local files changed";
  }
  const std::vector<std::string> server_changes = ServerFlagChanges(state, State());
  EXPECT_TRUE(server_changes.empty()) << "a sync changed the server:\n" << Join(server_changes);
}

// SIGKILL during the flag/expunge phase, at points seen from outside (the
// protocol trace and the Maildir), each run going on from where the last
// stopped: after every kill the Maildir is a consistent mix of the old and
// new state (nothing lost, nothing twice), and a final run converges to the
// server's state exactly. A run that stored the new HIGHESTMODSEQ before the
// changes below it were on disk would leave some of them out for good.
TEST_P(IncrementalSyncTest, KilledDuringFlagAndExpungePhaseConverges) {
  ASSERT_NO_FATAL_FAILURE(StartServer(600));
  const ServerState synced = InitialSync();
  ASSERT_FALSE(HasFailure());
  const LocalTree synced_tree = ScanLocal(root_);

  // Change nearly every message, so the phase lasts long enough to be hit.
  Flags("add", "\\Flagged $Forwarded", "INBOX", "1:*");
  Flags("remove", "\\Seen", "Archive/2023", "1:*");
  Flags("add", "\\Answered " + kCustomKeyword, "Sent Items", "1:*");
  Flags("add", "\\Seen", kDrafts, "1:*");
  std::string every_tenth;
  for (const auto& [key, flags] : synced.flags) {
    if (key.first == "INBOX" && key.second % 10 == 0) {
      every_tenth += (every_tenth.empty() ? "" : ",") + std::to_string(key.second);
    }
  }
  Expunge("INBOX", every_tenth);
  Expunge("Archive/2023", "3:6");
  ASSERT_NO_FATAL_FAILURE(Append("INBOX", 1, false));
  ASSERT_NO_FATAL_FAILURE(Append("Archive/2023", 2, true));
  ASSERT_FALSE(HasFailure());
  const ServerState target = State();
  size_t letter_changes = 0;
  for (const auto& [key, flags] : target.flags) {
    auto it = synced.flags.find(key);
    if (it != synced.flags.end() && ExpectedLetters(it->second) != ExpectedLetters(flags)) {
      ++letter_changes;
    }
  }
  std::cout << "[ info ] " << GetParam().name << ": " << letter_changes << " messages to rename, "
            << synced.size() + 2 - target.size() << " to remove, 2 new\n";

  // Kill points. Trace events: a folder selected, flags arriving (FETCH
  // responses), bodies requested. Disk events: N of the files present when
  // the run started renamed or removed.
  struct Progress {
    size_t selects = 0;
    size_t fetch_responses = 0;
    size_t body_requests = 0;
    size_t gone = 0;  // start files no longer there
  };
  struct Trigger {
    std::string name;
    std::function<bool(const Progress&)> fire;
  };
  auto selected = [](size_t n) {
    return Trigger{std::to_string(n) + " SELECT/EXAMINE sent",
                   [n](const Progress& p) { return p.selects >= n; }};
  };
  auto responses = [](size_t n) {
    return Trigger{std::to_string(n) + " FETCH responses",
                   [n](const Progress& p) { return p.fetch_responses >= n; }};
  };
  auto gone = [](size_t n) {
    return Trigger{std::to_string(n) + " files renamed or removed",
                   [n](const Progress& p) { return p.gone >= n; }};
  };
  auto bodies = Trigger{"body fetch sent", [](const Progress& p) { return p.body_requests >= 1; }};
  std::vector<Trigger> triggers = {selected(1),  responses(1), gone(1), gone(40), responses(100),
                                   gone(150),    selected(2),  gone(1), bodies,   gone(1),
                                   responses(1), gone(1),      gone(1), gone(1)};

  std::ostringstream log;
  int kills = 0;
  int kills_mid_phase = 0;  // some but not all of the start files changed
  long redownloaded = 0;
  bool finished = false;
  const auto test_deadline = Clock::now() + std::chrono::seconds(40);
  for (size_t i = 0; i < triggers.size() && !finished && Clock::now() < test_deadline; ++i) {
    const LocalTree start_tree = ScanLocal(root_);
    const std::set<std::string> start_paths = LocalPaths(start_tree);
    size_t missing = 0;
    {
      std::set<Key> stored;
      for (const LocalFile& f : start_tree.files) {
        if (f.uid) stored.insert({f.folder, *f.uid});
      }
      for (const auto& [key, flags] : target.flags) missing += stored.count(key) == 0 ? 1 : 0;
    }
    const size_t mark = LogSize(*server_);
    // Files of its own per run: the child truncates them only once it runs,
    // and the previous run's trace must not fire this run's trigger.
    const std::string run_files = dir_ + "/run" + std::to_string(i);
    Child child(SyncCommand(config_, "-vvv"), run_files + ".out", run_files + ".err");
    ASSERT_TRUE(child.started());
    const auto started = Clock::now();
    Progress progress;
    bool fired = false;
    while (!child.Exited() && Clock::now() - started < std::chrono::seconds(30)) {
      const std::string trace = child.err();
      const TraceCounts counts = CountCommands(trace);
      progress.selects = counts.selects;
      progress.body_requests = counts.body_fetches;
      progress.fetch_responses = 0;
      for (size_t at = trace.find(" FETCH ("); at != std::string::npos;
           at = trace.find(" FETCH (", at + 1)) {
        ++progress.fetch_responses;
      }
      progress.gone = 0;
      for (const std::string& path : start_paths) {
        std::error_code ec;
        if (!fs::exists(path, ec)) ++progress.gone;
      }
      if (triggers[i].fire(progress)) {
        fired = true;
        break;
      }
      std::this_thread::sleep_for(milliseconds(1));
    }
    if (fired) child.Kill();
    const ChildExit exit = child.Wait(std::chrono::seconds(fired ? 10 : 30));
    if (!fired) {
      ASSERT_EQ(exit.exit_code, 0) << "run " << i << " (waiting for: " << triggers[i].name
                                   << ") ended without the trigger firing:\n"
                                   << Excerpt(child.err());
    }
    if (exit.exit_code == 0) {
      // Done before the trigger, or in the moment between it and the kill.
      const FetchStats stats = FetchesSince(*server_, mark, "alice");
      log << "  run " << i << ": finished by itself " << (fired ? "as \"" : "before \"")
          << triggers[i].name << (fired ? "\" fired; " : "\"; ") << stats.body_count
          << " bodies sent for " << missing << " missing\n";
      if (stats.body_count > static_cast<long>(missing))
        redownloaded += stats.body_count - static_cast<long>(missing);
      finished = true;
      break;
    }
    ASSERT_EQ(exit.exit_code, 128 + SIGKILL) << Excerpt(child.err());
    ++kills;
    const LocalTree tree = ScanLocal(root_);
    size_t still_old = 0;
    for (const std::string& path : start_paths) still_old += fs::exists(path) ? 1 : 0;
    const size_t changed_now = start_paths.size() - still_old;
    const bool mid_phase =
        changed_now > 0 && still_old > 0 && CompareExact(tree, target, &synced_tree).size() > 0;
    if (mid_phase) ++kills_mid_phase;
    const FetchStats stats = FetchesSince(*server_, mark, "alice");
    log << "  run " << i << ": killed at \"" << triggers[i].name << "\" after "
        << std::chrono::duration_cast<milliseconds>(exit.elapsed).count() << " ms; " << changed_now
        << " of " << start_paths.size() << " files renamed or removed"
        << (mid_phase ? " (mid-phase)" : "") << "; " << stats.body_count << " bodies sent for "
        << missing << " missing\n";
    if (stats.body_count > static_cast<long>(missing))
      redownloaded += stats.body_count - static_cast<long>(missing);
    const std::vector<std::string> problems = CompareInBetween(tree, synced, target, &synced_tree);
    ASSERT_TRUE(problems.empty()) << "after a SIGKILL at \"" << triggers[i].name << "\" (run " << i
                                  << "):\n"
                                  << JoinByKind(problems) << Describe(tree) << log.str();
  }
  std::cout << "[ info ] " << GetParam().name << ": " << kills << " kills, " << kills_mid_phase
            << " in the middle of the flag/expunge phase:\n"
            << log.str();
  RecordProperty("kills", kills);
  RecordProperty("kills_mid_phase", kills_mid_phase);
  EXPECT_GE(kills, 3) << log.str();

  // Then run to completion: the exact server state.
  size_t mark = LogSize(*server_);
  CommandResult result = Sync("-v");
  ASSERT_EQ(result.exit_code, 0) << Report(result);
  std::cout << "[ info ] completing run:\n" << result.out;
  (void)FetchesSince(*server_, mark, "alice");
  LocalTree tree = ScanLocal(root_);
  std::vector<std::string> problems = CompareExact(tree, target, &synced_tree);
  EXPECT_TRUE(problems.empty()) << problems.size() << " differences after the kills and a rerun:\n"
                                << JoinByKind(problems) << Describe(tree) << log.str();
  EXPECT_TRUE(tree.tmp_files.empty()) << Describe(tree);
  EXPECT_EQ(redownloaded, 0) << "bodies downloaded although already stored:\n" << log.str();

  // Stable: the next run changes nothing (and, with mod-sequences, selects
  // nothing: what was stored is the server's HIGHESTMODSEQ).
  mark = LogSize(*server_);
  result = Sync("-vvv");
  ASSERT_EQ(result.exit_code, 0) << Report(result);
  EXPECT_EQ(FetchesSince(*server_, mark, "alice").body_count, 0);
  const TraceCounts counts = CountCommands(result.err);
  if (GetParam().modseq) {
    EXPECT_EQ(counts.selects, 0u) << counts.listing;
    EXPECT_EQ(counts.fetches, 0u) << counts.listing;
  }
  tree = ScanLocal(root_);
  problems = CompareExact(tree, target, &synced_tree);
  EXPECT_TRUE(problems.empty()) << JoinByKind(problems) << Describe(tree);

  // No run changed the server.
  const std::vector<std::string> server_changes = ServerFlagChanges(target, State());
  EXPECT_TRUE(server_changes.empty()) << "a sync changed the server:\n" << Join(server_changes);
}

// \Seen must never change on the server because of a sync: new unseen mail
// downloaded by the first and by an incremental sync, and unseen messages
// whose other flags changed, all stay unseen (and every other flag as it
// was), in every capability set.
TEST_P(IncrementalSyncTest, SyncNeverChangesSeenOnTheServer) {
  ASSERT_NO_FATAL_FAILURE(StartServer(100));
  const ServerState seeded = State();
  size_t unseen = 0;
  for (const auto& [key, flags] : seeded.flags) {
    unseen += std::find(flags.begin(), flags.end(), "\\Seen") == flags.end() ? 1 : 0;
  }
  ASSERT_GT(unseen, 10u);
  (void)InitialSync(&seeded);  // checks the server is unchanged
  ASSERT_FALSE(HasFailure());

  // Other flags change on unseen messages; new unseen mail arrives.
  Flags("add", "\\Flagged $Forwarded", "INBOX", "1:20");
  Flags("add", "\\Answered", "Archive/2023", "1:*");
  ASSERT_NO_FATAL_FAILURE(Append("INBOX", 1, false));
  ASSERT_NO_FATAL_FAILURE(Append("Archive/2023", 2, false));
  ASSERT_NO_FATAL_FAILURE(Append("Empty", 3, false));
  const ServerState changed = State();
  for (int run = 1; run <= 2; ++run) {
    const CommandResult result = Sync("-v");
    ASSERT_EQ(result.exit_code, 0) << Report(result);
    const std::vector<std::string> server_changes = ServerFlagChanges(changed, State());
    EXPECT_TRUE(server_changes.empty()) << "run " << run << " changed the server:\n"
                                        << Join(server_changes);
  }
  const LocalTree tree = ScanLocal(root_);
  const std::vector<std::string> problems = CompareExact(tree, changed);
  EXPECT_TRUE(problems.empty()) << JoinByKind(problems) << Describe(tree);
}

// Flag changes and expunges are applied to the file name the index
// predicts; a file a mail reader renamed meanwhile (here: a keyword letter
// added, as Dovecot-aware readers do) is found by a scan of its folder,
// renamed or removed all the same, keeps the reader's letter, and is never
// downloaded again.
TEST_P(IncrementalSyncTest, FilesRenamedByAReaderAreStillKeptInStep) {
  ASSERT_NO_FATAL_FAILURE(StartServer(100));
  (void)InitialSync();
  ASSERT_FALSE(HasFailure());
  std::vector<LocalFile> picked;
  for (const LocalFile& file : ScanLocal(root_).files) {
    if (file.folder == "INBOX" && file.subdir == "cur" && file.flags == "S" && file.uid) {
      picked.push_back(file);
    }
    if (picked.size() == 2) break;
  }
  ASSERT_EQ(picked.size(), 2u);
  for (const LocalFile& file : picked) {
    fs::rename(file.path, file.path + "a");  // ":2,S" -> ":2,Sa"
  }
  const LocalFile& flagged = picked[0];
  const LocalFile& expunged = picked[1];
  Flags("add", "\\Flagged", "INBOX", std::to_string(*flagged.uid));
  Expunge("INBOX", std::to_string(*expunged.uid));

  const size_t mark = LogSize(*server_);
  const CommandResult result = Sync("-vv");
  ASSERT_EQ(result.exit_code, 0) << Report(result);
  EXPECT_NE(result.err.find("renamed locally; scanning the folder"), std::string::npos)
      << Report(result);
  std::vector<LocalFile> with_stem;
  bool expunged_left = false;
  for (const LocalFile& file : ScanLocal(root_).files) {
    if (file.stem == flagged.stem) with_stem.push_back(file);
    if (file.stem == expunged.stem) expunged_left = true;
  }
  ASSERT_EQ(with_stem.size(), 1u);
  EXPECT_EQ(with_stem[0].flags, "FSa");
  EXPECT_EQ(with_stem[0].uid, flagged.uid);
  EXPECT_FALSE(expunged_left);
  EXPECT_EQ(FetchesSince(*server_, mark, "alice").body_count, 0);
}

// The checks must catch damage, or a passing test means nothing.
TEST(IncrementalSyncHelpers, ChecksReportDamage) {
  const std::string dir =
      ::testing::TempDir() + "/mm-incremental-helpers-" + std::to_string(getpid());
  fs::remove_all(dir);
  auto write = [](const std::string& path, const std::string& text) {
    fs::create_directories(fs::path(path).parent_path());
    std::ofstream(path, std::ios::binary) << text;
  };
  ServerState before;
  ServerState after;
  for (uint32_t uid = 1; uid <= 4; ++uid) {
    before.flags[{"F", uid}] = {};
    before.bytes[{"F", uid}] = "m" + std::to_string(uid) + "\n";
  }
  after = before;
  after.flags[{"F", 1}] = {"$Forwarded", "\\Seen"};
  after.flags.erase({"F", 2});
  after.bytes.erase({"F", 2});
  after.flags[{"F", 5}] = {"\\Deleted"};
  after.bytes[{"F", 5}] = "m5\n";
  const std::string root = dir + "/mail";
  for (const char* sub : {"cur", "new", "tmp"}) fs::create_directories(root + "/F/" + sub);
  // In between: 1 old, 2 still there, 3 and 4 fine, 5 not yet.
  write(root + "/F/new/a,U=1:2,", "m1\n");
  write(root + "/F/new/b,U=2:2,", "m2\n");
  write(root + "/F/new/c,U=3:2,", "m3\n");
  write(root + "/F/new/d,U=4:2,", "m4\n");
  EXPECT_EQ(CompareInBetween(ScanLocal(root), before, after), std::vector<std::string>{});
  // 1: flags and directory; 2: no longer on the server; 5: missing.
  EXPECT_EQ(CompareExact(ScanLocal(root), after).size(), 4u)
      << Join(CompareExact(ScanLocal(root), after));
  // Done: exact.
  fs::rename(root + "/F/new/a,U=1:2,", root + "/F/cur/a,U=1:2,PS");
  fs::remove(root + "/F/new/b,U=2:2,");
  write(root + "/F/new/e,U=5:2,T", "m5\n");
  EXPECT_EQ(CompareExact(ScanLocal(root), after), std::vector<std::string>{});
  // Read mail in new/ is damage.
  fs::rename(root + "/F/cur/a,U=1:2,PS", root + "/F/new/a,U=1:2,PS");
  EXPECT_NE(
      Join(CompareExact(ScanLocal(root), after), 100).find("a,U=1:2,PS is in new/, want cur/"),
      std::string::npos);
  fs::rename(root + "/F/new/a,U=1:2,PS", root + "/F/cur/a,U=1:2,PS");
  // Unread mail in cur/ is damage, unless it was in cur/ before the run.
  fs::rename(root + "/F/new/e,U=5:2,T", root + "/F/cur/e,U=5:2,T");
  {
    const LocalTree with_e_in_cur = ScanLocal(root);
    EXPECT_NE(Join(CompareExact(with_e_in_cur, after), 100)
                  .find("e,U=5:2,T is in cur/, want new/ (unread, and not in cur/ before)"),
              std::string::npos);
    EXPECT_NE(Join(CompareInBetween(with_e_in_cur, before, after), 100)
                  .find("e,U=5:2,T is in cur/, want new/"),
              std::string::npos);
    EXPECT_EQ(CompareExact(with_e_in_cur, after, &with_e_in_cur), std::vector<std::string>{});
  }
  fs::rename(root + "/F/cur/e,U=5:2,T", root + "/F/new/e,U=5:2,T");
  // Damage: 3 lost, 4 twice, 1 with a flag of neither state.
  fs::remove(root + "/F/new/c,U=3:2,");
  write(root + "/F/new/d2,U=4:2,", "m4\n");
  fs::rename(root + "/F/cur/a,U=1:2,PS", root + "/F/cur/a,U=1:2,FS");
  const std::string all = Join(CompareInBetween(ScanLocal(root), before, after), 100);
  EXPECT_NE(all.find("lost: F UID 3"), std::string::npos) << all;
  EXPECT_NE(all.find("F UID 4 is stored 2 times"), std::string::npos) << all;
  EXPECT_NE(all.find("a,U=1:2,FS are \"FS\""), std::string::npos) << all;
  fs::remove_all(dir);

  // Trace and line parsing.
  const TraceCounts counts = CountCommands(
      "mailmirror: C: A1 LIST \"\" \"*\" RETURN (STATUS (HIGHESTMODSEQ))\\r\\n\n"
      "mailmirror: C: A5 EXAMINE INBOX (QRESYNC (1 2))\\r\\n\n"
      "mailmirror: S: * 3 FETCH (UID 3 FLAGS (\\Seen))\\r\\n\n"
      "mailmirror: C: A6 UID FETCH 1:* (FLAGS) (CHANGEDSINCE 5)\\r\\n\n"
      "mailmirror: C: A7 UID FETCH 9 (UID BODY.PEEK[])\\r\\n\n");
  EXPECT_EQ(counts.total, 4u);
  EXPECT_EQ(counts.selects, 1u);
  EXPECT_EQ(counts.fetches, 2u);
  EXPECT_EQ(counts.body_fetches, 1u);
  const std::string line =
      "test: INBOX: [QRESYNC] 3 new messages (1.2 KiB), 10 flag changes, "
      "2 expunged";
  EXPECT_EQ(CountIn(line, "new message"), 3);
  EXPECT_EQ(CountIn(line, "flag change"), 10);
  EXPECT_EQ(CountIn(line, "expunged"), 2);
  EXPECT_EQ(CountIn("test: Archive/2023: [unchanged]", "expunged"), 0);
  EXPECT_EQ(CountIn("test: Archive: no new messages, 1 flag change [QRESYNC]", "new message"), 0);
  EXPECT_EQ(CountIn("test: Archive: 1 flag change [QRESYNC]", "flag change"), 1);
  CommandResult result;
  result.out = "test: Archive/2023: [CONDSTORE] 1 flag change\ntest: Archive: [unchanged]\n";
  EXPECT_EQ(FolderLine(result, "Archive"), "test: Archive: [unchanged]");
  EXPECT_EQ(ExpectedLetters({"\\Seen", "$Forwarded", "\\Deleted", "mmcustom", "\\Flagged"}),
            "FPST");
}

INSTANTIATE_TEST_SUITE_P(Capabilities, IncrementalSyncTest, ::testing::ValuesIn(kCapabilitySets),
                         [](const ::testing::TestParamInfo<CapabilitySet>& param_info) {
                           return std::string(param_info.param.name);
                         });

}  // namespace
}  // namespace mailmirror
