// The CUDA backend against the CPU backend (every op, F32 and F16), and the encoder on CUDA
// against the CPU and the sentence-transformers reference. Label `gpu`: skips without a device.
#include <cmath>

#include "gpu/backend.h"
#include "gpu/device.h"
#include "gpu/encoder.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "storage/scoped_fd.h"
#include "tests/gpu/backend_ops.h"
#include "tests/gpu/tiny_model.h"
#include "tests/test_util.h"

namespace strata::gpu {
namespace {

std::unique_ptr<Backend> CudaOrSkip() {
  auto devices = ListDevices();
  if (!devices.ok() || devices->empty()) return nullptr;
  auto be = CreateBackend(BackendChoice::kCuda);
  EXPECT_TRUE(be.ok()) << be.status();
  return be.ok() ? std::move(be).value() : nullptr;
}

#define SKIP_WITHOUT_CUDA(be) \
  auto be = CudaOrSkip();     \
  if (be == nullptr)          \
  GTEST_SKIP() << (BuiltWithCuda() ? "no CUDA device on this machine" : "built without CUDA")

double Cosine(const float* a, const float* b, int n) {
  double ab = 0, aa = 0, bb = 0;
  for (int i = 0; i < n; ++i) {
    ab += double(a[i]) * b[i];
    aa += double(a[i]) * a[i];
    bb += double(b[i]) * b[i];
  }
  return ab / std::sqrt(aa * bb);
}

class CudaOps : public ::testing::TestWithParam<DType> {};

TEST_P(CudaOps, EveryOpMatchesTheCpuBackend) {
  SKIP_WITHOUT_CUDA(cuda);
  auto cpu = CreateCpuBackend();
  const DType dtype = GetParam();
  // F32 differs from the CPU by summation order only; F16 and BF16 by their 11- and 8-bit
  // mantissas on inputs, outputs and stored intermediates.
  const double tol = dtype == DType::kF32 ? 2e-4 : dtype == DType::kF16 ? 3e-2 : 8e-2;
  for (const testing::OpCase& c : testing::AllOpCases(7)) {
    SCOPED_TRACE(c.op);
    auto want = testing::RunOp(*cpu, DType::kF32, c);
    auto got = testing::RunOp(*cuda, dtype, c);
    ASSERT_TRUE(want.ok() && got.ok()) << want.status() << got.status();
    ASSERT_EQ(want->size(), got->size());
    double worst = 0;
    for (size_t i = 0; i < want->size(); ++i) {
      worst = std::max(
          worst, double(std::abs((*want)[i] - (*got)[i]) / std::max(1.0f, std::abs((*want)[i]))));
    }
    EXPECT_LT(worst, tol) << c.op;
  }
}

INSTANTIATE_TEST_SUITE_P(DTypes, CudaOps, ::testing::Values(DType::kF32, DType::kF16, DType::kBF16),
                         [](const auto& info) { return std::string(DTypeName(info.param)); });

TEST(CudaEncoder, TinyModelMatchesTheReference) {
  SKIP_WITHOUT_CUDA(probe);
  testing::TempDir dir;
  testing::TinyBertSpec spec;
  testing::TinyWeights weights;
  ASSERT_TRUE(testing::WriteTinyBert(dir.path(), spec, &weights).ok());
  for (DType dtype : {DType::kF32, DType::kF16}) {
    EncoderOptions opts;
    opts.backend = BackendChoice::kCuda;
    opts.dtype = dtype;
    auto enc = Encoder::Open(dir.path(), opts);
    ASSERT_TRUE(enc.ok()) << enc.status();
    const std::vector<std::string> texts = {"the cat sat on the mat.", "vector search", "",
                                            "index the data base, query it"};
    auto out = (*enc)->Embed(texts);
    ASSERT_TRUE(out.ok()) << out.status();
    for (size_t i = 0; i < texts.size(); ++i) {
      const auto want = testing::ReferenceEmbedding(spec, weights, (*enc)->Tokenize(texts[i]));
      EXPECT_GE(Cosine(out->data() + i * spec.hidden, want.data(), spec.hidden),
                dtype == DType::kF32 ? 0.99999 : 0.999)
          << texts[i] << " " << DTypeName(dtype);
    }
  }
}

TEST(CudaEncoder, RealMiniLmMatchesTheReference) {
  SKIP_WITHOUT_CUDA(probe);
  const std::string model = testing::RealModelDir("all-minilm-l6-v2");
  if (model.empty()) GTEST_SKIP() << "all-minilm-l6-v2 not fetched (run tools/fetch-models.sh)";
  const nlohmann::json fixture =
      nlohmann::json::parse(*ReadWholeFile(testing::FixturePath("minilm_reference.json")));
  std::vector<std::string> texts;
  for (const auto& c : fixture["cases"]) texts.push_back(c["text"].get<std::string>());
  for (DType dtype : {DType::kF16, DType::kF32}) {
    EncoderOptions opts;
    opts.backend = BackendChoice::kCuda;
    opts.dtype = dtype;
    auto enc = Encoder::Open(model, opts);
    ASSERT_TRUE(enc.ok()) << enc.status();
    auto out = (*enc)->Embed(texts);
    ASSERT_TRUE(out.ok()) << out.status();
    double worst = 1;
    for (size_t i = 0; i < texts.size(); ++i) {
      const auto want = fixture["cases"][i]["embedding"].get<std::vector<float>>();
      const double cos = Cosine(out->data() + i * 384, want.data(), 384);
      worst = std::min(worst, cos);
      EXPECT_GE(cos, 0.999) << texts[i];
    }
    std::printf("CUDA %s: worst cosine vs sentence-transformers over %zu sentences: %.7f\n",
                std::string(DTypeName(dtype)).c_str(), texts.size(), worst);
  }
}

}  // namespace
}  // namespace strata::gpu
