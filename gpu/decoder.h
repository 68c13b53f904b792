// Llama-family decoders (llama and qwen2 layouts) from a GGUF file, on an engine backend: token
// embeddings, then per layer RMSNorm -> Q/K/V (qwen2: with biases) -> rotary positions -> causal
// attention with grouped KV heads over a per-sequence cache -> output projection + residual ->
// RMSNorm -> SwiGLU feed-forward + residual; final RMSNorm and the output projection (tied to the
// embeddings when the file has no output.weight).
//
// Weights stay in their GGUF types (F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q4_K, Q6_K), unpacked on the
// fly inside the products; activations and the KV cache are F32. RoPE pairs adjacent dimensions
// for llama (llama.cpp permutes Q/K when it writes GGUF) and halves for qwen2.
//
// Runs on either backend: the CPU's block kernels, or CUDA's (quantised weights kept in device
// memory as blocks; gpu/internal/cuda_backend.cu).
#ifndef STRATA_GPU_DECODER_H_
#define STRATA_GPU_DECODER_H_

#include <algorithm>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "base/mutex.h"
#include "gpu/backend.h"
#include "gpu/bpe_tokenizer.h"
#include "gpu/chat_template.h"
#include "gpu/gguf.h"
#include "gpu/passage_kv.h"

namespace strata::gpu {

class DeviceSpanCache;  // gpu/internal/device_span_cache.h

enum class DecoderArch { kLlama, kQwen2 };

struct DecoderConfig {
  DecoderArch arch = DecoderArch::kLlama;
  std::string name;  // general.name, for logs
  int vocab_size = 0;
  int hidden = 0;
  int layers = 0;
  int heads = 0;
  int kv_heads = 0;
  int head_dim = 0;
  int ffn = 0;
  int context_length = 0;  // the model's trained context
  float rms_eps = 1e-5f;
  float rope_theta = 10000.0f;
  RopeStyle rope_style = RopeStyle::kAdjacent;
};

// Reads the architecture's hyper-parameters from the metadata. InvalidArgument names a missing or
// inconsistent field, or an unsupported feature (another architecture, partial or scaled RoPE).
[[nodiscard]] absl::StatusOr<DecoderConfig> ReadDecoderConfig(const GgufFile& file);

// One sequence's keys (rotated) and values, every layer, for `capacity` positions. Made by
// Decoder::NewSequence; used by one caller at a time.
class DecoderSequence final {
 public:
  [[nodiscard]] int64_t length() const { return length_; }
  [[nodiscard]] int64_t capacity() const { return capacity_; }
  [[nodiscard]] size_t bytes() const;
  // Forgets positions from `length` on (e.g. to reuse a shared prefix).
  void Truncate(int64_t length) { length_ = std::min(length_, std::max<int64_t>(0, length)); }

