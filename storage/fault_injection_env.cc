#include "storage/fault_injection_env.h"

#include <algorithm>
#include <filesystem>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "rocksdb/file_system.h"
#include "storage/scoped_fd.h"
#include "storage/status_macros.h"

namespace strata {
namespace {

const char* OpName(FaultInjectionEnv::Op op) {
  switch (op) {
    case FaultInjectionEnv::Op::kCreate:
      return "create";
    case FaultInjectionEnv::Op::kAppend:
      return "append";
    case FaultInjectionEnv::Op::kSync:
      return "sync";
    case FaultInjectionEnv::Op::kRename:
      return "rename";
    case FaultInjectionEnv::Op::kSyncDir:
      return "directory sync";
    case FaultInjectionEnv::Op::kRemove:
      return "remove";
  }
  return "?";
}

// One spelling per path, so that records made under different spellings meet.
std::string Norm(const std::string& path) {
  std::string p = std::filesystem::path(path).lexically_normal().string();
  while (p.size() > 1 && p.back() == '/') p.pop_back();
  return p;
}

std::string DirOf(const std::string& path) {
  return std::filesystem::path(Norm(path)).parent_path().string();
}

// `path` is `root` or lies under it.
bool Under(const std::string& path, const std::string& root) {
  return path == root || (path.size() > root.size() && path.compare(0, root.size(), root) == 0 &&
                          path[root.size()] == '/');
}

// `path` with its prefix `from` replaced by `to` (Under(path, from)).
std::string Moved(const std::string& path, const std::string& from, const std::string& to) {
  return to + path.substr(from.size());
}

// Replaces `path`'s content with `data`, synced (the simulated disk after a power cut).
absl::Status Rewrite(Env& env, const std::string& path, const std::string& data) {
  ASSIGN_OR_RETURN(std::unique_ptr<WritableFile> f, env.NewWritableFile(path));
  RETURN_IF_ERROR(f->Append(data));
  RETURN_IF_ERROR(f->Sync());
  return f->Close();
}

}  // namespace

class FaultInjectionEnv::File final : public WritableFile {
 public:
  File(FaultInjectionEnv* env, std::string path, std::unique_ptr<WritableFile> base)
      : env_(env), path_(std::move(path)), base_(std::move(base)) {}
  absl::Status Append(absl::string_view data) override {
    RETURN_IF_ERROR(env_->Inject(Op::kAppend, path_));
    RETURN_IF_ERROR(base_->Append(data));
    env_->Appended(path_, data.size());
    return absl::OkStatus();
  }
  absl::Status Allocate(uint64_t size) override {
    RETURN_IF_ERROR(env_->Inject(Op::kAppend, path_));
    return base_->Allocate(size);
  }
  absl::Status WriteAt(uint64_t offset, absl::string_view data) override {
    RETURN_IF_ERROR(env_->Inject(Op::kAppend, path_));
    RETURN_IF_ERROR(base_->WriteAt(offset, data));
    env_->Written(path_, offset + data.size());
    return absl::OkStatus();
  }
  absl::Status Sync() override {
    RETURN_IF_ERROR(env_->Inject(Op::kSync, path_));
    RETURN_IF_ERROR(base_->Sync());
    env_->Synced(path_);
    return absl::OkStatus();
  }
  absl::Status Close() override { return base_->Close(); }

 private:
  FaultInjectionEnv* const env_;
  const std::string path_;
  std::unique_ptr<WritableFile> base_;
};

namespace {

rocksdb::IOStatus ToIo(const absl::Status& s) {
  if (s.ok()) return rocksdb::IOStatus::OK();
  if (s.code() == absl::StatusCode::kResourceExhausted) {
    return rocksdb::IOStatus::NoSpace(std::string(s.message()));
  }
  return rocksdb::IOStatus::IOError(std::string(s.message()));
}

}  // namespace

// A RocksDB file being written: its bytes and syncs are recorded as for File.
class FaultInjectionEnv::RocksFile final : public rocksdb::FSWritableFileOwnerWrapper {
 public:
  RocksFile(FaultInjectionEnv* env, std::string path, std::unique_ptr<rocksdb::FSWritableFile> f)
      : FSWritableFileOwnerWrapper(std::move(f)), env_(env), path_(std::move(path)) {}

