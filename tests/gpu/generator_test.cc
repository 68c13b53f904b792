// Continuous batching: generations batched together produce what each produces alone; limits,
// cancellation and stop tokens end them with the right reason; missing cached entries are made
// on the scheduler's thread, between passes.
#include "gpu/generator.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <thread>

#include "base/notification.h"
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
    Notification done;
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
  // The entry of `passage` computed after `prefix`, as the passage cache makes it.
  std::shared_ptr<const PassageKv> Entry(const std::vector<int32_t>& prefix,
                                         const std::vector<int32_t>& passage) {
    auto seq = d_->NewSequence(256);
    if (!prefix.empty()) {
      EXPECT_TRUE(d_->Forward(prefix, **seq, nullptr).ok());
    }
    KvCapture cap;
    EXPECT_TRUE(d_->Forward(passage, **seq, nullptr, false, &cap).ok());
    const DecoderConfig& c = d_->config();
    return std::make_shared<const PassageKv>(PassageKv::Compress(
        KvFormat::kF32, static_cast<int>(passage.size()), c.kv_heads, c.head_dim, cap.k, cap.v));
  }
  testing::TempDir dir_;
  std::string path_ = dir_.File("tiny.gguf");
  std::unique_ptr<Decoder> d_;
};

// Holds the generator's scheduler in a task until release() (so what is submitted meanwhile
// waits in the queue: tests then act on it before it can run).
class SchedulerHold {
 public:
  explicit SchedulerHold(Generator& g)
      : thread_([this, &g] {
          EXPECT_TRUE(g.RunTask(
                           [this] {
                             held_.Notify();
                             release_.WaitForNotification();
                             return absl::OkStatus();
                           },
                           nullptr)
                          .ok());
        }) {
    held_.WaitForNotification();
  }
  ~SchedulerHold() { release(); }
  void release() {
    if (!release_.HasBeenNotified()) release_.Notify();
    if (thread_.joinable()) thread_.join();
  }

 private:
  Notification held_, release_;
  std::thread thread_;
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
  SchedulerHold hold(g);
  auto cancel = g.Submit(Request(Prompt(3), 200, &run));
  ASSERT_TRUE(cancel.ok());
  (*cancel)->Cancel();
  hold.release();
  run.done.WaitForNotification();
  EXPECT_EQ(run.result.finish_reason, "cancelled");
  EXPECT_LT(run.tokens.size(), 200u);
}

TEST_F(GeneratorTest, StopEndsAsStopAndCountsAsCompleted) {
  Generator g(d_.get(), {});
  Run run;
  SchedulerHold hold(g);
  auto control = g.Submit(Request(Prompt(3), 200, &run));
  ASSERT_TRUE(control.ok());
  (*control)->Stop();  // e.g. a stop string matched: the caller has its answer
  hold.release();
  run.done.WaitForNotification();
  EXPECT_EQ(run.result.finish_reason, "stop");
  EXPECT_TRUE(run.result.status.ok());
  const GeneratorStats s = g.stats();
  EXPECT_EQ(s.completed, 1);
  EXPECT_EQ(s.cancelled, 0);
}

