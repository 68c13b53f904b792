// The CUDA backend's source (gpu/internal/cuda_backend.cu) run on the CPU through the CUDA
// emulator (tests/gpu/cuda_emu), checked as the `gpu`-labelled tests check it on a device: every
// op against the CPU backend in F32, F16 and BF16, the encoder against the reference forward and
// the sentence-transformers fixture, the decoder against its references. Also: no op's output
// depends on the order in which a block's threads run between barriers (a missing __syncthreads
// would make it), no launch CUDA would refuse, and the emulator itself finds the faults it claims
// to find. Runs on every machine; it is no substitute for a run on a GPU (see cuda_emu.h for what
// it cannot tell).
#include "tests/gpu/cuda_emu/cuda_emu.h"

#include <cmath>
#include <cstdio>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "gpu/backend.h"
#include "gpu/decoder.h"
#include "gpu/passage_kv.h"
#include "gtest/gtest.h"
#include "tests/gpu/backend_ops.h"
#include "tests/gpu/decoder_backend_checks.h"
#include "tests/gpu/tiny_decoder.h"
#include "tests/gpu/tiny_model.h"
#include "tests/test_util.h"

extern "C" strata::gpu::Backend* StrataCreateCudaBackend(int device, char* error,
                                                         size_t error_size);