  rocksdb::IOStatus Append(const rocksdb::Slice& data, const rocksdb::IOOptions& options,
                           rocksdb::IODebugContext* dbg) override {
    if (absl::Status s = env_->Inject(Op::kAppend, path_); !s.ok()) return ToIo(s);
    rocksdb::IOStatus s = target()->Append(data, options, dbg);
    if (s.ok()) env_->Appended(path_, data.size());
    return s;
  }
  rocksdb::IOStatus Append(const rocksdb::Slice& data, const rocksdb::IOOptions& options,
                           const rocksdb::DataVerificationInfo& info,
                           rocksdb::IODebugContext* dbg) override {
    if (absl::Status s = env_->Inject(Op::kAppend, path_); !s.ok()) return ToIo(s);
    rocksdb::IOStatus s = target()->Append(data, options, info, dbg);
    if (s.ok()) env_->Appended(path_, data.size());
    return s;
  }
  rocksdb::IOStatus PositionedAppend(const rocksdb::Slice& data, uint64_t offset,
                                     const rocksdb::IOOptions& options,
                                     rocksdb::IODebugContext* dbg) override {
    if (absl::Status s = env_->Inject(Op::kAppend, path_); !s.ok()) return ToIo(s);
    rocksdb::IOStatus s = target()->PositionedAppend(data, offset, options, dbg);
    if (s.ok()) env_->Written(path_, offset + data.size());
    return s;
  }
  rocksdb::IOStatus PositionedAppend(const rocksdb::Slice& data, uint64_t offset,
                                     const rocksdb::IOOptions& options,
                                     const rocksdb::DataVerificationInfo& info,
                                     rocksdb::IODebugContext* dbg) override {
    if (absl::Status s = env_->Inject(Op::kAppend, path_); !s.ok()) return ToIo(s);
    rocksdb::IOStatus s = target()->PositionedAppend(data, offset, options, info, dbg);
    if (s.ok()) env_->Written(path_, offset + data.size());
    return s;
  }
  rocksdb::IOStatus Truncate(uint64_t size, const rocksdb::IOOptions& options,
                             rocksdb::IODebugContext* dbg) override {
    if (absl::Status s = env_->Inject(Op::kAppend, path_); !s.ok()) return ToIo(s);
    rocksdb::IOStatus s = target()->Truncate(size, options, dbg);
    if (s.ok()) env_->Truncated(path_, size);
    return s;
  }
  rocksdb::IOStatus Sync(const rocksdb::IOOptions& options, rocksdb::IODebugContext* dbg) override {
    if (absl::Status s = env_->Inject(Op::kSync, path_); !s.ok()) return ToIo(s);
    rocksdb::IOStatus s = target()->Sync(options, dbg);
    if (s.ok()) env_->Synced(path_);
    return s;
  }
  rocksdb::IOStatus Fsync(const rocksdb::IOOptions& options,
                          rocksdb::IODebugContext* dbg) override {
    if (absl::Status s = env_->Inject(Op::kSync, path_); !s.ok()) return ToIo(s);
    rocksdb::IOStatus s = target()->Fsync(options, dbg);
    if (s.ok()) env_->Synced(path_);
    return s;
  }
  // sync_file_range: no promise of durability, so nothing is recorded as synced.
  rocksdb::IOStatus RangeSync(uint64_t offset, uint64_t nbytes, const rocksdb::IOOptions& options,
                              rocksdb::IODebugContext* dbg) override {
    if (absl::Status s = env_->Inject(Op::kSync, path_); !s.ok()) return ToIo(s);
    return target()->RangeSync(offset, nbytes, options, dbg);
  }

