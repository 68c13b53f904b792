// The CUDA backend: one device, one stream, one cuBLAS handle. GEMMs go to cuBLAS (F16/BF16 or F32
// inputs, fp32 accumulation); the rest are Strata's kernels below, templated on the element type
// and computing in fp32. Each kernel has its reference in cpu_backend.cc, and tests compare them.
// The decoder's operations run in F32 on weights kept in device memory in their GGUF block types:
// products of a few rows (decoding) unpack the blocks inside the product, longer ones unpack a
// panel of rows to F32 for cuBLAS.
#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <tuple>
#include <unordered_map>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gpu/backend.h"
#include "gpu/ggml_type.h"
#include "gpu/internal/cuda_check.h"
#include "gpu/internal/cuda_memory.h"
#include "gpu/internal/cuda_profile.h"
#include "gpu/internal/rope.h"

// Kernel launches and shared arrays go through these macros so that the file also
// compiles as plain C++ under the test-only CUDA emulator (tests/gpu/cuda_emu), which defines them
// first.
#ifndef STRATA_LAUNCH
#define STRATA_LAUNCH(kernel, grid, block, smem, stream) kernel<<<grid, block, smem, stream>>>
#endif
#ifndef STRATA_DYNAMIC_SHARED
#define STRATA_DYNAMIC_SHARED(type, name) extern __shared__ type name[]
#endif
#ifndef STRATA_SHARED
#define STRATA_SHARED(type, name, count) __shared__ type name[count]
#endif

namespace strata::gpu {

using internal::BlockPool;
using internal::DeviceScratch;
using internal::OpProfile;
using internal::ProfileScope;

absl::Status ToStatus(cudaError_t err, const char* expr, const char* file, int line) {
  if (err == cudaSuccess) return absl::OkStatus();
  std::string msg = absl::StrCat(expr, " failed at ", file, ":", line, ": ", cudaGetErrorName(err),
                                 " (", cudaGetErrorString(err), ")");
  if (err == cudaErrorMemoryAllocation) return absl::ResourceExhaustedError(msg);
  return absl::InternalError(msg);
}

absl::Status ToStatus(cublasStatus_t err, const char* expr, const char* file, int line) {
  if (err == CUBLAS_STATUS_SUCCESS) return absl::OkStatus();
  std::string msg = absl::StrCat(expr, " failed at ", file, ":", line, ": ",
                                 cublasGetStatusName(err), " (", cublasGetStatusString(err), ")");
  if (err == CUBLAS_STATUS_ALLOC_FAILED) return absl::ResourceExhaustedError(msg);
  return absl::InternalError(msg);
}

namespace {

// ---- element access -------------------------------------------------------------------------
template <typename T>
__device__ __forceinline__ float Load(const T* p, int64_t i);
template <>
__device__ __forceinline__ float Load<float>(const float* p, int64_t i) {
  return p[i];
}
template <>
__device__ __forceinline__ float Load<__half>(const __half* p, int64_t i) {
  return __half2float(p[i]);
}
template <>
__device__ __forceinline__ float Load<__nv_bfloat16>(const __nv_bfloat16* p, int64_t i) {
  return __bfloat162float(p[i]);
}

template <typename T>
__device__ __forceinline__ void Store(T* p, int64_t i, float v);
template <>
__device__ __forceinline__ void Store<float>(float* p, int64_t i, float v) {
  p[i] = v;
}
template <>
__device__ __forceinline__ void Store<__half>(__half* p, int64_t i, float v) {
  p[i] = __float2half_rn(v);
}
template <>
__device__ __forceinline__ void Store<__nv_bfloat16>(__nv_bfloat16* p, int64_t i, float v) {
  p[i] = __float2bfloat16_rn(v);
}

__device__ __forceinline__ float Gelu(float x) {
  return 0.5f * x * (1.0f + erff(x * 0.70710678118654752f));
}
__device__ __forceinline__ float Silu(float x) { return x / (1.0f + expf(-x)); }
__device__ __forceinline__ float Act(int act, float x) {
  return act == 1 ? Gelu(x) : act == 2 ? Silu(x) : x;
}

// Sum (or max) over the block; every thread gets the result. `scratch` holds 32 floats.
__device__ float BlockSum(float v, float* scratch) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  __syncthreads();  // scratch may still be read by a previous reduction
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  const int warps = (blockDim.x + 31) / 32;
  v = lane < warps ? scratch[lane] : 0.0f;
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}
__device__ float BlockMax(float v, float* scratch) {
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  __syncthreads();
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  const int warps = (blockDim.x + 31) / 32;
  v = lane < warps ? scratch[lane] : -INFINITY;
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

constexpr int kRowThreads = 256;  // a multiple of 32: the reductions assume whole warps

// ---- kernels ----------------------------------------------------------------------------------
template <typename T>
__global__ void BiasActKernel(T* y, const T* bias, int64_t m, int64_t n, int act) {
  const int64_t total = m * n;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < total;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    float v = Load(y, i) + (bias != nullptr ? Load(bias, i % n) : 0.0f);
    Store(y, i, Act(act, v));
  }
}

template <typename T>
__global__ void EmbeddingSumKernel(const int32_t* ids, const int32_t* positions, const T* word,
                                   const T* pos, const T* type, T* out, int64_t h) {
  const int64_t t = blockIdx.x;
  const int64_t w = static_cast<int64_t>(ids[t]) * h, p = static_cast<int64_t>(positions[t]) * h;
  for (int64_t j = threadIdx.x; j < h; j += blockDim.x) {
    float v = Load(word, w + j) + Load(pos, p + j) + (type != nullptr ? Load(type, j) : 0.0f);
    Store(out, t * h + j, v);
  }
}

// One block per row; the row is staged in shared memory, so `out` may alias x or residual.
template <typename T>
__global__ void LayerNormKernel(const T* x, const T* residual, const T* gamma, const T* beta,
                                float eps, T* out, int64_t h) {
  STRATA_DYNAMIC_SHARED(float, row);
  STRATA_SHARED(float, scratch, 32);
  const int64_t base = blockIdx.x * h;
  float sum = 0;
  for (int64_t j = threadIdx.x; j < h; j += blockDim.x) {
    const float v = Load(x, base + j) + (residual != nullptr ? Load(residual, base + j) : 0.0f);
    row[j] = v;
    sum += v;
  }
  const float mean = BlockSum(sum, scratch) / h;
  float var = 0;
  for (int64_t j = threadIdx.x; j < h; j += blockDim.x) var += (row[j] - mean) * (row[j] - mean);
  const float inv = rsqrtf(BlockSum(var, scratch) / h + eps);
  for (int64_t j = threadIdx.x; j < h; j += blockDim.x) {
    Store(out, base + j, (row[j] - mean) * inv * Load(gamma, j) + Load(beta, j));
  }
}

template <typename T>
__global__ void RmsNormKernel(const T* x, const T* gamma, float eps, T* out, int64_t h) {
  STRATA_DYNAMIC_SHARED(float, row);
  STRATA_SHARED(float, scratch, 32);
  const int64_t base = blockIdx.x * h;
  float ss = 0;
  for (int64_t j = threadIdx.x; j < h; j += blockDim.x) {
    row[j] = Load(x, base + j);
    ss += row[j] * row[j];
  }
  const float inv = rsqrtf(BlockSum(ss, scratch) / h + eps);
  for (int64_t j = threadIdx.x; j < h; j += blockDim.x) {
    Store(out, base + j, row[j] * inv * Load(gamma, j));
  }
}

template <typename T>
__global__ void SoftmaxKernel(T* x, int64_t cols) {
  STRATA_DYNAMIC_SHARED(float, row);
  STRATA_SHARED(float, scratch, 32);
  const int64_t base = blockIdx.x * cols;
  float m = -INFINITY;
  for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) {
    row[j] = Load(x, base + j);
    m = fmaxf(m, row[j]);
  }
  m = BlockMax(m, scratch);
  float sum = 0;
  for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) {
    row[j] = expf(row[j] - m);
    sum += row[j];
  }
  const float inv = 1.0f / BlockSum(sum, scratch);
  for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) Store(x, base + j, row[j] * inv);
}

template <typename T>
__global__ void L2NormalizeKernel(T* x, int64_t cols) {
  STRATA_SHARED(float, scratch, 32);
  const int64_t base = blockIdx.x * cols;
  float ss = 0;
  for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) {
    const float v = Load(x, base + j);
    ss += v * v;
  }
  ss = BlockSum(ss, scratch);
  if (ss == 0) return;
  const float inv = 1.0f / fmaxf(sqrtf(ss), 1e-12f);
  for (int64_t j = threadIdx.x; j < cols; j += blockDim.x)
    Store(x, base + j, Load(x, base + j) * inv);
}

template <typename T>
__global__ void ActivateKernel(T* x, int64_t n, int act) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    Store(x, i, Act(act, Load(x, i)));
  }
}

// One block per (sequence, output column chunk). Mean over the sequence's tokens, or its first.
template <typename T>
__global__ void PoolKernel(const T* x, const int32_t* offsets, int cls, T* out, int64_t h) {
  const int64_t s = blockIdx.x;
  const int64_t begin = offsets[s], len = offsets[s + 1] - begin;
  for (int64_t j = blockIdx.y * static_cast<int64_t>(blockDim.x) + threadIdx.x; j < h;
       j += static_cast<int64_t>(gridDim.y) * blockDim.x) {
    float v = 0;
    if (len > 0) {
      if (cls) {
        v = Load(x, begin * h + j);
      } else {
        for (int64_t t = 0; t < len; ++t) v += Load(x, (begin + t) * h + j);
        v /= static_cast<float>(len);
      }
    }
    Store(out, s * h + j, v);
  }
}

// One key of an online softmax (the flash-attention kernels' step): its score s = q . key; when
// s is a new max, what was summed under the old one is rescaled; then exp(s - m) is added to l
// and times value to o.
template <int D>
__device__ __forceinline__ void AttendKey(const float* q, const float* key, const float* value,
                                          float& m, float& l, float* o) {
  float s = 0;
  for (int d = 0; d < D; ++d) s += q[d] * key[d];
  if (s > m) {
    const float c = expf(m - s);
    l *= c;
    for (int d = 0; d < D; ++d) o[d] *= c;
    m = s;
  }
  const float p = expf(s - m);
  l += p;
  for (int d = 0; d < D; ++d) o[d] += p * value[d];
}

