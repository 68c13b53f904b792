// A cross-encoder reranker: a BERT model with a one-output classification head (Hugging Face
// BertForSequenceClassification with num_labels 1, as cross-encoder/ms-marco-MiniLM-L-6-v2), which
// reads a question and a passage together - [CLS] question [SEP] passage [SEP], the passage as
// token type 1 - and scores how well the passage answers the question. Slower than comparing
// embeddings (one forward pass per pair), so it re-scores a search's best few candidates.
//
// A model directory holds config.json, model.safetensors (the BERT body, "bert." prefixed or not,
// plus bert.pooler.dense.* and classifier.*) and vocab.txt. The body runs on the engine backend
// (gpu/encoder.h); the head - pooler (tanh) and classifier, hidden^2 + 2 * hidden multiply-adds per
// pair (0.15 M for MiniLM's 384) against the body's millions per token - runs on the host in
// float32.
//
// Thread-safe: calls take turns on the backend.
#ifndef STRATA_GPU_CROSS_ENCODER_H_
#define STRATA_GPU_CROSS_ENCODER_H_

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "gpu/encoder.h"

namespace strata::gpu {

struct RerankStats {
  int64_t pairs = 0;
  int64_t tokens = 0;     // [CLS]/[SEP] included
  int64_t truncated = 0;  // pairs cut to the model's max_length
};

class CrossEncoder final {
 public:
  // Bytes of a passage read: 64 per token of the longest model input (512), far above what any
  // text's first 512 WordPiece tokens take, so the tokenizer never walks a whole long payload.
  static constexpr size_t kMaxPassageBytes = 512 * 64;

  // Loads the model (options.pooling, normalize and segment_pairs are the reranker's own and
  // ignored). InvalidArgument names what makes the directory no one-output BERT classifier (another
  // architecture, num_labels other than 1, one token type); NotFound and the encoder's own errors
  // name a missing file or tensor.
  static absl::StatusOr<std::unique_ptr<CrossEncoder>> Open(const std::string& model_dir,
                                                            EncoderOptions options = {});
  CrossEncoder(const CrossEncoder&) = delete;
  CrossEncoder& operator=(const CrossEncoder&) = delete;

  // One score per passage, in the passages' order: the classifier's logit (higher = the passage
  // answers the question better; sentence-transformers' predict() shows its sigmoid, which orders
  // the same). An empty passage is scored as such. Only a passage's first kMaxPassageBytes are
  // read (more could never fit the model's max_length). `stop` as in Encoder::EmbedTokens.
  [[nodiscard]] absl::StatusOr<std::vector<float>> Score(
      absl::string_view question, absl::Span<const absl::string_view> passages,
      RerankStats* stats = nullptr, const std::function<bool()>& stop = {});

  [[nodiscard]] const Encoder& encoder() const { return *encoder_; }

 private:
  CrossEncoder() = default;

  std::unique_ptr<Encoder> encoder_;  // CLS output of the body, unnormalised, text pairs
  int hidden_ = 0;
  std::vector<float> pooler_w_;  // [hidden, hidden], row per output
  std::vector<float> pooler_b_;  // [hidden]
  std::vector<float> head_w_;    // [hidden]
  float head_b_ = 0;
};

}  // namespace strata::gpu

#endif  // STRATA_GPU_CROSS_ENCODER_H_