 private:
  FaultInjectionEnv* const env_;
  const std::string path_;
};

// A RocksDB directory: its syncs make its entries durable.
class FaultInjectionEnv::RocksDir final : public rocksdb::FSDirectory {
 public:
  RocksDir(FaultInjectionEnv* env, std::string path, std::unique_ptr<rocksdb::FSDirectory> dir)
      : env_(env), path_(std::move(path)), dir_(std::move(dir)) {}
  rocksdb::IOStatus Fsync(const rocksdb::IOOptions& options,
                          rocksdb::IODebugContext* dbg) override {
    if (absl::Status s = env_->Inject(Op::kSyncDir, path_); !s.ok()) return ToIo(s);
    rocksdb::IOStatus s = dir_->Fsync(options, dbg);
    if (s.ok()) env_->DirSynced(path_);
    return s;
  }
  rocksdb::IOStatus FsyncWithDirOptions(const rocksdb::IOOptions& options,
                                        rocksdb::IODebugContext* dbg,
                                        const rocksdb::DirFsyncOptions& dir_options) override {
    if (absl::Status s = env_->Inject(Op::kSyncDir, path_); !s.ok()) return ToIo(s);
    rocksdb::IOStatus s = dir_->FsyncWithDirOptions(options, dbg, dir_options);
    if (s.ok()) env_->DirSynced(path_);
    return s;
  }
  rocksdb::IOStatus Close(const rocksdb::IOOptions& options,
                          rocksdb::IODebugContext* dbg) override {
    return dir_->Close(options, dbg);
  }
  size_t GetUniqueId(char* id, size_t max_size) const override {
    return dir_->GetUniqueId(id, max_size);
  }

 private:
  FaultInjectionEnv* const env_;
  const std::string path_;
  std::unique_ptr<rocksdb::FSDirectory> dir_;
};

// RocksDB's POSIX file system with every write-side call recorded by (and failed through) the
// Env. Calls RocksDB makes only in configurations Strata does not use (recycled logs, links,
// random read-write files) pass through unrecorded.
class FaultInjectionEnv::RocksFs final : public rocksdb::FileSystemWrapper {
 public:
  explicit RocksFs(FaultInjectionEnv* env)
      : FileSystemWrapper(rocksdb::FileSystem::Default()), env_(env) {}
  const char* Name() const override { return "StrataFaultInjectionFileSystem"; }

  rocksdb::IOStatus NewWritableFile(const std::string& fname, const rocksdb::FileOptions& options,
                                    std::unique_ptr<rocksdb::FSWritableFile>* result,
                                    rocksdb::IODebugContext* dbg) override {
    const std::string path = Norm(fname);
    if (absl::Status s = env_->Inject(Op::kCreate, path); !s.ok()) return ToIo(s);
    const bool existed = env_->base_->FileExists(path);
    std::unique_ptr<rocksdb::FSWritableFile> file;
    rocksdb::IOStatus s = target()->NewWritableFile(fname, options, &file, dbg);
    if (!s.ok()) return s;
    env_->Created(path, existed);
    *result = std::make_unique<RocksFile>(env_, path, std::move(file));
    return s;
  }
  rocksdb::IOStatus ReopenWritableFile(const std::string& fname,
                                       const rocksdb::FileOptions& options,
                                       std::unique_ptr<rocksdb::FSWritableFile>* result,
                                       rocksdb::IODebugContext* dbg) override {
    const std::string path = Norm(fname);
    if (absl::Status s = env_->Inject(Op::kCreate, path); !s.ok()) return ToIo(s);
    std::unique_ptr<rocksdb::FSWritableFile> file;
    rocksdb::IOStatus s = target()->ReopenWritableFile(fname, options, &file, dbg);
    if (!s.ok()) return s;
    env_->Reopened(path);
    *result = std::make_unique<RocksFile>(env_, path, std::move(file));
    return s;
  }
  rocksdb::IOStatus RenameFile(const std::string& src, const std::string& target_name,
                               const rocksdb::IOOptions& options,
                               rocksdb::IODebugContext* dbg) override {
    const std::string from = Norm(src), to = Norm(target_name);
    if (absl::Status s = env_->Inject(Op::kRename, from); !s.ok()) return ToIo(s);
    absl::StatusOr<std::optional<std::string>> replaced = env_->Replaced(to);
    if (!replaced.ok()) return ToIo(replaced.status());
    rocksdb::IOStatus s = target()->RenameFile(src, target_name, options, dbg);
    if (s.ok()) env_->Renamed(from, to, std::move(*replaced));
    return s;
  }
  rocksdb::IOStatus DeleteFile(const std::string& fname, const rocksdb::IOOptions& options,
                               rocksdb::IODebugContext* dbg) override {
    const std::string path = Norm(fname);
    if (absl::Status s = env_->Inject(Op::kRemove, path); !s.ok()) return ToIo(s);
    rocksdb::IOStatus s = target()->DeleteFile(fname, options, dbg);
    if (s.ok()) env_->Removed(path);
    return s;
  }
  rocksdb::IOStatus GetFreeSpace(const std::string& path, const rocksdb::IOOptions& options,
                                 uint64_t* free, rocksdb::IODebugContext* dbg) override {
    if (env_->DiskIsFull()) {
      *free = 0;
      return rocksdb::IOStatus::OK();
    }
    return target()->GetFreeSpace(path, options, free, dbg);
  }
  rocksdb::IOStatus CreateDir(const std::string& dirname, const rocksdb::IOOptions& options,
                              rocksdb::IODebugContext* dbg) override {
    const std::string path = Norm(dirname);
    if (absl::Status s = env_->Inject(Op::kCreate, path); !s.ok()) return ToIo(s);
    const bool existed = env_->base_->FileExists(path);
    rocksdb::IOStatus s = target()->CreateDir(dirname, options, dbg);
    if (s.ok()) env_->Created(path, existed);
    return s;
  }
  rocksdb::IOStatus CreateDirIfMissing(const std::string& dirname,
                                       const rocksdb::IOOptions& options,
                                       rocksdb::IODebugContext* dbg) override {
    const std::string path = Norm(dirname);
    if (absl::Status s = env_->Inject(Op::kCreate, path); !s.ok()) return ToIo(s);
    const bool existed = env_->base_->FileExists(path);
    rocksdb::IOStatus s = target()->CreateDirIfMissing(dirname, options, dbg);
    if (s.ok()) env_->Created(path, existed);
    return s;
  }
  rocksdb::IOStatus NewDirectory(const std::string& name, const rocksdb::IOOptions& options,
                                 std::unique_ptr<rocksdb::FSDirectory>* result,
                                 rocksdb::IODebugContext* dbg) override {
    std::unique_ptr<rocksdb::FSDirectory> dir;
    rocksdb::IOStatus s = target()->NewDirectory(name, options, &dir, dbg);
    if (s.ok()) *result = std::make_unique<RocksDir>(env_, Norm(name), std::move(dir));
    return s;
  }

