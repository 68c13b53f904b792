#include "gpu/internal/device_span_cache.h"

#include <utility>

namespace strata::gpu {

const DeviceSpanCache::Entry* DeviceSpanCache::Find(uint64_t uid) {
  auto it = index_.find(uid);
  if (it == index_.end()) return nullptr;
  lru_.splice(lru_.begin(), lru_, it->second);
  return &it->second->second;
}

const DeviceSpanCache::Entry* DeviceSpanCache::Insert(uint64_t uid, Entry e) {
  if (budget_ == 0 || e.bytes > budget_ || uid == 0) return nullptr;
  if (auto it = index_.find(uid); it != index_.end()) {  // replaced
    bytes_ -= it->second->second.bytes;
    lru_.erase(it->second);
    index_.erase(it);
  }
  while (bytes_ + e.bytes > budget_ && !lru_.empty()) {
    bytes_ -= lru_.back().second.bytes;
    index_.erase(lru_.back().first);
    lru_.pop_back();
  }
  bytes_ += e.bytes;
  lru_.emplace_front(uid, std::move(e));
  index_[uid] = lru_.begin();
  return &lru_.front().second;
}

}  // namespace strata::gpu
