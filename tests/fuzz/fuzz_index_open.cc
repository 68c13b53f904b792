// An index directory made of fuzz bytes (MANIFEST, heads.graph, postings.tbl, postings.dat, framed
// as in fuzz_util.h): SpannIndex::Open must refuse it with a Status or open it, and a search on
// what opened must answer or fail cleanly.
#include <cstdint>
#include <vector>

#include "index/spann_index.h"
#include "tests/fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace strata;
  const std::vector<std::string> parts = fuzz::SplitFramed(data, size, 4);
  const char* names[] = {"MANIFEST", "heads.graph", "postings.tbl", "postings.dat"};
  for (int i = 0; i < 4; ++i) {
    fuzz::WriteScratch(names[i], reinterpret_cast<const uint8_t*>(parts[i].data()),
                       parts[i].size());
  }
  SpannOpenOptions options;
  options.io.engine = IoEngine::kPread;  // no io_uring ring per input
  auto index = SpannIndex::Open(fuzz::ScratchDir(), options);
  if (!index.ok()) return 0;
  const SpannIndex& idx = **index;
  std::vector<uint8_t> query(size_t{idx.dim()} * ElementSize(idx.element_type()), 1);
  std::vector<Neighbor> out;
  SearchParams params;
  params.max_postings = 8;
  (void)idx.Search(VectorView{idx.element_type(), query}, 1, params, &out);
  return 0;
}
