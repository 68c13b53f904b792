// GGUF reading and GGUF's block types: values against the `gguf` package's dequantisers
// (tests/gpu/data/ggml_blocks.json, tools/make-decoder-fixtures.py), every kernel against the
// scalar reference, and files damaged every way we could think of.
#include "gpu/gguf.h"

#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <random>

#include "absl/strings/escaping.h"
#include "gpu/ggml_type.h"
#include "gpu/internal/quant_kernels.h"
#include "nlohmann/json.hpp"
#include "storage/scoped_fd.h"
#include "tests/gpu/tiny_decoder.h"
#include "tests/gpu/tiny_model.h"
#include "tests/test_util.h"

namespace strata::gpu {
namespace {

std::optional<GgmlType> TypeByName(const std::string& name) {
  for (uint32_t code = 0; code < 64; ++code) {
    if (auto t = GgmlTypeFromCode(code); t && GgmlTypeName(*t) == name) return t;
  }
  return std::nullopt;
}

TEST(GgmlType, MatchesTheGgufPackagesDequantisers) {
  std::ifstream in(testing::FixturePath("ggml_blocks.json"));
  ASSERT_TRUE(in.good());
  const nlohmann::json j = nlohmann::json::parse(in);
  int types = 0;
  for (const auto& c : j["cases"]) {
    const std::string name = c["type"];
    SCOPED_TRACE(name);
    std::optional<GgmlType> t = TypeByName(name);
    ASSERT_TRUE(t.has_value());
    const std::string bytes = absl::HexStringToBytes(c["hex"].get<std::string>());
    const std::vector<float> want = c["values"];
    ASSERT_EQ(GgmlRowBytes(*t, static_cast<int64_t>(want.size())), bytes.size());
    for (const cpu::QuantKernels* k : {&cpu::ScalarQuantKernels(), &cpu::BestQuantKernels()}) {
      std::vector<float> got(want.size());
      k->dequantize_row(*t, bytes.data(), static_cast<int64_t>(got.size()), got.data());
      for (size_t i = 0; i < want.size(); ++i) {
        ASSERT_NEAR(got[i], want[i], 1e-6f * std::max(1.0f, std::fabs(want[i])))
            << k->name << " value " << i;
      }
    }
    ++types;
  }
  EXPECT_EQ(types, 7);  // Q8_0 Q4_0 Q4_1 Q4_K Q6_K F16 BF16 (F32 is a copy)
}

TEST(GgmlType, DotProductsAgreeWithDequantisedRowsOnEveryKernel) {
  std::mt19937_64 rng(7);
  for (GgmlType t : {GgmlType::kF32, GgmlType::kF16, GgmlType::kBF16, GgmlType::kQ8_0,
                     GgmlType::kQ4_0, GgmlType::kQ4_1, GgmlType::kQ4_K, GgmlType::kQ6_K}) {
    SCOPED_TRACE(std::string(GgmlTypeName(t)));
    const int64_t n = 512;
    const std::string row = testing::RandomGgmlRows(t, 1, n, 11);
    std::vector<float> values(n);
    cpu::ScalarQuantKernels().dequantize_row(t, row.data(), n, values.data());
    std::vector<float> x(n);
    std::normal_distribution<float> normal;
    for (float& v : x) v = normal(rng);
    double want = 0;
    for (int64_t i = 0; i < n; ++i) want += static_cast<double>(values[i]) * x[i];
    double scale = 0;
    for (int64_t i = 0; i < n; ++i) scale += std::fabs(static_cast<double>(values[i]) * x[i]);
    for (const cpu::QuantKernels* k : {&cpu::ScalarQuantKernels(), &cpu::BestQuantKernels()}) {
      const float got = k->dot_row(t, row.data(), x.data(), n);
      EXPECT_NEAR(got, want, 1e-5 * scale + 1e-6) << k->name;
    }
  }
}

TEST(GgmlType, MultiRowProductsAgreeWithTheReference) {
  const int64_t n = 256, rows = 7;
  for (GgmlType t :
       {GgmlType::kQ8_0, GgmlType::kQ4_0, GgmlType::kQ4_1, GgmlType::kQ4_K, GgmlType::kF16}) {
    SCOPED_TRACE(std::string(GgmlTypeName(t)));
    const std::string w = testing::RandomGgmlRows(t, rows, n, 21);
    const size_t stride = GgmlRowBytes(t, n);
    std::mt19937_64 rng(4);
    std::normal_distribution<float> normal;
    for (int64_t m = 1; m <= 9; ++m) {
      std::vector<float> x(static_cast<size_t>(m * n));
      for (float& v : x) v = normal(rng);
      std::vector<float> got(static_cast<size_t>(m * 10), -1.0f);
      cpu::BestQuantKernels().dot_rows(t, w.data(), stride, rows, x.data(), m, n, got.data(), 10);
      for (int64_t r = 0; r < m; ++r) {
        for (int64_t j = 0; j < rows; ++j) {
          const float want = cpu::ScalarQuantKernels().dot_row(
              t, w.data() + static_cast<size_t>(j) * stride, x.data() + r * n, n);
          EXPECT_NEAR(got[static_cast<size_t>(r * 10 + j)], want, 1e-4f * (1 + std::fabs(want)))
              << "m " << m << " row " << r << " col " << j;
        }
        EXPECT_EQ(got[static_cast<size_t>(r * 10 + rows)], -1.0f);  // nothing past count
      }
    }
  }
}

TEST(GgmlType, PanelsHoldTheDequantisedRowsColumnWiseOnEveryKernel) {
  for (GgmlType t : {GgmlType::kF32, GgmlType::kF16, GgmlType::kBF16, GgmlType::kQ8_0,
                     GgmlType::kQ4_0, GgmlType::kQ4_1, GgmlType::kQ4_K, GgmlType::kQ6_K}) {
    SCOPED_TRACE(std::string(GgmlTypeName(t)));
    // Plain types take any length: 520 ends in a partial tile.
    const int64_t n = GgmlIsQuantized(t) ? 512 : 520;
    const int rows = 29;
    const std::string w = testing::RandomGgmlRows(t, rows, n, 31);
    const size_t stride = GgmlRowBytes(t, n);
    for (int cols : {1, 7, rows}) {
      std::vector<float> want(static_cast<size_t>(n * cpu::kQuantPanelCols), 0.0f);
      std::vector<float> row(static_cast<size_t>(n));
      for (int j = 0; j < cols; ++j) {
        cpu::ScalarQuantKernels().dequantize_row(t, w.data() + static_cast<size_t>(j) * stride, n,
                                                 row.data());
        for (int64_t i = 0; i < n; ++i) {
          want[static_cast<size_t>(i * cpu::kQuantPanelCols + j)] = row[static_cast<size_t>(i)];
        }
      }
      for (const cpu::QuantKernels* k : {&cpu::ScalarQuantKernels(), &cpu::BestQuantKernels()}) {
        std::vector<float> got(want.size(), -1.0f);
        k->dequantize_panel(t, w.data(), stride, cols, n, got.data());
        ASSERT_EQ(got, want) << k->name << " cols " << cols;
      }
    }
  }
}

TEST(GgmlType, KnowsOnlyTheTypesItReads) {
  EXPECT_FALSE(GgmlTypeFromCode(6).has_value());   // Q5_0
  EXPECT_FALSE(GgmlTypeFromCode(10).has_value());  // Q2_K
  EXPECT_EQ(GgmlBlockBytes(GgmlType::kQ4_K), 144);
  EXPECT_EQ(GgmlBlockBytes(GgmlType::kQ6_K), 210);
  EXPECT_EQ(GgmlRowBytes(GgmlType::kQ4_1, 576), 18u * 20u);
}

class GgufFileTest : public ::testing::Test {
 protected:
  testing::TempDir dir_;
  std::string path_ = dir_.File("m.gguf");
  absl::Status Write() {
    std::map<std::string, GgufMetadataValue> meta = {
        {"general.architecture", std::string("llama")},
        {"a.uint", uint32_t{7}},
        {"a.int", int32_t{-3}},
        {"a.float", 0.5f},
        {"a.bool", true},
        {"a.strings", std::vector<std::string>{"x", "", "yz"}},
        {"a.ints", std::vector<int32_t>{1, -2, 3}},
    };
    std::string q8(GgmlRowBytes(GgmlType::kQ8_0, 64) * 3, '\0');
    for (size_t i = 0; i < q8.size(); ++i) q8[i] = static_cast<char>(i % 7);
    std::string f32(4 * 5, '\0');
    return WriteGguf(path_, meta,
                     {{"w", GgmlType::kQ8_0, {64, 3}, q8}, {"b", GgmlType::kF32, {5}, f32}});
  }
};

TEST_F(GgufFileTest, ReadsBackWhatWasWritten) {
  ASSERT_TRUE(Write().ok());
  auto f = GgufFile::Open(path_);
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_EQ((*f)->version(), 3u);
  EXPECT_EQ(*(*f)->GetString("general.architecture"), "llama");
  EXPECT_EQ(*(*f)->GetInt("a.uint"), 7);
  EXPECT_EQ(*(*f)->GetInt("a.int"), -3);
  EXPECT_EQ(*(*f)->GetFloat("a.float"), 0.5);
  EXPECT_TRUE((*f)->Find("a.bool")->b);
  EXPECT_EQ(**(*f)->GetStrings("a.strings"), (std::vector<std::string>{"x", "", "yz"}));
  EXPECT_EQ(**(*f)->GetNumbers("a.ints"), (std::vector<double>{1, -2, 3}));
  EXPECT_EQ((*f)->GetString("a.uint").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ((*f)->GetInt("missing").status().code(), absl::StatusCode::kNotFound);
  auto w = (*f)->Tensor("w");
  ASSERT_TRUE(w.ok()) << w.status();
  EXPECT_EQ(w->type, GgmlType::kQ8_0);
  EXPECT_EQ(w->row_length(), 64);
  EXPECT_EQ(w->rows(), 3);
  EXPECT_EQ(w->bytes, GgmlRowBytes(GgmlType::kQ8_0, 64) * 3);
  EXPECT_EQ(w->data[5], 5);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(w->data) % 32, 0u);
  EXPECT_EQ((*f)->Tensor("nope").status().code(), absl::StatusCode::kNotFound);
}

TEST_F(GgufFileTest, EveryTruncationIsDataLossNeverACrash) {
  ASSERT_TRUE(Write().ok());
  const std::string bytes = *ReadWholeFile(path_);
  for (size_t n = 0; n < bytes.size(); n += (n < 400 ? 1 : 17)) {
    auto f = GgufFile::Parse(reinterpret_cast<const uint8_t*>(bytes.data()), n, "cut");
    ASSERT_FALSE(f.ok()) << n;
    EXPECT_EQ(f.status().code(), absl::StatusCode::kDataLoss) << n << " " << f.status();
  }
}

TEST_F(GgufFileTest, RandomDamageNeverCrashes) {
  ASSERT_TRUE(Write().ok());
  const std::string clean = *ReadWholeFile(path_);
  std::mt19937_64 rng(3);
  for (int i = 0; i < 3000; ++i) {
    std::string b = clean;
    for (int k = 0; k < 4; ++k) b[rng() % b.size()] = static_cast<char>(rng());
    auto f = GgufFile::Parse(reinterpret_cast<const uint8_t*>(b.data()), b.size(), "damaged");
    if (f.ok()) {
      for (const std::string& name : (*f)->TensorNames()) {
        auto t = (*f)->Tensor(name);
        if (t.ok()) {
          // Its bytes lie inside the buffer.
          ASSERT_GE(t->data, reinterpret_cast<const uint8_t*>(b.data()));
          ASSERT_LE(t->data + t->bytes, reinterpret_cast<const uint8_t*>(b.data()) + b.size());
        }
      }
    }
  }
}

TEST_F(GgufFileTest, HugeCountsAndBadHeadersAreRefusedByName) {
  auto parse = [](const std::string& b) {
    return GgufFile::Parse(reinterpret_cast<const uint8_t*>(b.data()), b.size(), "x").status();
  };
  std::string h("GGUF", 4);
  auto u32 = [](uint32_t v) { return std::string(reinterpret_cast<const char*>(&v), 4); };
  auto u64 = [](uint64_t v) { return std::string(reinterpret_cast<const char*>(&v), 8); };
  EXPECT_EQ(parse("GGML" + u32(3) + u64(0) + u64(0)).code(), absl::StatusCode::kDataLoss);
  absl::Status v = parse(h + u32(9) + u64(0) + u64(0));
  EXPECT_EQ(v.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(v.message().find("version 9"), std::string::npos) << v;
  EXPECT_EQ(parse(h + u32(3) + u64(1ull << 60) + u64(0)).code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(parse(h + u32(3) + u64(0) + u64(1ull << 60)).code(), absl::StatusCode::kDataLoss);
  // A string array claiming 2^61 elements.
  const std::string kv = u64(1) + "k" + u32(9) + u32(8) + u64(1ull << 61);
  EXPECT_EQ(parse(h + u32(3) + u64(0) + u64(1) + kv).code(), absl::StatusCode::kDataLoss);
  EXPECT_TRUE(parse(h + u32(3) + u64(0) + u64(0)).ok());
  // A key given twice (which one would a reader believe?).
  const std::string one = u64(1) + "k" + u32(4) + u32(7);  // k: uint32 7
  absl::Status twice = parse(h + u32(3) + u64(0) + u64(2) + one + one);
  EXPECT_EQ(twice.code(), absl::StatusCode::kDataLoss);
  EXPECT_NE(twice.message().find("'k' appears twice"), std::string::npos) << twice;
  EXPECT_TRUE(parse(h + u32(3) + u64(0) + u64(1) + one).ok());
}

TEST_F(GgufFileTest, TensorsOfOtherTypesAreListedAndRefusedByName) {
  std::map<std::string, GgufMetadataValue> meta;
  ASSERT_TRUE(WriteGguf(path_, meta, {{"b", GgmlType::kF32, {4}, std::string(16, '\0')}}).ok());
  std::string bytes = *ReadWholeFile(path_);
  // The type field follows name (8 + 1), n_dims (4) and one dim (8): make it 6 (Q5_0).
  const size_t at = 24 + 8 + 1 + 4 + 8;
  bytes[at] = 6;
  auto f = GgufFile::Parse(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(), "q5");
  ASSERT_TRUE(f.ok()) << f.status();
  absl::Status s = (*f)->Tensor("b").status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("ggml type 6"), std::string::npos) << s;
}

}  // namespace
}  // namespace strata::gpu
