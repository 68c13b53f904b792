#include "storage/block_reader.h"

#include <fcntl.h>
#include <liburing.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <vector>

#include "absl/strings/str_cat.h"
#include "storage/log.h"
#include "storage/scoped_fd.h"
#include "storage/status_macros.h"

namespace strata {

const char* IoEngineName(IoEngine e) {
  switch (e) {
    case IoEngine::kAuto:
      return "auto";
    case IoEngine::kIoUring:
      return "io_uring";
    case IoEngine::kPread:
      return "pread";
  }
  return "?";
}

namespace {

absl::Status ShortRead(const std::string& path, const ReadOp& op, int64_t got) {
  return absl::DataLossError(absl::StrCat("short read of ", path, ": got ", got, " of ", op.length,
                                          " bytes at offset ", op.offset,
                                          " (file truncated or device error)"));
}

class PreadReader final : public BlockReader {
 public:
  PreadReader(int fd, const std::string* path) : fd_(fd), path_(path) {}

  absl::Status ReadBatch(absl::Span<const ReadOp> ops,
                         absl::FunctionRef<absl::Status(size_t)> on_done) override {
    for (size_t i = 0; i < ops.size(); ++i) {
      const ReadOp& op = ops[i];
      size_t done = 0;
      while (done < op.length) {
        ssize_t r =
            ::pread(fd_, op.buf + done, op.length - done, static_cast<off_t>(op.offset + done));
        if (r < 0) {
          if (errno == EINTR) continue;
          return ErrnoToStatus(errno, absl::StrCat("read ", *path_, " at offset ", op.offset));
        }
        if (r == 0) return ShortRead(*path_, op, static_cast<int64_t>(done));
        done += static_cast<size_t>(r);
      }
      RETURN_IF_ERROR(on_done(i));
    }
    return absl::OkStatus();
  }

 private:
  int fd_;
  const std::string* path_;
};

// One ring per reader (per query thread): no locking on the hot path. The ring is set up once and
// reused for every batch; ops beyond the queue depth are submitted as earlier ones complete.
//
// Failure paths: the kernel writes a read's data into the caller's buffer whenever the read
// completes, so a batch may only return once every read it submitted has completed. An error
// stops new submissions and drains the rest. A failed wait is retried (the kernel's transient
// EINTR/EAGAIN/EBUSY, up to kTransientRetries in a row) and, for any other error, the ring is
// drained with up to kDrainAttempts more waits and the reader marked unusable; reads still in
// flight after that are counted in abandoned_reads() so their buffers are never reused. A failed
// submit marks the reader unusable too (the queued entries' state is unknown).
class IoUringReader final : public BlockReader {
 public:
  static absl::StatusOr<std::unique_ptr<IoUringReader>> Create(int fd, const std::string* path,
                                                               unsigned depth,
                                                               const std::function<int()>* inject) {
    auto r = std::unique_ptr<IoUringReader>(new IoUringReader(fd, path, depth, inject));
    int rc = io_uring_queue_init(depth, &r->ring_, 0);
    if (rc < 0) return ErrnoToStatus(-rc, "io_uring_queue_init");
    r->ring_ok_ = true;
    return r;
  }
  ~IoUringReader() override {
    // With reads abandoned in flight, closing the ring would not stop them either; the caller
    // leaks their buffers (abandoned_reads()).
    if (ring_ok_) io_uring_queue_exit(&ring_);
  }
  IoUringReader(const IoUringReader&) = delete;
  IoUringReader& operator=(const IoUringReader&) = delete;

  bool usable() const override { return !broken_; }
  size_t abandoned_reads() const override { return abandoned_; }

