#include "gpu/embed_batcher.h"

#include <atomic>
#include <thread>

#include "base/notification.h"
#include "gtest/gtest.h"
#include "tests/gpu/tiny_model.h"
#include "tests/test_util.h"

namespace strata::gpu {
namespace {

class Batcher : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(testing::WriteTinyBert(dir_.path(), spec_, &weights_).ok());
    EncoderOptions opts;
    opts.backend = BackendChoice::kCpu;
    auto enc = Encoder::Open(dir_.path(), opts);
    ASSERT_TRUE(enc.ok()) << enc.status();
    encoder_ = std::move(enc).value();
  }
  testing::TempDir dir_;
  testing::TinyBertSpec spec_;
  testing::TinyWeights weights_;
  std::unique_ptr<Encoder> encoder_;
};

TEST_F(Batcher, MergesConcurrentRequestsAndKeepsEachOnesOrder) {
  EmbedBatcher batcher(encoder_.get(), {/*max_batch_tokens=*/100000, absl::Milliseconds(300)});
  const std::vector<std::vector<std::string>> requests = {{"the cat", "sat on the mat", "vector"},
                                                          {"search index"},
                                                          {"query the data base", "un"},
                                                          {"a b c d e f g"},
                                                          {"the"},
                                                          {"mat mat mat", "cat"}};
  std::vector<absl::StatusOr<std::vector<float>>> got(requests.size());
  std::vector<std::thread> threads;
  for (size_t r = 0; r < requests.size(); ++r) {
    threads.emplace_back([&, r] { got[r] = batcher.Embed(requests[r]); });
  }
  for (auto& t : threads) t.join();
  const EmbedBatcherStats st = batcher.stats();
  EXPECT_EQ(st.requests, requests.size());
  EXPECT_LT(st.batches, requests.size()) << "concurrent requests should share engine calls";
  EXPECT_GE(st.held, 1u);
  EXPECT_EQ(st.texts, 10u);
  for (size_t r = 0; r < requests.size(); ++r) {
    ASSERT_TRUE(got[r].ok()) << got[r].status();
    auto alone = encoder_->Embed(requests[r]);
    ASSERT_TRUE(alone.ok());
    ASSERT_EQ(got[r]->size(), alone->size());
    for (size_t i = 0; i < alone->size(); ++i) EXPECT_NEAR((*got[r])[i], (*alone)[i], 1e-5);
  }
}

TEST_F(Batcher, LoneRequestsOneAfterAnotherAreNotHeld) {
  // Requests more than a window apart: nothing suggests company, so none is held.
  EmbedBatcher batcher(encoder_.get(), {/*max_batch_tokens=*/100000, absl::Milliseconds(200)});
  for (int i = 0; i < 3; ++i) {
    if (i > 0) absl::SleepFor(absl::Milliseconds(250));
    auto out = batcher.Embed({"the cat sat on the mat"});
    ASSERT_TRUE(out.ok()) << out.status();
  }
  EXPECT_EQ(batcher.stats().batches, 3u);
  EXPECT_EQ(batcher.stats().held, 0u);
}

TEST_F(Batcher, AFullBudgetGoesWithoutWaitingAndEmptyRequestsReturnAtOnce) {
  // A 60 s window: only a full token budget can release these requests in time.
  EmbedBatcher batcher(encoder_.get(), {/*max_batch_tokens=*/4, absl::Seconds(60)});
  auto out = batcher.Embed({"the cat sat on the mat"});  // 8 tokens >= the budget of 4
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(out->size(), static_cast<size_t>(spec_.hidden));
  auto none = batcher.Embed({});
  ASSERT_TRUE(none.ok());
  EXPECT_TRUE(none->empty());
}

// A client that gives up (its RPC cancelled, or past its deadline) must not hold the engine: a
// queued call leaves the queue, and a running batch that holds nobody else's texts stops before
// its next forward pass. A is long (thousands of one-text passes), B queues behind it.
TEST_F(Batcher, AnAbandonedCallLeavesTheQueueAndStopsItsBatch) {
  EncoderOptions opts;
  opts.backend = BackendChoice::kCpu;
  opts.max_batch_tokens = spec_.max_positions;  // one long text per pass
  auto enc = Encoder::Open(dir_.path(), opts);
  ASSERT_TRUE(enc.ok()) << enc.status();
  EmbedBatcher batcher(enc->get(), {/*max_batch_tokens=*/64, absl::Milliseconds(1)});
  const std::vector<std::string> a_texts(20000,
                                         "the cat sat on the mat and the dog sat on the log");
  std::atomic<bool> give_up_a{false};
  std::atomic<int> a_checks{0};
  Notification a_queued;
  absl::StatusOr<std::vector<float>> a;
  std::thread a_thread([&] {
    a = batcher.Embed(a_texts, nullptr, [&] {
      // The first check comes before A is queued, the next ones while it waits or runs.
      if (a_checks.fetch_add(1) == 1) a_queued.Notify();
      return give_up_a.load();
    });
  });
  // A is queued or running; either way B waits behind it.
  if (!a_queued.WaitForNotificationWithTimeout(absl::Seconds(60))) {
    give_up_a = true;
    a_thread.join();
    FAIL() << "the first call never waited";
  }
  // B's caller leaves once B is queued (its first check, before queueing, still sees it there).
  int checks = 0;
  auto b = batcher.Embed({"the cat"}, nullptr, [&checks] { return ++checks > 1; });
  EXPECT_TRUE(absl::IsCancelled(b.status())) << b.status();
  give_up_a = true;  // A is running by now: it stops at its next pass
  a_thread.join();
  EXPECT_TRUE(absl::IsCancelled(a.status())) << a.status();
  EXPECT_EQ(batcher.stats().cancelled, 2u);
  EXPECT_EQ(batcher.stats().requests, 0u);  // neither finished
  // The engine serves the next caller, and gives it the right answer.
  auto c = batcher.Embed({"the cat"});
  ASSERT_TRUE(c.ok()) << c.status();
  auto alone = (*enc)->Embed({"the cat"});
  ASSERT_TRUE(alone.ok());
  for (size_t i = 0; i < alone->size(); ++i) EXPECT_NEAR((*c)[i], (*alone)[i], 1e-6);
}

}  // namespace
}  // namespace strata::gpu
