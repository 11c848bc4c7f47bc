#include "imap/response_reader.h"

#include <optional>
#include <string>
#include <utility>

namespace mailmirror::imap {
namespace {

constexpr ByteSet kKeywordEnd(" [(");
constexpr ByteSet kSpace(" ");
constexpr ByteSet kCodeNameEnd(" ]\r\n");
constexpr ByteSet kItemNameEnd(" ()[\"{\r\n");

// Reads the name of a response or condition: up to SP, '[' or '('.
bool ReadKeyword(Tokenizer* t, std::string_view* out, std::string_view what) {
  *out = t->ReadUntil(kKeywordEnd);
  if (out->empty()) return t->Fail("expected " + std::string(what));
  return true;
}

std::optional<Condition> ParseCondition(std::string_view word) {
  if (EqualsUpper(word, "OK")) return Condition::kOk;
  if (EqualsUpper(word, "NO")) return Condition::kNo;
  if (EqualsUpper(word, "BAD")) return Condition::kBad;
  if (EqualsUpper(word, "PREAUTH")) return Condition::kPreauth;
  if (EqualsUpper(word, "BYE")) return Condition::kBye;
  return std::nullopt;
}

// Space-separated atoms up to the end: CAPABILITY and ENABLED data.
bool ReadAtomsToEnd(Tokenizer* t, std::vector<std::string_view>* out, std::string_view what) {
  for (;;) {
    t->SkipSpaces();
    if (t->AtEnd()) return true;
    std::string_view atom;
    if (!t->ReadAtom(&atom, what)) return false;
    out->push_back(atom);
  }
}

// Interprets the payload of a known response code; [begin, end) is the
// payload in t's buffer. Unknown codes keep only name and raw.
bool ReadCodePayload(Tokenizer* t, size_t begin, size_t end, ResponseCode* code) {
  Tokenizer sub = t->Sub(begin, end);
  const std::string_view name = code->name;
  bool ok = true;
  if (EqualsUpper(name, "UIDVALIDITY") || EqualsUpper(name, "UIDNEXT") ||
      EqualsUpper(name, "UNSEEN")) {
    uint32_t value = 0;
    ok = sub.ReadNumber32(&value, "number") && sub.ExpectEnd("after number");
    code->number = value;
  } else if (EqualsUpper(name, "HIGHESTMODSEQ")) {
    uint64_t value = 0;
    ok = sub.ReadNumber64(&value, "mod-sequence") && sub.ExpectEnd("after mod-sequence");
    code->number = value;
  } else if (EqualsUpper(name, "APPENDUID") || EqualsUpper(name, "COPYUID")) {
    // The first number is the UIDVALIDITY; the UID sets stay in raw.
    uint32_t value = 0;
    ok = sub.ReadNumber32(&value, "UIDVALIDITY");
    code->number = value;
  } else if (EqualsUpper(name, "CAPABILITY")) {
    ok = ReadAtomsToEnd(&sub, &code->items, "capability name");
  } else if (EqualsUpper(name, "PERMANENTFLAGS")) {
    ok = sub.ReadList(&code->items, "flag list") && sub.ExpectEnd("after flag list");
  } else if (EqualsUpper(name, "BADCHARSET")) {
    // The charset list is optional (RFC 3501 §7.1). Quoted names are
    // unescaped in place, which may alter `raw`; charset names never need it.
    if (begin != end) {
      ok = sub.ReadList(&code->items, "charset list") && sub.ExpectEnd("after charset list");
    }
  }
  if (!ok) {
    code->number.reset();
    return t->FailAt(begin + sub.error_pos(),
                     sub.error() + " in response code [" + std::string(name) + "]");
  }
  return true;
}

// "[" name [SP payload] "]". The payload cannot hold ']' outside quoted
// strings (RFC 3501 resp-text-code), so a scan for it finds the end.
bool ReadCode(Tokenizer* t, Response* r, std::vector<std::string_view>* spare_items) {
  t->Advance();  // '['
  std::string_view name = t->ReadUntil(kCodeNameEnd);
  if (name.empty()) return t->Fail("empty response code");
  r->code.emplace();
  ResponseCode& code = *r->code;
  code.items.swap(*spare_items);  // reuse the parked capacity
  code.name = name;
  if (t->Consume(']')) return true;
  if (!t->Consume(' ')) return t->Fail("malformed response code");
  size_t begin = t->pos();
  for (int c = t->Peek(); c != ']'; c = t->Peek()) {
    if (c < 0 || c == '\r' || c == '\n') return t->Fail("unterminated response code");
    t->Advance();
    if (c == '"') {
      for (c = t->Peek(); c != '"'; c = t->Peek()) {
        if (c < 0 || c == '\r' || c == '\n') return t->Fail("unterminated response code");
        t->Advance();
        if (c == '\\') t->Advance();
      }
      t->Advance();
    }
  }
  size_t end = t->pos();
  t->Advance();  // ']'
  size_t trimmed_begin = begin;
  size_t trimmed_end = end;
  std::string_view all = t->Slice(begin, end);
  while (trimmed_begin < trimmed_end && all[trimmed_begin - begin] == ' ') ++trimmed_begin;
  while (trimmed_end > trimmed_begin && all[trimmed_end - 1 - begin] == ' ') --trimmed_end;
  code.raw = t->Slice(trimmed_begin, trimmed_end);
  return ReadCodePayload(t, trimmed_begin, trimmed_end, &code);
}

// [SP] ["[" code "]"] [SP] text, after OK/NO/BAD/PREAUTH/BYE. Both the code
// and the text may be missing: Gmail sends "* OK [HIGHESTMODSEQ n]" alone.
bool ReadRespText(Tokenizer* t, Response* r, std::vector<std::string_view>* spare_items) {
  t->Consume(' ');
  if (t->Peek() == '[') {
    if (!ReadCode(t, r, spare_items)) return false;
    t->Consume(' ');
  }
  r->text = t->Rest();
  return true;
}

bool ReadOrigin(Tokenizer* t, std::optional<uint32_t>* origin) {
  if (!t->Consume('<')) return true;
  uint32_t value = 0;
  if (!t->ReadNumber32(&value, "partial origin")) return false;
  if (!t->Consume('>')) return t->Fail("expected '>' closing partial origin");
  *origin = value;
  return true;
}

// "(" item SP value *(SP item SP value) ")" after "* n FETCH".
bool ReadFetch(Tokenizer* t, Response* r) {
  FetchData& fetch = r->fetch;
  t->SkipSpaces();
  if (!t->Consume('(')) return t->Fail("expected '(' after FETCH");
  for (;;) {
    t->SkipSpaces();
    if (t->Consume(')')) break;
    if (t->AtEnd()) return t->Fail("unterminated FETCH item list");
    // Item names are atoms, except that '[' starts a section.
    std::string_view name;
    size_t name_pos = t->pos();
    name = t->ReadUntil(kItemNameEnd);
    if (name.empty()) return t->Fail("expected FETCH item name");
    bool has_section = t->Peek() == '[';
    std::string_view section;
    std::optional<uint32_t> origin;
    if (has_section && (!t->ReadSection(&section) || !ReadOrigin(t, &origin))) return false;
    if (t->Peek() != ' ') {
      return t->Fail("expected space after FETCH item " +
                     std::string(t->Slice(name_pos, t->pos())));
    }
    t->SkipSpaces();

    // The name of an item without a section; a section makes UID[1] or
    // FLAGS[] unknown items rather than malformed known ones.
    const std::string_view plain = has_section ? std::string_view() : name;
    std::string_view body_section;
    bool is_body = false;
    if (has_section) {
      is_body = EqualsUpper(name, "BODY") || EqualsUpper(name, "BINARY");
      body_section = section;
    } else if (EqualsUpper(name, "RFC822")) {
      is_body = true;
    } else if (EqualsUpper(name, "RFC822.HEADER")) {
      is_body = true;
      body_section = "HEADER";
    } else if (EqualsUpper(name, "RFC822.TEXT")) {
      is_body = true;
      body_section = "TEXT";
    }

    if (is_body) {
      StringToken token;
      if (!t->ReadNString(&token, "message body")) return false;
      BodySection& body = fetch.bodies.emplace_back();
      body.item = name;
      body.section = body_section;
      body.origin = origin;
      body.nil = token.nil;
      body.streamed = token.streamed;
      body.size = token.size;
      body.data = token.data;
    } else if (EqualsUpper(plain, "UID")) {
      uint32_t uid = 0;
      if (!t->ReadNumber32(&uid, "UID")) return false;
      fetch.uid = uid;
    } else if (EqualsUpper(plain, "FLAGS")) {
      fetch.flags.clear();  // a repeated FLAGS item replaces the earlier one
      if (!t->ReadList(&fetch.flags, "flag list")) return false;
      fetch.has_flags = true;
    } else if (EqualsUpper(plain, "INTERNALDATE")) {
      StringToken token;
      if (!t->ReadNString(&token, "INTERNALDATE")) return false;
      if (token.streamed) return t->Fail("unexpected streamed literal for INTERNALDATE");
      if (!token.nil) fetch.internaldate = token.data;
    } else if (EqualsUpper(plain, "RFC822.SIZE")) {
      uint64_t size = 0;
      if (!t->ReadNumber64(&size, "RFC822.SIZE")) return false;
      fetch.rfc822_size = size;
    } else if (EqualsUpper(plain, "X-GM-MSGID")) {
      uint64_t msgid = 0;
      if (!t->ReadNumber64(&msgid, "X-GM-MSGID")) return false;
      fetch.gm_msgid = msgid;
    } else if (EqualsUpper(plain, "MODSEQ")) {
      // "MODSEQ (n)" — RFC 7162 §3.1.4.2 puts the value in parentheses.
      uint64_t modseq = 0;
      if (!t->Consume('(')) return t->Fail("expected '(' after MODSEQ");
      t->SkipSpaces();
      if (!t->ReadNumber64(&modseq, "MODSEQ value")) return false;
      t->SkipSpaces();
      if (!t->Consume(')')) return t->Fail("expected ')' after MODSEQ value");
      fetch.modseq = modseq;
    } else {
      // ENVELOPE, BODYSTRUCTURE, X-GM-LABELS, X-GM-THRID, EMAILID, BINARY.SIZE[...]:
      // not needed here.
      if (!t->SkipValue(1)) return false;
    }
    int c = t->Peek();
    if (c != ' ' && c != ')') return t->Fail("expected space or ')' after FETCH item value");
  }
  return t->ExpectEnd("after FETCH item list");
}

// mailbox SP "(" [name SP value *(SP name SP value)] ")" after "* STATUS".
bool ReadStatus(Tokenizer* t, Response* r) {
  StatusData& status = r->status;
  if (!t->ExpectSpaces("after STATUS")) return false;
  if (!t->ReadAString(&status.mailbox, "mailbox name")) return false;
  t->SkipSpaces();
  if (!t->Consume('(')) return t->Fail("expected '(' opening STATUS items");
  for (;;) {
    t->SkipSpaces();
    if (t->Consume(')')) break;
    if (t->AtEnd()) return t->Fail("unterminated STATUS item list");
    std::string_view name;
    if (!t->ReadAtom(&name, "STATUS item name")) return false;
    if (!t->ExpectSpaces("after STATUS item name")) return false;
    auto number32 = [&](std::optional<uint32_t>* out) {
      uint32_t value = 0;
      if (!t->ReadNumber32(&value, name)) return false;
      *out = value;
      return true;
    };
    auto number64 = [&](std::optional<uint64_t>* out) {
      uint64_t value = 0;
      if (!t->ReadNumber64(&value, name)) return false;
      *out = value;
      return true;
    };
    bool ok;
    if (EqualsUpper(name, "MESSAGES")) {
      ok = number32(&status.messages);
    } else if (EqualsUpper(name, "RECENT")) {
      ok = number32(&status.recent);
    } else if (EqualsUpper(name, "UIDNEXT")) {
      ok = number32(&status.uidnext);
    } else if (EqualsUpper(name, "UIDVALIDITY")) {
      ok = number32(&status.uidvalidity);
    } else if (EqualsUpper(name, "UNSEEN")) {
      ok = number32(&status.unseen);
    } else if (EqualsUpper(name, "HIGHESTMODSEQ")) {
      ok = number64(&status.highestmodseq);
    } else if (EqualsUpper(name, "SIZE")) {
      ok = number64(&status.size);
    } else {
      ok = t->SkipValue(1);  // DELETED, APPENDLIMIT (may be NIL), ...
    }
    if (!ok) return false;
    int c = t->Peek();
    if (c != ' ' && c != ')') return t->Fail("expected space or ')' after STATUS item value");
  }
  return t->ExpectEnd("after STATUS item list");
}

// SP "(" attributes ")" SP (quoted-char / NIL) SP mailbox [SP extended data].
bool ReadList(Tokenizer* t, Response* r) {
  ListData& list = r->list;
  if (!t->ExpectSpaces("after LIST")) return false;
  if (!t->ReadList(&list.attributes, "mailbox attributes")) return false;
  if (!t->ExpectSpaces("after mailbox attributes")) return false;
  StringToken delimiter;
  if (!t->ReadNString(&delimiter, "hierarchy delimiter")) return false;
  if (!delimiter.nil) {
    if (delimiter.data.size() != 1) return t->Fail("hierarchy delimiter is not one character");
    list.delimiter = delimiter.data[0];
  }
  if (!t->ExpectSpaces("after hierarchy delimiter")) return false;
  // LIST-EXTENDED data (CHILDINFO, OLDNAME...) may follow; not needed here.
  return t->ReadAString(&list.mailbox, "mailbox name");
}

// SP ["(EARLIER)" SP] uid-set.
bool ReadVanished(Tokenizer* t, Response* r) {
  if (!t->ExpectSpaces("after VANISHED")) return false;
  if (t->Consume('(')) {
    std::string_view tag;
    if (!t->ReadAtom(&tag, "VANISHED tag") || !t->Consume(')')) {
      return t->Fail("expected (EARLIER) after VANISHED");
    }
    if (!EqualsUpper(tag, "EARLIER")) return t->Fail("unknown VANISHED tag");
    r->vanished.earlier = true;
    if (!t->ExpectSpaces("after (EARLIER)")) return false;
  }
  std::string_view set = t->ReadUntil(kSpace);
  if (set.empty()) return t->Fail("expected UID set after VANISHED");
  for (char c : set) {
    if (!(c >= '0' && c <= '9') && c != ':' && c != ',' && c != '*') {
      return t->Fail("malformed UID set after VANISHED");
    }
  }
  r->vanished.uid_set = set;
  return t->ExpectEnd("after VANISHED UID set");
}

// *(SP nz-number) [SP "(MODSEQ" SP n ")"] after "* SEARCH".
bool ReadSearch(Tokenizer* t, Response* r) {
  for (;;) {
    t->SkipSpaces();
    if (t->AtEnd()) return true;
    if (t->Consume('(')) {
      std::string_view name;
      uint64_t modseq = 0;
      if (!t->ReadAtom(&name, "MODSEQ") || !EqualsUpper(name, "MODSEQ")) {
        return t->Fail("expected (MODSEQ n) in SEARCH response");
      }
      if (!t->ExpectSpaces("after MODSEQ") || !t->ReadNumber64(&modseq, "MODSEQ value")) {
        return false;
      }
      t->SkipSpaces();
      if (!t->Consume(')')) return t->Fail("expected ')' after MODSEQ value");
      r->search_modseq = modseq;
      continue;
    }
    uint32_t number = 0;
    if (!t->ReadNumber32(&number, "SEARCH result number")) return false;
    r->numbers.push_back(number);
    int c = t->Peek();
    if (c != ' ' && c >= 0) return t->Fail("expected space after SEARCH result number");
  }
}

void ReadOther(Tokenizer* t, Response* r, std::string_view keyword) {
  r->type = ResponseType::kOther;
  r->keyword = keyword;
  t->Consume(' ');
  r->raw = t->Rest();
}

bool ReadUntagged(Tokenizer* t, Response* r, std::vector<std::string_view>* spare_items) {
  std::string_view keyword;
  int c = t->Peek();
  if (c >= '0' && c <= '9') {
    // "* n EXISTS", "* n FETCH (...)", ...
    uint32_t number = 0;
    if (!t->ReadNumber32(&number, "message number")) return false;
    if (!t->ExpectSpaces("after message number")) return false;
    if (!ReadKeyword(t, &keyword, "response name after message number")) return false;
    r->number = number;
    if (EqualsUpper(keyword, "FETCH")) {
      r->type = ResponseType::kFetch;
      r->fetch.seq = number;
      return ReadFetch(t, r);
    }
    if (EqualsUpper(keyword, "EXISTS")) {
      r->type = ResponseType::kExists;
    } else if (EqualsUpper(keyword, "RECENT")) {
      r->type = ResponseType::kRecent;
    } else if (EqualsUpper(keyword, "EXPUNGE")) {
      r->type = ResponseType::kExpunge;
    } else {
      ReadOther(t, r, keyword);
      return true;
    }
    return t->ExpectEnd("after message number and response name");
  }

  if (!ReadKeyword(t, &keyword, "response name after '*'")) return false;
  if (std::optional<Condition> condition = ParseCondition(keyword)) {
    r->type = ResponseType::kCondition;
    r->condition = *condition;
    return ReadRespText(t, r, spare_items);
  }
  if (EqualsUpper(keyword, "CAPABILITY")) {
    r->type = ResponseType::kCapability;
    return ReadAtomsToEnd(t, &r->capabilities, "capability name");
  }
  if (EqualsUpper(keyword, "ENABLED")) {
    r->type = ResponseType::kEnabled;
    return ReadAtomsToEnd(t, &r->capabilities, "capability name");
  }
  if (EqualsUpper(keyword, "LIST") || EqualsUpper(keyword, "LSUB")) {
    r->type = ResponseType::kList;
    r->list.lsub = EqualsUpper(keyword, "LSUB");
    return ReadList(t, r);
  }
  if (EqualsUpper(keyword, "STATUS")) {
    r->type = ResponseType::kStatus;
    return ReadStatus(t, r);
  }
  if (EqualsUpper(keyword, "VANISHED")) {
    r->type = ResponseType::kVanished;
    return ReadVanished(t, r);
  }
  if (EqualsUpper(keyword, "FLAGS")) {
    r->type = ResponseType::kFlags;
    t->SkipSpaces();
    return t->ReadList(&r->flags, "flag list") && t->ExpectEnd("after flag list");
  }
  if (EqualsUpper(keyword, "SEARCH")) {
    r->type = ResponseType::kSearch;
    return ReadSearch(t, r);
  }
  if (EqualsUpper(keyword, "ESEARCH")) {
    r->type = ResponseType::kEsearch;
    t->Consume(' ');
    r->raw = t->Rest();
    return true;
  }
  ReadOther(t, r, keyword);
  return true;
}

}  // namespace

void ClearResponse(Response* r, std::vector<std::string_view>* spare_code_items) {
  r->type = ResponseType::kOther;
  r->tag = {};
  r->condition = Condition::kOk;
  if (r->code) {
    spare_code_items->swap(r->code->items);
    spare_code_items->clear();
    r->code.reset();
  }
  r->text = {};
  r->capabilities.clear();
  r->list.lsub = false;
  r->list.attributes.clear();
  r->list.delimiter = 0;
  r->list.mailbox = {};
  r->status = StatusData{};
  r->number = 0;
  FetchData& fetch = r->fetch;
  fetch.seq = 0;
  fetch.uid.reset();
  fetch.has_flags = false;
  fetch.flags.clear();
  fetch.internaldate.reset();
  fetch.rfc822_size.reset();
  fetch.modseq.reset();
  fetch.bodies.clear();
  r->vanished = VanishedData{};
  r->flags.clear();
  r->numbers.clear();
  r->search_modseq.reset();
  r->keyword = {};
  r->raw = {};
}

bool ReadResponse(Tokenizer* t, Response* r, std::vector<std::string_view>* spare_code_items) {
  if (t->AtEnd()) return t->Fail("empty response line");
  if (t->Consume('+')) {
    // "+ text"; some servers send a bare "+" (PROTOCOL.md §1.4).
    r->type = ResponseType::kContinuation;
    t->Consume(' ');
    r->text = t->Rest();
    return true;
  }
  std::string_view tag = t->ReadUntil(kSpace);
  if (tag.empty()) return t->Fail("expected tag or '*' at start of response");
  if (tag != "*") {
    for (char c : tag) {
      // tag = 1*<ASTRING-CHAR except "+">
      if (!IsLooseAtomChar(static_cast<unsigned char>(c)) || c == '\\' || c == '*' || c == '%' ||
          c == '+') {
        return t->Fail("malformed response tag");
      }
    }
  }
  if (!t->Consume(' ')) return t->Fail("expected space after tag");
  if (tag == "*") return ReadUntagged(t, r, spare_code_items);

  r->type = ResponseType::kTagged;
  r->tag = tag;
  std::string_view word;
  if (!ReadKeyword(t, &word, "OK, NO or BAD after tag")) return false;
  std::optional<Condition> condition = ParseCondition(word);
  if (!condition || *condition == Condition::kPreauth || *condition == Condition::kBye) {
    return t->Fail("expected OK, NO or BAD after tag");
  }
  r->condition = *condition;
  return ReadRespText(t, r, spare_code_items);
}

}  // namespace mailmirror::imap
