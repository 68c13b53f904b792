// Runs each backend operation on random inputs and returns the outputs as host floats, so that the
// same cases check the CPU backend against naive loops and the CUDA backend against the CPU one.
#ifndef STRATA_TESTS_GPU_BACKEND_OPS_H_
#define STRATA_TESTS_GPU_BACKEND_OPS_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "gpu/backend.h"

namespace strata::testing {

// One operation's inputs (host floats) and the shapes it runs at.
struct OpCase {
  std::string op;  // linear, linear_gelu, linear_silu, embedding, layernorm, layernorm_residual,
                   // rmsnorm, gelu, silu, softmax, attention, pool_mean, pool_cls, l2norm
  std::vector<int32_t> offsets;           // packed sequences, for attention and pooling
  int64_t rows = 0, cols = 0, inner = 0;  // per op (see backend_ops.cc)
  int heads = 0, head_dim = 0;
  std::vector<float> a, b, c, d;  // inputs
  std::vector<int32_t> ids, positions;
};

// Every case, with deterministic random inputs.
std::vector<OpCase> AllOpCases(uint64_t seed);

// Runs `c` on `backend` with activations of `dtype`; the output as host floats.
absl::StatusOr<std::vector<float>> RunOp(gpu::Backend& backend, gpu::DType dtype, const OpCase& c);

}  // namespace strata::testing

#endif  // STRATA_TESTS_GPU_BACKEND_OPS_H_
