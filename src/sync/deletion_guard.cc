#include "sync/deletion_guard.h"

#include <cstdio>

namespace mailmirror::sync {

Status CheckDeletions(const std::string& folder, DeletionSide side, size_t known, size_t deleting,
                      const DeletionLimits& limits) {
  if (limits.allow_mass_delete || deleting <= limits.small_folder) return Status::Ok();
  if (known > 0 &&
      static_cast<double>(deleting) <= limits.max_fraction * static_cast<double>(known)) {
    return Status::Ok();
  }
  char fraction[16];
  (void)std::snprintf(fraction, sizeof(fraction), "%g", limits.max_fraction);
  const bool local = side == DeletionSide::kLocal;
  return MakeError(ErrorKind::kConfig,
                   "folder " + folder + ": refusing to delete " + std::to_string(deleting) +
                       " of its " + std::to_string(known) + " messages " +
                       (local ? "in the Maildir" : "on the server") +
                       " because they are gone from the " + (local ? "server" : "Maildir") +
                       " (more than max_delete_fraction = " + fraction +
                       "); nothing was deleted. If that is what you want, run again with "
                       "--allow-mass-delete, or raise max_delete_fraction in the account's config");
}

}  // namespace mailmirror::sync
