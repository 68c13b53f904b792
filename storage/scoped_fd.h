// Move-only owner of a POSIX file descriptor, plus the few file helpers every module needs.
#ifndef STRATA_STORAGE_SCOPED_FD_H_
#define STRATA_STORAGE_SCOPED_FD_H_

#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"

namespace strata {

// Owns an fd; closes it (retrying EINTR) on destruction. Not thread-safe to mutate; the fd itself
// may be used concurrently with pread/pwrite.
class ScopedFd final {
 public:
  ScopedFd() = default;
  explicit ScopedFd(int fd) : fd_(fd) {}
  ~ScopedFd() { Reset(); }
  ScopedFd(ScopedFd&& other) noexcept : fd_(other.Release()) {}
  ScopedFd& operator=(ScopedFd&& other) noexcept;
  ScopedFd(const ScopedFd&) = delete;
  ScopedFd& operator=(const ScopedFd&) = delete;

  [[nodiscard]] int get() const { return fd_; }
  [[nodiscard]] bool valid() const { return fd_ >= 0; }
  int Release();
  void Reset();

 private:
  int fd_ = -1;
};

// Opens `path` with `flags` (and `mode` when creating). The error names the path and errno text.
[[nodiscard]] absl::StatusOr<ScopedFd> OpenFile(const std::string& path, int flags,
                                                int mode = 0644);

// Full-length positional I/O: loops over short transfers and EINTR. A read that hits end of file
// early returns DataLoss naming `what`.
[[nodiscard]] absl::Status PReadFull(int fd, void* buf, size_t n, uint64_t offset,
                                     const std::string& what);
[[nodiscard]] absl::Status PWriteFull(int fd, const void* buf, size_t n, uint64_t offset,
                                      const std::string& what);
[[nodiscard]] absl::Status WriteFull(int fd, const void* buf, size_t n, const std::string& what);

// fsync with a Status naming `what`.
[[nodiscard]] absl::Status SyncFd(int fd, const std::string& what);
// fsync of the directory holding a freshly renamed or created file.
[[nodiscard]] absl::Status SyncDir(const std::string& dir);

[[nodiscard]] absl::StatusOr<uint64_t> FileSize(const std::string& path);
[[nodiscard]] absl::StatusOr<std::string> ReadWholeFile(const std::string& path);
// Writes `data` to `path` atomically: a temp file in the same directory, fsync, rename, dir fsync
// (storage/env.h's WriteFileAtomic on Env::Default(), which says what a crash leaves).
[[nodiscard]] absl::Status WriteFileAtomic(const std::string& path, absl::Span<const char> data);
// A string literal would convert to a Span that includes its terminating NUL: pass a std::string.
template <size_t N>
absl::Status WriteFileAtomic(const std::string& path, const char (&literal)[N]) = delete;

// errno → Status with the matching code (ENOENT → NotFound, ENOSPC → ResourceExhausted, ...).
// A full disk (ENOSPC, EDQUOT) is a DiskFullError.
[[nodiscard]] absl::Status ErrnoToStatus(int err, const std::string& context);
// ResourceExhausted marked as a full disk (a payload), which IsDiskFull tells from other
// exhaustion (memory, file descriptors).
[[nodiscard]] absl::Status DiskFullError(const std::string& message);
[[nodiscard]] bool IsDiskFull(const absl::Status& s);

}  // namespace strata

#endif  // STRATA_STORAGE_SCOPED_FD_H_
