#include "store/folder_map.h"

#include <dirent.h>
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <optional>

#include "imap/mailbox_name.h"
#include "util/strings.h"

namespace mailmirror::store {
namespace {

constexpr std::string_view kInbox = "INBOX";

// NAME_MAX of every file system we expect to live on.
constexpr size_t kMaxFileNameBytes = 255;

bool IsInbox(std::string_view name) { return EqualsIgnoreCase(name, kInbox); }

bool IsUtf8Continuation(char c) { return (static_cast<unsigned char>(c) & 0xc0) == 0x80; }

// Splits at every `separator`, keeping empty parts (they are errors the
// callers report). A separator of 0 means "one part".
std::vector<std::string_view> Split(std::string_view text, char separator) {
  std::vector<std::string_view> parts;
  if (separator == '\0') {
    parts.push_back(text);
    return parts;
  }
  for (;;) {
    size_t end = text.find(separator);
    parts.push_back(text.substr(0, end));
    if (end == std::string_view::npos) return parts;
    text.remove_prefix(end + 1);
  }
}

std::optional<std::string> LexicalProblem(std::string_view level) {
  if (level.empty()) return "has an empty level";
  if (level == ".") return "contains a \".\" level";
  if (level == "..") return "contains a \"..\" level, which could escape the Maildir root";
  if (level.find('\0') != std::string_view::npos) return "contains a NUL byte";
  return std::nullopt;
}

// Why a decoded (UTF-8) level cannot be stored, phrased to follow "its name
// ", or nullopt when it can.
std::optional<std::string> LevelProblem(std::string_view level) {
  if (std::optional<std::string> problem = LexicalProblem(level)) return problem;
  for (size_t i = 0; i < level.size(); ++i) {
    auto c = static_cast<unsigned char>(level[i]);
    // C0 and DEL, and C1 (U+0080..U+009F, "\xC2\x80".."\xC2\x9F" in UTF-8):
    // legal in file names but they garble terminals and logs.
    bool c1 = c == 0xc2 && i + 1 < level.size() &&
              (static_cast<unsigned char>(level[i + 1]) & 0xe0) == 0x80;
    if (c < 0x20 || c == 0x7f || c1) return "contains a control character";
    if (c == '/') return "contains '/' inside a level, which would read back as two levels";
  }
  if (level == "cur" || level == "new" || level == "tmp") {
    return "has a level named \"" + std::string(level) +
           "\", which would collide with the Maildir directory of that name";
  }
  if (level.size() > kMaxFileNameBytes) return "has a level longer than 255 bytes";
  return std::nullopt;
}

Error Refused(std::string_view raw_name, const std::string& problem) {
  return Error{ErrorKind::kProtocol,
               "folder \"" + Printable(raw_name) + "\" skipped: its name " + problem};
}

}  // namespace

Result<std::string> LocalNameFor(std::string_view raw_name, const ServerNaming& naming) {
  if (IsInbox(raw_name)) return std::string(kInbox);
  // Valid modified UTF-7 is printable ASCII; say precisely what is wrong
  // with the bytes that are most likely hostile before decoding.
  for (char c : raw_name) {
    if (c == '\0') return Refused(raw_name, "contains a NUL byte");
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) {
      return Refused(raw_name, "contains a control character");
    }
  }
  std::string_view rest = raw_name;
  const std::string& prefix = naming.namespace_prefix;
  if (!prefix.empty()) {
    // Names outside the personal namespace (shared folders, other users)
    // could not be told apart from personal ones once the prefix is gone,
    // so the mapping would not be reversible.
    if (rest.substr(0, prefix.size()) != prefix) {
      return Refused(raw_name, "is outside the personal namespace \"" + Printable(prefix) + "\"");
    }
    rest.remove_prefix(prefix.size());
    if (IsInbox(rest)) {
      return Refused(raw_name, "is INBOX once the namespace prefix \"" + Printable(prefix) +
                                   "\" is removed, which would clash with the real INBOX");
    }
  }
  std::string local;
  bool first = true;
  // Level by level: the delimiter is ASCII and never part of an encoded run.
  for (std::string_view level : Split(rest, naming.delimiter)) {
    std::optional<std::string> decoded = imap::DecodeMailboxName(level);
    if (!decoded) return Refused(raw_name, "is not valid modified UTF-7");
    if (std::optional<std::string> problem = LevelProblem(*decoded)) {
      return Refused(raw_name, *problem);
    }
    if (!first) local += '/';
    local += *decoded;
    first = false;
  }
  return local;
}