// Attention for the head dims the encoders use (D = 32 or 64), flash-style: one block per
// (sequence, head, tile of blockDim.x queries), a thread per query holding its q and output rows
// in registers. The block walks the sequence's keys in tiles of kKeyTile, staged in shared memory
// as floats (loaded once per query tile rather than once per query, and coalesced), and each
// thread keeps an online softmax: a running max m and sum l, the output rescaled when m grows.
// No scores are stored, so sequences have no length limit. Not yet measured on a GPU (no device
// so far); its numbers and ordering are checked against the CPU through the emulator.
constexpr int kKeyTile = 64;
constexpr int kQueryTile = 128;  // threads per block

template <typename T, int D>
__global__ void TiledAttentionKernel(const T* qkv, const int32_t* offsets, int heads, float scale,
                                     T* out) {
  STRATA_SHARED(float, keys, kKeyTile* D);
  STRATA_SHARED(float, values, kKeyTile* D);
  const int64_t begin = offsets[blockIdx.x], len = offsets[blockIdx.x + 1] - begin;
  const int64_t first = static_cast<int64_t>(blockIdx.z) * blockDim.x;
  if (first >= len) return;  // the whole block: this sequence has fewer query tiles
  const int64_t hidden = static_cast<int64_t>(heads) * D, stride = 3 * hidden;
  const int64_t col = static_cast<int64_t>(blockIdx.y) * D;
  const int64_t query = first + threadIdx.x;
  const bool active = query < len;
  float q[D], o[D];
  float m = -INFINITY, l = 0;
  for (int d = 0; d < D; ++d) {
    q[d] = active ? Load(qkv, (begin + query) * stride + col + d) * scale : 0.0f;
    o[d] = 0;
  }
  for (int64_t k0 = 0; k0 < len; k0 += kKeyTile) {
    const int n = static_cast<int>(len - k0 < kKeyTile ? len - k0 : kKeyTile);
    __syncthreads();  // every thread is done with the previous tile
    for (int i = threadIdx.x; i < n * D; i += blockDim.x) {
      const int64_t at = (begin + k0 + i / D) * stride + col + i % D;
      keys[i] = Load(qkv, at + hidden);
      values[i] = Load(qkv, at + 2 * hidden);
    }
    __syncthreads();
    if (!active) continue;
    for (int j = 0; j < n; ++j) AttendKey<D>(q, keys + j * D, values + j * D, m, l, o);
  }
  if (!active) return;
  const float inv = 1.0f / l;
  for (int d = 0; d < D; ++d) Store(out, (begin + query) * hidden + col + d, o[d] * inv);
}

// Attention for any other head dim: one block per (query token, head). The block finds the
// token's sequence in `offsets`, scores it against every key of that sequence (a thread per key),
// takes the softmax in shared memory, and sums the values with the threads split into `groups` x
// head_dim (partial sums per group, then reduced). Shared memory: head_dim (q) + max_len (scores)
// + groups * head_dim floats. Plain rather than fast: every query reads all of its keys.
template <typename T>
__global__ void AttentionKernel(const T* qkv, const int32_t* offsets, int seqs, int heads,
                                int head_dim, int max_len, float scale, T* out) {
  STRATA_DYNAMIC_SHARED(float, smem);
  STRATA_SHARED(float, scratch, 32);
  float* q = smem;
  float* scores = q + head_dim;
  float* partial = scores + max_len;
  const int64_t token = blockIdx.x;
  const int head = blockIdx.y;
  const int64_t hidden = static_cast<int64_t>(heads) * head_dim, stride = 3 * hidden;
  // The sequence holding `token`: the last s with offsets[s] <= token.
  int lo = 0, hi = seqs - 1;
  while (lo < hi) {
    const int mid = (lo + hi + 1) / 2;
    if (offsets[mid] <= token)
      lo = mid;
    else
      hi = mid - 1;
  }
  const int64_t begin = offsets[lo], len = offsets[lo + 1] - begin;
  for (int d = threadIdx.x; d < head_dim; d += blockDim.x) {
    q[d] = Load(qkv, token * stride + static_cast<int64_t>(head) * head_dim + d) * scale;
  }
  __syncthreads();
  float m = -INFINITY;
  for (int64_t j = threadIdx.x; j < len; j += blockDim.x) {
    const int64_t k = (begin + j) * stride + hidden + static_cast<int64_t>(head) * head_dim;
    float s = 0;
    for (int d = 0; d < head_dim; ++d) s += q[d] * Load(qkv, k + d);
    scores[j] = s;
    m = fmaxf(m, s);
  }
  m = BlockMax(m, scratch);
  float sum = 0;
  for (int64_t j = threadIdx.x; j < len; j += blockDim.x) {
    scores[j] = expf(scores[j] - m);
    sum += scores[j];
  }
  const float inv = 1.0f / BlockSum(sum, scratch);  // BlockSum syncs: scores are all written
  const int groups = blockDim.x / head_dim;
  const int g = threadIdx.x / head_dim, d = threadIdx.x % head_dim;
  if (g < groups) {
    float acc = 0;
    for (int64_t j = g; j < len; j += groups) {
      acc += scores[j] * Load(qkv, (begin + j) * stride + 2 * hidden +
                                       static_cast<int64_t>(head) * head_dim + d);
    }
    partial[g * head_dim + d] = acc;
  }
  __syncthreads();
  if (g == 0) {
    float acc = 0;
    for (int i = 0; i < groups; ++i) acc += partial[i * head_dim + d];
    Store(out, token * hidden + static_cast<int64_t>(head) * head_dim + d, acc * inv);
  }
}

// ---- decoder kernels (F32) --------------------------------------------------------------------

// GGUF's block layouts are in gpu/ggml_type.h; gpu/internal/quant_kernels.inc is the CPU's
// reference for each unpacking below, and the arithmetic follows it operation for operation.
__device__ __forceinline__ float HalfAt(const uint8_t* p) {
  return Load(reinterpret_cast<const __half*>(p), 0);  // every scale sits at an even offset
}

// Values [32 c, 32 c + 32) of a row of GGUF type `type` (its number) into y. Quantised rows hold
// whole 32-value chunks (k is a multiple of the block); the plain types' positions past k read 0.
__device__ void Chunk32(int type, const uint8_t* row, int64_t c, int64_t k, float* y) {
  if (type == static_cast<int>(GgmlType::kQ8_0)) {
    const uint8_t* b = row + 34 * c;
    const float d = HalfAt(b);
    const auto* q = reinterpret_cast<const int8_t*>(b + 2);
    for (int i = 0; i < 32; ++i) y[i] = d * static_cast<float>(q[i]);
  } else if (type == static_cast<int>(GgmlType::kQ4_0) ||
             type == static_cast<int>(GgmlType::kQ4_1)) {
    const bool q40 = type == static_cast<int>(GgmlType::kQ4_0);
    const uint8_t* b = row + (q40 ? 18 : 20) * c;
    const float d = HalfAt(b), m = q40 ? -8.0f * d : HalfAt(b + 2);
    const uint8_t* qs = b + (q40 ? 2 : 4);
    for (int j = 0; j < 16; ++j) {
      y[j] = d * static_cast<float>(qs[j] & 0x0F) + m;
      y[j + 16] = d * static_cast<float>(qs[j] >> 4) + m;
    }
  } else if (type == static_cast<int>(GgmlType::kQ4_K)) {
    // Sub-block s of the 256-value block: its 6-bit scale and min, and the low (even s) or high
    // (odd s) nibbles of the 32 bytes its chunk of 64 shares.
    const uint8_t* b = row + 144 * (c / 8);
    const int s = static_cast<int>(c % 8);
    const uint8_t* sm = b + 4;
    int sc, mn;
    if (s < 4) {
      sc = sm[s] & 63;
      mn = sm[s + 4] & 63;
    } else {
      sc = (sm[s + 4] & 0x0F) | ((sm[s - 4] >> 6) << 4);
      mn = (sm[s + 4] >> 4) | ((sm[s] >> 6) << 4);
    }
    const float d = HalfAt(b) * static_cast<float>(sc), o = HalfAt(b + 2) * static_cast<float>(mn);
    const uint8_t* qc = b + 16 + 32 * (s / 2);
    for (int l = 0; l < 32; ++l) {
      y[l] = d * static_cast<float>((s & 1) != 0 ? qc[l] >> 4 : qc[l] & 0x0F) - o;
    }
  } else if (type == static_cast<int>(GgmlType::kQ6_K)) {
    // Quarter i of half h: nibble (low for i < 2) of ql byte l + 32 (i & 1), bits 2i of qh byte
    // l, minus 32, times the scale of its 16 values.
    const uint8_t* b = row + 210 * (c / 8);
    const int h = static_cast<int>(c % 8) / 4, i = static_cast<int>(c % 4);
    const uint8_t* ql = b + 64 * h + 32 * (i & 1);
    const uint8_t* qh = b + 128 + 32 * h;
    const auto* sc = reinterpret_cast<const int8_t*>(b + 192) + 8 * h + 2 * i;
    const float d = HalfAt(b + 208);
    for (int l = 0; l < 32; ++l) {
      const int lo = i < 2 ? ql[l] & 0x0F : ql[l] >> 4;
      const int q = (lo | (((qh[l] >> (2 * i)) & 3) << 4)) - 32;
      y[l] = d * static_cast<float>(sc[l / 16]) * static_cast<float>(q);
    }
  } else {  // F32, F16, BF16
    for (int i = 0; i < 32; ++i) {
      const int64_t at = 32 * c + i;
      float v = 0;
      if (at < k) {
        if (type == static_cast<int>(GgmlType::kF32)) {
          v = reinterpret_cast<const float*>(row)[at];
        } else if (type == static_cast<int>(GgmlType::kF16)) {
          v = Load(reinterpret_cast<const __half*>(row), at);
        } else {
          v = Load(reinterpret_cast<const __nv_bfloat16*>(row), at);
        }
      }
      y[i] = v;
    }
  }
}

