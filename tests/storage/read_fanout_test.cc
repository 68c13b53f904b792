#include "storage/read_fanout.h"

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <stdexcept>
#include <thread>
#include <vector>

#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"

namespace strata {
namespace {

// Runs `fn` on a thread of its own and waits for it: a call that never returns (the bug these
// tests look for) ends the test binary with a message instead of hanging it.
void WithinDeadline(const std::function<void()>& fn) {
  absl::Notification done;
  std::thread t([&] {
    fn();
    done.Notify();
  });
  if (!done.WaitForNotificationWithTimeout(absl::Seconds(20))) {
    std::fprintf(stderr, "ReadFanout test: a Run did not return within 20 s\n");
    std::abort();
  }
  t.join();
}

TEST(ReadFanout, RunsEveryPartOnceFromManyCallersAtOnce) {
  ReadFanout fanout(3);
  constexpr int kCallers = 6, kCalls = 200;
  std::atomic<int> wrong{0};
  std::vector<std::thread> callers;
  for (int c = 0; c < kCallers; ++c) {
    callers.emplace_back([&, c] {
      for (int call = 0; call < kCalls; ++call) {
        const size_t n = static_cast<size_t>(1 + (c + call) % 9);
        std::vector<std::atomic<int>> runs(n);
        fanout.Run(n, [&](size_t i) { runs[i].fetch_add(1); });
        for (const auto& r : runs) wrong += r.load() != 1;
      }
    });
  }
  for (std::thread& t : callers) t.join();
  EXPECT_EQ(wrong.load(), 0);
}

// Parts run on more than the calling thread when helpers are free.
TEST(ReadFanout, HelpersTakePartsWhileTheCallerWaitsOnOne) {
  ReadFanout fanout(3);
  absl::Notification all_started;
  std::atomic<int> started{0};
  std::vector<std::thread::id> ran_on(4);
  fanout.Run(4, [&](size_t i) {
    ran_on[i] = std::this_thread::get_id();
    if (started.fetch_add(1) + 1 == 4) all_started.Notify();
    // Each part waits for the others to start: four parts in flight at once, or none finishes.
    EXPECT_TRUE(all_started.WaitForNotificationWithTimeout(absl::Seconds(5)));
  });
  EXPECT_EQ(started.load(), 4);
  for (size_t i = 0; i < ran_on.size(); ++i) {
    for (size_t j = i + 1; j < ran_on.size(); ++j) EXPECT_NE(ran_on[i], ran_on[j]);
  }
}

// With every helper held by another call, a call runs its parts itself rather than waiting.
TEST(ReadFanout, ACallNeverWaitsBehindAnotherCallsParts) {
  ReadFanout fanout(2);
  absl::Notification release, helpers_held;
  std::atomic<int> held{0};
  std::thread first([&] {
    fanout.Run(3, [&](size_t) {
      if (held.fetch_add(1) + 1 == 3) helpers_held.Notify();
      release.WaitForNotification();
    });
  });
  ASSERT_TRUE(helpers_held.WaitForNotificationWithTimeout(absl::Seconds(30)));
  // Both helpers and the first caller are blocked: this call's parts all run here.
  std::vector<std::thread::id> ran_on(5);
  std::thread::id caller;
  WithinDeadline([&] {
    caller = std::this_thread::get_id();
    fanout.Run(5, [&](size_t i) { ran_on[i] = std::this_thread::get_id(); });
  });
  for (const std::thread::id& id : ran_on) EXPECT_EQ(id, caller);
  release.Notify();
  first.join();
}

// A part may fan out in turn: nobody waits on a part that has not started.
TEST(ReadFanout, APartMayRunPartsOfItsOwn) {
  ReadFanout fanout(3);
  std::vector<std::atomic<int>> runs(4 * 5);
  WithinDeadline([&] {
    fanout.Run(4,
               [&](size_t i) { fanout.Run(5, [&](size_t j) { runs[i * 5 + j].fetch_add(1); }); });
  });
  for (const auto& r : runs) EXPECT_EQ(r.load(), 1);
}

// An exception on the caller's thread (part 0 is always the caller's) waits for the parts helpers
// are running (they use the caller's frame) and skips the parts nobody started.
TEST(ReadFanout, AThrowingPartLeavesNoHelperInsideTheCall) {
  ReadFanout fanout(3);
  for (int round = 0; round < 20; ++round) {
    std::atomic<int> inside{0}, ran{0}, busy{0};
    std::atomic<bool> threw{false}, first{false};
    absl::Notification helper_started;
    bool caught = false;
    try {
      fanout.Run(64, [&](size_t i) {
        ++ran;
        if (i == 0) {
          EXPECT_TRUE(helper_started.WaitForNotificationWithTimeout(absl::Seconds(5)));
          threw = true;
          throw std::runtime_error("part failed");
        }
        ++inside;
        if (!first.exchange(true)) helper_started.Notify();
        while (!threw) busy.fetch_add(1, std::memory_order_relaxed);
        // Still inside when the caller unwinds, whatever the scheduler does meanwhile.
        absl::SleepFor(absl::Milliseconds(25));
        --inside;
      });
    } catch (const std::runtime_error&) {
      caught = true;
    }
    EXPECT_TRUE(caught);
    EXPECT_EQ(inside.load(), 0) << "a helper still inside the call after it returned";
    // Part 0 and one part per helper run before the throw; a helper may start one more part for
    // each 25 ms the unwinding caller waits for a core before it stops the claims. Without the
    // stop every one of the 64 parts runs.
    EXPECT_LT(ran.load(), 32) << "parts went on being started after the throw";
  }
}

TEST(ReadFanout, WithoutHelpersTheCallerRunsEveryPart) {
  ReadFanout fanout(0);
  std::vector<int> runs(7, 0);
  fanout.Run(runs.size(), [&](size_t i) { ++runs[i]; });
  for (int r : runs) EXPECT_EQ(r, 1);
  fanout.Run(0, [&](size_t) { ADD_FAILURE() << "no part to run"; });
}

}  // namespace
}  // namespace strata