Result<std::string> RemoteNameFor(std::string_view local_name, const ServerNaming& naming) {
  if (IsInbox(local_name)) return std::string(kInbox);
  auto refuse = [&](const std::string& problem) {
    return Error{ErrorKind::kProtocol, "local folder \"" + Printable(local_name) +
                                           "\" has no server name: its name " + problem};
  };
  std::vector<std::string_view> levels = Split(local_name, '/');
  if (naming.delimiter == '\0' && levels.size() > 1) {
    return refuse("has several levels, but the server has no hierarchy");
  }
  std::string remote = naming.namespace_prefix;
  for (size_t i = 0; i < levels.size(); ++i) {
    if (std::optional<std::string> problem = LevelProblem(levels[i])) return refuse(*problem);
    std::optional<std::string> encoded = imap::EncodeMailboxName(levels[i]);
    if (!encoded) return refuse("is not valid UTF-8");
    if (naming.delimiter != '\0' && encoded->find(naming.delimiter) != std::string::npos) {
      return refuse(std::string("has a level containing the server's hierarchy delimiter '") +
                    naming.delimiter + "'");
    }
    if (i > 0) remote += naming.delimiter;
    remote += *encoded;
  }
  return remote;
}

Result<std::string> LocalPathFor(const std::string& root, std::string_view local_name,
                                 Layout layout) {
  if (root.empty()) return Error{ErrorKind::kConfig, "the Maildir root path is empty"};
  std::string base = root;
  while (base.size() > 1 && base.back() == '/') base.pop_back();
  auto refuse = [&](const std::string& problem) {
    return Error{ErrorKind::kProtocol, "folder \"" + Printable(local_name) +
                                           "\" has no safe path under " + base + ": its name " +
                                           problem};
  };
  auto under_base = [&](std::string_view relative) {
    std::string path = base;
    if (path.back() != '/') path += '/';
    path += relative;
    return path;
  };

  std::vector<std::string_view> levels = Split(local_name, '/');
  // Lexically inside `base`: no level can climb out or alias its parent.
  for (std::string_view level : levels) {
    if (std::optional<std::string> problem = LexicalProblem(level)) return refuse(*problem);
  }

  if (layout == Layout::kVerbatim) {
    for (std::string_view level : levels) {
      if (level == "cur" || level == "new" || level == "tmp") {
        return refuse("has a level named \"" + std::string(level) +
                      "\", which would collide with the Maildir directory of that name");
      }
      if (level.front() == '.') {
        return refuse("has a level starting with '.', which would be a hidden directory");
      }
    }
    return under_base(local_name);
  }

  if (IsInbox(local_name)) return base;
  std::string directory = ".";
  for (size_t i = 0; i < levels.size(); ++i) {
    if (levels[i].find('.') != std::string_view::npos) {
      return refuse("has a level containing '.', which Maildir++ would read back as two levels");
    }
    if (i > 0) directory += '.';
    directory += levels[i];
  }
  if (directory.size() > kMaxFileNameBytes) {
    return refuse("is longer than 255 bytes as a Maildir++ directory name");
  }
  return under_base(directory);
}

