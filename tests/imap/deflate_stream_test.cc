#include "imap/deflate_stream.h"

#include <gtest/gtest.h>

#include <string>

namespace mailmirror::imap {
namespace {

std::unique_ptr<DeflateStream> MakeStream() {
  Result<std::unique_ptr<DeflateStream>> stream = DeflateStream::Create();
  EXPECT_TRUE(stream.ok());
  return std::move(stream).value();
}

// What `from` compresses, decompressed by `to`.
std::string RoundTrip(DeflateStream& from, DeflateStream& to, std::string_view plain) {
  std::string compressed;
  EXPECT_TRUE(from.Compress(plain, &compressed).ok());
  std::string out;
  Status status = to.Decompress(compressed, [&out](std::string_view chunk) {
    out.append(chunk);
    return Status::Ok();
  });
  EXPECT_TRUE(status.ok()) << status.error().message;
  return out;
}

TEST(DeflateStreamTest, EachCompressedCommandDecodesAtOnce) {
  auto client = MakeStream();
  auto server = MakeStream();
  // The stream continues across calls, and every call is flushed: the peer
  // never waits for more input to see a whole command.
  EXPECT_EQ(RoundTrip(*client, *server, "A3 SELECT INBOX\r\n"), "A3 SELECT INBOX\r\n");
  EXPECT_EQ(RoundTrip(*client, *server, "A4 UID FETCH 1:* (FLAGS)\r\n"),
            "A4 UID FETCH 1:* (FLAGS)\r\n");
  EXPECT_EQ(RoundTrip(*client, *server, ""), "");
}

TEST(DeflateStreamTest, InputSplitAnywhereDecodesTheSame) {
  auto client = MakeStream();
  auto server = MakeStream();
  std::string plain;
  for (int i = 0; i < 2000; ++i) plain += "* " + std::to_string(i) + " FETCH (FLAGS (\\Seen))\r\n";
  std::string compressed;
  ASSERT_TRUE(server->Compress(plain, &compressed).ok());
  ASSERT_LT(compressed.size(), plain.size() / 4);
  std::string out;
  for (char byte : compressed) {
    ASSERT_TRUE(client
                    ->Decompress(std::string_view(&byte, 1),
                                 [&out](std::string_view chunk) {
                                   out.append(chunk);
                                   return Status::Ok();
                                 })
                    .ok());
  }
  EXPECT_EQ(out, plain);
}

TEST(DeflateStreamTest, LargeOutputComesInBoundedChunks) {
  auto server = MakeStream();
  auto client = MakeStream();
  const std::string plain(20 << 20, 'x');  // compresses about 1000:1
  std::string compressed;
  ASSERT_TRUE(server->Compress(plain, &compressed).ok());
  size_t total = 0;
  size_t largest = 0;
  ASSERT_TRUE(client
                  ->Decompress(compressed,
                               [&](std::string_view chunk) {
                                 total += chunk.size();
                                 largest = std::max(largest, chunk.size());
                                 return Status::Ok();
                               })
                  .ok());
  EXPECT_EQ(total, plain.size());
  EXPECT_LE(largest, size_t{64 * 1024});
}

TEST(DeflateStreamTest, SinkErrorStopsDecompression) {
  auto server = MakeStream();
  auto client = MakeStream();
  std::string compressed;
  ASSERT_TRUE(server->Compress(std::string(1 << 20, 'y'), &compressed).ok());
  int calls = 0;
  Status status = client->Decompress(compressed, [&calls](std::string_view) {
    ++calls;
    return Status(MakeError(ErrorKind::kIo, "disk full"));
  });
  ASSERT_FALSE(status.ok());
  EXPECT_EQ(status.error().kind, ErrorKind::kIo);
  EXPECT_EQ(calls, 1);
}

TEST(DeflateStreamTest, GarbageIsAProtocolError) {
  auto client = MakeStream();
  // 0xff: a block header with the reserved block type 3.
  Status status =
      client->Decompress("\xff\xff\xff\xff garbage", [](std::string_view) { return Status::Ok(); });
  ASSERT_FALSE(status.ok());
  EXPECT_EQ(status.error().kind, ErrorKind::kProtocol);
  EXPECT_NE(status.error().message.find("decompressing"), std::string::npos);
}

}  // namespace
}  // namespace mailmirror::imap
