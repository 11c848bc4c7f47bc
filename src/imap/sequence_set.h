// UID sequence sets (RFC 3501 §9 sequence-set), written compactly.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace mailmirror::imap {

// "1:3,7,9:12" for ascending, duplicate-free `uids`.
std::string FormatSequenceSet(const std::vector<uint32_t>& uids);

// The UIDs from `first` upwards that are not in `known` (ascending), as a
// set ending in an open range "n:*": e.g. first 1, known {3,4,9} gives
// "1:2,5:8,10:*". Known UIDs below `first` are ignored.
std::string FormatOpenSetExcluding(uint32_t first, const std::vector<uint32_t>& known);

}  // namespace mailmirror::imap
