#include "index/cell_extent.h"

#include <algorithm>
#include <map>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "base/check.h"
#include "storage/read_fanout.h"
#include "storage/status_macros.h"

namespace strata {
namespace {

// A block's key: its cell's prefix and five 0xFF bytes, after every change key of the cell
// (prefix and a 4-byte id) in key order.
constexpr absl::string_view kBlockSuffix("\xff\xff\xff\xff\xff", 5);
constexpr size_t kPrefixBytes = 13;  // 'y' coll tenant cell
// The counts record's first word, in the format with change keys (before it: [u32 cell][u32
// rows] per cell, every row a key of its own). Never a cell: cells are few.
constexpr uint32_t kCountsWithChanges = 0xFFFFFFFFu;

std::string RowPrefix(uint32_t coll, uint32_t t) {
  std::string k = "y";
  AppendU32(&k, coll);
  AppendU32(&k, t);
  return k;
}

}  // namespace

CellExtents::CellExtents(uint32_t coll, size_t row_bytes, size_t min_rows, size_t extent_bytes,
                         size_t fold_bytes)
    : coll_(coll),
      row_bytes_(row_bytes),
      min_rows_(min_rows),
      max_rows_(extent_bytes / (sizeof(VectorId) + row_bytes)),
      fold_bytes_(fold_bytes) {}

std::string CellExtents::Key(uint32_t coll, Tenant t, uint32_t cell, VectorId id) {
  std::string k = RowPrefix(coll, t);
  AppendU32(&k, cell);
  AppendU32(&k, id);
  return k;
}

std::string CellExtents::BlockKey(uint32_t coll, Tenant t, uint32_t cell) {
  std::string k = RowPrefix(coll, t);
  AppendU32(&k, cell);
  k.append(kBlockSuffix.data(), kBlockSuffix.size());
  return k;
}

std::string CellExtents::LayoutKey(uint32_t coll, Tenant t) {
  std::string k = "Y";
  AppendU32(&k, coll);
  AppendU32(&k, t);
  return k;
}

std::string CellExtents::EncodeCounts(const Counts& counts) {
  std::vector<std::pair<uint32_t, CellCount>> sorted(counts.begin(), counts.end());
  std::sort(sorted.begin(), sorted.end(),
            [](const auto& a, const auto& b) { return a.first < b.first; });
  std::string v;
  AppendU32(&v, kCountsWithChanges);
  for (const auto& [cell, c] : sorted) {
    AppendU32(&v, cell);
    AppendU32(&v, c.rows);
    AppendU32(&v, c.changes);
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

absl::Status CellExtents::ReadCells(const MetadataStore& store,
                                    absl::Span<const std::string> prefixes, const StoreSnapshot* at,
                                    absl::FunctionRef<void(size_t, VectorId, const uint8_t*)> visit,
                                    std::vector<uint32_t>* seen,
                                    std::vector<std::vector<std::string>>* keys,
                                    uint64_t* bytes) const {
  seen->assign(prefixes.size(), 0);
  if (keys != nullptr) keys->assign(prefixes.size(), {});
  const size_t stride = sizeof(VectorId) + row_bytes_;
  // The ids of the cell's change keys, ascending (key order): its block's rows of those ids no
  // longer count.
  std::vector<VectorId> changed;
  size_t cell = prefixes.size();
  return store.ScanEach(
      Cf::kTenants, prefixes,
      [&](size_t i, absl::string_view key, absl::string_view value) -> absl::Status {
        if (i != cell) {
          cell = i;
          changed.clear();
        }
        if (key.size() == kPrefixBytes + sizeof(VectorId)) {
          const VectorId id = ReadU32(key, kPrefixBytes);
          changed.push_back(id);
          if (keys != nullptr) (*keys)[i].emplace_back(key);
          if (value.empty()) return absl::OkStatus();
          if (value.size() != row_bytes_) {
            return absl::DataLossError("a cell extent row is malformed");
          }
          visit(i, id, reinterpret_cast<const uint8_t*>(value.data()));
          ++(*seen)[i];
          *bytes += stride;
          return absl::OkStatus();
        }
        if (key.size() != kPrefixBytes + kBlockSuffix.size() ||
            key.substr(kPrefixBytes) != kBlockSuffix || value.size() % stride != 0) {
          return absl::DataLossError("a cell extent block is malformed");
        }
        size_t c = 0;
        for (size_t at = 0; at < value.size(); at += stride) {
          const VectorId id = ReadU32(value, at);
          if (at > 0 && id <= ReadU32(value, at - stride)) {
            return absl::DataLossError("a cell extent block's ids are out of order");
          }
          while (c < changed.size() && changed[c] < id) ++c;
          if (c < changed.size() && changed[c] == id) continue;
          visit(i, id, reinterpret_cast<const uint8_t*>(value.data() + at + sizeof(VectorId)));
          ++(*seen)[i];
        }
        *bytes += value.size();
        return absl::OkStatus();
      },
      at);
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
    picked.emplace_back(cell, c->second.rows);
    rows += c->second.rows;
  }
  std::sort(picked.begin(), picked.end());
  std::vector<std::string> prefixes;
  prefixes.reserve(picked.size());
  for (const auto& [cell, n] : picked) {
    std::string p = RowPrefix(coll_, t);
    AppendU32(&p, cell);
    prefixes.push_back(std::move(p));
  }
  std::vector<uint32_t> seen;
  RETURN_IF_ERROR(ReadCells(
      store, prefixes, at, [&](size_t, VectorId id, const uint8_t* row) { visit(id, row); }, &seen,
      nullptr, bytes));
  for (size_t i = 0; i < picked.size(); ++i) {
    // (Rows of a cell its count does not know: damage, searched around by the caller.)
    if (seen[i] != picked[i].second) return false;
  }
  *pages = std::max<uint64_t>((*bytes + 4095) / 4096, picked.size());
  return true;
}

absl::Status CellExtents::DeleteUnder(const MetadataStore& store, absl::string_view prefix,
                                      WriteBatch* batch) {
  // Key by key, as every delete of the store (no range deletes: storage/metadata_store.h).
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
  // One block per cell, ascending ids.
  std::vector<const Row*> sorted;
  sorted.reserve(rows.size());
  for (const Row& r : rows) sorted.push_back(&r);
  std::sort(sorted.begin(), sorted.end(), [](const Row* a, const Row* b) {
    return a->cell != b->cell ? a->cell < b->cell : a->id < b->id;
  });
  std::string block;
  for (size_t i = 0; i < sorted.size();) {
    const uint32_t cell = sorted[i]->cell;
    block.clear();
    uint32_t n = 0;
    for (; i < sorted.size() && sorted[i]->cell == cell; ++i, ++n) {
      AppendU32(&block, sorted[i]->id);
      block.append(reinterpret_cast<const char*>(sorted[i]->bytes), row_bytes_);
    }
    batch->Put(Cf::kTenants, BlockKey(coll_, t, cell), block);
    change.counts[cell] = {n, 0};
  }
  batch->Put(Cf::kTenants, LayoutKey(coll_, t), EncodeCounts(change.counts));
  return change;
}

absl::Status CellExtents::PlanFold(const MetadataStore& store, Tenant t, uint32_t cell,
                                   absl::Span<const VectorId> out, absl::Span<const Row> in,
                                   uint32_t rows, absl::FunctionRef<bool(VectorId)> sees,
                                   WriteBatch* batch) const {
  std::string prefix = RowPrefix(coll_, t);
  AppendU32(&prefix, cell);
  std::map<VectorId, std::string> now;
  std::vector<uint32_t> seen;
  std::vector<std::vector<std::string>> keys;
  uint64_t bytes = 0;
  RETURN_IF_ERROR(ReadCells(
      store, {prefix}, nullptr,
      [&](size_t, VectorId id, const uint8_t* row) {
        now[id].assign(reinterpret_cast<const char*>(row), row_bytes_);
      },
      &seen, &keys, &bytes));
  for (VectorId id : out) {
    if (now.erase(id) == 0) {
      return absl::DataLossError(
          absl::StrCat("cell extent: id ", id, " is not filed in cell ", cell));
    }
  }
  for (const Row& r : in) now[r.id].assign(reinterpret_cast<const char*>(r.bytes), row_bytes_);
  if (now.size() != rows) {
    return absl::DataLossError(absl::StrCat("cell extent: cell ", cell, " holds ", now.size(),
                                            " rows where ", rows, " are counted"));
  }
  for (const auto& [id, row] : now) {
    if (!sees(id)) {
      return absl::DataLossError(absl::StrCat("cell extent: cell ", cell, " holds a row of point ",
                                              id, " which the tenant does not see"));
    }
  }
  for (const std::string& key : keys[0]) batch->Delete(Cf::kTenants, key);
  if (now.empty()) {
    batch->Delete(Cf::kTenants, BlockKey(coll_, t, cell));
    return absl::OkStatus();
  }
  std::string block;
  block.reserve(now.size() * (sizeof(VectorId) + row_bytes_));
  for (const auto& [id, row] : now) {
    AppendU32(&block, id);
    block.append(row);
  }
  batch->Put(Cf::kTenants, BlockKey(coll_, t, cell), block);
  return absl::OkStatus();
}

absl::StatusOr<CellExtents::Change> CellExtents::Plan(const MetadataStore& store, Tenant t,
                                                      absl::Span<const Removal> removals,
                                                      absl::Span<const Row> additions,
                                                      absl::FunctionRef<bool(VectorId)> sees,
                                                      WriteBatch* batch) const {
  auto it = layouts_.find(t);
  if (it == layouts_.end()) {
    return absl::FailedPreconditionError("tenant has no cell extent to change");
  }
  Change change{t, it->second.counts, false, 0};
  for (const Removal& r : removals) {
    auto c = change.counts.find(r.cell);
    if (c == change.counts.end() || c->second.rows == 0) {
      return absl::DataLossError(
          absl::StrCat("cell extent: id ", r.id, " is not counted in cell ", r.cell));
    }
    --c->second.rows;
    ++c->second.changes;
  }
  for (const Row& r : additions) {
    CellCount& c = change.counts[r.cell];
    ++c.rows;
    ++c.changes;
  }
  // The cells folded by this write: those left empty, and the fullest of those past FoldAbove.
  absl::flat_hash_set<uint32_t> fold;
  std::vector<std::pair<uint32_t, uint32_t>> due;  // changes, cell
  for (const auto& [cell, c] : change.counts) {
    if (c.rows == 0) {
      fold.insert(cell);
    } else if (c.changes > FoldAbove(c.rows)) {
      due.emplace_back(c.changes, cell);
    }
  }
  std::sort(due.rbegin(), due.rend());
  size_t folding = 0;
  for (size_t i = 0; i < due.size() && (i == 0 || folding < fold_bytes_); ++i) {
    fold.insert(due[i].second);
    folding += size_t{change.counts[due[i].second].rows} * (sizeof(VectorId) + row_bytes_);
  }
  // The folds first, each into a batch of its own (a fold refused leaves `batch` as it was), their
  // cells read at once: out of the page cache, a fold's reads are the write's longest wait.
  const std::vector<uint32_t> folded(fold.begin(), fold.end());
  std::vector<WriteBatch> folds(folded.size());
  std::vector<absl::Status> planned(folded.size());
  const Counts& counts = change.counts;
  ReadFanout::ForReads().Run(folded.size(), [&](size_t i) {
    const uint32_t cell = folded[i];
    std::vector<VectorId> out;
    std::vector<Row> in;
    for (const Removal& r : removals) {
      if (r.cell == cell) out.push_back(r.id);
    }
    for (const Row& r : additions) {
      if (r.cell == cell) in.push_back(r);
    }
    planned[i] = PlanFold(store, t, cell, out, in, counts.at(cell).rows, sees, &folds[i]);
  });
  for (const absl::Status& s : planned) RETURN_IF_ERROR(s);
  for (size_t i = 0; i < folded.size(); ++i) {
    CellCount& c = change.counts[folded[i]];
    c.changes = 0;
    ++change.folded;
    if (c.rows == 0) change.counts.erase(folded[i]);
    for (const WriteBatch::Entry& e : folds[i].entries()) {
      if (e.op == WriteBatch::Op::kPut) {
        batch->Put(e.cf, e.key, e.value);
      } else {
        batch->Delete(e.cf, e.key);
      }
    }
  }
  // The other cells get a key per change: removals first, so that a row filed anew in its cell
  // (a new vector, the same cell) is put back.
  for (const Removal& r : removals) {
    if (!fold.contains(r.cell)) batch->Put(Cf::kTenants, Key(coll_, t, r.cell, r.id), "");
  }
  for (const Row& r : additions) {
    if (fold.contains(r.cell)) continue;
    batch->Put(Cf::kTenants, Key(coll_, t, r.cell, r.id),
               absl::string_view(reinterpret_cast<const char*>(r.bytes), row_bytes_));
  }
  if (change.counts.empty()) {
    batch->Delete(Cf::kTenants, LayoutKey(coll_, t));
  } else if (!removals.empty() || !additions.empty() || change.folded > 0) {
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
    // [u32 marker] then [u32 cell][u32 rows][u32 changes] per cell; or, as first written,
    // [u32 cell][u32 rows] per cell with every row a change key.
    const bool with_changes = value.size() >= 4 && ReadU32(value, 0) == kCountsWithChanges;
    const size_t first = with_changes ? 4 : 0, entry = with_changes ? 12 : 8;
    if ((value.size() - first) % entry != 0) {
      f.ok = false;
      return absl::OkStatus();
    }
    for (size_t at = first; at < value.size(); at += entry) {
      const uint32_t cell = ReadU32(value, at);
      const uint32_t rows = ReadU32(value, at + 4);
      const uint32_t changes = with_changes ? ReadU32(value, at + 8) : rows;
      f.ok &= rows > 0 && cell < cells &&
              f.layout.counts.emplace(cell, CellCount{rows, changes}).second;
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
  for (const auto& [cell, c] : l.counts) l.rows += c.rows;
}

uint64_t CellExtents::MemoryBytes() const {
  uint64_t bytes = sizeof(*this) + layouts_.capacity() * (sizeof(Tenant) + sizeof(Layout));
  for (const auto& [t, l] : layouts_) {
    bytes += l.counts.capacity() * (sizeof(uint32_t) + sizeof(CellCount) + 1);
  }
  return bytes;
}

}  // namespace strata
