#include "storage/cpu_features.h"

#include <string>

#include "gtest/gtest.h"

namespace strata {
namespace {

TEST(CpuFeatures, LevelsAreConsistentWithTheFeaturesTheyNeed) {
  const CpuFeatures& f = Cpu();
  EXPECT_TRUE(Supports(SimdLevel::kScalar));
  EXPECT_EQ(Supports(SimdLevel::kAvx2), f.avx2 && f.fma && f.f16c);
  if (Supports(SimdLevel::kAvx512)) {
    EXPECT_TRUE(Supports(SimdLevel::kAvx2));
    EXPECT_TRUE(f.avx512f && f.avx512bw && f.avx512vl);
  }
  // AVX-512 extensions need AVX-512 itself.
  if (f.avx512_bf16 || f.avx512_vnni) {
    EXPECT_TRUE(f.avx512f);
  }
  EXPECT_TRUE(Supports(ProjectSimdLevel()));
  EXPECT_EQ(std::string(SimdLevelName(SimdLevel::kAvx512)), "avx512");
}

}  // namespace
}  // namespace strata
