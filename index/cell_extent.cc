#include "index/cell_extent.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "storage/status_macros.h"

namespace strata {
namespace {

std::string RowPrefix(uint32_t coll, uint32_t t) {
  std::string k = "y";
  AppendU32(&k, coll);
  AppendU32(&k, t);
  return k;
}

}  // namespace

CellExtents::CellExtents(uint32_t coll, size_t row_bytes, size_t min_rows, size_t extent_bytes)
    : coll_(coll),
      row_bytes_(row_bytes),
      min_rows_(min_rows),
      max_rows_(extent_bytes / (sizeof(VectorId) + row_bytes)) {}

std::string CellExtents::Key(uint32_t coll, Tenant t, uint32_t cell, VectorId id) {
  std::string k = RowPrefix(coll, t);
  AppendU32(&k, cell);
  AppendU32(&k, id);
  return k;
}

std::string CellExtents::LayoutKey(uint32_t coll, Tenant t) {
  std::string k = "Y";
  AppendU32(&k, coll);
  AppendU32(&k, t);
  return k;
}

std::string CellExtents::EncodeCounts(const Counts& counts) {
  std::vector<std::pair<uint32_t, uint32_t>> sorted(counts.begin(), counts.end());
  std::sort(sorted.begin(), sorted.end());
  std::string v;
  for (const auto& [cell, rows] : sorted) {
    AppendU32(&v, cell);
    AppendU32(&v, rows);
  }
  return v;
}

bool CellExtents::Broken(Tenant t) const {
  MutexLock lock(&broken_mu_);
  return broken_.contains(t);
}

bool CellExtents::MarkBroken(Tenant t) const {
  MutexLock lock(&broken_mu_);
  return broken_.insert(t).second;
}

uint64_t CellExtents::Rows(Tenant t) const {
  auto it = layouts_.find(t);
  return it == layouts_.end() ? 0 : it->second.rows;
}

absl::StatusOr<bool> CellExtents::Read(const MetadataStore& store, Tenant t,
                                       const StoreSnapshot* at, absl::Span<const uint32_t> ranked,
                                       uint32_t probe_cells, uint64_t min_rows,
                                       absl::FunctionRef<void(VectorId, const uint8_t*)> visit,
                                       uint64_t* bytes, uint64_t* pages, uint32_t* cells) const {
  *bytes = 0;
  *pages = 0;
  *cells = 0;
  auto it = layouts_.find(t);
  if (it == layouts_.end() || Broken(t)) return false;
  const Counts& counts = it->second.counts;
  // The cells to read, then one pass over their key ranges (in key order).
  std::vector<std::pair<uint32_t, uint32_t>> picked;  // cell, rows
  uint64_t rows = 0;
  for (uint32_t cell : ranked) {
    if (*cells >= probe_cells && rows >= min_rows) break;
    ++*cells;
    auto c = counts.find(cell);
    if (c == counts.end()) continue;
    picked.emplace_back(cell, c->second);
    rows += c->second;
  }
  std::sort(picked.begin(), picked.end());
  std::vector<std::string> prefixes;
  prefixes.reserve(picked.size());
  for (const auto& [cell, n] : picked) {
    std::string p = RowPrefix(coll_, t);
    AppendU32(&p, cell);
    prefixes.push_back(std::move(p));
  }
  std::vector<uint32_t> seen(picked.size(), 0);
  RETURN_IF_ERROR(store.ScanEach(
      Cf::kTenants, prefixes,
      [&](size_t i, absl::string_view key, absl::string_view value) -> absl::Status {
        if (key.size() != 17 || value.size() != row_bytes_) {
          return absl::DataLossError("a cell extent row is malformed");
        }
        visit(ReadU32(key, 13), reinterpret_cast<const uint8_t*>(value.data()));
        ++seen[i];
        return absl::OkStatus();
      },
      at));
  const size_t stride = sizeof(VectorId) + row_bytes_;
  for (size_t i = 0; i < picked.size(); ++i) {
    // (Rows of a cell its count does not know: damage, searched around by the caller.)
    if (seen[i] != picked[i].second) return false;
    *bytes += uint64_t{seen[i]} * stride;
    *pages += (uint64_t{seen[i]} * stride + 4095) / 4096;
  }
  return true;
}

absl::Status CellExtents::DeleteUnder(const MetadataStore& store, absl::string_view prefix,
                                      WriteBatch* batch) {
  // Key by key: RocksDB's range deletes (DeletePrefix) made it abort after simulated power cuts
  // in tests/index/power_loss_test.cc (an assertion in ExtractUserKey), so none are written
  // here.
  return store.Scan(Cf::kTenants, prefix, [&](absl::string_view key, auto) {
    batch->Delete(Cf::kTenants, key);
    return absl::OkStatus();
  });
}

absl::StatusOr<CellExtents::Change> CellExtents::PlanDrop(const MetadataStore& store, Tenant t,
                                                          WriteBatch* batch) const {
  Change change{t, {}, true};
  if (!layouts_.contains(t)) return change;
  RETURN_IF_ERROR(DeleteUnder(store, RowPrefix(coll_, t), batch));
  batch->Delete(Cf::kTenants, LayoutKey(coll_, t));
  return change;
}

absl::StatusOr<CellExtents::Change> CellExtents::PlanWhole(const MetadataStore& store, Tenant t,
                                                           absl::Span<const Row> rows,
                                                           WriteBatch* batch) const {
  Change change{t, {}, true};
  // (Whatever is under the prefix, rows a count may have lost track of too; a Put after the
  // delete in the same batch wins.)
  RETURN_IF_ERROR(DeleteUnder(store, RowPrefix(coll_, t), batch));
  if (rows.empty()) {
    batch->Delete(Cf::kTenants, LayoutKey(coll_, t));
    return change;
  }
  for (const Row& r : rows) {
    batch->Put(Cf::kTenants, Key(coll_, t, r.cell, r.id),
               absl::string_view(reinterpret_cast<const char*>(r.bytes), row_bytes_));
    ++change.counts[r.cell];
  }
  batch->Put(Cf::kTenants, LayoutKey(coll_, t), EncodeCounts(change.counts));
  return change;
}

absl::StatusOr<CellExtents::Change> CellExtents::Plan(Tenant t, absl::Span<const Removal> removals,
                                                      absl::Span<const Row> additions,
                                                      WriteBatch* batch) const {
  auto it = layouts_.find(t);
  if (it == layouts_.end()) {
    return absl::FailedPreconditionError("tenant has no cell extent to change");
  }
  Change change{t, it->second.counts, false};
  for (const Removal& r : removals) {
    auto c = change.counts.find(r.cell);
    if (c == change.counts.end() || c->second == 0) {
      return absl::DataLossError(
          absl::StrCat("cell extent: id ", r.id, " is not counted in cell ", r.cell));
    }
    if (--c->second == 0) change.counts.erase(c);
  }
  for (const Row& r : additions) ++change.counts[r.cell];
  // Removals first: a row moved within its cell (a new vector, the same cell) is put back.
  for (const Removal& r : removals) batch->Delete(Cf::kTenants, Key(coll_, t, r.cell, r.id));
  for (const Row& r : additions) {
    batch->Put(Cf::kTenants, Key(coll_, t, r.cell, r.id),
               absl::string_view(reinterpret_cast<const char*>(r.bytes), row_bytes_));
  }
  if (change.counts.empty()) {
    batch->Delete(Cf::kTenants, LayoutKey(coll_, t));
  } else if (!removals.empty() || !additions.empty()) {
    batch->Put(Cf::kTenants, LayoutKey(coll_, t), EncodeCounts(change.counts));
  }
  return change;
}

absl::Status CellExtents::Load(const MetadataStore& store, absl::Span<const Tenant> tenants,
                               absl::FunctionRef<uint64_t(Tenant)> points, uint32_t cells,
                               WriteBatch* batch, std::vector<Tenant>* rebuild) {
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
  std::string prefix = "Y";
  AppendU32(&prefix, coll_);
  RETURN_IF_ERROR(store.Scan(Cf::kTenants, prefix, [&](auto key, auto value) {
    if (key.size() != 9) return absl::OkStatus();  // not a layout (none are of another size)
    Found& f = found[ReadU32(key, 5)];
    if (value.size() % 8 != 0) {
      f.ok = false;
      return absl::OkStatus();
    }
    for (size_t at = 0; at < value.size(); at += 8) {
      const uint32_t cell = ReadU32(value, at);
      const uint32_t rows = ReadU32(value, at + 4);
      f.ok &= rows > 0 && cell < cells && f.layout.counts.emplace(cell, rows).second;
      f.layout.rows += rows;
    }
    return absl::OkStatus();
  }));
  const auto remove = [&](Tenant t) -> absl::Status {
    RETURN_IF_ERROR(DeleteUnder(store, RowPrefix(coll_, t), batch));
    batch->Delete(Cf::kTenants, LayoutKey(coll_, t));
    return absl::OkStatus();
  };
  if (cells == 0) {
    // No cells: no cell extent stands (rows without counts too).
    std::string rows_prefix = "y";
    AppendU32(&rows_prefix, coll_);
    RETURN_IF_ERROR(DeleteUnder(store, rows_prefix, batch));
    return DeleteUnder(store, prefix, batch);
  }
  for (Tenant t : tenants) {
    const uint64_t n = points(t);
    auto it = found.find(t);
    if (it == found.end()) {
      if (Wants(n)) rebuild->push_back(t);
      continue;
    }
    if (Keeps(n) && it->second.ok && it->second.layout.rows == n) {
      layouts_[t] = std::move(it->second.layout);
    } else {
      RETURN_IF_ERROR(remove(t));
      if (Wants(n)) rebuild->push_back(t);
    }
    found.erase(it);
  }
  for (const auto& [t, f] : found) RETURN_IF_ERROR(remove(t));
  return absl::OkStatus();
}

void CellExtents::Apply(const Change& change) {
  if (change.whole) {
    MutexLock lock(&broken_mu_);
    broken_.erase(change.tenant);
  }
  if (change.counts.empty()) {
    layouts_.erase(change.tenant);
    return;
  }
  Layout& l = layouts_[change.tenant];
  l.counts = change.counts;
  l.rows = 0;
  for (const auto& [cell, rows] : l.counts) l.rows += rows;
}

uint64_t CellExtents::MemoryBytes() const {
  uint64_t bytes = sizeof(*this) + layouts_.capacity() * (sizeof(Tenant) + sizeof(Layout));
  for (const auto& [t, l] : layouts_) {
    bytes += l.counts.capacity() * (sizeof(uint32_t) * 2 + 1);
  }
  return bytes;
}

}  // namespace strata
