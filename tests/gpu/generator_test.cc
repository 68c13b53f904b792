// Continuous batching: generations batched together produce what each produces alone; limits,
// cancellation and stop tokens end them with the right reason.
#include "gpu/generator.h"

#include <gtest/gtest.h>

#include "absl/synchronization/notification.h"
#include "tests/gpu/tiny_decoder.h"
#include "tests/test_util.h"

namespace strata::gpu {
namespace {

class GeneratorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(testing::WriteTinyDecoder({}, path_).ok());
    auto d = Decoder::Open(path_);
    ASSERT_TRUE(d.ok()) << d.status();
    d_ = std::move(*d);
  }
  std::vector<int32_t> Prompt(int salt) {
    std::vector<int32_t> p;
    for (int i = 0; i < 9 + salt; ++i) p.push_back((i * 13 + salt * 29 + 1) % 256);
    return p;
  }
  // Greedy tokens of `prompt`, one Forward at a time.
  std::vector<int32_t> Alone(const std::vector<int32_t>& prompt, int n) {
    auto seq = d_->NewSequence(static_cast<int64_t>(prompt.size()) + n);
    std::vector<float> logits;
    EXPECT_TRUE(d_->Forward(prompt, **seq, &logits).ok());
    Sampler s({});
    std::vector<int32_t> out, hist = prompt;
    for (int i = 0; i < n; ++i) {
      const int32_t t = s.Next(absl::MakeSpan(logits), hist);
      out.push_back(t);
      hist.push_back(t);
      if (i + 1 < n) {
        EXPECT_TRUE(d_->Forward({&t, 1}, **seq, &logits).ok());
      }
    }
    return out;
  }
  struct Run {
    std::vector<int32_t> tokens;
    GenerationResult result;
    absl::Notification done;
  };
  GenerationRequest Request(const std::vector<int32_t>& prompt, int max_tokens, Run* run) {
    GenerationRequest r;
    r.prompt = prompt;
    r.max_tokens = max_tokens;
    r.on_token = [run](int32_t t) {
      run->tokens.push_back(t);
      return true;
    };
    r.on_done = [run](const GenerationResult& res) {
      run->result = res;
      run->done.Notify();
    };
    return r;
  }
  testing::TempDir dir_;
  std::string path_ = dir_.File("tiny.gguf");
  std::unique_ptr<Decoder> d_;
};

TEST_F(GeneratorTest, BatchedGenerationsEqualEachAlone) {
  Generator g(d_.get(), {});
  Run runs[3];
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(g.Submit(Request(Prompt(i), 12 + i, &runs[i])).ok());
  }
  for (int i = 0; i < 3; ++i) {
    runs[i].done.WaitForNotification();
    EXPECT_TRUE(runs[i].result.status.ok()) << runs[i].result.status;
    EXPECT_EQ(runs[i].result.finish_reason, "length");
    EXPECT_EQ(runs[i].tokens, Alone(Prompt(i), 12 + i)) << i;
    EXPECT_EQ(runs[i].result.generated_tokens, 12 + i);
  }
  const GeneratorStats s = g.stats();
  EXPECT_EQ(s.completed, 3);
  EXPECT_GT(s.batched_rows, s.steps);  // some passes carried more than one generation
  EXPECT_EQ(s.kv_bytes, 0u);
}

TEST_F(GeneratorTest, StopTokensCancellationAndLimits) {
  Generator g(d_.get(), {});
  // A stop token: the first greedy token not seen before ends it there, unreported.
  // (Sampled, not greedy: a random tiny model tends to repeat its greedy token.)
  Run first;
  GenerationRequest sampled = Request(Prompt(0), 10, &first);
  sampled.sampling.temperature = 1.0f;
  sampled.sampling.seed = 7;
  ASSERT_TRUE(g.Submit(sampled).ok());
  first.done.WaitForNotification();
  const std::vector<int32_t> greedy = first.tokens;
  size_t k = 1;
  while (k < greedy.size() &&
         std::find(greedy.begin(), greedy.begin() + static_cast<std::ptrdiff_t>(k), greedy[k]) !=
             greedy.begin() + static_cast<std::ptrdiff_t>(k)) {
    ++k;
  }
  ASSERT_LT(k, greedy.size()) << "the tiny model repeats one token; pick another prompt";
  Run stop;
  GenerationRequest r = Request(Prompt(0), 10, &stop);
  r.sampling = sampled.sampling;
  r.stop_tokens = {greedy[k]};
  ASSERT_TRUE(g.Submit(std::move(r)).ok());
  stop.done.WaitForNotification();
  EXPECT_EQ(stop.result.finish_reason, "stop");
  EXPECT_EQ(stop.tokens,
            std::vector<int32_t>(greedy.begin(), greedy.begin() + static_cast<std::ptrdiff_t>(k)));
  // The caller saying stop (client gone) cancels.
  Run gone;
  GenerationRequest c = Request(Prompt(1), 50, &gone);
  c.on_token = [&gone](int32_t t) {
    gone.tokens.push_back(t);
    return gone.tokens.size() < 2;
  };
  ASSERT_TRUE(g.Submit(std::move(c)).ok());
  gone.done.WaitForNotification();
  EXPECT_EQ(gone.result.finish_reason, "cancelled");
  EXPECT_EQ(gone.tokens.size(), 2u);
  // Refusals.
  Run unused;
  EXPECT_EQ(g.Submit(Request({}, 4, &unused)).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(g.Submit(Request(Prompt(0), 0, &unused)).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(g.Submit(Request(Prompt(0), 1000, &unused)).status().code(),
            absl::StatusCode::kInvalidArgument);  // past the tiny model's 256-position context
  GenerationRequest hot = Request(Prompt(0), 4, &unused);
  hot.sampling.temperature = -1;
  EXPECT_EQ(g.Submit(std::move(hot)).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(GeneratorTest, KvBudgetAndQueueBound) {
  GeneratorOptions o;
  o.kv_budget_bytes = 1;  // nothing fits
  Generator tight(d_.get(), o);
  Run unused;
  EXPECT_EQ(tight.Submit(Request(Prompt(0), 4, &unused)).status().code(),
            absl::StatusCode::kInvalidArgument);  // can never fit: not worth a retry
  // A queue of one behind a budget of one generation: the third waits its turn or is refused.
  GeneratorOptions q;
  q.max_queued = 1;
  q.max_running = 1;
  Generator g(d_.get(), q);
  Run runs[6];
  int refused = 0;
  for (auto& run : runs) {
    if (!g.Submit(Request(Prompt(2), 40, &run)).ok()) {
      ++refused;
      run.done.Notify();
    }
  }
  EXPECT_GE(refused, 1);
  for (auto& run : runs) run.done.WaitForNotification();
}

TEST_F(GeneratorTest, CancelFlagEndsAQueuedOrRunningGeneration) {
  Generator g(d_.get(), {});
  Run run;
  auto cancel = g.Submit(Request(Prompt(3), 200, &run));
  ASSERT_TRUE(cancel.ok());
  (*cancel)->store(true);
  run.done.WaitForNotification();
  EXPECT_EQ(run.result.finish_reason, "cancelled");
  EXPECT_LT(run.tokens.size(), 200u);
}

}  // namespace
}  // namespace strata::gpu
