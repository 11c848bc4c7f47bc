#include "imap/mailbox_name.h"

#include <cstdint>
#include <vector>

namespace mailmirror::imap {
namespace {

constexpr char kBase64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,";

int Base64Value(char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+') return 62;
  if (c == ',') return 63;
  return -1;
}

bool IsPrintableAscii(uint32_t c) { return c >= 0x20 && c <= 0x7e; }

void AppendUtf8(uint32_t cp, std::string& out) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xc0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3f));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xe0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3f));
    out += static_cast<char>(0x80 | (cp & 0x3f));
  } else {
    out += static_cast<char>(0xf0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3f));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3f));
    out += static_cast<char>(0x80 | (cp & 0x3f));
  }
}

// Decodes one UTF-8 code point at `pos`, advancing it. Rejects overlong
// forms, surrogates and values past U+10FFFF.
std::optional<uint32_t> NextUtf8(std::string_view s, size_t& pos) {
  auto byte = [&](size_t i) { return static_cast<unsigned char>(s[i]); };
  unsigned char lead = byte(pos);
  int extra = 0;
  uint32_t cp = 0;
  if (lead < 0x80) {
    ++pos;
    return lead;
  } else if ((lead & 0xe0) == 0xc0) {
    extra = 1;
    cp = lead & 0x1f;
  } else if ((lead & 0xf0) == 0xe0) {
    extra = 2;
    cp = lead & 0x0f;
  } else if ((lead & 0xf8) == 0xf0) {
    extra = 3;
    cp = lead & 0x07;
  } else {
    return std::nullopt;
  }
  if (pos + extra >= s.size()) return std::nullopt;
  for (int i = 1; i <= extra; ++i) {
    unsigned char b = byte(pos + i);
    if ((b & 0xc0) != 0x80) return std::nullopt;
    cp = (cp << 6) | (b & 0x3f);
  }
  static constexpr uint32_t kMinForLength[] = {0, 0x80, 0x800, 0x10000};
  if (cp < kMinForLength[extra] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) {
    return std::nullopt;
  }
  pos += extra + 1;
  return cp;
}

// Decodes the base64 run of an encoded section ("APw" of "&APw-") from
// UTF-16BE to UTF-8.
bool DecodeRun(std::string_view run, std::string& out) {
  if (run.empty()) return false;  // "&-" is handled by the caller
  std::vector<uint16_t> units;
  uint32_t bits = 0;
  int nbits = 0;
  uint32_t pending = 0;
  bool have_byte = false;
  for (char c : run) {
    int v = Base64Value(c);
    if (v < 0) return false;
    bits = (bits << 6) | static_cast<uint32_t>(v);
    nbits += 6;
    if (nbits >= 8) {
      nbits -= 8;
      uint32_t b = (bits >> nbits) & 0xff;
      if (have_byte) {
        units.push_back(static_cast<uint16_t>((pending << 8) | b));
        have_byte = false;
      } else {
        pending = b;
        have_byte = true;
      }
    }
  }
  // Leftover bits must be padding zeros, and bytes must pair into units.
  if (have_byte || nbits >= 6 || (bits & ((1u << nbits) - 1)) != 0) return false;
  for (size_t i = 0; i < units.size(); ++i) {
    uint32_t u = units[i];
    uint32_t cp = u;
    if (u >= 0xd800 && u <= 0xdbff) {
      if (i + 1 >= units.size()) return false;
      uint32_t low = units[++i];
      if (low < 0xdc00 || low > 0xdfff) return false;
      cp = 0x10000 + ((u - 0xd800) << 10) + (low - 0xdc00);
    } else if (u >= 0xdc00 && u <= 0xdfff) {
      return false;
    }
    // Printable ASCII must be written directly, never encoded.
    if (IsPrintableAscii(cp)) return false;
    AppendUtf8(cp, out);
  }
  return true;
}

void EncodeRun(const std::vector<uint16_t>& units, std::string& out) {
  out += '&';
  uint32_t bits = 0;
  int nbits = 0;
  for (uint16_t u : units) {
    for (int shift = 8; shift >= 0; shift -= 8) {
      bits = (bits << 8) | ((u >> shift) & 0xff);
      nbits += 8;
      while (nbits >= 6) {
        nbits -= 6;
        out += kBase64[(bits >> nbits) & 0x3f];
      }
    }
  }
  if (nbits > 0) out += kBase64[(bits << (6 - nbits)) & 0x3f];
  out += '-';
}

}  // namespace

std::optional<std::string> DecodeMailboxName(std::string_view mutf7) {
  std::string out;
  out.reserve(mutf7.size());
  bool previous_was_run = false;
  for (size_t i = 0; i < mutf7.size();) {
    char c = mutf7[i];
    if (c != '&') {
      if (!IsPrintableAscii(static_cast<unsigned char>(c))) return std::nullopt;
      out += c;
      previous_was_run = false;
      ++i;
      continue;
    }
    size_t end = mutf7.find('-', i + 1);
    if (end == std::string_view::npos) return std::nullopt;
    if (end == i + 1) {  // "&-" is a literal '&'
      out += '&';
      previous_was_run = false;
    } else {
      // Two adjacent encoded runs are forbidden: an encoder must merge them.
      if (previous_was_run) return std::nullopt;
      if (!DecodeRun(mutf7.substr(i + 1, end - i - 1), out)) return std::nullopt;
      previous_was_run = true;
    }
    i = end + 1;
  }
  return out;
}

std::optional<std::string> EncodeMailboxName(std::string_view utf8) {
  std::string out;
  out.reserve(utf8.size() + 8);
  std::vector<uint16_t> run;
  for (size_t pos = 0; pos < utf8.size();) {
    std::optional<uint32_t> cp = NextUtf8(utf8, pos);
    if (!cp) return std::nullopt;
    if (IsPrintableAscii(*cp)) {
      if (!run.empty()) {
        EncodeRun(run, out);
        run.clear();
      }
      if (*cp == '&') {
        out += "&-";
      } else {
        out += static_cast<char>(*cp);
      }
      continue;
    }
    if (*cp >= 0x10000) {
      uint32_t v = *cp - 0x10000;
      run.push_back(static_cast<uint16_t>(0xd800 + (v >> 10)));
      run.push_back(static_cast<uint16_t>(0xdc00 + (v & 0x3ff)));
    } else {
      run.push_back(static_cast<uint16_t>(*cp));
    }
  }
  if (!run.empty()) EncodeRun(run, out);
  return out;
}

std::string DisplayMailboxName(std::string_view raw) {
  std::optional<std::string> decoded = DecodeMailboxName(raw);
  return decoded ? *decoded : std::string(raw);
}

}  // namespace mailmirror::imap
