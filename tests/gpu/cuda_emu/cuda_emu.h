// A test-only CUDA emulator: just enough of the CUDA runtime, the device-side language and cuBLAS
// for gpu/internal/cuda_backend.cu to compile as plain C++ and run on the CPU, so that its kernels,
// launch arithmetic and cuBLAS arguments are exercised on machines without a GPU.
//
// How it runs a kernel: the blocks of a grid one after another; the threads of a block as fibers
// on the calling thread, switched only at __syncthreads() and warp shuffles. Barriers are real (a
// thread waits until every thread of its block, or lane of its warp, has arrived); shared arrays
// (STRATA_SHARED, STRATA_DYNAMIC_SHARED) are memory of the running block, poisoned (NaN bytes)
// when it starts. The threads between two barriers run one at a time in a chosen order (SetOrder):
// a kernel whose output depends on that order reads shared memory that another thread writes
// without a barrier between, which is a race on a real GPU. (Orders are four fixed schedules, not
// an exhaustive search: a race they do not happen to expose goes unseen.)
//
// What it checks, like CUDA: launch configurations (block and grid limits, 48 KiB of dynamic
// shared memory) fail with cudaErrorInvalidConfiguration through cudaGetLastError; a barrier that
// not every thread reaches (divergent __syncthreads, a partial warp in a full-mask shuffle) is a
// sticky launch failure that later calls return; memcpy ranges must lie inside cudaMalloc'ed
// memory; cublasGemmEx validates its sizes, leading dimensions and type combination as documented
// and computes the column-major product exactly as specified (fp32 accumulation).
//
// What it cannot tell: anything about the real hardware, compiler or library - timing, memory
// coalescing, occupancy, warp-synchronous code without barriers, device-side out-of-bounds
// accesses (the memory is host memory: run the test under valgrind for those), nvcc's fast-math
// differences. It is no substitute for the `gpu`-labelled tests on a device.
//
// The API lives in namespace strata_cuda_emu (so that it never collides with the real runtime a
// test binary may also link) and is made visible to the including file by a using-directive,
// which is why only the CUDA sources under test include this, through the stand-in headers in
// include/ (cuda_runtime.h, cublas_v2.h, ...).
#ifndef STRATA_TESTS_GPU_CUDA_EMU_CUDA_EMU_H_
#define STRATA_TESTS_GPU_CUDA_EMU_CUDA_EMU_H_

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "storage/half.h"

namespace strata_cuda_emu {

// ---- device-side language -----------------------------------------------------------------------
struct uint3 {
  unsigned x = 0, y = 0, z = 0;
};
struct dim3 {
  unsigned x, y, z;
  constexpr dim3(unsigned vx = 1, unsigned vy = 1, unsigned vz = 1) : x(vx), y(vy), z(vz) {}
};

// The running thread's coordinates: set by the scheduler before it resumes a fiber.
extern uint3 g_thread_idx;
extern uint3 g_block_idx;
extern dim3 g_block_dim;
extern dim3 g_grid_dim;

void SyncThreads();
// Exchanges `v` with the lane `lane ^ lane_mask` of the warp (all 32 lanes must take part).
float ShuffleXor(unsigned mask, float v, int lane_mask);
// The running block's dynamic shared memory, and its static shared array declared at file:line
// (the same memory for every thread of the block, poisoned when the block starts).
void* DynamicShared();
void* StaticShared(size_t bytes, const char* file, int line);

struct __half {
  uint16_t bits;
};
struct __nv_bfloat16 {
  uint16_t bits;
};
inline float __half2float(__half h) { return strata::HalfToFloat(h.bits); }
inline __half __float2half_rn(float f) { return __half{strata::FloatToHalf(f)}; }
inline float __bfloat162float(__nv_bfloat16 b) { return strata::BFloat16ToFloat(b.bits); }
inline __nv_bfloat16 __float2bfloat16_rn(float f) {
  return __nv_bfloat16{strata::FloatToBFloat16(f)};
}
inline float rsqrtf(float x) { return 1.0f / std::sqrt(x); }
inline void __syncthreads() { SyncThreads(); }
inline float __shfl_xor_sync(unsigned mask, float v, int lane_mask) {
  return ShuffleXor(mask, v, lane_mask);
}

// ---- runtime ------------------------------------------------------------------------------------
enum cudaError_t {
  cudaSuccess = 0,
  cudaErrorInvalidValue = 1,
  cudaErrorMemoryAllocation = 2,
  cudaErrorInvalidConfiguration = 9,
  cudaErrorInvalidDevice = 101,
  cudaErrorLaunchFailure = 719,
};
enum cudaMemcpyKind {
  cudaMemcpyHostToHost = 0,
  cudaMemcpyHostToDevice = 1,
  cudaMemcpyDeviceToHost = 2,
  cudaMemcpyDeviceToDevice = 3
};
struct EmuStream;
using cudaStream_t = EmuStream*;
inline constexpr unsigned cudaStreamNonBlocking = 1;
struct cudaDeviceProp {
  char name[256];
  int major, minor;
  size_t totalGlobalMem;
};

const char* cudaGetErrorName(cudaError_t err);
const char* cudaGetErrorString(cudaError_t err);
cudaError_t cudaSetDevice(int device);
cudaError_t cudaGetDeviceProperties(cudaDeviceProp* prop, int device);
cudaError_t cudaStreamCreateWithFlags(cudaStream_t* stream, unsigned flags);
cudaError_t cudaStreamDestroy(cudaStream_t stream);
cudaError_t cudaStreamSynchronize(cudaStream_t stream);
cudaError_t cudaMalloc(void** p, size_t bytes);
cudaError_t cudaFree(void* p);
cudaError_t cudaMemcpyAsync(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind,
                            cudaStream_t stream);
// The error of the last launch (configuration errors), cleared by the call; a sticky execution
// error is returned too.
cudaError_t cudaGetLastError();

// ---- kernel launches: STRATA_LAUNCH(kernel, grid, block, smem, stream)(args...) ----------------
void RunGrid(dim3 grid, dim3 block, size_t dynamic_smem, const std::function<void()>& body);

template <typename... P>
class Launch {
 public:
  Launch(void (*kernel)(P...), dim3 grid, dim3 block, size_t smem)
      : kernel_(kernel), grid_(grid), block_(block), smem_(smem) {}
  template <typename... A>
  void operator()(A&&... args) const {
    // Arguments are converted to the kernel's parameter types once, as a launch copies them.
    const std::tuple<P...> params(std::forward<A>(args)...);
    auto* kernel = kernel_;
    RunGrid(grid_, block_, smem_, [&params, kernel] { std::apply(kernel, params); });
  }

