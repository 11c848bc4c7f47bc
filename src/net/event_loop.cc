#include "net/event_loop.h"

#include <uv.h>

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <unordered_set>
#include <utility>

namespace mailmirror::net {

namespace {

// One Post(): a one-shot timer that owns the function it will call. Freed
// only in the timer's close callback, as libuv requires.
struct PostedCall {
  uv_timer_t timer;
  std::function<void()> fn;
  std::unordered_set<PostedCall*>* pending;  // the loop's registry of live calls
};

void OnPostedCallClosed(uv_handle_t* handle) { delete static_cast<PostedCall*>(handle->data); }

void OnPostedCallDue(uv_timer_t* timer) {
  auto* call = static_cast<PostedCall*>(timer->data);
  call->pending->erase(call);
  // Move the function out first: the call record is freed by the close
  // callback, and fn may Post again or touch anything else on the loop.
  std::function<void()> fn = std::move(call->fn);
  uv_close(reinterpret_cast<uv_handle_t*>(&call->timer), OnPostedCallClosed);
  if (fn) fn();
}

PostedCall* StartPostedCall(uv_loop_t* loop, std::unordered_set<PostedCall*>* pending,
                            std::function<void()> fn, uint64_t delay_ms) {
  auto* call = new PostedCall{};
  call->fn = std::move(fn);
  call->pending = pending;
  uv_timer_init(loop, &call->timer);  // cannot fail for timers
  call->timer.data = call;
  pending->insert(call);
  uv_timer_start(&call->timer, OnPostedCallDue, delay_ms, 0);
  return call;
}

void CloseStrayHandle(uv_handle_t* handle, void* /*arg*/) {
  // A handle still open here belongs to an owner that outlived its loop (a
  // bug elsewhere). Closing it is the best we can do: its memory is the
  // owner's, so there is no close callback to free it.
  if (!uv_is_closing(handle)) uv_close(handle, nullptr);
}

}  // namespace

struct EventLoop::Impl {
  uv_loop_t loop;
  // Posted calls not yet due, so the destructor can close them with the
  // callback that frees them (uv_walk cannot know which callback to use).
  std::unordered_set<PostedCall*> pending_calls;
};

EventLoop::EventLoop() : impl_(std::make_unique<Impl>()) {
  // libuv writes to sockets with write(2), so a peer that resets the
  // connection would otherwise kill the process with SIGPIPE instead of
  // failing the write with EPIPE.
  static std::once_flag ignore_sigpipe;
  std::call_once(ignore_sigpipe, [] { (void)std::signal(SIGPIPE, SIG_IGN); });

  int rc = uv_loop_init(&impl_->loop);
  if (rc != 0) {
    // Only fails when the process is out of file descriptors or memory;
    // there is no loop to report through, and a constructor cannot fail.
    (void)std::fprintf(stderr, "mailmirror: cannot create the event loop: %s\n", uv_strerror(rc));
    std::abort();
  }
  impl_->loop.data = this;
}

EventLoop::~EventLoop() {
  uv_loop_t* loop = &impl_->loop;
  for (PostedCall* call : impl_->pending_calls) {
    uv_close(reinterpret_cast<uv_handle_t*>(&call->timer), OnPostedCallClosed);
  }
  impl_->pending_calls.clear();
  // Close callbacks may start new handles (a Connection being torn down),
  // so repeat until the loop really is empty.
  while (uv_loop_close(loop) == UV_EBUSY) {
    uv_walk(loop, CloseStrayHandle, nullptr);
    uv_run(loop, UV_RUN_DEFAULT);
  }
}

void EventLoop::Run() { uv_run(&impl_->loop, UV_RUN_DEFAULT); }

namespace {

struct PoolCall {
  uv_work_t request;
  std::function<void()> work;
  std::function<void()> after;
};

void RunPoolCall(uv_work_t* request) { static_cast<PoolCall*>(request->data)->work(); }

void AfterPoolCall(uv_work_t* request, int /*status: never cancelled*/) {
  std::unique_ptr<PoolCall> call(static_cast<PoolCall*>(request->data));
  call->after();
}

}  // namespace

void EventLoop::RunInPool(std::function<void()> work, std::function<void()> after) {
  auto call = std::make_unique<PoolCall>();
  call->work = std::move(work);
  call->after = std::move(after);
  call->request.data = call.get();
  int rc = uv_queue_work(&impl_->loop, &call->request, RunPoolCall, AfterPoolCall);
  if (rc != 0) {
    // Only for a null callback, which cannot happen here; keep the promise
    // to run both anyway.
    std::function<void()> run = std::move(call->work);
    std::function<void()> then = std::move(call->after);
    run();
    Post(std::move(then));
    return;
  }
  (void)call.release();  // freed by AfterPoolCall
}

void EventLoop::Post(std::function<void()> fn, uint64_t delay_ms) {
  StartPostedCall(&impl_->loop, &impl_->pending_calls, std::move(fn), delay_ms);
}

void EventLoop::PostIdle(std::function<void()> fn, uint64_t delay_ms) {
  PostedCall* call = StartPostedCall(&impl_->loop, &impl_->pending_calls, std::move(fn), delay_ms);
  uv_unref(reinterpret_cast<uv_handle_t*>(&call->timer));  // Run does not wait for it
}

void* EventLoop::raw() { return &impl_->loop; }

}  // namespace mailmirror::net