 private:
  friend class Decoder;
  int64_t length_ = 0, capacity_ = 0;
  std::vector<Tensor> k_, v_;  // per layer, [capacity, kv_heads * head_dim]
};

// Every layer's keys (before RoPE) and values for the tokens of one Forward, on the host:
// k[layer] and v[layer] hold tokens * kv_heads * head_dim floats (PassageKv::Compress's input).
struct KvCapture {
  std::vector<std::vector<float>> k, v;
};

// A token to run in a batch: appended to `seq` (at its length, after the batch's earlier rows
// for the same sequence); `logits` asks for its next-token logits.
struct DecoderRow {
  DecoderSequence* seq = nullptr;
  int32_t token = 0;
  bool logits = false;
};

// A stretch of a context whose keys and values come from a cache instead of a forward pass:
// the passage's tokens lie at [position, position + kv->tokens()). recompute_first of them (the
// passage's first tokens, which saw no context when cached) are recomputed.
struct CachedSpan {
  int64_t position = 0;
  const PassageKv* kv = nullptr;
  int recompute_first = 0;
  // The entry was computed at this very place after what precedes it here (e.g. the shared
  // instructions at position 0): it equals a fresh computation, so the deviating share neither
  // picks nor counts its tokens.
  bool exact = false;
};

// Which cached tokens Assemble recomputes (AssembleOptions::recompute_ratio of them).
enum class RecomputeSelection {
  // CacheBlend's: the tokens whose layer-1 keys and values deviate most from a fresh
  // computation (layer 0 is run over every token for it; its output carries on for the chosen
  // ones). The default: on CPU at a time to first token >= 2.5x shorter than a full prefill it
  // gives the same answer quality or better for less (below). A one-layer model has no layer 1
  // to compare: it then recomputes only the first tokens.
  kKeyValueDeviation,
  // The tokens the context's computed tail (the question, after the last cached span) attends
  // to most: a draft pass runs every computed token over the cached keys and values, and the
  // attention its last kAttentionSelectionRows rows pay each cached token, summed over the heads
  // of every kAttentionSelectionEvery-th layer, ranks them. Per recomputed token it restores
  // more (SQuAD, 24 questions, SmolLM2-135M, 16 first tokens + 15%: answer NLL +4.7% against
  // +5.6% by deviation), but on 2 CPU cores its draft (~40 rows through every layer) costs about
  // a fifth of the assembly, so at equal time to first token deviation is level or ahead there
  // down to 2.5x (bench/RESULTS.md). Kept for backends where a few rows cost little against the
  // rest.
  kQuestionAttention,
};

inline constexpr int kAttentionSelectionRows = 16;
inline constexpr int kAttentionSelectionEvery = 3;

struct AssembleOptions {
  // Share of the cached tokens of spans not marked exact, recomputed besides recompute_first,
  // picked by `selection`. 0: none.
  float recompute_ratio = 0.0f;
  RecomputeSelection selection = RecomputeSelection::kKeyValueDeviation;
};

struct AssembleStats {
  int64_t cached_tokens = 0;      // tokens whose keys and values came from the cache
  int64_t recomputed_tokens = 0;  // of those, recomputed (first tokens + deviating share)
  int64_t fresh_tokens = 0;       // tokens no span covered (computed normally)
  int64_t device_hits = 0;        // spans whose entry was already in the device tier
};

struct DecoderOptions {
  BackendChoice backend = BackendChoice::kCpu;
  int cuda_device = 0;
  // On the CPU: products of up to 16 rows (decoding steps, batched or not, and prompts that
  // short) quantise the activations of Q8_0/Q4_0/Q4_1 weights to int8 (llama.cpp's route: faster,
  // approximate; Backend::PrepareQuantizedLinear). false: fp32 activations, the path checked
  // against the float64 reference. Longer prompts always use fp32. The CUDA backend always keeps
  // fp32.
  bool int8_activations = true;
  // On CUDA: bytes of passage KV entries kept decompressed in GPU memory between assemblies
  // (gpu/internal/device_span_cache.h); -1: 1 GiB. The CPU backend keeps none (its memory is the
  // host's, where the entries already are).
  int64_t device_span_bytes = -1;
};

// A prompt filled a stretch of rows at a time (Decoder::BeginFill, then Decoder::FillSome until
// done()): a scheduler runs the stretches between other sequences' passes, so those keep decoding
// beside a long prompt. The result is the one pass's (Forward, or Assemble), up to the rounding
// of the products a stretch's row count picks (FillSome): the rows to compute run in position
// order, and a row attends only to positions before it, all of them filled by then (cached, or
// computed in this stretch or an earlier one). Holds the computed rows' states
// between stretches (rows x hidden floats for an assembly). Used by one caller at a time, with
// the sequence it was begun on, which nothing else may touch until it is done.
class PromptFill final {
 public:
  PromptFill(const PromptFill&) = delete;
  PromptFill& operator=(const PromptFill&) = delete;
  [[nodiscard]] bool done() const { return next_ >= rows_; }
  // Rows of the prompt still to run through the layers.
  [[nodiscard]] int64_t rows_left() const { return rows_ - next_; }

 private:
  friend class Decoder;
  PromptFill() = default;
  DecoderSequence* seq_ = nullptr;
  bool assembly_ = false;
  std::vector<int32_t> tokens_;     // a prefill: the prompt
  std::vector<int32_t> positions_;  // an assembly: the rows to compute, ascending
  Tensor x_;                        // an assembly: their states entering layer first_layer_
  int first_layer_ = 0;
  int64_t length_ = 0;  // an assembly: the sequence's length once done
  int64_t rows_ = 0, next_ = 0;
};

class Decoder final {
 public:
  // Loads the model. Errors name the file and what is wrong: a missing tensor, a shape that
  // disagrees with the metadata, a tensor type Strata does not read, a tokenizer or chat
  // template it cannot follow, a backend without decoder operations.
  static absl::StatusOr<std::unique_ptr<Decoder>> Open(const std::string& path,
                                                       const DecoderOptions& options = {});
  // The same on a backend the caller made (null: made from options.backend and cuda_device).
  static absl::StatusOr<std::unique_ptr<Decoder>> Open(const std::string& path,
                                                       const DecoderOptions& options,
                                                       std::unique_ptr<Backend> backend);
  Decoder(const Decoder&) = delete;
  Decoder& operator=(const Decoder&) = delete;
  ~Decoder();

