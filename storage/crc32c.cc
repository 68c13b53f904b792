#include "storage/crc32c.h"

#include <nmmintrin.h>

#include <array>
#include <cstring>

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

}  // namespace

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
  return HardwareAvailable() ? ExtendHardware(crc, data, n) : ExtendPortable(crc, data, n);
}

}  // namespace strata::crc32c
