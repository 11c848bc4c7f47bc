// Mapping server folder names to local Maildir paths and back, safely.
//
// Local names are UTF-8 with '/' between levels ("Archive/2023"), whatever
// the server's delimiter, and without the server's personal namespace prefix
// ("INBOX." on Courier). A local name maps back to exactly one server name.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "mailmirror/status.h"

namespace mailmirror::store {

enum class Layout {
  kVerbatim,        // "A/B" -> <root>/A/B, INBOX -> <root>/INBOX
  kMaildirPlusPlus  // "A/B" -> <root>/.A.B, INBOX -> <root>
};

struct ServerNaming {
  char delimiter = '/';          // hierarchy delimiter, 0 for flat servers
  std::string namespace_prefix;  // personal namespace prefix, e.g. "INBOX."
};

// The local name for a server's raw (modified UTF-7) mailbox name. INBOX in
// any case is "INBOX". Errors (kProtocol, naming the folder: 'folder "a/../b"
// skipped: its name contains a ".." level, ...') for names that are unsafe
// or impossible to store: an empty level, "." or "..", a level containing
// '/' (when the delimiter is not '/'), NUL or control characters (C0, DEL,
// C1), invalid modified UTF-7, a level longer than 255 bytes, levels named
// cur, new or tmp (they would collide with Maildir's own directories in the
// verbatim layout); and, when `naming` has a namespace prefix, names outside
// it (other users' and shared namespaces: they could not be mapped back)
// and the prefix followed by INBOX ("INBOX.INBOX" would clash with INBOX).
Result<std::string> LocalNameFor(std::string_view raw_name, const ServerNaming& naming);

// The server's raw name for a local name (inverse of LocalNameFor: for every
// name L it returns, RemoteNameFor(L) is the raw name it came from). INBOX
// in any case is "INBOX", without the prefix. Errors (kProtocol) for a local
// name LocalNameFor would refuse, for invalid UTF-8, for a level containing
// the server's delimiter, and for several levels on a flat server.
Result<std::string> RemoteNameFor(std::string_view local_name, const ServerNaming& naming);

// The folder's directory under `root` (trailing slashes of `root` ignored),
// always lexically inside it. Errors (kProtocol): a level that is empty,
// "." or "..", or holds NUL; with kVerbatim a level named cur, new or tmp or
// starting with '.' (hidden, and would collide with dot files such as the
// default state directory .mailmirror); with kMaildirPlusPlus a level that
// contains '.' (it would read back as two levels) or a directory name over
// 255 bytes. An empty `root` is kConfig.
Result<std::string> LocalPathFor(const std::string& root, std::string_view local_name,
                                 Layout layout);

// The local names of the Maildir folders under `root`: directories holding
// a cur/ directory, named back as LocalPathFor names them (a name it would
// refuse, or map elsewhere, is left out). Hidden directories are skipped
// and symbolic links not followed. Sorted. Errors: kIo for a `root` that
// cannot be read (a missing one has no folders).
Result<std::vector<std::string>> ListLocalFolders(const std::string& root, Layout layout);

// True when `name` matches the glob `pattern` ('*' any run of characters,
// '/' included; '?' one UTF-8 character; no brackets). Case-sensitive.
bool GlobMatch(std::string_view pattern, std::string_view name);

// Applies the `folders` config list: patterns in order, "!" negates, the
// last pattern that matches decides; with no match a folder is included
// only if the list has no positive pattern.
bool FolderSelected(const std::vector<std::string>& patterns, std::string_view local_name);

}  // namespace mailmirror::store
