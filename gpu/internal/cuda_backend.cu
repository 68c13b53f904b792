// The CUDA backend: one device, one stream, one cuBLAS handle. GEMMs go to cuBLAS (F16/BF16 or F32
// inputs, fp32 accumulation); the rest are Strata's kernels below, templated on the element type
// and computing in fp32. Each kernel has its reference in cpu_backend.cc, and tests compare them.
#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gpu/backend.h"
#include "gpu/internal/cuda_check.h"

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
    for (int j = 0; j < n; ++j) {
      float s = 0;
      for (int d = 0; d < D; ++d) s += q[d] * keys[j * D + d];
      if (s > m) {  // a new max: rescale what was summed under the old one
        const float c = expf(m - s);
        l *= c;
        for (int d = 0; d < D; ++d) o[d] *= c;
        m = s;
      }
      const float p = expf(s - m);
      l += p;
      for (int d = 0; d < D; ++d) o[d] += p * values[j * D + d];
    }
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

void FreeDevice(void* p) { cudaFree(p); }

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

class CudaBackendImpl final : public Backend {
 public:
  CudaBackendImpl(int device, std::string name) : device_(device), name_(std::move(name)) {}
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
    CUDA_RETURN_IF_ERROR(cudaSetDevice(device_));
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    void* p = nullptr;
    CUDA_RETURN_IF_ERROR(
        cudaMalloc(&p, std::max<size_t>(256, static_cast<size_t>(n) * DTypeSize(dtype))));
    return Tensor(dtype, std::move(shape), p, &FreeDevice);
  }

  absl::Status CopyFromHost(const void* src, DType src_dtype, size_t n, Tensor& dst,
                            size_t offset) override {
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

 private:
  int device_;
  std::string name_;
  cudaStream_t stream_ = nullptr;
  cublasHandle_t handle_ = nullptr;
  std::vector<float> staging_f_;
  std::vector<uint8_t> staging_;
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
