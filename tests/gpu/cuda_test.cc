// The CUDA backend against the CPU backend (every op, F32, F16 and BF16), the encoder on CUDA
// against the reference forward and the sentence-transformers fixture, and the decoder against
// its references. Label `gpu`: skips without a device. (tests/gpu/cuda_emu_test.cc runs the same
// checks on every machine through the CUDA emulator.)
#include <cmath>
#include <cstdio>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "gpu/backend.h"
#include "gpu/decoder.h"
#include "gpu/device.h"
#include "gtest/gtest.h"
#include "tests/gpu/backend_ops.h"
#include "tests/gpu/decoder_backend_checks.h"
#include "tests/gpu/decoder_fixture.h"
#include "tests/gpu/tiny_decoder.h"
#include "tests/gpu/tiny_model.h"
#include "tests/test_util.h"

namespace strata::gpu {
namespace {

absl::StatusOr<std::unique_ptr<Backend>> MakeCuda() { return CreateBackend(BackendChoice::kCuda); }

bool HaveDevice() {
  auto devices = ListDevices();
  return devices.ok() && !devices->empty();
}

#define SKIP_WITHOUT_CUDA() \
  if (!HaveDevice())        \
  GTEST_SKIP() << (BuiltWithCuda() ? "no CUDA device on this machine" : "built without CUDA")

class CudaOps : public ::testing::TestWithParam<DType> {};

TEST_P(CudaOps, EveryOpMatchesTheCpuBackend) {
  SKIP_WITHOUT_CUDA();
  auto cuda = MakeCuda();
  ASSERT_TRUE(cuda.ok()) << cuda.status();
  auto cmp = testing::CompareOpsWithCpu(**cuda, GetParam(), 7);
  ASSERT_TRUE(cmp.ok()) << cmp.status();
  for (const auto& c : *cmp) EXPECT_LT(c.worst, testing::OpTolerance(GetParam())) << c.op;
}

INSTANTIATE_TEST_SUITE_P(DTypes, CudaOps, ::testing::Values(DType::kF32, DType::kF16, DType::kBF16),
                         [](const auto& info) { return std::string(DTypeName(info.param)); });

TEST(CudaEncoder, TinyModelMatchesTheReference) {
  SKIP_WITHOUT_CUDA();
  testing::TempDir dir;
  for (DType dtype : {DType::kF32, DType::kF16}) {
    auto worst = testing::TinyEncoderWorstCosine(&MakeCuda, dtype, dir.path());
    ASSERT_TRUE(worst.ok()) << worst.status();
    EXPECT_GE(*worst, dtype == DType::kF32 ? 0.99999 : 0.999) << DTypeName(dtype);
  }
}

TEST(CudaEncoder, RealMiniLmMatchesTheReference) {
  SKIP_WITHOUT_CUDA();
  const std::string model = testing::RealModelDir("all-minilm-l6-v2");
  if (model.empty()) GTEST_SKIP() << "all-minilm-l6-v2 not fetched (run tools/fetch-models.sh)";
  for (DType dtype : {DType::kF16, DType::kF32}) {
    auto worst = testing::MiniLmWorstCosine(&MakeCuda, dtype, model, SIZE_MAX);
    ASSERT_TRUE(worst.ok()) << worst.status();
    EXPECT_GE(*worst, 0.999) << DTypeName(dtype);
    std::printf("CUDA %s: worst cosine vs sentence-transformers over the fixture: %.7f\n",
                std::string(DTypeName(dtype)).c_str(), *worst);
  }
}

// The decoder's checks (tests/gpu/decoder_backend_checks.h), as cuda_emu_test runs them through
// the emulator, and SmolLM2 against the float64 NumPy fixture with decoder_test's bounds.
TEST(CudaDecoder, TinyModelsMatchTheReference) {
  SKIP_WITHOUT_CUDA();
  testing::TempDir dir;
  auto problems = testing::TinyDecodersAgainstTheReference(&MakeCuda, 2, dir.path());
  ASSERT_TRUE(problems.ok()) << problems.status();
  EXPECT_TRUE(problems->empty()) << absl::StrJoin(*problems, "\n");
}

TEST(CudaDecoder, AssemblyMatchesTheCpu) {
  SKIP_WITHOUT_CUDA();
  testing::TempDir dir;
  auto problems = testing::AssemblyAgainstTheCpu(&MakeCuda, dir.path());
  ASSERT_TRUE(problems.ok()) << problems.status();
  EXPECT_TRUE(problems->empty()) << absl::StrJoin(*problems, "\n");
}

TEST(CudaDecoder, TheDeviceTierServesRepeatedEntriesIdentically) {
  SKIP_WITHOUT_CUDA();
  testing::TempDir dir;
  auto problems = testing::DeviceTierRepeats(&MakeCuda, dir.path());
  ASSERT_TRUE(problems.ok()) << problems.status();
  EXPECT_TRUE(problems->empty()) << absl::StrJoin(*problems, "\n");
}

TEST(CudaDecoder, SmolLm2MatchesTheNumpyReference) {
  SKIP_WITHOUT_CUDA();
  const std::string path =
      testing::RealModelFile("smollm2-135m-instruct", "SmolLM2-135M-Instruct.Q4_1.gguf");
  if (path.empty()) GTEST_SKIP() << "SmolLM2 not fetched (tools/fetch-models.sh)";
  DecoderOptions options;
  options.backend = BackendChoice::kCuda;
  auto d = Decoder::Open(path, options);
  ASSERT_TRUE(d.ok()) << d.status();
  auto check = testing::CheckSmolLm2Fixture(**d);
  ASSERT_TRUE(check.ok()) << check.status();
  EXPECT_EQ(check->ids_mismatches, 0);
  EXPECT_EQ(check->argmax_mismatches, 0);
  EXPECT_GT(check->positions, 150);
  EXPECT_LT(check->worst, 0.02);
  std::printf(
      "SmolLM2 on CUDA vs float64 reference: %d positions, %d top-1 mismatches, worst "
      "top-5 |d logprob| %.5f\n",
      check->positions, check->argmax_mismatches, check->worst);
}

}  // namespace
}  // namespace strata::gpu
