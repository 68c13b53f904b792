#include "index/tenant_extent.h"

#include <algorithm>
#include <bit>
#include <cstring>

#include "absl/container/inlined_vector.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "base/check.h"
#include "storage/log.h"
#include "storage/status_macros.h"

namespace strata {
namespace {

// Ids are copied in the machine's order; the format says little-endian.
static_assert(std::endian::native == std::endian::little, "tenant extents are little-endian");

// Rows of `row_bytes` vectors (with their ids) within `bytes`, at least one.
size_t RowsWithin(size_t bytes, size_t row_bytes) {
  return std::max<size_t>(1, bytes / (sizeof(VectorId) + row_bytes));
}

// A layout of this format begins with it (a layout of the format before began with bound 0).
constexpr uint32_t kLayoutMarker = 0xFFFFFFFE;
// The extents' files in the collection's directory: this, then the file's number.
constexpr absl::string_view kFilePrefix = "tenant-extents-";

std::string ExtentPrefix(uint32_t coll) {
  std::string k = "x";
  AppendU32(&k, coll);
  return k;
}

}  // namespace

TenantExtents::TenantExtents(Env& env, std::string dir, uint32_t coll, size_t row_bytes,
                             size_t extent_bytes, uint64_t compaction_slack_bytes)
    : env_(env),
      dir_(std::move(dir)),
      coll_(coll),
      row_bytes_(row_bytes),
      max_rows_(MaxRows(row_bytes, extent_bytes)),
      chunk_rows_(std::min(
          max_rows_, RowsWithin(std::min(kTenantExtentChunkBytes, extent_bytes / 8), row_bytes))),
      compaction_slack_bytes_(compaction_slack_bytes) {}

size_t TenantExtents::MaxRows(size_t row_bytes, size_t extent_bytes) {
  return RowsWithin(extent_bytes, row_bytes);
}

std::string TenantExtents::Key(uint32_t coll, Tenant t, VectorId bound) {
  std::string k = ExtentPrefix(coll);
  AppendU32(&k, t);
  AppendU32(&k, bound);
  return k;
}

std::string TenantExtents::LayoutKey(uint32_t coll, Tenant t) {
  std::string k = "X";
  AppendU32(&k, coll);
  AppendU32(&k, t);
  return k;
}

std::string TenantExtents::EncodeLayout(uint64_t file, absl::Span<const VectorId> bounds,
                                        absl::Span<const uint32_t> rows,
                                        absl::Span<const BlobLocation> locs) {
  std::string v;
  AppendU32(&v, kLayoutMarker);
  AppendU64(&v, file);
  for (size_t i = 0; i < bounds.size(); ++i) {
    AppendU32(&v, bounds[i]);
    AppendU32(&v, rows[i]);
    AppendU64(&v, locs[i].offset);
    AppendU32(&v, locs[i].crc);
  }
  return v;
}

std::string TenantExtents::FilePath(const std::string& dir, uint64_t number) {
  return absl::StrCat(dir, "/", kFilePrefix, number);
}

bool TenantExtents::IsFileName(absl::string_view name, uint64_t* number) {
  uint64_t n = 0;
  // (Only the names FilePath makes: "+7" or "07" would parse, and name another file.)
  if (!absl::StartsWith(name, kFilePrefix) ||
      !absl::SimpleAtoi(name.substr(kFilePrefix.size()), &n) ||
      name != absl::StrCat(kFilePrefix, n)) {
    return false;
  }
  if (number != nullptr) *number = n;
  return true;
}

bool TenantExtents::WellFormed(const Layout& layout, uint64_t points, uint64_t file_bytes) const {
  if (layout.bounds.empty() || layout.bounds[0] != 0 || points == 0 || points > max_rows_) {
    return false;
  }
  uint64_t total = 0;
  for (size_t i = 0; i < layout.bounds.size(); ++i) {
    if (i > 0 && layout.bounds[i] <= layout.bounds[i - 1]) return false;
    if (layout.rows[i] == 0 || layout.rows[i] > chunk_rows_) return false;
    const BlobLocation& loc = layout.locs[i];
    if (loc.size != layout.rows[i] * (sizeof(VectorId) + row_bytes_) || loc.offset > file_bytes ||
        loc.size > file_bytes - loc.offset) {  // (no wrap)
      return false;
    }
    total += layout.rows[i];
  }
  return total == points;
}

size_t TenantExtents::chunks(Tenant t) const {
  auto it = layouts_.find(t);
  return it == layouts_.end() ? 0 : it->second.bounds.size();
}

absl::Status TenantExtents::ReadChunks(
    const BlobFile& file, const Layout& layout, absl::Span<const size_t> which,
    absl::FunctionRef<absl::Status(size_t, absl::string_view)> use, uint64_t* bytes,
    uint64_t* pages) const {
  constexpr uint64_t kPage = 4096;
  // Runs of chunks ascending in the file, each within a page of the one before: one read each.
  absl::InlinedVector<size_t, 8> order(which.begin(), which.end());
  std::sort(order.begin(), order.end(),
            [&](size_t a, size_t b) { return layout.locs[a].offset < layout.locs[b].offset; });
  absl::InlinedVector<BlobLocation, 8> run;
  absl::InlinedVector<size_t, 8> run_chunks;
  // Chunks are read in place from the file's mapping; where they cannot be, into one buffer per
  // thread, kept from read to read (a fresh one of a medium extent's size costs page faults, or
  // an mmap past malloc's threshold, every query); one of more than 4 MiB is let go after use.
  thread_local std::string scratch;
  constexpr size_t kKeptBytes = size_t{4} << 20;
  struct Release {
    ~Release() {
      if (scratch.capacity() > kKeptBytes) std::string().swap(scratch);
    }
  } release;
  const auto flush = [&]() -> absl::Status {
    if (run.empty()) return absl::OkStatus();
    const uint64_t span = BlobFile::SpanBytes(run);
    ASSIGN_OR_RETURN(const uint8_t* at, file.ReadInPlace(run, &scratch));
    const uint64_t first = run.front().offset;
    for (const BlobLocation& loc : run) *bytes += loc.size;
    *pages += (first + span - 1) / kPage - first / kPage + 1;
    for (size_t i = 0; i < run.size(); ++i) {
      RETURN_IF_ERROR(use(run_chunks[i], absl::string_view(reinterpret_cast<const char*>(at) +
                                                               (run[i].offset - first),
                                                           run[i].size)));
    }
    run.clear();
    run_chunks.clear();
    return absl::OkStatus();
  };
  for (size_t i : order) {
    const BlobLocation& loc = layout.locs[i];
    if (!run.empty() && (loc.offset < run.back().offset + run.back().size ||
                         loc.offset - (run.back().offset + run.back().size) >= kPage)) {
      RETURN_IF_ERROR(flush());
    }
    run.push_back(loc);
    run_chunks.push_back(i);
  }
  return flush();
}

absl::StatusOr<bool> TenantExtents::Read(Tenant t,
                                         absl::FunctionRef<void(VectorId, const uint8_t*)> visit,
                                         uint64_t* bytes, uint64_t* pages) const {
  *bytes = 0;
  *pages = 0;
  auto it = layouts_.find(t);
  if (it == layouts_.end()) return false;
  {
    MutexLock lock(&broken_mu_);
    if (broken_.contains(t)) return false;
  }
  const Layout& layout = it->second;
  DCHECK(file_ != nullptr);  // a layout points into it
  // Chunks are visited in their order (ascending ids) whatever their order in the file: those
  // read out of order wait in `held` (a compaction lays each extent out in order).
  absl::InlinedVector<size_t, 8> all(layout.bounds.size());
  for (size_t i = 0; i < all.size(); ++i) all[i] = i;
  size_t next = 0;
  absl::flat_hash_map<size_t, std::string> held;
  RETURN_IF_ERROR(ReadChunks(
      *file_, layout, all,
      [&](size_t i, absl::string_view chunk) -> absl::Status {
        if (i != next) {
          held.emplace(i, std::string(chunk));
          return absl::OkStatus();
        }
        RETURN_IF_ERROR(DecodeTenantExtent(chunk, row_bytes_, visit));
        for (++next; held.contains(next); ++next) {
          RETURN_IF_ERROR(DecodeTenantExtent(held[next], row_bytes_, visit));
        }
        return absl::OkStatus();
      },
      bytes, pages));
  return true;
}

bool TenantExtents::MarkBroken(Tenant t) const {
  MutexLock lock(&broken_mu_);
  return broken_.insert(t).second;
}

absl::StatusOr<BlobFile*> TenantExtents::Writable() const {
  if (file_ == nullptr) {
    RETURN_IF_ERROR(CreateDirs(env_, dir_));
    const uint64_t number = highest_number_ + 1;
    const std::string path = FilePath(dir_, number);
    // (A file of that name no layout points to - none should be there - is garbage.)
    if (env_.FileExists(path)) RETURN_IF_ERROR(env_.RemoveFile(path));
    ASSIGN_OR_RETURN(std::unique_ptr<BlobFile> file, BlobFile::Open(env_, path));
    RETURN_IF_ERROR(env_.SyncDir(dir_));  // its name, before a layout points to it
    SetFile(std::move(file));
    file_number_ = number;
    highest_number_ = number;
  }
  return file_.get();
}

absl::Status TenantExtents::Sync() const {
  return file_ == nullptr ? absl::OkStatus() : file_->Sync();
}

absl::StatusOr<TenantExtents::Change> TenantExtents::Plan(
    Tenant t, absl::Span<const VectorId> before, absl::Span<const VectorId> ids,
    absl::FunctionRef<const uint8_t*(VectorId)> fresh,
    absl::FunctionRef<absl::Status(absl::Span<const VectorId>, std::vector<std::string>*)>
        read_vectors,
    WriteBatch* batch) const {
  Change change{t, {}, {}, {}, false};
  bool broken;
  {
    MutexLock lock(&broken_mu_);
    broken = broken_.contains(t);
  }
  auto it = layouts_.find(t);
  const std::vector<VectorId> old_bounds =
      it == layouts_.end() ? std::vector<VectorId>{} : it->second.bounds;
  if (ids.empty() || ids.size() > max_rows_) {
    if (!old_bounds.empty()) batch->Delete(Cf::kTenants, LayoutKey(coll_, t));
    change.whole = true;
    return change;
  }
  // The chunk of `bounds` an id falls in.
  const auto chunk_of = [](const std::vector<VectorId>& bounds, VectorId id) {
    return static_cast<size_t>(std::upper_bound(bounds.begin(), bounds.end(), id) -
                               bounds.begin()) -
           1;
  };
  // What each chunk holds now (the points before the batch), and where the points go after it
  // (one chunk from 0 for a new extent).
  // (Of an extent marked broken nothing is trusted: every chunk is written again, every row read
  // from the stored vectors.)
  std::vector<std::vector<VectorId>> old_ids(old_bounds.size());
  if (!old_bounds.empty() && !broken) {
    for (VectorId id : before) old_ids[chunk_of(old_bounds, id)].push_back(id);
  }
  struct Chunk {
    VectorId bound;
    std::vector<VectorId> ids;
  };
  const std::vector<VectorId> bounds = old_bounds.empty() ? std::vector<VectorId>{0} : old_bounds;
  std::vector<Chunk> placed;
  for (VectorId b : bounds) placed.push_back({b, {}});
  for (VectorId id : ids) placed[chunk_of(bounds, id)].ids.push_back(id);
  // An overfull chunk is cut into full ones and a remainder; an empty chunk's range joins the one
  // before it, and so do a chunk's rows when the two fit in half a chunk (the first chunk, left
  // empty, takes the next one's rows: bound 0 stays).
  std::vector<Chunk> cut;
  for (Chunk& ch : placed) {
    for (size_t from = 0; from < ch.ids.size() || from == 0; from += chunk_rows_) {
      const size_t to = std::min(ch.ids.size(), from + chunk_rows_);
      cut.push_back({from == 0 ? ch.bound : ch.ids[from],
                     std::vector<VectorId>(ch.ids.begin() + from, ch.ids.begin() + to)});
    }
  }
  std::vector<Chunk> chunks;
  for (Chunk& ch : cut) {
    if (!chunks.empty() && (ch.ids.empty() || chunks.back().ids.empty() ||
                            chunks.back().ids.size() + ch.ids.size() <= chunk_rows_ / 2)) {
      chunks.back().ids.insert(chunks.back().ids.end(), ch.ids.begin(), ch.ids.end());
      continue;
    }
    chunks.push_back(std::move(ch));
  }
  // Rewritten: the chunks whose points change, or whose vectors the batch writes.
  absl::flat_hash_map<VectorId, size_t> old_at;
  for (size_t i = 0; i < old_bounds.size() && !broken; ++i) old_at[old_bounds[i]] = i;
  std::vector<const Chunk*> rewrite;
  for (const Chunk& ch : chunks) {
    change.bounds.push_back(ch.bound);
    change.rows.push_back(static_cast<uint32_t>(ch.ids.size()));
    auto o = old_at.find(ch.bound);
    bool same = o != old_at.end() && old_ids[o->second] == ch.ids;
    for (size_t i = 0; same && i < ch.ids.size(); ++i) same = fresh(ch.ids[i]) == nullptr;
    if (!same) rewrite.push_back(&ch);
  }
  // Their rows: from the old chunks that hold them (only those are read), else the stored
  // vectors. A chunk missing or malformed (damage to derived data) counts as empty.
  std::vector<bool> wanted(old_bounds.size(), false);
  std::vector<VectorId> need;
  for (const Chunk* ch : rewrite) {
    for (VectorId id : ch->ids) {
      if (fresh(id) != nullptr) continue;
      if (!old_bounds.empty() && !broken && std::binary_search(before.begin(), before.end(), id)) {
        wanted[chunk_of(old_bounds, id)] = true;
      } else {
        need.push_back(id);
      }
    }
  }
  absl::flat_hash_map<VectorId, const uint8_t*> row_of;
  std::vector<size_t> read;
  for (size_t i = 0; i < old_bounds.size(); ++i) {
    if (wanted[i]) read.push_back(i);
  }
  std::vector<std::string> records;  // (not moved once rows point into them)
  records.reserve(read.size());
  if (!read.empty()) {
    uint64_t bytes = 0, pages = 0;
    const absl::Status got = ReadChunks(
        *file_, it->second, read,
        [&](size_t, absl::string_view chunk) {
          records.emplace_back(chunk);
          return absl::OkStatus();
        },
        &bytes, &pages);
    if (!got.ok() && !absl::IsDataLoss(got)) return got;
    for (const std::string& record : records) {
      std::vector<std::pair<VectorId, const uint8_t*>> rows;
      if (DecodeTenantExtent(record, row_bytes_, [&](VectorId id, const uint8_t* row) {
            rows.emplace_back(id, row);
          }).ok()) {
        for (const auto& [id, row] : rows) row_of[id] = row;
      }
    }
    // Rows the old chunks should have held and did not.
    for (const Chunk* ch : rewrite) {
      for (VectorId id : ch->ids) {
        if (fresh(id) == nullptr && !row_of.contains(id) &&
            std::binary_search(before.begin(), before.end(), id)) {
          need.push_back(id);
        }
      }
    }
  }
  std::sort(need.begin(), need.end());
  need.erase(std::unique(need.begin(), need.end()), need.end());
  std::vector<std::string> fetched;
  if (!need.empty()) {
    RETURN_IF_ERROR(read_vectors(need, &fetched));
    for (size_t i = 0; i < need.size(); ++i) {
      if (fetched[i].size() != row_bytes_) {
        return absl::DataLossError(
            absl::StrCat("the stored vector of internal id ", need[i], " is malformed"));
      }
      row_of[need[i]] = reinterpret_cast<const uint8_t*>(fetched[i].data());
    }
  }
  change.whole = rewrite.size() == chunks.size();
  absl::flat_hash_map<const Chunk*, BlobLocation> written;
  if (!rewrite.empty()) {
    ASSIGN_OR_RETURN(BlobFile * file, Writable());
    for (const Chunk* ch : rewrite) {
      ASSIGN_OR_RETURN(written[ch],
                       file->Append(EncodeTenantExtent(ch->ids, row_bytes_, [&](size_t i) {
                         const uint8_t* f = fresh(ch->ids[i]);
                         return f != nullptr ? f : row_of.at(ch->ids[i]);
                       })));
    }
  }
  for (const Chunk& ch : chunks) {
    auto w = written.find(&ch);
    change.locs.push_back(w != written.end() ? w->second : it->second.locs[old_at.at(ch.bound)]);
  }
  if (it == layouts_.end() || broken || !rewrite.empty() || it->second.bounds != change.bounds ||
      it->second.rows != change.rows) {
    batch->Put(Cf::kTenants, LayoutKey(coll_, t),
               EncodeLayout(file_number_, change.bounds, change.rows, change.locs));
  }
  return change;
}

absl::Status TenantExtents::Load(const MetadataStore& store, absl::Span<const Tenant> tenants,
                                 absl::FunctionRef<uint64_t(Tenant)> points, WriteBatch* batch,
                                 std::vector<Tenant>* rebuild) {
  layouts_.clear();
  live_bytes_ = 0;
  SetFile(nullptr);
  file_number_ = 0;
  highest_number_ = 0;
  failed_at_bytes_ = 0;
  {
    MutexLock lock(&broken_mu_);
    broken_.clear();
  }
  struct Found {
    Layout layout;
    uint64_t file = 0;
    bool ok = true;
  };
  absl::flat_hash_map<Tenant, Found> found;
  absl::flat_hash_map<uint64_t, size_t> files;  // layouts pointing to each file
  std::string prefix = "X";
  AppendU32(&prefix, coll_);
  RETURN_IF_ERROR(store.Scan(Cf::kTenants, prefix, [&](auto key, auto value) {
    if (key.size() != 9) return absl::OkStatus();  // not a layout (none are of another size)
    Found& f = found[ReadU32(key, 5)];
    // (A layout of the format before the file - [u32 bound][u32 rows] per chunk, from bound 0 -
    // lacks the marker: not ok, rebuilt.)
    constexpr size_t kHead = 12, kPerChunk = 20;
    if (value.size() < kHead || ReadU32(value, 0) != kLayoutMarker ||
        (value.size() - kHead) % kPerChunk != 0) {
      f.ok = false;
      return absl::OkStatus();
    }
    f.file = ReadU64(value, 4);
    ++files[f.file];
    const uint32_t stride = static_cast<uint32_t>(sizeof(VectorId) + row_bytes_);
    for (size_t at = kHead; at < value.size(); at += kPerChunk) {
      f.layout.bounds.push_back(ReadU32(value, at));
      f.layout.rows.push_back(ReadU32(value, at + 4));
      f.layout.locs.push_back(BlobLocation{
          ReadU64(value, at + 8), static_cast<uint32_t>(uint64_t{stride} * ReadU32(value, at + 4)),
          ReadU32(value, at + 16)});
    }
    return absl::OkStatus();
  }));
  // The file the layouts point to (one: a compaction moves them all at once); the others in the
  // directory are garbage (a compaction's old file, or a new one it did not finish).
  uint64_t number = 0;
  size_t most = 0;
  for (const auto& [n, count] : files) {
    if (count > most) number = n, most = count;
    highest_number_ = std::max(highest_number_, n);  // (never made again: another's layouts)
  }
  ASSIGN_OR_RETURN(std::vector<std::string> names,
                   env_.FileExists(dir_) ? env_.GetChildren(dir_) : std::vector<std::string>{});
  bool present = false;
  for (const std::string& name : names) {
    uint64_t n = 0;
    if (!IsFileName(name, &n)) continue;
    highest_number_ = std::max(highest_number_, n);
    if (most > 0 && n == number) {
      present = true;
    } else if (absl::Status s = env_.RemoveFile(FilePath(dir_, n)); !s.ok()) {
      // (Garbage: what stays costs disk only; the next open tries again.)
      Log(LogLevel::kWarning, "tenant extents: %s", s.message());
    }
  }
  if (present) {
    // A file that cannot be opened (its permissions, a directory in its place) is derived data
    // lost: the layouts pointing to it are rebuilt below, in a new file, and the collection opens.
    absl::StatusOr<std::unique_ptr<BlobFile>> file = BlobFile::Open(env_, FilePath(dir_, number));
    if (file.ok()) {
      SetFile(*std::move(file));
      file_number_ = number;
    } else {
      Log(LogLevel::kError,
          "tenant extents: %s; the extents it holds are rebuilt in a new file (remove it once "
          "it is no longer needed)",
          file.status().message());
    }
  }
  // Removes a tenant's extent: its layout, and whatever is under its chunks' prefix in the store
  // (an extent of a format before the file; a seek for a tenant that has none).
  const auto remove = [&](Tenant t, bool has_layout) -> absl::Status {
    std::string under = ExtentPrefix(coll_);
    AppendU32(&under, t);
    RETURN_IF_ERROR(store.Scan(Cf::kTenants, under, [&](auto key, auto) {
      batch->Delete(Cf::kTenants, key);
      return absl::OkStatus();
    }));
    if (has_layout) batch->Delete(Cf::kTenants, LayoutKey(coll_, t));
    return absl::OkStatus();
  };
  for (Tenant t : tenants) {
    const uint64_t n = points(t);
    const bool wanted = n > 0 && n <= max_rows_;
    auto it = found.find(t);
    const Found* f = it == found.end() ? nullptr : &it->second;
    if (wanted && f != nullptr && f->ok && file_ != nullptr && f->file == file_number_ &&
        WellFormed(f->layout, n, file_->size())) {
      for (const BlobLocation& loc : f->layout.locs) live_bytes_ += loc.size;
      layouts_[t] = f->layout;
    } else {
      RETURN_IF_ERROR(remove(t, f != nullptr));
      if (wanted) rebuild->push_back(t);
    }
    if (it != found.end()) found.erase(it);
  }
  // Extents of tenants that are no more.
  for (const auto& [t, f] : found) RETURN_IF_ERROR(remove(t, true));
  return absl::OkStatus();
}

void TenantExtents::Apply(const Change& change) {
  // (Exclusive: no read holds a pointer into the mapping.)
  if (file_ != nullptr) file_->GrowMapping();
  if (change.whole) {
    MutexLock lock(&broken_mu_);
    broken_.erase(change.tenant);
  }
  auto it = layouts_.find(change.tenant);
  if (it != layouts_.end()) {
    for (const BlobLocation& loc : it->second.locs) live_bytes_ -= loc.size;
  }
  if (change.bounds.empty()) {
    if (it != layouts_.end()) layouts_.erase(it);
    return;
  }
  for (const BlobLocation& loc : change.locs) live_bytes_ += loc.size;
  layouts_[change.tenant] = Layout{change.bounds, change.rows, change.locs};
}

bool TenantExtents::WantsCompaction() const {
  return file_ != nullptr && file_->size() > 2 * live_bytes_ + compaction_slack_bytes_ &&
         file_->size() > failed_at_bytes_ + compaction_slack_bytes_;
}

void TenantExtents::CompactionFailed() { failed_at_bytes_ = file_ != nullptr ? file_->size() : 0; }

std::string TenantExtents::DropFileIfEmpty() {
  if (!layouts_.empty() || file_ == nullptr) return {};
  std::string path = file_->path();
  SetFile(nullptr);
  failed_at_bytes_ = 0;
  return path;
}

absl::StatusOr<TenantExtents::Compaction> TenantExtents::PlanCompaction(WriteBatch* batch) const {
  const uint64_t number = highest_number_ + 1;
  highest_number_ = number;
  const std::string path = FilePath(dir_, number);
  absl::StatusOr<Compaction> c = CopyLive(number, path, batch);
  if (!c.ok()) {
    // (Best effort: what is left is garbage no layout points to, removed at the next open.)
    if (env_.FileExists(path)) env_.RemoveFile(path).IgnoreError();
  }
  return c;
}

absl::StatusOr<TenantExtents::Compaction> TenantExtents::CopyLive(uint64_t number,
                                                                  const std::string& path,
                                                                  WriteBatch* batch) const {
  Compaction c;
  c.number = number;
  if (env_.FileExists(path)) RETURN_IF_ERROR(env_.RemoveFile(path));
  ASSIGN_OR_RETURN(std::unique_ptr<BlobFile> file, BlobFile::Open(env_, path));
  c.file = std::move(file);
  std::vector<Tenant> order;
  for (const auto& [t, layout] : layouts_) order.push_back(t);
  std::sort(order.begin(), order.end());
  for (Tenant t : order) {
    const Layout& layout = layouts_.at(t);
    std::vector<size_t> all(layout.bounds.size());
    for (size_t i = 0; i < all.size(); ++i) all[i] = i;
    std::vector<std::string> chunks(all.size());
    uint64_t bytes = 0, pages = 0;
    const absl::Status read = ReadChunks(
        *file_, layout, all,
        [&](size_t i, absl::string_view chunk) {
          chunks[i] = std::string(chunk);
          return absl::OkStatus();
        },
        &bytes, &pages);
    if (absl::IsDataLoss(read)) {
      c.dropped.push_back(t);
      batch->Delete(Cf::kTenants, LayoutKey(coll_, t));
      continue;
    }
    RETURN_IF_ERROR(read);
    std::vector<BlobLocation>& locs = c.locs[t];
    for (const std::string& chunk : chunks) {
      ASSIGN_OR_RETURN(BlobLocation loc, c.file->Append(chunk));
      locs.push_back(loc);
    }
    batch->Put(Cf::kTenants, LayoutKey(coll_, t),
               EncodeLayout(c.number, layout.bounds, layout.rows, locs));
  }
  RETURN_IF_ERROR(c.file->Sync());
  RETURN_IF_ERROR(env_.SyncDir(dir_));
  return c;
}

std::string TenantExtents::ApplyCompaction(Compaction compaction) {
  for (Tenant t : compaction.dropped) layouts_.erase(t);
  live_bytes_ = 0;
  for (auto& [t, locs] : compaction.locs) {
    Layout& layout = layouts_.at(t);
    layout.locs = std::move(locs);
    for (const BlobLocation& loc : layout.locs) live_bytes_ += loc.size;
  }
  std::string old = file_ != nullptr ? file_->path() : std::string();
  SetFile(std::move(compaction.file));
  if (file_ != nullptr) file_->GrowMapping();  // (it was mapped empty)
  file_number_ = compaction.number;
  failed_at_bytes_ = 0;
  return old;
}

uint64_t TenantExtents::MemoryBytes() const {
  uint64_t bytes = sizeof(*this) + layouts_.capacity() * (sizeof(Tenant) + sizeof(Layout));
  for (const auto& [t, l] : layouts_) {
    bytes += l.bounds.capacity() * sizeof(VectorId) + l.rows.capacity() * sizeof(uint32_t) +
             l.locs.capacity() * sizeof(BlobLocation);
  }
  return bytes;
}

std::string EncodeTenantExtent(absl::Span<const VectorId> ids, size_t row_bytes,
                               absl::FunctionRef<const uint8_t*(size_t)> row) {
  std::string out;
  out.resize(ids.size() * (sizeof(VectorId) + row_bytes));
  char* p = out.data();
  for (size_t i = 0; i < ids.size(); ++i) {
    std::memcpy(p, &ids[i], sizeof(VectorId));
    std::memcpy(p + sizeof(VectorId), row(i), row_bytes);
    p += sizeof(VectorId) + row_bytes;
  }
  return out;
}

absl::Status DecodeTenantExtent(absl::string_view record, size_t row_bytes,
                                absl::FunctionRef<void(VectorId, const uint8_t*)> visit) {
  const size_t stride = sizeof(VectorId) + row_bytes;
  if (record.size() % stride != 0) {
    return absl::DataLossError("a tenant extent record is not whole rows");
  }
  VectorId last = 0;
  for (size_t off = 0; off < record.size(); off += stride) {
    VectorId id;
    std::memcpy(&id, record.data() + off, sizeof id);
    if (off > 0 && id <= last) {
      return absl::DataLossError("a tenant extent record's ids are not ascending");
    }
    last = id;
    visit(id, reinterpret_cast<const uint8_t*>(record.data() + off + sizeof(VectorId)));
  }
  return absl::OkStatus();
}

}  // namespace strata
