// Tiny random Llama-family decoders written on the fly as GGUF files, with weights in any of the
// types Strata reads, and a naive double-precision reference forward to check the engine by.
#ifndef STRATA_TESTS_GPU_TINY_DECODER_H_
#define STRATA_TESTS_GPU_TINY_DECODER_H_

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "gpu/decoder.h"
#include "gpu/ggml_type.h"

namespace strata::testing {

struct TinyDecoderSpec {
  gpu::DecoderArch arch = gpu::DecoderArch::kLlama;
  gpu::GgmlType matrix_type = gpu::GgmlType::kF32;     // every projection
  gpu::GgmlType embedding_type = gpu::GgmlType::kF32;  // token_embd
  bool tied = true;                                    // no output.weight
  int layers = 2, hidden = 256, heads = 4, kv_heads = 2, ffn = 512;
  int context = 256;  // positions the model says it was trained for
  uint64_t seed = 1;
};

// The tiny models' vocabulary: GPT-2's 256 byte characters, a few merges, and the ChatML control
// tokens; 264 tokens.
std::vector<std::string> TinyVocabulary();
std::vector<std::string> TinyMerges();

// `rows` rows of k values in `type`: random codes with scales that keep the values near
// N(0, 0.05) (random bytes alone would make NaN scales).
std::string RandomGgmlRows(gpu::GgmlType type, int64_t rows, int64_t k, uint64_t seed);

// Writes the model to `path`.
absl::Status WriteTinyDecoder(const TinyDecoderSpec& spec, const std::string& path);

// Log-softmax logits of every position of `ids`, from the file's weights (read back and
// dequantised with gpu::DequantizeRow), in double precision: rows of vocabulary size.
std::vector<std::vector<double>> ReferenceLogProbs(const std::string& path,
                                                   const std::vector<int32_t>& ids);

// log-softmax of n logits, in double; the index of the largest value.
std::vector<double> LogSoftmax(const float* x, int n);
int ArgMax(const std::vector<double>& v);

// A tiny model run by a decoder against ReferenceLogProbs: 20 tokens as one prompt (log-probs at
// every position), then the same tokens one at a time (the decoding path; its last position).
struct TinyDecoderCheck {
  int positions = 0;
  int argmax_mismatches = 0;  // prompt positions whose top-1 differs from the reference's
  double prompt_worst = 0;    // largest |log-prob difference| over every position and token
  double step_worst = 0;      // the same at the last position, decoded token by token
};
// Writes `spec` to `path` and opens it with `options` on `backend` (null: options' backend).
absl::StatusOr<TinyDecoderCheck> CheckTinyDecoder(const TinyDecoderSpec& spec,
                                                  const std::string& path,
                                                  const gpu::DecoderOptions& options,
                                                  std::unique_ptr<gpu::Backend> backend);

// Passage KV assembly on `d` (a tiny model), the last position's logits of: [0] a full prefill
// of prefix + passage 1 + marker + passage 2 + question; [1] prefix + passage 1 + question with
// passage 1 cached where it was computed (f32, nothing recomputed) and [2] that prompt's full
// prefill (equal to [1]); [3] the first prompt with both passages cached after the prefix alone
// (int8) and moved into place, everything recomputed (equal to [0]); [4] the same with 30%
// recomputed by deviation and [5] by question attention (approximations: compare backends).
absl::StatusOr<std::vector<std::vector<float>>> AssemblyLogits(gpu::Decoder& d);

}  // namespace strata::testing

#endif  // STRATA_TESTS_GPU_TINY_DECODER_H_
