#include "storage/crc32c.h"

#include <immintrin.h>
#include <nmmintrin.h>

#include <array>
#include <cstring>

#include "base/check.h"
#include "storage/cpu_features.h"

namespace strata::crc32c {
namespace {

constexpr uint32_t kPoly = 0x82F63B78u;  // reflected Castagnoli polynomial

constexpr std::array<uint32_t, 256> MakeTable() {
  std::array<uint32_t, 256> t{};
  for (uint32_t i = 0; i < 256; ++i) {
    uint32_t c = i;
    for (int k = 0; k < 8; ++k) c = (c & 1) ? (c >> 1) ^ kPoly : c >> 1;
    t[i] = c;
  }
  return t;
}
constexpr std::array<uint32_t, 256> kTable = MakeTable();

// Three lanes of kLane bytes each are checksummed at once (the crc32 instruction takes 3 cycles
// to give its result but can start one a cycle), then joined: the register after lane 1 then
// lane 2 is Shift(register after lane 1) ^ (register after lane 2 from 0), where Shift feeds
// kLane zero bytes - a linear map over GF(2), so four 256-entry tables apply it.
constexpr size_t kLane = 1024;

struct ShiftTables {
  uint32_t t[4][256];
};

const ShiftTables& Shift() {
  static const ShiftTables tables = [] {
    // The map of each of the 32 register bits, by feeding zeros bit by bit (the portable way).
    uint32_t basis[32];
    for (int b = 0; b < 32; ++b) {
      uint32_t c = uint32_t{1} << b;
      for (size_t i = 0; i < kLane; ++i) c = kTable[c & 0xFF] ^ (c >> 8);
      basis[b] = c;
    }
    ShiftTables s{};
    for (int k = 0; k < 4; ++k) {
      for (uint32_t v = 0; v < 256; ++v) {
        uint32_t out = 0;
        for (int j = 0; j < 8; ++j) {
          if (v & (1u << j)) out ^= basis[k * 8 + j];
        }
        s.t[k][v] = out;
      }
    }
    return s;
  }();
  return tables;
}

uint32_t Shifted(const ShiftTables& s, uint32_t c) {
  return s.t[0][c & 0xFF] ^ s.t[1][(c >> 8) & 0xFF] ^ s.t[2][(c >> 16) & 0xFF] ^ s.t[3][c >> 24];
}

__attribute__((target("sse4.2"))) uint32_t ExtendHardware(uint32_t crc, const void* data,
                                                          size_t n) {
  const auto* p = static_cast<const unsigned char*>(data);
  uint64_t c = ~crc;
  if (n >= 3 * kLane) {
    const ShiftTables& shift = Shift();
    while (n >= 3 * kLane) {
      uint64_t a = c, b = 0, d = 0;
      for (size_t i = 0; i < kLane; i += 8) {
        uint64_t va, vb, vd;
        std::memcpy(&va, p + i, 8);
        std::memcpy(&vb, p + kLane + i, 8);
        std::memcpy(&vd, p + 2 * kLane + i, 8);
        a = _mm_crc32_u64(a, va);
        b = _mm_crc32_u64(b, vb);
        d = _mm_crc32_u64(d, vd);
      }
      c = Shifted(shift, Shifted(shift, static_cast<uint32_t>(a)) ^ static_cast<uint32_t>(b)) ^
          static_cast<uint32_t>(d);
      p += 3 * kLane;
      n -= 3 * kLane;
    }
  }
  while (n >= 8) {
    uint64_t v;
    std::memcpy(&v, p, 8);
    c = _mm_crc32_u64(c, v);
    p += 8;
    n -= 8;
  }
  auto c32 = static_cast<uint32_t>(c);
  while (n > 0) {
    c32 = _mm_crc32_u8(c32, *p++);
    --n;
  }
  return ~c32;
}

// From kFoldMin bytes on, with VPCLMULQDQ and AVX-512: the bytes are folded 256 at a time into four
// zmm registers (sixteen 128-bit lanes) by carry-less multiplication, as Intel's "Fast CRC
// Computation for Generic Polynomials Using PCLMULQDQ" describes: a lane's 128 bits B, followed
// by d more bits, leave the register as B.lo * (x^(d+32) mod P) ^ B.hi * (x^(d-32) mod P) would
// (in the reflected bit order, the constants bit-reversed and shifted left by one). The lanes are
// folded together (d = 512 between zmm registers, then 128 between lanes), and the one 128-bit
// value left goes through the crc32 instruction: it leaves the register as the bytes it stands
// for would. Each vpclmulqdq handles 64 bytes and one can start a cycle, where the crc32
// instruction takes 8 bytes a cycle: 55-58 GB/s against 18-25 on a Sapphire Rapids-class Xeon
// (bench/RESULTS.md, "Extents read in place, a faster crc, a real workload", which also gives the
// constants' formula): bitreverse32(x^n mod P) << 1.
constexpr size_t kFoldMin = 1024;

__attribute__((target("avx512f,vpclmulqdq"))) inline __m512i Fold512(__m512i x, __m512i k,
                                                                     __m512i next) {
  // x.lo * k.lo ^ x.hi * k.hi ^ next, in each 128-bit lane (k: {lo's constant, hi's} per lane).
  return _mm512_ternarylogic_epi64(_mm512_clmulepi64_epi128(x, k, 0x00),
                                   _mm512_clmulepi64_epi128(x, k, 0x11), next, 0x96);
}

__attribute__((target("sse4.2,pclmul"))) inline __m128i Fold128(__m128i x, __m128i k,
                                                                __m128i next) {
  return _mm_xor_si128(
      _mm_xor_si128(_mm_clmulepi64_si128(x, k, 0x00), _mm_clmulepi64_si128(x, k, 0x11)), next);
}

__attribute__((target("avx512f,vpclmulqdq,sse4.2,pclmul"))) uint32_t ExtendFolded(uint32_t crc,
                                                                                  const void* data,
                                                                                  size_t n) {
  DCHECK(n >= kFoldMin);
  const auto* p = static_cast<const unsigned char*>(data);
  // Per lane {the low qword's constant, the high qword's}: d = 2048, 512, 128 bits.
  const __m512i k2048 = _mm512_set_epi64(0xb9e02b86, 0xdcb17aa4, 0xb9e02b86, 0xdcb17aa4, 0xb9e02b86,
                                         0xdcb17aa4, 0xb9e02b86, 0xdcb17aa4);
  const __m512i k512 = _mm512_set_epi64(0x9e4addf8, 0x740eef02, 0x9e4addf8, 0x740eef02, 0x9e4addf8,
                                        0x740eef02, 0x9e4addf8, 0x740eef02);
  const __m128i k128 = _mm_set_epi64x(0x14cd00bd6, 0xf20c0dfe);
  __m512i x0 =
      _mm512_xor_si512(_mm512_loadu_si512(p), _mm512_maskz_set1_epi32(1, static_cast<int>(~crc)));
  __m512i x1 = _mm512_loadu_si512(p + 64);
  __m512i x2 = _mm512_loadu_si512(p + 128);
  __m512i x3 = _mm512_loadu_si512(p + 192);
  p += 256;
  n -= 256;
  for (; n >= 256; p += 256, n -= 256) {
    x0 = Fold512(x0, k2048, _mm512_loadu_si512(p));
    x1 = Fold512(x1, k2048, _mm512_loadu_si512(p + 64));
    x2 = Fold512(x2, k2048, _mm512_loadu_si512(p + 128));
    x3 = Fold512(x3, k2048, _mm512_loadu_si512(p + 192));
  }
  __m512i x = Fold512(Fold512(Fold512(x0, k512, x1), k512, x2), k512, x3);
  for (; n >= 64; p += 64, n -= 64) x = Fold512(x, k512, _mm512_loadu_si512(p));
  alignas(64) __m128i lanes[4];
  _mm512_store_si512(lanes, x);
  __m128i y = Fold128(Fold128(Fold128(lanes[0], k128, lanes[1]), k128, lanes[2]), k128, lanes[3]);
  for (; n >= 16; p += 16, n -= 16) {
    y = Fold128(y, k128, _mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  }
  uint64_t c = _mm_crc32_u64(0, static_cast<uint64_t>(_mm_cvtsi128_si64(y)));
  c = _mm_crc32_u64(c, static_cast<uint64_t>(_mm_extract_epi64(y, 1)));
  // (The rest, under 16 bytes, as ExtendHardware would: its ~ undone.)
  return ExtendHardware(~static_cast<uint32_t>(c), p, n);
}

}  // namespace

bool FoldAvailable() {
  static const bool has = Cpu().sse42 && Cpu().pclmul && Cpu().avx512f && Cpu().vpclmulqdq;
  return has;
}

uint32_t ExtendHardwareOnly(uint32_t crc, const void* data, size_t n) {
  return ExtendHardware(crc, data, n);
}

uint32_t ExtendPortable(uint32_t crc, const void* data, size_t n) {
  const auto* p = static_cast<const unsigned char*>(data);
  uint32_t c = ~crc;
  for (size_t i = 0; i < n; ++i) c = kTable[(c ^ p[i]) & 0xFF] ^ (c >> 8);
  return ~c;
}

bool HardwareAvailable() {
  static const bool has = Cpu().sse42;
  return has;
}

uint32_t Extend(uint32_t crc, const void* data, size_t n) {
  if (n >= kFoldMin && FoldAvailable()) return ExtendFolded(crc, data, n);
  return HardwareAvailable() ? ExtendHardware(crc, data, n) : ExtendPortable(crc, data, n);
}

}  // namespace strata::crc32c
