#include "sync/message_key.h"

#include <xxhash.h>

#include <cstdio>
#include <memory>

#include "util/fs.h"
#include "util/strings.h"

namespace mailmirror::sync {
namespace {

// A stored message opened for reading, or null: only regular files are
// mail (a symbolic link or FIFO in a folder is never read).
std::FILE* OpenMessage(const std::string& path) {
  Result<UniqueFd> fd = OpenRegularFile(path);
  if (!fd.ok()) return nullptr;
  std::FILE* file = ::fdopen(fd->get(), "rb");
  if (file != nullptr) (void)fd->Release();
  return file;
}

// Calls `visit(line, end)` for each line of the header block in `header`
// (CRLF or LF line ends; `line` without them, `end` the offset of its LF)
// up to the blank line that ends the block; stops when `visit` returns true.
template <typename Visit>
void ForEachHeaderLine(std::string_view header, Visit visit) {
  size_t pos = 0;
  while (pos < header.size()) {
    size_t end = header.find('\n', pos);
    if (end == std::string_view::npos) end = header.size();
    std::string_view line = header.substr(pos, end - pos);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.empty() || visit(line, end)) return;
    pos = end + 1;
  }
}

}  // namespace

std::string HeaderField(std::string_view header, std::string_view name) {
  std::string value;
  ForEachHeaderLine(header, [&](std::string_view line, size_t end) {
    if (line.size() <= name.size() || line[name.size()] != ':' ||
        !EqualsIgnoreCase(line.substr(0, name.size()), name)) {
      return false;
    }
    std::string raw(line.substr(name.size() + 1));
    // Continuation lines start with a blank.
    size_t next = end + 1;
    while (next < header.size() && (header[next] == ' ' || header[next] == '\t')) {
      size_t next_end = header.find('\n', next);
      if (next_end == std::string_view::npos) next_end = header.size();
      raw += header.substr(next, next_end - next);
      next = next_end + 1;
    }
    for (char c : raw) {
      const bool blank = c == ' ' || c == '\t' || c == '\r';
      if (!blank) {
        value += c;
      } else if (!value.empty() && value.back() != ' ') {
        value += ' ';
      }
    }
    if (!value.empty() && value.back() == ' ') value.pop_back();
    return true;
  });
  return value;
}

std::string HeaderOfFile(const std::string& path) {
  std::FILE* file = OpenMessage(path);
  if (file == nullptr) return "";
  std::string header;
  char buffer[8192];
  size_t n = 0;
  while (header.size() < (256u << 10) && (n = std::fread(buffer, 1, sizeof buffer, file)) > 0) {
    header.append(buffer, n);
    if (header.find("\n\n") != std::string::npos) break;
  }
  (void)std::fclose(file);  // read-only: nothing to lose
  return header;
}

std::string MatchKey(std::string_view header, uint64_t crlf_size) {
  std::string message_id = HeaderField(header, "Message-ID");
  if (!message_id.empty()) return "id:" + message_id;
  return "size:" + std::to_string(crlf_size) + "\ndate:" + HeaderField(header, "Date") +
         "\nfrom:" + HeaderField(header, "From") + "\nsubject:" + HeaderField(header, "Subject");
}

uint64_t AddedHeaderBytes(std::string_view header) {
  uint64_t bytes = 0;
  ForEachHeaderLine(header, [&bytes](std::string_view line, size_t /*end*/) {
    if (line.size() > 7 && EqualsIgnoreCase(line.substr(0, 7), "X-TUID:")) bytes += line.size() + 2;
    return false;
  });
  return bytes;
}

namespace {

// Size with CRLF line ends of a stored message the index has no record of.
uint64_t CrlfSizeOf(const std::string& path) {
  uint64_t size = 0;
  std::FILE* file = OpenMessage(path);
  if (file == nullptr) return 0;
  char buffer[65536];
  size_t n = 0;
  while ((n = std::fread(buffer, 1, sizeof buffer, file)) > 0) {
    size += n;
    for (size_t i = 0; i < n; ++i) size += buffer[i] == '\n' ? 1 : 0;
  }
  (void)std::fclose(file);  // read-only: nothing to lose
  return size;
}

}  // namespace

std::string FileMatchKey(const std::string& path, std::optional<uint64_t> recorded_size) {
  const std::string header = HeaderOfFile(path);
  return MatchKey(header,
                  recorded_size ? *recorded_size : CrlfSizeOf(path) - AddedHeaderBytes(header));
}

std::optional<uint64_t> DigestWithoutTuid(const std::string& path) {
  std::FILE* file = OpenMessage(path);
  if (file == nullptr) return std::nullopt;
  std::unique_ptr<XXH3_state_t, decltype(&XXH3_freeState)> hash(XXH3_createState(),
                                                                &XXH3_freeState);
  XXH3_64bits_reset(hash.get());
  std::string buffer(64 << 10, '\0');
  std::string header;  // until the blank line that ends it
  bool in_header = true;
  size_t n = 0;
  while ((n = std::fread(buffer.data(), 1, buffer.size(), file)) > 0) {
    if (!in_header) {
      XXH3_64bits_update(hash.get(), buffer.data(), n);
      continue;
    }
    header.append(buffer.data(), n);
    const size_t end = header.find("\n\n");
    if (end == std::string::npos && header.size() < (256u << 10)) continue;
    in_header = false;
    const size_t split = end == std::string::npos ? header.size() : end + 1;
    size_t pos = 0;
    while (pos < split) {
      size_t line_end = header.find('\n', pos);
      line_end = line_end == std::string::npos || line_end >= split ? split : line_end + 1;
      if (!EqualsIgnoreCase(std::string_view(header).substr(pos, 7), "X-TUID:")) {
        XXH3_64bits_update(hash.get(), header.data() + pos, line_end - pos);
      }
      pos = line_end;
    }
    XXH3_64bits_update(hash.get(), header.data() + split, header.size() - split);
  }
  if (in_header) XXH3_64bits_update(hash.get(), header.data(), header.size());
  const bool failed = std::ferror(file) != 0;
  (void)std::fclose(file);  // read-only: nothing to lose
  if (failed) return std::nullopt;
  return XXH3_64bits_digest(hash.get());
}

StoredDigest::StoredDigest() : state_(XXH3_createState()) { Begin(); }

StoredDigest::~StoredDigest() { XXH3_freeState(state_); }

void StoredDigest::Begin() {
  line_ends_ = store::CrlfToLf();
  XXH3_64bits_reset(state_);
}

void StoredDigest::Feed(std::string_view chunk) {
  (void)line_ends_.Feed(chunk, [this](const char* data, size_t size) {
    XXH3_64bits_update(state_, data, size);
    return Status::Ok();
  });
}

uint64_t StoredDigest::Finish() {
  (void)line_ends_.End([this](const char* data, size_t size) {
    XXH3_64bits_update(state_, data, size);
    return Status::Ok();
  });
  return XXH3_64bits_digest(state_);
}

Status BodyDigestSink::OnBodyBegin(uint32_t /*seq*/, uint64_t /*size*/) {
  digest_.Begin();
  return Status::Ok();
}

Status BodyDigestSink::OnBodyData(std::string_view chunk) {
  digest_.Feed(chunk);
  return Status::Ok();
}

Status BodyDigestSink::OnBodyEnd() {
  body_digest_ = digest_.Finish();
  return Status::Ok();
}

}  // namespace mailmirror::sync