namespace strata::gpu {
namespace {

absl::StatusOr<std::unique_ptr<Backend>> MakeEmulated() {
  char error[512] = {0};
  Backend* b = StrataCreateCudaBackend(0, error, sizeof error);
  if (b == nullptr) return absl::InternalError(error);
  return std::unique_ptr<Backend>(b);
}

// Clears the emulator's counters on entry; on exit, fails the test on any fault it saw.
class EmulatorScope {
 public:
  EmulatorScope() { (void)TakeReport(); }
  ~EmulatorScope() {
    const Report r = TakeReport();
    for (const std::string& f : r.faults) ADD_FAILURE() << "emulator fault: " << f;
  }
  EmulatorScope(const EmulatorScope&) = delete;
  EmulatorScope& operator=(const EmulatorScope&) = delete;
};

class EmulatedCudaOps : public ::testing::TestWithParam<DType> {};

TEST_P(EmulatedCudaOps, EveryOpMatchesTheCpuBackend) {
  (void)TakeReport();
  auto cuda = MakeEmulated();
  ASSERT_TRUE(cuda.ok()) << cuda.status();
  EXPECT_EQ((*cuda)->kind(), BackendKind::kCuda);
  EXPECT_NE((*cuda)->name().find("emulator"), std::string::npos) << (*cuda)->name();
  auto cmp = testing::CompareOpsWithCpu(**cuda, GetParam(), 7);
  ASSERT_TRUE(cmp.ok()) << cmp.status();
  EXPECT_GE(cmp->size(), 14u);
  for (const auto& c : *cmp) EXPECT_LT(c.worst, testing::OpTolerance(GetParam())) << c.op;
  const Report r = TakeReport();
  EXPECT_TRUE(r.faults.empty()) << r.faults.front();
  // The kernels really ran, with their barriers and shuffles, and the GEMMs went to cuBLAS.
  EXPECT_GE(r.launches, 14);
  EXPECT_GT(r.barriers, r.threads);
  EXPECT_GE(r.gemms, 3);
}

TEST_P(EmulatedCudaOps, NoOutputDependsOnTheOrderOfABlocksThreads) {
  EmulatorScope scope;
  auto cuda = MakeEmulated();
  ASSERT_TRUE(cuda.ok()) << cuda.status();
  for (const testing::OpCase& c : testing::AllOpCases(11)) {
    SetOrder(Order::kForward);
    auto forward = testing::RunOp(**cuda, GetParam(), c);
    ASSERT_TRUE(forward.ok()) << forward.status();
    for (Order order : {Order::kReverse, Order::kLowestFirst, Order::kHighestFirst}) {
      SetOrder(order);
      auto other = testing::RunOp(**cuda, GetParam(), c);
      SetOrder(Order::kForward);
      ASSERT_TRUE(other.ok()) << other.status();
      ASSERT_EQ(forward->size(), other->size());
      EXPECT_EQ(0, std::memcmp(forward->data(), other->data(), forward->size() * sizeof(float)))
          << c.op << " under order " << static_cast<int>(order);
    }
  }
}

INSTANTIATE_TEST_SUITE_P(DTypes, EmulatedCudaOps,
                         ::testing::Values(DType::kF32, DType::kF16, DType::kBF16),
                         [](const auto& info) { return std::string(DTypeName(info.param)); });

TEST(EmulatedCudaOps, RowsTooLongForSharedMemoryAreRefusedBeforeALaunch) {
  EmulatorScope scope;
  auto cuda = MakeEmulated();
  ASSERT_TRUE(cuda.ok()) << cuda.status();
  auto x = (*cuda)->Allocate(DType::kF32, {2, 20000});
  ASSERT_TRUE(x.ok()) << x.status();
  const absl::Status s = (*cuda)->Softmax(*x);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  EXPECT_NE(s.message().find("Softmax"), std::string::npos) << s;
  // One sequence of 13,000 tokens needs more shared memory for its scores than a block has.
  const int heads = 1, head_dim = 8, tokens = 13000;
  auto qkv = (*cuda)->Allocate(DType::kF32, {tokens, 3 * heads * head_dim});
  auto out = (*cuda)->Allocate(DType::kF32, {tokens, heads * head_dim});
  auto offsets = (*cuda)->Allocate(DType::kI32, {2});
  ASSERT_TRUE(qkv.ok() && out.ok() && offsets.ok());
  const std::vector<int32_t> host = {0, tokens};
  ASSERT_TRUE((*cuda)->CopyFromHost(host.data(), DType::kI32, 2, *offsets, 0).ok());
  const absl::Status a = (*cuda)->Attention(*qkv, *offsets, host, heads, head_dim, *out);
  EXPECT_EQ(a.code(), absl::StatusCode::kInvalidArgument) << a;
  EXPECT_EQ(TakeReport().launches, 0);
}

TEST(EmulatedCudaEncoder, TinyModelMatchesTheReference) {
  EmulatorScope scope;
  testing::TempDir dir;
  for (DType dtype : {DType::kF32, DType::kF16, DType::kBF16}) {
    auto worst = testing::TinyEncoderWorstCosine(&MakeEmulated, dtype, dir.path());
    ASSERT_TRUE(worst.ok()) << worst.status();
    EXPECT_GE(*worst, dtype == DType::kF32   ? 0.99999
                      : dtype == DType::kF16 ? 0.999
                                             : 0.99)
        << DTypeName(dtype);
  }
}

// Bad arguments to the decoder's ops are refused before any launch.
TEST(EmulatedCudaOps, DecoderOpsRefuseWhatDoesNotFit) {
  EmulatorScope scope;
  auto cuda = MakeEmulated();
  ASSERT_TRUE(cuda.ok()) << cuda.status();
  Backend& b = **cuda;
  EXPECT_EQ(b.Allocate(DType::kF32, {4, -1}).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(b.Allocate(DType::kF32, {int64_t{1} << 40, int64_t{1} << 20}).status().code(),
            absl::StatusCode::kInvalidArgument);
  const std::string rows = testing::RandomGgmlRows(GgmlType::kQ8_0, 3, 64, 1);
  auto table = b.PrepareQuantizedLinear(GgmlType::kQ8_0, rows.data(), 3, 64);
  ASSERT_TRUE(table.ok()) << table.status();
  EXPECT_EQ(b.PrepareQuantizedLinear(GgmlType::kQ8_0, rows.data(), 3, 48).status().code(),
            absl::StatusCode::kInvalidArgument);  // not whole blocks
  auto ids = b.Allocate(DType::kI32, {2});
  auto out = b.Allocate(DType::kF32, {2, 64});
  ASSERT_TRUE(ids.ok() && out.ok());
  const int32_t bad[] = {1, 3};
  ASSERT_TRUE(b.CopyFromHost(bad, DType::kI32, 2, *ids, 0).ok());
  (void)TakeReport();
  EXPECT_EQ(b.GatherRows(*table, *ids, *out).code(), absl::StatusCode::kInvalidArgument);
  auto q = b.Allocate(DType::kF32, {1, 64});
  auto k = b.Allocate(DType::kF32, {8, 64});
  ASSERT_TRUE(q.ok() && k.ok());
  const Backend::AttentionRow too_long[] = {{&*k, &*k, 9}};
  EXPECT_EQ(b.CachedAttention(*q, too_long, 1, 1, 64, *out).code(),
            absl::StatusCode::kInvalidArgument);
  const Backend::RowDestination past_the_end[] = {{&*k, 8}};
  EXPECT_EQ(b.ScatterRows(*q, past_the_end).code(), absl::StatusCode::kInvalidArgument);
  const int32_t positions[] = {0};
  EXPECT_EQ(b.Rope(*q, 1, -2, positions, 10000.0f, RopeStyle::kAdjacent).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(TakeReport().launches, 0);
}

// The decoder's checks (tests/gpu/decoder_backend_checks.h) on the emulated backend; cuda_test
// runs the same on a device.
TEST(EmulatedCudaDecoder, TinyModelsMatchTheReference) {
  EmulatorScope scope;
  testing::TempDir dir;
  // One layer each: the emulator runs every thread as a fiber.
  auto problems = testing::TinyDecodersAgainstTheReference(&MakeEmulated, 1, dir.path());
  ASSERT_TRUE(problems.ok()) << problems.status();
  EXPECT_TRUE(problems->empty()) << absl::StrJoin(*problems, "\n");
}

TEST(EmulatedCudaDecoder, AssemblyMatchesTheCpu) {
  EmulatorScope scope;
  testing::TempDir dir;
  auto problems = testing::AssemblyAgainstTheCpu(&MakeEmulated, dir.path());
  ASSERT_TRUE(problems.ok()) << problems.status();
  EXPECT_TRUE(problems->empty()) << absl::StrJoin(*problems, "\n");
}

TEST(EmulatedCudaDecoder, TheDeviceTierServesRepeatedEntriesIdentically) {
  EmulatorScope scope;
  testing::TempDir dir;
  auto problems = testing::DeviceTierRepeats(&MakeEmulated, dir.path());
  ASSERT_TRUE(problems.ok()) << problems.status();
  EXPECT_TRUE(problems->empty()) << absl::StrJoin(*problems, "\n");
}

TEST(EmulatedCudaEncoder, RealMiniLmMatchesTheReference) {
  EmulatorScope scope;
  const std::string model = testing::RealModelDir("all-minilm-l6-v2");
  if (model.empty()) GTEST_SKIP() << "all-minilm-l6-v2 not fetched (run tools/fetch-models.sh)";
  for (DType dtype : {DType::kF16, DType::kF32}) {
    auto worst = testing::MiniLmWorstCosine(&MakeEmulated, dtype, model, SIZE_MAX);
    ASSERT_TRUE(worst.ok()) << worst.status();
    EXPECT_GE(*worst, 0.999) << DTypeName(dtype);
    std::printf("emulated CUDA %s: worst cosine vs sentence-transformers over the fixture: %.7f\n",
                std::string(DTypeName(dtype)).c_str(), *worst);
  }
}

// ---- the emulator finds what it says it finds ---------------------------------------------------
constexpr int kThreads = 64;

// Each thread publishes its index, then reads its right neighbour's: with or without the barrier.
__global__ void NeighbourKernel(float* out, int with_barrier) {
  STRATA_SHARED(float, slot, kThreads);
  slot[threadIdx.x] = static_cast<float>(threadIdx.x);
  if (with_barrier) __syncthreads();
  out[threadIdx.x] = slot[(threadIdx.x + 1) % kThreads];
}

__global__ void DivergentBarrierKernel(float* out) {
  if (threadIdx.x < 16) __syncthreads();
  out[threadIdx.x] = 1.0f;
}

std::vector<float> RunNeighbour(Order order, int with_barrier) {
  SetOrder(order);
  float* d = nullptr;
  EXPECT_EQ(cudaMalloc(reinterpret_cast<void**>(&d), kThreads * sizeof(float)), cudaSuccess);
  STRATA_LAUNCH(NeighbourKernel, 1, kThreads, 0, nullptr)(d, with_barrier);
  std::vector<float> out(kThreads);
  EXPECT_EQ(
      cudaMemcpyAsync(out.data(), d, kThreads * sizeof(float), cudaMemcpyDeviceToHost, nullptr),
      cudaSuccess);
  EXPECT_EQ(cudaFree(d), cudaSuccess);
  SetOrder(Order::kForward);
  return out;
}

TEST(CudaEmulator, AMissingBarrierShowsAsAnOrderDependentResult) {
  EmulatorScope scope;
  const auto fwd = RunNeighbour(Order::kForward, 1), rev = RunNeighbour(Order::kReverse, 1);
  for (int i = 0; i < kThreads; ++i) {
    EXPECT_EQ(fwd[i], static_cast<float>((i + 1) % kThreads));
    EXPECT_EQ(rev[i], fwd[i]);
  }
  // Without it, the forward order reads slots before their writers ran; the reverse order not.
  const auto racy_fwd = RunNeighbour(Order::kForward, 0);
  const auto racy_rev = RunNeighbour(Order::kReverse, 0);
  EXPECT_NE(0, std::memcmp(racy_fwd.data(), racy_rev.data(), kThreads * sizeof(float)));
}

TEST(CudaEmulator, ADivergentBarrierIsALaunchFailure) {
  (void)TakeReport();
  float* d = nullptr;
  ASSERT_EQ(cudaMalloc(reinterpret_cast<void**>(&d), kThreads * sizeof(float)), cudaSuccess);
  STRATA_LAUNCH(DivergentBarrierKernel, 1, kThreads, 0, nullptr)(d);
  EXPECT_EQ(cudaStreamSynchronize(nullptr), cudaErrorLaunchFailure);  // sticky, as on a device
  EXPECT_EQ(cudaStreamSynchronize(nullptr), cudaErrorLaunchFailure);
  const Report r = TakeReport();
  ASSERT_EQ(r.faults.size(), 1u);
  EXPECT_NE(r.faults[0].find("16 of 64 threads wait at a barrier"), std::string::npos)
      << r.faults[0];
  EXPECT_EQ(cudaFree(d), cudaSuccess);
}

TEST(CudaEmulator, LaunchesCudaWouldRefuseSetTheLastError) {
  (void)TakeReport();
  float* d = nullptr;
  ASSERT_EQ(cudaMalloc(reinterpret_cast<void**>(&d), 4096 * sizeof(float)), cudaSuccess);
  STRATA_LAUNCH(DivergentBarrierKernel, 1, 2048, 0, nullptr)(d);  // over 1,024 threads
  EXPECT_EQ(cudaGetLastError(), cudaErrorInvalidConfiguration);
  EXPECT_EQ(cudaGetLastError(), cudaSuccess);                   // cleared by the call
  STRATA_LAUNCH(DivergentBarrierKernel, 0, 32, 0, nullptr)(d);  // an empty grid
  EXPECT_EQ(cudaGetLastError(), cudaErrorInvalidConfiguration);
  STRATA_LAUNCH(NeighbourKernel, 1, kThreads, 49 * 1024, nullptr)(d, 1);  // over 48 KiB
  EXPECT_EQ(cudaGetLastError(), cudaErrorInvalidConfiguration);
  const Report r = TakeReport();
  EXPECT_EQ(r.launches, 0);
  EXPECT_EQ(r.faults.size(), 3u);
  // A copy from host memory that claims to come from the device is refused.
  std::vector<float> host(8);
  EXPECT_EQ(cudaMemcpyAsync(host.data(), host.data() + 4, 4 * sizeof(float), cudaMemcpyDeviceToHost,
                            nullptr),
            cudaErrorInvalidValue);
  EXPECT_EQ(TakeReport().faults.size(), 1u);
  EXPECT_EQ(cudaFree(d), cudaSuccess);
}

TEST(CudaEmulator, GemmExIsColumnMajorAsDocumented) {
  EmulatorScope scope;
  cublasHandle_t h = nullptr;
  ASSERT_EQ(cublasCreate(&h), CUBLAS_STATUS_SUCCESS);
  // Column-major A (2 x 3) = [1 2 3; 4 5 6] is stored 1 4 2 5 3 6; B (3 x 2) = [1 0; 0 1; 1 1]
  // is stored 1 0 1 0 1 1. A·B = [4 5; 10 11], stored 4 10 5 11.
  const float a[] = {1, 4, 2, 5, 3, 6}, b[] = {1, 0, 1, 0, 1, 1};
  float *da = nullptr, *db = nullptr, *dc = nullptr;
  ASSERT_EQ(cudaMalloc(reinterpret_cast<void**>(&da), sizeof a), cudaSuccess);
  ASSERT_EQ(cudaMalloc(reinterpret_cast<void**>(&db), sizeof b), cudaSuccess);
  ASSERT_EQ(cudaMalloc(reinterpret_cast<void**>(&dc), 4 * sizeof(float)), cudaSuccess);
  ASSERT_EQ(cudaMemcpyAsync(da, a, sizeof a, cudaMemcpyHostToDevice, nullptr), cudaSuccess);
  ASSERT_EQ(cudaMemcpyAsync(db, b, sizeof b, cudaMemcpyHostToDevice, nullptr), cudaSuccess);
  const float one = 1, zero = 0;
  ASSERT_EQ(
      cublasGemmEx(h, CUBLAS_OP_N, CUBLAS_OP_N, 2, 2, 3, &one, da, CUDA_R_32F, 2, db, CUDA_R_32F, 3,
                   &zero, dc, CUDA_R_32F, 2, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
      CUBLAS_STATUS_SUCCESS);
  float c[4];
  ASSERT_EQ(cudaMemcpyAsync(c, dc, sizeof c, cudaMemcpyDeviceToHost, nullptr), cudaSuccess);
  EXPECT_EQ(std::vector<float>(c, c + 4), (std::vector<float>{4, 10, 5, 11}));
  // Aᵀ (stored as A, 2 x 3, read as 3 x 2) · A: a 3 x 3 result; lda below A's stored rows is
  // refused, as cuBLAS documents.
  EXPECT_EQ(
      cublasGemmEx(h, CUBLAS_OP_T, CUBLAS_OP_N, 3, 3, 2, &one, da, CUDA_R_32F, 1, da, CUDA_R_32F, 2,
                   &zero, dc, CUDA_R_32F, 3, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
      CUBLAS_STATUS_INVALID_VALUE);
  (void)TakeReport();
  EXPECT_EQ(cublasDestroy(h), CUBLAS_STATUS_SUCCESS);
  for (float* p : {da, db, dc}) EXPECT_EQ(cudaFree(p), cudaSuccess);
}

}  // namespace
}  // namespace strata::gpu
