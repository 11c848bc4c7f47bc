#include "net/event_loop.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <thread>
#include <vector>

namespace mailmirror::net {
namespace {

TEST(EventLoopTest, PostedCallsRunInOrderOfTheirDelay) {
  EventLoop loop;
  std::vector<int> order;
  loop.Post([&] { order.push_back(2); }, 20);
  loop.Post([&] { order.push_back(1); });
  loop.Run();
  EXPECT_EQ(order, (std::vector<int>{1, 2}));
}

TEST(EventLoopTest, IdleCallsRunWhileOtherWorkLastsButDoNotKeepTheLoopAlive) {
  EventLoop loop;
  int ticks = 0;
  std::function<void()> tick = [&] {
    ++ticks;
    loop.PostIdle(tick, 10);  // would re-post itself forever
  };
  loop.PostIdle(tick, 0);
  loop.Post([] {}, 100);  // the real work: 100 ms
  const auto start = std::chrono::steady_clock::now();
  loop.Run();
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5));
  EXPECT_GE(ticks, 2);  // ran while the other call was pending
}

TEST(EventLoopTest, PoolWorkRunsOffTheLoopThenAfterRunsOnIt) {
  EventLoop loop;
  const std::thread::id loop_thread = std::this_thread::get_id();
  std::thread::id work_thread;
  std::thread::id after_thread;
  std::atomic<bool> loop_turned{false};
  bool after_saw_turn = false;
  loop.RunInPool(
      [&] {
        work_thread = std::this_thread::get_id();
        // The loop is not blocked meanwhile: a posted call gets to run.
        for (int i = 0; i < 500 && !loop_turned; ++i) {
          std::this_thread::sleep_for(std::chrono::milliseconds(2));
        }
      },
      [&] {
        after_thread = std::this_thread::get_id();
        after_saw_turn = loop_turned;
      });
  loop.Post([&] { loop_turned = true; });
  loop.Run();  // returns only after `after`
  EXPECT_NE(work_thread, loop_thread);
  EXPECT_EQ(after_thread, loop_thread);
  EXPECT_TRUE(after_saw_turn);
}

TEST(EventLoopTest, AfterMayQueueMoreWork) {
  EventLoop loop;
  int rounds = 0;
  std::function<void()> again = [&] {
    if (++rounds < 5) loop.RunInPool([] {}, again);
  };
  loop.RunInPool([] {}, again);
  loop.Run();
  EXPECT_EQ(rounds, 5);
}

}  // namespace
}  // namespace mailmirror::net
