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

size_t TenantExtents::chunks(Tenant t) const {
  auto it = bounds_.find(t);
  return it == bounds_.end() ? 0 : it->second.size();
}

absl::StatusOr<bool> TenantExtents::Read(const MetadataStore& store, Tenant t,
                                         const StoreSnapshot* at,
                                         absl::FunctionRef<void(VectorId, const uint8_t*)> visit,
                                         uint64_t* bytes) const {
  *bytes = 0;
  auto it = bounds_.find(t);
  if (it == bounds_.end()) return false;
  std::vector<std::string> keys;
  for (VectorId b : it->second) keys.push_back(Key(coll_, t, b));
  std::vector<absl::StatusOr<std::string>> got = store.MultiGet(Cf::kTenants, keys, at);
  for (const absl::StatusOr<std::string>& g : got) {
    if (absl::IsNotFound(g.status())) return false;
    if (!g.ok()) return g.status();
  }
  for (const absl::StatusOr<std::string>& g : got) {
    RETURN_IF_ERROR(DecodeTenantExtent(*g, row_bytes_, visit));
    *bytes += g->size();
  }
  return true;
}

absl::StatusOr<TenantExtents::Change> TenantExtents::Plan(
    const MetadataStore& store, Tenant t, absl::Span<const VectorId> ids,
    absl::FunctionRef<const uint8_t*(VectorId)> fresh,
    absl::FunctionRef<absl::Status(absl::Span<const VectorId>, std::vector<std::string>*)>
        read_vectors,
    WriteBatch* batch) const {
  Change change{t, {}};
  auto it = bounds_.find(t);
  const std::vector<VectorId> old_bounds =
      it == bounds_.end() ? std::vector<VectorId>{} : it->second;
  if (ids.empty() || ids.size() > max_rows_) {
    for (VectorId b : old_bounds) batch->Delete(Cf::kTenants, Key(coll_, t, b));
    return change;
  }
  // The rows the extent holds now, by chunk. A chunk missing or malformed (damage to derived
  // data) counts as empty: its rows are read from the vectors again and it is rewritten.
  absl::flat_hash_map<VectorId, const uint8_t*> row_of;
  std::vector<std::vector<VectorId>> old_ids(old_bounds.size());
  std::vector<std::string> records(old_bounds.size());  // (not moved once rows point into them)
  if (!old_bounds.empty()) {
    std::vector<std::string> keys;
    for (VectorId b : old_bounds) keys.push_back(Key(coll_, t, b));
    std::vector<absl::StatusOr<std::string>> got = store.MultiGet(Cf::kTenants, keys);
    for (size_t i = 0; i < got.size(); ++i) {
      if (absl::IsNotFound(got[i].status())) continue;
      if (!got[i].ok()) return got[i].status();
      records[i] = std::move(*got[i]);
    }
    for (size_t i = 0; i < records.size(); ++i) {
      std::vector<std::pair<VectorId, const uint8_t*>> rows;
      if (DecodeTenantExtent(records[i], row_bytes_, [&](VectorId id, const uint8_t* row) {
            rows.emplace_back(id, row);
          }).ok()) {
        for (const auto& [id, row] : rows) {
          row_of[id] = row;
          old_ids[i].push_back(id);
        }
      }
    }
  }
  // Rows it lacks, from the stored vectors.
  std::vector<VectorId> need;
  for (VectorId id : ids) {
    if (fresh(id) == nullptr && !row_of.contains(id)) need.push_back(id);
  }
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
  const auto row = [&](VectorId id) {
    const uint8_t* f = fresh(id);
    return f != nullptr ? f : row_of.at(id);
  };

  // The points by chunk of the bounds as they are (one chunk from 0 for a new extent).
  struct Chunk {
    VectorId bound;
    std::vector<VectorId> ids;
  };
  const std::vector<VectorId> bounds = old_bounds.empty() ? std::vector<VectorId>{0} : old_bounds;
  std::vector<Chunk> placed;
  for (VectorId b : bounds) placed.push_back({b, {}});
  size_t c = 0;
  for (VectorId id : ids) {
    while (c + 1 < bounds.size() && bounds[c + 1] <= id) ++c;
    placed[c].ids.push_back(id);
  }
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
  // Written: the chunks whose rows changed, or whose vectors the batch writes.
  absl::flat_hash_map<VectorId, size_t> old_at;
  for (size_t i = 0; i < old_bounds.size(); ++i) old_at[old_bounds[i]] = i;
  for (const Chunk& ch : chunks) {
    change.bounds.push_back(ch.bound);
    auto o = old_at.find(ch.bound);
    bool same = o != old_at.end() && old_ids[o->second] == ch.ids;
    for (size_t i = 0; same && i < ch.ids.size(); ++i) same = fresh(ch.ids[i]) == nullptr;
    if (same) continue;
    batch->Put(Cf::kTenants, Key(coll_, t, ch.bound),
               EncodeTenantExtent(ch.ids, row_bytes_, [&](size_t i) { return row(ch.ids[i]); }));
  }
  for (VectorId b : old_bounds) {
    if (!std::binary_search(change.bounds.begin(), change.bounds.end(), b)) {
      batch->Delete(Cf::kTenants, Key(coll_, t, b));
    }
  }
  return change;
}

