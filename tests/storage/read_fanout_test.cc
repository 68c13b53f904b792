#include "storage/read_fanout.h"

#include <atomic>
#include <thread>
#include <vector>

#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"

namespace strata {
namespace {

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
    EXPECT_TRUE(all_started.WaitForNotificationWithTimeout(absl::Seconds(30)));
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
  fanout.Run(5, [&](size_t i) { ran_on[i] = std::this_thread::get_id(); });
  for (const std::thread::id& id : ran_on) EXPECT_EQ(id, std::this_thread::get_id());
  release.Notify();
  first.join();
}

// A part may fan out in turn: nobody waits on a part that has not started.
TEST(ReadFanout, APartMayRunPartsOfItsOwn) {
  ReadFanout fanout(3);
  std::vector<std::atomic<int>> runs(4 * 5);
  fanout.Run(4, [&](size_t i) { fanout.Run(5, [&](size_t j) { runs[i * 5 + j].fetch_add(1); }); });
  for (const auto& r : runs) EXPECT_EQ(r.load(), 1);
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
