// UID sequence sets (RFC 3501 §9 sequence-set), written compactly.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace mailmirror::imap {

// "1:3,7,9:12" for ascending, duplicate-free `uids`.
std::string FormatSequenceSet(const std::vector<uint32_t>& uids);

// Inclusive UID ranges, ascending and merged.
using UidRanges = std::vector<std::pair<uint32_t, uint32_t>>;

// Parses a sequence set without '*' ("1:3,7,12:10"): nullopt when malformed.
// Ranges come back normalized (low <= high), sorted and merged.
std::optional<UidRanges> ParseSequenceSet(std::string_view text);

// True when `uid` lies in one of `ranges` (ascending and merged).
bool Contains(const UidRanges& ranges, uint32_t uid);

// Every UID of `ranges`, ascending. The caller bounds the ranges.
std::vector<uint32_t> ExpandRanges(const UidRanges& ranges);

// The UIDs from `first` to `last` that are not in `known` (ascending), e.g.
// first 1, last 12, known {3,4,9} gives "1:2,5:8,10:12"; empty when none are
// left. With `last` 0 the set ends in an open range "n:*" instead. Callers
// that know the mailbox's UIDNEXT pass UIDNEXT - 1 as `last`: "n:*" always
// matches the highest UID, even below n (RFC 3501 §6.4.8), which would
// fetch a message again.
std::string FormatSetExcluding(uint32_t first, uint32_t last, const std::vector<uint32_t>& known);

}  // namespace mailmirror::imap
