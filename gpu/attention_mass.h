// How much attention a few query rows pay each position of a context: the measure by which
// Decoder::Assemble picks the cached tokens worth recomputing (the ones the question reads).
#ifndef STRATA_GPU_ATTENTION_MASS_H_
#define STRATA_GPU_ATTENTION_MASS_H_

#include <cstdint>

#include "absl/types/span.h"

namespace strata::gpu {

// For each query row r (at position positions[r]) and head h, adds to mass[j], j <= positions[r],
// the softmax weight softmax_j(q_rh . k_j / sqrt(head_dim)) that the head pays key j; query head
// h reads key head h / (heads / kv_heads) (grouped-query attention). q holds rows x heads x
// head_dim floats and k keys x kv_heads x head_dim, both after RoPE; every position must be
// < keys, and mass has keys entries. Host code, single-threaded: sized for a few rows (a
// question's last tokens) over a context of thousands.
void AddAttentionMass(const float* q, absl::Span<const int32_t> positions, int heads, int kv_heads,
                      int head_dim, const float* k, int64_t keys, double* mass);

}  // namespace strata::gpu

#endif  // STRATA_GPU_ATTENTION_MASS_H_
