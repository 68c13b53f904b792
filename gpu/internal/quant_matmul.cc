#include "gpu/internal/quant_matmul.h"

#include <algorithm>
#include <cassert>
#include <cstring>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gpu/internal/cpu_kernels.h"
#include "gpu/internal/gemm.h"
#include "gpu/internal/gemm_kernels.h"
#include "gpu/internal/quant_dot_q8.h"
#include "gpu/internal/quant_kernels.h"
#include "gpu/internal/thread_pool.h"

namespace strata::gpu::cpu {

absl::StatusOr<QuantMatrix> QuantMatrix::Copy(GgmlType type, const void* rows, int64_t n, int64_t k,
                                              bool int8_activations) {
  if (n < 1 || k < 1 || k % GgmlBlockValues(type) != 0) {
    return absl::InvalidArgumentError(absl::StrCat("a ", GgmlTypeName(type), " weight of ", n,
                                                   " rows of ", k, " values (rows must be whole ",
                                                   GgmlBlockValues(type), "-value blocks)"));
  }
  QuantMatrix m;
  m.type_ = type;
  m.n_ = n;
  m.k_ = k;
  m.row_bytes_ = GgmlRowBytes(type, k);
  m.int8_activations_ = int8_activations && Q8DotSupports(type) && FastQ8DotKernels() != nullptr;
  const size_t bytes = (m.bytes() + 63) / 64 * 64;
  m.data_.reset(std::aligned_alloc(64, bytes));
  if (m.data_ == nullptr) {
    return absl::ResourceExhaustedError(
        absl::StrCat("out of memory for a ", bytes, "-byte ", GgmlTypeName(type), " weight"));
  }
  std::memcpy(m.data_.get(), rows, m.bytes());
  return m;
}

void QuantMatmul(const float* x, int64_t m, const QuantMatrix& w, const float* bias, int act,
                 float* y) {
  if (m <= 0) return;
  const int64_t n = w.n(), k = w.k();
  const QuantKernels& qk = BestQuantKernels();
  const CpuKernels& rows_kern = BestCpuKernels();
  auto finish = [&](float* out, int64_t j0, int64_t j1) {
    if (bias != nullptr || act != 0) {
      rows_kern.bias_act_row(out + j0, bias != nullptr ? bias + j0 : nullptr, j1 - j0, act);
    }
  };
  constexpr int64_t kChunk = 64;
  if (m <= kQuantInt8Rows && w.int8_activations()) {
    const Q8DotKernels& q8 = *FastQ8DotKernels();
    // The caller's buffer, named by a reference: a lambda naming a thread_local would reach
    // each worker's own (empty) instance.
    thread_local Q8Activations buffer;
    Q8Activations& xq = buffer;
    QuantizeActivations(x, m, k, &xq);
    const int64_t chunks = (n + kChunk - 1) / kChunk;
    Pool().ParallelFor(chunks, 1, [&](int64_t c0, int64_t c1) {
      for (int64_t c = c0; c < c1; ++c) {
        const int64_t j0 = c * kChunk, j1 = std::min(n, j0 + kChunk);
        // The kernel takes up to 8 activation rows; a chunk's 64 weight rows stay in cache
        // between the groups.
        for (int64_t r0 = 0; r0 < m; r0 += 8) {
          q8.dot_rows(w.type(), w.row(j0), w.row_bytes(), j1 - j0, xq.Rows(r0, 8), y + r0 * n + j0,
                      n);
        }
        for (int64_t r = 0; r < m; ++r) finish(y + r * n, j0, j1);
      }
    });
    return;
  }
  if (m <= kQuantGemvRows) {
    // Chunks of 64 outputs keep a thread's weight reads sequential; the bias and activation are
    // applied to a chunk while it is in cache.
    const int64_t chunks = (n + kChunk - 1) / kChunk;
    Pool().ParallelFor(chunks, 1, [&](int64_t c0, int64_t c1) {
      for (int64_t c = c0; c < c1; ++c) {
        const int64_t j0 = c * kChunk, j1 = std::min(n, j0 + kChunk);
        qk.dot_rows(w.type(), w.row(j0), w.row_bytes(), j1 - j0, x, m, k, y + j0, n);
        for (int64_t r = 0; r < m; ++r) finish(y + r * n, j0, j1);
      }
    });
    return;
  }
  const GemmKernel& kern = *BestGemmKernel(GemmPrecision::kF32);
  const int64_t panels = (n + kPanelCols - 1) / kPanelCols;
  static_assert(kPanelCols == kQuantPanelCols, "the quantised panel is the GEMM's panel");
  Pool().ParallelFor(panels, 1, [&](int64_t p0, int64_t p1) {
    auto* panel = static_cast<float*>(
        std::aligned_alloc(64, static_cast<size_t>((k * kPanelCols * 4 + 63) / 64 * 64)));
    // Out of memory for a 32-row panel: the product cannot run; an abort names it rather than a
    // write through null (Status cannot leave a ParallelFor chunk).
    if (panel == nullptr) std::abort();
    for (int64_t p = p0; p < p1; ++p) {
      const int64_t c0 = p * kPanelCols;
      const int cols = static_cast<int>(std::min<int64_t>(kPanelCols, n - c0));
      qk.dequantize_panel(w.type(), w.row(c0), w.row_bytes(), cols, k, panel);
      for (int64_t r0 = 0; r0 < m; r0 += kGemmRowBlock) {
        const int64_t rows = std::min(kGemmRowBlock, m - r0);
        for (int64_t d = 0; d < k; d += kGemmDepthBlock) {
          kern.f32(x + r0 * k + d, k, rows, panel + d * kPanelCols,
                   std::min(kGemmDepthBlock, k - d), y + r0 * n + c0, n, cols, d > 0);
        }
        for (int64_t r = r0; r < r0 + rows; ++r) finish(y + r * n, c0, c0 + cols);
      }
    }
    std::free(panel);
  });
}

}  // namespace strata::gpu::cpu
