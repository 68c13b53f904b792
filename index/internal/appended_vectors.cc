#include "index/internal/appended_vectors.h"

#include <algorithm>
#include <utility>

#include "base/check.h"

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
  DCHECK(PostingsOf(id).empty());
  PutRow(id, row);
  for (uint32_t p : postings) AddEntry(p, id, version);
}

void AppendedVectors::AddEntry(uint32_t posting, VectorId id, uint8_t version,
                               uint32_t in_place_of) {
  entries_[posting].push_back({id, version});
  std::vector<uint32_t>& of = postings_of_[id];
  auto at = std::find(of.begin(), of.end(), in_place_of);
  of.insert(at, posting);  // (before the one it replaces; at the end when that is not listed)
}

void AppendedVectors::MakePrimary(VectorId id, uint32_t posting) {
  auto of = postings_of_.find(id);
  if (of == postings_of_.end()) return;
  std::vector<uint32_t>& ps = of->second;
  auto at = std::find(ps.begin(), ps.end(), posting);
  if (at != ps.end()) std::rotate(ps.begin(), at, at + 1);
}

void AppendedVectors::Drop(VectorId id) {
  auto of = postings_of_.find(id);
  if (of != postings_of_.end()) {
    for (uint32_t p : of->second) {
      auto it = entries_.find(p);
      if (it == entries_.end()) continue;
      std::vector<Entry>& v = it->second;
      v.erase(std::remove_if(v.begin(), v.end(), [&](const Entry& e) { return e.id == id; }),
              v.end());
      if (v.empty()) entries_.erase(it);
    }
    postings_of_.erase(of);
  }
  if (rows_.erase(id) != 0) holes_ += row_bytes_;
}

absl::Span<const uint32_t> AppendedVectors::PostingsOf(VectorId id) const {
  auto it = postings_of_.find(id);
  if (it == postings_of_.end()) return {};
  return it->second;
}

std::vector<VectorId> AppendedVectors::TakePosting(uint32_t posting) {
  std::vector<VectorId> live;
  auto it = entries_.find(posting);
  if (it == entries_.end()) return live;
  for (const Entry& e : it->second) {
    const IdState& s = (*ids_)[e.id];
    if ((s.flags & kLive) && s.version == e.version) live.push_back(e.id);
    auto of = postings_of_.find(e.id);
    if (of == postings_of_.end()) continue;
    std::vector<uint32_t>& ps = of->second;
    ps.erase(std::remove(ps.begin(), ps.end(), posting), ps.end());
    if (ps.empty()) postings_of_.erase(of);
  }
  entries_.erase(it);
  return live;
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
  // The memory goes back too (a FLAT collection's rows, once its first build holds them).
  // (Assigning {} would keep the capacity: it is an initializer list.)
  std::vector<uint8_t>().swap(arena_);
  holes_ = 0;
  decltype(rows_)().swap(rows_);
  decltype(entries_)().swap(entries_);
  decltype(postings_of_)().swap(postings_of_);
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
