#include "gpu/encoder.h"

#include <cmath>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "storage/scoped_fd.h"
#include "tests/gpu/tiny_model.h"
#include "tests/test_util.h"

namespace strata::gpu {
namespace {

using ::testing::HasSubstr;

const std::vector<std::string> kTexts = {
    "the cat sat on the mat.",
    "vector search",
    "Unable!",
    "",
    "index the data base, query it",
    "a b c d e f g h i j k l m n o p q r s t u v w x y z 0 1 2 3 4 5 6 7 8 9",
    "searching indexed vectors",
    "zzz qqq"};

double MaxAbsDiff(const float* a, const std::vector<float>& b) {
  double m = 0;
  for (size_t i = 0; i < b.size(); ++i) m = std::max(m, std::abs(static_cast<double>(a[i]) - b[i]));
  return m;
}

class TinyEncoder : public ::testing::TestWithParam<bool /*cls pooling*/> {};

TEST_P(TinyEncoder, CpuMatchesTheReferenceForward) {
  testing::TempDir dir;
  testing::TinyBertSpec spec;
  spec.cls_pooling = GetParam();
  testing::TinyWeights weights;
  ASSERT_TRUE(testing::WriteTinyBert(dir.path(), spec, &weights).ok());
  EncoderOptions opts;
  opts.backend = BackendChoice::kCpu;
  opts.matmul = MatmulPrecision::kNative;  // the reference's arithmetic, to 2e-5
  auto enc = Encoder::Open(dir.path(), opts);
  ASSERT_TRUE(enc.ok()) << enc.status();
  EXPECT_EQ((*enc)->dimension(), spec.hidden);
  EXPECT_EQ((*enc)->config().pooling, spec.cls_pooling ? Pooling::kCls : Pooling::kMean);
  EmbedStats stats;
  auto out = (*enc)->Embed(kTexts, &stats);
  ASSERT_TRUE(out.ok()) << out.status();
  ASSERT_EQ(out->size(), kTexts.size() * spec.hidden);
  EXPECT_EQ(stats.texts, static_cast<int64_t>(kTexts.size()));
  for (size_t i = 0; i < kTexts.size(); ++i) {
    const std::vector<int32_t> ids = (*enc)->Tokenize(kTexts[i]);
    const std::vector<float> want = testing::ReferenceEmbedding(spec, weights, ids);
    EXPECT_LT(MaxAbsDiff(out->data() + i * spec.hidden, want), 2e-5) << kTexts[i];
    double norm = 0;
    for (int j = 0; j < spec.hidden; ++j)
      norm += out->at(i * spec.hidden + j) * out->at(i * spec.hidden + j);
    EXPECT_NEAR(norm, 1.0, 1e-5);
  }
}

INSTANTIATE_TEST_SUITE_P(Pooling, TinyEncoder, ::testing::Bool(),
                         [](const auto& info) { return info.param ? "Cls" : "Mean"; });

TEST(Encoder, ResultsDoNotDependOnBatchingOrOrder) {
  testing::TempDir dir;
  testing::TinyBertSpec spec;
  testing::TinyWeights weights;
  ASSERT_TRUE(testing::WriteTinyBert(dir.path(), spec, &weights).ok());
  EncoderOptions opts;
  opts.backend = BackendChoice::kCpu;
  auto all = Encoder::Open(dir.path(), opts);
  opts.max_batch_tokens = 1;  // raised to max_length: many small passes
  auto small = Encoder::Open(dir.path(), opts);
  ASSERT_TRUE(all.ok() && small.ok());
  EmbedStats s1, s2;
  auto a = (*all)->Embed(kTexts, &s1);
  auto b = (*small)->Embed(kTexts, &s2);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(s1.passes, 1);
  EXPECT_GT(s2.passes, 1);
  const int h = spec.hidden;
  for (size_t i = 0; i < kTexts.size(); ++i) {
    auto one = (*all)->Embed({kTexts[i]});
    ASSERT_TRUE(one.ok());
    for (int j = 0; j < h; ++j) {
      EXPECT_NEAR(a->at(i * h + j), one->at(j), 1e-5) << kTexts[i];
      EXPECT_NEAR(b->at(i * h + j), one->at(j), 1e-5) << kTexts[i];
    }
  }
}

TEST(Encoder, TruncatesLongTextsToTheModelLength) {
  testing::TempDir dir;
  testing::TinyBertSpec spec;
  spec.max_positions = 16;
  testing::TinyWeights weights;
  ASSERT_TRUE(testing::WriteTinyBert(dir.path(), spec, &weights).ok());
  EncoderOptions opts;
  opts.backend = BackendChoice::kCpu;
  opts.matmul = MatmulPrecision::kNative;  // the reference's arithmetic, to 2e-5
  auto enc = Encoder::Open(dir.path(), opts);
  ASSERT_TRUE(enc.ok());
  std::string longer;
  for (int i = 0; i < 40; ++i) longer += "cat ";
  EmbedStats stats;
  auto out = (*enc)->Embed({longer}, &stats);
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(stats.truncated, 1);
  EXPECT_EQ(stats.tokens, 16);
  const auto ids = (*enc)->Tokenize(longer);
  ASSERT_EQ(ids.size(), 16u);
  EXPECT_LT(MaxAbsDiff(out->data(), testing::ReferenceEmbedding(spec, weights, ids)), 2e-5);
  // Sequences given directly are checked, not cut.
  std::vector<int32_t> too_long(17, 5);
  std::vector<float> buf(static_cast<size_t>(spec.hidden));
  EXPECT_TRUE(absl::IsInvalidArgument((*enc)->EmbedTokens({too_long}, buf.data())));
  EXPECT_TRUE(absl::IsInvalidArgument((*enc)->EmbedTokens({{2, 100000, 3}}, buf.data())));
}

TEST(Encoder, HalfPrecisionWeightsLoad) {
  testing::TempDir dir;
  testing::TinyBertSpec spec;
  spec.dtype = DType::kF16;
  testing::TinyWeights weights;
  ASSERT_TRUE(testing::WriteTinyBert(dir.path(), spec, &weights).ok());
  EncoderOptions opts;
  opts.backend = BackendChoice::kCpu;
  opts.matmul = MatmulPrecision::kNative;  // the reference's arithmetic, to 2e-5
  auto enc = Encoder::Open(dir.path(), opts);
  ASSERT_TRUE(enc.ok()) << enc.status();
  auto out = (*enc)->Embed({"the cat"});
  ASSERT_TRUE(out.ok());
  EXPECT_LT(MaxAbsDiff(out->data(),
                       testing::ReferenceEmbedding(spec, weights, (*enc)->Tokenize("the cat"))),
            2e-5);
}

// Opens a tiny model with `omit`ted or `misshape`d tensors; the error it gives.
absl::Status OpenBroken(std::vector<std::string> omit, std::vector<std::string> misshape) {
  testing::TempDir dir;
  testing::TinyBertSpec spec;
  spec.omit = std::move(omit);
  spec.misshape = std::move(misshape);
  testing::TinyWeights w;
  absl::Status written = testing::WriteTinyBert(dir.path(), spec, &w);
  if (!written.ok()) return written;
  EncoderOptions opts;
  opts.backend = BackendChoice::kCpu;
  return Encoder::Open(dir.path(), opts).status();
}

TEST(Encoder, LoaderErrorsNameTheProblem) {
  EncoderOptions opts;
  opts.backend = BackendChoice::kCpu;
  absl::Status s = OpenBroken({"encoder.layer.1.output.dense.bias"}, {});
  EXPECT_TRUE(absl::IsNotFound(s)) << s;
  EXPECT_THAT(s.message(), HasSubstr("encoder.layer.1.output.dense.bias"));
  s = OpenBroken({}, {"encoder.layer.0.intermediate.dense.weight"});
  EXPECT_TRUE(absl::IsInvalidArgument(s)) << s;
  EXPECT_THAT(s.message(), HasSubstr("encoder.layer.0.intermediate.dense.weight"));
  EXPECT_THAT(s.message(), HasSubstr("[64, 33]"));
  {
    testing::TempDir dir;
    auto s = Encoder::Open(dir.path(), opts).status();
    EXPECT_TRUE(absl::IsNotFound(s)) << s;
    EXPECT_THAT(s.message(), HasSubstr("config.json"));
  }
  {
    testing::TempDir dir;
    testing::TinyBertSpec spec;
    testing::TinyWeights w;
    ASSERT_TRUE(testing::WriteTinyBert(dir.path(), spec, &w).ok());
    std::string cfg = *ReadWholeFile(dir.File("config.json"));
    cfg.replace(cfg.find("\"gelu\""), 6, "\"relu\"");
    ASSERT_TRUE(
        WriteFileAtomic(dir.File("config.json"), absl::Span<const char>(cfg.data(), cfg.size()))
            .ok());
    auto s = Encoder::Open(dir.path(), opts).status();
    EXPECT_TRUE(absl::IsInvalidArgument(s)) << s;
    EXPECT_THAT(s.message(), HasSubstr("relu"));
  }
}

TEST(Encoder, ForcingCudaWithoutADeviceSaysWhy) {
  testing::TempDir dir;
  testing::TinyBertSpec spec;
  testing::TinyWeights w;
  ASSERT_TRUE(testing::WriteTinyBert(dir.path(), spec, &w).ok());
  EncoderOptions opts;
  opts.backend = BackendChoice::kCuda;
  auto enc = Encoder::Open(dir.path(), opts);
  if (enc.ok()) GTEST_SKIP() << "this machine has a CUDA device";
  EXPECT_TRUE(absl::IsFailedPrecondition(enc.status())) << enc.status();
  EXPECT_THAT(enc.status().message(), HasSubstr("CUDA"));
}

// all-minilm-l6-v2 against the package's own PyTorch code (sentence-transformers, fp32 CPU),
// recorded by tests/gpu/make_fixtures.py, in every matmul precision this CPU runs: f32 must give
// the reference's embeddings (cosine >= 0.99999), bf16 cosine >= 0.999 (issue 16's floor), int8
// >= 0.98 (per-row activation scales meet BERT's outlier features: 0.984 measured; reported, never
// a default).
TEST(Encoder, RealMiniLmMatchesTheReference) {
  const std::string model = testing::RealModelDir("all-minilm-l6-v2");
  if (model.empty()) GTEST_SKIP() << "all-minilm-l6-v2 not fetched (run tools/fetch-models.sh)";
  const nlohmann::json fixture =
      nlohmann::json::parse(*ReadWholeFile(testing::FixturePath("minilm_reference.json")));
  std::vector<std::string> texts;
  for (const auto& c : fixture["cases"]) texts.push_back(c["text"].get<std::string>());
  ASSERT_GE(texts.size(), 50u);
  const struct {
    MatmulPrecision precision;
    double floor;
  } kCases[] = {{MatmulPrecision::kNative, 0.99999},
                {MatmulPrecision::kBF16, 0.999},
                {MatmulPrecision::kInt8, 0.98}};
  for (const auto& c : kCases) {
    const std::string name(MatmulPrecisionName(c.precision));
    SCOPED_TRACE(name);
    EncoderOptions opts;
    opts.backend = BackendChoice::kCpu;
    opts.matmul = c.precision;
    auto enc = Encoder::Open(model, opts);
    if (!enc.ok() && absl::IsFailedPrecondition(enc.status())) {
      std::printf("%s: not on this CPU (%s)\n", name.c_str(), enc.status().ToString().c_str());
      continue;
    }
    ASSERT_TRUE(enc.ok()) << enc.status();
    EXPECT_EQ((*enc)->dimension(), 384);
    EXPECT_EQ((*enc)->max_length(), 256);
    auto out = (*enc)->Embed(texts);
    ASSERT_TRUE(out.ok()) << out.status();
    double worst = 1;
    for (size_t i = 0; i < texts.size(); ++i) {
      const std::vector<float> want = fixture["cases"][i]["embedding"].get<std::vector<float>>();
      const double cos = testing::Cosine(out->data() + i * 384, want.data(), 384);
      worst = std::min(worst, cos);
      EXPECT_GE(cos, c.floor) << texts[i];
    }
    RecordProperty("worst_cosine_" + name, std::to_string(worst));
    std::printf("%s (%s): worst cosine vs sentence-transformers over %zu sentences: %.7f\n",
                name.c_str(), (*enc)->gemm_path().c_str(), texts.size(), worst);
  }
}

// The default precision is the backend's, and an impossible one is refused at Open, by name.
TEST(Encoder, MatmulPrecisionDefaultsToTheBackendsAndRefusesWhatTheCpuLacks) {
  testing::TempDir dir;
  testing::TinyBertSpec spec;
  testing::TinyWeights weights;
  ASSERT_TRUE(testing::WriteTinyBert(dir.path(), spec, &weights).ok());
  EncoderOptions opts;
  opts.backend = BackendChoice::kCpu;
  auto enc = Encoder::Open(dir.path(), opts);
  ASSERT_TRUE(enc.ok()) << enc.status();
  EXPECT_EQ((*enc)->matmul(), CreateCpuBackend()->DefaultMatmul());
  EXPECT_NE((*enc)->backend_name().find("GEMM "), std::string::npos) << (*enc)->backend_name();
  auto cpu = CreateCpuBackend();
  for (MatmulPrecision p : {MatmulPrecision::kBF16, MatmulPrecision::kInt8}) {
    opts.matmul = p;
    auto e = Encoder::Open(dir.path(), opts);
    if (cpu->CheckMatmul(p).ok()) {
      ASSERT_TRUE(e.ok()) << e.status();
      // Same texts, lower precision: still the same embeddings to within the quantisation.
      auto got = (*e)->Embed(kTexts);
      ASSERT_TRUE(got.ok());
      for (size_t i = 0; i < kTexts.size(); ++i) {
        const auto want = testing::ReferenceEmbedding(spec, weights, (*e)->Tokenize(kTexts[i]));
        EXPECT_GE(testing::Cosine(got->data() + i * spec.hidden, want.data(), spec.hidden), 0.99)
            << MatmulPrecisionName(p) << " " << kTexts[i];
      }
    } else {
      EXPECT_TRUE(absl::IsFailedPrecondition(e.status())) << e.status();
      EXPECT_NE(e.status().message().find(std::string(MatmulPrecisionName(p))), std::string::npos);
    }
  }
}

}  // namespace
}  // namespace strata::gpu