  [[nodiscard]] const DecoderConfig& config() const { return config_; }
  [[nodiscard]] const BpeTokenizer& tokenizer() const { return *tokenizer_; }
  [[nodiscard]] const ChatTemplate& chat() const { return *chat_; }
  [[nodiscard]] int32_t eos_id() const { return eos_id_; }
  [[nodiscard]] const std::string& path() const { return path_; }
  // Bytes of the weights as held (quantised).
  [[nodiscard]] size_t weight_bytes() const { return weight_bytes_; }
  // e.g. "cpu (2 OpenMP threads, avx512 row kernels), weights Q4_1 blocks unpacked in the
  // product (avx512)".
  [[nodiscard]] std::string backend_name() const;

  // A sequence with room for `capacity` positions (<= the model's context).
  // InvalidArgument for a capacity outside [1, context]; ResourceExhausted when the cache cannot
  // be allocated.
  [[nodiscard]] absl::StatusOr<std::unique_ptr<DecoderSequence>> NewSequence(int64_t capacity);

  // Runs `tokens` after the sequence's current positions, appending their keys and values.
  // `logits` receives vocab_size floats for the last token, or for every token (tokens.size() *
  // vocab_size, row t for token t) with all_logits. With `capture`, also returns every layer's
  // keys (before RoPE) and values of these tokens. InvalidArgument for an empty input or an id
  // outside the vocabulary; OutOfRange when the tokens do not fit the sequence's capacity (the
  // sequence is then unchanged). Thread-safe: callers take turns on the backend.
  [[nodiscard]] absl::Status Forward(absl::Span<const int32_t> tokens, DecoderSequence& seq,
                                     std::vector<float>* logits, bool all_logits = false,
                                     KvCapture* capture = nullptr);

  // One pass over a batch that may mix sequences (continuous batching: each running generation
  // adds its next token). `logits` receives vocab_size floats per row that asks, in row order.
  // Errors as Forward; on error no sequence changes length.
  [[nodiscard]] absl::Status Step(absl::Span<const DecoderRow> rows, std::vector<float>* logits);

  // Fills an empty sequence's first kv.tokens() positions from cached keys and values (e.g. a
  // shared prompt prefix computed once), keys rotated to positions 0.... InvalidArgument when the
  // sequence is not empty or too short, or the entry was made by another model.
  [[nodiscard]] absl::Status Restore(const PassageKv& kv, DecoderSequence& seq);

  // Fills an empty sequence with a whole context of `tokens`, where `spans` (ascending, not
  // overlapping, each inside the context) bring cached keys and values: they are rotated to their
  // positions, a share of them is recomputed (options, spans' recompute_first), and every other
  // token is computed with attention over everything before it. `logits` receives the last
  // token's. InvalidArgument for spans that do not fit the context or the model (layers, width).
  [[nodiscard]] absl::Status Assemble(absl::Span<const int32_t> tokens,
                                      absl::Span<const CachedSpan> spans,
                                      const AssembleOptions& options, DecoderSequence& seq,
                                      std::vector<float>* logits, AssembleStats* stats = nullptr);

  // Assemble (spans not empty) or Forward (spans empty) a stretch at a time. BeginFill checks the
  // request as they do (the same errors) and, for an assembly, loads the cached spans and chooses
  // the rows to recompute (*stats is then final); FillSome runs up to `max_rows` more rows (0:
  // every row left; a tail of 16 rows or fewer goes with the stretch before it) through every
  // layer, and once the last has run, `logits` receives the last token's (as Forward's and
  // Assemble's do). Stretches of more than 16 rows give the one pass's logits on the CPU;
  // smaller ones agree up to the rounding of the decode-size products they take. An error of
  // FillSome leaves the sequence unusable for this prompt (as a failed Assemble does); the fill is
  // then done with.
  [[nodiscard]] absl::StatusOr<std::unique_ptr<PromptFill>> BeginFill(
      absl::Span<const int32_t> tokens, absl::Span<const CachedSpan> spans,
      const AssembleOptions& options, DecoderSequence& seq, AssembleStats* stats = nullptr);
  [[nodiscard]] absl::Status FillSome(PromptFill& fill, int64_t max_rows,
                                      std::vector<float>* logits);