absl::Status TenantExtents::Load(const MetadataStore& store, absl::Span<const Tenant> tenants,
                                 absl::FunctionRef<std::vector<VectorId>(Tenant)> members,
                                 WriteBatch* batch, std::vector<Tenant>* rebuild) {
  bounds_.clear();
  struct Found {
    std::vector<std::string> keys;
    std::vector<VectorId> bounds, ids;
    bool ok = true;
  };
  absl::flat_hash_map<Tenant, Found> found;
  const std::string prefix = ExtentPrefix(coll_);
  RETURN_IF_ERROR(store.Scan(Cf::kTenants, prefix, [&](auto key, auto value) {
    if (key.size() < 9) return absl::OkStatus();  // not an extent's (none are this short)
    Found& f = found[ReadU32(key, 5)];
    f.keys.emplace_back(key);
    // A key without a bound is the one-record format before chunks: rebuilt.
    if (key.size() != 13) {
      f.ok = false;
      return absl::OkStatus();
    }
    const VectorId bound = ReadU32(key, 9);
    if ((f.bounds.empty() && bound != 0) || (!f.ids.empty() && f.ids.back() >= bound)) {
      f.ok = false;
    }
    f.bounds.push_back(bound);
    size_t rows = 0;
    const absl::Status s = DecodeTenantExtent(value, row_bytes_, [&](VectorId id, const uint8_t*) {
      if (id < bound) f.ok = false;
      f.ids.push_back(id);
      ++rows;
    });
    if (!s.ok() || rows == 0 || rows > chunk_rows_) f.ok = false;
    return absl::OkStatus();
  }));
  for (Tenant t : tenants) {
    const std::vector<VectorId> want = members(t);
    const bool wanted = !want.empty() && want.size() <= max_rows_;
    auto it = found.find(t);
    if (it == found.end()) {
      if (wanted) rebuild->push_back(t);
      continue;
    }
    Found& f = it->second;
    if (wanted && f.ok && f.ids == want) {
      bounds_[t] = std::move(f.bounds);
    } else {
      for (const std::string& k : f.keys) batch->Delete(Cf::kTenants, k);
      if (wanted) rebuild->push_back(t);
    }
    found.erase(it);
  }
  // Extents of tenants that are no more.
  for (const auto& [t, f] : found) {
    for (const std::string& k : f.keys) batch->Delete(Cf::kTenants, k);
  }
  return absl::OkStatus();
}

void TenantExtents::Apply(const Change& change) {
  if (change.bounds.empty()) {
    bounds_.erase(change.tenant);
  } else {
    bounds_[change.tenant] = change.bounds;
  }
}

uint64_t TenantExtents::MemoryBytes() const {
  uint64_t bytes =
      sizeof(*this) + bounds_.capacity() * (sizeof(Tenant) + sizeof(bounds_.begin()->second));
  for (const auto& [t, b] : bounds_) bytes += b.capacity() * sizeof(VectorId);
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
