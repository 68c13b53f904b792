#include "gpu/embed_batcher.h"

#include <thread>

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

}  // namespace
}  // namespace strata::gpu
