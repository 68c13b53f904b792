// What a collection keeps in RAM per internal id (index/collection.h): its version byte, the
// version the built index holds, and two flags. Persisted in the metadata store's `versions`
// family as [version][live] (storage/FORMAT.md); kInBase and base_version come from the index
// generation's id file at open.
#ifndef STRATA_INDEX_INTERNAL_ID_STATE_H_
#define STRATA_INDEX_INTERNAL_ID_STATE_H_

#include <cstdint>

namespace strata::internal {

inline constexpr uint8_t kLive = 1;    // persisted flag
inline constexpr uint8_t kInBase = 2;  // in-memory only: the built index holds this id

struct IdState {
  uint8_t version = 0;
  uint8_t base_version = 0;  // version the built index holds (valid with kInBase)
  uint8_t flags = 0;
};

// The version a replaced (or reassigned) vector takes: the next one, never the one the built
// index holds (whose entries must stay skipped).
inline uint8_t NextVersion(const IdState& s) {
  auto v = static_cast<uint8_t>(s.version + 1);
  if ((s.flags & kInBase) && v == s.base_version) ++v;
  return v;
}

}  // namespace strata::internal

#endif  // STRATA_INDEX_INTERNAL_ID_STATE_H_
