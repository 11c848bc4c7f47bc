// Typed IMAP server responses, as produced by imap::ResponseParser.
//
// Lifetime: every std::string_view in these structs points into the parser's
// own buffer and is valid only during the ResponseHandler::OnResponse call
// that delivers the Response. Copy what must outlive it.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>
#include <vector>

namespace mailmirror::imap {

enum class ResponseType {
  kTagged,        // "A1 OK ..." — tag, condition, code, text
  kContinuation,  // "+ text" — text (base64 challenge or free text)
  kCondition,     // untagged "* OK|NO|BAD|PREAUTH|BYE [code] text"
  kCapability,    // "* CAPABILITY ..." — capabilities
  kList,          // "* LIST" / "* LSUB" — list
  kStatus,        // "* STATUS mailbox (...)" — status
  kExists,        // "* n EXISTS" — number
  kRecent,        // "* n RECENT" — number
  kExpunge,       // "* n EXPUNGE" — number
  kFetch,         // "* n FETCH (...)" — fetch
  kVanished,      // "* VANISHED [(EARLIER)] set" — vanished
  kEnabled,       // "* ENABLED ..." — capabilities holds the enabled names
  kFlags,         // "* FLAGS (...)" — flags
  kSearch,        // "* SEARCH n n ..." — numbers
  kEsearch,       // "* ESEARCH ..." — raw holds the rest of the line
  kOther,         // anything else untagged — keyword and raw
};

enum class Condition { kOk, kNo, kBad, kPreauth, kBye };

// A bracketed response code, e.g. [UIDVALIDITY 3857529045] or
// [PERMANENTFLAGS (\Seen \*)]. Unknown codes keep only name and raw.
struct ResponseCode {
  std::string_view name;  // upper-case as sent, e.g. "UIDNEXT"
  std::string_view raw;   // payload text between the name and ']', trimmed
  // For codes whose payload is one number (UIDVALIDITY, UIDNEXT, UNSEEN,
  // HIGHESTMODSEQ, APPENDUID's first number...): the parsed value.
  std::optional<uint64_t> number;
  // For codes with a list or atom payload (CAPABILITY, PERMANENTFLAGS,
  // BADCHARSET): the items.
  std::vector<std::string_view> items;
};

struct ListData {
  bool lsub = false;                         // LSUB rather than LIST
  std::vector<std::string_view> attributes;  // e.g. "\\HasNoChildren"
  char delimiter = 0;                        // 0 when the server sent NIL
  std::string_view mailbox;                  // raw bytes (modified UTF-7 usually)
};

struct StatusData {
  std::string_view mailbox;  // raw bytes
  std::optional<uint32_t> messages;
  std::optional<uint32_t> recent;
  std::optional<uint32_t> uidnext;
  std::optional<uint32_t> uidvalidity;
  std::optional<uint32_t> unseen;
  std::optional<uint64_t> highestmodseq;
  std::optional<uint64_t> size;  // STATUS=SIZE
};

// A message body section delivered in a FETCH response.
struct BodySection {
  // Item name as sent: "BODY", "BINARY" or one of the rev1 items "RFC822",
  // "RFC822.HEADER", "RFC822.TEXT" (whose `section` reads "", "HEADER",
  // "TEXT": the BODY[] section with the same content).
  std::string_view item;
  std::string_view section;        // text between the brackets, e.g. "" or "HEADER"
  std::optional<uint32_t> origin;  // <n> partial-fetch origin, if echoed
  bool nil = false;                // server sent NIL instead of a string
  // When the literal was streamed to the LiteralSink, `streamed` is true,
  // `size` is its length and `data` is empty. Otherwise `data` holds the
  // bytes (small literals and quoted strings are delivered inline).
  bool streamed = false;
  uint64_t size = 0;
  std::string_view data;
};

struct FetchData {
  uint32_t seq = 0;  // message sequence number
  std::optional<uint32_t> uid;
  bool has_flags = false;
  std::vector<std::string_view> flags;
  std::optional<std::string_view> internaldate;  // "17-Jul-1996 02:44:25 -0700"
  std::optional<uint64_t> rfc822_size;
  std::optional<uint64_t> modseq;
  std::optional<uint64_t> gm_msgid;  // Gmail's X-GM-MSGID (X-GM-EXT-1)
  std::vector<BodySection> bodies;   // BODY[...] / BINARY[...] items
};

struct VanishedData {
  bool earlier = false;
  std::string_view uid_set;  // raw sequence set, e.g. "41,43:116"
};

// One complete server response. Only the members named for `type` in the
// ResponseType comments are meaningful.
struct Response {
  ResponseType type = ResponseType::kOther;

  std::string_view tag;                  // kTagged
  Condition condition = Condition::kOk;  // kTagged, kCondition
  std::optional<ResponseCode> code;      // kTagged, kCondition
  std::string_view text;                 // kTagged, kCondition, kContinuation

  std::vector<std::string_view> capabilities;  // kCapability, kEnabled
  ListData list;                               // kList
  StatusData status;                           // kStatus
  // kExists, kRecent, kExpunge; for kOther the n of "* n KEYWORD ..." (else 0).
  uint32_t number = 0;
  FetchData fetch;                        // kFetch
  VanishedData vanished;                  // kVanished
  std::vector<std::string_view> flags;    // kFlags
  std::vector<uint32_t> numbers;          // kSearch
  std::optional<uint64_t> search_modseq;  // kSearch: "(MODSEQ n)" (RFC 7162)
  std::string_view keyword;               // kOther: the response keyword
  std::string_view raw;                   // kEsearch, kOther: rest of line
};

}  // namespace mailmirror::imap