// y[r, j] = act(x[r, :] . w[j, :] + bias[j]) for up to kGemvRows rows: a warp per output j, each
// lane unpacking every 32nd chunk of w's row and dotting it with every row of x, the lanes' sums
// then added across the warp. Reads each weight once for all the rows (decoding is bound by
// reading the weights).
constexpr int kGemvRows = 8;
constexpr int kGemvWarps = 4;  // warps per block

__global__ void QuantGemvKernel(const uint8_t* w, int type, int64_t row_bytes, int64_t n, int64_t k,
                                const float* x, int rows, const float* bias, int act, float* y) {
  const int64_t j = static_cast<int64_t>(blockIdx.x) * kGemvWarps + threadIdx.x / 32;
  const int lane = static_cast<int>(threadIdx.x % 32);
  if (j >= n) return;  // the whole warp
  const uint8_t* row = w + j * row_bytes;
  float acc[kGemvRows];
  for (int r = 0; r < kGemvRows; ++r) acc[r] = 0;
  float v[32];
  const int64_t chunks = (k + 31) / 32;
  for (int64_t c = lane; c < chunks; c += 32) {
    Chunk32(type, row, c, k, v);
    const int64_t width = k - 32 * c < 32 ? k - 32 * c : 32;
    for (int r = 0; r < rows; ++r) {
      const float* xr = x + r * k + 32 * c;
      float s = 0;
      for (int i = 0; i < width; ++i) s += v[i] * xr[i];
      acc[r] += s;
    }
  }
  for (int r = 0; r < rows; ++r) {
    float s = acc[r];
    for (int o = 16; o > 0; o >>= 1) s += __shfl_xor_sync(0xffffffffu, s, o);
    if (lane == 0) y[r * n + j] = Act(act, s + (bias != nullptr ? bias[j] : 0.0f));
  }
}

// panel[r, :] = w's row first + r unpacked to floats, for `rows` rows.
__global__ void DequantizePanelKernel(const uint8_t* w, int type, int64_t row_bytes, int64_t first,
                                      int64_t rows, int64_t k, float* panel) {
  const int64_t chunks = (k + 31) / 32;
  float v[32];
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < rows * chunks;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t r = i / chunks, c = i % chunks;
    Chunk32(type, w + (first + r) * row_bytes, c, k, v);
    const int64_t width = k - 32 * c < 32 ? k - 32 * c : 32;
    for (int64_t t = 0; t < width; ++t) panel[r * k + 32 * c + t] = v[t];
  }
}

// out[t, :] = row ids[t] of w, unpacked: a block per id.
__global__ void GatherRowsKernel(const uint8_t* w, int type, int64_t row_bytes, int64_t k,
                                 const int32_t* ids, float* out) {
  const int64_t t = blockIdx.x;
  const uint8_t* row = w + static_cast<int64_t>(ids[t]) * row_bytes;
  float v[32];
  for (int64_t c = threadIdx.x; c < (k + 31) / 32; c += blockDim.x) {
    Chunk32(type, row, c, k, v);
    const int64_t width = k - 32 * c < 32 ? k - 32 * c : 32;
    for (int64_t i = 0; i < width; ++i) out[t * k + 32 * c + i] = v[i];
  }
}

__global__ void ElementwiseKernel(float* x, const float* y, int64_t n, int multiply) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    x[i] = multiply != 0 ? x[i] * y[i] : x[i] + y[i];
  }
}

// Rotates pair i of every head of row t by the angle whose cos and sin are at
// angles[a * head_dim + 2i] and [+ 1], a = positions[t] (or first + t when positions is null):
// rows of gpu/internal/rope.h's RopeRow, computed on the host.
__global__ void RopeKernel(float* x, const float* angles, const int32_t* positions, int32_t first,
                           int64_t rows, int heads, int head_dim, int adjacent) {
  const int half = head_dim / 2;
  const int64_t total = rows * heads * half;
  for (int64_t e = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; e < total;
       e += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t t = e / (static_cast<int64_t>(heads) * half);
    const int h = static_cast<int>(e / half % heads), i = static_cast<int>(e % half);
    float* r = x + (t * heads + h) * head_dim;
    const int a = adjacent != 0 ? 2 * i : i, b = adjacent != 0 ? 2 * i + 1 : i + half;
    const float x0 = r[a], x1 = r[b];
    const int64_t row = positions != nullptr ? positions[t] : first + t;
    const float c = angles[row * head_dim + 2 * i], s = angles[row * head_dim + 2 * i + 1];
    r[a] = x0 * c - x1 * s;
    r[b] = x0 * s + x1 * c;
  }
}

// Row r of src (`words` 2- or 4-byte words) to dst[r]: a block per row.
template <typename Word>
__global__ void ScatterRowsKernel(const Word* src, Word* const* dst, int64_t words) {
  const int64_t r = blockIdx.x;
  for (int64_t i = threadIdx.x; i < words; i += blockDim.x) dst[r][i] = src[r * words + i];
}

// A CachedAttention row as the kernel reads it.
struct AttentionRowDevice {
  const float* k;
  const float* v;
  int64_t length;
};

// One block per (query row which[x], head, chunk of `chunk` keys). The chunk's keys are walked in
// tiles of blockDim.x, a thread per key scoring it against the query (staged in shared memory,
// scaled); the tile's max and sum update a running softmax (m, l) and the threads, split into
// groups x head_dim, add the tile's probabilities times the values into their partial outputs,
// rescaled when m grows; the groups' partials are added at the end. One chunk (gridDim.z == 1): out
// gets the normalised row. Several (flash-decoding: a few long rows would otherwise leave most of
// the GPU idle): each writes its (m, l, unnormalised output) to part_m / part_l / part_o at slot (t
// * heads + h) * gridDim.z + chunk, and AttentionCombineKernel merges them. No scores are kept, so
// rows have no length limit; a block's threads run the same tiles, so its barriers are uniform.
// Shared memory: head_dim (q) + blockDim.x (a tile's probabilities) + groups * head_dim (partials)
// floats.
__global__ void CachedAttentionKernel(const float* q, const AttentionRowDevice* rows,
                                      const int64_t* which, int heads, int kv_heads, int head_dim,
                                      float scale, int64_t chunk, float* out, float* part_m,
                                      float* part_l, float* part_o) {
  STRATA_DYNAMIC_SHARED(float, smem);
  STRATA_SHARED(float, scratch, 32);
  const int tile = static_cast<int>(blockDim.x), tid = static_cast<int>(threadIdx.x);
  float* qs = smem;
  float* ps = qs + head_dim;
  float* partial = ps + tile;
  const int64_t t = which[blockIdx.x];
  const int h = static_cast<int>(blockIdx.y);
  const AttentionRowDevice r = rows[t];
  const int64_t begin = static_cast<int64_t>(blockIdx.z) * chunk;
  const int64_t end = r.length < begin + chunk ? r.length : begin + chunk;
  const int64_t slot = (t * heads + h) * gridDim.z + blockIdx.z;
  if (begin >= end) {  // the whole block: this row has fewer chunks
    if (tid == 0) part_m[slot] = -INFINITY, part_l[slot] = 0;
    for (int d = tid; d < head_dim; d += tile) part_o[slot * head_dim + d] = 0;
    return;
  }
  const int64_t width = static_cast<int64_t>(heads) * head_dim;
  const int64_t kv_width = static_cast<int64_t>(kv_heads) * head_dim;
  const int64_t col = static_cast<int64_t>(h / (heads / kv_heads)) * head_dim;
  for (int d = tid; d < head_dim; d += tile) qs[d] = q[t * width + h * head_dim + d] * scale;
  __syncthreads();
  const int groups = tile / head_dim, g = tid / head_dim, dd = tid % head_dim;
  float m = -INFINITY, l = 0, acc = 0;
  for (int64_t k0 = begin; k0 < end; k0 += tile) {
    const int64_t j = k0 + tid;
    float s = -INFINITY;
    if (j < end) {
      const float* key = r.k + j * kv_width + col;
      s = 0;
      for (int d = 0; d < head_dim; ++d) s += qs[d] * key[d];
    }
    const float m_new = fmaxf(m, BlockMax(s, scratch));
    const float rescale = expf(m - m_new);  // 0 on the first tile (m = -inf)
    const float p = j < end ? expf(s - m_new) : 0.0f;
    l = l * rescale + BlockSum(p, scratch);
    ps[tid] = p;  // the previous tile's reads of ps ended before BlockMax's barriers
    __syncthreads();
    if (g < groups) {
      acc *= rescale;
      const int64_t n = end - k0 < tile ? end - k0 : tile;
      for (int64_t i = g; i < n; i += groups) acc += ps[i] * r.v[(k0 + i) * kv_width + col + dd];
    }
    m = m_new;
  }
  if (g < groups) partial[g * head_dim + dd] = acc;
  __syncthreads();
  if (tid < head_dim) {
    float sum = 0;
    for (int i = 0; i < groups; ++i) sum += partial[i * head_dim + tid];
    if (gridDim.z == 1) {
      out[t * width + h * head_dim + tid] = sum / l;
    } else {
      part_o[slot * head_dim + tid] = sum;
      if (tid == 0) part_m[slot] = m, part_l[slot] = l;
    }
  }
}

// Up to kGroupRows query rows reading the same cache (a prompt's rows, or the scattered rows
// Decoder::Assemble recomputes), each with its own length.
struct AttentionGroupDevice {
  const float* k;
  const float* v;
  int64_t first_row;  // rows first_row .. first_row + rows - 1 of the call
  int64_t longest;    // their largest length
  int rows;
};
constexpr int kGroupRows = 64;  // threads per block of GroupAttentionKernel
constexpr int kMinGroupRows = 4;

