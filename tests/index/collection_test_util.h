// Helpers of the collection and catalog tests: a generated SIFT-like set with its ground truth, a
// uint8 collection, rows upserted by position, and every query's hits.
#ifndef STRATA_TESTS_INDEX_COLLECTION_TEST_UTIL_H_
#define STRATA_TESTS_INDEX_COLLECTION_TEST_UTIL_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "index/brute_force.h"
#include "index/catalog.h"
#include "index/collection.h"
#include "tools/synthetic.h"

namespace strata::collection_testing {

struct Data {
  VectorSet base, queries;
  GroundTruth gt;
};

inline Data Make(uint64_t n, uint64_t nq) {
  SyntheticOptions o;
  o.seed = 3;
  auto g = SyntheticGenerator::Create(o);
  Data d{g->Generate(0, n), g->Generate(n, nq), {}};
  d.gt = *ExactKnn(d.base, d.queries, Metric::kL2, 10);
  return d;
}

inline std::shared_ptr<Collection> NewCollection(Catalog* cat, uint32_t dim, uint64_t threshold,
                                                 const std::string& name = "c") {
  CollectionConfig c;
  c.name = name;
  c.dim = dim;
  c.type = ElementType::kUint8;
  c.build_threshold = threshold;
  return *cat->Create(c);
}

inline void UpsertRows(Collection* c, const VectorSet& s, uint64_t first, uint64_t count,
                       uint64_t id_base = 0) {
  std::vector<PointInput> rows;
  for (uint64_t i = first; i < first + count; ++i) {
    rows.push_back({id_base + i, {s.row(i), s.row_bytes()}, {}});
  }
  std::vector<RowError> errors;
  uint64_t upserted = 0;
  ASSERT_TRUE(c->Upsert(rows, &errors, &upserted).ok());
  ASSERT_TRUE(errors.empty());
  ASSERT_EQ(upserted, count);
}

inline std::vector<std::vector<uint32_t>> SearchAll(const Collection& c, const VectorSet& q,
                                                    uint32_t k) {
  std::vector<std::vector<uint32_t>> out;
  for (uint64_t i = 0; i < q.n; ++i) {
    std::vector<Hit> hits;
    EXPECT_TRUE(c.Search(VectorView{q.type, {q.row(i), q.row_bytes()}}, k, {}, &hits).ok());
    std::vector<uint32_t> ids;
    for (const Hit& h : hits) ids.push_back(static_cast<uint32_t>(h.id));
    out.push_back(ids);
  }
  return out;
}

}  // namespace strata::collection_testing

#endif  // STRATA_TESTS_INDEX_COLLECTION_TEST_UTIL_H_
