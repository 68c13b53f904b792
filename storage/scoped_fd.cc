#include "storage/scoped_fd.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "absl/strings/cord.h"
#include "absl/strings/str_cat.h"
#include "storage/env.h"

namespace strata {

ScopedFd& ScopedFd::operator=(ScopedFd&& other) noexcept {
  if (this != &other) {
    Reset();
    fd_ = other.Release();
  }
  return *this;
}

int ScopedFd::Release() {
  int fd = fd_;
  fd_ = -1;
  return fd;
}

void ScopedFd::Reset() {
  if (fd_ >= 0) {
    // Linux closes the fd even when close() reports EINTR, so retrying would risk closing a reused
    // fd.
    ::close(fd_);
    fd_ = -1;
  }
}

namespace {
constexpr char kDiskFullUrl[] = "type.strata.dev/disk-full";
}  // namespace

absl::Status DiskFullError(const std::string& message) {
  absl::Status s = absl::ResourceExhaustedError(message);
  s.SetPayload(kDiskFullUrl, absl::Cord("1"));
  return s;
}

bool IsDiskFull(const absl::Status& s) {
  return absl::IsResourceExhausted(s) && s.GetPayload(kDiskFullUrl).has_value();
}

absl::Status ErrnoToStatus(int err, const std::string& context) {
  std::string msg = absl::StrCat(context, ": ", std::strerror(err));
  switch (err) {
    case ENOENT:
      return absl::NotFoundError(msg);
    case EEXIST:
      return absl::AlreadyExistsError(msg);
    case EACCES:
    case EPERM:
      return absl::PermissionDeniedError(msg);
    case ENOSPC:
    case EDQUOT:
      return DiskFullError(msg);
    case ENOMEM:
    case EMFILE:
      return absl::ResourceExhaustedError(msg);
    case EINVAL:
    case ENOTDIR:
    case EISDIR:
      return absl::InvalidArgumentError(msg);
    case EIO:
      return absl::DataLossError(msg);
    default:
      return absl::InternalError(msg);
  }
}

absl::StatusOr<ScopedFd> OpenFile(const std::string& path, int flags, int mode) {
  int fd;
  do {
    fd = ::open(path.c_str(), flags | O_CLOEXEC, mode);
  } while (fd < 0 && errno == EINTR);
  if (fd < 0) return ErrnoToStatus(errno, absl::StrCat("open ", path));
  return ScopedFd(fd);
}

absl::Status PReadFull(int fd, void* buf, size_t n, uint64_t offset, const std::string& what) {
  auto* p = static_cast<char*>(buf);
  size_t done = 0;
  while (done < n) {
    ssize_t r = ::pread(fd, p + done, n - done, static_cast<off_t>(offset + done));
    if (r < 0) {
      if (errno == EINTR) continue;
      return ErrnoToStatus(errno, absl::StrCat("read ", what, " at offset ", offset + done));
    }
    if (r == 0) {
      return absl::DataLossError(absl::StrCat("read ", what, ": unexpected end of file at offset ",
                                              offset + done, " (wanted ", n, " bytes from ", offset,
                                              ")"));
    }
    done += static_cast<size_t>(r);
  }
  return absl::OkStatus();
}

absl::Status PWriteFull(int fd, const void* buf, size_t n, uint64_t offset,
                        const std::string& what) {
  const auto* p = static_cast<const char*>(buf);
  size_t done = 0;
  while (done < n) {
    ssize_t r = ::pwrite(fd, p + done, n - done, static_cast<off_t>(offset + done));
    if (r < 0) {
      if (errno == EINTR) continue;
      return ErrnoToStatus(errno, absl::StrCat("write ", what, " at offset ", offset + done));
    }
    done += static_cast<size_t>(r);
  }
  return absl::OkStatus();
}

absl::Status WriteFull(int fd, const void* buf, size_t n, const std::string& what) {
  const auto* p = static_cast<const char*>(buf);
  size_t done = 0;
  while (done < n) {
    ssize_t r = ::write(fd, p + done, n - done);
    if (r < 0) {
      if (errno == EINTR) continue;
      return ErrnoToStatus(errno, absl::StrCat("write ", what));
    }
    done += static_cast<size_t>(r);
  }
  return absl::OkStatus();
}

absl::Status SyncFd(int fd, const std::string& what) {
  if (::fsync(fd) != 0) return ErrnoToStatus(errno, absl::StrCat("fsync ", what));
  return absl::OkStatus();
}

absl::Status SyncDir(const std::string& dir) {
  auto fd = OpenFile(dir.empty() ? "." : dir, O_RDONLY | O_DIRECTORY);
  if (!fd.ok()) return fd.status();
  return SyncFd(fd->get(), dir);
}

absl::StatusOr<uint64_t> FileSize(const std::string& path) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) return ErrnoToStatus(errno, absl::StrCat("stat ", path));
  return static_cast<uint64_t>(st.st_size);
}

absl::StatusOr<std::string> ReadWholeFile(const std::string& path) {
  auto fd = OpenFile(path, O_RDONLY);
  if (!fd.ok()) return fd.status();
  struct stat st;
  if (::fstat(fd->get(), &st) != 0) return ErrnoToStatus(errno, absl::StrCat("stat ", path));
  std::string data(static_cast<size_t>(st.st_size), '\0');
  absl::Status s = PReadFull(fd->get(), data.data(), data.size(), 0, path);
  if (!s.ok()) return s;
  return data;
}

absl::Status WriteFileAtomic(const std::string& path, absl::Span<const char> data) {
  return WriteFileAtomic(*Env::Default(), path, data);
}

}  // namespace strata