 private:
  FaultInjectionEnv* const env_;
};

FaultInjectionEnv::~FaultInjectionEnv() = default;

void FaultInjectionEnv::FailNth(Op op, int nth, int count) {
  MutexLock lock(&mu_);
  fail_at_[op] = {calls_[op] + nth, count};
}

int64_t FaultInjectionEnv::calls(Op op) const {
  MutexLock lock(&mu_);
  auto it = calls_.find(op);
  return it == calls_.end() ? 0 : it->second;
}

int64_t FaultInjectionEnv::write_calls() const {
  MutexLock lock(&mu_);
  int64_t n = 0;
  for (const auto& [op, count] : calls_) n += count;
  return n;
}

void FaultInjectionEnv::PowerCutAfter(int64_t n) {
  MutexLock lock(&mu_);
  cut_in_ = n;
}

bool FaultInjectionEnv::power_is_cut() const {
  MutexLock lock(&mu_);
  return cut_;
}

std::shared_ptr<rocksdb::FileSystem> FaultInjectionEnv::RocksDbFileSystem() {
  MutexLock lock(&mu_);
  if (rocks_fs_ == nullptr) rocks_fs_ = std::make_shared<RocksFs>(this);
  return rocks_fs_;
}

void FaultInjectionEnv::SetDiskFull(bool full, std::string only_paths_ending) {
  MutexLock lock(&mu_);
  disk_full_ = full;
  full_suffix_ = std::move(only_paths_ending);
}

void FaultInjectionEnv::HoldSyncs(std::string suffix) {
  MutexLock lock(&mu_);
  hold_syncs_ = true;
  hold_suffix_ = std::move(suffix);
}

void FaultInjectionEnv::ReleaseSyncs() {
  MutexLock lock(&mu_);
  hold_syncs_ = false;
}

void FaultInjectionEnv::AwaitHeldSyncs(int n) {
  MutexLock lock(&mu_);
  const auto enough = [this, n]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return held_syncs_ >= n; };
  mu_.Await(absl::Condition(&enough));
}

