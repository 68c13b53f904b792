// The vectors a collection took since its index was built (index/collection.h, "Writes"):
// each one's row in posting form, and per posting the (id, version) entries appended to it by the
// replica rule or by posting maintenance (a split moves a built vector's entry into a new posting:
// such a vector has a row and appended entries while the built index still serves its other
// replicas). SpannIndex::Search reads them through AppendedEntries, beside the posting file's
// entries; an entry whose id is no longer live at that version (replaced or deleted since) is
// skipped. Each vector's appended postings are kept beside it, so that dropping it finds them.
//
// The rows are not in anonymous memory: they lie in slots of a scratch file mapped shared
// (storage/mapped_arena.h), which the kernel keeps in its page cache or evicts like any file's
// pages. The file is a copy, never synced: the metadata store holds every vector, and the open
// fills the file again (Open, then PutRow). A dropped or replaced row's slot is reused by the next
// row. What stays in RAM per vector is the maps below: its slot, its postings, its entries.
//
// Rows are stored only into room made beforehand (Reserve), so that storing cannot fail once the
// metadata store has committed: the collection reserves before it commits a write.
//
// Thread-compatible: the collection's lock guards it, with the id states it reads (`ids`);
// AllocateRoom and Trim may run beside readers (see there).
#ifndef STRATA_INDEX_INTERNAL_APPENDED_VECTORS_H_
#define STRATA_INDEX_INTERNAL_APPENDED_VECTORS_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/types/span.h"
#include "index/internal/id_state.h"
#include "index/spann_index.h"
#include "index/types.h"
#include "storage/env.h"
#include "storage/mapped_arena.h"

namespace strata::internal {

class AppendedVectors final : public AppendedEntries {
 public:
  // `ids`: the collection's id states, read by ForEach; must outlive this.
  AppendedVectors(size_t row_bytes, const std::vector<IdState>* ids)
      : row_bytes_(row_bytes), ids_(ids) {}

  // Creates the rows' file at `path` (replacing a leftover) through `env`. Before any other call.
  [[nodiscard]] absl::Status Open(Env& env, const std::string& path);

  // Room for `rows` more rows than are stored now (slots free or mapped), made by allocating
  // disk space and mapping it: ResourceExhausted when the disk is full. May move every row.
  [[nodiscard]] absl::Status Reserve(uint64_t rows);
  // Whether `rows` more rows fit without Reserve.
  [[nodiscard]] bool HasRoom(uint64_t rows) const {
    return free_.size() + (arena_ == nullptr ? 0 : arena_->capacity() / row_bytes_) - used_ >= rows;
  }
  // Reserve's first half, the disk allocation, which leaves rows where they are: may run with
  // only the collection's writers excluded (searches read rows meanwhile). Reserve then maps it.
  [[nodiscard]] absl::Status AllocateRoom(uint64_t rows);