// CachedAttention for groups of rows, flash-style as TiledAttentionKernel: one block per (group,
// head, chunk of `chunk` keys), a thread per query row holding its q and output in registers; the
// chunk's keys and values are staged in shared memory a tile of kKeyTile at a time, read once
// for all the group's rows (the per-row kernel reads them once per row), and each thread keeps
// an online softmax over the keys below its own length. One chunk: out gets the rows. Several
// (few groups with long caches, as Assemble's recomputed rows make): partials at slot
// (t * heads + h) * gridDim.z + chunk for AttentionCombineKernel, as CachedAttentionKernel.
template <int D>
__global__ void GroupAttentionKernel(const float* q, const AttentionRowDevice* rows,
                                     const AttentionGroupDevice* groups, int heads, int kv_heads,
                                     float scale, int64_t chunk, float* out, float* part_m,
                                     float* part_l, float* part_o) {
  STRATA_SHARED(float, keys, kKeyTile* D);
  STRATA_SHARED(float, values, kKeyTile* D);
  const AttentionGroupDevice g = groups[blockIdx.x];
  const int h = static_cast<int>(blockIdx.y);
  const int64_t width = static_cast<int64_t>(heads) * D;
  const int64_t kv_width = static_cast<int64_t>(kv_heads) * D;
  const int64_t col = static_cast<int64_t>(h / (heads / kv_heads)) * D;
  const bool active = static_cast<int>(threadIdx.x) < g.rows;
  const int64_t t = g.first_row + threadIdx.x;
  const int64_t length = active ? rows[t].length : 0;
  const int64_t begin = static_cast<int64_t>(blockIdx.z) * chunk;
  const int64_t end = g.longest < begin + chunk ? g.longest : begin + chunk;
  float qv[D], o[D];
  float m = -INFINITY, l = 0;
  for (int d = 0; d < D; ++d) {
    qv[d] = active ? q[t * width + h * D + d] * scale : 0.0f;
    o[d] = 0;
  }
  for (int64_t k0 = begin; k0 < end; k0 += kKeyTile) {  // uniform: the whole block's bounds
    const int n = static_cast<int>(end - k0 < kKeyTile ? end - k0 : kKeyTile);
    __syncthreads();  // every thread is done with the previous tile
    for (int i = static_cast<int>(threadIdx.x); i < n * D; i += static_cast<int>(blockDim.x)) {
      const int64_t at = (k0 + i / D) * kv_width + col + i % D;
      keys[i] = g.k[at];
      values[i] = g.v[at];
    }
    __syncthreads();
    const int64_t upto = length - k0 < n ? length - k0 : n;  // <= 0 once past this row's keys
    for (int j = 0; j < upto; ++j) AttendKey<D>(qv, keys + j * D, values + j * D, m, l, o);
  }
  if (!active) return;
  if (gridDim.z > 1) {  // this chunk's share, empty (l = 0) when the row's keys end before it
    const int64_t slot = (t * heads + h) * gridDim.z + blockIdx.z;
    part_m[slot] = m;
    part_l[slot] = l;
    for (int d = 0; d < D; ++d) part_o[slot * D + d] = o[d];
    return;
  }
  const float inv = 1.0f / l;
  for (int d = 0; d < D; ++d) out[t * width + h * D + d] = o[d] * inv;
}

// Merges the `chunks` partials of row which[x] and head y (CachedAttentionKernel,
// GroupAttentionKernel): a block per (x, head), a thread per output dimension.
__global__ void AttentionCombineKernel(const float* part_m, const float* part_l,
                                       const float* part_o, const int64_t* which, int chunks,
                                       int heads, int head_dim, float* out) {
  const int64_t t = which[blockIdx.x];
  const int h = static_cast<int>(blockIdx.y);
  const int64_t first = (t * heads + h) * chunks;
  float mx = -INFINITY;
  for (int c = 0; c < chunks; ++c) mx = fmaxf(mx, part_m[first + c]);
  float l = 0;
  for (int c = 0; c < chunks; ++c) {
    if (part_l[first + c] > 0) l += part_l[first + c] * expf(part_m[first + c] - mx);
  }
  for (int d = static_cast<int>(threadIdx.x); d < head_dim; d += static_cast<int>(blockDim.x)) {
    float o = 0;
    for (int c = 0; c < chunks; ++c) {
      if (part_l[first + c] > 0)
        o += part_o[(first + c) * head_dim + d] * expf(part_m[first + c] - mx);
    }
    out[t * static_cast<int64_t>(heads) * head_dim + static_cast<int64_t>(h) * head_dim + d] =
        o / l;
  }
}

// The row kernels stage a row of floats in shared memory (48 KiB without opting in to more).
absl::Status RowFitsSharedMemory(int64_t cols, const char* op) {
  if (cols * static_cast<int64_t>(sizeof(float)) > 48 * 1024) {
    return absl::InvalidArgumentError(
        absl::StrCat(op, ": rows of ", cols, " elements exceed the kernel's 12,288"));
  }
  return absl::OkStatus();
}

int GridFor(int64_t n, int threads) {
  return static_cast<int>(std::min<int64_t>((n + threads - 1) / threads, 65535 * 8));
}

void FreeDevice(void* p) { BlockPool::Release(p); }

cudaDataType_t CudaType(DType t) {
  switch (t) {
    case DType::kF16:
      return CUDA_R_16F;
    case DType::kBF16:
      return CUDA_R_16BF;
    default:
      return CUDA_R_32F;
  }
}

// Calls f.template operator()<T>() with T the element type of `dtype`.
template <typename F>
absl::Status Dispatch(DType dtype, F&& f) {
  switch (dtype) {
    case DType::kF32:
      f(static_cast<float*>(nullptr));
      return absl::OkStatus();
    case DType::kF16:
      f(static_cast<__half*>(nullptr));
      return absl::OkStatus();
    case DType::kBF16:
      f(static_cast<__nv_bfloat16*>(nullptr));
      return absl::OkStatus();
    default:
      return absl::InvalidArgumentError(
          absl::StrCat("cuda backend: ", DTypeName(dtype), " is not a floating type"));
  }
}

// A weight kept in its GGUF block type in device memory (PrepareQuantizedLinear).
struct CudaQuantData final : LinearWeight::Data {
  CudaQuantData(GgmlType t, int64_t rows, int64_t cols, void* data)
      : type(t),
        n(rows),
        k(cols),
        row_bytes(static_cast<int64_t>(GgmlRowBytes(t, cols))),
        blocks(data) {}
  ~CudaQuantData() override { cudaFree(blocks); }
  CudaQuantData(const CudaQuantData&) = delete;
  CudaQuantData& operator=(const CudaQuantData&) = delete;
  GgmlType type;
  int64_t n, k, row_bytes;
  void* blocks;
};

class CudaBackendImpl final : public Backend {
 public:
  CudaBackendImpl(int device, std::string name)
      : device_(device), name_(std::move(name)), pool_(device) {}
  ~CudaBackendImpl() override {
    cudaSetDevice(device_);
    if (handle_ != nullptr) cublasDestroy(handle_);
    if (stream_ != nullptr) cudaStreamDestroy(stream_);
  }
  CudaBackendImpl(const CudaBackendImpl&) = delete;
  CudaBackendImpl& operator=(const CudaBackendImpl&) = delete;

