// Serves many generations on one decoder by continuous (iteration-level) batching: a scheduler
// thread runs one decoder pass per iteration over every running generation's next token (each
// with its own KV sequence), samples each, hands each its token, and retires the finished; new
// generations join between iterations. Their prompts (full prefill, or assembly of cached passage
// KV) are filled one at a time, a stretch of `fill_rows` rows per iteration while others are
// running (Decoder::FillSome), so that running ones keep decoding beside a long prompt: each
// waits one stretch, not a whole prompt, for its next token. Cached entries a generation still
// lacks (a passage seen for the first time) are made on the scheduler thread too, one per
// iteration, after the generation is admitted: the work and its memory are the decoder's, counted
// and interleaved like everything else, never done on callers' threads behind the decoder's back.
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
#include "base/mutex.h"
#include "gpu/decoder.h"
#include "gpu/sampler.h"

namespace strata::gpu {

struct GenerationResult {
  absl::Status status;        // not OK: the prompt could not be filled, or a pass failed
  std::string finish_reason;  // "stop" (end of turn), "length", "cancelled", "error"
  int64_t prompt_tokens = 0;
  int64_t generated_tokens = 0;
  AssembleStats assemble;    // zero for a full prefill
  double queue_seconds = 0;  // submitted -> its prompt's turn to fill, less make_seconds
  double make_seconds = 0;   // making the missing cached entries (to_make)
  // The prompt's passes (prefill or assembly), their own time: filled in stretches between other
  // generations' steps, it takes longer from its turn to its first token.
  double prefill_seconds = 0;
  double first_token_seconds = 0;  // submitted -> first token handed over
  double decode_seconds = 0;       // first token -> last
};

struct GenerationRequest {
  std::vector<int32_t> prompt;  // the whole context
  // Cached stretches of the prompt (Decoder::Assemble); empty: full prefill. The entries are held
  // by `keep` for as long as the generation needs them.
  std::vector<CachedSpan> spans;
  std::vector<std::shared_ptr<const PassageKv>> keep;
  // Entries to make for spans whose `kv` is still null: `make` runs on the scheduler thread once
  // the generation is admitted (one per iteration); its entry goes into spans[span] and `keep`.
  // An error ends the generation with it. `make` may use the decoder (it is not in a pass).
  struct SpanSource {
    size_t span = 0;
    std::function<absl::StatusOr<std::shared_ptr<const PassageKv>>()> make;
  };
  std::vector<SpanSource> to_make;
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
  // Rows of a prompt run per iteration while other generations are running (0: the whole
  // prompt at once); with none running, the whole prompt. ~0.3 s of SmolLM2-135M on 2 cores.
  int64_t fill_rows = 128;
  std::string kv_budget_name = "the KV budget of running generations";  // as errors name it
};

// How a caller ends a generation early (checked before its prompt, between entries it makes and
// between iterations). Cancel: the caller is gone (finish "cancelled"). Stop: the caller has what
// it wanted, e.g. a stop string matched (finish "stop", counted as completed).
class GenerationControl {
 public:
  void Cancel() { state_.store(kCancelled); }
  void Stop() {
    int running = kRunning;
    state_.compare_exchange_strong(running, kStopped);
  }
  [[nodiscard]] bool ended() const { return state_.load() != kRunning; }
  [[nodiscard]] bool cancelled() const { return state_.load() == kCancelled; }

 private:
  enum : int { kRunning, kStopped, kCancelled };
  std::atomic<int> state_{kRunning};
};

struct GeneratorStats {
  int64_t running = 0, queued = 0, completed = 0, cancelled = 0, failed = 0;
  int64_t preparing = 0;  // admitted, making their missing entries or filling their prompts
  int64_t entries_made = 0;
  int64_t tasks_run = 0;                // RunTask
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
  // when the queue is full or the generation could never fit the KV budget. The returned control
  // ends it early.
  [[nodiscard]] absl::StatusOr<std::shared_ptr<GenerationControl>> Submit(GenerationRequest r);

  // Runs `task` on the scheduler thread between two iterations (as entries to make are run), and
  // returns its status: work on the decoder that is not a generation (e.g. computing passage
  // entries ahead of questions) takes its turn instead of stalling running generations. Waits
  // while tasks are queued ahead; Cancelled when `cancelled` says so before the task starts (a
  // task already running finishes and returns its own status), ResourceExhausted beyond
  // max_queued waiting tasks, Unavailable once shutting down. `cancelled` is asked every 50 ms
  // with the generator's lock held: it must not call into the generator.
  [[nodiscard]] absl::Status RunTask(const std::function<absl::Status()>& task,
                                     const std::function<bool()>& cancelled);

  // Bytes of KV one generation of `positions` positions holds.
  [[nodiscard]] size_t SequenceBytes(int64_t positions) const;
  [[nodiscard]] GeneratorStats stats() const;

 private:
  using Clock = std::chrono::steady_clock;
  struct Job {
    GenerationRequest req;
    std::shared_ptr<GenerationControl> control;
    size_t made = 0;        // entries of req.to_make made so far
    bool admitted = false;  // its kv_bytes are in kv_in_use_
    std::unique_ptr<DecoderSequence> seq;
    std::unique_ptr<PromptFill> fill;  // while its prompt is being filled
    std::unique_ptr<Sampler> sampler;
    std::vector<int32_t> history;
    int32_t next = -1;  // the token to feed next
    size_t kv_bytes = 0;
    GenerationResult result;
    Clock::time_point submitted, first_token;
  };
  void Loop();
  // Takes the next job from the queue when it fits; it starts, or waits in preparing_.
  void Admit(std::unique_ptr<Job> job);
  // Makes one missing entry of the first preparing job; starts the job once it has them all.
  void Prepare();
  // Queues the job's prompt to be filled (filling_).
  void Launch(std::unique_ptr<Job> job);
  // Begins the first filling job's prompt, or runs a stretch of it; once it is filled, samples
  // its first token and moves it to running_, or finishes it.
  void Fill();
  // Hands `token` to the job, or ends it; false when it ended.
  bool Deliver(Job& job, int32_t token);
  // The reason a job that ended without an error ends with.
  static std::string EndReason(const Job& job);
  void End(std::unique_ptr<Job> job);  // Finish with EndReason, no error
  void Finish(std::unique_ptr<Job> job, const std::string& reason, absl::Status status);

  Decoder* const decoder_;
  const GeneratorOptions options_;

  mutable Mutex mu_;
  std::deque<std::unique_ptr<Job>> queue_ ABSL_GUARDED_BY(mu_);
  struct Task {
    const std::function<absl::Status()>* run;
    absl::Status status;
    bool abandoned = false;  // the caller stopped waiting: skip it
    bool done = false;
  };
  std::deque<std::shared_ptr<Task>> tasks_ ABSL_GUARDED_BY(mu_);
  size_t kv_in_use_ ABSL_GUARDED_BY(mu_) = 0;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  GeneratorStats stats_ ABSL_GUARDED_BY(mu_);
  std::vector<std::unique_ptr<Job>> running_;   // scheduler thread only
  std::deque<std::unique_ptr<Job>> preparing_;  // scheduler thread only (admitted, making entries)
  std::deque<std::unique_ptr<Job>> filling_;    // scheduler thread only (prompts being filled)
  std::thread thread_;
};

}  // namespace strata::gpu

#endif  // STRATA_GPU_GENERATOR_H_
