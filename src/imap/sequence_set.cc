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

std::optional<UidRanges> ParseSequenceSet(std::string_view text) {
  UidRanges ranges;
  auto number = [&text](size_t& pos, uint32_t& out) {
    size_t start = pos;
    uint64_t value = 0;
    while (pos < text.size() && text[pos] >= '0' && text[pos] <= '9') {
      value = value * 10 + static_cast<uint64_t>(text[pos] - '0');
      if (value > UINT32_MAX) return false;
      ++pos;
    }
    out = static_cast<uint32_t>(value);
    return pos > start && value > 0;
  };
  size_t pos = 0;
  while (pos < text.size()) {
    uint32_t low = 0;
    if (!number(pos, low)) return std::nullopt;
    uint32_t high = low;
    if (pos < text.size() && text[pos] == ':') {
      ++pos;
      if (!number(pos, high)) return std::nullopt;
    }
    ranges.emplace_back(std::min(low, high), std::max(low, high));
    if (pos == text.size()) break;
    if (text[pos] != ',') return std::nullopt;
    ++pos;
    if (pos == text.size()) return std::nullopt;
  }
  std::sort(ranges.begin(), ranges.end());
  UidRanges merged;
  for (const auto& range : ranges) {
    if (!merged.empty() && range.first <= static_cast<uint64_t>(merged.back().second) + 1) {
      merged.back().second = std::max(merged.back().second, range.second);
    } else {
      merged.push_back(range);
    }
  }
  return merged;
}

bool Contains(const UidRanges& ranges, uint32_t uid) {
  // The first range that does not end below `uid`.
  auto it =
      std::lower_bound(ranges.begin(), ranges.end(), uid,
                       [](const auto& range, uint32_t value) { return range.second < value; });
  return it != ranges.end() && it->first <= uid;
}

std::vector<uint32_t> ExpandRanges(const UidRanges& ranges) {
  std::vector<uint32_t> uids;
  for (const auto& [low, high] : ranges) {
    for (uint64_t uid = low; uid <= high; ++uid) uids.push_back(static_cast<uint32_t>(uid));
  }
  return uids;
}

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
