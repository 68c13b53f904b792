#include "index/internal/appended_vectors.h"

#include <algorithm>
#include <cstring>
#include <utility>

#include "base/check.h"
#include "storage/status_macros.h"

namespace strata::internal {

absl::Status AppendedVectors::Open(Env& env, const std::string& path) {
  DCHECK(arena_ == nullptr);
  ASSIGN_OR_RETURN(arena_, MappedArena::Create(env, path));
  return absl::OkStatus();
}

absl::Status AppendedVectors::AllocateRoom(uint64_t rows) {
  if (HasRoom(rows)) return absl::OkStatus();
  if (arena_ == nullptr) return absl::FailedPreconditionError("the rows' file is not open");
  const uint64_t slots = uint64_t{used_} + rows - free_.size();
  if (slots > UINT32_MAX) {
    return absl::ResourceExhaustedError("more than 2^32 vectors written since the last build");
  }
  return arena_->Allocate(slots * row_bytes_);
}

absl::Status AppendedVectors::Reserve(uint64_t rows) {
  RETURN_IF_ERROR(AllocateRoom(rows));
  return arena_ == nullptr ? absl::OkStatus() : arena_->Map();
}

void AppendedVectors::PutRow(VectorId id, const uint8_t* row) {
  const auto inserted = rows_.insert({id, 0});
  const auto it = inserted.first;  // (not a structured binding: the lambda below captures it)
  if (inserted.second) {
    const auto note_slot = [&](uint32_t slot) {
      it->second = slot;
      // Entries that came first (the open adds a moved built vector's entries, then its row).
      auto of = postings_of_.find(id);
      if (of == postings_of_.end()) return;
      for (uint32_t p : of->second) {
        auto list = entries_.find(p);
        if (list == entries_.end()) continue;
        for (Entry& e : list->second) {
          if (e.id == id) e.slot = slot;
        }
      }
    };
    // Checked in every build: a row stored without room would land past the mapping.
    if (!HasRoom(1)) internal::DcheckFailed("HasRoom(1) (Reserve first)", __FILE__, __LINE__);
    if (!free_.empty()) {
      note_slot(free_.back());
      free_.pop_back();
    } else {
      note_slot(used_++);
    }
  }
  // (memmove: a vector dropped and added again may be given its own row, from its own slot.)
  std::memmove(arena_->data() + uint64_t{it->second} * row_bytes_, row, row_bytes_);
}

void AppendedVectors::Add(VectorId id, const uint8_t* row, absl::Span<const uint32_t> postings,
                          uint8_t version) {
  DCHECK(PostingsOf(id).empty());
  PutRow(id, row);
  for (uint32_t p : postings) AddEntry(p, id, version);
}

void AppendedVectors::AddEntry(uint32_t posting, VectorId id, uint8_t version,
                               uint32_t in_place_of) {
  auto row = rows_.find(id);
  entries_[posting].push_back({id, row == rows_.end() ? kNoSlot : row->second, version});
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
  auto row = rows_.find(id);
  if (row != rows_.end()) {
    free_.push_back(row->second);
    rows_.erase(row);
  }
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

void AppendedVectors::Clear(uint64_t keep_rows) {
  // The memory goes back too (a FLAT collection's rows, once its first build holds them).
  used_ = 0;
  decltype(free_)().swap(free_);
  decltype(rows_)().swap(rows_);
  decltype(entries_)().swap(entries_);
  decltype(postings_of_)().swap(postings_of_);
  if (arena_ != nullptr) arena_->ShrinkTo(keep_rows * row_bytes_);  // (Trim gives the disk back)
  DCHECK(HasRoom(keep_rows));
}

void AppendedVectors::ForEachRow(absl::FunctionRef<void(VectorId, const uint8_t*)> visit) const {
  for (const auto& [id, off] : rows_) visit(id, SlotRow(off));
}

void AppendedVectors::ForEach(uint32_t posting,
                              absl::FunctionRef<void(VectorId, const uint8_t*)> visit) const {
  auto it = entries_.find(posting);
  if (it == entries_.end()) return;
  const std::vector<Entry>& entries = it->second;
  // Each entry's id state and row lie anywhere in memory: the ones a few entries ahead are asked
  // for while this one is scored.
  constexpr size_t kAhead = 4;
  const auto prefetch = [&](size_t i) {
    if (i >= entries.size()) return;
    __builtin_prefetch(&(*ids_)[entries[i].id]);
    if (entries[i].slot != kNoSlot) __builtin_prefetch(SlotRow(entries[i].slot));
  };
  for (size_t i = 0; i < kAhead; ++i) prefetch(i);
  for (size_t i = 0; i < entries.size(); ++i) {
    prefetch(i + kAhead);
    const Entry& e = entries[i];
    const IdState& s = (*ids_)[e.id];
    if (!(s.flags & kLive) || s.version != e.version) continue;  // a stale replica
    if (e.slot == kNoSlot) continue;
    DCHECK(rows_.at(e.id) == e.slot);
    visit(e.id, SlotRow(e.slot));
  }
}

}  // namespace strata::internal
