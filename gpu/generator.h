// Serves many generations on one decoder by continuous (iteration-level) batching: a scheduler
// thread runs one decoder pass per iteration over every running generation's next token (each
// with its own KV sequence), samples each, hands each its token, and retires the finished; new
// generations join between iterations, their prompts filled (full prefill, or assembly of cached
// passage KV) one per iteration so running ones keep decoding.
//
// Memory: each generation's KV sequence (prompt + max_tokens positions) is counted against
// `kv_budget_bytes`; a generation waits in the queue until it fits, and Submit refuses (with
// RESOURCE_EXHAUSTED) beyond `max_queued` waiting.
//
// Thread-safe. Callbacks run on the scheduler thread and must not block (queue and return).
#ifndef STRATA_GPU_GENERATOR_H_
#define STRATA_GPU_GENERATOR_H_

#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "gpu/decoder.h"
#include "gpu/sampler.h"

namespace strata::gpu {

struct GenerationResult {
  absl::Status status;        // not OK: the prompt could not be filled, or a pass failed
  std::string finish_reason;  // "stop" (end of turn), "length", "cancelled", "error"
  int64_t prompt_tokens = 0;
  int64_t generated_tokens = 0;
  AssembleStats assemble;          // zero for a full prefill
  double queue_seconds = 0;        // submitted -> prompt started
  double prefill_seconds = 0;      // the prompt's pass (prefill or assembly)
  double first_token_seconds = 0;  // submitted -> first token handed over
  double decode_seconds = 0;       // first token -> last
};

struct GenerationRequest {
  std::vector<int32_t> prompt;  // the whole context
  // Cached stretches of the prompt (Decoder::Assemble); empty: full prefill. The entries are held
  // by `keep` for as long as the generation needs them.
  std::vector<CachedSpan> spans;
  std::vector<std::shared_ptr<const PassageKv>> keep;
  AssembleOptions assemble;
  SamplingParams sampling;
  int max_tokens = 256;
  std::vector<int32_t> stop_tokens;  // end the generation (not handed over)
  // Each generated token; return false to stop (the caller is gone, or a stop string matched).
  std::function<bool(int32_t token)> on_token;
  // Once, at the end.
  std::function<void(const GenerationResult&)> on_done;
};

struct GeneratorOptions {
  int max_running = 16;                      // generations decoding at once
  int max_queued = 64;                       // waiting for room beyond those
  size_t kv_budget_bytes = size_t{2} << 30;  // KV sequences of running generations together
};

struct GeneratorStats {
  int64_t running = 0, queued = 0, completed = 0, cancelled = 0, failed = 0;
  int64_t steps = 0, batched_rows = 0;  // batched_rows / steps = mean batch size
  size_t kv_bytes = 0;
};

class Generator final {
 public:
  Generator(Decoder* decoder, GeneratorOptions options);
  ~Generator();  // finishes nothing: running and queued generations end "cancelled"
  Generator(const Generator&) = delete;
  Generator& operator=(const Generator&) = delete;

  // Queues a generation; its callbacks report from then on. InvalidArgument for an empty prompt
  // or max_tokens < 1, or a prompt + max_tokens beyond the model's context; ResourceExhausted
  // when the queue is full or the generation could never fit the KV budget. The returned flag
  // cancels it when set (checked before its prompt and between iterations).
  [[nodiscard]] absl::StatusOr<std::shared_ptr<std::atomic<bool>>> Submit(GenerationRequest r);

  // Bytes of KV one generation of `positions` positions holds.
  [[nodiscard]] size_t SequenceBytes(int64_t positions) const;
  [[nodiscard]] GeneratorStats stats() const;

 private:
  using Clock = std::chrono::steady_clock;
  struct Job {
    GenerationRequest req;
    std::shared_ptr<std::atomic<bool>> cancel;
    std::unique_ptr<DecoderSequence> seq;
    std::unique_ptr<Sampler> sampler;
    std::vector<int32_t> history;
    int32_t next = -1;  // the token to feed next
    size_t kv_bytes = 0;
    GenerationResult result;
    Clock::time_point submitted, first_token;
  };
  void Loop();
  // Fills a job's prompt and samples its first token; false when it ended there.
  bool Start(Job& job);
  // Hands `token` to the job, or ends it; false when it ended.
  bool Deliver(Job& job, int32_t token);
  void Finish(std::unique_ptr<Job> job, const std::string& reason, absl::Status status);

  Decoder* const decoder_;
  const GeneratorOptions options_;

  mutable absl::Mutex mu_;
  std::deque<std::unique_ptr<Job>> queue_ ABSL_GUARDED_BY(mu_);
  size_t kv_in_use_ ABSL_GUARDED_BY(mu_) = 0;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  GeneratorStats stats_ ABSL_GUARDED_BY(mu_);
  std::vector<std::unique_ptr<Job>> running_;  // scheduler thread only
  std::thread thread_;
};

}  // namespace strata::gpu

#endif  // STRATA_GPU_GENERATOR_H_
