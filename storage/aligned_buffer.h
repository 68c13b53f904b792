// Owner of a heap buffer aligned for O_DIRECT I/O (4 KiB by default).
#ifndef STRATA_STORAGE_ALIGNED_BUFFER_H_
#define STRATA_STORAGE_ALIGNED_BUFFER_H_

#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <new>
#include <utility>

namespace strata {

inline constexpr size_t kPageSize = 4096;

// Rounds `n` up to a multiple of `align` (a power of two).
constexpr size_t AlignUp(size_t n, size_t align) { return (n + align - 1) & ~(align - 1); }

// Move-only, zero-initialised, `alignment`-aligned byte buffer. Size is rounded up to the
// alignment.
class AlignedBuffer final {
 public:
  AlignedBuffer() = default;
  explicit AlignedBuffer(size_t size, size_t alignment = kPageSize) { Resize(size, alignment); }
  ~AlignedBuffer() { std::free(data_); }
  AlignedBuffer(AlignedBuffer&& o) noexcept
      : data_(std::exchange(o.data_, nullptr)), size_(std::exchange(o.size_, 0)) {}
  AlignedBuffer& operator=(AlignedBuffer&& o) noexcept {
    if (this != &o) {
      std::free(data_);
      data_ = std::exchange(o.data_, nullptr);
      size_ = std::exchange(o.size_, 0);
    }
    return *this;
  }
  AlignedBuffer(const AlignedBuffer&) = delete;
  AlignedBuffer& operator=(const AlignedBuffer&) = delete;

  // Discards the contents; grows only (keeps a larger allocation).
  void Resize(size_t size, size_t alignment = kPageSize) {
    size_t want = AlignUp(size == 0 ? alignment : size, alignment);
    if (want <= size_) return;
    std::free(data_);
    data_ = static_cast<char*>(std::aligned_alloc(alignment, want));
    if (data_ == nullptr) throw std::bad_alloc();
    std::memset(data_, 0, want);
    size_ = want;
  }

  [[nodiscard]] char* data() { return data_; }
  [[nodiscard]] const char* data() const { return data_; }
  [[nodiscard]] size_t size() const { return size_; }

 private:
  char* data_ = nullptr;
  size_t size_ = 0;
};

}  // namespace strata

#endif  // STRATA_STORAGE_ALIGNED_BUFFER_H_
