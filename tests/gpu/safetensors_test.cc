#include "gpu/safetensors.h"

#include <cmath>
#include <cstring>
#include <limits>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "storage/scoped_fd.h"
#include "tests/test_util.h"

namespace strata::gpu {
namespace {

using ::testing::HasSubstr;

TEST(DType, HalfRoundTripsEveryValue) {
  for (uint32_t h = 0; h < 65536; ++h) {
    const float f = HalfToFloat(static_cast<uint16_t>(h));
    if (std::isnan(f)) {
      EXPECT_TRUE(std::isnan(HalfToFloat(FloatToHalf(f))));
      continue;
    }
    ASSERT_EQ(FloatToHalf(f), h) << "half bits " << h << " = " << f;
  }
}

TEST(DType, FloatToHalfRoundsToNearestEven) {
  EXPECT_EQ(HalfToFloat(FloatToHalf(1.0f)), 1.0f);
  EXPECT_EQ(HalfToFloat(FloatToHalf(65504.0f)), 65504.0f);
  EXPECT_TRUE(std::isinf(HalfToFloat(FloatToHalf(70000.0f))));
  // 1 + 2^-11 lies halfway between 1 and 1 + 2^-10: ties go to the even mantissa (1.0).
  EXPECT_EQ(HalfToFloat(FloatToHalf(1.0f + std::ldexp(1.0f, -11))), 1.0f);
  EXPECT_EQ(HalfToFloat(FloatToHalf(1.0f + 3 * std::ldexp(1.0f, -11))),
            1.0f + std::ldexp(1.0f, -9));
  EXPECT_EQ(HalfToFloat(FloatToHalf(std::ldexp(1.0f, -24))), std::ldexp(1.0f, -24));  // subnormal
  EXPECT_EQ(HalfToFloat(FloatToHalf(std::ldexp(1.0f, -26))), 0.0f);
  EXPECT_EQ(HalfToFloat(FloatToHalf(-2.5f)), -2.5f);
}

TEST(DType, BFloat16KeepsTheTopBitsRounded) {
  EXPECT_EQ(BFloat16ToFloat(FloatToBFloat16(1.0f)), 1.0f);
  EXPECT_EQ(BFloat16ToFloat(FloatToBFloat16(-3.0f)), -3.0f);
  EXPECT_NEAR(BFloat16ToFloat(FloatToBFloat16(3.14159f)), 3.14159f, 0.01f);
  EXPECT_TRUE(
      std::isnan(BFloat16ToFloat(FloatToBFloat16(std::numeric_limits<float>::quiet_NaN()))));
}

TEST(Safetensors, RoundTripsEachDType) {
  testing::TempDir dir;
  const std::string path = dir.File("m.safetensors");
  std::vector<float> vals = {0.5f, -1.25f, 3.0f, 0.0f, 100.0f, -0.125f};
  ASSERT_TRUE(WriteSafetensors(path, {{"a", DType::kF32, {2, 3}, vals},
                                      {"b", DType::kF16, {6}, vals},
                                      {"c", DType::kBF16, {3, 2}, vals}})
                  .ok());
  auto file = SafetensorsFile::Open(path);
  ASSERT_TRUE(file.ok()) << file.status();
  EXPECT_EQ((*file)->Names(), (std::vector<std::string>{"a", "b", "c"}));
  for (const char* name : {"a", "b", "c"}) {
    auto t = (*file)->Get(name);
    ASSERT_TRUE(t.ok()) << t.status();
    ASSERT_EQ(t->numel(), 6);
    std::vector<float> back(6);
    ConvertToFloat(t->dtype, t->data, 6, back.data());
    EXPECT_EQ(back, vals) << name;  // all values are exact in every dtype
  }
  auto a = (*file)->Get("a", {2, 3});
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->dtype, DType::kF32);
}

TEST(Safetensors, NamesAMissingTensorAndAWrongShape) {
  testing::TempDir dir;
  const std::string path = dir.File("m.safetensors");
  ASSERT_TRUE(WriteSafetensors(path, {{"w", DType::kF32, {2, 2}, {1, 2, 3, 4}}}).ok());
  auto file = SafetensorsFile::Open(path);
  ASSERT_TRUE(file.ok());
  auto missing = (*file)->Get("encoder.layer.0.weight");
  EXPECT_TRUE(absl::IsNotFound(missing.status()));
  EXPECT_THAT(missing.status().message(), HasSubstr("encoder.layer.0.weight"));
  auto shape = (*file)->Get("w", {4, 1});
  EXPECT_TRUE(absl::IsInvalidArgument(shape.status()));
  EXPECT_THAT(shape.status().message(), HasSubstr("[2, 2]"));
  EXPECT_THAT(shape.status().message(), HasSubstr("[4, 1]"));
}

// Writes a raw safetensors file with the given JSON header and data bytes.
void WriteRaw(const std::string& path, std::string header, const std::string& data) {
  std::string out(8, '\0');
  const uint64_t n = header.size();
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>(n >> (8 * i));
  out += header + data;
  ASSERT_TRUE(WriteFileAtomic(path, absl::Span<const char>(out.data(), out.size())).ok());
}

TEST(Safetensors, RefusesUnsupportedDTypeOnlyWhenAskedFor) {
  testing::TempDir dir;
  const std::string path = dir.File("m.safetensors");
  WriteRaw(path,
           R"({"ids":{"dtype":"I64","shape":[2],"data_offsets":[0,16]},)"
           R"("x":{"dtype":"F32","shape":[1],"data_offsets":[16,20]}})",
           std::string(20, '\0'));
  auto file = SafetensorsFile::Open(path);
  ASSERT_TRUE(file.ok()) << file.status();
  EXPECT_TRUE((*file)->Get("x").ok());
  auto ids = (*file)->Get("ids");
  EXPECT_TRUE(absl::IsInvalidArgument(ids.status()));
  EXPECT_THAT(ids.status().message(), HasSubstr("I64"));
}

TEST(Safetensors, CorruptFilesAreDataLoss) {
  testing::TempDir dir;
  const std::string path = dir.File("m.safetensors");
  // Byte range beyond the data (a truncated file).
  WriteRaw(path, R"({"x":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}})", std::string(8, 0));
  auto s = SafetensorsFile::Open(path).status();
  EXPECT_TRUE(absl::IsDataLoss(s)) << s;
  EXPECT_THAT(s.message(), HasSubstr("'x'"));
  // Size disagreeing with dtype and shape.
  WriteRaw(path, R"({"x":{"dtype":"F32","shape":[3],"data_offsets":[0,16]}})", std::string(16, 0));
  EXPECT_TRUE(absl::IsDataLoss(SafetensorsFile::Open(path).status()));
  // Not JSON.
  WriteRaw(path, "this is not json", "");
  EXPECT_TRUE(absl::IsDataLoss(SafetensorsFile::Open(path).status()));
  // A header length pointing past the end.
  const std::string junk = "\xff\xff\xff\x00\x00\x00\x00\x00{}";
  ASSERT_TRUE(WriteFileAtomic(path, absl::Span<const char>(junk.data(), junk.size())).ok());
  EXPECT_TRUE(absl::IsDataLoss(SafetensorsFile::Open(path).status()));
  // Too short, and absent.
  ASSERT_TRUE(WriteFileAtomic(path, absl::Span<const char>("abc", 3)).ok());
  EXPECT_TRUE(absl::IsDataLoss(SafetensorsFile::Open(path).status()));
  EXPECT_TRUE(absl::IsNotFound(SafetensorsFile::Open(dir.File("none")).status()));
}

}  // namespace
}  // namespace strata::gpu