absl::Status FaultInjectionEnv::Inject(Op op, const std::string& what) {
  MutexLock lock(&mu_);
  if (op == Op::kSync && hold_syncs_ && absl::EndsWith(what, hold_suffix_)) {
    ++held_syncs_;
    const auto released = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return !hold_syncs_; };
    mu_.Await(absl::Condition(&released));
    --held_syncs_;
  }
  const int64_t n = calls_[op]++;
  if (cut_in_ == 0) {
    cut_ = true;
    cut_in_ = -1;
  } else if (cut_in_ > 0) {
    --cut_in_;
  }
  if (cut_) {
    return absl::InternalError(
        absl::StrCat("simulated power cut: ", OpName(op), " of ", what, " not done"));
  }
  if (disk_full_ && op == Op::kAppend && absl::EndsWith(what, full_suffix_)) {
    return DiskFullError(
        absl::StrCat("no space left on device (injected full disk): append to ", what));
  }
  auto it = fail_at_.find(op);
  if (it == fail_at_.end() || n < it->second.first) return absl::OkStatus();
  if (n + 1 >= it->second.first + it->second.second) fail_at_.erase(it);
  return absl::InternalError(absl::StrCat("injected ", OpName(op), " fault (EIO) on ", what));
}

void FaultInjectionEnv::Created(const std::string& path, bool existed) {
  MutexLock lock(&mu_);
  files_[path] = State{};  // truncated (or a directory): nothing of it is durable until synced
  if (!existed) created_.push_back(path);
}

void FaultInjectionEnv::Reopened(const std::string& path) {
  std::error_code ec;
  const uint64_t size = std::filesystem::file_size(path, ec);
  MutexLock lock(&mu_);
  if (ec || files_.contains(path)) return;
  files_[path] = State{size, size};
}

void FaultInjectionEnv::Written(const std::string& path, uint64_t end) {
  MutexLock lock(&mu_);
  State& s = files_[path];
  s.written = std::max(s.written, end);
}

void FaultInjectionEnv::Appended(const std::string& path, uint64_t n) {
  MutexLock lock(&mu_);
  files_[path].written += n;
}

void FaultInjectionEnv::Truncated(const std::string& path, uint64_t size) {
  MutexLock lock(&mu_);
  State& s = files_[path];
  s.written = size;
  s.synced = std::min(s.synced, size);
}

void FaultInjectionEnv::Synced(const std::string& path) {
  MutexLock lock(&mu_);
  State& s = files_[path];
  s.synced = s.written;
}

void FaultInjectionEnv::Renamed(const std::string& from, const std::string& to,
                                std::optional<std::string> replaced) {
  MutexLock lock(&mu_);
  renames_.push_back({from, to, std::move(replaced)});
  // A file this Env did not write: its content is all durable.
  std::erase_if(files_, [&](const auto& f) { return Under(f.first, to); });
  std::map<std::string, State> moved;
  for (auto it = files_.begin(); it != files_.end();) {
    if (Under(it->first, from)) {
      moved[Moved(it->first, from, to)] = it->second;
      it = files_.erase(it);
    } else {
      ++it;
    }
  }
  files_.merge(moved);
  for (std::string& p : created_) {
    if (Under(p, from)) p = Moved(p, from, to);
  }
}

void FaultInjectionEnv::Removed(const std::string& path) {
  MutexLock lock(&mu_);
  std::erase_if(files_, [&](const auto& f) { return Under(f.first, path); });
  std::erase_if(created_, [&](const std::string& p) { return Under(p, path); });
  std::erase_if(renames_, [&](const PendingRename& r) { return Under(r.to, path); });
}

void FaultInjectionEnv::DirSynced(const std::string& dir) {
  MutexLock lock(&mu_);
  std::erase_if(created_, [&](const std::string& p) { return DirOf(p) == dir; });
  std::erase_if(renames_, [&](const PendingRename& r) { return DirOf(r.to) == dir; });
}

absl::StatusOr<std::optional<std::string>> FaultInjectionEnv::Replaced(const std::string& to) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(to, ec)) return std::optional<std::string>();
  ASSIGN_OR_RETURN(std::string data, base_->ReadFile(to));
  return std::optional<std::string>(std::move(data));
}

absl::StatusOr<std::unique_ptr<WritableFile>> FaultInjectionEnv::OpenWritableFile(
    const std::string& path) {
  const std::string p = Norm(path);
  RETURN_IF_ERROR(Inject(Op::kCreate, p));
  const bool existed = base_->FileExists(p);
  ASSIGN_OR_RETURN(std::unique_ptr<WritableFile> f, base_->OpenWritableFile(path));
  if (existed) {
    Reopened(p);
  } else {
    Created(p, existed);
  }
  return std::make_unique<File>(this, p, std::move(f));
}

