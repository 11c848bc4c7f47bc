// One sync per account at a time: an exclusive flock(2) on a file in the
// account's state directory, held for the life of the object. The kernel
// drops it when the process dies, so a crashed run never blocks the next.
#pragma once

#include <memory>
#include <string>

#include "mailmirror/status.h"

namespace mailmirror::sync {

class AccountLock {
 public:
  // Creates `state_dir` (0700) if needed and locks "<state_dir>/lock"
  // without waiting. Errors: kTemporary when another process holds it (the
  // message says so and names the account), kIo otherwise.
  static Result<std::unique_ptr<AccountLock>> Acquire(const std::string& state_dir,
                                                      const std::string& account);
  ~AccountLock();
  AccountLock(const AccountLock&) = delete;
  AccountLock& operator=(const AccountLock&) = delete;

 private:
  explicit AccountLock(int fd) : fd_(fd) {}
  int fd_;
};

}  // namespace mailmirror::sync
