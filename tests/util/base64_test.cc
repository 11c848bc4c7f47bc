#include "util/base64.h"

#include <gtest/gtest.h>

namespace mailmirror {
namespace {

TEST(Base64Test, Rfc4648Vectors) {
  const std::pair<const char*, const char*> vectors[] = {
      {"", ""},
      {"f", "Zg=="},
      {"fo", "Zm8="},
      {"foo", "Zm9v"},
      {"foob", "Zm9vYg=="},
      {"fooba", "Zm9vYmE="},
      {"foobar", "Zm9vYmFy"},
  };
  for (const auto& [plain, encoded] : vectors) {
    EXPECT_EQ(Base64Encode(plain), encoded);
    EXPECT_EQ(Base64Decode(encoded), std::optional<std::string>(plain));
  }
}

TEST(Base64Test, SaslPlainMessageWithNuls) {
  std::string message("\0alice\0secret", 13);
  EXPECT_EQ(Base64Encode(message), "AGFsaWNlAHNlY3JldA==");
  EXPECT_EQ(Base64Decode("AGFsaWNlAHNlY3JldA=="), std::optional<std::string>(message));
}

TEST(Base64Test, RejectsMalformed) {
  EXPECT_FALSE(Base64Decode("Zg="));
  EXPECT_FALSE(Base64Decode("Z=g="));
  EXPECT_FALSE(Base64Decode("Zm9v!A=="));
  EXPECT_FALSE(Base64Decode("Zg==Zg=="));
}

}  // namespace
}  // namespace mailmirror