// A missing passage entry is made by the scheduler (not the caller's thread) once the generation
// is admitted; the answer equals the one given the same entry up front.
TEST_F(GeneratorTest, MissingEntriesAreMadeOnTheSchedulerThread) {
  const std::vector<int32_t> prefix = Prompt(0), passage = Prompt(5), question = Prompt(2);
  std::vector<int32_t> all = prefix;
  all.insert(all.end(), passage.begin(), passage.end());
  all.insert(all.end(), question.begin(), question.end());
  const auto prefix_kv = Entry({}, prefix);
  const auto passage_kv = Entry(prefix, passage);
  const auto position = static_cast<int64_t>(prefix.size());
  Generator g(d_.get(), {});
  // Given up front.
  Run given;
  GenerationRequest a = Request(all, 8, &given);
  a.spans = {{0, prefix_kv.get(), 0}, {position, passage_kv.get(), 2}};
  a.keep = {prefix_kv, passage_kv};
  ASSERT_TRUE(g.Submit(std::move(a)).ok());
  given.done.WaitForNotification();
  ASSERT_TRUE(given.result.status.ok()) << given.result.status;
  // Made by the generator.
  Run made;
  std::thread::id maker;
  GenerationRequest b = Request(all, 8, &made);
  b.spans = {{0, prefix_kv.get(), 0}, {position, nullptr, 2}};
  b.keep = {prefix_kv};
  b.to_make.push_back({1, [&]() -> absl::StatusOr<std::shared_ptr<const PassageKv>> {
                         maker = std::this_thread::get_id();
                         return Entry(prefix, passage);
                       }});
  ASSERT_TRUE(g.Submit(std::move(b)).ok());
  made.done.WaitForNotification();
  ASSERT_TRUE(made.result.status.ok()) << made.result.status;
  EXPECT_EQ(made.tokens, given.tokens);
  EXPECT_NE(maker, std::this_thread::get_id());
  EXPECT_NE(maker, std::thread::id());
  EXPECT_GT(made.result.make_seconds, 0.0);
  EXPECT_EQ(g.stats().entries_made, 1);

  // A make that fails ends the generation with its error; the budget is given back.
  Run failed;
  GenerationRequest c = Request(all, 8, &failed);
  c.spans = {{0, prefix_kv.get(), 0}, {position, nullptr, 2}};
  c.to_make.push_back({1, []() -> absl::StatusOr<std::shared_ptr<const PassageKv>> {
                         return absl::DataLossError("the passage is gone");
                       }});
  ASSERT_TRUE(g.Submit(std::move(c)).ok());
  failed.done.WaitForNotification();
  EXPECT_EQ(failed.result.status.code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(failed.result.finish_reason, "error");
  EXPECT_TRUE(failed.tokens.empty());

  // Cancelled while its entries are made: the rest are not made.
  Run gone;
  int calls = 0;
  std::shared_ptr<GenerationControl> control;
  Notification submitted;
  GenerationRequest d = Request(all, 8, &gone);
  d.spans = {{0, nullptr, 0}, {position, nullptr, 2}};
  for (size_t span : {0, 1}) {
    d.to_make.push_back({span, [&]() -> absl::StatusOr<std::shared_ptr<const PassageKv>> {
                           submitted.WaitForNotification();
                           ++calls;
                           control->Cancel();
                           return prefix_kv;
                         }});
  }
  auto submitted_control = g.Submit(std::move(d));
  ASSERT_TRUE(submitted_control.ok());
  control = *submitted_control;
  submitted.Notify();
  gone.done.WaitForNotification();
  EXPECT_EQ(gone.result.finish_reason, "cancelled");
  EXPECT_EQ(calls, 1);
  // Refused at once: a span with no entry and none to make.
  Run unmade;
  GenerationRequest f = Request(all, 8, &unmade);
  f.spans = {{0, prefix_kv.get(), 0}, {position, nullptr, 2}};
  EXPECT_EQ(g.Submit(std::move(f)).status().code(), absl::StatusCode::kInvalidArgument);
  // Refused at once: an entry to make for a span that has one, or no span at all.
  Run unused;
  GenerationRequest e = Request(all, 8, &unused);
  e.spans = {{0, prefix_kv.get(), 0}};
  e.to_make.push_back(
      {0, [&] { return absl::StatusOr<std::shared_ptr<const PassageKv>>(prefix_kv); }});
  EXPECT_EQ(g.Submit(std::move(e)).status().code(), absl::StatusCode::kInvalidArgument);
  const GeneratorStats s = g.stats();
  EXPECT_EQ(s.kv_bytes, 0u);
  EXPECT_EQ(s.preparing, 0);
}

// A long prompt is filled a stretch per iteration while another generation runs: the running one
// gets a token after every stretch instead of waiting for the whole prompt, and the newcomer's
// tokens are the ones it makes alone.
TEST_F(GeneratorTest, ALongPromptIsFilledBesideARunningGeneration) {
  for (const int64_t fill_rows : {int64_t{4}, int64_t{0}}) {
    SCOPED_TRACE(fill_rows);
    GeneratorOptions options;
    options.fill_rows = fill_rows;
    Generator g(d_.get(), options);
    Mutex mu;
    std::vector<char> events;  // 'a': a token of the running one, 'B': B submitted, 'b': B's
    Notification running, b_submitted;
    Run a, b;
    GenerationRequest ra = Request(Prompt(1), 200, &a);
    ra.on_token = [&](int32_t t) {
      a.tokens.push_back(t);
      if (a.tokens.size() == 2) {
        running.Notify();
        // Held here (on the scheduler's thread) until B is queued: A cannot run out of tokens
        // before B arrives, however slowly this test's thread wakes.
        b_submitted.WaitForNotification();
      }
      MutexLock lock(&mu);
      events.push_back('a');
      return !b.done.HasBeenNotified();  // ends once B is done
    };
    ASSERT_TRUE(g.Submit(std::move(ra)).ok());
    running.WaitForNotification();
    std::vector<int32_t> long_prompt;
    for (int i = 0; i < 100; ++i) long_prompt.push_back((i * 17 + 5) % 256);
    GenerationRequest rb = Request(long_prompt, 4, &b);
    rb.on_token = [&](int32_t t) {
      b.tokens.push_back(t);
      MutexLock lock(&mu);
      events.push_back('b');
      return true;
    };
    {
      MutexLock lock(&mu);
      events.push_back('B');
      ASSERT_TRUE(g.Submit(std::move(rb)).ok());
    }
    b_submitted.Notify();
    b.done.WaitForNotification();
    a.done.WaitForNotification();
    ASSERT_TRUE(b.result.status.ok()) << b.result.status;
    EXPECT_EQ(b.tokens, Alone(long_prompt, 4));
    EXPECT_EQ(b.result.prompt_tokens, 100);
    EXPECT_GT(b.result.prefill_seconds, 0.0);
    // The running one's tokens between B's submission and B's first token.
    MutexLock lock(&mu);
    const auto from = std::find(events.begin(), events.end(), 'B');
    const auto to = std::find(from, events.end(), 'b');
    ASSERT_NE(to, events.end());
    const auto between = std::count(from, to, 'a');
    if (fill_rows == 4) {
      // 21 stretches (the last takes a tail of 16 rows with it): a token of A after each but the
      // one that gives B its first.
      EXPECT_GE(between, 20) << "the running one waited for the whole prompt";
    } else {
      EXPECT_LE(between, 2);  // the whole prompt in one iteration
    }
  }
}

// Tasks run on the scheduler thread between iterations and return their status; a task whose
// caller is gone before it starts is not run.
TEST_F(GeneratorTest, TasksRunOnTheSchedulerThread) {
  Generator g(d_.get(), {});
  Run run;  // a generation running meanwhile
  ASSERT_TRUE(g.Submit(Request(Prompt(1), 30, &run)).ok());
  std::thread::id ran_on;
  EXPECT_TRUE(g.RunTask(
                   [&] {
                     ran_on = std::this_thread::get_id();
                     return absl::OkStatus();
                   },
                   nullptr)
                  .ok());
  EXPECT_NE(ran_on, std::this_thread::get_id());
  EXPECT_NE(ran_on, std::thread::id());
  EXPECT_EQ(g.RunTask([] { return absl::DataLossError("x"); }, nullptr).code(),
            absl::StatusCode::kDataLoss);
  run.done.WaitForNotification();
  EXPECT_EQ(run.result.finish_reason, "length");
  // A caller gone before the scheduler reaches the task: Cancelled, and the task never runs.
  Notification release, first_started;
  std::thread busy([&] {
    EXPECT_TRUE(g.RunTask(
                     [&] {
                       first_started.Notify();
                       release.WaitForNotification();
                       return absl::OkStatus();
                     },
                     nullptr)
                    .ok());
  });
  first_started.WaitForNotification();
  bool ran = false;
  // The caller gives up at its first check, and only then lets the first task end: the scheduler
  // reaches the second task after it was abandoned.
  EXPECT_EQ(g.RunTask(
                 [&] {
                   ran = true;
                   return absl::OkStatus();
                 },
                 [&] {
                   release.Notify();
                   return true;
                 })
                .code(),
            absl::StatusCode::kCancelled);
  busy.join();
  EXPECT_FALSE(ran);
  EXPECT_EQ(g.stats().tasks_run, 3);
}

}  // namespace
}  // namespace strata::gpu
