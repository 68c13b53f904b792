// What a SPANN index directory holds and how its posting entries are laid out: shared by the
// build that writes them (spann_build.cc) and the open that reads them (spann_index.cc). Private
// to index/.
#ifndef STRATA_INDEX_INTERNAL_SPANN_LAYOUT_H_
#define STRATA_INDEX_INTERNAL_SPANN_LAYOUT_H_

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <string>

#include "index/types.h"
#include "storage/vector_types.h"

namespace strata::internal {

// The files beside the MANIFEST (internal/manifest.h).
inline constexpr char kHeadsFile[] = "heads.graph";
inline constexpr char kPostingData[] = "postings.dat";
inline constexpr char kPostingTable[] = "postings.tbl";

inline std::string IndexFilePath(const std::string& dir, const char* name) {
  return (std::filesystem::path(dir) / name).string();
}

// Pages per posting before a build drops its farthest replicas, when the options leave it 0.
// Float vectors get the same number of entries per posting in either encoding (~125 at d=96).
inline uint32_t DefaultPageLimit(ElementType t, PostingEncoding e) {
  if (e == PostingEncoding::kFloat16) return 6;
  return t == ElementType::kFloat32 ? 12 : 3;
}

// The posting file's tag: the entries' element type (ElementType's values, 4 for float16).
inline constexpr uint32_t kFloat16Tag = 4;
inline uint32_t PostingTag(ElementType t, PostingEncoding e) {
  return e == PostingEncoding::kFloat16 ? kFloat16Tag : static_cast<uint32_t>(t);
}

// Bytes of an entry's vector (after its 4-byte id).
inline size_t EntryVectorBytes(ElementType t, PostingEncoding e, uint32_t dim) {
  return size_t{dim} * (e == PostingEncoding::kFloat16 ? 2 : ElementSize(t));
}

}  // namespace strata::internal

#endif  // STRATA_INDEX_INTERNAL_SPANN_LAYOUT_H_
