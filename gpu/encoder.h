// BERT-family sentence encoders (all-MiniLM-L6-v2, bge-small-en-v1.5, ...) on an engine backend.
//
// A model directory holds config.json (Hugging Face BertModel), model.safetensors, vocab.txt and,
// when the model comes from sentence-transformers, 1_Pooling/config.json (mean or CLS pooling),
// modules.json (a Normalize module: L2-normalised output) and sentence_bert_config.json (the
// maximum sequence length). The encoder tokenizes, sorts a request's texts by length, packs them
// into passes of at most `max_batch_tokens` tokens (no padding), runs the transformer, pools, and
// returns the vectors in the caller's order.
#ifndef STRATA_GPU_ENCODER_H_
#define STRATA_GPU_ENCODER_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/functional/function_ref.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "base/mutex.h"
#include "gpu/backend.h"
#include "gpu/wordpiece.h"

namespace strata::gpu {

struct EncoderConfig {
  int vocab_size = 0;
  int hidden = 0;
  int layers = 0;
  int heads = 0;
  int intermediate = 0;
  int max_positions = 0;
  int type_vocab_size = 0;
  float layer_norm_eps = 1e-12f;
  Pooling pooling = Pooling::kMean;
  bool normalize = true;
  int max_length = 0;  // tokens per text, [CLS] and [SEP] included
  bool lower_case = true;
};

// Reads the model directory's configuration files. InvalidArgument names a missing or bad field
// or an unsupported architecture (e.g. hidden_act other than "gelu"); NotFound names a missing
// config.json.
[[nodiscard]] absl::StatusOr<EncoderConfig> LoadEncoderConfig(const std::string& model_dir);

struct EncoderOptions {
  BackendChoice backend = BackendChoice::kAuto;
  int cuda_device = 0;
  // Activation/weight type; default: the backend's preferred one (F32 on CPU, F16 on CUDA).
  std::optional<DType> dtype;
  // How the Linear layers multiply; default: the backend's DefaultMatmul() (bf16 on CPUs with
  // AMX, else f32 on the CPU; the dtype's on CUDA). FailedPrecondition at Open when the backend
  // cannot run the one asked for.
  std::optional<MatmulPrecision> matmul;
  // Tokens per forward pass (a pass holds whole texts). At least the model's max_length.
  int max_batch_tokens = 16384;
  // Overrides of the model's own settings.
  std::optional<int> max_length;
  std::optional<Pooling> pooling;
  std::optional<bool> normalize;
  // Text pairs (a cross-encoder's question and passage, TokenizePair): the second text's tokens
  // carry BERT's token type 1. The backends add token type 0 to every token, so the word table
  // gets a second copy, rows [vocab, 2 * vocab), with type 1 minus type 0 folded in (twice the
  // word table's memory). Needs a model with type_vocab_size >= 2 (InvalidArgument otherwise).
  bool segment_pairs = false;
};

struct EmbedStats {
  int64_t texts = 0;
  int64_t tokens = 0;     // real tokens encoded, [CLS]/[SEP] included
  int64_t passes = 0;     // forward passes run
  int64_t truncated = 0;  // texts cut to max_length
  double tokenize_seconds = 0;
  double forward_seconds = 0;
};

class Encoder final {
 public:
  // Loads the model in `model_dir` onto the backend the options ask for. Errors name the file and
  // tensor at fault (missing tensor, wrong shape, unsupported dtype).
  static absl::StatusOr<std::unique_ptr<Encoder>> Open(const std::string& model_dir,
                                                       const EncoderOptions& options = {});
  // The same on a backend the caller made (options.backend and cuda_device are not used).
  static absl::StatusOr<std::unique_ptr<Encoder>> Open(const std::string& model_dir,
                                                       const EncoderOptions& options,
                                                       std::unique_ptr<Backend> backend);
  Encoder(const Encoder&) = delete;
  Encoder& operator=(const Encoder&) = delete;
  ~Encoder();

