#include "gpu/passage_kv.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "storage/crc32c.h"
#include "storage/half.h"

namespace strata::gpu {
namespace {

constexpr uint32_t kMagic = 0x564b5053;  // "SPKV"
constexpr uint32_t kVersion = 1;
constexpr size_t kHeaderBytes = 32;

int CodeMax(KvFormat f) { return f == KvFormat::kInt8 ? 255 : 15; }

void PutHalf(uint8_t* p, float v) {
  const uint16_t h = FloatToHalf(v);
  std::memcpy(p, &h, 2);
}
float GetHalf(const uint8_t* p) {
  uint16_t h;
  std::memcpy(&h, p, 2);
  return HalfToFloat(h);
}

// Scale and min of values with this range, as stored (f16-rounded), so decoding uses exactly
// what encoding used.
void Params(float lo, float hi, int code_max, float* scale, float* min) {
  *min = HalfToFloat(FloatToHalf(lo));
  float s = (hi - *min) / static_cast<float>(code_max);
  if (!(s > 0)) s = 0;
  *scale = HalfToFloat(FloatToHalf(s));
  if (*scale == 0 && s > 0) *scale = 6e-8f;  // below f16's smallest step: keep it nonzero
}

int Code(float x, float scale, float min, int code_max) {
  if (scale == 0) return 0;
  const int q = static_cast<int>(std::lround((x - min) / scale));
  return std::clamp(q, 0, code_max);
}

// Code i of a row of codes (one byte each for int8, two per byte for int4).
inline void SetCode(uint8_t* codes, KvFormat f, size_t i, int q) {
  if (f == KvFormat::kInt8) {
    codes[i] = static_cast<uint8_t>(q);
  } else if (i % 2 == 0) {
    codes[i / 2] = static_cast<uint8_t>((codes[i / 2] & 0xF0) | q);
  } else {
    codes[i / 2] = static_cast<uint8_t>((codes[i / 2] & 0x0F) | (q << 4));
  }
}
inline int GetCode(const uint8_t* codes, KvFormat f, size_t i) {
  if (f == KvFormat::kInt8) return codes[i];
  return i % 2 == 0 ? codes[i / 2] & 0x0F : codes[i / 2] >> 4;
}

size_t CodeBytes(KvFormat f, size_t values) {
  switch (f) {
    case KvFormat::kF32:
      return values * 4;
    case KvFormat::kF16:
      return values * 2;
    case KvFormat::kInt8:
      return values;
    case KvFormat::kInt4:
      return (values + 1) / 2;
  }
  return 0;
}

}  // namespace

absl::string_view KvFormatName(KvFormat f) {
  switch (f) {
    case KvFormat::kF32:
      return "f32";
    case KvFormat::kF16:
      return "f16";
    case KvFormat::kInt8:
      return "int8";
    case KvFormat::kInt4:
      return "int4";
  }
  return "?";
}

size_t PassageKv::KeyBytes() const {
  const size_t values = static_cast<size_t>(tokens_) * static_cast<size_t>(width());
  size_t b = CodeBytes(format_, values);
  if (format_ == KvFormat::kInt8 || format_ == KvFormat::kInt4) {
    const size_t groups = (static_cast<size_t>(tokens_) + kKeyGroupTokens - 1) / kKeyGroupTokens;
    b += groups * static_cast<size_t>(width()) * 4;  // f16 scale + f16 min per channel per group
  }
  return b;
}

size_t PassageKv::ValueBytes() const {
  const size_t values = static_cast<size_t>(tokens_) * static_cast<size_t>(width());
  size_t b = CodeBytes(format_, values);
  if (format_ == KvFormat::kInt8 || format_ == KvFormat::kInt4) {
    b += static_cast<size_t>(tokens_) * static_cast<size_t>(kv_heads_) * 4;  // per token per head
  }
  return b;
}

namespace {
uint64_t NextUid() {
  static std::atomic<uint64_t> next{1};
  return next.fetch_add(1, std::memory_order_relaxed);
}
}  // namespace

PassageKv PassageKv::Compress(KvFormat format, int tokens, int kv_heads, int head_dim,
                              const std::vector<std::vector<float>>& k,
                              const std::vector<std::vector<float>>& v) {
  PassageKv p;
  p.uid_ = NextUid();
  p.format_ = format;
  p.tokens_ = tokens;
  p.layers_ = static_cast<int>(k.size());
  p.kv_heads_ = kv_heads;
  p.head_dim_ = head_dim;
  const size_t w = static_cast<size_t>(kv_heads) * static_cast<size_t>(head_dim);
  const size_t n = static_cast<size_t>(tokens);
  const size_t kb = p.KeyBytes(), vb = p.ValueBytes();
  p.data_.assign((kb + vb) * static_cast<size_t>(p.layers_), '\0');
  for (int l = 0; l < p.layers_; ++l) {
    auto* base = reinterpret_cast<uint8_t*>(p.data_.data()) + (kb + vb) * static_cast<size_t>(l);
    const float* kl = k[static_cast<size_t>(l)].data();
    const float* vl = v[static_cast<size_t>(l)].data();
    if (format == KvFormat::kF32) {
      std::memcpy(base, kl, n * w * 4);
      std::memcpy(base + kb, vl, n * w * 4);
      continue;
    }
    if (format == KvFormat::kF16) {
      for (size_t i = 0; i < n * w; ++i) PutHalf(base + 2 * i, kl[i]);
      for (size_t i = 0; i < n * w; ++i) PutHalf(base + kb + 2 * i, vl[i]);
      continue;
    }
    const int qmax = CodeMax(format);
    // Keys: per channel, per group of tokens.
    uint8_t* kcodes = base;
    uint8_t* kparams = base + CodeBytes(format, n * w);
    for (size_t g0 = 0, g = 0; g0 < n; g0 += kKeyGroupTokens, ++g) {
      const size_t g1 = std::min(n, g0 + kKeyGroupTokens);
      for (size_t c = 0; c < w; ++c) {
        float lo = kl[g0 * w + c], hi = lo;
        for (size_t t = g0; t < g1; ++t)
          lo = std::min(lo, kl[t * w + c]), hi = std::max(hi, kl[t * w + c]);
        float scale, min;
        Params(lo, hi, qmax, &scale, &min);
        PutHalf(kparams + (g * w + c) * 4, scale);
        PutHalf(kparams + (g * w + c) * 4 + 2, min);
        for (size_t t = g0; t < g1; ++t)
          SetCode(kcodes, format, t * w + c, Code(kl[t * w + c], scale, min, qmax));
      }
    }
    // Values: per token, per head.
    uint8_t* vcodes = base + kb;
    uint8_t* vparams = vcodes + CodeBytes(format, n * w);
    const auto hd = static_cast<size_t>(head_dim);
    for (size_t t = 0; t < n; ++t) {
      for (size_t h = 0; h < static_cast<size_t>(kv_heads); ++h) {
        const float* row = vl + t * w + h * hd;
        float lo = row[0], hi = row[0];
        for (size_t d = 0; d < hd; ++d) lo = std::min(lo, row[d]), hi = std::max(hi, row[d]);
        float scale, min;
        Params(lo, hi, qmax, &scale, &min);
        const size_t pi = (t * static_cast<size_t>(kv_heads) + h) * 4;
        PutHalf(vparams + pi, scale);
        PutHalf(vparams + pi + 2, min);
        for (size_t d = 0; d < hd; ++d)
          SetCode(vcodes, format, t * w + h * hd + d, Code(row[d], scale, min, qmax));
      }
    }
  }
  return p;
}

void PassageKv::Decompress(int layer, float* k, float* v) const {
  const size_t w = static_cast<size_t>(width()), n = static_cast<size_t>(tokens_);
  const size_t kb = KeyBytes(), vb = ValueBytes();
  const auto* base =
      reinterpret_cast<const uint8_t*>(data_.data()) + (kb + vb) * static_cast<size_t>(layer);
  if (format_ == KvFormat::kF32) {
    std::memcpy(k, base, n * w * 4);
    std::memcpy(v, base + kb, n * w * 4);
    return;
  }
  if (format_ == KvFormat::kF16) {
    for (size_t i = 0; i < n * w; ++i) k[i] = GetHalf(base + 2 * i);
    for (size_t i = 0; i < n * w; ++i) v[i] = GetHalf(base + kb + 2 * i);
    return;
  }
  const uint8_t* kcodes = base;
  const uint8_t* kparams = base + CodeBytes(format_, n * w);
  // A key group's per-channel scales and mins, converted once for its kKeyGroupTokens tokens.
  std::vector<float> scale(w), min(w);
  for (size_t t = 0; t < n; ++t) {
    if (t % kKeyGroupTokens == 0) {
      const uint8_t* pp = kparams + (t / kKeyGroupTokens) * w * 4;
      for (size_t c = 0; c < w; ++c) {
        scale[c] = GetHalf(pp + c * 4);
        min[c] = GetHalf(pp + c * 4 + 2);
      }
    }
    float* row = k + t * w;
    if (format_ == KvFormat::kInt8) {
      const auto* codes = kcodes + t * w;
      for (size_t c = 0; c < w; ++c) row[c] = min[c] + static_cast<float>(codes[c]) * scale[c];
    } else {
      for (size_t c = 0; c < w; ++c) {
        row[c] = min[c] + static_cast<float>(GetCode(kcodes, format_, t * w + c)) * scale[c];
      }
    }
  }
  const uint8_t* vcodes = base + kb;
  const uint8_t* vparams = vcodes + CodeBytes(format_, n * w);
  const auto hd = static_cast<size_t>(head_dim_);
  for (size_t t = 0; t < n; ++t) {
    for (size_t h = 0; h < static_cast<size_t>(kv_heads_); ++h) {
      const uint8_t* pp = vparams + (t * static_cast<size_t>(kv_heads_) + h) * 4;
      const float scale = GetHalf(pp), min = GetHalf(pp + 2);
      for (size_t d = 0; d < hd; ++d) {
        const size_t i = t * w + h * hd + d;
        v[i] = min + static_cast<float>(GetCode(vcodes, format_, i)) * scale;
      }
    }
  }
}

std::string PassageKv::Serialize() const {
  std::string out(kHeaderBytes, '\0');
  auto put32 = [&out](size_t at, uint32_t x) { std::memcpy(&out[at], &x, 4); };
  put32(0, kMagic);
  put32(4, kVersion);
  put32(8, static_cast<uint32_t>(format_));
  put32(12, static_cast<uint32_t>(tokens_));
  put32(16, static_cast<uint32_t>(layers_));
  put32(20, static_cast<uint32_t>(kv_heads_));
  put32(24, static_cast<uint32_t>(head_dim_));
  out += data_;
  put32(28, crc32c::Value(out.data() + kHeaderBytes, data_.size()));
  return out;
}

absl::StatusOr<PassageKv> PassageKv::Parse(absl::string_view bytes) {
  auto bad = [](const std::string& why) {
    return absl::DataLossError(absl::StrCat("passage KV entry: ", why));
  };
  if (bytes.size() < kHeaderBytes) return bad("shorter than its header");
  auto get32 = [&bytes](size_t at) {
    uint32_t x;
    std::memcpy(&x, bytes.data() + at, 4);
    return x;
  };
  if (get32(0) != kMagic || get32(4) != kVersion) return bad("not a version-1 entry");
  PassageKv p;
  p.uid_ = NextUid();
  if (get32(8) > 3) return bad("unknown format");
  p.format_ = static_cast<KvFormat>(get32(8));
  p.tokens_ = static_cast<int>(get32(12));
  p.layers_ = static_cast<int>(get32(16));
  p.kv_heads_ = static_cast<int>(get32(20));
  p.head_dim_ = static_cast<int>(get32(24));
  if (p.tokens_ < 1 || p.tokens_ > (1 << 20) || p.layers_ < 1 || p.layers_ > 1024 ||
      p.kv_heads_ < 1 || p.kv_heads_ > 1024 || p.head_dim_ < 1 || p.head_dim_ > 4096) {
    return bad("implausible shape");
  }
  const size_t want = (p.KeyBytes() + p.ValueBytes()) * static_cast<size_t>(p.layers_);
  if (bytes.size() != kHeaderBytes + want) return bad("size disagrees with its shape");
  if (crc32c::Value(bytes.data() + kHeaderBytes, want) != get32(28))
    return bad("checksum mismatch");
  p.data_.assign(bytes.data() + kHeaderBytes, want);
  return p;
}

}  // namespace strata::gpu