 private:
  struct Layer;
  // Where a row of a pass lies: its sequence and position.
  struct Place {
    DecoderSequence* seq;
    int32_t position;
  };
  Decoder() = default;
  absl::Status Load(const GgufFile& file, const DecoderOptions& options);
  // BeginFill of spans (even none): Assemble's checks, the cached spans loaded, the rows to
  // compute chosen, and their states entering the first layer they run.
  absl::StatusOr<std::unique_ptr<PromptFill>> BeginAssembly(absl::Span<const int32_t> tokens,
                                                            absl::Span<const CachedSpan> spans,
                                                            const AssembleOptions& options,
                                                            DecoderSequence& seq,
                                                            AssembleStats* stats);
  absl::Status CheckTokens(absl::Span<const int32_t> tokens) const;
  // x [rows, hidden] = the tokens' embeddings.
  absl::StatusOr<Tensor> Embed(absl::Span<const int32_t> tokens) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Post-RoPE queries of rows [first_row, end) of a pass at the layers l with l % every ==
  // every - 1: q[l / every] holds (rows - first_row) x heads x head_dim floats.
  struct QueryCapture {
    int64_t first_row = 0;
    int every = 1;
    std::vector<std::vector<float>> q;
  };
  // Layers [first, end) over the rows of x, in place; each row's keys and values are written to
  // its sequence at its position before any row attends. capture (optional) gets pre-RoPE keys
  // and values, appended per layer; queries (optional) the rows' queries it asks for.
  absl::Status RunLayers(int first, int end, Tensor& x, absl::Span<const Place> rows,
                         KvCapture* capture, QueryCapture* queries = nullptr)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Assemble's selections: a score per context position (higher = recompute first), meaningful
  // at the cached positions. Both run passes over `seq`, whose cached positions are loaded.
  // QuestionAttention writes the computed (uncached) positions' keys and values as a draft.
  absl::StatusOr<std::vector<double>> QuestionAttention(absl::Span<const int32_t> tokens,
                                                        const std::vector<uint8_t>& cached,
                                                        DecoderSequence& seq)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // KeyValueDeviation leaves layer 0's output of every token in *h1 (layer 0 does not depend on
  // the context) and writes layer 0's keys and values of every position.
  absl::StatusOr<std::vector<double>> KeyValueDeviation(
      absl::Span<const int32_t> tokens, absl::Span<const CachedSpan> spans,
      const std::vector<std::vector<float>>& layer1_k,
      const std::vector<std::vector<float>>& layer1_v, DecoderSequence& seq, Tensor* h1)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Span s's keys (rotated to s.position) and values into seq; *layer1_k / *layer1_v (when
  // given) receive layer 1's unrotated keys and values; *device_hit whether the entry came from
  // the device tier.
  absl::Status LoadSpan(const CachedSpan& s, DecoderSequence& seq, std::vector<float>* layer1_k,
                        std::vector<float>* layer1_v, bool* device_hit)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Logits of the given rows of x (final norm + output projection), appended to *logits.
  absl::Status Head(const Tensor& x, absl::Span<const int64_t> which, std::vector<float>* logits)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  std::string path_;
  DecoderConfig config_;
  std::unique_ptr<BpeTokenizer> tokenizer_;
  std::unique_ptr<ChatTemplate> chat_;
  int32_t eos_id_ = -1;
  size_t weight_bytes_ = 0;
  std::string weights_path_;  // the product kernels, for backend_name()

  Mutex mu_;
  std::unique_ptr<Backend> backend_;  // used under mu_
  std::unique_ptr<DeviceSpanCache> span_cache_ ABSL_GUARDED_BY(mu_);
  LinearWeight embeddings_, output_;  // output_ empty when tied to the embeddings
  Tensor output_norm_;
  std::vector<Layer> layers_;
};

}  // namespace strata::gpu

#endif  // STRATA_GPU_DECODER_H_
