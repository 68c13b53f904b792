#include "storage/mapped_arena.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"
#include "storage/log.h"
#include "storage/status_macros.h"

namespace strata {
namespace {

constexpr uint64_t kPage = 4096;
constexpr uint64_t kMinBytes = 64 * 1024;
constexpr uint64_t kMaxStep = uint64_t{256} << 20;

uint64_t WholePages(uint64_t bytes) { return (bytes + kPage - 1) / kPage * kPage; }

}  // namespace

absl::StatusOr<std::unique_ptr<MappedArena>> MappedArena::Create(Env& env, std::string path) {
  ASSIGN_OR_RETURN(std::unique_ptr<WritableFile> file, env.NewWritableFile(path));
  absl::StatusOr<ScopedFd> fd = OpenFile(path, O_RDWR);
  absl::Status removed = env.RemoveFile(path);  // (the descriptors keep the file)
  if (!fd.ok()) return fd.status();
  RETURN_IF_ERROR(removed);
  return std::unique_ptr<MappedArena>(
      new MappedArena(std::move(path), std::move(file), *std::move(fd)));
}

MappedArena::~MappedArena() {
  if (map_ != nullptr) ::munmap(map_, mapped_);
  fd_.Reset();
  (void)file_->Close();  // (nothing of it is kept: the last descriptor gone, so is the file)
}

absl::StatusOr<uint64_t> MappedArena::SizeOnDisk() const {
  struct stat st;
  if (::fstat(fd_.get(), &st) != 0) return ErrnoToStatus(errno, absl::StrCat("stat ", path_));
  return static_cast<uint64_t>(st.st_size);
}

absl::Status MappedArena::Allocate(uint64_t bytes) {
  const uint64_t had = allocated_.load(std::memory_order_relaxed);
  if (bytes <= had) return absl::OkStatus();
  // Doubling, by at most kMaxStep at a time (a scratch copy must not take the disk from the
  // durable store beside it); the exact size when that much cannot be had.
  const uint64_t step = std::min(std::max(had, kMinBytes), kMaxStep);
  absl::Status s;
  for (const uint64_t want : {WholePages(std::max(bytes, had + step)), WholePages(bytes)}) {
    // The blocks are reserved: a store through the mapping never meets a full disk.
    s = file_->Allocate(want);
    if (s.ok()) {
      allocated_.store(want, std::memory_order_relaxed);
      return absl::OkStatus();
    }
    // A file system may keep what it allocated before it failed: given back, the file is as it
    // was (the mapping never reaches past `had`).
    if (::ftruncate(fd_.get(), static_cast<off_t>(had)) != 0) {
      Log(LogLevel::kWarning, "cutting %s back to %d bytes: %s", path_, had, std::strerror(errno));
    }
    if (want == WholePages(bytes)) break;
  }
  return s;
}

absl::Status MappedArena::Map() {
  const uint64_t allocated = allocated_.load(std::memory_order_relaxed);
  if (allocated == mapped_) return absl::OkStatus();
  void* at;
  if (map_ == nullptr) {
    at = ::mmap(nullptr, allocated, PROT_READ | PROT_WRITE, MAP_SHARED, fd_.get(), 0);
  } else {
    at = ::mremap(map_, mapped_, allocated, MREMAP_MAYMOVE);
  }
  if (at == MAP_FAILED) return ErrnoToStatus(errno, absl::StrCat("mapping ", path_));
  map_ = at;
  mapped_ = allocated;
  return absl::OkStatus();
}

absl::Status MappedArena::Reserve(uint64_t bytes) {
  RETURN_IF_ERROR(Allocate(bytes));
  return Map();
}

void MappedArena::ShrinkTo(uint64_t bytes) {
  bytes = WholePages(bytes);
  if (map_ == nullptr || bytes >= mapped_) return;
  if (bytes == 0) {
    ::munmap(map_, mapped_);
    map_ = nullptr;
    mapped_ = 0;
    return;
  }
  // Shrinking in place never moves the bytes kept.
  void* at = ::mremap(map_, mapped_, bytes, 0);
  if (at == MAP_FAILED) {
    Log(LogLevel::kWarning, "shrinking the mapping of %s: %s", path_, std::strerror(errno));
    return;
  }
  mapped_ = bytes;
}

void MappedArena::Trim() {
  const uint64_t allocated = allocated_.load(std::memory_order_relaxed);
  if (allocated <= mapped_) return;
  if (::ftruncate(fd_.get(), static_cast<off_t>(mapped_)) != 0) {
    Log(LogLevel::kWarning, "shrinking %s: %s", path_, std::strerror(errno));
    return;
  }
  allocated_.store(mapped_, std::memory_order_relaxed);
}

}  // namespace strata
