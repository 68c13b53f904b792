// The decoder's worker pool: every index runs exactly once, whatever the grain; an exception in
// one chunk comes back to the caller after the other threads have left the loop, and the pool
// serves the next loop as before.
#include "gpu/internal/thread_pool.h"

#include <gtest/gtest.h>

#include <atomic>
#include <stdexcept>
#include <vector>

namespace strata::gpu::cpu {
namespace {

TEST(ThreadPool, EveryIndexRunsOnce) {
  ThreadPool pool(3);
  for (int64_t n : {1, 2, 7, 100, 1001}) {
    for (int64_t grain : {1, 4, 64}) {
      std::vector<std::atomic<int>> seen(static_cast<size_t>(n));
      pool.ParallelFor(n, grain, [&](int64_t b, int64_t e) {
        ASSERT_LE(0, b);
        ASSERT_LE(e, n);
        for (int64_t i = b; i < e; ++i) seen[static_cast<size_t>(i)].fetch_add(1);
      });
      for (int64_t i = 0; i < n; ++i) EXPECT_EQ(seen[static_cast<size_t>(i)].load(), 1) << i;
    }
  }
}

TEST(ThreadPool, AnExceptionReachesTheCallerAndThePoolGoesOn) {
  ThreadPool pool(3);
  std::atomic<int64_t> inside{0};
  // Whichever thread takes the chunk holding 500 throws (a worker or the caller).
  EXPECT_THROW(pool.ParallelFor(1000, 1,
                                [&](int64_t b, int64_t e) {
                                  inside.fetch_add(1);
                                  if (b <= 500 && 500 < e) {
                                    inside.fetch_sub(1);
                                    throw std::runtime_error("chunk 500");
                                  }
                                  inside.fetch_sub(1);
                                }),
               std::runtime_error);
  EXPECT_EQ(inside.load(), 0);  // no thread is still inside fn when the caller gets it
  std::atomic<int64_t> sum{0};
  pool.ParallelFor(1000, 1, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) sum.fetch_add(i);
  });
  EXPECT_EQ(sum.load(), 999 * 1000 / 2);
}

}  // namespace
}  // namespace strata::gpu::cpu