 private:
  void (*kernel_)(P...);
  dim3 grid_, block_;
  size_t smem_;
};

template <typename... P>
Launch<P...> MakeLaunch(void (*kernel)(P...), dim3 grid, dim3 block, size_t smem,
                        cudaStream_t /*stream: one in-order queue, run at once*/) {
  return Launch<P...>(kernel, grid, block, smem);
}

// ---- cuBLAS -------------------------------------------------------------------------------------
enum cublasStatus_t {
  CUBLAS_STATUS_SUCCESS = 0,
  CUBLAS_STATUS_NOT_INITIALIZED = 1,
  CUBLAS_STATUS_ALLOC_FAILED = 3,
  CUBLAS_STATUS_INVALID_VALUE = 7,
  CUBLAS_STATUS_NOT_SUPPORTED = 15,
};
enum cublasOperation_t { CUBLAS_OP_N = 0, CUBLAS_OP_T = 1 };
enum cudaDataType_t { CUDA_R_32F = 0, CUDA_R_16F = 2, CUDA_R_16BF = 14 };
enum cublasComputeType_t { CUBLAS_COMPUTE_32F = 68 };
enum cublasGemmAlgo_t { CUBLAS_GEMM_DEFAULT = -1 };
struct EmuBlas;
using cublasHandle_t = EmuBlas*;

cublasStatus_t cublasCreate(cublasHandle_t* handle);
cublasStatus_t cublasDestroy(cublasHandle_t handle);
cublasStatus_t cublasSetStream(cublasHandle_t handle, cudaStream_t stream);
const char* cublasGetStatusName(cublasStatus_t status);
const char* cublasGetStatusString(cublasStatus_t status);
// C = alpha * op(A) * op(B) + beta * C, column-major, op(A) m x k, op(B) k x n, C m x n.
cublasStatus_t cublasGemmEx(cublasHandle_t handle, cublasOperation_t transa,
                            cublasOperation_t transb, int m, int n, int k, const void* alpha,
                            const void* a, cudaDataType_t a_type, int lda, const void* b,
                            cudaDataType_t b_type, int ldb, const void* beta, void* c,
                            cudaDataType_t c_type, int ldc, cublasComputeType_t compute,
                            cublasGemmAlgo_t algo);

// ---- test controls ------------------------------------------------------------------------------
// The order in which the threads of a block run between barriers (default kForward): sweeps in
// index order or its reverse (each runnable thread once per sweep), or greedy, always resuming
// the lowest (highest) runnable thread, which lets one warp run ahead of the rest.
enum class Order { kForward, kReverse, kLowestFirst, kHighestFirst };
void SetOrder(Order order);
// Kernels launched, threads run and barriers passed since the last call, and every fault seen
// (launch failures, bad memcpy ranges, cuBLAS misuse), in words; clears them and the sticky error.
struct Report {
  int64_t launches = 0, threads = 0, barriers = 0, gemms = 0;
  std::vector<std::string> faults;
};
Report TakeReport();

}  // namespace strata_cuda_emu

using namespace strata_cuda_emu;  // NOLINT: stands in for the CUDA headers' global names

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
// Shared arrays are declared with STRATA_SHARED (below), which gives each block fresh, poisoned
// memory; a plain __shared__ variable would be an ordinary static here and keep its values from
// one block to the next, so it does not compile.
#define __shared__ static_assert(false, "declare shared arrays with STRATA_SHARED");
#define threadIdx (::strata_cuda_emu::g_thread_idx)
#define blockIdx (::strata_cuda_emu::g_block_idx)
#define blockDim (::strata_cuda_emu::g_block_dim)
#define gridDim (::strata_cuda_emu::g_grid_dim)
#define STRATA_LAUNCH(kernel, grid, block, smem, stream) \
  ::strata_cuda_emu::MakeLaunch(kernel, grid, block, smem, stream)
#define STRATA_DYNAMIC_SHARED(type, name) \
  type* name = static_cast<type*>(::strata_cuda_emu::DynamicShared())
#define STRATA_SHARED(type, name, count) \
  type* name = static_cast<type*>(       \
      ::strata_cuda_emu::StaticShared(sizeof(type) * (count), __FILE__, __LINE__))

#endif  // STRATA_TESTS_GPU_CUDA_EMU_CUDA_EMU_H_
