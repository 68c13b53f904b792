// The decoder's device tier of passage KV entries: an entry's keys (before RoPE) and values,
// decompressed to F32 in the backend's memory, all layers side by side, kept under the entry's
// uid (PassageKv::uid) so that the next assembly with the same passage skips the decompression
// and the host-to-device copy. On a GPU that copy costs more than recomputing a prompt of the
// same length; on the CPU the tier is off (its "device" memory is the host's). LRU with a byte
// budget. Not thread-safe: the decoder uses it under its lock.
#ifndef STRATA_GPU_INTERNAL_DEVICE_SPAN_CACHE_H_
#define STRATA_GPU_INTERNAL_DEVICE_SPAN_CACHE_H_

#include <cstddef>
#include <cstdint>
#include <list>
#include <unordered_map>
#include <vector>

#include "gpu/backend.h"

namespace strata::gpu {

class DeviceSpanCache final {
 public:
  struct Entry {
    Tensor k, v;                            // [layers * tokens, kv_width] F32, layer after layer
    std::vector<float> layer1_k, layer1_v;  // layer 1's rows on the host (Assemble's deviation)
    size_t bytes = 0;                       // device bytes held
  };

  explicit DeviceSpanCache(size_t budget_bytes) : budget_(budget_bytes) {}
  DeviceSpanCache(const DeviceSpanCache&) = delete;
  DeviceSpanCache& operator=(const DeviceSpanCache&) = delete;

  [[nodiscard]] size_t budget() const { return budget_; }
  [[nodiscard]] size_t bytes() const { return bytes_; }
  [[nodiscard]] size_t entries() const { return lru_.size(); }

  // The entry kept under uid (now the most recently used), or null.
  [[nodiscard]] const Entry* Find(uint64_t uid);
  // Keeps `e` under uid, evicting the least recently used until it fits; an entry larger than
  // the whole budget (or any entry when the budget is 0) is not kept: returns null then.
  [[nodiscard]] const Entry* Insert(uint64_t uid, Entry e);

 private:
  using Lru = std::list<std::pair<uint64_t, Entry>>;
  size_t budget_;
  size_t bytes_ = 0;
  Lru lru_;  // most recent first
  std::unordered_map<uint64_t, Lru::iterator> index_;
};

}  // namespace strata::gpu

#endif  // STRATA_GPU_INTERNAL_DEVICE_SPAN_CACHE_H_
