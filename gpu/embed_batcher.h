// Dynamic batching in front of an Encoder: concurrent callers' texts are merged into one forward
// call of up to `max_batch_tokens` tokens. When company is likely - more than one request queued,
// or the last two arrived less than `max_wait` apart - a request waits at most `max_wait` for
// others to join (the window opens when the first waiting request arrives); a lone request (one
// client asking questions one after another) goes at once, and so does a full budget. Requests
// that arrive while a batch runs queue for the next one. Tokenization runs in the callers'
// threads; one worker thread owns the encoder's backend.
#ifndef STRATA_GPU_EMBED_BATCHER_H_
#define STRATA_GPU_EMBED_BATCHER_H_

#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "base/mutex.h"
#include "gpu/encoder.h"

namespace strata::gpu {

struct EmbedBatcherOptions {
  int64_t max_batch_tokens = 8192;
  absl::Duration max_wait = absl::Milliseconds(2);
};

struct EmbedBatcherStats {
  uint64_t batches = 0;   // encoder calls
  uint64_t held = 0;      // batches whose window was held open for company
  uint64_t requests = 0;  // Embed calls served (successfully)
  uint64_t texts = 0;
  uint64_t tokens = 0;
  uint64_t truncated = 0;
  uint64_t cancelled = 0;  // calls abandoned by their callers (queued or running)
};

class EmbedBatcher final {
 public:
  // `encoder` must outlive the batcher.
  EmbedBatcher(Encoder* encoder, EmbedBatcherOptions options);
  // Fails requests still queued with Unavailable, then stops the worker.
  ~EmbedBatcher();
  EmbedBatcher(const EmbedBatcher&) = delete;
  EmbedBatcher& operator=(const EmbedBatcher&) = delete;

  // Embeds `texts` (texts.size() * dimension floats, in order), batched with concurrent calls.
  // Blocks until done. Thread-safe. `cancelled` (e.g. the RPC's IsCancelled), when given, is
  // polled while the call waits: a cancelled call leaves the queue at once, or, when its batch
  // already runs and holds nobody else's texts, stops it before the next forward pass (a pass is
  // at most max_batch_tokens); either way the call returns Cancelled, so an abandoned request
  // never holds the engine for the ones behind it.
  [[nodiscard]] absl::StatusOr<std::vector<float>> Embed(
      absl::Span<const std::string> texts, EmbedStats* stats = nullptr,
      const std::function<bool()>& cancelled = {});

  [[nodiscard]] EmbedBatcherStats stats() const;
  [[nodiscard]] const Encoder& encoder() const { return *encoder_; }

 private:
  struct Request {
    absl::Span<const std::vector<int32_t>> sequences;
    int64_t tokens = 0;
    float* out = nullptr;
    absl::Time arrived;
    bool done = false;
    std::atomic<bool> abandoned{false};  // set by the caller while its batch runs
    absl::Status status;
  };
  void Run();

  Encoder* const encoder_;
  const EmbedBatcherOptions options_;
  mutable Mutex mu_;
  std::deque<Request*> queue_ ABSL_GUARDED_BY(mu_);
  int64_t queued_tokens_ ABSL_GUARDED_BY(mu_) = 0;
  absl::Time last_arrival_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  absl::Duration last_gap_ ABSL_GUARDED_BY(mu_) = absl::InfiniteDuration();  // between the last two
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  EmbedBatcherStats stats_ ABSL_GUARDED_BY(mu_);
  std::thread worker_;
};

}  // namespace strata::gpu

#endif  // STRATA_GPU_EMBED_BATCHER_H_
