// The safety valve of two-way sync: a run about to delete much of a folder
// on one side, because the other side seems to have lost it (a Maildir
// folder removed or emptied by mistake, a server that suddenly reports an
// empty mailbox), stops that folder instead and says how to confirm.
#pragma once

#include <cstddef>
#include <string>

#include "mailmirror/status.h"

namespace mailmirror::sync {

struct DeletionLimits {
  // A folder may lose at most this fraction of the messages the index
  // knows in one run ...
  double max_fraction = 0.5;
  // ... unless it is this many or fewer (small folders are emptied by hand).
  size_t small_folder = 20;
  bool allow_mass_delete = false;  // --allow-mass-delete: the user confirmed
};

enum class DeletionSide { kLocal, kRemote };

// Ok when deleting `deleting` of the `known` messages of `folder` on `side`
// is within the limits; else a kConfig error naming the folder, the counts
// and both ways to confirm.
Status CheckDeletions(const std::string& folder, DeletionSide side, size_t known, size_t deleting,
                      const DeletionLimits& limits);

}  // namespace mailmirror::sync
