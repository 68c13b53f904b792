// Runs each backend operation on random inputs and returns the outputs as host floats, so that the
// same cases check the CPU backend against naive loops and the CUDA backend against the CPU one.
#ifndef STRATA_TESTS_GPU_BACKEND_OPS_H_
#define STRATA_TESTS_GPU_BACKEND_OPS_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "gpu/backend.h"
#include "gpu/ggml_type.h"

namespace strata::testing {

// One operation's inputs (host floats) and the shapes it runs at.
struct OpCase {
  std::string op;  // linear, linear_gelu, linear_silu, embedding, layernorm, layernorm_residual,
                   // rmsnorm, gelu, silu, softmax, attention, pool_mean, pool_cls, l2norm; and
                   // the decoder's, always in F32: quant_linear, quant_linear_silu, gather_rows,
                   // add, multiply, rope_adjacent, rope_halves, copy_rows, cached_attention
  std::vector<int32_t> offsets;           // packed sequences, for attention and pooling
  int64_t rows = 0, cols = 0, inner = 0;  // per op (see backend_ops.cc)
  int heads = 0, head_dim = 0;
  std::vector<float> a, b, c, d;  // inputs
  std::vector<int32_t> ids, positions;
  gpu::GgmlType type = gpu::GgmlType::kF32;  // quant_linear, gather_rows: the weight's rows
  std::string raw;                           // in that type
  int kv_heads = 0;                          // cached_attention
  std::vector<int64_t> lengths;              // cached_attention: per query row, its cache's
  std::vector<int> cache_of;                 // length and which cache (0 or 1) it reads
};

// Every case, with deterministic random inputs.
std::vector<OpCase> AllOpCases(uint64_t seed);

// Runs `c` on `backend` with activations of `dtype`; the output as host floats.
absl::StatusOr<std::vector<float>> RunOp(gpu::Backend& backend, gpu::DType dtype, const OpCase& c);

// How far `backend` computing in `dtype` is from the CPU backend in F32, op by op: the worst
// |got - want| / max(1, |want|) over each op's outputs.
struct OpComparison {
  std::string op;
  double worst = 0;
};
absl::StatusOr<std::vector<OpComparison>> CompareOpsWithCpu(gpu::Backend& backend, gpu::DType dtype,
                                                            uint64_t seed);

// The tolerance for CompareOpsWithCpu: F32 differs from the CPU by summation order only; F16 and
// BF16 by their 11- and 8-bit mantissas on inputs, outputs and stored intermediates.
double OpTolerance(gpu::DType dtype);

}  // namespace strata::testing

#endif  // STRATA_TESTS_GPU_BACKEND_OPS_H_
