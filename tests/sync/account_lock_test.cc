#include "sync/account_lock.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <string>

namespace mailmirror::sync {
namespace {

// A run that finds the account locked says who holds it since when
// (issue 19); the lock itself is the flock, held per open file.
TEST(AccountLockTest, ABlockedRunNamesTheHolder) {
  std::string pattern = (std::filesystem::temp_directory_path() / "lock_test.XXXXXX").string();
  ASSERT_NE(::mkdtemp(pattern.data()), nullptr);
  const std::string state = pattern + "/state";
  {
    Result<std::unique_ptr<AccountLock>> held = AccountLock::Acquire(state, "work");
    ASSERT_TRUE(held.ok()) << held.error().message;
    Result<std::unique_ptr<AccountLock>> blocked = AccountLock::Acquire(state, "work");
    ASSERT_FALSE(blocked.ok());
    EXPECT_EQ(blocked.error().kind, ErrorKind::kTemporary);
    EXPECT_NE(blocked.error().message.find("pid " + std::to_string(::getpid()) + " since "),
              std::string::npos)
        << blocked.error().message;
    EXPECT_NE(blocked.error().message.find("account work"), std::string::npos);
  }
  EXPECT_TRUE(AccountLock::Acquire(state, "work").ok());  // released with its holder
  std::filesystem::remove_all(pattern);
}

}  // namespace
}  // namespace mailmirror::sync
