#include "storage/fault_injection_env.h"

#include <algorithm>
#include <filesystem>
#include <utility>

#include "absl/strings/str_cat.h"
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
  }
  return "?";
}

std::string DirOf(const std::string& path) {
  return std::filesystem::path(path).parent_path().string();
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

void FaultInjectionEnv::FailNth(Op op, int nth) {
  MutexLock lock(&mu_);
  fail_at_[op] = calls_[op] + nth;
}

int64_t FaultInjectionEnv::calls(Op op) const {
  MutexLock lock(&mu_);
  auto it = calls_.find(op);
  return it == calls_.end() ? 0 : it->second;
}

absl::Status FaultInjectionEnv::Inject(Op op, const std::string& what) {
  MutexLock lock(&mu_);
  const int64_t n = calls_[op]++;
  auto it = fail_at_.find(op);
  if (it == fail_at_.end() || it->second != n) return absl::OkStatus();
  fail_at_.erase(it);
  return absl::InternalError(absl::StrCat("injected ", OpName(op), " fault (EIO) on ", what));
}

void FaultInjectionEnv::Appended(const std::string& path, uint64_t n) {
  MutexLock lock(&mu_);
  files_[path].written += n;
}

void FaultInjectionEnv::Synced(const std::string& path) {
  MutexLock lock(&mu_);
  State& s = files_[path];
  s.synced = s.written;
}

absl::StatusOr<std::unique_ptr<WritableFile>> FaultInjectionEnv::NewWritableFile(
    const std::string& path) {
  RETURN_IF_ERROR(Inject(Op::kCreate, path));
  const bool existed = base_->FileExists(path);
  ASSIGN_OR_RETURN(std::unique_ptr<WritableFile> f, base_->NewWritableFile(path));
  {
    MutexLock lock(&mu_);
    files_[path] = State{};  // truncated: nothing of it is durable until synced
    if (!existed) created_.push_back(path);
  }
  return std::make_unique<File>(this, path, std::move(f));
}

absl::Status FaultInjectionEnv::RenameFile(const std::string& from, const std::string& to) {
  RETURN_IF_ERROR(Inject(Op::kRename, from));
  std::optional<std::string> replaced;
  if (base_->FileExists(to)) {
    ASSIGN_OR_RETURN(replaced, base_->ReadFile(to));
  }
  RETURN_IF_ERROR(base_->RenameFile(from, to));
  MutexLock lock(&mu_);
  renames_.push_back({from, to, std::move(replaced)});
  auto it = files_.find(from);
  if (it != files_.end()) {
    files_[to] = it->second;
    files_.erase(from);
  } else {
    files_.erase(to);  // a file this Env did not write: its content is all durable
  }
  return absl::OkStatus();
}

absl::Status FaultInjectionEnv::RemoveFile(const std::string& path) {
  RETURN_IF_ERROR(base_->RemoveFile(path));
  MutexLock lock(&mu_);
  files_.erase(path);
  return absl::OkStatus();
}

absl::Status FaultInjectionEnv::SyncDir(const std::string& dir) {
  RETURN_IF_ERROR(Inject(Op::kSyncDir, dir));
  RETURN_IF_ERROR(base_->SyncDir(dir));
  MutexLock lock(&mu_);
  std::erase_if(created_, [&](const std::string& p) { return DirOf(p) == dir; });
  std::erase_if(renames_, [&](const PendingRename& r) { return DirOf(r.to) == dir; });
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
  }
  // Renames not made durable, newest first: the file goes back, and what it replaced returns.
  for (auto it = renames.rbegin(); it != renames.rend(); ++it) {
    RETURN_IF_ERROR(base_->RenameFile(it->to, it->from));
    if (auto f = files.find(it->to); f != files.end()) {
      files[it->from] = f->second;
      files.erase(f);
    }
    if (it->replaced.has_value()) {
      RETURN_IF_ERROR(Rewrite(*base_, it->to, *it->replaced));
      files.erase(it->to);
    }
  }
  // Every file written here, cut back to what was synced.
  for (auto& [path, state] : files) {
    if (state.synced == state.written || !base_->FileExists(path)) continue;
    ASSIGN_OR_RETURN(std::string data, base_->ReadFile(path));
    data.resize(std::min<size_t>(data.size(), state.synced));
    RETURN_IF_ERROR(Rewrite(*base_, path, data));
    state.written = state.synced;
  }
  // Files whose creation was never made durable.
  for (const std::string& path : created) {
    if (base_->FileExists(path)) RETURN_IF_ERROR(base_->RemoveFile(path));
    files.erase(path);
  }
  MutexLock lock(&mu_);
  files_ = std::move(files);
  return absl::OkStatus();
}

}  // namespace strata
