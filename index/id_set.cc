#include "index/id_set.h"

#include <iterator>

namespace strata {
namespace {

std::vector<uint32_t> SortedUnique(absl::Span<const uint32_t> ids) {
  std::vector<uint32_t> v(ids.begin(), ids.end());
  std::sort(v.begin(), v.end());
  v.erase(std::unique(v.begin(), v.end()), v.end());
  return v;
}

}  // namespace

uint64_t IdSet::Insert(absl::Span<const uint32_t> ids) {
  if (ids.empty()) return 0;
  const uint64_t before = size_;
  if (dense_) {
    for (uint32_t id : ids) {
      if (id / 64 >= bits_.size()) {
        // An eighth more than needed, allocated exactly (a vector's own growth could double it).
        const size_t n = id / 64 + 1 + bits_.size() / 8;
        bits_.reserve(n);
        bits_.resize(n, 0);
      }
      uint64_t& w = bits_[id / 64];
      const uint64_t bit = uint64_t{1} << (id % 64);
      size_ += (w & bit) == 0;
      w |= bit;
    }
  } else {
    std::vector<uint32_t> add = SortedUnique(ids);
    std::vector<uint32_t> merged;
    merged.reserve(sorted_.size() + add.size());
    std::set_union(sorted_.begin(), sorted_.end(), add.begin(), add.end(),
                   std::back_inserter(merged));
    sorted_ = std::move(merged);
    size_ = sorted_.size();
  }
  Reshape();
  Refence();
  return size_ - before;
}

uint64_t IdSet::Erase(absl::Span<const uint32_t> ids) {
  if (ids.empty() || size_ == 0) return 0;
  const uint64_t before = size_;
  if (dense_) {
    for (uint32_t id : ids) {
      if (id / 64 >= bits_.size()) continue;
      uint64_t& w = bits_[id / 64];
      const uint64_t bit = uint64_t{1} << (id % 64);
      size_ -= (w & bit) != 0;
      w &= ~bit;
    }
  } else {
    std::vector<uint32_t> drop = SortedUnique(ids);
    std::vector<uint32_t> kept;
    kept.reserve(sorted_.size());
    std::set_difference(sorted_.begin(), sorted_.end(), drop.begin(), drop.end(),
                        std::back_inserter(kept));
    sorted_ = std::move(kept);
    size_ = sorted_.size();
  }
  Reshape();
  Refence();
  return before - size_;
}

void IdSet::Clear() {
  dense_ = false;
  size_ = 0;
  sorted_ = {};
  fences_ = {};
  bits_ = {};
}

void IdSet::ForEach(absl::FunctionRef<void(uint32_t)> visit) const {
  if (!dense_) {
    for (uint32_t id : sorted_) visit(id);
    return;
  }
  for (size_t w = 0; w < bits_.size(); ++w) {
    for (uint64_t word = bits_[w]; word != 0; word &= word - 1) {
      visit(static_cast<uint32_t>(w * 64 + static_cast<uint64_t>(__builtin_ctzll(word))));
    }
  }
}

std::vector<uint32_t> IdSet::ToVector() const {
  std::vector<uint32_t> out;
  out.reserve(size_);
  ForEach([&](uint32_t id) { out.push_back(id); });
  return out;
}

void IdSet::Reshape() {
  // Bytes of each form: 4 per member sorted; one bit per id of the range as a bitmap.
  if (!dense_) {
    if (size_ < 1024) return;
    const uint64_t bitmap_bytes = (uint64_t{sorted_.back()} / 64 + 1) * 8;
    if (bitmap_bytes * 2 > size_ * 4) return;  // a bitmap must halve the bytes to switch
    std::vector<uint64_t> bits(sorted_.back() / 64 + 1, 0);
    for (uint32_t id : sorted_) bits[id / 64] |= uint64_t{1} << (id % 64);
    bits_ = std::move(bits);
    sorted_ = {};
    dense_ = true;
    return;
  }
  // Dense: back to sorted once the array would be a quarter of the bitmap or less.
  while (!bits_.empty() && bits_.back() == 0) bits_.pop_back();
  if (size_ * 4 * 4 > bits_.size() * 8 && size_ >= 1024) return;
  std::vector<uint32_t> sorted;
  sorted.reserve(size_);
  ForEach([&](uint32_t id) { sorted.push_back(id); });
  sorted_ = std::move(sorted);
  bits_ = {};
  dense_ = false;
}

void IdSet::Refence() {
  fences_.clear();
  if (dense_) {
    fences_.shrink_to_fit();
    return;
  }
  const size_t n = (sorted_.size() + kFenceStride - 1) / kFenceStride;
  if (fences_.capacity() > 2 * n) fences_.shrink_to_fit();
  fences_.reserve(n);
  for (size_t i = 0; i < sorted_.size(); i += kFenceStride) fences_.push_back(sorted_[i]);
}

}  // namespace strata
