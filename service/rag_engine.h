// Retrieval-augmented generation over retrieved passages: builds the prompt (rag_prompt.h),
// brings each passage's keys and values from the passage KV cache (computing and keeping the
// missing ones: each passage prefilled once, alone, after the shared prefix), and runs the
// generation on the shared decoder (continuous batching, gpu/generator.h), streaming text.
//
// Thread-safe: any number of Answer calls at once (they share the decoder by batching).
#ifndef STRATA_SERVICE_RAG_ENGINE_H_
#define STRATA_SERVICE_RAG_ENGINE_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "base/mutex.h"
#include "gpu/decoder.h"
#include "gpu/generator.h"
#include "gpu/passage_kv_cache.h"
#include "service/rag_prompt.h"

namespace strata {

struct RagOptions {
  std::string decoder_path;  // GGUF
  gpu::DecoderOptions decoder;
  gpu::GeneratorOptions generator;
  size_t kv_ram_bytes = size_t{512} << 20;
  size_t kv_disk_bytes = 0;  // 0: no SSD tier
  std::string kv_dir;        // the SSD tier's directory (its files are removed at start)
  std::string instructions = kDefaultRagInstructions;
  int max_tokens = 1024;  // most tokens one answer may ask for
};

struct RagPassage {
  uint64_t id = 0;
  std::string text;  // as the prompt shows it
};

struct RagRequest {
  std::string collection;
  std::string question;
  std::string instructions;  // empty: the engine's
  std::vector<RagPassage> passages;
  gpu::SamplingParams sampling;
  int max_tokens = 256;
  std::vector<std::string> stops;
  bool full_prefill = false;  // else cached in `format`
  gpu::KvFormat format = gpu::KvFormat::kInt8;
  float recompute_ratio = 0.15f;
  int64_t recompute_first = 4;  // (wide enough for any value a request sends: Check names it)
  // The passage cache's epoch() read before the passages were read from the collection: an
  // entry made from one that was deleted, replaced or dropped since is not kept (else a drop
  // while an answer is made would leave entries of text that no longer exists, on disk too).
  uint64_t cache_epoch = gpu::PassageKvCache::kAnyEpoch;
};

struct RagReport {
  // cached_tokens: reused keys and values (the instructions' and the passages').
  int64_t prompt_tokens = 0, cached_tokens = 0, recomputed_tokens = 0, generated_tokens = 0;
  int ram_hits = 0, disk_hits = 0, misses = 0;
  size_t bytes_read = 0, cache_bytes = 0;
  int passages_cut = 0;  // passages longer than kMaxPassageTokens, cut
  // kv_seconds: looking passages up, and making the missing ones (on the decoder's thread).
  double lookup_seconds = 0;  // of that, the lookups before the generator took over
  double kv_seconds = 0, queue_seconds = 0, prefill_seconds = 0, first_token_seconds = 0,
         decode_seconds = 0;
  std::string finish_reason;  // stop | length | stop_string | cancelled
};

// What Precompute did.
struct PrecomputeReport {
  uint64_t computed = 0;        // entries made now
  uint64_t already_cached = 0;  // found in RAM or on disk
  uint64_t without_text = 0;    // passages with no token to cache
  uint64_t bytes = 0;           // of the entries made now
  uint64_t evictions = 0;       // entries the cache dropped meanwhile (it is full)
  uint64_t stale = 0;  // made (counted in computed), not kept: their passage changed meanwhile
};

class RagEngine final {
 public:
  // Loads the decoder and computes the shared prefix. Errors name the model file's problem.
  static absl::StatusOr<std::unique_ptr<RagEngine>> Open(const RagOptions& options);
  ~RagEngine();

  // Answers; on_text receives each piece of the answer as it is made (return false to stop:
  // the client is gone); cancelled is asked between pieces. InvalidArgument for parameters out of
  // range; ResourceExhausted for a question over kMaxQuestionTokens, instructions over
  // kMaxInstructionTokens, or a full decoder queue; the report is filled in either way as far as
  // the call got.
  // The request's own checks (parameters, question and instructions lengths), without its
  // passages: callers run them before retrieving.
  [[nodiscard]] absl::Status Check(const RagRequest& req) const;

  [[nodiscard]] absl::Status Answer(const RagRequest& req,
                                    const std::function<bool(const std::string&)>& on_text,
                                    const std::function<bool()>& cancelled, RagReport* report);

  // Makes the cache entries of `passages` (of `collection`, in `format`) that it lacks, as the
  // first question retrieving them would, one passage per decoder turn (Generator::RunTask) so
  // running answers keep going. Stops with Cancelled when `cancelled` says so; the report counts
  // what was done either way. Entries beyond the cache's budgets evict older ones
  // (report->evictions). `cache_epoch`: as RagRequest's, read before the passages were.
  [[nodiscard]] absl::Status Precompute(const std::string& collection,
                                        const std::vector<RagPassage>& passages,
                                        gpu::KvFormat format, uint64_t cache_epoch,
                                        const std::function<bool()>& cancelled,
                                        PrecomputeReport* report);

  [[nodiscard]] gpu::PassageKvCache& cache() { return *cache_; }
  [[nodiscard]] const gpu::Decoder& decoder() const { return *decoder_; }
  [[nodiscard]] gpu::GeneratorStats generator_stats() const { return generator_->stats(); }
  [[nodiscard]] const std::string& model_name() const { return model_; }
  [[nodiscard]] int max_tokens() const { return options_.max_tokens; }

 private:
  RagEngine() = default;
  [[nodiscard]] gpu::PassageKey Key(const std::string& collection, const RagPassage& p,
                                    gpu::KvFormat format) const;
  // Computes (or finds, when another request made it meanwhile) the entry of a passage's body
  // tokens and keeps it in the cache unless its passage was invalidated after `cache_epoch` (see
  // RagRequest). Runs on the generator's thread (GenerationRequest::to_make). *no_room (when
  // given): the cache could not keep it (too large for it); *stale (when given): it was not kept
  // for its passage was deleted or changed since it was read.
  absl::StatusOr<std::shared_ptr<const gpu::PassageKv>> MakePassageKv(
      const gpu::PassageKey& key, const std::vector<int32_t>& tokens, uint64_t cache_epoch,
      bool* no_room = nullptr, bool* stale = nullptr);
  // The prompt (and prefix entry) for `instructions`.
  struct Prefix {
    std::unique_ptr<RagPrompt> prompt;
    std::shared_ptr<const gpu::PassageKv> kv;
  };
  // The default's, or one for custom instructions (made on the generator's thread, kept among
  // the few most recent).
  absl::StatusOr<std::shared_ptr<const Prefix>> PrefixFor(const std::string& instructions,
                                                          const std::function<bool()>& cancelled);
  absl::StatusOr<std::shared_ptr<const Prefix>> MakePrefix(const std::string& instructions);

  RagOptions options_;
  std::string model_;
  std::string cache_model_;  // the model and the default instructions (passage cache keys)
  std::unique_ptr<gpu::Decoder> decoder_;
  std::unique_ptr<gpu::PassageKvCache> cache_;
  std::unique_ptr<gpu::Generator> generator_;
  std::shared_ptr<const Prefix> default_prefix_;
  Mutex mu_;
  std::vector<std::pair<std::string, std::shared_ptr<const Prefix>>> other_prefixes_
      ABSL_GUARDED_BY(mu_);  // a few custom instructions, most recent first
};

}  // namespace strata

#endif  // STRATA_SERVICE_RAG_ENGINE_H_
