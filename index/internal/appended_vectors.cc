#include "index/internal/appended_vectors.h"

#include <algorithm>
#include <utility>

namespace strata::internal {

void AppendedVectors::PutRow(VectorId id, const uint8_t* row) {
  const uint64_t off = arena_.size();
  arena_.insert(arena_.end(), row, row + row_bytes_);
  auto [it, inserted] = rows_.insert({id, off});
  if (!inserted) {
    it->second = off;
    holes_ += row_bytes_;
  }
}

void AppendedVectors::Add(VectorId id, const uint8_t* row, absl::Span<const uint32_t> postings,
                          uint8_t version) {
  PutRow(id, row);
  for (uint32_t p : postings) entries_[p].push_back({id, version});
}

void AppendedVectors::Drop(VectorId id, absl::Span<const uint32_t> postings) {
  for (uint32_t p : postings) {
    auto it = entries_.find(p);
    if (it == entries_.end()) continue;
    std::vector<Entry>& v = it->second;
    v.erase(std::remove_if(v.begin(), v.end(), [&](const Entry& e) { return e.id == id; }),
            v.end());
    if (v.empty()) entries_.erase(it);
  }
  if (rows_.erase(id) != 0) holes_ += row_bytes_;
}

void AppendedVectors::MaybeCompact() {
  if (holes_ < compact_bytes_ || holes_ * 2 < arena_.size()) return;
  std::vector<uint8_t> fresh;
  fresh.reserve(rows_.size() * row_bytes_);
  for (auto& [id, off] : rows_) {
    const uint64_t n = fresh.size();
    fresh.insert(fresh.end(), arena_.begin() + static_cast<ptrdiff_t>(off),
                 arena_.begin() + static_cast<ptrdiff_t>(off + row_bytes_));
    off = n;
  }
  arena_ = std::move(fresh);
  holes_ = 0;
}

void AppendedVectors::Clear() {
  arena_.clear();
  holes_ = 0;
  rows_.clear();
  entries_.clear();
}

void AppendedVectors::ForEachRow(absl::FunctionRef<void(VectorId, const uint8_t*)> visit) const {
  for (const auto& [id, off] : rows_) visit(id, arena_.data() + off);
}

void AppendedVectors::ForEach(uint32_t posting,
                              absl::FunctionRef<void(VectorId, const uint8_t*)> visit) const {
  auto it = entries_.find(posting);
  if (it == entries_.end()) return;
  for (const Entry& e : it->second) {
    const IdState& s = (*ids_)[e.id];
    if (!(s.flags & kLive) || s.version != e.version) continue;  // a stale replica
    auto row = rows_.find(e.id);
    if (row == rows_.end()) continue;
    visit(e.id, arena_.data() + row->second);
  }
}

}  // namespace strata::internal
