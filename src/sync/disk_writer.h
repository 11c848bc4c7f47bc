// Makes an account's changes durable off the loop thread, in groups.
//
// Each piece of work says what must become durable and what to record once
// it is: messages to deliver (a DeliveryBatch), folders whose cur/ and new/
// received renames or removals on the loop thread, and an index batch. The
// writer runs one group at a time on libuv's thread pool; whatever is
// submitted while a group runs forms the next group, so that one syncfs or
// set of directory fsyncs and one LMDB commit serve many folders and
// batches at once (group commit), while the loop keeps receiving.
//
// Order within a group: deliver every batch (file data durable, renames,
// directories durable), sync the listed folders' directories, then commit
// every index batch in one transaction, in submission order. A work marked
// `ends_group` is the last of its group, so nothing submitted after it is
// renamed into place before its index batch is durable.
//
// Threading: Submit and the callbacks run on the loop thread. While work is
// queued or running, its folders and the index are shared with the pool
// thread as maildir.h and index.h allow.
#pragma once

#include <deque>
#include <functional>
#include <memory>
#include <vector>

#include "mailmirror/status.h"
#include "net/event_loop.h"
#include "store/index.h"
#include "store/maildir.h"

namespace mailmirror::sync {

struct DiskWork {
  store::DeliveryBatch delivery;
  std::vector<store::MaildirFolder*> synced_folders;
  store::Index::Batch index;
  bool ends_group = false;
  // Asked on the loop thread when the group starts: false drops the work
  // (its undelivered messages are unlinked) and `done` gets an error.
  std::function<bool()> wanted;
  // On the loop thread: the outcome of the whole group the work was in.
  std::function<void(const Status&)> done;
};

class DiskWriter {
 public:
  DiskWriter(net::EventLoop* loop, store::Index* index) : loop_(loop), index_(index) {}
  DiskWriter(const DiskWriter&) = delete;
  DiskWriter& operator=(const DiskWriter&) = delete;
  // Work still queued is dropped (its `done` is not called); none may be
  // running: the owner waits for every `done` first.
  ~DiskWriter() = default;

  void Submit(std::unique_ptr<DiskWork> work);
  bool idle() const { return !running_ && queue_.empty(); }

  // Messages submitted and not yet delivered. Each holds a little memory
  // (names, its index record) until its group is done, so downloads stop
  // asking for more while this is at kBacklogLimit: the network may outrun
  // the disk, but memory must not follow.
  size_t backlog() const { return backlog_; }
  static constexpr size_t kBacklogLimit = 2048;
  bool has_room() const { return backlog_ < kBacklogLimit; }
  // Runs `callback` once, on the loop thread, after a group completes with
  // the backlog below the limit (at once if it is already).
  void WhenRoom(std::function<void()> callback);

  // Groups run so far, for tests and the -v summary.
  size_t groups() const { return groups_; }

 private:
  void StartGroup();
  void NotifyRoom();

  net::EventLoop* loop_;
  store::Index* index_;
  std::deque<std::unique_ptr<DiskWork>> queue_;
  bool running_ = false;
  size_t groups_ = 0;
  size_t backlog_ = 0;
  std::vector<std::function<void()>> room_waiters_;
};

}  // namespace mailmirror::sync
