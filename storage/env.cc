#include "storage/env.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <filesystem>

#include "absl/strings/str_cat.h"
#include "storage/scoped_fd.h"
#include "storage/status_macros.h"

namespace strata {
namespace {

class PosixWritableFile final : public WritableFile {
 public:
  PosixWritableFile(std::string path, ScopedFd fd) : path_(std::move(path)), fd_(std::move(fd)) {}
  absl::Status Append(absl::string_view data) override {
    if (!fd_.valid()) return absl::FailedPreconditionError(absl::StrCat(path_, " is closed"));
    return WriteFull(fd_.get(), data.data(), data.size(), path_);
  }
  absl::Status Sync() override {
    if (!fd_.valid()) return absl::FailedPreconditionError(absl::StrCat(path_, " is closed"));
    return SyncFd(fd_.get(), path_);
  }
  absl::Status WriteAt(uint64_t offset, absl::string_view data) override {
    if (!fd_.valid()) return absl::FailedPreconditionError(absl::StrCat(path_, " is closed"));
    return PWriteFull(fd_.get(), data.data(), data.size(), offset, path_);
  }
  absl::Status Allocate(uint64_t size) override {
    if (!fd_.valid()) return absl::FailedPreconditionError(absl::StrCat(path_, " is closed"));
    struct stat st;
    if (::fstat(fd_.get(), &st) != 0) return ErrnoToStatus(errno, absl::StrCat("stat ", path_));
    const auto had = static_cast<uint64_t>(st.st_size);
    if (size <= had) return absl::OkStatus();
    // Only the bytes past the end: where the file system cannot allocate, glibc writes the blocks
    // itself, and it reads those below the end first, which this write-only descriptor cannot.
    const int err =
        ::posix_fallocate(fd_.get(), static_cast<off_t>(had), static_cast<off_t>(size - had));
    if (err != 0) {
      return ErrnoToStatus(err, absl::StrCat("allocating ", size, " bytes for ", path_));
    }
    return absl::OkStatus();
  }
  absl::Status Close() override {
    if (!fd_.valid()) return absl::FailedPreconditionError(absl::StrCat(path_, " is closed"));
    const int fd = fd_.Release();
    if (::close(fd) != 0 && errno != EINTR) {  // EINTR: Linux has closed it anyway
      return ErrnoToStatus(errno, absl::StrCat("close ", path_));
    }
    return absl::OkStatus();
  }

 private:
  const std::string path_;
  ScopedFd fd_;
};

class PosixEnv final : public Env {
 public:
  absl::StatusOr<std::unique_ptr<WritableFile>> NewWritableFile(const std::string& path) override {
    ASSIGN_OR_RETURN(ScopedFd fd, OpenFile(path, O_WRONLY | O_CREAT | O_TRUNC));
    return std::make_unique<PosixWritableFile>(path, std::move(fd));
  }
  absl::StatusOr<std::unique_ptr<WritableFile>> OpenWritableFile(const std::string& path) override {
    ASSIGN_OR_RETURN(ScopedFd fd, OpenFile(path, O_WRONLY | O_CREAT));
    // Append goes on at the end (not O_APPEND: Linux's pwrite would ignore WriteAt's offset).
    if (::lseek(fd.get(), 0, SEEK_END) < 0) {
      return ErrnoToStatus(errno, absl::StrCat("seek to the end of ", path));
    }
    return std::make_unique<PosixWritableFile>(path, std::move(fd));
  }
  absl::Status RenameFile(const std::string& from, const std::string& to) override {
    if (::rename(from.c_str(), to.c_str()) != 0) {
      return ErrnoToStatus(errno, absl::StrCat("rename ", from, " to ", to));
    }
    return absl::OkStatus();
  }
  absl::Status RemoveFile(const std::string& path) override {
    if (::unlink(path.c_str()) != 0) return ErrnoToStatus(errno, absl::StrCat("remove ", path));
    return absl::OkStatus();
  }
  absl::Status SyncDir(const std::string& dir) override { return ::strata::SyncDir(dir); }
  absl::StatusOr<std::string> ReadFile(const std::string& path) override {
    return ReadWholeFile(path);
  }
  bool FileExists(const std::string& path) override {
    struct stat st;
    return ::stat(path.c_str(), &st) == 0;
  }
  absl::Status CreateDir(const std::string& path) override {
    if (::mkdir(path.c_str(), 0755) != 0 && errno != EEXIST) {
      return ErrnoToStatus(errno, absl::StrCat("create directory ", path));
    }
    return absl::OkStatus();
  }
  absl::Status RemoveTree(const std::string& path) override {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
    if (ec) return ErrnoToStatus(ec.value(), absl::StrCat("remove ", path));
    return absl::OkStatus();
  }
  absl::StatusOr<std::vector<std::string>> GetChildren(const std::string& dir) override {
    std::error_code ec;
    std::vector<std::string> names;
    for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) {
      names.push_back(entry.path().filename().string());
    }
    if (ec) return ErrnoToStatus(ec.value(), absl::StrCat("list ", dir));
    return names;
  }
};

}  // namespace

Env* Env::Default() {
  static Env* env = new PosixEnv();
  return env;
}

absl::Status CreateDirs(Env& env, const std::string& path) {
  std::vector<std::string> missing;
  for (std::filesystem::path p = std::filesystem::path(path).lexically_normal();
       !p.empty() && p != p.root_path() && !env.FileExists(p.string()); p = p.parent_path()) {
    missing.push_back(p.string());
    if (!p.has_parent_path()) break;
  }
  for (auto it = missing.rbegin(); it != missing.rend(); ++it) {
    RETURN_IF_ERROR(env.CreateDir(*it));
    const std::string parent = std::filesystem::path(*it).parent_path().string();
    RETURN_IF_ERROR(env.SyncDir(parent.empty() ? "." : parent));
  }
  return absl::OkStatus();
}

absl::Status WriteFileAtomic(Env& env, const std::string& path, absl::Span<const char> data) {
  const std::string tmp = absl::StrCat(path, ".tmp");
  {
    ASSIGN_OR_RETURN(std::unique_ptr<WritableFile> f, env.NewWritableFile(tmp));
    RETURN_IF_ERROR(f->Append(absl::string_view(data.data(), data.size())));
    RETURN_IF_ERROR(f->Sync());
    RETURN_IF_ERROR(f->Close());
  }
  RETURN_IF_ERROR(env.RenameFile(tmp, path));
  return env.SyncDir(std::filesystem::path(path).parent_path().string());
}

}  // namespace strata
