// A passage's keys and values, computed once and reused in any context: every layer's keys
// *before* rotary positions (so they can be rotated to wherever the passage lands, exactly:
// RoPE(x, p) is a pure function of the position) and values, for the passage's tokens, stored as
//   kF32   as computed (the shared prompt prefix);
//   kF16   IEEE half;
//   kInt8  / kInt4: asymmetric codes (value = min + code * scale) with KIVI's grouping: keys per
//          channel over groups of kKeyGroupTokens tokens (keys have outlier channels), values per
//          token over each head's channels (values have no channel structure); scale and min in
//          f16.
// Immutable once made; safe to share between threads (the cache hands out shared_ptr<const>).
#ifndef STRATA_GPU_PASSAGE_KV_H_
#define STRATA_GPU_PASSAGE_KV_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace strata::gpu {

enum class KvFormat : uint8_t { kF32 = 0, kF16 = 1, kInt8 = 2, kInt4 = 3 };
[[nodiscard]] absl::string_view KvFormatName(KvFormat f);  // "f32", "f16", "int8", "int4"

inline constexpr int kKeyGroupTokens = 32;

class PassageKv final {
 public:
  PassageKv() = default;
  // From captured keys (pre-RoPE) and values: k[layer] and v[layer] hold tokens * width floats,
  // row-major. width = kv_heads * head_dim.
  static PassageKv Compress(KvFormat format, int tokens, int kv_heads, int head_dim,
                            const std::vector<std::vector<float>>& k,
                            const std::vector<std::vector<float>>& v);
  // Layer `layer`'s keys (pre-RoPE) and values into k and v (tokens * width floats each).
  void Decompress(int layer, float* k, float* v) const;

  [[nodiscard]] KvFormat format() const { return format_; }
  [[nodiscard]] int tokens() const { return tokens_; }
  [[nodiscard]] int layers() const { return layers_; }
  [[nodiscard]] int width() const { return kv_heads_ * head_dim_; }
  // Bytes held (codes and scales).
  [[nodiscard]] size_t bytes() const { return data_.size(); }
  // Names this entry's content: every Compress and Parse makes a new one and copies share it, so
  // a backend may keep the entry decompressed under it (Decoder's device tier). 0: empty.
  [[nodiscard]] uint64_t uid() const { return uid_; }

  // A self-describing, checksummed byte form (the SSD tier's file content) and back. Parse
  // returns DataLoss for anything damaged or inconsistent.
  [[nodiscard]] std::string Serialize() const;
  static absl::StatusOr<PassageKv> Parse(absl::string_view bytes);

 private:
  // Bytes of one layer's keys or values in this format.
  size_t KeyBytes() const;
  size_t ValueBytes() const;

  KvFormat format_ = KvFormat::kF16;
  int tokens_ = 0, layers_ = 0, kv_heads_ = 0, head_dim_ = 0;
  std::string data_;  // per layer: keys then values
  uint64_t uid_ = 0;
};

}  // namespace strata::gpu

#endif  // STRATA_GPU_PASSAGE_KV_H_
