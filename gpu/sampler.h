// Picks the next token from a decoder's logits: greedy, or sampled with temperature after top-k /
// top-p (nucleus) filtering, with a repetition penalty over the tokens so far. Deterministic for a
// given seed.
#ifndef STRATA_GPU_SAMPLER_H_
#define STRATA_GPU_SAMPLER_H_

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/types/span.h"

namespace strata::gpu {

struct SamplingParams {
  float temperature = 0.0f;         // 0: greedy (the most likely token; ties to the lowest id)
  int top_k = 0;                    // 0: no limit
  float top_p = 1.0f;               // (0, 1]
  float repetition_penalty = 1.0f;  // >= 1; 1 is none (CTRL's form: positive logits divided)
  int penalty_last_n = 64;          // the penalty looks at this many last tokens (as llama.cpp)
  uint64_t seed = 0;
};

// InvalidArgument naming the field for a value out of range (NaN included).
[[nodiscard]] absl::Status CheckSamplingParams(const SamplingParams& p);

class Sampler final {
 public:
  explicit Sampler(const SamplingParams& params);
  // The next token given the logits of the last position (vocabulary-sized; modified in place by
  // the penalty) and the tokens so far (prompt and generated). Non-finite logits never win.
  int32_t Next(absl::Span<float> logits, absl::Span<const int32_t> history);

 private:
  SamplingParams params_;
  std::mt19937_64 rng_;
  std::vector<std::pair<float, int32_t>> candidates_;
  std::vector<uint8_t> seen_;
};

}  // namespace strata::gpu

#endif  // STRATA_GPU_SAMPLER_H_