  absl::Status ReadBatch(absl::Span<const ReadOp> ops,
                         absl::FunctionRef<absl::Status(size_t)> on_done) override {
    if (broken_) return absl::InternalError("io_uring reader is unusable after a ring failure");
    size_t next = 0, inflight = 0;
    int wait_failures = 0, transient = 0;
    absl::Status first_error;
    auto stop = [&](absl::Status s) {
      if (first_error.ok()) first_error = std::move(s);
      next = ops.size();  // submit nothing more
    };
    while (next < ops.size() || inflight > 0) {
      // Fill the ring while there is room and no error yet.
      unsigned queued = 0;
      while (first_error.ok() && next < ops.size() && inflight < depth_) {
        io_uring_sqe* sqe = io_uring_get_sqe(&ring_);
        if (sqe == nullptr) break;
        const ReadOp& op = ops[next];
        io_uring_prep_read(sqe, fd_, op.buf, op.length, op.offset);
        io_uring_sqe_set_data64(sqe, next);
        ++next;
        ++inflight;
        ++queued;
      }
      if (queued > 0) {
        int rc = io_uring_submit(&ring_);
        if (rc < 0) {
          // The queued entries stay in the submission ring in an unknown state: retire this
          // reader once what was already in flight has completed.
          broken_ = true;
          inflight -= queued;
          stop(ErrnoToStatus(-rc, "io_uring_submit"));
        } else if (static_cast<unsigned>(rc) < queued) {
          // Submitted in part: the rest would go with a later submit that this batch may never
          // make. Count only what went; the reader is retired after draining.
          broken_ = true;
          inflight -= queued - static_cast<unsigned>(rc);
          stop(absl::InternalError(
              absl::StrCat("io_uring_submit took ", rc, " of ", queued, " reads of ", *path_)));
        }
      }
      if (inflight == 0) break;  // nothing of ours left in the kernel
      io_uring_cqe* cqe = nullptr;
      int rc = inject_ != nullptr && *inject_ ? (*inject_)() : 0;
      if (rc > 0) rc = -EINVAL;  // the hook answers with a negative errno or 0
      if (rc == 0) rc = io_uring_wait_cqe(&ring_, &cqe);
      if ((rc == -EINTR || rc == -EAGAIN || rc == -EBUSY) && ++transient < kTransientRetries) {
        continue;
      }
      if (rc < 0) {
        broken_ = true;
        stop(ErrnoToStatus(-rc, absl::StrCat("io_uring wait for reads of ", *path_)));
        if (++wait_failures > kDrainAttempts) {
          abandoned_ = inflight;
          Log(LogLevel::kError,
              "io_uring ring of %s failed with %zu reads in flight that could not be collected; "
              "their buffers are leaked so no late write lands in reused memory",
              *path_, inflight);
          return first_error;
        }
        continue;
      }
      const uint64_t i = io_uring_cqe_get_data64(cqe);
      const int res = cqe->res;
      io_uring_cqe_seen(&ring_, cqe);
      if (i >= ops.size()) {
        // Not one of this batch's reads: the ring is not what we think it is, and counting on it
        // to return the rest could wait forever.
        broken_ = true;
        abandoned_ = inflight;
        Log(LogLevel::kError,
            "io_uring ring of %s returned an unknown completion with %zu reads in flight; their "
            "buffers are leaked so no late write lands in reused memory",
            *path_, inflight);
        stop(absl::InternalError(
            absl::StrCat("io_uring returned an unknown completion reading ", *path_)));
        return first_error;
      }
      transient = 0;
      --inflight;
      if (!first_error.ok()) continue;  // keep draining so no kernel write lands after return
      if (res < 0) {
        stop(ErrnoToStatus(
            -res, absl::StrCat("read ", *path_, " at offset ", ops[i].offset, " (io_uring)")));
      } else if (static_cast<uint32_t>(res) < ops[i].length) {
        stop(ShortRead(*path_, ops[i], res));
      } else if (absl::Status s = on_done(i); !s.ok()) {
        stop(std::move(s));
      }
    }
    return first_error;
  }

