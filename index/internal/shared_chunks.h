// An array of fixed-width records kept in chunks that copies share, copy-on-write: copying the
// array copies a pointer per chunk, and a write clones only the chunk it lands in, once per copy.
//
// Why: posting maintenance (index/maintenance_step.cc) works each step out on its own copy of the
// collection's added heads (HeadOverlay), beside searches and other steps, and a step changes a
// few dozen records of them. Copied whole, the overlay cost ~10 MB of copying and page faults
// per step at 1M vectors past 20% replaced: a third of the maintenance threads' time.
//
// Ownership: a chunk this array made or cloned since it was last frozen is its own and is
// written in place; any other chunk is shared and is cloned on its first write. Records that were
// never written share one zero chunk (growing the array by n records costs a pointer per chunk,
// not n records of memory, until they are written). A copy owns nothing. The source of a copy
// must not write in place what the copy now shares, so a copy may only be taken of a frozen array
// (Freeze(): nothing owned any more; DCHECKed). An array is frozen when it is published for others
// to copy (the collection's overlay, after each change).
//
// Thread-compatible: const calls may run concurrently; copies of one frozen array may be taken
// concurrently (they touch only the chunks' atomic reference counts), and each copy then belongs
// to its own thread. Chunks no array owns are never written, so copies in other threads read
// them safely.
#ifndef STRATA_INDEX_INTERNAL_SHARED_CHUNKS_H_
#define STRATA_INDEX_INTERNAL_SHARED_CHUNKS_H_

#include <algorithm>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <type_traits>
#include <utility>
#include <vector>

#include "base/check.h"

namespace strata::internal {

template <typename T>
class SharedChunks final {
  static_assert(std::is_trivially_copyable_v<T>, "records are copied bytewise");

 public:
  // Records of `width` T's (> 0), `per_chunk` records to a chunk (a power of two: walks find a
  // record by a shift and a mask, not a division).
  SharedChunks(size_t width, size_t per_chunk)
      : width_(width), per_chunk_(per_chunk), shift_(std::countr_zero(per_chunk)) {
    DCHECK(width > 0 && std::has_single_bit(per_chunk));
  }
  SharedChunks(const SharedChunks& other)
      : width_(other.width_),
        per_chunk_(other.per_chunk_),
        shift_(other.shift_),
        size_(other.size_),
        chunks_(other.chunks_),
        owned_(other.chunks_.size(), 0),
        zero_(other.zero_) {
    DCHECK(other.owned_count_ == 0);  // copies are taken of frozen arrays only
  }
  SharedChunks& operator=(const SharedChunks& other) {
    if (this != &other) *this = SharedChunks(other);
    return *this;
  }
  // (A moved-from array is empty.)
  SharedChunks(SharedChunks&& other) noexcept { *this = std::move(other); }
  SharedChunks& operator=(SharedChunks&& other) noexcept {
    if (this == &other) return *this;
    width_ = other.width_;
    per_chunk_ = other.per_chunk_;
    shift_ = other.shift_;
    size_ = std::exchange(other.size_, 0);
    chunks_ = std::move(other.chunks_);
    owned_ = std::move(other.owned_);
    owned_count_ = std::exchange(other.owned_count_, 0);
    zero_ = std::move(other.zero_);
    other.chunks_.clear();
    other.owned_.clear();
    return *this;
  }

  [[nodiscard]] size_t size() const { return size_; }
  [[nodiscard]] size_t width() const { return width_; }

  // Record i (< size()): width() T's, valid until this array writes or drops its chunk.
  [[nodiscard]] const T* Get(size_t i) const {
    DCHECK(i < size_);
    return chunks_[i >> shift_].get() + (i & (per_chunk_ - 1)) * width_;
  }
  // Record i (< size()) to write: its chunk cloned first unless it is this array's own. The
  // pointer is valid until the next non-const call.
  [[nodiscard]] T* Mutable(size_t i) {
    DCHECK(i < size_);
    const size_t c = i >> shift_;
    if (!owned_[c]) {
      std::shared_ptr<T[]> copy = std::make_shared_for_overwrite<T[]>(per_chunk_ * width_);
      std::memcpy(copy.get(), chunks_[c].get(), per_chunk_ * width_ * sizeof(T));
      chunks_[c] = std::move(copy);
      owned_[c] = 1;
      ++owned_count_;
    }
    return chunks_[c].get() + (i & (per_chunk_ - 1)) * width_;
  }
  // Grows the array to n records (>= size()), the new ones zeroed.
  void Resize(size_t n) {
    DCHECK(n >= size_);
    // Records past size_ in the last chunk are zero still: only Resize and Append reach them, and
    // every chunk starts as the zero chunk (a clone copies them as they are).
    if (chunks_.size() * per_chunk_ < n && zero_ == nullptr) {
      zero_ = std::make_shared<T[]>(per_chunk_ * width_);  // zeroed; never written
    }
    while (chunks_.size() * per_chunk_ < n) {
      chunks_.push_back(zero_);
      owned_.push_back(0);
    }
    size_ = n;
  }
  // Appends a zeroed record and returns it to write (valid until the next non-const call).
  T* Append() {
    if (size_ == chunks_.size() * per_chunk_) {
      // (A chunk of its own at once: appending writes it next, and an array only appended to
      // never needs the zero chunk.)
      chunks_.push_back(std::make_shared<T[]>(per_chunk_ * width_));  // zeroed
      owned_.push_back(1);
      ++owned_count_;
    }
    ++size_;
    return Mutable(size_ - 1);
  }
  // From now on every chunk is shared: copies may be taken, and this array's next write to any
  // chunk clones it.
  void Freeze() {
    std::fill(owned_.begin(), owned_.end(), 0);
    owned_count_ = 0;
  }
  [[nodiscard]] bool frozen() const { return owned_count_ == 0; }
  // Bytes of the chunks held (shared ones counted by each array holding them; the zero chunk
  // once) and the table.
  [[nodiscard]] uint64_t MemoryBytes() const {
    uint64_t bytes = chunks_.size() * (sizeof(chunks_[0]) + 1);
    for (const auto& c : chunks_) bytes += c == zero_ ? 0 : per_chunk_ * width_ * sizeof(T);
    return bytes + (zero_ != nullptr ? per_chunk_ * width_ * sizeof(T) : 0);
  }

 private:
  size_t width_;
  size_t per_chunk_;
  int shift_;  // log2(per_chunk_)
  size_t size_ = 0;
  std::vector<std::shared_ptr<T[]>> chunks_;
  std::vector<uint8_t> owned_;  // per chunk: this array's own (written in place)
  size_t owned_count_ = 0;
  std::shared_ptr<T[]> zero_;  // the chunk of records never written (shared, never owned)
};

}  // namespace strata::internal

#endif  // STRATA_INDEX_INTERNAL_SHARED_CHUNKS_H_