  // `id`'s row (row_bytes, posting form), or null when it has none.
  [[nodiscard]] const uint8_t* Row(VectorId id) const {
    auto it = rows_.find(id);
    return it == rows_.end() ? nullptr : SlotRow(it->second);
  }
  // Stores `id`'s row (replacing an earlier one) and appends (id, version) to `postings`. `id`
  // must have no appended entries (Drop them first). A new row needs room (Reserve).
  void Add(VectorId id, const uint8_t* row, absl::Span<const uint32_t> postings, uint8_t version);
  // Stores `id`'s row only (the entries come from AddEntry). A new row needs room (Reserve).
  void PutRow(VectorId id, const uint8_t* row);
  [[nodiscard]] bool HasRow(VectorId id) const { return rows_.contains(id); }
  // Appends (id, version) to `posting`; the row comes from Add or PutRow. `id`'s posting list
  // (PostingsOf) gets `posting` in the place of `in_place_of` when it lists that one (a move out
  // of a posting about to go), at its end otherwise.
  void AddEntry(uint32_t posting, VectorId id, uint8_t version, uint32_t in_place_of = UINT32_MAX);
  // Puts `posting` first in `id`'s posting list (a no-op when it is not listed).
  void MakePrimary(VectorId id, uint32_t posting);
  // Removes `id`'s row and all its appended entries.
  void Drop(VectorId id);
  // The postings `id` has appended entries in (empty when none). The first is the vector's
  // primary (posting_radii.h): the nearest head when it was placed (Add gets the replica rule's
  // order, nearest first), or the posting a split moved it to out of its primary; the open puts
  // the nearest first again. The others follow in no order that matters.
  [[nodiscard]] absl::Span<const uint32_t> PostingsOf(VectorId id) const;
  // AppendedEntries: appended entries in `posting`, live or not.
  [[nodiscard]] size_t EntryCount(uint32_t posting) const override {
    auto it = entries_.find(posting);
    return it == entries_.end() ? 0 : it->second.size();
  }
  // Calls visit(id, version) for every entry of `posting`, live or not.
  template <typename F>
  void ForEachEntry(uint32_t posting, F&& visit) const {
    auto it = entries_.find(posting);
    if (it == entries_.end()) return;
    for (const Entry& e : it->second) visit(e.id, e.version);
  }
  // Removes `posting`'s entries (rows stay, and the vectors' other entries) and returns the ids
  // that were live in it.
  std::vector<VectorId> TakePosting(uint32_t posting);
  // Drops everything and frees its memory, keeping room for `keep_rows` rows (the mapping
  // shrinks to that; the file once Trim runs).
  void Clear(uint64_t keep_rows = 0);
  // Gives back the disk space Clear no longer maps. Touches no row: may run with only the
  // collection's writers excluded, like AllocateRoom.
  void Trim() {
    if (arena_ != nullptr) arena_->Trim();
  }

  [[nodiscard]] size_t size() const { return rows_.size(); }
  // RAM held: per vector and per entry their maps' share (estimated: slots at the tables' load,
  // a heap block per vector's posting list), and the free slots' list. Not the rows (file_bytes).
  [[nodiscard]] uint64_t MemoryBytes() const {
    uint64_t entries = 0;
    for (const auto& [p, list] : entries_) entries += list.capacity();
    return rows_.size() * 20 + postings_of_.size() * (40 + 16) +
           entries * (sizeof(Entry) + sizeof(uint32_t)) + entries_.size() * (40 + 16) +
           free_.capacity() * sizeof(uint32_t);
  }
  // Bytes of the rows' file on disk (a slot per row stored, or free for the next).
  [[nodiscard]] uint64_t file_bytes() const { return arena_ == nullptr ? 0 : arena_->file_bytes(); }
  // Calls visit(id, row) for every stored row, in no particular order.
  void ForEachRow(absl::FunctionRef<void(VectorId, const uint8_t*)> visit) const;
  // AppendedEntries: the live entries appended to `posting`, with their rows.
  void ForEach(uint32_t posting,
               absl::FunctionRef<void(VectorId, const uint8_t*)> visit) const override;

 private:
  static constexpr uint32_t kNoSlot = UINT32_MAX;
  struct Entry {
    VectorId id;
    uint32_t slot;  // its row's (ForEach reads it without a lookup); kNoSlot while it has none
    uint8_t version;
  };

  const uint8_t* SlotRow(uint32_t slot) const {
    return arena_->data() + uint64_t{slot} * row_bytes_;
  }

  const size_t row_bytes_;
  const std::vector<IdState>* const ids_;
  std::unique_ptr<MappedArena> arena_;            // null until Open
  uint32_t used_ = 0;                             // slots [0, used_) hold a row or are free
  std::vector<uint32_t> free_;                    // slots below used_ no row holds
  absl::flat_hash_map<VectorId, uint32_t> rows_;  // id -> its row's slot
  absl::flat_hash_map<uint32_t, std::vector<Entry>> entries_;  // by posting
  absl::flat_hash_map<VectorId, std::vector<uint32_t>> postings_of_;
};

}  // namespace strata::internal

#endif  // STRATA_INDEX_INTERNAL_APPENDED_VECTORS_H_
