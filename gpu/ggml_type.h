// The tensor element types of GGUF files (ggml's type numbering, which the file stores), their
// block layouts, and exact conversion to float.
//
// Quantised types store a row in blocks; each block holds its own scale(s) (IEEE f16, little
// endian) and packed integer codes:
//   Q8_0  32 values, 34 bytes: d; int8 q[32];                          x = d * q
//   Q4_0  32 values, 18 bytes: d; 16 bytes of nibbles;                 x = d * (q - 8)
//   Q4_1  32 values, 20 bytes: d, m; 16 bytes of nibbles;              x = d * q + m
//         (nibbles: byte j holds value j in its low half and value j + 16 in its high half)
//   Q4_K 256 values, 144 bytes: d, dmin; 12 bytes of eight 6-bit (scale, min) pairs; 128 bytes of
//         nibbles; sub-block s of 32 values: x = d * scale_s * q - dmin * min_s
//   Q6_K 256 values, 210 bytes: 128 bytes of low nibbles, 64 bytes of high 2-bit pairs, int8
//         scales[16] (one per 16 values), d;                           x = d * scale * (q - 32)
// A row's length must be a multiple of its type's block size.
#ifndef STRATA_GPU_GGML_TYPE_H_
#define STRATA_GPU_GGML_TYPE_H_

#include <cstddef>
#include <cstdint>
#include <optional>

#include "absl/strings/string_view.h"

namespace strata::gpu {

// The numbers are GGUF's; only these are read.
enum class GgmlType : uint32_t {
  kF32 = 0,
  kF16 = 1,
  kQ4_0 = 2,
  kQ4_1 = 3,
  kQ8_0 = 8,
  kQ4_K = 12,
  kQ6_K = 14,
  kBF16 = 30,
};

// The type GGUF numbers `code`, or nullopt for one Strata does not read.
[[nodiscard]] std::optional<GgmlType> GgmlTypeFromCode(uint32_t code);
// "F32", "Q4_K", ...; for a code that is not one of ours, "type <code>".
[[nodiscard]] absl::string_view GgmlTypeName(GgmlType t);
// Values per block (1 for F32/F16/BF16) and bytes per block.
[[nodiscard]] int GgmlBlockValues(GgmlType t);
[[nodiscard]] int GgmlBlockBytes(GgmlType t);
[[nodiscard]] inline bool GgmlIsQuantized(GgmlType t) { return GgmlBlockValues(t) > 1; }
// Bytes of a row of n values (n a multiple of the block size).
[[nodiscard]] inline size_t GgmlRowBytes(GgmlType t, int64_t n) {
  return static_cast<size_t>(n / GgmlBlockValues(t)) * static_cast<size_t>(GgmlBlockBytes(t));
}

// dst[0, n) = the values of a row of type t at src (n a multiple of the block size; src may be
// unaligned). Runs the widest kernel this CPU has (the scalar one is the reference).
void DequantizeRow(GgmlType t, const void* src, int64_t n, float* dst);

}  // namespace strata::gpu

#endif  // STRATA_GPU_GGML_TYPE_H_