namespace {

// "dir/name".
std::string JoinPath(std::string_view dir, std::string_view name) {
  std::string path;
  path.reserve(dir.size() + 1 + name.size());
  path.append(dir).append("/").append(name);
  return path;
}

bool IsDirectory(const std::string& path) {
  struct stat st {};
  return ::lstat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

// The names in `dir` that are directories, without "." and "..". Errors:
// kIo, except for a directory that is gone (none).
Result<std::vector<std::string>> Subdirectories(const std::string& dir) {
  std::vector<std::string> names;
  DIR* handle = ::opendir(dir.c_str());
  if (handle == nullptr) {
    if (errno == ENOENT || errno == ENOTDIR) return names;
    return Error{ErrorKind::kIo, "reading directory " + dir + ": " + std::strerror(errno)};
  }
  while (const dirent* entry = ::readdir(handle)) {
    std::string name = entry->d_name;
    if (name == "." || name == "..") continue;
    if (entry->d_type == DT_DIR ||
        (entry->d_type == DT_UNKNOWN && IsDirectory(JoinPath(dir, name)))) {
      names.push_back(std::move(name));
    }
  }
  (void)::closedir(handle);  // read-only
  return names;
}

// Verbatim layout: folders nest as directories; every level that is not a
// Maildir's own cur/new/tmp or hidden may hold more.
Status ListVerbatim(const std::string& dir, const std::string& prefix, int depth,
                    std::vector<std::pair<std::string, std::string>>& out) {
  constexpr int kMaxDepth = 32;
  if (depth > kMaxDepth) return Status::Ok();
  Result<std::vector<std::string>> names = Subdirectories(dir);
  if (!names.ok()) return names.error();
  for (const std::string& name : *names) {
    if (name.front() == '.' || name == "cur" || name == "new" || name == "tmp") continue;
    std::string path = JoinPath(dir, name);
    std::string local = prefix.empty() ? name : JoinPath(prefix, name);
    if (IsDirectory(JoinPath(path, "cur"))) out.emplace_back(local, path);
    Status deeper = ListVerbatim(path, local, depth + 1, out);
    if (!deeper.ok()) return deeper;
  }
  return Status::Ok();
}

}  // namespace

Result<std::vector<std::string>> ListLocalFolders(const std::string& root, Layout layout) {
  std::string base = root;
  while (base.size() > 1 && base.back() == '/') base.pop_back();
  std::vector<std::pair<std::string, std::string>> found;  // local name, directory
  if (layout == Layout::kVerbatim) {
    Status listed = ListVerbatim(base, "", 0, found);
    if (!listed.ok()) return listed.error();
  } else {
    if (IsDirectory(base + "/cur")) found.emplace_back(kInbox, base);
    Result<std::vector<std::string>> names = Subdirectories(base);
    if (!names.ok()) return names.error();
    for (const std::string& name : *names) {
      // ".A.B" is A/B; ".." and dot files without a name are not folders.
      if (name.size() < 2 || name[0] != '.' || name[1] == '.') continue;
      std::string directory = JoinPath(base, name);
      if (!IsDirectory(JoinPath(directory, "cur"))) continue;
      std::string local = name.substr(1);
      std::replace(local.begin(), local.end(), '.', '/');
      found.emplace_back(local, std::move(directory));
    }
  }
  std::vector<std::string> folders;
  for (const auto& [local, directory] : found) {
    // Only names that map back to the same directory.
    Result<std::string> path = LocalPathFor(base, local, layout);
    if (path.ok() && *path == directory) folders.push_back(local);
  }
  std::sort(folders.begin(), folders.end());
  return folders;
}

bool GlobMatch(std::string_view pattern, std::string_view name) {
  // Iterative matching with backtracking to the last '*' only: linear in
  // practice and never exponential, whatever the pattern.
  auto next_char = [&](size_t i) {
    ++i;
    while (i < name.size() && IsUtf8Continuation(name[i])) ++i;
    return i;
  };
  size_t p = 0;
  size_t n = 0;
  size_t star = std::string_view::npos;  // position of the last '*' seen
  size_t star_n = 0;                     // where that '*' stopped matching
  while (n < name.size()) {
    if (p < pattern.size() && pattern[p] == '*') {
      star = p++;
      star_n = n;
    } else if (p < pattern.size() && pattern[p] == '?') {
      ++p;
      n = next_char(n);
    } else if (p < pattern.size() && pattern[p] == name[n]) {
      ++p;
      ++n;
    } else if (star != std::string_view::npos) {
      // Let the last '*' swallow one more character and try again.
      p = star + 1;
      star_n = next_char(star_n);
      n = star_n;
    } else {
      return false;
    }
  }
  while (p < pattern.size() && pattern[p] == '*') ++p;
  return p == pattern.size();
}

bool FolderSelected(const std::vector<std::string>& patterns, std::string_view local_name) {
  bool has_positive = false;
  std::optional<bool> decision;
  for (const std::string& pattern : patterns) {
    bool negated = !pattern.empty() && pattern.front() == '!';
    if (!negated) has_positive = true;
    std::string_view glob = pattern;
    if (negated) glob.remove_prefix(1);
    if (GlobMatch(glob, local_name)) decision = !negated;
  }
  return decision.value_or(!has_positive);
}

}  // namespace mailmirror::store
