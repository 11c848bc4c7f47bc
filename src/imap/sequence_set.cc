#include "imap/sequence_set.h"

#include <algorithm>

namespace mailmirror::imap {
namespace {

void AppendRange(uint32_t low, uint32_t high, std::string& out) {
  if (!out.empty()) out += ',';
  out += std::to_string(low);
  if (high != low) {
    out += ':';
    out += std::to_string(high);
  }
}

}  // namespace

std::string FormatSequenceSet(const std::vector<uint32_t>& uids) {
  std::string out;
  for (size_t i = 0; i < uids.size();) {
    size_t j = i;
    while (j + 1 < uids.size() && uids[j + 1] == uids[j] + 1) ++j;
    AppendRange(uids[i], uids[j], out);
    i = j + 1;
  }
  return out;
}

std::string FormatSetExcluding(uint32_t first, uint32_t last, const std::vector<uint32_t>& known) {
  std::string out;
  uint32_t next = std::max<uint32_t>(first, 1);
  if (last != 0 && next > last) return out;
  auto it = std::lower_bound(known.begin(), known.end(), next);
  for (; it != known.end() && (last == 0 || *it <= last); ++it) {
    if (*it > next) AppendRange(next, *it - 1, out);
    if (*it == UINT32_MAX || *it == last) return out;  // nothing left above it
    next = *it + 1;
  }
  if (last == 0) {
    if (!out.empty()) out += ',';
    out += std::to_string(next) + ":*";
  } else {
    AppendRange(next, last, out);
  }
  return out;
}

}  // namespace mailmirror::imap
