// Posting maintenance (index/collection.h, "Posting maintenance"; SPFresh's LIRE): postings that
// writes make too long are split, emptied ones merged away, dead-heavy ones rewritten, with every
// live vector still reachable, recall kept under a drifting distribution, and the new layout
// surviving a reopen.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <map>
#include <mutex>
#include <random>
#include <thread>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "gtest/gtest.h"
#include "index/brute_force.h"
#include "index/catalog.h"
#include "index/collection.h"
#include "index/internal/posting_split.h"
#include "storage/metadata_store.h"
#include "tests/test_util.h"
#include "tools/synthetic.h"

namespace strata {
namespace {

using testing::TempDir;

constexpr uint32_t kLimit = 40;  // live entries past which a posting splits

VectorSet Gen(uint64_t seed, uint64_t first, uint64_t n) {
  SyntheticOptions o;
  o.dim = 32;
  o.clusters = 40;
  o.global_rank = 16;
  o.local_rank = 8;
  o.seed = seed;
  return SyntheticGenerator::Create(o)->Generate(first, n);
}

CollectionOptions Options() {
  CollectionOptions o;
  o.background_maintenance = false;  // RunMaintenance, when the test says
  o.posting_limit = kLimit;
  o.build_threads = 2;
  return o;
}

std::shared_ptr<Collection> Create(Catalog* cat, const VectorSet& like) {
  CollectionConfig c;
  c.name = "c";
  c.dim = like.dim;
  c.type = like.type;
  c.build_threshold = 1000000;
  return *cat->Create(c);
}

void Upsert(Collection* c, const VectorSet& s, uint64_t id_base) {
  std::vector<PointInput> rows;
  for (uint64_t i = 0; i < s.n; ++i) rows.push_back({id_base + i, {s.row(i), s.row_bytes()}, {}});
  std::vector<RowError> errors;
  uint64_t upserted = 0;
  ASSERT_TRUE(c->Upsert(rows, &errors, &upserted).ok());
  ASSERT_EQ(upserted, s.n);
}

// Every live vector, searched for itself over every posting, comes back first at distance 0: no
// vector is stranded in a retired posting or left out of the ones it moved to. And with a budget
// of 64 postings nearly all do: LIRE keeps vectors near their nearest heads, approximately (a
// vector whose posting is not among the neighbours of any split near it stays where it was).
void ExpectAllReachable(const Collection& c, const std::map<uint64_t, const uint8_t*>& live,
                        const VectorSet& like) {
  SearchParams every;
  every.max_postings = 1000000;
  every.prune_ratio = 0;
  SearchParams wide;
  wide.max_postings = 64;
  size_t lost = 0, far = 0;
  for (const auto& [id, row] : live) {
    std::vector<Hit> hits;
    ASSERT_TRUE(c.Search(VectorView{like.type, {row, like.row_bytes()}}, 1, wide, &hits).ok());
    if (!hits.empty() && hits[0].distance == 0) continue;
    ++far;
    ASSERT_TRUE(c.Search(VectorView{like.type, {row, like.row_bytes()}}, 1, every, &hits).ok());
    if (hits.empty() || hits[0].distance != 0) ++lost;
  }
  EXPECT_EQ(lost, 0u) << "of " << live.size();
  EXPECT_LE(far, live.size() / 500) << "of " << live.size();
}

// Search parameters whose beam over the heads visits every head: the exact nearest heads.
SearchParams EveryHead() {
  SearchParams exact;
  exact.ef_search = 1000000;
  return exact;
}

// recall@10 of `queries` against brute force over `live`, reading 8 postings a query (a budget
// small enough for the postings' shape to show).
double Recall(const Collection& c, const std::map<uint64_t, const uint8_t*>& live,
              const VectorSet& queries) {
  VectorSet all;
  all.type = queries.type;
  all.dim = queries.dim;
  std::vector<uint64_t> ids;
  for (const auto& [id, row] : live) {
    all.data.insert(all.data.end(), row, row + queries.row_bytes());
    ids.push_back(id);
    ++all.n;
  }
  GroundTruth gt = *ExactKnn(all, queries, Metric::kL2, 10);
  SearchParams budget;
  budget.max_postings = 8;
  size_t found = 0;
  for (uint64_t q = 0; q < queries.n; ++q) {
    std::vector<Hit> hits;
    EXPECT_TRUE(
        c.Search(VectorView{queries.type, {queries.row(q), queries.row_bytes()}}, 10, budget, &hits)
            .ok());
    for (const Hit& h : hits) {
      for (uint32_t j = 0; j < 10; ++j) found += ids[gt.ids[q * gt.k + j]] == h.id;
    }
  }
  return static_cast<double>(found) / static_cast<double>(queries.n * 10);
}

uint32_t Longest(const Collection& c) {
  std::vector<uint32_t> lengths = c.PostingLengths();
  return lengths.empty() ? 0 : *std::max_element(lengths.begin(), lengths.end());
}

// A split of a posting with one far outlier is not 1 against the rest: the small half is filled
// up to min_side with the rows nearest the boundary, so a split never leaves a posting small
// enough to be merged straight back (a split-merge cycle).
TEST(PostingSplit, AnUnevenSplitIsEvenedOut) {
  constexpr uint32_t kDim = 4;
  std::vector<uint8_t> rows;
  for (int i = 0; i < 99; ++i) {
    for (uint32_t j = 0; j < kDim; ++j) rows.push_back(static_cast<uint8_t>(10 + (i + j) % 5));
  }
  for (uint32_t j = 0; j < kDim; ++j) rows.push_back(250);  // the outlier, row 99
  internal::TwoWaySplit halves;
  ASSERT_TRUE(internal::SplitInTwo(ElementType::kUint8, kDim, rows.data(), 100, /*seed=*/99,
                                   /*min_side=*/13, &halves));
  size_t count[2] = {0, 0};
  for (uint8_t s : halves.side) ++count[s];
  EXPECT_GE(std::min(count[0], count[1]), 13u);
  EXPECT_EQ(count[0] + count[1], 100u);
  EXPECT_EQ(halves.side[halves.head[0]], 0);
  EXPECT_EQ(halves.side[halves.head[1]], 1);
  // Rows all alike split by position.
  std::vector<uint8_t> same(50 * kDim, 7);
  ASSERT_TRUE(internal::SplitInTwo(ElementType::kUint8, kDim, same.data(), 50, 0, 7, &halves));
  EXPECT_EQ(std::count(halves.side.begin(), halves.side.end(), 1), 25);
}

TEST(PostingMaintenance, SplitsKeepRecallUnderDriftAndSurviveAReopen) {
  TempDir tmp;
  const VectorSet base = Gen(1, 0, 3000), drift = Gen(2, 0, 3000), queries = Gen(2, 3000, 100);
  std::map<uint64_t, const uint8_t*> live;
  for (uint64_t i = 0; i < base.n; ++i) live[i] = base.row(i);
  for (uint64_t i = 0; i < drift.n; ++i) live[10000 + i] = drift.row(i);
  // Searches before and after a reopen, with the default beam over the heads and with one that
  // visits every head (the exact nearest heads).
  std::vector<std::vector<Hit>> before_reopen, before_reopen_exact;
  CollectionStats after;
  {
    auto cat = *Catalog::Open(tmp.path(), Options());
    auto c = Create(cat.get(), base);
    Upsert(c.get(), base, 0);
    ASSERT_TRUE(c->BuildIndex().ok());
    const uint32_t built_longest = Longest(*c);
    Upsert(c.get(), drift, 10000);
    const double recall_appended = Recall(*c, live, queries);
    const uint32_t appended_longest = Longest(*c);
    ASSERT_TRUE(c->RunMaintenance().ok());
    after = c->Stats();
    EXPECT_GT(after.splits, 0u);
    EXPECT_GT(after.added_heads, 0u);
    EXPECT_GT(after.retired_heads, 0u);
    EXPECT_EQ(after.count, 6000u);
    const uint32_t longest = Longest(*c);
    EXPECT_GT(appended_longest, kLimit * 3 / 2);
    EXPECT_LE(longest, std::max(built_longest, kLimit * 3 / 2));
    const double recall_maintained = Recall(*c, live, queries);
    EXPECT_GE(recall_maintained, recall_appended);
    EXPECT_GE(recall_maintained, 0.9);
    std::printf(
        "longest posting: built %u, appended %u, maintained %u; recall@10 of the drifted "
        "queries: appended %.3f, maintained %.3f; %lu splits, %lu rewrites, %lu reassigned\n",
        built_longest, appended_longest, longest, recall_appended, recall_maintained,
        static_cast<unsigned long>(after.splits), static_cast<unsigned long>(after.rewrites),
        static_cast<unsigned long>(after.reassigned));
    ExpectAllReachable(*c, live, base);
    for (uint64_t q = 0; q < queries.n; ++q) {
      const VectorView query{queries.type, {queries.row(q), queries.row_bytes()}};
      std::vector<Hit> hits;
      ASSERT_TRUE(c->Search(query, 10, {}, &hits).ok());
      before_reopen.push_back(hits);
      ASSERT_TRUE(c->Search(query, 10, EveryHead(), &hits).ok());
      before_reopen_exact.push_back(hits);
    }
  }
  auto cat = *Catalog::Open(tmp.path(), Options());
  auto c = *cat->Find("c");
  const CollectionStats reopened = c->Stats();
  EXPECT_EQ(reopened.added_heads, after.added_heads);
  EXPECT_EQ(reopened.retired_heads, after.retired_heads);
  // The reopened collection serves the same heads and postings: with the exact nearest heads, it
  // answers exactly as before. Its walk over the heads may differ on a rare query: the reopened
  // overlay joins the added heads in number order, without the retired ones the live overlay kept
  // as waypoints (head_overlay.h), so a beam can reach a head the other missed, or the reverse.
  size_t walks_differ = 0;
  for (uint64_t q = 0; q < queries.n; ++q) {
    const VectorView query{queries.type, {queries.row(q), queries.row_bytes()}};
    std::vector<Hit> hits;
    ASSERT_TRUE(c->Search(query, 10, EveryHead(), &hits).ok());
    ASSERT_EQ(hits.size(), before_reopen_exact[q].size());
    for (size_t j = 0; j < hits.size(); ++j) {
      EXPECT_EQ(hits[j].id, before_reopen_exact[q][j].id);
      EXPECT_EQ(hits[j].distance, before_reopen_exact[q][j].distance);
    }
    ASSERT_TRUE(c->Search(query, 10, {}, &hits).ok());
    bool same = hits.size() == before_reopen[q].size();
    for (size_t j = 0; same && j < hits.size(); ++j) {
      same =
          hits[j].id == before_reopen[q][j].id && hits[j].distance == before_reopen[q][j].distance;
    }
    walks_differ += !same;
  }
  EXPECT_LE(walks_differ, queries.n / 20);
  ExpectAllReachable(*c, live, base);
}

// A head record numbered past any head a collection hands out (2^31 and up: damage, or a crafted
// store) is refused as malformed, rather than sizing the heads' tables by it (a slot per number:
// 8 GiB). What posting maintenance stores is derived from the vectors: the collection opens with
// its index damaged, keeps its vectors, and a rebuild repairs it (deleting the record).
TEST(PostingMaintenance, AMalformedHeadRecordDamagesOnlyTheIndex) {
  TempDir tmp;
  const VectorSet base = Gen(1, 0, 3000), drift = Gen(2, 0, 3000);
  {
    auto cat = *Catalog::Open(tmp.path(), Options());
    auto c = Create(cat.get(), base);
    Upsert(c.get(), base, 0);
    ASSERT_TRUE(c->BuildIndex().ok());
    Upsert(c.get(), drift, 10000);
    ASSERT_TRUE(c->RunMaintenance().ok());
    ASSERT_GT(c->Stats().added_heads, 0u);
    std::string record_key;
    uint32_t row_bytes = 0;
    ASSERT_TRUE(cat->store()
                    ->Scan(Cf::kHeads, "",
                           [&](absl::string_view key, absl::string_view value) {
                             if (!value.empty()) {
                               record_key = std::string(key);
                               row_bytes = static_cast<uint32_t>(value.size());
                             }
                             return absl::OkStatus();
                           })
                    .ok());
    ASSERT_EQ(record_key.size(), 8u);
    // An added head numbered 2^31, with a row of the right size.
    std::string far_key = record_key.substr(0, 4);
    AppendU32(&far_key, 1u << 31);
    WriteBatch batch;
    batch.Put(Cf::kHeads, far_key, std::string(row_bytes, '\1'));
    ASSERT_TRUE(cat->store()->Write(&batch, /*sync=*/true).ok());
  }
  std::map<uint64_t, const uint8_t*> live;
  for (uint64_t i = 0; i < base.n; ++i) live[i] = base.row(i);
  for (uint64_t i = 0; i < drift.n; ++i) live[10000 + i] = drift.row(i);
  {
    auto cat = Catalog::Open(tmp.path(), Options());
    ASSERT_TRUE(cat.ok()) << cat.status();
    auto c = (*cat)->Find("c");
    ASSERT_TRUE(c.ok()) << c.status();
    const CollectionStats s = (*c)->Stats();
    EXPECT_EQ(s.state, CollectionStats::State::kDamaged);
    EXPECT_NE(s.damage.find("head record 2147483648"), std::string::npos) << s.damage;
    std::vector<Hit> hits;
    EXPECT_TRUE(absl::IsFailedPrecondition(
        (*c)->Search(VectorView{base.type, {base.row(0), base.row_bytes()}}, 10, {}, &hits)));
    EXPECT_EQ((*c)->Count(), live.size());
    ASSERT_TRUE((*c)->BuildIndex().ok());
    EXPECT_EQ((*c)->Stats().state, CollectionStats::State::kIndexed);
    ExpectAllReachable(**c, live, base);
  }
  auto cat = Catalog::Open(tmp.path(), Options());
  ASSERT_TRUE(cat.ok()) << cat.status();
  auto c = (*cat)->Find("c");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ((*c)->Stats().state, CollectionStats::State::kIndexed);
  EXPECT_EQ((*c)->Count(), live.size());
}

// A store written before the postings family held one record per vector held one key per entry
// (coll posting int -> [version]): an open reads those, serves the same answers, and rewrites
// them as records (a stale entry - at a version the vector no longer has - dropped).
TEST(PostingMaintenance, PostingEntriesStoredOneKeyEachAreRewrittenAsRecords) {
  TempDir tmp;
  const VectorSet base = Gen(1, 0, 2000), drift = Gen(2, 0, 2000), queries = Gen(2, 3000, 50);
  std::vector<std::vector<Hit>> before;
  const auto search_all = [&](const Collection& c, std::vector<std::vector<Hit>>* out) {
    for (uint64_t q = 0; q < queries.n; ++q) {
      std::vector<Hit> hits;
      ASSERT_TRUE(
          c.Search(VectorView{queries.type, {queries.row(q), queries.row_bytes()}}, 10, {}, &hits)
              .ok());
      out->push_back(hits);
    }
  };
  {
    auto cat = *Catalog::Open(tmp.path(), Options());
    auto c = Create(cat.get(), base);
    Upsert(c.get(), base, 0);
    ASSERT_TRUE(c->BuildIndex().ok());
    Upsert(c.get(), drift, 10000);
    ASSERT_TRUE(c->RunMaintenance().ok());
    ASSERT_GT(c->Stats().splits, 0u);
    search_all(*c, &before);
  }
  // The records, taken apart into one key per entry as the old stores held them, and beside each
  // a stale entry (a version ago) in a posting no head ever numbers.
  constexpr uint32_t kNowhere = 0xFFFFFFF0u;
  size_t records = 0, entries = 0;
  {
    auto store = MetadataStore::Open(tmp.path() + "/meta");
    ASSERT_TRUE(store.ok()) << store.status();
    WriteBatch batch;
    ASSERT_TRUE((*store)
                    ->Scan(Cf::kPostings, "",
                           [&](absl::string_view key, absl::string_view value) {
                             EXPECT_EQ(key.size(), 8u);
                             EXPECT_EQ((value.size() - 1) % 4, 0u);
                             ++records;
                             batch.Delete(Cf::kPostings, key);
                             const auto entry = [&](uint32_t posting, char version) {
                               std::string k(key.substr(0, 4));
                               AppendU32(&k, posting);
                               AppendU32(&k, ReadU32(key, 4));
                               batch.Put(Cf::kPostings, k, std::string(1, version));
                             };
                             for (size_t at = 1; at < value.size(); at += 4, ++entries) {
                               entry(ReadU32(value, at), value[0]);
                             }
                             entry(kNowhere, static_cast<char>(value[0] - 1));
                             return absl::OkStatus();
                           })
                    .ok());
    ASSERT_GT(records, 100u);
    ASSERT_GT(entries, records);
    ASSERT_TRUE((*store)->Write(&batch, /*sync=*/true).ok());
  }
  {
    auto cat = *Catalog::Open(tmp.path(), Options());  // (rewrites them)
    auto c = *cat->Find("c");
    std::vector<std::vector<Hit>> after;
    search_all(*c, &after);
    ASSERT_EQ(after.size(), before.size());
    for (size_t q = 0; q < before.size(); ++q) {
      ASSERT_EQ(after[q].size(), before[q].size());
      for (size_t j = 0; j < after[q].size(); ++j) EXPECT_EQ(after[q][j].id, before[q][j].id);
    }
    EXPECT_EQ(c->Count(), 4000u);
    // More writes and splits where the moved vectors lie: a moved vector's record is rewritten
    // from memory, which must hold no stale entry either (it once did: then moved vectors'
    // records listed the stale postings again).
    Upsert(c.get(), Gen(2, 5000, 3000), 20000);
    ASSERT_TRUE(c->RunMaintenance().ok());
    ASSERT_GT(c->Stats().splits, 0u);
  }
  auto store = MetadataStore::Open(tmp.path() + "/meta");
  ASSERT_TRUE(store.ok()) << store.status();
  size_t records_now = 0, listing_nowhere = 0;
  ASSERT_TRUE((*store)
                  ->Scan(Cf::kPostings, "",
                         [&](absl::string_view key, absl::string_view value) {
                           EXPECT_EQ(key.size(), 8u);
                           ++records_now;
                           for (size_t at = 1; at < value.size(); at += 4) {
                             listing_nowhere += ReadU32(value, at) == kNowhere;
                           }
                           return absl::OkStatus();
                         })
                  .ok());
  EXPECT_EQ(listing_nowhere, 0u);
  EXPECT_GT(records_now, records);
}

void WritePoint(Collection* c, uint64_t id, float x, float y) {
  const float v[2] = {x, y};
  std::vector<PointInput> rows = {{id, VectorView::Of(absl::MakeConstSpan(v)).bytes, {}}};
  std::vector<RowError> errors;
  uint64_t upserted = 0;
  ASSERT_TRUE(c->Upsert(rows, &errors, &upserted).ok());
  ASSERT_EQ(upserted, 1u);
}

// 2,000 points on a circle of radius 100 around the origin, in two dimensions.
VectorSet Circle() {
  constexpr int kCircle = 2000;
  VectorSet circle;
  circle.type = ElementType::kFloat32;
  circle.dim = 2;
  std::vector<float> xy;
  for (int i = 0; i < kCircle; ++i) {
    const double angle = 2 * M_PI * i / kCircle;
    xy.push_back(static_cast<float>(100 * std::cos(angle)));
    xy.push_back(static_cast<float>(100 * std::sin(angle)));
  }
  circle.data.assign(reinterpret_cast<const uint8_t*>(xy.data()),
                     reinterpret_cast<const uint8_t*>(xy.data() + xy.size()));
  circle.n = kCircle;
  return circle;
}

// Three postings' worth of points (ids 200000 and up) packed near (x, 0): they split the posting
// of the head nearest them, and the postings their heads get.
void WriteCluster(Collection* c, float x) {
  for (int i = 0; i < 3 * static_cast<int>(kLimit); ++i) {
    ASSERT_NO_FATAL_FAILURE(WritePoint(c, 200000 + i, x + 0.01f * static_cast<float>(i % 11),
                                       0.01f * static_cast<float>(i / 11)));
  }
}

// Whether a search reading only the posting nearest (x, y) finds point `id` there.
bool InNearestPosting(const Collection& c, uint64_t id, float x, float y) {
  const float v[2] = {x, y};
  SearchParams one;
  one.max_postings = 1;
  std::vector<Hit> hits;
  EXPECT_TRUE(c.Search(VectorView::Of(absl::MakeConstSpan(v)), 1, one, &hits).ok());
  return hits.size() == 1 && hits[0].id == id && hits[0].distance == 0.0f;
}

// SPFresh's second condition: a vector of a posting beside a split one, which a new head lies
// nearer than its own, moves to the new head. The vector lies 12 inside the circle at angle 182
// degrees (its head's posting its only one: the heads beside it are nearer that head than it);
// a cluster 20 inside the circle at angle 180 (nearest the head there, 8.5 from the vector)
// splits that head's posting, and the vector's posting is among the split's neighbours.
TEST(PostingMaintenance, AVectorBesideASplitMovesToTheNewHeadNearerIt) {
  TempDir tmp;
  CollectionOptions options = Options();
  options.seed_far_vectors = false;  // (the vector would be given a head of its own)
  auto cat = *Catalog::Open(tmp.path(), options);
  auto c = Create(cat.get(), Circle());
  Upsert(c.get(), Circle(), 0);
  ASSERT_TRUE(c->BuildIndex().ok());
  const double angle = 182 * M_PI / 180;
  const auto vx = static_cast<float>(88 * std::cos(angle));
  const auto vy = static_cast<float>(88 * std::sin(angle));
  ASSERT_NO_FATAL_FAILURE(WritePoint(c.get(), 100000, vx, vy));
  ASSERT_TRUE(c->RunMaintenance().ok());
  ASSERT_TRUE(InNearestPosting(*c, 100000, vx, vy));  // (its own head's, on the circle)
  ASSERT_NO_FATAL_FAILURE(WriteCluster(c.get(), -80));
  ASSERT_TRUE(c->RunMaintenance().ok());
  EXPECT_GT(c->Stats().splits, 0u);
  EXPECT_EQ(c->Stats().seeds, 0u);
  // Its nearest head is now one of the cluster's, whose posting holds it.
  EXPECT_TRUE(InNearestPosting(*c, 100000, vx, vy));
}

// A vector written while no head is near it joins the nearest there is, far away; a split of a
// posting elsewhere that later brings a head near it moves it there, though its posting is not
// among that posting's neighbours (also when the collection was reopened in between: the open
// measures the postings' radii again). The built vectors lie on a circle of radius 100; the
// vector is at its centre (nearest the head at angle 0), and a cluster half way to the head at
// angle 180 (nearest that head) splits that head's posting. The posting at angle 0 is opposite:
// not one of the 128 heads nearest the split's. (Without seeding, which would give the vector a
// head of its own at once: VectorsFarFromEveryHeadGetHeadsOfTheirOwn.)
TEST(PostingMaintenance, AVectorFarFromEveryHeadJoinsTheHeadASplitBringsNearIt) {
  CollectionOptions options = Options();
  options.seed_far_vectors = false;
  for (const bool reopen : {false, true}) {
    SCOPED_TRACE(reopen ? "reopened in between" : "not reopened");
    TempDir tmp;
    const VectorSet circle = Circle();
    auto cat = *Catalog::Open(tmp.path(), options);
    auto c = Create(cat.get(), circle);
    Upsert(c.get(), circle, 0);
    ASSERT_TRUE(c->BuildIndex().ok());
    ASSERT_GT(c->Stats().heads, 2 * 128u + 2);  // (so that the two sides are not neighbours)
    // The far vector: ~99 from every head, nearest the one at angle 0.
    ASSERT_NO_FATAL_FAILURE(WritePoint(c.get(), 100000, 1, 0));
    ASSERT_TRUE(c->RunMaintenance().ok());
    if (reopen) {
      c.reset();
      cat.reset();
      cat = *Catalog::Open(tmp.path(), options);
      c = *cat->Find("c");
    }
    ASSERT_NO_FATAL_FAILURE(WriteCluster(c.get(), -50));  // the cluster, 50 from the centre
    ASSERT_TRUE(c->RunMaintenance().ok());
    EXPECT_GT(c->Stats().splits, 0u);
    EXPECT_EQ(c->Stats().seeds, 0u);
    // Its nearest head is now in the cluster (~50 away): a search reading that head's posting
    // alone finds it.
    EXPECT_TRUE(InNearestPosting(*c, 100000, 1, 0));
  }
}

// Vectors written far from every head (here all 32 values near 250, where the SIFT-like build put
// no head) get heads of their own without waiting for a posting to outgrow its limit: fewer heads
// than vectors (one near an earlier one joins it), each vector found by a search reading its
// nearest postings, the same after a reopen, and maintenance run again changes nothing. Deleting
// them empties those postings, which are merged away again.
TEST(PostingMaintenance, VectorsFarFromEveryHeadGetHeadsOfTheirOwn) {
  TempDir tmp;
  const VectorSet base = Gen(1, 0, 3000);
  VectorSet far;
  far.type = base.type;
  far.dim = base.dim;
  far.n = 30;  // under the limit: no posting is split for them
  // A second cluster written later, as far from the first as from the build's heads: its
  // nearest head is the first cluster's, whose posting is small (under the merge threshold).
  VectorSet later = far;
  later.n = 10;
  later.data.clear();
  for (uint64_t i = 0; i < far.n; ++i) {
    for (uint32_t j = 0; j < far.dim; ++j) {
      // (Distinct vectors: the first value differs.)
      far.data.push_back(static_cast<uint8_t>(j == 0 ? 220 + i : 245 + (i * 7 + j * 3) % 10));
    }
  }
  for (uint64_t i = 0; i < later.n; ++i) {
    for (uint32_t j = 0; j < later.dim; ++j) {
      later.data.push_back(static_cast<uint8_t>(j < 12 ? 3 * i + j : 245 + (i * 5 + j) % 10));
    }
  }
  const auto expect_found = [&](const Collection& c, const VectorSet& set, uint64_t first_id) {
    SearchParams near;
    near.max_postings = 2;
    for (uint64_t i = 0; i < set.n; ++i) {
      std::vector<Hit> hits;
      ASSERT_TRUE(
          c.Search(VectorView{set.type, {set.row(i), set.row_bytes()}}, 1, near, &hits).ok());
      ASSERT_EQ(hits.size(), 1u);
      EXPECT_EQ(hits[0].id, first_id + i);
      EXPECT_EQ(hits[0].distance, 0.0f);
    }
  };
  // The build's own cap on a posting: no built posting is over it (no split happens).
  CollectionOptions options = Options();
  options.posting_limit = 0;
  CollectionStats seeded;
  {
    auto cat = *Catalog::Open(tmp.path(), options);
    auto c = Create(cat.get(), base);
    Upsert(c.get(), base, 0);
    ASSERT_TRUE(c->BuildIndex().ok());
    const CollectionStats settled = c->Stats();
    Upsert(c.get(), far, 100000);
    ASSERT_TRUE(c->RunMaintenance().ok());
    seeded = c->Stats();
    std::printf("%lu heads for %lu far vectors\n",
                static_cast<unsigned long>(seeded.seeds - settled.seeds),
                static_cast<unsigned long>(far.n));
    EXPECT_GE(seeded.seeds - settled.seeds, 1u);
    EXPECT_LT(seeded.seeds - settled.seeds, far.n / 2);
    EXPECT_EQ(seeded.splits, settled.splits);
    EXPECT_EQ(seeded.added_heads - settled.added_heads, seeded.seeds - settled.seeds);
    EXPECT_EQ(seeded.count, base.n + far.n);  // (the later cluster is written below)
    ASSERT_NO_FATAL_FAILURE(expect_found(*c, far, 100000));
    // The later cluster gets heads of its own too (its posting, a seed's, is not merge-guarded
    // into keeping it).
    Upsert(c.get(), later, 200000);
    ASSERT_TRUE(c->RunMaintenance().ok());
    const uint64_t first_heads = seeded.seeds - settled.seeds;
    seeded = c->Stats();
    EXPECT_GT(seeded.seeds - settled.seeds, first_heads);
    ASSERT_NO_FATAL_FAILURE(expect_found(*c, far, 100000));
    ASSERT_NO_FATAL_FAILURE(expect_found(*c, later, 200000));
    ASSERT_TRUE(c->RunMaintenance().ok());
    EXPECT_EQ(c->Stats().seeds, seeded.seeds);
    EXPECT_EQ(c->Stats().reassigned, seeded.reassigned);
  }
  auto cat = *Catalog::Open(tmp.path(), options);
  auto c = *cat->Find("c");
  EXPECT_EQ(c->Stats().added_heads, seeded.added_heads);
  ASSERT_NO_FATAL_FAILURE(expect_found(*c, far, 100000));
  ASSERT_NO_FATAL_FAILURE(expect_found(*c, later, 200000));
  // The open queues every posting again: none calls for another step.
  ASSERT_TRUE(c->RunMaintenance().ok());
  EXPECT_EQ(c->Stats().seeds, 0u);  // (counted since the open)
  EXPECT_EQ(c->Stats().added_heads, seeded.added_heads);
  const uint64_t far_heads = seeded.seeds;
  std::vector<uint64_t> gone;
  for (uint64_t i = 0; i < far.n; ++i) gone.push_back(100000 + i);
  for (uint64_t i = 0; i < later.n; ++i) gone.push_back(200000 + i);
  uint64_t deleted = 0;
  ASSERT_TRUE(c->Delete(gone, &deleted).ok());
  ASSERT_EQ(deleted, far.n + later.n);
  ASSERT_TRUE(c->RunMaintenance().ok());
  EXPECT_LE(c->Stats().added_heads, seeded.added_heads - far_heads);
  EXPECT_EQ(c->Stats().count, base.n);
  std::map<uint64_t, const uint8_t*> live;
  for (uint64_t i = 0; i < base.n; ++i) live[i] = base.row(i);
  ExpectAllReachable(*c, live, base);
}

// Deleting what drifted in empties the postings its splits made: they are merged away, and no
// deleted vector comes back.
TEST(PostingMaintenance, DeletesMergeEmptiedPostingsAway) {
  TempDir tmp;
  const VectorSet base = Gen(1, 0, 3000), drift = Gen(2, 0, 3000);
  auto cat = *Catalog::Open(tmp.path(), Options());
  auto c = Create(cat.get(), base);
  Upsert(c.get(), base, 0);
  ASSERT_TRUE(c->BuildIndex().ok());
  Upsert(c.get(), drift, 10000);
  ASSERT_TRUE(c->RunMaintenance().ok());
  const CollectionStats split = c->Stats();
  std::vector<uint64_t> gone;
  for (uint64_t i = 0; i < drift.n; ++i) gone.push_back(10000 + i);
  uint64_t deleted = 0;
  ASSERT_TRUE(c->Delete(gone, &deleted).ok());
  ASSERT_EQ(deleted, drift.n);
  ASSERT_TRUE(c->RunMaintenance().ok());
  const CollectionStats merged = c->Stats();
  EXPECT_GT(merged.merges, 0u);
  EXPECT_LT(merged.added_heads, split.added_heads);
  std::printf("added heads: %lu after the splits, %lu after %lu merges\n",
              static_cast<unsigned long>(split.added_heads),
              static_cast<unsigned long>(merged.added_heads),
              static_cast<unsigned long>(merged.merges));
  std::map<uint64_t, const uint8_t*> live;
  for (uint64_t i = 0; i < base.n; ++i) live[i] = base.row(i);
  ExpectAllReachable(*c, live, base);
  for (uint64_t i = 0; i < drift.n; i += 7) {
    std::vector<Hit> hits;
    ASSERT_TRUE(
        c->Search(VectorView{drift.type, {drift.row(i), drift.row_bytes()}}, 10, {}, &hits).ok());
    for (const Hit& h : hits) ASSERT_LT(h.id, 10000u) << "a deleted vector came back";
  }
}

// Query-aware pruning stops once the postings kept hold the entries k answers want, counted live:
// a built posting's entries left dead by deletes count at the share still served, and entries
// appended since the build count too. (Counting every built entry and no appended one, a search
// after deletes stopped as early as before them, with fewer live vectors in hand.)
TEST(PostingMaintenance, PruningCountsLiveEntries) {
  TempDir tmp;
  const VectorSet base = Gen(1, 0, 4000), more = Gen(1, 4000, 4000), queries = Gen(1, 9000, 50);
  auto cat = *Catalog::Open(tmp.path(), Options());
  auto c = Create(cat.get(), base);
  Upsert(c.get(), base, 0);
  ASSERT_TRUE(c->BuildIndex().ok());
  SearchParams pruned;
  pruned.max_postings = 64;
  pruned.prune_ratio = 1.1f;  // (tight: the entries wanted, not the ratio, end most searches)
  const auto postings_read = [&](const SearchParams& params) {
    uint64_t read = 0;
    for (uint64_t q = 0; q < queries.n; ++q) {
      std::vector<Hit> hits;
      SearchStats st;
      EXPECT_TRUE(c->Search(VectorView{queries.type, {queries.row(q), queries.row_bytes()}}, 10,
                            params, &hits, &st)
                      .ok());
      read += st.postings_read;
    }
    return read;
  };
  const uint64_t built = postings_read(pruned);
  ASSERT_LT(built, 64u * queries.n) << "pruning never stopped a search: the test shows nothing";
  // Three in four built vectors deleted (no maintenance runs: the postings keep their entries).
  std::vector<uint64_t> gone;
  for (uint64_t i = 0; i < base.n; ++i) {
    if (i % 4 != 0) gone.push_back(i);
  }
  uint64_t deleted = 0;
  ASSERT_TRUE(c->Delete(gone, &deleted).ok());
  const uint64_t after_deletes = postings_read(pruned);
  EXPECT_GT(after_deletes, built * 3 / 2);
  // As many vectors again, appended to the built postings: the searches stop earlier again.
  Upsert(c.get(), more, 10000);
  const uint64_t after_appends = postings_read(pruned);
  EXPECT_LT(after_appends, after_deletes * 3 / 4);
  std::printf(
      "built postings read by %lu searches: %lu built, %lu after deletes, %lu after appends\n",
      static_cast<unsigned long>(queries.n), static_cast<unsigned long>(built),
      static_cast<unsigned long>(after_deletes), static_cast<unsigned long>(after_appends));
}

// A posting of many equal vectors splits into halves that both shrink (SplitInTwo halves them by
// position; moving each to the "nearer" of two equal heads would send them all to one, and the
// posting would split again for ever). The hook stops a runaway by dropping the collection, which
// ends the run: steps fail from then on and nothing is queued again.
TEST(PostingMaintenance, EqualVectorsSplitWithoutEnd) {
  TempDir tmp;
  const VectorSet base = Gen(1, 0, 3000);
  CollectionOptions options = Options();
  size_t steps = 0;
  Catalog* catalog = nullptr;
  options.test_before_maintenance_commit = [&](absl::Span<const uint8_t>) {
    if (++steps == 400) {
      ASSERT_TRUE(catalog->Drop("c").ok());
    }
  };
  auto cat = *Catalog::Open(tmp.path(), options);
  catalog = cat.get();
  auto c = Create(cat.get(), base);
  Upsert(c.get(), base, 0);
  ASSERT_TRUE(c->BuildIndex().ok());
  const uint32_t built_longest = Longest(*c);
  VectorSet same = base;
  same.n = 10 * kLimit;
  same.data.clear();
  for (uint64_t i = 0; i < same.n; ++i) {
    same.data.insert(same.data.end(), base.row(7), base.row(7) + base.row_bytes());
  }
  Upsert(c.get(), same, 10000);
  const absl::Status run = c->RunMaintenance();
  ASSERT_LT(steps, 400u) << "splits of equal vectors did not end";
  ASSERT_TRUE(run.ok()) << run;
  EXPECT_LE(Longest(*c), std::max(built_longest, kLimit + kLimit / 2));
  std::map<uint64_t, const uint8_t*> live;
  for (uint64_t i = 0; i < base.n; ++i) live[i] = base.row(i);
  for (uint64_t i = 0; i < same.n; ++i) live[10000 + i] = same.row(i);
  EXPECT_EQ(c->Count(), live.size());
  SearchParams every;
  every.max_postings = 1000000;
  every.prune_ratio = 0;
  std::vector<Hit> hits;
  ASSERT_TRUE(c->Search(VectorView{base.type, {base.row(7), base.row_bytes()}},
                        static_cast<uint32_t>(same.n + 1), every, &hits)
                  .ok());
  EXPECT_EQ(hits.size(), same.n + 1);
  for (const Hit& h : hits) EXPECT_EQ(h.distance, 0) << h.id;
}

// A collection grown far past its index (more vectors in RAM than half the built ones) asks for
// a rebuild, which folds the added heads and moved vectors back into the disk index; so does one
// that lost more than half its built vectors.
TEST(PostingMaintenance, ACollectionGrownFarPastItsIndexWantsARebuild) {
  TempDir tmp;
  const VectorSet base = Gen(1, 0, 3000), drift = Gen(2, 0, 3000);
  auto cat = *Catalog::Open(tmp.path(), Options());
  CollectionConfig cfg;
  cfg.name = "c";
  cfg.dim = base.dim;
  cfg.type = base.type;
  cfg.build_threshold = 1000;
  auto c = *cat->Create(cfg);
  Upsert(c.get(), base, 0);
  ASSERT_TRUE(c->BuildIndex().ok());
  EXPECT_FALSE(c->WantsBuild());
  Upsert(c.get(), drift, 10000);
  ASSERT_TRUE(c->RunMaintenance().ok());
  const CollectionStats grown = c->Stats();
  EXPECT_GT(grown.appended_vectors, 1500u);
  EXPECT_TRUE(c->WantsBuild());
  ASSERT_TRUE(c->BuildIndex().ok());
  const CollectionStats rebuilt = c->Stats();
  EXPECT_FALSE(c->WantsBuild());
  EXPECT_EQ(rebuilt.added_heads, 0u);
  EXPECT_EQ(rebuilt.retired_heads, 0u);
  EXPECT_EQ(rebuilt.appended_vectors, 0u);
  EXPECT_EQ(rebuilt.indexed_vectors, 6000u);
  // Shrunk well past its index: more than half the built vectors deleted.
  std::vector<uint64_t> gone;
  for (uint64_t i = 0; i < 3000; ++i) gone.push_back(i);
  uint64_t deleted = 0;
  ASSERT_TRUE(c->Delete(gone, &deleted).ok());
  ASSERT_EQ(deleted, 3000u);
  EXPECT_FALSE(c->WantsBuild());  // (half exactly)
  ASSERT_TRUE(c->Delete(std::vector<uint64_t>{10000}, &deleted).ok());
  ASSERT_EQ(deleted, 1u);
  EXPECT_TRUE(c->WantsBuild());
  // The count is made again at an open, and a rebuild over the survivors starts it over.
  c.reset();
  cat.reset();
  cat = *Catalog::Open(tmp.path(), Options());
  c = *cat->Find("c");
  EXPECT_TRUE(c->WantsBuild());
  ASSERT_TRUE(c->BuildIndex().ok());
  EXPECT_FALSE(c->WantsBuild());
  EXPECT_EQ(c->Stats().indexed_vectors, 2999u);
}

// Writes made while a step is worked out (before it commits) are taken into account: a vector
// appended to the posting meanwhile moves with it (one equal to the posting's head joins that
// posting alone: the replica rule blocks every other), and vectors deleted or replaced meanwhile
// keep what their write gave them.
TEST(PostingMaintenance, WritesDuringAStepAreKeptByIt) {
  TempDir tmp;
  const VectorSet base = Gen(1, 0, 3000), drift = Gen(2, 0, 3000);
  CollectionOptions options = Options();
  std::shared_ptr<Collection> c;
  int hooked = 0;
  std::map<uint64_t, const uint8_t*> live;
  std::vector<uint64_t> gone;
  // At each of the first 40 steps: a vector equal to the step's head, one earlier drifted
  // vector deleted, one replaced by another's vector.
  std::vector<std::vector<uint8_t>> heads;  // the vectors upserted equal to a step's head
  heads.reserve(40);
  options.test_before_maintenance_commit = [&](absl::Span<const uint8_t> head) {
    if (hooked >= 40) return;
    heads.emplace_back(head.begin(), head.end());
    const uint64_t i = 2000 + static_cast<uint64_t>(hooked);
    std::vector<PointInput> rows = {{10000 + i, {heads.back().data(), heads.back().size()}, {}},
                                    {10000 + 3 * static_cast<uint64_t>(hooked) + 1,
                                     {drift.row(2500 + hooked), drift.row_bytes()},
                                     {}}};
    std::vector<RowError> errors;
    uint64_t n = 0;
    ASSERT_TRUE(c->Upsert(rows, &errors, &n).ok());
    live[10000 + i] = heads.back().data();
    live[10000 + 3 * static_cast<uint64_t>(hooked) + 1] = drift.row(2500 + hooked);
    const uint64_t del = 10000 + 3 * static_cast<uint64_t>(hooked);
    ASSERT_TRUE(c->Delete(std::vector<uint64_t>{del}, &n).ok());
    live.erase(del);
    gone.push_back(del);
    ++hooked;
  };
  auto cat = *Catalog::Open(tmp.path(), options);
  c = Create(cat.get(), base);
  Upsert(c.get(), base, 0);
  ASSERT_TRUE(c->BuildIndex().ok());
  VectorSet first = drift;
  first.n = 2000;
  first.data.resize(2000 * drift.row_bytes());
  Upsert(c.get(), first, 10000);
  for (uint64_t i = 0; i < base.n; ++i) live[i] = base.row(i);
  for (uint64_t i = 0; i < 2000; ++i) live.emplace(10000 + i, drift.row(i));
  ASSERT_TRUE(c->RunMaintenance().ok());
  ASSERT_EQ(hooked, 40);
  EXPECT_EQ(c->Count(), live.size());
  ExpectAllReachable(*c, live, base);
  for (uint64_t id : gone) {
    std::vector<PointOutput> found;
    std::vector<uint64_t> missing;
    ASSERT_TRUE(c->Get(std::vector<uint64_t>{id}, false, false, &found, &missing).ok());
    EXPECT_TRUE(found.empty()) << id;
  }
  SearchParams every;
  every.max_postings = 1000000;
  every.prune_ratio = 0;
  for (uint64_t id : gone) {
    std::vector<Hit> hits;
    const uint8_t* row = drift.row(id - 10000);
    ASSERT_TRUE(c->Search(VectorView{drift.type, {row, drift.row_bytes()}}, 5, every, &hits).ok());
    for (const Hit& h : hits) EXPECT_NE(h.id, id) << "a vector deleted during a step came back";
  }
}

// Steps run side by side, on two threads here. One thread's first steps each wait, before they
// commit, for a step of the other thread to commit: they then make their head changes over the
// heads as the other left them (not over the copy they started from, which would drop the
// other's new heads and strand the vectors moved to them), and leave the heads retired meanwhile
// out of their reassignments (no stored record lists a head that is not serving).
TEST(PostingMaintenance, StepsSideBySideMakeTheirHeadChangesOverEachOthers) {
  TempDir tmp;
  const VectorSet base = Gen(1, 0, 3000), drift = Gen(2, 0, 3000);
  CollectionOptions options = Options();
  std::mutex mu;
  std::condition_variable committed;
  int commits = 0;  // under mu
  options.test_after_commit = [&] {
    std::lock_guard<std::mutex> lock(mu);
    ++commits;
    committed.notify_all();
  };
  std::thread::id waiting_thread;
  int waited = 0, overlapped = 0;  // the waiting thread's own
  options.test_before_maintenance_commit = [&](absl::Span<const uint8_t>) {
    if (std::this_thread::get_id() != waiting_thread || waited >= 20) return;
    ++waited;
    std::unique_lock<std::mutex> lock(mu);
    const int at = commits;
    // (The bound only matters when the other thread has no posting free to take: it then waits
    // for this step.)
    overlapped += committed.wait_for(lock, std::chrono::seconds(5), [&] { return commits > at; });
  };
  auto cat = *Catalog::Open(tmp.path(), options);
  auto c = Create(cat.get(), base);
  Upsert(c.get(), base, 0);
  ASSERT_TRUE(c->BuildIndex().ok());
  const uint64_t built_heads = c->Stats().heads;
  Upsert(c.get(), drift, 10000);
  waiting_thread = std::this_thread::get_id();
  absl::Status other_status;
  std::thread other([&] { other_status = c->RunMaintenance(); });
  const absl::Status status = c->RunMaintenance();
  other.join();
  ASSERT_TRUE(status.ok()) << status;
  ASSERT_TRUE(other_status.ok()) << other_status;
  EXPECT_EQ(waited, 20);
  EXPECT_GE(overlapped, 10);  // (of 20; every one in the runs seen)
  EXPECT_GT(c->Stats().splits, 40u);
  std::map<uint64_t, const uint8_t*> live;
  for (uint64_t i = 0; i < base.n; ++i) live[i] = base.row(i);
  for (uint64_t i = 0; i < drift.n; ++i) live[10000 + i] = drift.row(i);
  EXPECT_EQ(c->Count(), live.size());
  ExpectAllReachable(*c, live, base);
  c.reset();
  cat.reset();
  {
    auto store = MetadataStore::Open(tmp.path() + "/meta");
    ASSERT_TRUE(store.ok()) << store.status();
    absl::flat_hash_set<uint32_t> retired, added;
    ASSERT_TRUE((*store)
                    ->Scan(Cf::kHeads, "",
                           [&](absl::string_view key, absl::string_view value) {
                             (value.empty() ? retired : added).insert(ReadU32(key, 4));
                             return absl::OkStatus();
                           })
                    .ok());
    ASSERT_GT(added.size(), 40u);
    size_t listed = 0, not_serving = 0;
    ASSERT_TRUE((*store)
                    ->Scan(Cf::kPostings, "",
                           [&](absl::string_view, absl::string_view value) {
                             for (size_t at = 1; at < value.size(); at += 4, ++listed) {
                               const uint32_t h = ReadU32(value, at);
                               not_serving +=
                                   h < built_heads ? retired.contains(h) : !added.contains(h);
                             }
                             return absl::OkStatus();
                           })
                    .ok());
    EXPECT_GT(listed, drift.n);
    EXPECT_EQ(not_serving, 0u) << "of " << listed << " entries";
  }
  cat = *Catalog::Open(tmp.path(), Options());
  c = *cat->Find("c");
  EXPECT_EQ(c->Count(), live.size());
  ExpectAllReachable(*c, live, base);
}

// With the background thread on, writers and searchers run beside the maintenance it does: every
// hit is a live point at its true distance, and the counts add up.
TEST(PostingMaintenance, RunsInTheBackgroundBesideSearchesAndWrites) {
  TempDir tmp;
  const VectorSet base = Gen(1, 0, 3000), drift = Gen(2, 0, 3000);
  CollectionOptions options = Options();
  options.background_maintenance = true;
  auto cat = *Catalog::Open(tmp.path(), options);
  auto c = Create(cat.get(), base);
  Upsert(c.get(), base, 0);
  ASSERT_TRUE(c->BuildIndex().ok());
  std::atomic<bool> stop = false;
  std::atomic<uint64_t> deleted_below = 0;  // base ids below this are deleted
  std::atomic<int> searches = 0;
  const auto vector_of = [&](uint64_t id) {
    return id >= 10000 ? drift.row(id - 10000) : base.row(id);
  };
  const auto search = [&](uint64_t seed) {
    std::mt19937_64 rng(seed);
    while (!stop.load()) {
      const uint64_t gone = deleted_below.load();
      const uint8_t* q = rng() % 2 ? base.row(rng() % base.n) : drift.row(rng() % drift.n);
      std::vector<Hit> hits;
      const absl::Status s = c->Search(VectorView{base.type, {q, base.row_bytes()}}, 10, {}, &hits);
      ASSERT_TRUE(s.ok()) << s;
      for (const Hit& h : hits) {
        ASSERT_TRUE(h.id >= gone && (h.id < 3000 || (h.id >= 10000 && h.id < 13000)))
            << "hit " << h.id << ", deleted below " << gone;
        float want = 0;
        for (uint32_t j = 0; j < base.dim; ++j) {
          const float x = static_cast<float>(q[j]) - static_cast<float>(vector_of(h.id)[j]);
          want += x * x;
        }
        ASSERT_EQ(h.distance, want) << "hit " << h.id;
      }
      searches.fetch_add(1);
    }
  };
  std::thread s1(search, 1), s2(search, 2);
  for (uint64_t row = 0; row < drift.n; row += 100) {
    std::vector<PointInput> rows;
    for (uint64_t i = row; i < row + 100; ++i) {
      rows.push_back({10000 + i, {drift.row(i), drift.row_bytes()}, {}});
    }
    std::vector<RowError> errors;
    uint64_t n = 0;
    ASSERT_TRUE(c->Upsert(rows, &errors, &n).ok());
    std::vector<uint64_t> ids;
    for (uint64_t i = row / 2; i < row / 2 + 50; ++i) ids.push_back(i);
    ASSERT_TRUE(c->Delete(ids, &n).ok());
    deleted_below.store(row / 2 + 50);
  }
  ASSERT_TRUE(c->RunMaintenance().ok());
  stop.store(true);
  s1.join();
  s2.join();
  EXPECT_GT(searches.load(), 0);
  const CollectionStats st = c->Stats();
  EXPECT_GT(st.splits, 0u);
  EXPECT_EQ(st.count, 3000u + 3000u - 1500u);
  std::map<uint64_t, const uint8_t*> live;
  for (uint64_t i = 1500; i < base.n; ++i) live[i] = base.row(i);
  for (uint64_t i = 0; i < drift.n; ++i) live[10000 + i] = drift.row(i);
  ExpectAllReachable(*c, live, base);
}

}  // namespace
}  // namespace strata
