#include "sync/disk_writer.h"

#include <algorithm>
#include <utility>

namespace mailmirror::sync {

void DiskWriter::Submit(std::unique_ptr<DiskWork> work) {
  backlog_ += work->delivery.size();
  queue_.push_back(std::move(work));
  if (!running_) StartGroup();
}

void DiskWriter::WhenRoom(std::function<void()> callback) {
  if (has_room()) {
    callback();
    return;
  }
  room_waiters_.push_back(std::move(callback));
}

void DiskWriter::NotifyRoom() {
  if (!has_room() || room_waiters_.empty()) return;
  std::vector<std::function<void()>> waiters;
  waiters.swap(room_waiters_);
  for (auto& waiter : waiters) waiter();
}

void DiskWriter::StartGroup() {
  // Everything queued joins the group, up to the first work that ends one.
  auto group = std::make_shared<std::vector<std::unique_ptr<DiskWork>>>();
  size_t group_messages = 0;
  while (!queue_.empty()) {
    std::unique_ptr<DiskWork> work = std::move(queue_.front());
    queue_.pop_front();
    if (work->wanted && !work->wanted()) {
      backlog_ -= work->delivery.size();
      work->delivery.Clear();  // unlinks its tmp/ files
      if (work->done)
        work->done(MakeError(ErrorKind::kInternal, "dropped after an earlier failure"));
      continue;
    }
    bool last = work->ends_group;
    group_messages += work->delivery.size();
    group->push_back(std::move(work));
    if (last) break;
  }
  if (group->empty()) {
    NotifyRoom();  // dropped work made room too
    return;
  }
  running_ = true;
  ++groups_;

  auto status = std::make_shared<Status>();
  loop_->RunInPool(
      [group, status, index = index_] {
        store::DeliveryBatch delivery;
        std::vector<store::MaildirFolder*> folders;
        store::Index::Batch batch;
        for (const std::unique_ptr<DiskWork>& work : *group) {
          delivery.Append(work->delivery);
          for (store::MaildirFolder* folder : work->synced_folders) {
            if (std::find(folders.begin(), folders.end(), folder) == folders.end()) {
              folders.push_back(folder);
            }
          }
          batch.Append(work->index);
        }
        if (!delivery.empty()) {
          *status = delivery.Deliver();
          delivery.Clear();  // unlinks what a failure left undelivered
          if (!status->ok()) return;
        }
        for (store::MaildirFolder* folder : folders) {
          *status = folder->SyncDirectories();
          if (!status->ok()) return;
        }
        if (!batch.empty()) *status = index->Commit(batch);
      },
      [this, group, status, group_messages] {
        running_ = false;
        backlog_ -= group_messages;
        for (const std::unique_ptr<DiskWork>& work : *group) {
          if (work->done) work->done(*status);
        }
        if (!queue_.empty() && !running_) StartGroup();
        NotifyRoom();
      });
}

}  // namespace mailmirror::sync
