#include "sync/deletion_guard.h"

#include <gtest/gtest.h>

namespace mailmirror::sync {
namespace {

TEST(DeletionGuardTest, SmallOrPartialDeletionsPass) {
  DeletionLimits limits;
  EXPECT_TRUE(CheckDeletions("INBOX", DeletionSide::kLocal, 10, 10, limits).ok());  // small folder
  EXPECT_TRUE(CheckDeletions("INBOX", DeletionSide::kLocal, 1000, 20, limits).ok());
  EXPECT_TRUE(CheckDeletions("INBOX", DeletionSide::kRemote, 1000, 500, limits).ok());  // half
  EXPECT_TRUE(CheckDeletions("INBOX", DeletionSide::kRemote, 1000, 0, limits).ok());
}

TEST(DeletionGuardTest, MassDeletionStopsWithHowToConfirm) {
  DeletionLimits limits;
  Status status = CheckDeletions("Archive/2023", DeletionSide::kLocal, 1000, 1000, limits);
  ASSERT_FALSE(status.ok());
  EXPECT_EQ(status.error().kind, ErrorKind::kConfig);
  EXPECT_EQ(status.error().message,
            "folder Archive/2023: refusing to delete 1000 of its 1000 messages in the Maildir "
            "because they are gone from the server (more than max_delete_fraction = 0.5); nothing "
            "was deleted. If that is what you want, run again with --allow-mass-delete, or raise "
            "max_delete_fraction in the account's config");
  status = CheckDeletions("INBOX", DeletionSide::kRemote, 100, 51, limits);
  ASSERT_FALSE(status.ok());
  EXPECT_NE(status.error().message.find("51 of its 100 messages on the server because they are "
                                        "gone from the Maildir"),
            std::string::npos);
  // More deletions than known messages (a stale count) never pass.
  EXPECT_FALSE(CheckDeletions("INBOX", DeletionSide::kRemote, 0, 30, limits).ok());
}

TEST(DeletionGuardTest, ConfirmationAndLimitsAreHonoured) {
  DeletionLimits allow;
  allow.allow_mass_delete = true;
  EXPECT_TRUE(CheckDeletions("INBOX", DeletionSide::kLocal, 1000, 1000, allow).ok());
  DeletionLimits strict;
  strict.max_fraction = 0.1;
  strict.small_folder = 5;
  EXPECT_TRUE(CheckDeletions("INBOX", DeletionSide::kLocal, 100, 5, strict).ok());
  EXPECT_TRUE(CheckDeletions("INBOX", DeletionSide::kLocal, 100, 10, strict).ok());
  Status status = CheckDeletions("INBOX", DeletionSide::kLocal, 100, 11, strict);
  ASSERT_FALSE(status.ok());
  EXPECT_NE(status.error().message.find("max_delete_fraction = 0.1"), std::string::npos);
}

}  // namespace
}  // namespace mailmirror::sync
