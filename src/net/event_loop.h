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

  // The underlying uv_loop_t*, for net/ internals only.
  void* raw();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace mailmirror::net