  absl::Status Init() {
    CUDA_RETURN_IF_ERROR(cudaSetDevice(device_));
    CUDA_RETURN_IF_ERROR(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
    CUDA_RETURN_IF_ERROR(cublasCreate(&handle_));
    CUDA_RETURN_IF_ERROR(cublasSetStream(handle_, stream_));
    return absl::OkStatus();
  }

  BackendKind kind() const override { return BackendKind::kCuda; }
  std::string name() const override { return name_; }
  DType preferred_dtype() const override { return DType::kF16; }
  bool Supports(DType) const override { return true; }

  absl::StatusOr<Tensor> Allocate(DType dtype, std::vector<int64_t> shape) override {
    const ProfileScope profile_scope(profile_, "Allocate", stream_);
    CUDA_RETURN_IF_ERROR(cudaSetDevice(device_));
    int64_t n = 1;
    for (int64_t d : shape) {
      if (d < 0 || (d > 0 && n > (int64_t{1} << 50) / d)) {
        return absl::InvalidArgumentError(
            absl::StrCat("cuda backend: cannot allocate a tensor of dimension ", d, " (",
                         shape.size(), "-d shape)"));
      }
      n *= d;
    }
    ASSIGN_OR_RETURN(void* p, pool_.Take(static_cast<size_t>(n) * DTypeSize(dtype)));
    return Tensor(dtype, std::move(shape), p, &FreeDevice);
  }

  absl::Status CopyFromHost(const void* src, DType src_dtype, size_t n, Tensor& dst,
                            size_t offset) override {
    const ProfileScope profile_scope(profile_, "CopyFromHost", stream_);
    RETURN_IF_ERROR(CheckCopyFromHost(src_dtype, n, dst, offset));
    const bool dst_int = dst.dtype() == DType::kI32;
    CUDA_RETURN_IF_ERROR(cudaSetDevice(device_));
    // Converted on the host into a staging buffer; the copy is synchronous with the stream so the
    // buffer can be reused at once.
    const void* from = src;
    if (!dst_int && src_dtype != dst.dtype()) {
      const float* f = static_cast<const float*>(src);
      if (src_dtype != DType::kF32) {
        staging_f_.resize(n);
        ConvertToFloat(src_dtype, src, n, staging_f_.data());
        f = staging_f_.data();
      }
      staging_.resize(n * DTypeSize(dst.dtype()));
      ConvertFromFloat(dst.dtype(), f, n, staging_.data());
      from = staging_.data();
    }
    const size_t esize = DTypeSize(dst.dtype());
    CUDA_RETURN_IF_ERROR(cudaMemcpyAsync(static_cast<char*>(dst.data()) + offset * esize, from,
                                         n * esize, cudaMemcpyHostToDevice, stream_));
    CUDA_RETURN_IF_ERROR(cudaStreamSynchronize(stream_));
    return absl::OkStatus();
  }

  absl::Status CopyToHostFloat(const Tensor& src, size_t n, float* dst) override {
    const ProfileScope profile_scope(profile_, "CopyToHostFloat", stream_);
    CUDA_RETURN_IF_ERROR(cudaSetDevice(device_));
    staging_.resize(n * DTypeSize(src.dtype()));
    CUDA_RETURN_IF_ERROR(cudaMemcpyAsync(staging_.data(), src.data(), staging_.size(),
                                         cudaMemcpyDeviceToHost, stream_));
    CUDA_RETURN_IF_ERROR(cudaStreamSynchronize(stream_));
    ConvertToFloat(src.dtype(), staging_.data(), n, dst);
    return absl::OkStatus();
  }

  absl::Status Synchronize() override {
    CUDA_RETURN_IF_ERROR(cudaSetDevice(device_));
    CUDA_RETURN_IF_ERROR(cudaStreamSynchronize(stream_));
    return absl::OkStatus();
  }

  absl::Status CheckMatmul(MatmulPrecision precision) const override {
    if (precision == MatmulPrecision::kNative) return absl::OkStatus();
    return absl::FailedPreconditionError(absl::StrCat(
        "the cuda backend multiplies in the encoder's dtype (F16 unless set), not ",
        MatmulPrecisionName(precision),
        "; the matmul precision (--embed_precision) is a CPU setting: leave it at auto, or run "
        "the CPU backend (--embed_backend=cpu)"));
  }
  MatmulPrecision DefaultMatmul() const override { return MatmulPrecision::kNative; }

  absl::StatusOr<LinearWeight> PrepareLinear(Tensor w, MatmulPrecision precision) override {
    RETURN_IF_ERROR(CheckMatmul(precision));
    if (w.shape().size() != 2) {
      return absl::InvalidArgumentError("cuda backend: a Linear weight is [out, in]");
    }
    const int64_t n = w.dim(0), k = w.dim(1);
    std::string path = absl::StrCat("cublas ", DTypeName(w.dtype()));
    return LinearWeight(n, k, std::move(path), std::move(w), nullptr);
  }

  absl::Status Linear(const Tensor& x, const LinearWeight& weight, const Tensor* bias,
                      Activation act, Tensor& y) override {
    if (const auto* q = dynamic_cast<const CudaQuantData*>(weight.data())) {
      return QuantLinear(x, *q, bias, act, y);
    }
    const ProfileScope profile_scope(profile_, "Linear (cuBLAS)", stream_);
    const Tensor& w = weight.tensor();
    if (w.empty())
      return absl::InvalidArgumentError("cuda backend: a Linear weight it did not prepare");
    if (x.dtype() != w.dtype() || y.dtype() != w.dtype()) {
      return absl::InvalidArgumentError("Linear: x, w and y must share one dtype");
    }
    CUDA_RETURN_IF_ERROR(cudaSetDevice(device_));
    const int64_t n = w.dim(0), k = w.dim(1), m = x.numel() / k;
    const float alpha = 1.0f, beta = 0.0f;
    // Row-major y[m,n] = x[m,k] · w[n,k]ᵀ is column-major yᵀ[n,m] = w(ᵀ of col-major k×n) · xᵀ.
    CUDA_RETURN_IF_ERROR(cublasGemmEx(
        handle_, CUBLAS_OP_T, CUBLAS_OP_N, static_cast<int>(n), static_cast<int>(m),
        static_cast<int>(k), &alpha, w.data(), CudaType(w.dtype()), static_cast<int>(k), x.data(),
        CudaType(x.dtype()), static_cast<int>(k), &beta, y.data(), CudaType(y.dtype()),
        static_cast<int>(n), CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
    if (bias == nullptr && act == Activation::kNone) return absl::OkStatus();
    RETURN_IF_ERROR(Dispatch(y.dtype(), [&](auto* tag) {
      using T = std::remove_pointer_t<decltype(tag)>;
      STRATA_LAUNCH(BiasActKernel<T>, GridFor(m * n, 256), 256, 0, stream_)
      (y.as<T>(), bias != nullptr ? bias->as<T>() : nullptr, m, n, static_cast<int>(act));
    }));
    CUDA_RETURN_IF_ERROR(cudaGetLastError());
    return absl::OkStatus();
  }

  absl::Status EmbeddingSum(const Tensor& ids, const Tensor& positions, const Tensor& word,
                            const Tensor& position, const Tensor* type, Tensor& out) override {
    CUDA_RETURN_IF_ERROR(cudaSetDevice(device_));
    const int64_t t = ids.numel(), h = word.dim(1);
    if (t == 0) return absl::OkStatus();
    RETURN_IF_ERROR(Dispatch(out.dtype(), [&](auto* tag) {
      using T = std::remove_pointer_t<decltype(tag)>;
      STRATA_LAUNCH(EmbeddingSumKernel<T>, static_cast<unsigned>(t), 128, 0, stream_)
      (ids.as<int32_t>(), positions.as<int32_t>(), word.as<T>(), position.as<T>(),
       type != nullptr ? type->as<T>() : nullptr, out.as<T>(), h);
    }));
    CUDA_RETURN_IF_ERROR(cudaGetLastError());
    return absl::OkStatus();
  }

  absl::Status LayerNorm(const Tensor& x, const Tensor* residual, const Tensor& gamma,
                         const Tensor& beta, float eps, Tensor& out) override {
    CUDA_RETURN_IF_ERROR(cudaSetDevice(device_));
    const int64_t h = gamma.numel(), rows = x.numel() / h;
    RETURN_IF_ERROR(RowFitsSharedMemory(h, "LayerNorm"));
    if (rows == 0) return absl::OkStatus();
    RETURN_IF_ERROR(Dispatch(out.dtype(), [&](auto* tag) {
      using T = std::remove_pointer_t<decltype(tag)>;
      STRATA_LAUNCH(LayerNormKernel<T>, static_cast<unsigned>(rows), kRowThreads, h * sizeof(float),
                    stream_)
      (x.as<T>(), residual != nullptr ? residual->as<T>() : nullptr, gamma.as<T>(), beta.as<T>(),
       eps, out.as<T>(), h);
    }));
    CUDA_RETURN_IF_ERROR(cudaGetLastError());
    return absl::OkStatus();
  }

  absl::Status RmsNorm(const Tensor& x, const Tensor& gamma, float eps, Tensor& out) override {
    const ProfileScope profile_scope(profile_, "RmsNorm", stream_);
    CUDA_RETURN_IF_ERROR(cudaSetDevice(device_));
    const int64_t h = gamma.numel(), rows = x.numel() / h;
    RETURN_IF_ERROR(RowFitsSharedMemory(h, "RmsNorm"));
    if (rows == 0) return absl::OkStatus();
    RETURN_IF_ERROR(Dispatch(out.dtype(), [&](auto* tag) {
      using T = std::remove_pointer_t<decltype(tag)>;
      STRATA_LAUNCH(RmsNormKernel<T>, static_cast<unsigned>(rows), kRowThreads, h * sizeof(float),
                    stream_)
      (x.as<T>(), gamma.as<T>(), eps, out.as<T>(), h);
    }));
    CUDA_RETURN_IF_ERROR(cudaGetLastError());
    return absl::OkStatus();
  }

  absl::Status Activate(Activation act, Tensor& x) override {
    const ProfileScope profile_scope(profile_, "Activate", stream_);
    CUDA_RETURN_IF_ERROR(cudaSetDevice(device_));
    const int64_t n = x.numel();
    if (n == 0 || act == Activation::kNone) return absl::OkStatus();
    RETURN_IF_ERROR(Dispatch(x.dtype(), [&](auto* tag) {
      using T = std::remove_pointer_t<decltype(tag)>;
      STRATA_LAUNCH(ActivateKernel<T>, GridFor(n, 256), 256, 0, stream_)
      (x.as<T>(), n, static_cast<int>(act));
    }));
    CUDA_RETURN_IF_ERROR(cudaGetLastError());
    return absl::OkStatus();
  }

  absl::Status Softmax(Tensor& x) override {
    CUDA_RETURN_IF_ERROR(cudaSetDevice(device_));
    const int64_t cols = x.shape().back(), rows = x.numel() / cols;
    if (rows == 0) return absl::OkStatus();
    RETURN_IF_ERROR(RowFitsSharedMemory(cols, "Softmax"));
    RETURN_IF_ERROR(Dispatch(x.dtype(), [&](auto* tag) {
      using T = std::remove_pointer_t<decltype(tag)>;
      STRATA_LAUNCH(SoftmaxKernel<T>, static_cast<unsigned>(rows), kRowThreads,
                    cols * sizeof(float), stream_)
      (x.as<T>(), cols);
    }));
    CUDA_RETURN_IF_ERROR(cudaGetLastError());
    return absl::OkStatus();
  }

  absl::Status Attention(const Tensor& qkv, const Tensor& offsets,
                         absl::Span<const int32_t> host_offsets, int heads, int head_dim,
                         Tensor& out) override {
    CUDA_RETURN_IF_ERROR(cudaSetDevice(device_));
    const int seqs = static_cast<int>(host_offsets.size()) - 1;
    const int64_t tokens = host_offsets.back();
    if (seqs <= 0 || tokens == 0) return absl::OkStatus();
    if (head_dim > 1024) return absl::InvalidArgumentError("Attention: head_dim over 1024");
    int max_len = 0;
    for (int s = 0; s < seqs; ++s)
      max_len = std::max(max_len, host_offsets[s + 1] - host_offsets[s]);
    const float scale = 1.0f / sqrtf(static_cast<float>(head_dim));
    if (head_dim == 32 || head_dim == 64) {
      const dim3 grid(static_cast<unsigned>(seqs), static_cast<unsigned>(heads),
                      static_cast<unsigned>((max_len + kQueryTile - 1) / kQueryTile));
      RETURN_IF_ERROR(Dispatch(out.dtype(), [&](auto* tag) {
        using T = std::remove_pointer_t<decltype(tag)>;
        if (head_dim == 32) {
          STRATA_LAUNCH((TiledAttentionKernel<T, 32>), grid, kQueryTile, 0, stream_)
          (qkv.as<T>(), offsets.as<int32_t>(), heads, scale, out.as<T>());
        } else {
          STRATA_LAUNCH((TiledAttentionKernel<T, 64>), grid, kQueryTile, 0, stream_)
          (qkv.as<T>(), offsets.as<int32_t>(), heads, scale, out.as<T>());
        }
      }));
      CUDA_RETURN_IF_ERROR(cudaGetLastError());
      return absl::OkStatus();
    }
    // Whole warps (the reductions assume them), with as many head_dim-wide groups as fit.
    const int want = head_dim * std::max(1, 128 / head_dim);
    const int threads = std::min(1024, (want + 31) / 32 * 32);
    const int groups = threads / head_dim;
    const size_t smem = (static_cast<size_t>(head_dim) * (1 + groups) + max_len) * sizeof(float);
    if (smem > 48 * 1024) {
      return absl::InvalidArgumentError(absl::StrCat("Attention: a sequence of ", max_len,
                                                     " tokens needs more shared memory than the "
                                                     "kernel uses"));
    }
    RETURN_IF_ERROR(Dispatch(out.dtype(), [&](auto* tag) {
      using T = std::remove_pointer_t<decltype(tag)>;
      STRATA_LAUNCH(AttentionKernel<T>,
                    dim3(static_cast<unsigned>(tokens), static_cast<unsigned>(heads)), threads,
                    smem, stream_)
      (qkv.as<T>(), offsets.as<int32_t>(), seqs, heads, head_dim, max_len, scale, out.as<T>());
    }));
    CUDA_RETURN_IF_ERROR(cudaGetLastError());
    return absl::OkStatus();
  }

  absl::Status Pool(const Tensor& x, const Tensor& offsets, absl::Span<const int32_t> host_offsets,
                    Pooling mode, Tensor& out) override {
    CUDA_RETURN_IF_ERROR(cudaSetDevice(device_));
    const int seqs = static_cast<int>(host_offsets.size()) - 1;
    const int64_t h = x.shape().back();
    if (seqs <= 0) return absl::OkStatus();
    const unsigned chunks = static_cast<unsigned>((h + 127) / 128);
    RETURN_IF_ERROR(Dispatch(out.dtype(), [&](auto* tag) {
      using T = std::remove_pointer_t<decltype(tag)>;
      STRATA_LAUNCH(PoolKernel<T>, dim3(static_cast<unsigned>(seqs), chunks), 128, 0, stream_)
      (x.as<T>(), offsets.as<int32_t>(), mode == Pooling::kCls ? 1 : 0, out.as<T>(), h);
    }));
    CUDA_RETURN_IF_ERROR(cudaGetLastError());
    return absl::OkStatus();
  }

  absl::Status L2Normalize(Tensor& x) override {
    CUDA_RETURN_IF_ERROR(cudaSetDevice(device_));
    const int64_t cols = x.shape().back(), rows = x.numel() / cols;
    if (rows == 0) return absl::OkStatus();
    RETURN_IF_ERROR(Dispatch(x.dtype(), [&](auto* tag) {
      using T = std::remove_pointer_t<decltype(tag)>;
      STRATA_LAUNCH(L2NormalizeKernel<T>, static_cast<unsigned>(rows), kRowThreads, 0, stream_)
      (x.as<T>(), cols);
    }));
    CUDA_RETURN_IF_ERROR(cudaGetLastError());
    return absl::OkStatus();
  }

  // ---- decoder operations (F32) ----

  absl::StatusOr<LinearWeight> PrepareQuantizedLinear(GgmlType type, const void* rows, int64_t n,
                                                      int64_t k,
                                                      bool /*int8_activations*/) override {
    // The products keep fp32 activations: the CPU's int8-activation shortcut buys nothing here,
    // where decoding is bound by reading the weights.
    if (n < 1 || k < 1 || k % GgmlBlockValues(type) != 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          "cuda backend: a ", n, " x ", k, " ", GgmlTypeName(type), " weight is not whole blocks"));
    }
    CUDA_RETURN_IF_ERROR(cudaSetDevice(device_));
    const size_t bytes = static_cast<size_t>(n) * GgmlRowBytes(type, k);
    void* p = nullptr;
    CUDA_RETURN_IF_ERROR(cudaMalloc(&p, bytes));
    auto data = std::make_unique<CudaQuantData>(type, n, k, p);
    CUDA_RETURN_IF_ERROR(cudaMemcpyAsync(p, rows, bytes, cudaMemcpyHostToDevice, stream_));
    CUDA_RETURN_IF_ERROR(cudaStreamSynchronize(stream_));
    std::string path = absl::StrCat(GgmlTypeName(type),
                                    " blocks on the device: unpacked inside the product up to ",
                                    kGemvRows, " rows, to an f32 panel for cuBLAS beyond");
    return LinearWeight(n, k, std::move(path), Tensor(), std::move(data));
  }

  absl::Status GatherRows(const LinearWeight& table, const Tensor& ids, Tensor& out) override {
    const ProfileScope profile_scope(profile_, "GatherRows", stream_);
    const auto* q = dynamic_cast<const CudaQuantData*>(table.data());
    const int64_t t = ids.numel();
    if (q == nullptr || ids.dtype() != DType::kI32 || out.dtype() != DType::kF32 ||
        out.numel() < t * q->k) {
      return absl::InvalidArgumentError(
          "cuda backend: GatherRows needs a table it prepared, int32 ids and F32 room for "
          "their rows");
    }
    if (t == 0) return absl::OkStatus();
    CUDA_RETURN_IF_ERROR(cudaSetDevice(device_));
    // The ids are checked on the host: a row past the table would read outside it.
    std::vector<int32_t> host(static_cast<size_t>(t));
    CUDA_RETURN_IF_ERROR(cudaMemcpyAsync(host.data(), ids.data(), host.size() * sizeof(int32_t),
                                         cudaMemcpyDeviceToHost, stream_));
    CUDA_RETURN_IF_ERROR(cudaStreamSynchronize(stream_));
    for (int32_t id : host) {
      if (id < 0 || id >= q->n) {
        return absl::InvalidArgumentError(
            absl::StrCat("cuda backend: row ", id, " of a ", q->n, "-row table"));
      }
    }
    STRATA_LAUNCH(GatherRowsKernel, static_cast<unsigned>(t), 128, 0, stream_)
    (static_cast<const uint8_t*>(q->blocks), static_cast<int>(q->type), q->row_bytes, q->k,
     ids.as<int32_t>(), out.as<float>());
    CUDA_RETURN_IF_ERROR(cudaGetLastError());
    return absl::OkStatus();
  }

  absl::Status Add(Tensor& x, const Tensor& y) override { return Elementwise(x, y, false); }
  absl::Status Multiply(Tensor& x, const Tensor& y) override { return Elementwise(x, y, true); }

  absl::Status Rope(Tensor& x, int heads, int head_dim, absl::Span<const int32_t> positions,
                    float theta, RopeStyle style) override {
    const ProfileScope profile_scope(profile_, "Rope", stream_);
    const int64_t width = static_cast<int64_t>(heads) * head_dim;
    const auto rows = static_cast<int64_t>(positions.size());
    if (x.dtype() != DType::kF32 || heads < 1 || head_dim < 2 || head_dim % 2 != 0 ||
        rows * width > x.numel()) {
      return absl::InvalidArgumentError("cuda backend: Rope shape does not fit its F32 tensor");
    }
    if (rows == 0) return absl::OkStatus();
    CUDA_RETURN_IF_ERROR(cudaSetDevice(device_));
    // The angles come from gpu/internal/rope.h's RopeRow, as on the CPU, so the two rotate
    // identically: from a device table of positions [0, kRopeTablePositions) kept between calls
    // (the rows' positions uploaded unless they run consecutively), else computed for this call's
    // rows.
    int32_t top = -1;
    bool in_table = true, consecutive = true;
    for (int64_t t = 0; t < rows; ++t) {
      const int32_t p = positions[static_cast<size_t>(t)];
      top = std::max(top, p);
      in_table = in_table && p >= 0 && p < kRopeTablePositions;
      consecutive = consecutive && p == positions[0] + t;
    }
    if (theta != rope_theta_ || head_dim != rope_head_dim_) {
      rope_freq_ = RopeFrequencies(theta, head_dim);
      rope_theta_ = theta;
      rope_head_dim_ = head_dim;
      rope_table_rows_ = 0;
      rope_host_.clear();
    }
    const float* angles = nullptr;
    const int32_t* where = nullptr;
    int32_t first = 0;
    if (in_table) {
      if (top >= rope_table_rows_) {  // grow the table in steps of 1,024 positions
        const int32_t want = RopeTableRows(top);
        rope_host_.resize(static_cast<size_t>(want) * head_dim);
        for (int32_t p = rope_table_rows_; p < want; ++p) {
          RopeRow(rope_freq_, p, rope_host_.data() + static_cast<int64_t>(p) * head_dim);
        }
        ASSIGN_OR_RETURN(void* table, rope_table_.Get(rope_host_.size() * sizeof(float)));
        CUDA_RETURN_IF_ERROR(cudaMemcpyAsync(table, rope_host_.data(),
                                             rope_host_.size() * sizeof(float),
                                             cudaMemcpyHostToDevice, stream_));
        CUDA_RETURN_IF_ERROR(cudaStreamSynchronize(stream_));  // rope_host_ may grow again
        rope_table_rows_ = want;
      }
      ASSIGN_OR_RETURN(void* table, rope_table_.Get(0));
      angles = static_cast<const float*>(table);
      if (consecutive) {
        first = positions[0];
      } else {
        rope_positions_host_.assign(positions.begin(), positions.end());  // outlives the call
        ASSIGN_OR_RETURN(void* pos, rope_positions_.Get(static_cast<size_t>(rows) * 4));
        RETURN_IF_ERROR(Upload(rope_positions_host_.data(), static_cast<size_t>(rows) * 4, pos));
        where = static_cast<const int32_t*>(pos);
      }
    } else {
      rope_rows_.resize(static_cast<size_t>(rows * head_dim));
      for (int64_t t = 0; t < rows; ++t) {
        RopeRow(rope_freq_, positions[static_cast<size_t>(t)], rope_rows_.data() + t * head_dim);
      }
      ASSIGN_OR_RETURN(void* a, rope_angles_.Get(rope_rows_.size() * sizeof(float)));
      RETURN_IF_ERROR(Upload(rope_rows_.data(), rope_rows_.size() * sizeof(float), a));
      angles = static_cast<const float*>(a);
    }
    STRATA_LAUNCH(RopeKernel, GridFor(rows * heads * (head_dim / 2), 256), 256, 0, stream_)
    (x.as<float>(), angles, where, first, rows, heads, head_dim,
     style == RopeStyle::kAdjacent ? 1 : 0);
    CUDA_RETURN_IF_ERROR(cudaGetLastError());
    return absl::OkStatus();
  }

  absl::Status CopyRows(const Tensor& src, int64_t src_row, int64_t rows, Tensor& dst,
                        int64_t dst_row) override {
    const ProfileScope profile_scope(profile_, "CopyRows", stream_);
    const int64_t width = src.shape().back();
    if (dst.shape().back() != width || src.dtype() != dst.dtype() || src_row < 0 || rows < 0 ||
        (src_row + rows) * width > src.numel() || dst_row < 0 ||
        (dst_row + rows) * width > dst.numel()) {
      return absl::InvalidArgumentError("cuda backend: CopyRows does not fit its tensors");
    }
    if (rows == 0) return absl::OkStatus();
    CUDA_RETURN_IF_ERROR(cudaSetDevice(device_));
    const auto row_bytes = static_cast<int64_t>(DTypeSize(src.dtype())) * width;
    CUDA_RETURN_IF_ERROR(cudaMemcpyAsync(static_cast<char*>(dst.data()) + dst_row * row_bytes,
                                         static_cast<const char*>(src.data()) + src_row * row_bytes,
                                         static_cast<size_t>(rows * row_bytes),
                                         cudaMemcpyDeviceToDevice, stream_));
    return absl::OkStatus();
  }

  absl::Status ScatterRows(const Tensor& src, absl::Span<const RowDestination> dests) override {
    const ProfileScope profile_scope(profile_, "ScatterRows", stream_);
    const int64_t width = src.shape().back(), n = static_cast<int64_t>(dests.size());
    if (n * width > src.numel()) {
      return absl::InvalidArgumentError("cuda backend: ScatterRows has more rows than its source");
    }
    if (n == 0) return absl::OkStatus();
    const auto row_bytes = static_cast<int64_t>(DTypeSize(src.dtype())) * width;
    scatter_host_.resize(static_cast<size_t>(n));
    for (int64_t r = 0; r < n; ++r) {
      const RowDestination& d = dests[static_cast<size_t>(r)];
      if (d.dst == nullptr || d.dst->dtype() != src.dtype() || d.dst->shape().back() != width ||
          d.row < 0 || (d.row + 1) * width > d.dst->numel()) {
        return absl::InvalidArgumentError("cuda backend: a ScatterRows row does not fit");
      }
      scatter_host_[static_cast<size_t>(r)] = static_cast<char*>(d.dst->data()) + d.row * row_bytes;
    }
    CUDA_RETURN_IF_ERROR(cudaSetDevice(device_));
    ASSIGN_OR_RETURN(void* table, scatter_rows_.Get(scatter_host_.size() * sizeof(char*)));
    RETURN_IF_ERROR(Upload(scatter_host_.data(), scatter_host_.size() * sizeof(char*), table));
    if (row_bytes % 4 == 0) {
      STRATA_LAUNCH(ScatterRowsKernel<uint32_t>, static_cast<unsigned>(n), 128, 0, stream_)
      (static_cast<const uint32_t*>(src.data()), static_cast<uint32_t* const*>(table),
       row_bytes / 4);
    } else {
      STRATA_LAUNCH(ScatterRowsKernel<uint16_t>, static_cast<unsigned>(n), 128, 0, stream_)
      (static_cast<const uint16_t*>(src.data()), static_cast<uint16_t* const*>(table),
       row_bytes / 2);
    }
    CUDA_RETURN_IF_ERROR(cudaGetLastError());
    return absl::OkStatus();
  }

  absl::Status CachedAttention(const Tensor& q, absl::Span<const AttentionRow> rows, int heads,
                               int kv_heads, int head_dim, Tensor& out) override {
    const ProfileScope profile_scope(profile_, "CachedAttention", stream_);
    const int64_t width = static_cast<int64_t>(heads) * head_dim;
    const int64_t kv_width = static_cast<int64_t>(kv_heads) * head_dim;
    const auto n = static_cast<int64_t>(rows.size());
    if (q.dtype() != DType::kF32 || out.dtype() != DType::kF32 || kv_heads < 1 ||
        heads % kv_heads != 0 || head_dim < 1 || head_dim > 1024 || n * width > q.numel() ||
        n * width > out.numel()) {
      return absl::InvalidArgumentError("cuda backend: CachedAttention shapes do not fit");
    }
    if (n == 0) return absl::OkStatus();
    attention_host_.resize(static_cast<size_t>(n));
    for (int64_t t = 0; t < n; ++t) {
      const AttentionRow& r = rows[static_cast<size_t>(t)];
      if (r.k == nullptr || r.v == nullptr || r.k->dtype() != DType::kF32 ||
          r.v->dtype() != DType::kF32 || r.length < 1 || r.length * kv_width > r.k->numel() ||
          r.length * kv_width > r.v->numel()) {
        return absl::InvalidArgumentError("cuda backend: a CachedAttention row's cache is short");
      }
      attention_host_[static_cast<size_t>(t)] = {r.k->as<float>(), r.v->as<float>(), r.length};
    }
    CUDA_RETURN_IF_ERROR(cudaSetDevice(device_));
    // Runs of at least kMinGroupRows rows reading one cache (a prompt, or Assemble's recomputed
    // rows) go to GroupAttentionKernel, kGroupRows at a time, for the head sizes it is built for;
    // the rest (decoding rows) to the per-row kernel, by their indices.
    attention_groups_.clear();
    attention_singles_.clear();
    attention_grouped_.clear();
    const bool grouped_dim = head_dim == 32 || head_dim == 64;
    for (int64_t t = 0; t < n;) {
      const AttentionRowDevice& first = attention_host_[static_cast<size_t>(t)];
      int64_t e = t + 1;
      while (e < n && e - t < kGroupRows && attention_host_[static_cast<size_t>(e)].k == first.k &&
             attention_host_[static_cast<size_t>(e)].v == first.v) {
        ++e;
      }
      if (grouped_dim && e - t >= kMinGroupRows) {
        int64_t longest = 0;
        for (int64_t i = t; i < e; ++i) {
          longest = std::max(longest, attention_host_[static_cast<size_t>(i)].length);
          attention_grouped_.push_back(i);
        }
        attention_groups_.push_back({first.k, first.v, t, longest, static_cast<int>(e - t)});
      } else {
        for (int64_t i = t; i < e; ++i) attention_singles_.push_back(i);
      }
      t = e;
    }
    // One upload: the rows, the groups, the per-row kernel's row indices, the grouped rows'.
    const size_t row_bytes = attention_host_.size() * sizeof(AttentionRowDevice);
    const size_t group_bytes = attention_groups_.size() * sizeof(AttentionGroupDevice);
    const size_t single_bytes = attention_singles_.size() * sizeof(int64_t);
    const size_t grouped_bytes = attention_grouped_.size() * sizeof(int64_t);
    attention_upload_.resize(row_bytes + group_bytes + single_bytes + grouped_bytes);
    std::memcpy(attention_upload_.data(), attention_host_.data(), row_bytes);
    if (group_bytes > 0) {
      std::memcpy(attention_upload_.data() + row_bytes, attention_groups_.data(), group_bytes);
      std::memcpy(attention_upload_.data() + row_bytes + group_bytes + single_bytes,
                  attention_grouped_.data(), grouped_bytes);
    }
    if (single_bytes > 0) {
      std::memcpy(attention_upload_.data() + row_bytes + group_bytes, attention_singles_.data(),
                  single_bytes);
    }
    ASSIGN_OR_RETURN(void* table, attention_rows_.Get(attention_upload_.size()));
    RETURN_IF_ERROR(Upload(attention_upload_.data(), attention_upload_.size(), table));
    const auto* device_rows = static_cast<const AttentionRowDevice*>(table);
    const auto* device_groups =
        reinterpret_cast<const AttentionGroupDevice*>(static_cast<const char*>(table) + row_bytes);
    const auto* device_singles =
        reinterpret_cast<const int64_t*>(static_cast<const char*>(table) + row_bytes + group_bytes);
    const auto* device_grouped = device_singles + attention_singles_.size();
    const float scale = 1.0f / sqrtf(static_cast<float>(head_dim));
    if (!attention_groups_.empty()) {
      int64_t longest = 0;
      for (const AttentionGroupDevice& g : attention_groups_)
        longest = std::max(longest, g.longest);
      const auto [chunks, chunk] =
          KeyChunks(static_cast<int64_t>(attention_groups_.size()) * heads, longest);
      float *part_m = nullptr, *part_l = nullptr, *part_o = nullptr;
      if (chunks > 1) {
        ASSIGN_OR_RETURN(std::tie(part_m, part_l, part_o),
                         Partials(group_parts_, n * heads * chunks, head_dim));
      }
      const dim3 grid(static_cast<unsigned>(attention_groups_.size()), static_cast<unsigned>(heads),
                      static_cast<unsigned>(chunks));
      if (head_dim == 32) {
        STRATA_LAUNCH(GroupAttentionKernel<32>, grid, kGroupRows, 0, stream_)
        (q.as<float>(), device_rows, device_groups, heads, kv_heads, scale, chunk, out.as<float>(),
         part_m, part_l, part_o);
      } else {
        STRATA_LAUNCH(GroupAttentionKernel<64>, grid, kGroupRows, 0, stream_)
        (q.as<float>(), device_rows, device_groups, heads, kv_heads, scale, chunk, out.as<float>(),
         part_m, part_l, part_o);
      }
      CUDA_RETURN_IF_ERROR(cudaGetLastError());
      if (chunks > 1) {
        STRATA_LAUNCH(
            AttentionCombineKernel,
            dim3(static_cast<unsigned>(attention_grouped_.size()), static_cast<unsigned>(heads)),
            (head_dim + 31) / 32 * 32, 0, stream_)
        (part_m, part_l, part_o, device_grouped, static_cast<int>(chunks), heads, head_dim,
         out.as<float>());
        CUDA_RETURN_IF_ERROR(cudaGetLastError());
      }
    }
    if (attention_singles_.empty()) return absl::OkStatus();
    const auto singles = static_cast<int64_t>(attention_singles_.size());
    // A tile of at least 128 keys, and at least a thread per output dimension, in whole warps.
    const int threads = std::max(128, (head_dim + 31) / 32 * 32);
    const size_t smem =
        (static_cast<size_t>(head_dim) * (1 + threads / head_dim) + threads) * sizeof(float);
    int64_t longest = 0;
    for (int64_t i : attention_singles_) {
      longest = std::max(longest, attention_host_[static_cast<size_t>(i)].length);
    }
    const auto [chunks, chunk] = KeyChunks(singles * heads, longest);
    float *part_m = nullptr, *part_l = nullptr, *part_o = nullptr;
    if (chunks > 1) {
      ASSIGN_OR_RETURN(std::tie(part_m, part_l, part_o),
                       Partials(attention_parts_, n * heads * chunks, head_dim));
    }
    STRATA_LAUNCH(CachedAttentionKernel,
                  dim3(static_cast<unsigned>(singles), static_cast<unsigned>(heads),
                       static_cast<unsigned>(chunks)),
                  threads, smem, stream_)
    (q.as<float>(), device_rows, device_singles, heads, kv_heads, head_dim, scale, chunk,
     out.as<float>(), part_m, part_l, part_o);
    CUDA_RETURN_IF_ERROR(cudaGetLastError());
    if (chunks > 1) {
      STRATA_LAUNCH(AttentionCombineKernel,
                    dim3(static_cast<unsigned>(singles), static_cast<unsigned>(heads)),
                    (head_dim + 31) / 32 * 32, 0, stream_)
      (part_m, part_l, part_o, device_singles, static_cast<int>(chunks), heads, head_dim,
       out.as<float>());
      CUDA_RETURN_IF_ERROR(cudaGetLastError());
    }
    return absl::OkStatus();
  }

 private:
  // Rows of x [m, k] times a GGUF weight: the unpack-in-product kernel for up to kGemvRows rows,
  // else panels of the weight's rows unpacked to F32 (at most kPanelFloats at a time) for cuBLAS.
  absl::Status QuantLinear(const Tensor& x, const CudaQuantData& w, const Tensor* bias,
                           Activation act, Tensor& y) {
    const int64_t n = w.n, k = w.k, m = x.numel() / k;
    const ProfileScope profile_scope(
        profile_, m <= kGemvRows ? "Linear (quantised, few rows)" : "Linear (quantised, panels)",
        stream_);
    if (x.dtype() != DType::kF32 || y.dtype() != DType::kF32 || m * k != x.numel() ||
        y.numel() < m * n ||
        (bias != nullptr && (bias->dtype() != DType::kF32 || bias->numel() < n))) {
      return absl::InvalidArgumentError(absl::StrCat("cuda backend: Linear of ", x.numel(),
                                                     " F32 inputs by a ", n, " x ", k,
                                                     " weight into ", y.numel()));
    }
    if (m == 0) return absl::OkStatus();
    CUDA_RETURN_IF_ERROR(cudaSetDevice(device_));
    const auto* blocks = static_cast<const uint8_t*>(w.blocks);
    const int type = static_cast<int>(w.type);
    if (m <= kGemvRows) {
      STRATA_LAUNCH(QuantGemvKernel, static_cast<unsigned>((n + kGemvWarps - 1) / kGemvWarps),
                    32 * kGemvWarps, 0, stream_)
      (blocks, type, w.row_bytes, n, k, x.as<float>(), static_cast<int>(m),
       bias != nullptr ? bias->as<float>() : nullptr, static_cast<int>(act), y.as<float>());
      CUDA_RETURN_IF_ERROR(cudaGetLastError());
      return absl::OkStatus();
    }
    const int64_t panel_rows = std::max<int64_t>(1, std::min<int64_t>(n, kPanelFloats / k));
    ASSIGN_OR_RETURN(void* p, panel_.Get(static_cast<size_t>(panel_rows * k) * sizeof(float)));
    auto* panel = static_cast<float*>(p);
    const float alpha = 1.0f, beta = 0.0f;
    for (int64_t first = 0; first < n; first += panel_rows) {
      const int64_t rows = std::min(panel_rows, n - first);
      {
        const ProfileScope unpack_scope(profile_, "  of which: panel unpacking", stream_);
        STRATA_LAUNCH(DequantizePanelKernel, GridFor(rows * ((k + 31) / 32), 128), 128, 0, stream_)
        (blocks, type, w.row_bytes, first, rows, k, panel);
        CUDA_RETURN_IF_ERROR(cudaGetLastError());
      }
      // Columns [first, first + rows) of y (row-major, ldc n), as Linear's GEMM above.
      CUDA_RETURN_IF_ERROR(cublasGemmEx(
          handle_, CUBLAS_OP_T, CUBLAS_OP_N, static_cast<int>(rows), static_cast<int>(m),
          static_cast<int>(k), &alpha, panel, CUDA_R_32F, static_cast<int>(k), x.data(), CUDA_R_32F,
          static_cast<int>(k), &beta, y.as<float>() + first, CUDA_R_32F, static_cast<int>(n),
          CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
    }
    if (bias == nullptr && act == Activation::kNone) return absl::OkStatus();
    STRATA_LAUNCH(BiasActKernel<float>, GridFor(m * n, 256), 256, 0, stream_)
    (y.as<float>(), bias != nullptr ? bias->as<float>() : nullptr, m, n, static_cast<int>(act));
    CUDA_RETURN_IF_ERROR(cudaGetLastError());
    return absl::OkStatus();
  }

  // How many chunks to cut `longest` keys into when `blocks` blocks would run otherwise: few
  // blocks with long caches (decoding rows; a few groups of recomputed rows) would occupy a
  // handful of multiprocessors, so their keys are cut into chunks of at least kMinChunk until
  // about kWantBlocks blocks run. {chunks, keys per chunk}.
  static std::pair<int64_t, int64_t> KeyChunks(int64_t blocks, int64_t longest) {
    int64_t chunks = 1;
    if (blocks < kWantBlocks && longest > kMinChunk) {
      chunks = std::min((longest + kMinChunk - 1) / kMinChunk, (kWantBlocks + blocks - 1) / blocks);
    }
    return {chunks, (longest + chunks - 1) / chunks};
  }
  // Room for `slots` partial softmaxes (m, l, head_dim outputs) in `buffer`.
  static absl::StatusOr<std::tuple<float*, float*, float*>> Partials(DeviceScratch& buffer,
                                                                     int64_t slots, int head_dim) {
    ASSIGN_OR_RETURN(void* p,
                     buffer.Get(static_cast<size_t>(slots) * (2 + head_dim) * sizeof(float)));
    auto* m = static_cast<float*>(p);
    return std::make_tuple(m, m + slots, m + 2 * slots);
  }

  absl::Status Elementwise(Tensor& x, const Tensor& y, bool multiply) {
    const ProfileScope profile_scope(profile_, "Add/Multiply", stream_);
    if (x.dtype() != DType::kF32 || y.dtype() != DType::kF32 || y.numel() < x.numel()) {
      return absl::InvalidArgumentError(
          "cuda backend: elementwise operands must be F32, the second no smaller");
    }
    const int64_t n = x.numel();
    if (n == 0) return absl::OkStatus();
    CUDA_RETURN_IF_ERROR(cudaSetDevice(device_));
    STRATA_LAUNCH(ElementwiseKernel, GridFor(n, 256), 256, 0, stream_)
    (x.as<float>(), y.as<float>(), n, multiply ? 1 : 0);
    CUDA_RETURN_IF_ERROR(cudaGetLastError());
    return absl::OkStatus();
  }

  // Copies a small host array to device memory in stream order. The copy is from pageable
  // memory, which the driver stages before cudaMemcpyAsync returns, so `src` may be reused at
  // once; the kernels after it in the stream see the data.
  absl::Status Upload(const void* src, size_t bytes, void* dst) {
    CUDA_RETURN_IF_ERROR(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, stream_));
    return absl::OkStatus();
  }

  static constexpr int64_t kPanelFloats = int64_t{16} << 20;  // 64 MiB of unpacked weight rows
  static constexpr int64_t kWantBlocks = 264;                 // two per multiprocessor of an H100
  static constexpr int64_t kMinChunk = 256;                   // keys per attention block at least

  int device_;
  std::string name_;
  cudaStream_t stream_ = nullptr;
  cublasHandle_t handle_ = nullptr;
  std::vector<float> staging_f_;
  std::vector<uint8_t> staging_;
  OpProfile profile_;  // prints when the backend is destroyed
  BlockPool pool_;
  DeviceScratch panel_, rope_table_, rope_positions_, rope_angles_, attention_rows_,
      attention_parts_, group_parts_, scatter_rows_;
  std::vector<double> rope_freq_;
  float rope_theta_ = 0;
  int rope_head_dim_ = 0;
  int32_t rope_table_rows_ = 0;  // positions in rope_table_ (and rope_host_, its source)
  std::vector<float> rope_host_, rope_rows_;
  std::vector<int32_t> rope_positions_host_;
  std::vector<AttentionRowDevice> attention_host_;
  std::vector<AttentionGroupDevice> attention_groups_;
  std::vector<int64_t> attention_singles_, attention_grouped_;
  std::vector<char> attention_upload_;
  std::vector<char*> scatter_host_;
};

}  // namespace

}  // namespace strata::gpu

// The module's entry point, found by cuda_loader.cc with dlsym.
extern "C" __attribute__((visibility("default"))) strata::gpu::Backend* StrataCreateCudaBackend(
    int device, char* error, size_t error_size) {
  auto fail = [&](const absl::Status& s) -> strata::gpu::Backend* {
    std::snprintf(error, error_size, "%s", std::string(s.message()).c_str());
    return nullptr;
  };
  cudaDeviceProp p;
  absl::Status s = strata::gpu::ToStatus(cudaGetDeviceProperties(&p, device),
                                         "cudaGetDeviceProperties", __FILE__, __LINE__);
  if (!s.ok()) return fail(s);
  auto b = std::make_unique<strata::gpu::CudaBackendImpl>(
      device, absl::StrCat("cuda:", device, " (", p.name, ", sm_", p.major, p.minor, ", ",
                           p.totalGlobalMem >> 20, " MiB)"));
  const absl::Status init = b->Init();
  if (!init.ok()) return fail(init);
  return b.release();
}