 private:
  static constexpr int kDrainAttempts = 64;
  // Interrupted or busy waits in a row before one counts as a failure (a signal storm, or a
  // kernel that keeps answering EBUSY, must not spin a query thread forever).
  static constexpr int kTransientRetries = 1 << 16;
  IoUringReader(int fd, const std::string* path, unsigned depth, const std::function<int()>* inject)
      : fd_(fd), path_(path), depth_(depth), inject_(inject) {}
  int fd_;
  const std::string* path_;
  unsigned depth_;
  const std::function<int()>* inject_;  // BlockFileOptions::inject_wait_error; may be null
  io_uring ring_{};
  bool ring_ok_ = false;
  bool broken_ = false;
  size_t abandoned_ = 0;
};

class BlockFileImpl final : public BlockFile {
 public:
  BlockFileImpl(ScopedFd fd, std::string path, IoEngine engine, bool direct, uint64_t size,
                unsigned depth, std::function<int()> inject_wait_error)
      : fd_(std::move(fd)),
        path_(std::move(path)),
        engine_(engine),
        direct_(direct),
        size_(size),
        depth_(depth),
        inject_wait_error_(std::move(inject_wait_error)) {}

  absl::StatusOr<std::unique_ptr<BlockReader>> NewReader() override {
    if (engine_ == IoEngine::kIoUring) {
      ASSIGN_OR_RETURN(auto r,
                       IoUringReader::Create(fd_.get(), &path_, depth_, &inject_wait_error_));
      return std::unique_ptr<BlockReader>(std::move(r));
    }
    return std::unique_ptr<BlockReader>(new PreadReader(fd_.get(), &path_));
  }
  IoEngine engine() const override { return engine_; }
  bool direct() const override { return direct_; }
  uint64_t size() const override { return size_; }
  const std::string& path() const override { return path_; }

 private:
  ScopedFd fd_;
  std::string path_;
  IoEngine engine_;
  bool direct_;
  uint64_t size_;
  unsigned depth_;
  std::function<int()> inject_wait_error_;
};

}  // namespace

bool IoUringAvailable() {
  static const bool ok = [] {
    io_uring ring;
    int rc = io_uring_queue_init(4, &ring, 0);
    if (rc < 0) {
      Log(LogLevel::kWarning, "io_uring unavailable (%s); block reads use pread", strerror(-rc));
      return false;
    }
    io_uring_queue_exit(&ring);
    return true;
  }();
  return ok;
}

absl::StatusOr<std::unique_ptr<BlockFile>> BlockFile::Open(const std::string& path,
                                                           const BlockFileOptions& options) {
  bool direct = options.direct;
  auto fd = OpenFile(path, O_RDONLY | (direct ? O_DIRECT : 0));
  if (!fd.ok() && direct && absl::IsInvalidArgument(fd.status())) {
    static bool logged = false;
    if (!logged) {
      logged = true;
      Log(LogLevel::kWarning, "O_DIRECT not supported for %s; using buffered reads", path);
    }
    direct = false;
    fd = OpenFile(path, O_RDONLY);
  }
  if (!fd.ok()) return fd.status();
  if (options.random_access && !direct) {
    (void)posix_fadvise(fd->get(), 0, 0, POSIX_FADV_RANDOM);  // advice: nothing to do on failure
  }
  struct stat st;
  if (::fstat(fd->get(), &st) != 0) return ErrnoToStatus(errno, absl::StrCat("stat ", path));
  IoEngine engine = options.engine;
  if (engine == IoEngine::kAuto)
    engine = IoUringAvailable() ? IoEngine::kIoUring : IoEngine::kPread;
  if (engine == IoEngine::kIoUring && !IoUringAvailable()) {
    return absl::UnavailableError("io_uring was requested but is not available in this process");
  }
  if (options.queue_depth == 0 || options.queue_depth > 4096) {
    return absl::InvalidArgumentError(
        absl::StrCat("queue_depth must be in [1, 4096], got ", options.queue_depth));
  }
  return std::unique_ptr<BlockFile>(
      new BlockFileImpl(std::move(*fd), path, engine, direct, static_cast<uint64_t>(st.st_size),
                        options.queue_depth, options.inject_wait_error));
}

}  // namespace strata
