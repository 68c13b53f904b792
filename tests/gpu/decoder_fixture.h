// SmolLM2-135M-Instruct's prompts against the float64 NumPy forward in
// tests/gpu/data/smollm2_logits.json (tools/make-decoder-fixtures.py): the check decoder_test runs
// on the CPU and cuda_test on a GPU.
#ifndef STRATA_TESTS_GPU_DECODER_FIXTURE_H_
#define STRATA_TESTS_GPU_DECODER_FIXTURE_H_

#include "absl/status/statusor.h"
#include "gpu/decoder.h"

namespace strata::testing {

struct LogitsFixtureCheck {
  int prompts = 0, positions = 0;
  int ids_mismatches = 0;     // prompts whose chat-template ids differ from Hugging Face's
  int argmax_mismatches = 0;  // positions whose top-1 differs from the reference's
  double worst = 0;           // largest |log-prob difference| over the reference's top 5
};

// Each fixture prompt in one forward pass of `d` (all positions' logits).
absl::StatusOr<LogitsFixtureCheck> CheckSmolLm2Fixture(gpu::Decoder& d);

}  // namespace strata::testing

#endif  // STRATA_TESTS_GPU_DECODER_FIXTURE_H_