  [[nodiscard]] int dimension() const { return config_.hidden; }
  [[nodiscard]] int max_length() const { return config_.max_length; }
  [[nodiscard]] const EncoderConfig& config() const { return config_; }
  [[nodiscard]] const WordPieceTokenizer& tokenizer() const { return *tokenizer_; }
  // The backend and the GEMM kernel of the Linear layers, e.g. "cpu (2 OpenMP threads, avx512 row
  // kernels), GEMM bf16 amx (32x32 tiles)".
  [[nodiscard]] std::string backend_name() const;
  [[nodiscard]] const std::string& gemm_path() const { return gemm_path_; }
  [[nodiscard]] MatmulPrecision matmul() const { return matmul_; }
  [[nodiscard]] BackendKind backend_kind() const { return backend_->kind(); }
  [[nodiscard]] const std::string& model_dir() const { return model_dir_; }

  // [CLS] pieces [SEP] of `text`, cut to max_length (*truncated says whether it was, when given).
  // Thread-safe.
  [[nodiscard]] std::vector<int32_t> Tokenize(absl::string_view text,
                                              bool* truncated = nullptr) const;
  // [CLS] first [SEP] second [SEP], the second text's ids (and its [SEP]) in the type-1 rows of
  // the word table. Over max_length, tokens are cut from the end of the longer text first (as
  // Hugging Face's "longest_first"; of two texts of equal length the second loses the token);
  // *truncated says whether any were. Needs segment_pairs.
  // Thread-safe.
  [[nodiscard]] std::vector<int32_t> TokenizePair(absl::string_view first, absl::string_view second,
                                                  bool* truncated = nullptr) const;
  // Tokenize() of every text; *truncated (when given) counts the texts that were cut.
  [[nodiscard]] std::vector<std::vector<int32_t>> TokenizeAll(absl::Span<const std::string> texts,
                                                              int64_t* truncated) const;

  // Embeds `texts`; returns texts.size() * dimension() floats, row i for texts[i]. Thread-safe
  // (callers are served one at a time on the backend).
  [[nodiscard]] absl::StatusOr<std::vector<float>> Embed(absl::Span<const std::string> texts,
                                                         EmbedStats* stats = nullptr);
  // Embeds token sequences from Tokenize() into out (size sequences.size() * dimension()).
  // InvalidArgument for an empty or over-long sequence or an id outside the vocabulary. `stop`,
  // when given, is asked before each forward pass; true ends the call with Cancelled (out then
  // holds only some rows).
  [[nodiscard]] absl::Status EmbedTokens(absl::Span<const std::vector<int32_t>> sequences,
                                         float* out, EmbedStats* stats = nullptr,
                                         const std::function<bool()>& stop = {});

 private:
  struct Layer;
  struct Workspace;
  Encoder() = default;
  // Both Open()s: `make_backend` is called once the model's configuration and vocabulary check out.
  static absl::StatusOr<std::unique_ptr<Encoder>> Open(
      const std::string& model_dir, const EncoderOptions& options,
      absl::FunctionRef<absl::StatusOr<std::unique_ptr<Backend>>()> make_backend);
  absl::Status Forward(absl::Span<const std::vector<int32_t>> sequences,
                       absl::Span<const size_t> order, float* out, size_t out_stride)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  std::string model_dir_;
  EncoderConfig config_;
  std::unique_ptr<WordPieceTokenizer> tokenizer_;
  int max_batch_tokens_ = 0;
  int word_rows_ = 0;  // vocab_size, or twice it with segment_pairs
  DType dtype_ = DType::kF32;
  MatmulPrecision matmul_ = MatmulPrecision::kNative;
  std::string gemm_path_;

  Mutex mu_;
  std::unique_ptr<Backend> backend_;  // used under mu_
  Tensor word_, position_, type_, emb_gamma_, emb_beta_;
  std::vector<Layer> layers_;
  std::unique_ptr<Workspace> ws_ ABSL_GUARDED_BY(mu_);
};

}  // namespace strata::gpu

#endif  // STRATA_GPU_ENCODER_H_
