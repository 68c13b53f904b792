#include "storage/crc32c.h"

#include <random>
#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace strata {
namespace {

TEST(Crc32c, MatchesKnownVectors) {
  // RFC 3720 appendix B.4 and the classic check value.
  EXPECT_EQ(crc32c::Value("123456789", 9), 0xE3069283u);
  std::vector<unsigned char> zeros(32, 0), ones(32, 0xFF);
  EXPECT_EQ(crc32c::Value(zeros.data(), zeros.size()), 0x8A9136AAu);
  EXPECT_EQ(crc32c::Value(ones.data(), ones.size()), 0x62A8AB43u);
  EXPECT_EQ(crc32c::Value("", 0), 0u);
}

TEST(Crc32c, HardwareAndPortableAgree) {
  std::mt19937 rng(7);
  // (From 3 KiB on the hardware path runs three lanes at once and joins them: lengths around
  // its rounds, at odd addresses, and from a crc other than 0.)
  for (size_t n :
       {0, 1, 7, 8, 9, 63, 64, 65, 1000, 3071, 3072, 3073, 4096, 4097, 6144, 9215, 100000}) {
    std::vector<unsigned char> data(n + 1);
    for (auto& b : data) b = static_cast<unsigned char>(rng());
    EXPECT_EQ(crc32c::Extend(0, data.data(), n), crc32c::ExtendPortable(0, data.data(), n)) << n;
    EXPECT_EQ(crc32c::Extend(0x1234567u, data.data() + 1, n),
              crc32c::ExtendPortable(0x1234567u, data.data() + 1, n))
        << n;
  }
}

// The folded path (VPCLMULQDQ, from 1 KiB on) against the portable loop and the crc32
// instruction's: every length over its first rounds (the 256-byte loop, the 64-byte and 16-byte
// folds, the tail under 16), at every alignment mod 8, from crcs other than 0.
TEST(Crc32c, FoldedRunsAgreeWithThePortableLoop) {
  if (!crc32c::FoldAvailable()) GTEST_SKIP() << "no VPCLMULQDQ with AVX-512 on this CPU";
  std::mt19937 rng(9);
  std::vector<unsigned char> data(70000);
  for (auto& b : data) b = static_cast<unsigned char>(rng());
  for (size_t n = 1024; n < 1024 + 700; ++n) {
    const size_t at = n % 8;
    const uint32_t from = static_cast<uint32_t>(rng());
    const uint32_t want = crc32c::ExtendPortable(from, data.data() + at, n);
    ASSERT_EQ(crc32c::Extend(from, data.data() + at, n), want) << n;
    ASSERT_EQ(crc32c::ExtendHardwareOnly(from, data.data() + at, n), want) << n;
  }
  for (size_t n : {4095, 32768, 32771, 65536, 69999}) {
    EXPECT_EQ(crc32c::Extend(0, data.data(), n), crc32c::ExtendPortable(0, data.data(), n)) << n;
  }
  // All zeros and all ones: the constants' edge cases.
  std::vector<unsigned char> zeros(5000, 0), ones(5000, 0xFF);
  EXPECT_EQ(crc32c::Value(zeros.data(), zeros.size()),
            crc32c::ExtendPortable(0, zeros.data(), zeros.size()));
  EXPECT_EQ(crc32c::Value(ones.data(), ones.size()),
            crc32c::ExtendPortable(0, ones.data(), ones.size()));
}

TEST(Crc32c, ExtendIsIncremental) {
  std::string s = "hello, strata posting lists";
  uint32_t whole = crc32c::Value(s.data(), s.size());
  uint32_t part = crc32c::Extend(crc32c::Value(s.data(), 10), s.data() + 10, s.size() - 10);
  EXPECT_EQ(whole, part);
}

}  // namespace
}  // namespace strata
