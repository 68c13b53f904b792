// The vectors a collection took since its index was built, in RAM (index/collection.h, "Writes"):
// each one's row in posting form, and per posting the (id, version) entries appended to it by the
// replica rule. SpannIndex::Search reads them through AppendedEntries, beside the posting file's
// entries; an entry whose id is no longer live at that version (replaced or deleted since) is
// skipped, so replacing a vector never rewrites other postings' lists.
//
// Rows live in one arena; a replaced or dropped row leaves a hole, reclaimed by MaybeCompact()
// once holes pass both `compact_bytes` (64 MiB by default) and half the arena.
//
// Thread-compatible: the collection's lock guards it, with the id states it reads (`ids`).
#ifndef STRATA_INDEX_INTERNAL_APPENDED_VECTORS_H_
#define STRATA_INDEX_INTERNAL_APPENDED_VECTORS_H_

#include <cstddef>
#include <cstdint>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/functional/function_ref.h"
#include "absl/types/span.h"
#include "index/internal/id_state.h"
#include "index/spann_index.h"
#include "index/types.h"

namespace strata::internal {

class AppendedVectors final : public AppendedEntries {
 public:
  // `ids`: the collection's id states, read by ForEach; must outlive this.
  AppendedVectors(size_t row_bytes, const std::vector<IdState>* ids,
                  uint64_t compact_bytes = uint64_t{64} << 20)
      : row_bytes_(row_bytes), ids_(ids), compact_bytes_(compact_bytes) {}

  // `id`'s row (row_bytes, posting form), or null when it has none.
  [[nodiscard]] const uint8_t* Row(VectorId id) const {
    auto it = rows_.find(id);
    return it == rows_.end() ? nullptr : arena_.data() + it->second;
  }
  // Stores `id`'s row (replacing an earlier one) and appends (id, version) to `postings`.
  void Add(VectorId id, const uint8_t* row, absl::Span<const uint32_t> postings, uint8_t version);
  // Stores `id`'s row only (the entries come from AddEntry: a collection's open).
  void PutRow(VectorId id, const uint8_t* row);
  void AddEntry(uint32_t posting, VectorId id, uint8_t version) {
    entries_[posting].push_back({id, version});
  }
  // Removes `id`'s row and its entries in `postings`.
  void Drop(VectorId id, absl::Span<const uint32_t> postings);
  // Rewrites the arena without its holes when they are worth it (see above).
  void MaybeCompact();
  void Clear();

  [[nodiscard]] size_t size() const { return rows_.size(); }
  [[nodiscard]] uint64_t MemoryBytes() const { return arena_.size() + rows_.size() * 16; }
  [[nodiscard]] uint64_t arena_bytes() const { return arena_.size(); }
  // Calls visit(id, row) for every stored row, in no particular order.
  void ForEachRow(absl::FunctionRef<void(VectorId, const uint8_t*)> visit) const;
  // AppendedEntries: the live entries appended to `posting`, with their rows.
  void ForEach(uint32_t posting,
               absl::FunctionRef<void(VectorId, const uint8_t*)> visit) const override;

 private:
  struct Entry {
    VectorId id;
    uint8_t version;
  };

  const size_t row_bytes_;
  const std::vector<IdState>* const ids_;
  const uint64_t compact_bytes_;
  std::vector<uint8_t> arena_;
  uint64_t holes_ = 0;                            // bytes of the arena no row uses
  absl::flat_hash_map<VectorId, uint64_t> rows_;  // id -> its row's offset in the arena
  absl::flat_hash_map<uint32_t, std::vector<Entry>> entries_;  // by posting
};

}  // namespace strata::internal

#endif  // STRATA_INDEX_INTERNAL_APPENDED_VECTORS_H_
