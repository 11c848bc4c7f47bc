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

std::string FormatOpenSetExcluding(uint32_t first, const std::vector<uint32_t>& known) {
  std::string out;
  uint32_t next = std::max<uint32_t>(first, 1);
  auto it = std::lower_bound(known.begin(), known.end(), next);
  for (; it != known.end(); ++it) {
    if (*it > next) AppendRange(next, *it - 1, out);
    if (*it == UINT32_MAX) return out;  // nothing can follow the largest UID
    next = *it + 1;
  }
  if (!out.empty()) out += ',';
  out += std::to_string(next) + ":*";
  return out;
}

}  // namespace mailmirror::imap
