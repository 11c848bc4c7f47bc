#include "mailmirror/status.h"

#include <gtest/gtest.h>

namespace mailmirror {
namespace {

TEST(StatusTest, ExitCodesFollowSysexits) {
  EXPECT_EQ(ExitCodeFor(ErrorKind::kUsage), 64);
  EXPECT_EQ(ExitCodeFor(ErrorKind::kUnavailable), 69);
  EXPECT_EQ(ExitCodeFor(ErrorKind::kInternal), 70);
  EXPECT_EQ(ExitCodeFor(ErrorKind::kIo), 74);
  EXPECT_EQ(ExitCodeFor(ErrorKind::kTemporary), 75);
  EXPECT_EQ(ExitCodeFor(ErrorKind::kCantCreate), 73);
  EXPECT_EQ(ExitCodeFor(ErrorKind::kProtocol), 76);
  EXPECT_EQ(ExitCodeFor(ErrorKind::kAuth), 77);
  EXPECT_EQ(ExitCodeFor(ErrorKind::kConfig), 78);
}

TEST(StatusTest, ResultCarriesValueOrError) {
  Result<int> good = 7;
  ASSERT_TRUE(good.ok());
  EXPECT_EQ(*good, 7);
  Result<int> bad = MakeError(ErrorKind::kIo, "disk full");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().kind, ErrorKind::kIo);
  EXPECT_FALSE(bad.status().ok());
}

TEST(StatusTest, WrapAddsContext) {
  Status status = MakeError(ErrorKind::kUnavailable, "connection refused").Wrap("account work");
  ASSERT_FALSE(status.ok());
  EXPECT_EQ(status.error().message, "account work: connection refused");
  EXPECT_EQ(status.error().kind, ErrorKind::kUnavailable);
}

}  // namespace
}  // namespace mailmirror