absl::StatusOr<std::unique_ptr<WritableFile>> FaultInjectionEnv::NewWritableFile(
    const std::string& path) {
  const std::string p = Norm(path);
  RETURN_IF_ERROR(Inject(Op::kCreate, p));
  const bool existed = base_->FileExists(p);
  ASSIGN_OR_RETURN(std::unique_ptr<WritableFile> f, base_->NewWritableFile(path));
  Created(p, existed);
  return std::make_unique<File>(this, p, std::move(f));
}

absl::Status FaultInjectionEnv::RenameFile(const std::string& from, const std::string& to) {
  const std::string f = Norm(from), t = Norm(to);
  RETURN_IF_ERROR(Inject(Op::kRename, f));
  ASSIGN_OR_RETURN(std::optional<std::string> replaced, Replaced(t));
  RETURN_IF_ERROR(base_->RenameFile(from, to));
  Renamed(f, t, std::move(replaced));
  return absl::OkStatus();
}

absl::Status FaultInjectionEnv::RemoveFile(const std::string& path) {
  const std::string p = Norm(path);
  RETURN_IF_ERROR(Inject(Op::kRemove, p));
  RETURN_IF_ERROR(base_->RemoveFile(path));
  Removed(p);
  return absl::OkStatus();
}

absl::Status FaultInjectionEnv::CreateDir(const std::string& path) {
  const std::string p = Norm(path);
  RETURN_IF_ERROR(Inject(Op::kCreate, p));
  const bool existed = base_->FileExists(p);
  RETURN_IF_ERROR(base_->CreateDir(path));
  if (!existed) Created(p, existed);
  return absl::OkStatus();
}

absl::Status FaultInjectionEnv::RemoveTree(const std::string& path) {
  const std::string p = Norm(path);
  RETURN_IF_ERROR(Inject(Op::kRemove, p));
  RETURN_IF_ERROR(base_->RemoveTree(path));
  Removed(p);
  return absl::OkStatus();
}

absl::Status FaultInjectionEnv::SyncDir(const std::string& dir) {
  const std::string d = Norm(dir);
  RETURN_IF_ERROR(Inject(Op::kSyncDir, d));
  RETURN_IF_ERROR(base_->SyncDir(dir));
  DirSynced(d);
  return absl::OkStatus();
}

absl::Status FaultInjectionEnv::DropUnsyncedData() {
  std::vector<PendingRename> renames;
  std::vector<std::string> created;
  std::map<std::string, State> files;
  {
    MutexLock lock(&mu_);
    renames.swap(renames_);
    created.swap(created_);
    files = files_;
    cut_ = false;
    cut_in_ = -1;
  }
  // Renames not made durable, newest first: the file (or directory) goes back, and what it
  // replaced returns.
  for (auto it = renames.rbegin(); it != renames.rend(); ++it) {
    if (!base_->FileExists(it->to)) continue;
    RETURN_IF_ERROR(base_->RenameFile(it->to, it->from));
    std::map<std::string, State> moved;
    for (auto f = files.begin(); f != files.end();) {
      if (Under(f->first, it->to)) {
        moved[Moved(f->first, it->to, it->from)] = f->second;
        f = files.erase(f);
      } else {
        ++f;
      }
    }
    files.merge(moved);
    for (std::string& p : created) {
      if (Under(p, it->to)) p = Moved(p, it->to, it->from);
    }
    if (it->replaced.has_value()) {
      RETURN_IF_ERROR(Rewrite(*base_, it->to, *it->replaced));
      files.erase(it->to);
    }
  }
  // Every file written here, cut back to what was synced.
  for (auto& [path, state] : files) {
    std::error_code ec;
    if (state.synced >= state.written || !std::filesystem::is_regular_file(path, ec)) continue;
    ASSIGN_OR_RETURN(std::string data, base_->ReadFile(path));
    data.resize(std::min<size_t>(data.size(), state.synced));
    RETURN_IF_ERROR(Rewrite(*base_, path, data));
    state.written = state.synced;
  }
  // Files and directories whose creation was never made durable, newest first.
  for (auto it = created.rbegin(); it != created.rend(); ++it) {
    RETURN_IF_ERROR(base_->RemoveTree(*it));
    std::erase_if(files, [&](const auto& f) { return Under(f.first, *it); });
  }
  MutexLock lock(&mu_);
  files_ = std::move(files);
  return absl::OkStatus();
}

}  // namespace strata
