#include "sync/disk_writer.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <string>
#include <vector>

#include "net/event_loop.h"

namespace mailmirror::sync {
namespace {

namespace fs = std::filesystem;

class DiskWriterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = (fs::temp_directory_path() / "disk_writer_test.XXXXXX").string();
    ASSERT_NE(mkdtemp(pattern.data()), nullptr);
    root_ = pattern;
    Result<std::unique_ptr<store::Index>> index = store::Index::Open(root_ + "/index");
    ASSERT_TRUE(index.ok()) << index.error().message;
    index_ = std::move(index).value();
    Result<std::unique_ptr<store::MaildirFolder>> folder =
        store::MaildirFolder::Open(root_ + "/mail", true);
    ASSERT_TRUE(folder.ok());
    folder_ = std::move(folder).value();
    Result<uint32_t> id = index_->AllocateFolderId();
    ASSERT_TRUE(id.ok());
    folder_id_ = *id;
  }

  void TearDown() override {
    index_.reset();
    std::error_code ignored;
    fs::remove_all(root_, ignored);
  }

  // A work delivering one finished message with `uid` and recording it.
  std::unique_ptr<DiskWork> Delivery(uint32_t uid, bool finished = true) {
    auto work = std::make_unique<DiskWork>();
    Result<std::unique_ptr<store::TmpMessage>> message = folder_->BeginMessage();
    EXPECT_TRUE(message.ok());
    EXPECT_TRUE((*message)->Write("Subject: " + std::to_string(uid) + "\r\n\r\nbody\r\n").ok());
    if (finished) {
      EXPECT_TRUE((*message)->Finish().ok());
    }
    store::MessageRecord record;
    record.uid = uid;
    record.stem = (*message)->stem();
    record.in_cur = true;
    record.flags = store::kFlagSeen;
    store::DeliveryBatch::Item item;
    item.folder = folder_.get();
    item.message = std::move(message).value();
    item.uid = uid;
    item.flags = store::kFlagSeen;
    work->delivery.Add(std::move(item));
    work->index.PutMessage(folder_id_, record);
    return work;
  }

  std::vector<uint32_t> IndexedUids() {
    Result<std::vector<uint32_t>> uids = index_->ListUids(folder_id_);
    EXPECT_TRUE(uids.ok());
    return uids.ok() ? *uids : std::vector<uint32_t>{};
  }

  size_t FilesIn(const std::string& sub) {
    size_t count = 0;
    for (const auto& entry : fs::directory_iterator(folder_->path() + "/" + sub)) {
      (void)entry;
      ++count;
    }
    return count;
  }

  std::string root_;
  std::unique_ptr<store::Index> index_;
  std::unique_ptr<store::MaildirFolder> folder_;
  uint32_t folder_id_ = 0;
};

TEST_F(DiskWriterTest, WorkSubmittedWhileAGroupRunsFormsTheNextGroup) {
  net::EventLoop loop;
  DiskWriter writer(&loop, index_.get());
  std::vector<int> done;
  for (uint32_t uid = 1; uid <= 5; ++uid) {
    auto work = Delivery(uid);
    work->done = [&done, uid](const Status& status) {
      EXPECT_TRUE(status.ok()) << status.error().message;
      done.push_back(static_cast<int>(uid));
    };
    writer.Submit(std::move(work));
  }
  EXPECT_FALSE(writer.idle());
  loop.Run();
  EXPECT_TRUE(writer.idle());
  EXPECT_EQ(done, (std::vector<int>{1, 2, 3, 4, 5}));
  // The first started alone; the other four waited and went together.
  EXPECT_EQ(writer.groups(), 2u);
  EXPECT_EQ(IndexedUids(), (std::vector<uint32_t>{1, 2, 3, 4, 5}));
  EXPECT_EQ(FilesIn("cur"), 5u);
  EXPECT_EQ(FilesIn("tmp"), 0u);
}

TEST_F(DiskWriterTest, WorkThatEndsAGroupIsDurableBeforeLaterRenames) {
  net::EventLoop loop;
  DiskWriter writer(&loop, index_.get());
  auto first = Delivery(1);  // occupies the pool while the rest queue
  writer.Submit(std::move(first));
  auto marker = std::make_unique<DiskWork>();
  store::FolderRecord record;
  record.id = folder_id_;
  record.remote_name = "INBOX";
  record.fetch_pending = true;
  marker->index.PutFolder(record);
  marker->ends_group = true;
  bool marker_done = false;
  size_t files_when_marked = 99;
  marker->done = [&](const Status& status) {
    EXPECT_TRUE(status.ok());
    marker_done = true;
    files_when_marked = FilesIn("cur");
  };
  writer.Submit(std::move(marker));
  writer.Submit(Delivery(2));
  loop.Run();
  EXPECT_TRUE(marker_done);
  EXPECT_EQ(files_when_marked, 1u);  // UID 2 was not renamed in before it
  EXPECT_EQ(writer.groups(), 3u);
  EXPECT_EQ(IndexedUids(), (std::vector<uint32_t>{1, 2}));
}

TEST_F(DiskWriterTest, UnwantedWorkIsDroppedAndItsFilesRemoved) {
  net::EventLoop loop;
  DiskWriter writer(&loop, index_.get());
  writer.Submit(Delivery(1));
  auto unwanted = Delivery(2);
  unwanted->wanted = [] { return false; };
  Status outcome;
  unwanted->done = [&outcome](const Status& status) { outcome = status; };
  writer.Submit(std::move(unwanted));
  loop.Run();
  EXPECT_FALSE(outcome.ok());
  EXPECT_EQ(IndexedUids(), std::vector<uint32_t>{1});
  EXPECT_EQ(FilesIn("tmp"), 0u);
  EXPECT_EQ(FilesIn("cur"), 1u);
}

TEST_F(DiskWriterTest, AFailedDeliveryCommitsNothingOfItsGroup) {
  net::EventLoop loop;
  DiskWriter writer(&loop, index_.get());
  writer.Submit(Delivery(1));
  std::vector<Status> outcomes;
  auto record = [&outcomes](const Status& status) { outcomes.push_back(status); };
  auto good = Delivery(2);
  good->done = record;
  auto broken = Delivery(3, /*finished=*/false);  // refused by DeliveryBatch
  broken->done = record;
  writer.Submit(std::move(good));
  writer.Submit(std::move(broken));
  loop.Run();
  ASSERT_EQ(outcomes.size(), 2u);
  EXPECT_FALSE(outcomes[0].ok());
  EXPECT_FALSE(outcomes[1].ok());
  EXPECT_EQ(outcomes[1].error().kind, ErrorKind::kInternal);
  EXPECT_EQ(IndexedUids(), std::vector<uint32_t>{1});
  EXPECT_EQ(FilesIn("tmp"), 0u);
}

}  // namespace
}  // namespace mailmirror::sync
