// The libuv loop that drives every connection of a run.
//
// Only net/ includes uv.h; the rest of the engine sees this wrapper.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>

namespace mailmirror::net {

class EventLoop {
 public:
  EventLoop();
  ~EventLoop();  // closes any handles still open and runs the loop dry
  EventLoop(const EventLoop&) = delete;
  EventLoop& operator=(const EventLoop&) = delete;

  // Runs until no active handles remain.
  void Run();

  // Calls fn once from the loop after delay_ms (0: next loop turn).
  void Post(std::function<void()> fn, uint64_t delay_ms = 0);
  // The same, but the loop does not wait for it: once only such calls are
  // left, Run returns and they never run (a display refresh, say).
  void PostIdle(std::function<void()> fn, uint64_t delay_ms);

  // Runs `work` on a thread of libuv's pool (blocking file system work:
  // fsync, rename, index commits), then `after` on the loop. The loop keeps
  // running meanwhile and does not end before `after` has run. `work` must
  // touch nothing the loop thread uses until `after`.
  void RunInPool(std::function<void()> work, std::function<void()> after);

  // The underlying uv_loop_t*, for net/ internals only.
  void* raw();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace mailmirror::net
