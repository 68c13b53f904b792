#include "index/tenant_extent.h"

#include <algorithm>
#include <bit>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "storage/status_macros.h"

namespace strata {
namespace {

// Ids are copied in the machine's order; the format says little-endian.
static_assert(std::endian::native == std::endian::little, "tenant extents are little-endian");

// Rows of `row_bytes` vectors (with their ids) within `bytes`, at least one.
size_t RowsWithin(size_t bytes, size_t row_bytes) {
  return std::max<size_t>(1, bytes / (sizeof(VectorId) + row_bytes));
}

std::string ExtentPrefix(uint32_t coll) {
  std::string k = "x";
  AppendU32(&k, coll);
  return k;
}

}  // namespace

TenantExtents::TenantExtents(uint32_t coll, size_t row_bytes, size_t extent_bytes)
    : coll_(coll),
      row_bytes_(row_bytes),
      max_rows_(RowsWithin(extent_bytes, row_bytes)),
      chunk_rows_(std::min(
          max_rows_, RowsWithin(std::min(kTenantExtentChunkBytes, extent_bytes / 8), row_bytes))) {}

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

std::string TenantExtents::EncodeLayout(absl::Span<const VectorId> bounds,
                                        absl::Span<const uint32_t> rows) {
  std::string v;
  for (size_t i = 0; i < bounds.size(); ++i) {
    AppendU32(&v, bounds[i]);
    AppendU32(&v, rows[i]);
  }
  return v;
}

bool TenantExtents::WellFormed(const Layout& layout, uint64_t points) const {
  if (layout.bounds.empty() || layout.bounds[0] != 0 || points == 0 || points > max_rows_) {
    return false;
  }
  uint64_t total = 0;
  for (size_t i = 0; i < layout.bounds.size(); ++i) {
    if (i > 0 && layout.bounds[i] <= layout.bounds[i - 1]) return false;
    if (layout.rows[i] == 0 || layout.rows[i] > chunk_rows_) return false;
    total += layout.rows[i];
  }
  return total == points;
}

size_t TenantExtents::chunks(Tenant t) const {
  auto it = layouts_.find(t);
  return it == layouts_.end() ? 0 : it->second.bounds.size();
}

absl::StatusOr<bool> TenantExtents::Read(const MetadataStore& store, Tenant t,
                                         const StoreSnapshot* at,
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
  std::vector<std::string> keys;
  for (VectorId b : layout.bounds) keys.push_back(Key(coll_, t, b));
  const size_t stride = sizeof(VectorId) + row_bytes_;
  bool whole = true;
  // (The chunks are decoded where the store holds them: no copy of each.)
  RETURN_IF_ERROR(store.MultiGetLent(
      Cf::kTenants, keys, at,
      [&](absl::Span<const absl::StatusOr<absl::string_view>> got) -> absl::Status {
        for (size_t i = 0; i < got.size(); ++i) {
          if (!got[i].ok() && !absl::IsNotFound(got[i].status())) return got[i].status();
          if (!got[i].ok() || got[i]->size() != layout.rows[i] * stride) {
            whole = false;
            return absl::OkStatus();
          }
        }
        for (const absl::StatusOr<absl::string_view>& g : got) {
          RETURN_IF_ERROR(DecodeTenantExtent(*g, row_bytes_, visit));
          *bytes += g->size();
          *pages += (g->size() + 4095) / 4096;
        }
        return absl::OkStatus();
      }));
  return whole;
}

bool TenantExtents::MarkBroken(Tenant t) const {
  MutexLock lock(&broken_mu_);
  return broken_.insert(t).second;
}

absl::StatusOr<TenantExtents::Change> TenantExtents::Plan(
    const MetadataStore& store, Tenant t, absl::Span<const VectorId> before,
    absl::Span<const VectorId> ids, absl::FunctionRef<const uint8_t*(VectorId)> fresh,
    absl::FunctionRef<absl::Status(absl::Span<const VectorId>, std::vector<std::string>*)>
        read_vectors,
    WriteBatch* batch) const {
  Change change{t, {}, {}, false};
  bool broken;
  {
    MutexLock lock(&broken_mu_);
    broken = broken_.contains(t);
  }
  auto it = layouts_.find(t);
  const std::vector<VectorId> old_bounds =
      it == layouts_.end() ? std::vector<VectorId>{} : it->second.bounds;
  if (ids.empty() || ids.size() > max_rows_) {
    for (VectorId b : old_bounds) batch->Delete(Cf::kTenants, Key(coll_, t, b));
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
  std::vector<std::string> keys;
  for (size_t i = 0; i < old_bounds.size(); ++i) {
    if (!wanted[i]) continue;
    read.push_back(i);
    keys.push_back(Key(coll_, t, old_bounds[i]));
  }
  std::vector<std::string> records(read.size());  // (not moved once rows point into them)
  if (!keys.empty()) {
    std::vector<absl::StatusOr<std::string>> got = store.MultiGet(Cf::kTenants, keys);
    for (size_t i = 0; i < got.size(); ++i) {
      if (absl::IsNotFound(got[i].status())) continue;
      if (!got[i].ok()) return got[i].status();
      records[i] = std::move(*got[i]);
    }
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
  for (const Chunk* ch : rewrite) {
    batch->Put(Cf::kTenants, Key(coll_, t, ch->bound),
               EncodeTenantExtent(ch->ids, row_bytes_, [&](size_t i) {
                 const uint8_t* f = fresh(ch->ids[i]);
                 return f != nullptr ? f : row_of.at(ch->ids[i]);
               }));
  }
  for (VectorId b : old_bounds) {
    if (!std::binary_search(change.bounds.begin(), change.bounds.end(), b)) {
      batch->Delete(Cf::kTenants, Key(coll_, t, b));
    }
  }
  if (it == layouts_.end() || broken || it->second.bounds != change.bounds ||
      it->second.rows != change.rows) {
    batch->Put(Cf::kTenants, LayoutKey(coll_, t), EncodeLayout(change.bounds, change.rows));
  }
  return change;
}

absl::Status TenantExtents::Load(const MetadataStore& store, absl::Span<const Tenant> tenants,
                                 absl::FunctionRef<uint64_t(Tenant)> points, WriteBatch* batch,
                                 std::vector<Tenant>* rebuild) {
  layouts_.clear();
  {
    MutexLock lock(&broken_mu_);
    broken_.clear();
  }
  struct Found {
    Layout layout;
    bool ok = true;
  };
  absl::flat_hash_map<Tenant, Found> found;
  std::string prefix = "X";
  AppendU32(&prefix, coll_);
  RETURN_IF_ERROR(store.Scan(Cf::kTenants, prefix, [&](auto key, auto value) {
    if (key.size() != 9) return absl::OkStatus();  // not a layout (none are of another size)
    Found& f = found[ReadU32(key, 5)];
    if (value.size() % 8 != 0) {
      f.ok = false;
      return absl::OkStatus();
    }
    for (size_t at = 0; at < value.size(); at += 8) {
      f.layout.bounds.push_back(ReadU32(value, at));
      f.layout.rows.push_back(ReadU32(value, at + 4));
    }
    return absl::OkStatus();
  }));
  // Removes a tenant's extent: its layout, and whatever is under its chunks' prefix (an extent
  // of an older format too; a seek for a tenant that has none).
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
    if (wanted && f != nullptr && f->ok && WellFormed(f->layout, n)) {
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
  if (change.whole) {
    MutexLock lock(&broken_mu_);
    broken_.erase(change.tenant);
  }
  if (change.bounds.empty()) {
    layouts_.erase(change.tenant);
  } else {
    layouts_[change.tenant] = Layout{change.bounds, change.rows};
  }
}

uint64_t TenantExtents::MemoryBytes() const {
  uint64_t bytes = sizeof(*this) + layouts_.capacity() * (sizeof(Tenant) + sizeof(Layout));
  for (const auto& [t, l] : layouts_) {
    bytes += l.bounds.capacity() * sizeof(VectorId) + l.rows.capacity() * sizeof(uint32_t);
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
