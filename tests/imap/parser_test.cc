// Tests for imap::ResponseParser. Almost every test goes through
// ParseEverySplit, which feeds the input whole, split in two at every byte
// position, and one byte at a time, and requires identical results: the
// parser must not care where the network cut its input.
#include "imap/parser.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <functional>
#include <optional>
#include <ostream>
#include <random>
#include <string>
#include <string_view>
#include <vector>

namespace {

using mailmirror::Error;
using mailmirror::ErrorKind;
using mailmirror::MakeError;
using mailmirror::Status;
using mailmirror::imap::Condition;
using mailmirror::imap::LiteralSink;
using mailmirror::imap::ParserLimits;
using mailmirror::imap::Response;
using mailmirror::imap::ResponseHandler;
using mailmirror::imap::ResponseParser;
using mailmirror::imap::ResponseType;
using std::string_literals::operator""s;

// ---------------------------------------------------------------------------
// Owned copies of what the parser delivers (its views die with the callback).

std::vector<std::string> Copy(const std::vector<std::string_view>& views) {
  return std::vector<std::string>(views.begin(), views.end());
}

struct OwnedCode {
  std::string name;
  std::string raw;
  std::optional<uint64_t> number;
  std::vector<std::string> items;
  bool operator==(const OwnedCode&) const = default;
};

struct OwnedBody {
  std::string item;
  std::string section;
  std::optional<uint32_t> origin;
  bool nil = false;
  bool streamed = false;
  uint64_t size = 0;
  std::string data;
  bool operator==(const OwnedBody&) const = default;
};

// Every field is copied whatever the type, so that state leaking from one
// response into the next shows up as a difference.
struct OwnedResponse {
  ResponseType type = ResponseType::kOther;
  std::string tag;
  Condition condition = Condition::kOk;
  std::optional<OwnedCode> code;
  std::string text;
  std::vector<std::string> capabilities;
  bool lsub = false;
  std::vector<std::string> attributes;
  char delimiter = 0;
  std::string mailbox;
  std::string status_mailbox;
  std::optional<uint32_t> messages, recent, uidnext, uidvalidity, unseen;
  std::optional<uint64_t> highestmodseq, status_size;
  uint32_t number = 0;
  uint32_t seq = 0;
  std::optional<uint32_t> uid;
  bool has_flags = false;
  std::vector<std::string> fetch_flags;
  std::optional<std::string> internaldate;
  std::optional<uint64_t> rfc822_size;
  std::optional<uint64_t> modseq;
  std::optional<uint64_t> gm_msgid;
  std::vector<OwnedBody> bodies;
  bool earlier = false;
  std::string uid_set;
  std::vector<std::string> flags;
  std::vector<uint32_t> numbers;
  std::optional<uint64_t> search_modseq;
  std::string keyword;
  std::string raw;
  bool operator==(const OwnedResponse&) const = default;
};

OwnedResponse Own(const Response& r) {
  OwnedResponse o;
  o.type = r.type;
  o.tag = r.tag;
  o.condition = r.condition;
  if (r.code) {
    o.code = OwnedCode{std::string(r.code->name), std::string(r.code->raw), r.code->number,
                       Copy(r.code->items)};
  }
  o.text = r.text;
  o.capabilities = Copy(r.capabilities);
  o.lsub = r.list.lsub;
  o.attributes = Copy(r.list.attributes);
  o.delimiter = r.list.delimiter;
  o.mailbox = r.list.mailbox;
  o.status_mailbox = r.status.mailbox;
  o.messages = r.status.messages;
  o.recent = r.status.recent;
  o.uidnext = r.status.uidnext;
  o.uidvalidity = r.status.uidvalidity;
  o.unseen = r.status.unseen;
  o.highestmodseq = r.status.highestmodseq;
  o.status_size = r.status.size;
  o.number = r.number;
  o.seq = r.fetch.seq;
  o.uid = r.fetch.uid;
  o.has_flags = r.fetch.has_flags;
  o.fetch_flags = Copy(r.fetch.flags);
  if (r.fetch.internaldate) o.internaldate = std::string(*r.fetch.internaldate);
  o.rfc822_size = r.fetch.rfc822_size;
  o.modseq = r.fetch.modseq;
  o.gm_msgid = r.fetch.gm_msgid;
  for (const auto& b : r.fetch.bodies) {
    o.bodies.push_back(OwnedBody{std::string(b.item), std::string(b.section), b.origin, b.nil,
                                 b.streamed, b.size, std::string(b.data)});
  }
  o.earlier = r.vanished.earlier;
  o.uid_set = r.vanished.uid_set;
  o.flags = Copy(r.flags);
  o.numbers = r.numbers;
  o.search_modseq = r.search_modseq;
  o.keyword = r.keyword;
  o.raw = r.raw;
  return o;
}

// Printable form for failure messages.
std::string Show(std::string_view bytes) {
  std::string out = "\"";
  for (unsigned char c : bytes) {
    if (c >= 0x20 && c < 0x7f && c != '\\' && c != '"') {
      out += static_cast<char>(c);
    } else {
      static const char kHex[] = "0123456789abcdef";
      out += "\\x";
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  return out + "\"";
}

std::string Show(const std::vector<std::string>& items) {
  std::string out = "(";
  for (const auto& item : items) {
    if (out.size() > 1) out += ' ';
    out += Show(item);
  }
  return out + ")";
}

std::ostream& operator<<(std::ostream& os, const OwnedResponse& r) {
  os << "{type=" << static_cast<int>(r.type) << " tag=" << Show(r.tag)
     << " cond=" << static_cast<int>(r.condition);
  if (r.code) {
    os << " code=[" << Show(r.code->name) << " raw=" << Show(r.code->raw)
       << " number=" << (r.code->number ? std::to_string(*r.code->number) : "-")
       << " items=" << Show(r.code->items) << "]";
  }
  os << " text=" << Show(r.text) << " caps=" << Show(r.capabilities) << " lsub=" << r.lsub
     << " attrs=" << Show(r.attributes) << " delim=" << static_cast<int>(r.delimiter)
     << " mailbox=" << Show(r.mailbox) << " status_mailbox=" << Show(r.status_mailbox)
     << " number=" << r.number << " seq=" << r.seq
     << " uid=" << (r.uid ? std::to_string(*r.uid) : "-") << " fetch_flags=" << Show(r.fetch_flags)
     << " bodies=" << r.bodies.size();
  for (const auto& b : r.bodies) {
    os << " [" << b.item << " " << Show(b.section) << " nil=" << b.nil << " streamed=" << b.streamed
       << " size=" << b.size << " data=" << Show(b.data.substr(0, 60)) << "]";
  }
  os << " uid_set=" << Show(r.uid_set) << " flags=" << Show(r.flags)
     << " numbers=" << r.numbers.size() << " keyword=" << Show(r.keyword) << " raw=" << Show(r.raw)
     << "}";
  return os;
}

struct OwnedLiteral {
  uint32_t seq = 0;
  std::string section;
  uint64_t size = 0;
  std::string data;  // all chunks, concatenated
  bool ended = false;
  bool operator==(const OwnedLiteral&) const = default;
};

// Records responses and streamed literals; can be told to fail.
class Recorder : public ResponseHandler, public LiteralSink {
 public:
  Status OnResponse(const Response& response) override {
    responses.push_back(Own(response));
    log += 'R';
    return on_response ? on_response(response) : Status::Ok();
  }
  Status OnLiteralBegin(uint32_t seq, std::string_view section, uint64_t size) override {
    literals.push_back(OwnedLiteral{seq, std::string(section), size, "", false});
    log += 'B';
    return fail_begin ? Status(*fail_begin) : Status::Ok();
  }
  Status OnLiteralData(std::string_view chunk) override {
    literals.back().data.append(chunk);
    chunks.push_back(chunk);
    return fail_data ? Status(*fail_data) : Status::Ok();
  }
  Status OnLiteralEnd() override {
    literals.back().ended = true;
    log += 'E';
    return fail_end ? Status(*fail_end) : Status::Ok();
  }

  std::vector<OwnedResponse> responses;
  std::vector<OwnedLiteral> literals;
  std::vector<std::string_view> chunks;  // views into the fed input
  std::string log;                       // R = response, B/E = literal begin/end
  std::function<Status(const Response&)> on_response;
  std::optional<Error> fail_begin, fail_data, fail_end;
};

// ---------------------------------------------------------------------------
// Feeding harness.

struct FeedSetup {
  ParserLimits limits;
  bool with_sink = true;
};

struct Outcome {
  std::vector<OwnedResponse> responses;
  std::vector<OwnedLiteral> literals;
  std::string log;
  std::optional<std::string> error;
  std::optional<ErrorKind> error_kind;
  bool idle = true;  // after the whole input (only when no error)
  bool operator==(const Outcome&) const = default;
};

std::ostream& operator<<(std::ostream& os, const Outcome& o) {
  os << "log=" << o.log << " error=" << (o.error ? Show(*o.error) : "-") << " idle=" << o.idle
     << "\n";
  for (const auto& r : o.responses) os << "  " << r << "\n";
  for (const auto& l : o.literals) {
    os << "  literal seq=" << l.seq << " section=" << Show(l.section) << " size=" << l.size
       << " got=" << l.data.size() << " ended=" << l.ended << "\n";
  }
  return os;
}

// Feeds `input` cut at the ascending positions `cuts`.
Outcome FeedChunks(std::string_view input, const FeedSetup& setup,
                   const std::vector<size_t>& cuts) {
  Recorder recorder;
  ResponseParser parser(&recorder, setup.with_sink ? &recorder : nullptr, setup.limits);
  Outcome outcome;
  size_t start = 0;
  for (size_t i = 0; i <= cuts.size(); ++i) {
    size_t end = i < cuts.size() ? cuts[i] : input.size();
    Status status = parser.Feed(input.substr(start, end - start));
    start = end;
    if (status.ok()) continue;
    if (!outcome.error) {
      outcome.error = status.error().message;
      outcome.error_kind = status.error().kind;
    } else if (status.error().message != *outcome.error) {
      ADD_FAILURE() << "error changed after the first: " << status.error().message;
    }
  }
  outcome.responses = std::move(recorder.responses);
  outcome.literals = std::move(recorder.literals);
  outcome.log = std::move(recorder.log);
  outcome.idle = outcome.error ? true : parser.idle();
  return outcome;
}

// Cut positions worth trying: all of them for short inputs; for long ones
// (streamed bodies) the edges plus a sample, to keep the suite quick.
std::vector<size_t> SplitPositions(size_t size) {
  std::vector<size_t> positions;
  constexpr size_t kAllUpTo = 4096;
  for (size_t i = 1; i < size; ++i) {
    if (size <= kAllUpTo || i < 600 || i + 600 > size || i % 97 == 0) positions.push_back(i);
  }
  return positions;
}

// Parses `input` whole, split in two at every byte, and byte by byte;
// expects the same outcome each way and returns it.
Outcome ParseEverySplit(std::string_view input, const FeedSetup& setup = {}) {
  Outcome whole = FeedChunks(input, setup, {});
  for (size_t cut : SplitPositions(input.size())) {
    Outcome split = FeedChunks(input, setup, {cut});
    if (!(split == whole)) {
      ADD_FAILURE() << "split at byte " << cut << " of " << Show(input.substr(0, 200))
                    << "\nwhole: " << whole << "split: " << split;
      return whole;
    }
  }
  std::vector<size_t> every_byte;
  for (size_t i = 1; i < input.size(); ++i) every_byte.push_back(i);
  Outcome bytes = FeedChunks(input, setup, every_byte);
  if (!(bytes == whole)) {
    ADD_FAILURE() << "one byte at a time differs for " << Show(input.substr(0, 200))
                  << "\nwhole: " << whole << "bytes: " << bytes;
  }
  return whole;
}

// The responses of a transcript that must parse without error.
std::vector<OwnedResponse> ParseAll(std::string_view input, const FeedSetup& setup = {}) {
  Outcome outcome = ParseEverySplit(input, setup);
  EXPECT_FALSE(outcome.error) << *outcome.error;
  EXPECT_TRUE(outcome.idle) << "partial response left over";
  return outcome.responses;
}

// The one response of `input`.
OwnedResponse ParseOne(std::string_view input, const FeedSetup& setup = {}) {
  std::vector<OwnedResponse> responses = ParseAll(input, setup);
  if (responses.size() != 1) {
    ADD_FAILURE() << "expected one response, got " << responses.size() << " for " << Show(input);
    return {};
  }
  return responses[0];
}

// The protocol error `input` must produce.
std::string ParseError(std::string_view input, const FeedSetup& setup = {}) {
  Outcome outcome = ParseEverySplit(input, setup);
  if (!outcome.error) {
    ADD_FAILURE() << "expected an error for " << Show(input) << "\ngot: " << outcome;
    return "";
  }
  EXPECT_EQ(outcome.error_kind, ErrorKind::kProtocol) << *outcome.error;
  return *outcome.error;
}

// "{n}" CRLF data.
std::string Lit(std::string_view data) {
  return "{" + std::to_string(data.size()) + "}\r\n" + std::string(data);
}

FeedSetup NoSink() {
  FeedSetup setup;
  setup.with_sink = false;
  return setup;
}

FeedSetup StreamAbove(size_t inline_max) {
  FeedSetup setup;
  setup.limits.inline_literal_max = inline_max;
  return setup;
}

using Strings = std::vector<std::string>;

// ---------------------------------------------------------------------------
// Tagged responses and continuation requests.

TEST(ParserTaggedTest, OkNoBadWithCodeAndText) {
  std::vector<OwnedResponse> r = ParseAll(
      "A1 OK [READ-WRITE] SELECT completed\r\n"
      "a2 no [TRYCREATE] Mailbox doesn't exist\r\n"
      "A3 BAD Command unknown\r\n");
  ASSERT_EQ(r.size(), 3u);
  EXPECT_EQ(r[0].type, ResponseType::kTagged);
  EXPECT_EQ(r[0].tag, "A1");
  EXPECT_EQ(r[0].condition, Condition::kOk);
  ASSERT_TRUE(r[0].code);
  EXPECT_EQ(r[0].code->name, "READ-WRITE");
  EXPECT_EQ(r[0].code->raw, "");
  EXPECT_EQ(r[0].text, "SELECT completed");
  EXPECT_EQ(r[1].tag, "a2");
  EXPECT_EQ(r[1].condition, Condition::kNo);
  EXPECT_EQ(r[1].code->name, "TRYCREATE");
  EXPECT_EQ(r[1].text, "Mailbox doesn't exist");
  EXPECT_EQ(r[2].condition, Condition::kBad);
  EXPECT_FALSE(r[2].code);
  EXPECT_EQ(r[2].text, "Command unknown");
}

TEST(ParserTaggedTest, MissingTextIsAccepted) {
  OwnedResponse r = ParseOne("A4 OK\r\n");
  EXPECT_EQ(r.type, ResponseType::kTagged);
  EXPECT_EQ(r.text, "");
  r = ParseOne("A5 Ok [READ-ONLY]\r\n");
  EXPECT_EQ(r.code->name, "READ-ONLY");
  EXPECT_EQ(r.text, "");
}

TEST(ParserTaggedTest, BracesInStatusTextAreNotALiteral) {
  // Status responses have no literals in their grammar; "{5}" is just text
  // and the next line is the next response.
  std::vector<OwnedResponse> r = ParseAll("A1 OK done {5}\r\n* 1 EXISTS\r\n");
  ASSERT_EQ(r.size(), 2u);
  EXPECT_EQ(r[0].text, "done {5}");
  EXPECT_EQ(r[1].type, ResponseType::kExists);
}

TEST(ParserTaggedTest, UnknownTaggedConditionIsProtocolError) {
  EXPECT_NE(ParseError("A1 FETCHED ok\r\n").find("expected OK, NO or BAD"), std::string::npos);
  ParseError("A1 PREAUTH x\r\n");
  ParseError("A1\r\n");
  ParseError("A(1 OK x\r\n");
}

TEST(ParserContinuationTest, TextBase64AndBarePlus) {
  std::vector<OwnedResponse> r = ParseAll(
      "+ Ready for literal data\r\n"
      "+ dXNlcj1mb28=\r\n"
      "+\r\n"
      "+ \r\n"
      "+ {5}\r\n");
  ASSERT_EQ(r.size(), 5u);
  for (const auto& response : r) EXPECT_EQ(response.type, ResponseType::kContinuation);
  EXPECT_EQ(r[0].text, "Ready for literal data");
  EXPECT_EQ(r[1].text, "dXNlcj1mb28=");
  EXPECT_EQ(r[2].text, "");
  EXPECT_EQ(r[3].text, "");
  EXPECT_EQ(r[4].text, "{5}");  // continuation lines carry no literal
}

// ---------------------------------------------------------------------------
// Untagged status responses and response codes.

TEST(ParserConditionTest, AllConditions) {
  std::vector<OwnedResponse> r = ParseAll(
      "* OK IMAP4rev1 Service Ready\r\n"
      "* NO [ALERT] Mailbox is at 95% of quota\r\n"
      "* BAD Unattributed error\r\n"
      "* PREAUTH [CAPABILITY IMAP4rev2] Logged in as alice\r\n"
      "* BYE Autologout; idle for too long\r\n"
      "* bye\r\n");
  ASSERT_EQ(r.size(), 6u);
  for (const auto& response : r) EXPECT_EQ(response.type, ResponseType::kCondition);
  EXPECT_EQ(r[0].condition, Condition::kOk);
  EXPECT_EQ(r[0].text, "IMAP4rev1 Service Ready");
  EXPECT_EQ(r[1].condition, Condition::kNo);
  EXPECT_EQ(r[1].code->name, "ALERT");
  EXPECT_EQ(r[1].text, "Mailbox is at 95% of quota");
  EXPECT_EQ(r[2].condition, Condition::kBad);
  EXPECT_EQ(r[3].condition, Condition::kPreauth);
  EXPECT_EQ(r[3].code->items, Strings{"IMAP4rev2"});
  EXPECT_EQ(r[4].condition, Condition::kBye);
  EXPECT_EQ(r[5].condition, Condition::kBye);
  EXPECT_EQ(r[5].text, "");
}

TEST(ParserCodeTest, SingleNumberCodes) {
  std::vector<OwnedResponse> r = ParseAll(
      "* OK [UIDVALIDITY 3857529045] UIDs valid\r\n"
      "* OK [UIDNEXT 4392] Predicted next UID\r\n"
      "* OK [UNSEEN 12] Message 12 is first unseen\r\n"
      "* ok [uidvalidity 1] lower case\r\n");
  ASSERT_EQ(r.size(), 4u);
  EXPECT_EQ(r[0].code->name, "UIDVALIDITY");
  EXPECT_EQ(r[0].code->raw, "3857529045");
  EXPECT_EQ(r[0].code->number, 3857529045u);
  EXPECT_EQ(r[0].text, "UIDs valid");
  EXPECT_EQ(r[1].code->number, 4392u);
  EXPECT_EQ(r[2].code->number, 12u);
  EXPECT_EQ(r[3].code->name, "uidvalidity");  // kept as sent
  EXPECT_EQ(r[3].code->number, 1u);
}

TEST(ParserCodeTest, GmailHighestModseqWithoutText) {
  OwnedResponse r = ParseOne("* OK [HIGHESTMODSEQ 90060115205545359]\r\n");
  EXPECT_EQ(r.type, ResponseType::kCondition);
  EXPECT_EQ(r.code->name, "HIGHESTMODSEQ");
  EXPECT_EQ(r.code->number, 90060115205545359u);
  EXPECT_EQ(r.text, "");
  r = ParseOne("* OK [HIGHESTMODSEQ 18446744073709551615] \r\n");
  EXPECT_EQ(r.code->number, UINT64_MAX);
}

TEST(ParserCodeTest, AppendUidAndCopyUidKeepRawAndFirstNumber) {
  std::vector<OwnedResponse> r = ParseAll(
      "A5 OK [APPENDUID 38505 3955] APPEND completed\r\n"
      "A6 OK [COPYUID 38505 304,319:320 3956:3958] Done\r\n"
      "* OK [COPYUID 1 2 3] Moved\r\n");
  ASSERT_EQ(r.size(), 3u);
  EXPECT_EQ(r[0].code->name, "APPENDUID");
  EXPECT_EQ(r[0].code->number, 38505u);
  EXPECT_EQ(r[0].code->raw, "38505 3955");
  EXPECT_EQ(r[1].code->number, 38505u);
  EXPECT_EQ(r[1].code->raw, "38505 304,319:320 3956:3958");
  EXPECT_EQ(r[1].text, "Done");
  EXPECT_EQ(r[2].type, ResponseType::kCondition);
  EXPECT_EQ(r[2].code->number, 1u);
}

TEST(ParserCodeTest, CapabilityPermanentFlagsAndBadcharsetItems) {
  std::vector<OwnedResponse> r = ParseAll(
      "* OK [CAPABILITY IMAP4rev1 SASL-IR LITERAL+ AUTH=PLAIN] Dovecot ready.\r\n"
      "* OK [PERMANENTFLAGS (\\Deleted \\Seen $Forwarded \\*)] Limited\r\n"
      "* OK [PERMANENTFLAGS ()] No permanent flags permitted\r\n"
      "A7 NO [BADCHARSET (UTF-8 \"US-ASCII\")] Charset not supported\r\n"
      "A8 NO [BADCHARSET] Charset not supported\r\n");
  ASSERT_EQ(r.size(), 5u);
  EXPECT_EQ(r[0].code->items, (Strings{"IMAP4rev1", "SASL-IR", "LITERAL+", "AUTH=PLAIN"}));
  EXPECT_EQ(r[0].text, "Dovecot ready.");
  EXPECT_EQ(r[1].code->items, (Strings{"\\Deleted", "\\Seen", "$Forwarded", "\\*"}));
  EXPECT_EQ(r[1].code->raw, "(\\Deleted \\Seen $Forwarded \\*)");
  EXPECT_TRUE(r[2].code->items.empty());
  EXPECT_EQ(r[2].text, "No permanent flags permitted");
  EXPECT_EQ(r[3].code->items, (Strings{"UTF-8", "US-ASCII"}));
  EXPECT_TRUE(r[4].code->items.empty());
  EXPECT_FALSE(r[4].code->number);
}

TEST(ParserCodeTest, UnknownCodesAreSkippedToTheMatchingBracket) {
  std::vector<OwnedResponse> r = ParseAll(
      "* OK [X-WEIRD (a (b \"c]d\" \"e\\\"]\") \"\") f] text after\r\n"
      "* OK [MAILBOXID (F2212ea87-6097-4256-9d51-71338625)] Ok\r\n"
      "* NO [X-EMPTY-PAYLOAD ] x\r\n"
      "* OK [CLOSED] Previous mailbox closed.\r\n");
  ASSERT_EQ(r.size(), 4u);
  EXPECT_EQ(r[0].code->name, "X-WEIRD");
  EXPECT_EQ(r[0].code->raw, "(a (b \"c]d\" \"e\\\"]\") \"\") f");
  EXPECT_FALSE(r[0].code->number);
  EXPECT_TRUE(r[0].code->items.empty());
  EXPECT_EQ(r[0].text, "text after");
  EXPECT_EQ(r[1].code->raw, "(F2212ea87-6097-4256-9d51-71338625)");
  EXPECT_EQ(r[1].text, "Ok");
  EXPECT_EQ(r[2].code->raw, "");
  EXPECT_EQ(r[3].code->name, "CLOSED");
}

TEST(ParserCodeTest, MalformedKnownCodesAreProtocolErrors) {
  EXPECT_NE(ParseError("* OK [UIDVALIDITY 4294967296] x\r\n").find("does not fit in 32 bits"),
            std::string::npos);
  EXPECT_NE(ParseError("* OK [UIDNEXT abc] x\r\n").find("UIDNEXT"), std::string::npos);
  ParseError("* OK [HIGHESTMODSEQ 18446744073709551616]\r\n");
  ParseError("* OK [UIDNEXT 5 6] x\r\n");
  ParseError("* OK [PERMANENTFLAGS \\Seen] x\r\n");
  ParseError("A1 OK [APPENDUID x 5] x\r\n");
  EXPECT_NE(ParseError("* OK [ALERT unterminated\r\n").find("unterminated response code"),
            std::string::npos);
  ParseError("* OK [X \"unterminated]\r\n");
  EXPECT_NE(ParseError("* OK [] x\r\n").find("empty response code"), std::string::npos);
}

// ---------------------------------------------------------------------------
// CAPABILITY, ENABLED.

TEST(ParserCapabilityTest, CapabilityAndEnabledWithTrailingSpaces) {
  std::vector<OwnedResponse> r = ParseAll(
      "* CAPABILITY IMAP4rev1 UNSELECT IDLE X-GM-EXT-1 COMPRESS=DEFLATE APPENDLIMIT=35651584 \r\n"
      "* capability imap4rev1\r\n"
      "* ENABLED\r\n"
      "* ENABLED CONDSTORE QRESYNC\r\n");
  ASSERT_EQ(r.size(), 4u);
  EXPECT_EQ(r[0].type, ResponseType::kCapability);
  EXPECT_EQ(r[0].capabilities, (Strings{"IMAP4rev1", "UNSELECT", "IDLE", "X-GM-EXT-1",
                                        "COMPRESS=DEFLATE", "APPENDLIMIT=35651584"}));
  EXPECT_EQ(r[1].type, ResponseType::kCapability);
  EXPECT_EQ(r[1].capabilities, Strings{"imap4rev1"});
  EXPECT_EQ(r[2].type, ResponseType::kEnabled);
  EXPECT_TRUE(r[2].capabilities.empty());
  EXPECT_EQ(r[3].type, ResponseType::kEnabled);
  EXPECT_EQ(r[3].capabilities, (Strings{"CONDSTORE", "QRESYNC"}));
}

// ---------------------------------------------------------------------------
// LIST and LSUB.

TEST(ParserListTest, AttributesDelimiterAndAtomMailbox) {
  std::vector<OwnedResponse> r = ParseAll(
      "* LIST (\\HasNoChildren) \"/\" INBOX\r\n"
      "* LIST (\\HasChildren \\Noselect) \"/\" \"[Gmail]\"\r\n"
      "* LIST (\\HasNoChildren \\Sent) \"/\" [Gmail]/Sent\r\n"
      "* LIST () NIL Public\r\n"
      "* LSUB () \".\" Trash\r\n"
      "* list (\\hasnochildren) \"/\" inbox\r\n");
  ASSERT_EQ(r.size(), 6u);
  EXPECT_EQ(r[0].type, ResponseType::kList);
  EXPECT_FALSE(r[0].lsub);
  EXPECT_EQ(r[0].attributes, Strings{"\\HasNoChildren"});
  EXPECT_EQ(r[0].delimiter, '/');
  EXPECT_EQ(r[0].mailbox, "INBOX");
  EXPECT_EQ(r[1].attributes, (Strings{"\\HasChildren", "\\Noselect"}));
  EXPECT_EQ(r[1].mailbox, "[Gmail]");
  EXPECT_EQ(r[2].mailbox, "[Gmail]/Sent");
  EXPECT_TRUE(r[3].attributes.empty());
  EXPECT_EQ(r[3].delimiter, 0);
  EXPECT_EQ(r[3].mailbox, "Public");
  EXPECT_TRUE(r[4].lsub);
  EXPECT_EQ(r[4].delimiter, '.');
  EXPECT_EQ(r[5].type, ResponseType::kList);
  EXPECT_EQ(r[5].attributes, Strings{"\\hasnochildren"});  // flags kept as sent
  EXPECT_EQ(r[5].mailbox, "inbox");
}

TEST(ParserListTest, QuotedEscapesAndEightBitBytes) {
  std::vector<OwnedResponse> r = ParseAll(
      "* LIST (\\Noinferiors) \"\\\\\" \"Foo\\\\Bar \\\"q\\\" \\d\"\r\n"
      "* LIST () \"/\" \"Entw\xC3\xBC"
      "rfe\"\r\n"
      "* LIST () \"/\" Entw\xFC"
      "rfe/\xFF\x80\r\n"
      "* LIST () \"/\" \"\"\r\n");
  ASSERT_EQ(r.size(), 4u);
  EXPECT_EQ(r[0].delimiter, '\\');
  // \\ and \" are escapes; a backslash before another byte keeps that byte.
  EXPECT_EQ(r[0].mailbox, "Foo\\Bar \"q\" d");
  EXPECT_EQ(r[1].mailbox,
            "Entw\xC3\xBC"
            "rfe");
  EXPECT_EQ(r[2].mailbox,
            "Entw\xFC"
            "rfe/\xFF\x80");
  EXPECT_EQ(r[3].mailbox, "");
}

TEST(ParserListTest, MailboxAsLiteral) {
  std::vector<OwnedResponse> r = ParseAll(
      "* LIST (\\HasNoChildren) \"/\" {15}\r\nFolder \"quoted\"\r\n"
      "* LIST () \".\" {0}\r\n\r\n"
      "* LIST () \"/\" " +
      Lit("a\r\nb{3}\r\n") +
      "\r\n"
      "* LIST () \"/\" " +
      Lit("A{1}") +
      "\r\n"
      "* LIST () {1}\r\n/ " +
      Lit("x") + "\r\n");
  ASSERT_EQ(r.size(), 5u);
  EXPECT_EQ(r[0].mailbox, "Folder \"quoted\"");
  EXPECT_EQ(r[1].mailbox, "");
  EXPECT_EQ(r[1].delimiter, '.');
  // Literal bytes are never scanned for line ends or literal headers.
  EXPECT_EQ(r[2].mailbox, "a\r\nb{3}\r\n");
  EXPECT_EQ(r[3].mailbox, "A{1}");
  EXPECT_EQ(r[4].delimiter, '/');
  EXPECT_EQ(r[4].mailbox, "x");
}

TEST(ParserListTest, ListExtendedDataIsIgnored) {
  OwnedResponse r = ParseOne(
      "* LIST (\\Subscribed \\HasChildren) \"/\" \"Foo\" (\"CHILDINFO\" (\"SUBSCRIBED\") "
      "\"OLDNAME\" (\"Bar\"))\r\n");
  EXPECT_EQ(r.mailbox, "Foo");
  EXPECT_EQ(r.attributes, (Strings{"\\Subscribed", "\\HasChildren"}));
}

TEST(ParserListTest, MalformedListIsProtocolError) {
  EXPECT_NE(ParseError("* LIST () \"ab\" INBOX\r\n").find("delimiter"), std::string::npos);
  ParseError("* LIST\r\n");
  ParseError("* LIST (\\Noselect \"/\" INBOX\r\n");
  ParseError("* LIST () \"/\"\r\n");
  ParseError("* LIST () \"/\" \"unterminated\r\n");
  ParseError("* LIST () \"/\" (INBOX)\r\n");
}

// ---------------------------------------------------------------------------
// STATUS.

TEST(ParserStatusTest, AllItemsInAnyOrder) {
  OwnedResponse r = ParseOne(
      "* STATUS INBOX (MESSAGES 231 UIDNEXT 44292 UIDVALIDITY 1 UNSEEN 3 RECENT 0 "
      "HIGHESTMODSEQ 9007199254740993 SIZE 123456789012)\r\n");
  EXPECT_EQ(r.type, ResponseType::kStatus);
  EXPECT_EQ(r.status_mailbox, "INBOX");
  EXPECT_EQ(r.messages, 231u);
  EXPECT_EQ(r.uidnext, 44292u);
  EXPECT_EQ(r.uidvalidity, 1u);
  EXPECT_EQ(r.unseen, 3u);
  EXPECT_EQ(r.recent, 0u);
  EXPECT_EQ(r.highestmodseq, 9007199254740993u);
  EXPECT_EQ(r.status_size, 123456789012u);

  r = ParseOne("* status \"Sent Items\" (uidnext 5 messages 3)\r\n");
  EXPECT_EQ(r.status_mailbox, "Sent Items");
  EXPECT_EQ(r.uidnext, 5u);
  EXPECT_EQ(r.messages, 3u);
  EXPECT_FALSE(r.unseen);
  EXPECT_FALSE(r.highestmodseq);
}

TEST(ParserStatusTest, UnknownItemsAreSkipped) {
  OwnedResponse r = ParseOne(
      "* STATUS Archive (X-FOO (1 2 (3 \"a)\")) UIDNEXT 5 DELETED 2 APPENDLIMIT NIL "
      "X-STR \"a b\" X-LIT {3}\r\n)()  MESSAGES 3)\r\n");
  EXPECT_EQ(r.uidnext, 5u);
  EXPECT_EQ(r.messages, 3u);
}

TEST(ParserStatusTest, TrailingSpaceLiteralMailboxAndEmptyList) {
  std::vector<OwnedResponse> r = ParseAll(
      "* STATUS INBOX (MESSAGES 2) \r\n"
      "* STATUS {5}\r\nIN BX (UIDNEXT 7)\r\n"
      "* STATUS INBOX ()\r\n"
      "* STATUS \"[Gmail]/All Mail\" ( MESSAGES 1  UNSEEN 0 )\r\n");
  ASSERT_EQ(r.size(), 4u);
  EXPECT_EQ(r[0].messages, 2u);
  EXPECT_EQ(r[1].status_mailbox, "IN BX");
  EXPECT_EQ(r[1].uidnext, 7u);
  EXPECT_EQ(r[2].type, ResponseType::kStatus);
  EXPECT_FALSE(r[2].messages);
  EXPECT_EQ(r[3].status_mailbox, "[Gmail]/All Mail");
  EXPECT_EQ(r[3].unseen, 0u);
}

TEST(ParserStatusTest, BadNumbersAreProtocolErrors) {
  EXPECT_NE(ParseError("* STATUS INBOX (MESSAGES 4294967296)\r\n").find("MESSAGES"),
            std::string::npos);
  ParseError("* STATUS INBOX (UIDNEXT x)\r\n");
  ParseError("* STATUS INBOX (HIGHESTMODSEQ 18446744073709551616)\r\n");
  ParseError("* STATUS INBOX (MESSAGES 1\r\n");
  ParseError("* STATUS INBOX MESSAGES 1\r\n");
  ParseError("* STATUS INBOX (MESSAGES 1) x\r\n");
}

// ---------------------------------------------------------------------------
// EXISTS, RECENT, EXPUNGE.

TEST(ParserMessageNumberTest, ExistsRecentExpunge) {
  std::vector<OwnedResponse> r = ParseAll(
      "* 23 EXISTS\r\n"
      "* 0 RECENT\r\n"
      "* 7 EXPUNGE\r\n"
      "* 4294967295 exists \r\n");
  ASSERT_EQ(r.size(), 4u);
  EXPECT_EQ(r[0].type, ResponseType::kExists);
  EXPECT_EQ(r[0].number, 23u);
  EXPECT_EQ(r[1].type, ResponseType::kRecent);
  EXPECT_EQ(r[1].number, 0u);
  EXPECT_EQ(r[2].type, ResponseType::kExpunge);
  EXPECT_EQ(r[2].number, 7u);
  EXPECT_EQ(r[3].type, ResponseType::kExists);
  EXPECT_EQ(r[3].number, 4294967295u);
}

TEST(ParserMessageNumberTest, OverflowAndJunkAreProtocolErrors) {
  EXPECT_NE(ParseError("* 4294967296 EXISTS\r\n").find("does not fit in 32 bits"),
            std::string::npos);
  ParseError("* 3 EXISTS x\r\n");
  ParseError("* 3\r\n");
  ParseError("* 3 \r\n");
}

// ---------------------------------------------------------------------------
// FETCH.

TEST(ParserFetchTest, SyncItems) {
  OwnedResponse r = ParseOne(
      "* 12 FETCH (UID 4827313 FLAGS (\\Seen \\Answered $Forwarded) "
      "INTERNALDATE \" 7-Jul-1996 02:44:25 -0700\" RFC822.SIZE 44827 "
      "MODSEQ (12121231000))\r\n");
  EXPECT_EQ(r.type, ResponseType::kFetch);
  EXPECT_EQ(r.seq, 12u);
  EXPECT_EQ(r.number, 12u);
  EXPECT_EQ(r.uid, 4827313u);
  EXPECT_TRUE(r.has_flags);
  EXPECT_EQ(r.fetch_flags, (Strings{"\\Seen", "\\Answered", "$Forwarded"}));
  EXPECT_EQ(r.internaldate, " 7-Jul-1996 02:44:25 -0700");
  EXPECT_EQ(r.rfc822_size, 44827u);
  EXPECT_EQ(r.modseq, 12121231000u);
  EXPECT_TRUE(r.bodies.empty());
}

TEST(ParserFetchTest, EmptyFlagsAndMissingItems) {
  OwnedResponse r = ParseOne("* 1 FETCH (FLAGS ())\r\n");
  EXPECT_TRUE(r.has_flags);
  EXPECT_TRUE(r.fetch_flags.empty());
  EXPECT_FALSE(r.uid);
  r = ParseOne("* 2 FETCH (UID 9)\r\n");
  EXPECT_FALSE(r.has_flags);
  r = ParseOne("* 3 FETCH ()\r\n");
  EXPECT_EQ(r.seq, 3u);
}

TEST(ParserFetchTest, MixedCaseItemsAndNil) {
  OwnedResponse r = ParseOne(
      "* 6 fetch (uid 8 flags (\\seen) body[] nil modseq (3) rfc822.size 10 "
      "internaldate NIL Body[Text] NiL)\r\n",
      NoSink());
  EXPECT_EQ(r.type, ResponseType::kFetch);
  EXPECT_EQ(r.uid, 8u);
  EXPECT_EQ(r.fetch_flags, Strings{"\\seen"});
  EXPECT_EQ(r.modseq, 3u);
  EXPECT_EQ(r.rfc822_size, 10u);
  EXPECT_FALSE(r.internaldate);
  ASSERT_EQ(r.bodies.size(), 2u);
  EXPECT_EQ(r.bodies[0].item, "body");
  EXPECT_TRUE(r.bodies[0].nil);
  EXPECT_EQ(r.bodies[1].section, "Text");
  EXPECT_TRUE(r.bodies[1].nil);
}

TEST(ParserFetchTest, InlineBodiesWithoutSink) {
  std::string header = "Message-ID: <a@b>\r\n\r\n";
  OwnedResponse r = ParseOne("* 2 FETCH (BODY[] " + Lit("Hello\r\nWorld\r\n") +
                                 " BODY[HEADER.FIELDS (\"MESSAGE-ID\")] " + Lit(header) +
                                 " BODY[]<1024> \"short \\\"q\\\"\" BODY[1.2] {0}\r\n UID 9)\r\n",
                             NoSink());
  EXPECT_EQ(r.uid, 9u);
  ASSERT_EQ(r.bodies.size(), 4u);
  EXPECT_EQ(r.bodies[0].item, "BODY");
  EXPECT_EQ(r.bodies[0].section, "");
  EXPECT_FALSE(r.bodies[0].origin);
  EXPECT_EQ(r.bodies[0].data, "Hello\r\nWorld\r\n");
  EXPECT_EQ(r.bodies[0].size, 14u);
  EXPECT_FALSE(r.bodies[0].streamed);
  EXPECT_EQ(r.bodies[1].section, "HEADER.FIELDS (\"MESSAGE-ID\")");
  EXPECT_EQ(r.bodies[1].data, header);
  EXPECT_EQ(r.bodies[2].origin, 1024u);
  EXPECT_EQ(r.bodies[2].data, "short \"q\"");
  EXPECT_EQ(r.bodies[3].section, "1.2");
  EXPECT_EQ(r.bodies[3].data, "");
  EXPECT_FALSE(r.bodies[3].nil);
}

TEST(ParserFetchTest, BinaryLiteral8WithNulBytes) {
  std::string data = "a\0b\0c\r\n"s;
  OwnedResponse r = ParseOne("* 4 FETCH (BINARY[1] ~" + Lit(data) + " UID 3)\r\n", NoSink());
  ASSERT_EQ(r.bodies.size(), 1u);
  EXPECT_EQ(r.bodies[0].item, "BINARY");
  EXPECT_EQ(r.bodies[0].section, "1");
  EXPECT_EQ(r.bodies[0].data, data);
  EXPECT_EQ(r.uid, 3u);
}

TEST(ParserFetchTest, Rfc822ItemsMapToBodySections) {
  OwnedResponse r = ParseOne("* 5 FETCH (RFC822.HEADER " + Lit("H: v\r\n\r\n") + " RFC822.TEXT " +
                                 Lit("text") + " RFC822 " + Lit("all") + ")\r\n",
                             NoSink());
  ASSERT_EQ(r.bodies.size(), 3u);
  EXPECT_EQ(r.bodies[0].item, "RFC822.HEADER");
  EXPECT_EQ(r.bodies[0].section, "HEADER");
  EXPECT_EQ(r.bodies[0].data, "H: v\r\n\r\n");
  EXPECT_EQ(r.bodies[1].section, "TEXT");
  EXPECT_EQ(r.bodies[1].data, "text");
  EXPECT_EQ(r.bodies[2].item, "RFC822");
  EXPECT_EQ(r.bodies[2].section, "");
  EXPECT_EQ(r.bodies[2].data, "all");
}

TEST(ParserFetchTest, UnknownItemsAreSkippedIncludingNestedListsAndLiterals) {
  OwnedResponse r = ParseOne(
      "* 7 FETCH (ENVELOPE (\"Mon, 7 Feb 1994 21:52:25 -0800\" " + Lit("Subject \"x\" )(") +
      " ((\"Terry Gray\" NIL \"gray\" \"cac.washington.edu\")) NIL NIL NIL NIL NIL "
      "\"<B27397-0100000@cac.washington.edu>\") "
      "BODYSTRUCTURE ((\"TEXT\" \"PLAIN\" (\"CHARSET\" \"US-ASCII\") NIL NIL \"7BIT\" 1152 -1)"
      "(\"TEXT\" \"PLAIN\" NIL NIL NIL \"7BIT\" 12 1) \"MIXED\") "
      "X-GM-LABELS (\"\\\\Inbox\" " +
      Lit("La)be") +
      " [Gmail]/Starred Work) "
      "X-GM-MSGID 1278455344230334865 EMAILID (M6d99ac3275bb4e) THREADID NIL "
      "BINARY.SIZE[1] 42 BODY (\"TEXT\" \"PLAIN\" NIL NIL NIL \"7BIT\" 3 1) UID 99)\r\n");
  EXPECT_EQ(r.type, ResponseType::kFetch);
  EXPECT_EQ(r.uid, 99u);
  EXPECT_TRUE(r.bodies.empty());
}

TEST(ParserFetchTest, NumbersAreOverflowChecked) {
  OwnedResponse r = ParseOne(
      "* 1 FETCH (UID 4294967295 MODSEQ (18446744073709551615) RFC822.SIZE 5000000000)\r\n");
  EXPECT_EQ(r.uid, 4294967295u);
  EXPECT_EQ(r.modseq, UINT64_MAX);
  EXPECT_EQ(r.rfc822_size, 5000000000u);
  EXPECT_NE(ParseError("* 1 FETCH (UID 4294967296)\r\n").find("UID does not fit in 32 bits"),
            std::string::npos);
  ParseError("* 1 FETCH (MODSEQ (18446744073709551616))\r\n");
  ParseError("* 1 FETCH (BODY[]<4294967296> NIL)\r\n");
  ParseError("* 99999999999 FETCH (UID 1)\r\n");
}

TEST(ParserFetchTest, GmailMessageIdAndLabels) {
  OwnedResponse r = ParseOne(
      "* 3 FETCH (X-GM-THRID 1266894439832287888 X-GM-MSGID 18446744073709551615 UID 7 "
      "X-GM-LABELS (\\Inbox \"Work/Project\" \\Important) FLAGS (\\Seen))\r\n");
  EXPECT_EQ(r.uid, 7u);
  EXPECT_EQ(r.gm_msgid, UINT64_MAX);
  EXPECT_TRUE(r.has_flags);
  EXPECT_FALSE(ParseOne("* 3 FETCH (UID 7)\r\n").gm_msgid);
  ParseError("* 1 FETCH (X-GM-MSGID 18446744073709551616)\r\n");
  ParseError("* 1 FETCH (X-GM-MSGID abc)\r\n");
}

// Flag-only FETCH lines whole in the input are read in place, without the
// tokenizer; fed a byte at a time they take the general path. ParseOne
// requires both readings to agree, so these lines check the fast path
// against the general one, including the shapes it must hand over.
TEST(ParserFetchTest, FlagOnlyLinesAgreeWithTheGeneralReading) {
  OwnedResponse r = ParseOne("* 7 FETCH (UID 70 FLAGS (\\Seen $Forwarded Junk) MODSEQ (9))\r\n");
  EXPECT_EQ(r.type, ResponseType::kFetch);
  EXPECT_EQ(r.number, 7u);
  EXPECT_EQ(r.seq, 7u);
  EXPECT_EQ(r.uid, 70u);
  EXPECT_EQ(r.fetch_flags, (Strings{"\\Seen", "$Forwarded", "Junk"}));
  EXPECT_EQ(r.modseq, 9u);
  r = ParseOne("* 8 FETCH (FLAGS () UID 4294967295)\r\n");
  EXPECT_TRUE(r.has_flags);
  EXPECT_TRUE(r.fetch_flags.empty());
  EXPECT_EQ(r.uid, 4294967295u);
  r = ParseOne("* 9 FETCH (MODSEQ (18446744073709551615) FLAGS (\\Recent))\n");  // bare LF
  EXPECT_EQ(r.modseq, UINT64_MAX);
  // Shapes left to the general path, which still reads them.
  for (const char* line :
       {"* 1 FETCH (UID 1 FLAGS (\\Seen ))\r\n", "* 1 FETCH (uid 1)\r\n", "* 1 FETCH ( UID 1)\r\n",
        "* 1 FETCH (UID 1  FLAGS ())\r\n", "* 01 FETCH (UID 1)\r\n", "* 1 FETCH (UID 01)\r\n",
        "* 1 FETCH (FLAGS (\\Seen) FLAGS (\\Draft))\r\n", "* 1 FETCH (UID 2 UID 3)\r\n",
        "* 1 FETCH (FLAGS (\\*))\r\n", "* 1 FETCH (UID 5 RFC822.SIZE 10)\r\n"}) {
    r = ParseOne(line);
    EXPECT_EQ(r.type, ResponseType::kFetch) << line;
  }
  // And errors stay errors.
  ParseError("* 1 FETCH (UID 4294967296 FLAGS ())\r\n");
  ParseError("* 1 FETCH (FLAGS (\\Seen) MODSEQ (1)\r\n");
  ParseError("* 1 FETCH (FLAGS (a{b))\r\n");
}

TEST(ParserFetchTest, MalformedFetchIsProtocolError) {
  EXPECT_NE(ParseError("* 1 FETCH (UID)\r\n").find("expected space after FETCH item UID"),
            std::string::npos);
  ParseError("* 1 FETCH (UID x)\r\n");
  ParseError("* 1 FETCH (FLAGS (\\Seen)\r\n");
  ParseError("* 1 FETCH UID 1\r\n");
  ParseError("* 1 FETCH (UID 1) junk\r\n");
  ParseError("* 1 FETCH (UID 1 2)\r\n");
  ParseError("* 1 FETCH (MODSEQ 5)\r\n");
  ParseError("* 1 FETCH (BODY[ NIL)\r\n");
  ParseError("* 1 FETCH (BODY[] atom)\r\n");
  ParseError("* 1 FETCH (BODY[] {3}x)\r\n");
  ParseError("* 1 FETCH (X-FOO (a b)\r\n");
  ParseError("* 1 FETCH\r\n");
}

// ---------------------------------------------------------------------------
// Streaming body literals to the sink.

std::string MakeBody(size_t size) {
  std::string body;
  std::mt19937 rng(7);
  const std::string pieces[] = {"Line of text\r\n", "{5}\r\n",     "\r\n", "* 1 EXISTS\r\n",
                                "\"quoted\"",       "\0\xff\x80"s, ")",    "(",
                                "~{3}\r\n"};
  while (body.size() < size) body += pieces[rng() % std::size(pieces)];
  body.resize(size);
  return body;
}

TEST(ParserStreamTest, BodyChunksConcatenateAndUidAfterBodyIsDelivered) {
  std::string body = MakeBody(3000);
  Outcome out = ParseEverySplit(
      "* 12 FETCH (FLAGS (\\Seen) BODY[] " + Lit(body) + " UID 4242)\r\n* 13 EXISTS\r\n",
      StreamAbove(100));
  ASSERT_FALSE(out.error) << *out.error;
  EXPECT_EQ(out.log, "BERR");  // the FETCH arrives after the literal ends
  ASSERT_EQ(out.literals.size(), 1u);
  EXPECT_EQ(out.literals[0].seq, 12u);
  EXPECT_EQ(out.literals[0].section, "");
  EXPECT_EQ(out.literals[0].size, 3000u);
  EXPECT_TRUE(out.literals[0].data == body) << "streamed bytes differ";
  EXPECT_TRUE(out.literals[0].ended);
  ASSERT_EQ(out.responses.size(), 2u);
  const OwnedResponse& r = out.responses[0];
  EXPECT_EQ(r.uid, 4242u);
  EXPECT_TRUE(r.has_flags);
  ASSERT_EQ(r.bodies.size(), 1u);
  EXPECT_TRUE(r.bodies[0].streamed);
  EXPECT_EQ(r.bodies[0].size, 3000u);
  EXPECT_EQ(r.bodies[0].data, "");
  EXPECT_EQ(r.bodies[0].item, "BODY");
  EXPECT_EQ(out.responses[1].type, ResponseType::kExists);
}

TEST(ParserStreamTest, ChunksArePassedAsTheyArriveWithoutCopying) {
  std::string body(1000, 'x');
  std::string input = "* 3 FETCH (BODY[TEXT] {1000}\r\n" + body + ")\r\n";
  size_t header = input.find('x');
  Recorder recorder;
  ResponseParser parser(&recorder, &recorder, {});
  // Cuts inside the header, inside the body twice, and after the body.
  std::vector<size_t> cuts = {10, header + 1, header + 400, header + 1000, input.size()};
  size_t start = 0;
  for (size_t cut : cuts) {
    ASSERT_TRUE(parser.Feed(std::string_view(input).substr(start, cut - start)).ok());
    start = cut;
  }
  ASSERT_EQ(recorder.chunks.size(), 3u);
  EXPECT_EQ(recorder.chunks[0].data(), input.data() + header);
  EXPECT_EQ(recorder.chunks[0].size(), 1u);
  EXPECT_EQ(recorder.chunks[1].data(), input.data() + header + 1);
  EXPECT_EQ(recorder.chunks[1].size(), 399u);
  EXPECT_EQ(recorder.chunks[2].data(), input.data() + header + 400);
  EXPECT_EQ(recorder.chunks[2].size(), 600u);
  ASSERT_EQ(recorder.literals.size(), 1u);
  EXPECT_EQ(recorder.literals[0].section, "TEXT");
  ASSERT_EQ(recorder.responses.size(), 1u);
  EXPECT_TRUE(recorder.responses[0].bodies[0].streamed);
  EXPECT_TRUE(parser.idle());
}

TEST(ParserStreamTest, OnlyBodiesAboveTheThresholdAreStreamed) {
  std::string big = MakeBody(500);
  Outcome out = ParseEverySplit(
      "* 9 FETCH (BODY[HEADER.FIELDS (FROM TO)]<0> " + Lit("From: a\r\n") + " BODY[] " + Lit(big) +
          " X-GM-LABELS (" + Lit(std::string(300, 'L')) + ") BINARY[2] ~" + Lit(big) +
          " RFC822.TEXT " + Lit(big) + " bOdY[1]<10> " + Lit(big) + ")\r\n",
      StreamAbove(50));
  ASSERT_FALSE(out.error) << *out.error;
  EXPECT_EQ(out.log, "BEBEBEBER");
  ASSERT_EQ(out.literals.size(), 4u);
  EXPECT_EQ(out.literals[0].section, "");
  EXPECT_EQ(out.literals[1].section, "2");
  EXPECT_EQ(out.literals[2].section, "TEXT");
  EXPECT_EQ(out.literals[3].section, "1");
  for (const auto& literal : out.literals) {
    EXPECT_EQ(literal.seq, 9u);
    EXPECT_TRUE(literal.data == big);
  }
  ASSERT_EQ(out.responses.size(), 1u);
  const auto& bodies = out.responses[0].bodies;
  ASSERT_EQ(bodies.size(), 5u);
  EXPECT_FALSE(bodies[0].streamed);  // small: inline
  EXPECT_EQ(bodies[0].data, "From: a\r\n");
  EXPECT_EQ(bodies[0].section, "HEADER.FIELDS (FROM TO)");
  EXPECT_EQ(bodies[0].origin, 0u);
  for (size_t i = 1; i < 5; ++i) {
    EXPECT_TRUE(bodies[i].streamed) << i;
    EXPECT_EQ(bodies[i].size, 500u);
  }
  EXPECT_EQ(bodies[2].item, "BINARY");
  EXPECT_EQ(bodies[3].item, "RFC822.TEXT");
  EXPECT_EQ(bodies[4].origin, 10u);
}

TEST(ParserStreamTest, NonFetchLiteralsAreNeverStreamed) {
  std::string name(200, 'n');
  Outcome out = ParseEverySplit(
      "* LIST () \"/\" " + Lit(name) + "\r\n* 1 NOTFETCH (BODY[] " + Lit(name) + ")\r\n",
      StreamAbove(0));
  ASSERT_FALSE(out.error) << *out.error;
  EXPECT_EQ(out.log, "RR");
  EXPECT_EQ(out.responses[0].mailbox, name);
  EXPECT_EQ(out.responses[1].type, ResponseType::kOther);
  EXPECT_EQ(out.responses[1].keyword, "NOTFETCH");
}

TEST(ParserStreamTest, StreamedBodiesDoNotCountTowardsMaxLine) {
  std::string body = MakeBody(20000);
  std::string input = "* 1 FETCH (UID 5 BODY[] " + Lit(body) + ")\r\n";
  FeedSetup streaming = StreamAbove(0);
  streaming.limits.max_line = 1024;
  Outcome out = ParseEverySplit(input, streaming);
  ASSERT_FALSE(out.error) << *out.error;
  EXPECT_TRUE(out.literals.at(0).data == body);
  EXPECT_EQ(out.responses.at(0).uid, 5u);

  FeedSetup inline_bodies = NoSink();
  inline_bodies.limits.max_line = 1024;
  EXPECT_NE(ParseError(input, inline_bodies).find("exceeds 1024 bytes"), std::string::npos);
}

TEST(ParserStreamTest, LargeBodyStreamsUnderDefaultLimits) {
  std::string body = MakeBody(100000);
  Outcome out = ParseEverySplit("* 77 FETCH (UID 1 BODY[] " + Lit(body) + " FLAGS ())\r\n");
  ASSERT_FALSE(out.error) << *out.error;
  ASSERT_EQ(out.literals.size(), 1u);
  EXPECT_EQ(out.literals[0].seq, 77u);
  EXPECT_TRUE(out.literals[0].data == body);
  EXPECT_TRUE(out.responses.at(0).has_flags);
}

// ---------------------------------------------------------------------------
// VANISHED, FLAGS, SEARCH, ESEARCH, unknown responses.

TEST(ParserVanishedTest, EarlierAndPlain) {
  std::vector<OwnedResponse> r = ParseAll(
      "* VANISHED (EARLIER) 41,43:116,118,120:211,214:540\r\n"
      "* VANISHED 405,407,410\r\n"
      "* vanished (earlier) 1:* \r\n");
  ASSERT_EQ(r.size(), 3u);
  EXPECT_EQ(r[0].type, ResponseType::kVanished);
  EXPECT_TRUE(r[0].earlier);
  EXPECT_EQ(r[0].uid_set, "41,43:116,118,120:211,214:540");
  EXPECT_FALSE(r[1].earlier);
  EXPECT_EQ(r[1].uid_set, "405,407,410");
  EXPECT_TRUE(r[2].earlier);
  EXPECT_EQ(r[2].uid_set, "1:*");
  ParseError("* VANISHED (LATER) 1\r\n");
  ParseError("* VANISHED abc\r\n");
  ParseError("* VANISHED\r\n");
  ParseError("* VANISHED 1 2\r\n");
}

TEST(ParserFlagsTest, FlagsResponse) {
  std::vector<OwnedResponse> r = ParseAll(
      "* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Forwarded Junk)\r\n"
      "* FLAGS ()\r\n"
      "* flags ( \\Seen  ) \r\n");
  ASSERT_EQ(r.size(), 3u);
  EXPECT_EQ(r[0].type, ResponseType::kFlags);
  EXPECT_EQ(r[0].flags, (Strings{"\\Answered", "\\Flagged", "\\Deleted", "\\Seen", "\\Draft",
                                 "$Forwarded", "Junk"}));
  EXPECT_TRUE(r[1].flags.empty());
  EXPECT_EQ(r[2].flags, Strings{"\\Seen"});
  ParseError("* FLAGS \\Seen\r\n");
  ParseError("* FLAGS (\\Seen\r\n");
}

TEST(ParserSearchTest, NumbersAndModseq) {
  std::vector<OwnedResponse> r = ParseAll(
      "* SEARCH 2 84 882\r\n"
      "* SEARCH\r\n"
      "* search 2 5 (MODSEQ 917162500) \r\n");
  ASSERT_EQ(r.size(), 3u);
  EXPECT_EQ(r[0].type, ResponseType::kSearch);
  EXPECT_EQ(r[0].numbers, (std::vector<uint32_t>{2, 84, 882}));
  EXPECT_FALSE(r[0].search_modseq);
  EXPECT_TRUE(r[1].numbers.empty());
  EXPECT_EQ(r[2].numbers, (std::vector<uint32_t>{2, 5}));
  EXPECT_EQ(r[2].search_modseq, 917162500u);
  ParseError("* SEARCH 1 x\r\n");
  ParseError("* SEARCH 4294967296\r\n");
}

TEST(ParserEsearchTest, RawRestOfLine) {
  OwnedResponse r = ParseOne("* ESEARCH (TAG \"A282\") UID MIN 2 COUNT 3 ALL 2,10:11\r\n");
  EXPECT_EQ(r.type, ResponseType::kEsearch);
  EXPECT_EQ(r.raw, "(TAG \"A282\") UID MIN 2 COUNT 3 ALL 2,10:11");
  EXPECT_EQ(ParseOne("* ESEARCH\r\n").raw, "");
}

TEST(ParserOtherTest, UnknownResponsesKeepKeywordAndRaw) {
  std::vector<OwnedResponse> r = ParseAll(
      "* ID (\"name\" \"Dovecot\")\r\n"
      "* NAMESPACE ((\"\" \"/\")) NIL NIL\r\n"
      "* 5 UIDFETCH (UID 5)\r\n"
      "* XAPPLEPUSHSERVICE\r\n"
      "* X-FOO " +
      Lit("ab\r\n") + " bar\r\n");
  ASSERT_EQ(r.size(), 5u);
  for (const auto& response : r) EXPECT_EQ(response.type, ResponseType::kOther);
  EXPECT_EQ(r[0].keyword, "ID");
  EXPECT_EQ(r[0].raw, "(\"name\" \"Dovecot\")");
  EXPECT_EQ(r[1].keyword, "NAMESPACE");
  EXPECT_EQ(r[2].keyword, "UIDFETCH");
  EXPECT_EQ(r[2].number, 5u);
  EXPECT_EQ(r[2].raw, "(UID 5)");
  EXPECT_EQ(r[3].keyword, "XAPPLEPUSHSERVICE");
  EXPECT_EQ(r[3].raw, "");
  EXPECT_EQ(r[4].keyword, "X-FOO");
  EXPECT_EQ(r[4].raw, "{4}\r\nab\r\n bar");  // literal kept raw, unscanned
}

// ---------------------------------------------------------------------------
// Framing details.

TEST(ParserFramingTest, RealisticSessionTranscript) {
  std::string body = "From: a@example.org\r\nSubject: hi\r\n\r\nBody {5}\r\n";
  std::vector<OwnedResponse> r = ParseAll(
      "* OK [CAPABILITY IMAP4rev1 LITERAL+ SASL-IR LOGIN-REFERRALS ID ENABLE IDLE] ready.\r\n"
      "A1 OK [CAPABILITY IMAP4rev1 CONDSTORE QRESYNC] Logged in\r\n"
      "* ENABLED QRESYNC\r\n"
      "A2 OK Enabled\r\n"
      "* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft)\r\n"
      "* OK [PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft \\*)] Flags\r\n"
      "* 3 EXISTS\r\n"
      "* OK [UIDVALIDITY 1700000000] UIDs valid\r\n"
      "* OK [UIDNEXT 12] Predicted next UID\r\n"
      "* OK [HIGHESTMODSEQ 4567]\r\n"
      "* VANISHED (EARLIER) 4:7\r\n"
      "* 1 FETCH (UID 8 FLAGS (\\Seen) MODSEQ (4500))\r\n"
      "A3 OK [READ-WRITE] Select completed (0.001 + 0.000 secs).\r\n"
      "* 2 FETCH (UID 9 RFC822.SIZE " +
          std::to_string(body.size()) + " BODY[] " + Lit(body) +
          " FLAGS ())\r\n"
          "A4 OK Fetch completed.\r\n",
      NoSink());
  ASSERT_EQ(r.size(), 15u);
  EXPECT_EQ(r[13].bodies.at(0).data, body);
  EXPECT_EQ(r[13].rfc822_size, body.size());
  EXPECT_EQ(r[14].tag, "A4");
}

TEST(ParserFramingTest, BareLineFeedIsTolerated) {
  std::vector<OwnedResponse> r = ParseAll("* 1 EXISTS\n* LIST () \"/\" {3}\nabc\nA1 OK x\r\n");
  ASSERT_EQ(r.size(), 3u);
  EXPECT_EQ(r[1].mailbox, "abc");
  EXPECT_EQ(r[2].text, "x");
}

TEST(ParserFramingTest, LiteralEndingInCarriageReturnBeforeBareLineFeed) {
  // The CR belongs to the literal, not to the line end.
  OwnedResponse r = ParseOne("* LIST () \"/\" {2}\r\na\r\n");
  EXPECT_EQ(r.mailbox, "a\r");
}

TEST(ParserFramingTest, EmptyLineIsProtocolError) {
  EXPECT_NE(ParseError("\r\n").find("empty response line"), std::string::npos);
}

TEST(ParserFramingTest, IdleOnlyBetweenResponses) {
  Recorder recorder;
  ResponseParser parser(&recorder, &recorder, {});
  EXPECT_TRUE(parser.idle());
  ASSERT_TRUE(parser.Feed("* 1 EXI").ok());
  EXPECT_FALSE(parser.idle());
  ASSERT_TRUE(parser.Feed("STS\r\n* 1 FETCH (BODY[] {3}\r\nab").ok());
  EXPECT_FALSE(parser.idle());
  ASSERT_TRUE(parser.Feed("c)\r").ok());
  EXPECT_FALSE(parser.idle());
  ASSERT_TRUE(parser.Feed("\n").ok());
  EXPECT_TRUE(parser.idle());
  EXPECT_EQ(recorder.log, "RBER");
}

TEST(ParserFramingTest, FieldsDoNotLeakBetweenResponses) {
  std::vector<OwnedResponse> r = ParseAll(
      "* 1 FETCH (UID 5 FLAGS (\\Seen) MODSEQ (7) BODY[] \"x\" INTERNALDATE \"d\")\r\n"
      "* 2 FETCH (UID 6)\r\n"
      "* OK [PERMANENTFLAGS (\\Seen)] x\r\n"
      "* OK y\r\n"
      "* SEARCH 1 (MODSEQ 3)\r\n"
      "* SEARCH\r\n",
      NoSink());
  ASSERT_EQ(r.size(), 6u);
  OwnedResponse expected;
  expected.type = ResponseType::kFetch;
  expected.number = 2;
  expected.seq = 2;
  expected.uid = 6;
  EXPECT_EQ(r[1], expected);
  expected = {};
  expected.type = ResponseType::kCondition;
  expected.text = "y";
  EXPECT_EQ(r[3], expected);
  expected = {};
  expected.type = ResponseType::kSearch;
  EXPECT_EQ(r[5], expected);
}

TEST(ParserFramingTest, ManyResponsesReuseOneParser) {
  std::string input;
  for (int i = 1; i <= 2000; ++i) {
    input += "* " + std::to_string(i) + " FETCH (UID " + std::to_string(i * 3) +
             " FLAGS (\\Seen) MODSEQ (" + std::to_string(i * 7) + "))\r\n";
  }
  Outcome out = FeedChunks(input, {}, {});
  ASSERT_FALSE(out.error);
  ASSERT_EQ(out.responses.size(), 2000u);
  for (uint32_t i = 1; i <= 2000; ++i) {
    EXPECT_EQ(out.responses[i - 1].seq, i);
    EXPECT_EQ(out.responses[i - 1].uid, i * 3);
    EXPECT_EQ(out.responses[i - 1].modseq, i * 7u);
  }
}

// ---------------------------------------------------------------------------
// Limits.

TEST(ParserLimitsTest, LineLongerThanMaxLine) {
  FeedSetup setup;
  setup.limits.max_line = 64;
  std::string ok_line = "* OK " + std::string(59, 'a');  // 64 bytes
  EXPECT_EQ(ParseOne(ok_line + "\r\n", setup).text.size(), 59u);
  std::string error = ParseError(ok_line + "a\r\n* 1 EXISTS\r\n", setup);
  EXPECT_NE(error.find("server response line exceeds 64 bytes (limit)"), std::string::npos)
      << error;
  // Also when the line never ends.
  ParseError(std::string(1000, 'x'), setup);
}

TEST(ParserLimitsTest, DefaultLimitStopsAnEndlessLineWithBoundedMemory) {
  Recorder recorder;
  ResponseParser parser(&recorder, nullptr, {});
  std::string chunk(64 * 1024, 'a');
  Status status;
  int fed = 0;
  while (status.ok() && fed < 100) {
    status = parser.Feed(chunk);
    ++fed;
  }
  ASSERT_FALSE(status.ok());
  EXPECT_EQ(status.error().kind, ErrorKind::kProtocol);
  EXPECT_NE(status.error().message.find("exceeds 1048576 bytes"), std::string::npos);
  EXPECT_LE(fed, 17);  // stopped right after the first MiB
}

TEST(ParserLimitsTest, InlineLiteralsCountTowardsMaxLine) {
  FeedSetup setup;
  setup.limits.max_line = 100;
  EXPECT_EQ(ParseOne("* LIST () \"/\" " + Lit(std::string(80, 'm')) + "\r\n", setup).mailbox.size(),
            80u);
  // Rejected at the literal header, before any of its bytes arrive.
  ParseError("* LIST () \"/\" {200}\r\n", setup);
  ParseError("* LIST () \"/\" " + Lit(std::string(90, 'm')) + "\r\n", setup);
}

TEST(ParserLimitsTest, LiteralAboveMaxLiteral) {
  FeedSetup setup;
  setup.limits.max_literal = 1000;
  EXPECT_EQ(ParseOne("* 1 FETCH (BODY[] " + Lit(std::string(1000, 'b')) + ")\r\n", setup)
                .bodies.at(0)
                .size,
            1000u);
  std::string error = ParseError("* 1 FETCH (BODY[] {1001}\r\n", setup);
  EXPECT_NE(error.find("literal of 1001 bytes, above the limit of 1000 bytes"), std::string::npos)
      << error;
  ParseError("* 1 FETCH (BODY[] {99999999999999999999999}\r\n");
  ParseError("* 1 FETCH (BODY[] ~{18446744073709551615}\r\n");
}

TEST(ParserLimitsTest, NestingDeeperThanMaxDepth) {
  FeedSetup setup;
  setup.limits.max_depth = 5;
  // FETCH's own list is level 1, so four more levels fit.
  EXPECT_EQ(ParseOne("* 1 FETCH (X-FOO ((((a)))) UID 2)\r\n", setup).uid, 2u);
  std::string error = ParseError("* 1 FETCH (X-FOO (((((a))))) UID 2)\r\n", setup);
  EXPECT_NE(error.find("nested deeper than the limit of 5"), std::string::npos) << error;
  ParseError("* STATUS x (X-FOO (((((a))))))\r\n", setup);
  // Hostile nesting under the default limit fails cleanly, without recursion.
  ParseError("* 1 FETCH (X " + std::string(100000, '(') + ")\r\n");
}

// ---------------------------------------------------------------------------
// Errors.

TEST(ParserErrorTest, GarbageIsProtocolError) {
  const char* inputs[] = {
      "garbage\r\n",
      "* \r\n",
      "*\r\n",
      "A1 XYZ\r\n",
      "* 1 FETCH (UID 1\r\n",
      "(\r\n",
      ")\r\n",
      "\"A1\" OK\r\n",
      "* LIST () \"/\" \"x\\\r\n",
      "A1  OK\r\n",
  };
  for (const char* input : inputs) {
    SCOPED_TRACE(input);
    ParseError(input);
  }
}

TEST(ParserErrorTest, MessageNamesTheProblemAndShowsASanitizedExcerpt) {
  std::string line = "* 1 FETCH (UID 1 FLAGS (\\Seen) X-A \"\x1b[31mred\xff " +
                     std::string(200, 'z') + "\" MODSEQ (oops))\r\n";
  std::string error = ParseError(line);
  EXPECT_NE(error.find("malformed server response: expected MODSEQ value"), std::string::npos)
      << error;
  for (char c : error) EXPECT_TRUE(c >= 0x20 && c < 0x7f) << "unprintable byte in " << error;
  EXPECT_LT(error.size(), 200u);
  EXPECT_NE(error.find("zzz\" MODSEQ (oops))\""), std::string::npos) << error;

  error = ParseError("* OK [UIDNEXT \x01\x02] x\r\n");
  EXPECT_NE(error.find("\"* OK [UIDNEXT ..] x\""), std::string::npos) << error;
}

TEST(ParserErrorTest, ErrorIsSticky) {
  Recorder recorder;
  ResponseParser parser(&recorder, &recorder, {});
  Status first = parser.Feed("A1 ???\r\n");
  ASSERT_FALSE(first.ok());
  Status again = parser.Feed("* 1 EXISTS\r\n");
  ASSERT_FALSE(again.ok());
  EXPECT_EQ(again.error().message, first.error().message);
  EXPECT_TRUE(recorder.responses.empty());
}

// ---------------------------------------------------------------------------
// Handler and sink errors.

TEST(ParserCallbackTest, HandlerErrorStopsFeedAndIsReturned) {
  Recorder recorder;
  recorder.on_response = [&](const Response& response) {
    return response.number == 2 ? Status(MakeError(ErrorKind::kIo, "disk full")) : Status::Ok();
  };
  ResponseParser parser(&recorder, &recorder, {});
  Status status = parser.Feed("* 1 EXISTS\r\n* 2 EXISTS\r\n* 3 EXISTS\r\n");
  ASSERT_FALSE(status.ok());
  EXPECT_EQ(status.error().kind, ErrorKind::kIo);
  EXPECT_EQ(status.error().message, "disk full");
  EXPECT_EQ(recorder.responses.size(), 2u);
  status = parser.Feed("* 4 EXISTS\r\n");
  ASSERT_FALSE(status.ok());
  EXPECT_EQ(status.error().message, "disk full");
  EXPECT_EQ(recorder.responses.size(), 2u);
}

TEST(ParserCallbackTest, SinkErrorsStopFeedAndAreReturned) {
  const std::string input = "* 1 FETCH (BODY[] {5}\r\nhello UID 1)\r\n";
  for (int which = 0; which < 3; ++which) {
    SCOPED_TRACE(which);
    Recorder recorder;
    Error failure = MakeError(ErrorKind::kIo, "cannot write tmp file");
    if (which == 0) recorder.fail_begin = failure;
    if (which == 1) recorder.fail_data = failure;
    if (which == 2) recorder.fail_end = failure;
    ResponseParser parser(&recorder, &recorder, {});
    Status status = parser.Feed(input);
    ASSERT_FALSE(status.ok());
    EXPECT_EQ(status.error().kind, ErrorKind::kIo);
    EXPECT_EQ(status.error().message, "cannot write tmp file");
    EXPECT_TRUE(recorder.responses.empty());
    EXPECT_FALSE(parser.Feed("* 2 EXISTS\r\n").ok());
  }
}

// ---------------------------------------------------------------------------
// Reset.

TEST(ParserResetTest, DropsPartialResponseAndError) {
  Recorder recorder;
  ResponseParser parser(&recorder, &recorder, {});
  ASSERT_TRUE(parser.Feed("* 1 FETCH (BODY[] {10}\r\nabc").ok());
  EXPECT_FALSE(parser.idle());
  parser.Reset();
  EXPECT_TRUE(parser.idle());
  ASSERT_TRUE(parser.Feed("* 2 EXISTS\r\n* 3 LIST () \"/\" {4}\r\nab").ok());
  parser.Reset();
  ASSERT_TRUE(parser.Feed("* 4 EXISTS\r\n").ok());
  ASSERT_EQ(recorder.responses.size(), 2u);
  EXPECT_EQ(recorder.responses[0].number, 2u);
  EXPECT_EQ(recorder.responses[1].number, 4u);

  ASSERT_FALSE(parser.Feed("junk\r\n").ok());
  parser.Reset();
  ASSERT_TRUE(parser.Feed("* 5 EXISTS\r\n").ok());
  EXPECT_EQ(recorder.responses.back().number, 5u);
}

TEST(ParserResetTest, ResetFromHandlerDiscardsTheRestOfTheInput) {
  // STARTTLS: bytes after the tagged OK in the same read must be dropped,
  // or a man in the middle could inject responses into the TLS session.
  Recorder recorder;
  ResponseParser parser(&recorder, &recorder, {});
  recorder.on_response = [&](const Response& response) {
    if (response.type == ResponseType::kTagged) {
      parser.Reset();
      EXPECT_EQ(response.text, "Begin TLS negotiation now");  // views still valid
    }
    return Status::Ok();
  };
  ASSERT_TRUE(parser.Feed("A1 OK Begin TLS negotiation now\r\n* 1 EXISTS\r\n* 2 EXI").ok());
  EXPECT_TRUE(parser.idle());
  ASSERT_EQ(recorder.responses.size(), 1u);
  ASSERT_TRUE(parser.Feed("* 3 EXISTS\r\n").ok());
  ASSERT_EQ(recorder.responses.size(), 2u);
  EXPECT_EQ(recorder.responses[1].number, 3u);
}

TEST(ParserPauseTest, PauseFromHandlerLeavesTheRestForTheCaller) {
  // COMPRESS DEFLATE: what follows the tagged OK in the same read is
  // compressed, so the parser stops and tells how much it took.
  Recorder recorder;
  ResponseParser parser(&recorder, &recorder, {});
  recorder.on_response = [&](const Response& response) {
    if (response.type == ResponseType::kTagged) parser.Pause();
    return Status::Ok();
  };
  const std::string input = "* 1 EXISTS\r\nA1 OK DEFLATE active\r\n\x78\x9c\x01\x02";
  size_t consumed = 0;
  ASSERT_TRUE(parser.Feed(input, &consumed).ok());
  EXPECT_EQ(consumed, input.find('\x78'));
  EXPECT_TRUE(parser.idle());
  ASSERT_EQ(recorder.responses.size(), 2u);
  // The pause applies once: the next Feed parses everything.
  recorder.on_response = nullptr;
  ASSERT_TRUE(parser.Feed("* 2 EXISTS\r\nA2 OK done\r\n", &consumed).ok());
  EXPECT_EQ(consumed, 24u);
  EXPECT_EQ(recorder.responses.size(), 4u);
}

// ---------------------------------------------------------------------------
// Fuzzing: arbitrary input never crashes, hangs or depends on chunking.

std::string RandomInput(std::mt19937& rng) {
  static const std::vector<std::string> kPieces = {"* ",
                                                   "A1 ",
                                                   "+ ",
                                                   "FETCH ",
                                                   "LIST ",
                                                   "STATUS ",
                                                   "OK ",
                                                   "BYE ",
                                                   "EXISTS",
                                                   "(",
                                                   ")",
                                                   "[",
                                                   "]",
                                                   "{",
                                                   "}",
                                                   "~{",
                                                   "{3}\r\n",
                                                   "{0}\r\n",
                                                   "{40}\r\n",
                                                   "\r\n",
                                                   "\n",
                                                   "\r",
                                                   "\"",
                                                   "\\",
                                                   " ",
                                                   "1",
                                                   "42",
                                                   "99999999999999999999",
                                                   "NIL",
                                                   "BODY[] ",
                                                   "BODY[TEXT]<5> ",
                                                   "BINARY[1] ",
                                                   "UID ",
                                                   "FLAGS ",
                                                   "MODSEQ ",
                                                   "(\\Seen)",
                                                   "<",
                                                   ">",
                                                   "RFC822 ",
                                                   "VANISHED ",
                                                   "[UIDNEXT ",
                                                   "SEARCH ",
                                                   "CAPABILITY ",
                                                   "ENABLED ",
                                                   "ESEARCH ",
                                                   "\x00"s,
                                                   "\xff"};
  std::string input;
  size_t parts = rng() % 60;
  for (size_t i = 0; i < parts; ++i) {
    if (rng() % 4 == 0) {
      input += static_cast<char>(rng() % 256);
    } else {
      input += kPieces[rng() % kPieces.size()];
    }
  }
  return input;
}

std::vector<size_t> RandomCuts(std::mt19937& rng, size_t size) {
  std::vector<size_t> cuts;
  for (size_t pos = 0; size > 0;) {
    pos += 1 + rng() % 17;
    if (pos >= size) break;
    cuts.push_back(pos);
  }
  return cuts;
}

FeedSetup FuzzSetup() {
  FeedSetup setup;
  setup.limits.max_line = 300;
  setup.limits.max_literal = 64;
  setup.limits.inline_literal_max = 4;
  setup.limits.max_depth = 6;
  return setup;
}

TEST(ParserFuzzTest, RandomBytesDoNotCrashOrDependOnChunking) {
  std::mt19937 rng(20240601);
  for (int i = 0; i < 4000; ++i) {
    std::string input = RandomInput(rng);
    FeedSetup setup = FuzzSetup();
    setup.with_sink = i % 2 == 0;
    Outcome whole = FeedChunks(input, setup, {});
    Outcome chunked = FeedChunks(input, setup, RandomCuts(rng, input.size()));
    ASSERT_EQ(whole, chunked) << "input " << Show(input);
    if (whole.error) {
      EXPECT_EQ(whole.error_kind, ErrorKind::kProtocol);
    }
  }
}

TEST(ParserFuzzTest, MutatedTranscriptsDoNotCrashOrDependOnChunking) {
  const std::string base =
      "* OK [CAPABILITY IMAP4rev1 IDLE] ready\r\n"
      "* LIST (\\HasNoChildren) \"/\" {5}\r\nIN\"BX\r\n"
      "* STATUS INBOX (MESSAGES 2 UIDNEXT 3 X-Y (1 (2)))\r\n"
      "* 1 FETCH (UID 4 FLAGS (\\Seen) BODY[] {12}\r\nHello World! MODSEQ (5) "
      "ENVELOPE (\"d\" {2}\r\nab NIL ((\"n\" NIL \"m\" \"h\"))))\r\n"
      "* VANISHED (EARLIER) 1:3\r\n* SEARCH 1 2 (MODSEQ 4)\r\n"
      "A1 OK [HIGHESTMODSEQ 7]\r\n";
  std::mt19937 rng(99);
  for (int i = 0; i < 3000; ++i) {
    std::string input = base;
    int edits = 1 + static_cast<int>(rng() % 4);
    for (int e = 0; e < edits; ++e) {
      size_t pos = rng() % input.size();
      switch (rng() % 3) {
        case 0:
          input[pos] = static_cast<char>(rng() % 256);
          break;
        case 1:
          input.erase(pos, 1 + rng() % 3);
          break;
        default:
          input.insert(pos, 1, "(){}[]\" \r\n\\~<>0"[rng() % 16]);
          break;
      }
      if (input.empty()) input.assign(1, 'x');
    }
    FeedSetup setup = FuzzSetup();
    setup.with_sink = i % 3 != 0;
    Outcome whole = FeedChunks(input, setup, {});
    Outcome chunked = FeedChunks(input, setup, RandomCuts(rng, input.size()));
    ASSERT_EQ(whole, chunked) << "input " << Show(input);
  }
}

}  // namespace
