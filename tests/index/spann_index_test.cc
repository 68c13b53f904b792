#include "index/spann_index.h"

#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <cmath>
#include <filesystem>
#include <map>
#include <mutex>
#include <random>
#include <thread>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "index/brute_force.h"
#include "storage/fault_injection.h"
#include "storage/scoped_fd.h"
#include "tests/test_util.h"
#include "tools/synthetic.h"

namespace strata {
namespace {

using testing::TempDir;

struct Data {
  VectorSet base, queries;
  GroundTruth gt;
};

Data Make(SyntheticKind kind, uint64_t n, uint64_t nq, Metric metric = Metric::kL2) {
  SyntheticOptions o;
  o.kind = kind;
  o.seed = 3;
  auto g = SyntheticGenerator::Create(o);
  Data d;
  d.base = g->Generate(0, n);
  d.queries = g->Generate(n, nq);
  d.gt = *ExactKnn(d.base, d.queries, metric, 10);
  return d;
}

VectorView Row(const VectorSet& s, uint64_t i) {
  return {s.type, absl::Span<const uint8_t>(s.row(i), s.row_bytes())};
}

double Recall(const SpannIndex& index, const Data& d, const SearchParams& p) {
  std::vector<std::vector<uint32_t>> results;
  for (uint64_t i = 0; i < d.queries.n; ++i) {
    std::vector<Neighbor> res;
    absl::Status s = index.Search(Row(d.queries, i), 10, p, &res);
    EXPECT_TRUE(s.ok()) << s;
    std::vector<uint32_t> ids;
    for (const auto& n : res) ids.push_back(n.id);
    results.push_back(ids);
  }
  return testing::RecallAtK(d.gt, results, 10);
}

class SpannIndexTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    data_ = new Data(Make(SyntheticKind::kSiftLike, 20000, 200));
    dir_ = new TempDir();
    SpannBuildOptions o;
    SpannBuildStats stats;
    ASSERT_TRUE(SpannIndex::Build(data_->base, dir_->path() + "/idx", o, &stats).ok());
    stats_ = new SpannBuildStats(stats);
  }
  static void TearDownTestSuite() {
    delete data_;
    delete dir_;
    delete stats_;
  }
  static std::string IndexDir() { return dir_->path() + "/idx"; }
  static Data* data_;
  static TempDir* dir_;
  static SpannBuildStats* stats_;
};
Data* SpannIndexTest::data_ = nullptr;
TempDir* SpannIndexTest::dir_ = nullptr;
SpannBuildStats* SpannIndexTest::stats_ = nullptr;

TEST_F(SpannIndexTest, RecallFloorOnGeneratedSiftLike20K) {
  auto index = SpannIndex::Open(IndexDir());
  ASSERT_TRUE(index.ok()) << index.status();
  EXPECT_EQ((*index)->size(), 20000u);
  SearchParams p;
  p.max_postings = 16;
  double recall = Recall(**index, *data_, p);
  EXPECT_GE(recall, 0.90) << "recall@10 with 16 postings";
  // More postings never hurt.
  p.max_postings = 64;
  EXPECT_GE(Recall(**index, *data_, p), recall);
}

TEST_F(SpannIndexTest, BuildReplicatesBoundaryVectorsWithinLimits) {
  EXPECT_GT(stats_->heads, 1000u);
  double replicas = double(stats_->entries) / stats_->vectors;
  EXPECT_GT(replicas, 1.5);
  EXPECT_LE(replicas, 8.0);
  EXPECT_LE(stats_->max_posting_entries, 3 * 4096 / 132 + 0u + 100u);
}

TEST_F(SpannIndexTest, ReopenGivesIdenticalResults) {
  SearchParams p;
  p.max_postings = 12;
  std::vector<std::vector<Neighbor>> first;
  {
    auto index = SpannIndex::Open(IndexDir());
    ASSERT_TRUE(index.ok());
    for (uint64_t i = 0; i < 50; ++i) {
      std::vector<Neighbor> r;
      ASSERT_TRUE((*index)->Search(Row(data_->queries, i), 10, p, &r).ok());
      first.push_back(r);
    }
  }
  SpannOpenOptions pread;
  pread.io.engine = IoEngine::kPread;  // the other engine must agree too
  auto index = SpannIndex::Open(IndexDir(), pread);
  ASSERT_TRUE(index.ok());
  for (uint64_t i = 0; i < 50; ++i) {
    std::vector<Neighbor> r;
    ASSERT_TRUE((*index)->Search(Row(data_->queries, i), 10, p, &r).ok());
    ASSERT_EQ(r.size(), first[i].size());
    for (size_t j = 0; j < r.size(); ++j) {
      EXPECT_EQ(r[j].id, first[i][j].id);
      EXPECT_EQ(r[j].distance, first[i][j].distance);
    }
  }
}

TEST_F(SpannIndexTest, ResultsAreExactDistancesSortedAndUnique) {
  auto index = SpannIndex::Open(IndexDir());
  ASSERT_TRUE(index.ok());
  SearchParams p;
  for (uint64_t i = 0; i < 20; ++i) {
    std::vector<Neighbor> r;
    SearchStats st;
    ASSERT_TRUE((*index)->Search(Row(data_->queries, i), 10, p, &r, &st).ok());
    ASSERT_EQ(r.size(), 10u);
    std::set<VectorId> ids;
    for (size_t j = 0; j < r.size(); ++j) {
      ids.insert(r[j].id);
      if (j > 0) {
        EXPECT_LE(r[j - 1].distance, r[j].distance);
      }
      float exact = 0;
      for (uint32_t c = 0; c < data_->base.dim; ++c) {
        float t = float(data_->base.row(r[j].id)[c]) - float(data_->queries.row(i)[c]);
        exact += t * t;
      }
      EXPECT_EQ(r[j].distance, exact);
    }
    EXPECT_EQ(ids.size(), 10u) << "replicas must be de-duplicated";
    EXPECT_GT(st.postings_read, 0u);
    EXPECT_GE(st.pages_read, st.postings_read);
    EXPECT_EQ(st.bytes_read, uint64_t{st.pages_read} * 4096);
  }
}

TEST_F(SpannIndexTest, PruningReadsFewerPostings) {
  auto index = SpannIndex::Open(IndexDir());
  ASSERT_TRUE(index.ok());
  SearchParams wide, pruned;
  wide.max_postings = pruned.max_postings = 64;
  wide.prune_ratio = 0;
  pruned.prune_ratio = 1.5f;
  uint64_t a = 0, b = 0;
  for (uint64_t i = 0; i < 50; ++i) {
    std::vector<Neighbor> r;
    SearchStats s1, s2;
    ASSERT_TRUE((*index)->Search(Row(data_->queries, i), 10, wide, &r, &s1).ok());
    ASSERT_TRUE((*index)->Search(Row(data_->queries, i), 10, pruned, &r, &s2).ok());
    a += s1.postings_read;
    b += s2.postings_read;
  }
  EXPECT_LT(b, a);
}

// A query on top of a head, in tight clusters: every other head lies beyond the prune ratio, and
// that head's posting alone holds fewer than k vectors. Pruning still keeps the postings k answers
// need.
TEST(SpannIndex, PruningKeepsThePostingsKAnswersNeed) {
  TempDir dir;
  VectorSet base;
  base.type = ElementType::kFloat32;
  base.dim = 16;
  base.n = 40 * 250;  // 40 clusters of 250, far apart, each of spread 1
  std::mt19937_64 rng(7);
  std::uniform_real_distribution<float> far(0, 1000);
  std::normal_distribution<float> near(0, 1);
  std::vector<float> v(base.n * base.dim);
  for (uint64_t c = 0; c < 40; ++c) {
    std::vector<float> centre(base.dim);
    for (float& x : centre) x = far(rng);
    for (uint64_t i = 0; i < 250; ++i) {
      for (uint32_t j = 0; j < base.dim; ++j)
        v[(c * 250 + i) * base.dim + j] = centre[j] + near(rng);
    }
  }
  base.data.assign(reinterpret_cast<const uint8_t*>(v.data()),
                   reinterpret_cast<const uint8_t*>(v.data() + v.size()));
  ASSERT_TRUE(SpannIndex::Build(base, dir.path() + "/c", {}).ok());
  auto index = SpannIndex::Open(dir.path() + "/c");
  ASSERT_TRUE(index.ok()) << index.status();
  const uint32_t k = 100;  // more than a posting holds here
  VectorSet queries;
  queries.type = base.type;
  queries.dim = base.dim;
  for (uint32_t h = 0; h < 20; ++h) {
    const auto* head = reinterpret_cast<const float*>((*index)->head_vector(h * 37));
    for (uint32_t j = 0; j < base.dim; ++j) {
      const float x = head[j] + 1e-4f;
      const auto* b = reinterpret_cast<const uint8_t*>(&x);
      queries.data.insert(queries.data.end(), b, b + sizeof x);
    }
    ++queries.n;
  }
  auto gt = ExactKnn(base, queries, Metric::kL2, k);
  ASSERT_TRUE(gt.ok()) << gt.status();
  std::vector<std::vector<uint32_t>> results;
  uint32_t short_answers = 0;
  for (uint64_t i = 0; i < queries.n; ++i) {
    std::vector<Neighbor> res;
    ASSERT_TRUE((*index)->Search(Row(queries, i), k, {}, &res).ok());
    short_answers += res.size() < k;
    std::vector<uint32_t> ids;
    for (const Neighbor& n : res) ids.push_back(n.id);
    results.push_back(ids);
  }
  EXPECT_EQ(short_answers, 0u);
  EXPECT_GE(testing::RecallAtK(*gt, results, k), 0.9);
}

// A k larger than the default budget's postings hold: the budget grows to it.
TEST_F(SpannIndexTest, ALargeKReadsThePostingsItNeeds) {
  auto index = SpannIndex::Open(IndexDir());
  ASSERT_TRUE(index.ok());
  const uint32_t k = 2000;  // the default 32 postings hold ~320 vectors
  std::vector<Neighbor> res;
  SearchStats st;
  ASSERT_TRUE((*index)->Search(Row(data_->queries, 0), k, {}, &res, &st).ok());
  EXPECT_EQ(res.size(), k);
  EXPECT_GT(st.postings_read, (*index)->default_max_postings());
  // An explicit budget is the caller's.
  SearchParams p;
  p.max_postings = 32;
  ASSERT_TRUE((*index)->Search(Row(data_->queries, 0), k, p, &res, &st).ok());
  EXPECT_LE(st.postings_read, 32u);
}

// A k as large as a small collection: the budget's cap (16 times the default) would leave some
// of its postings unread, so the search reads them all and finds every vector.
TEST(SpannIndex, AKAsLargeAsASmallCollectionFindsEveryVector) {
  TempDir dir;
  const Data d = Make(SyntheticKind::kSiftLike, 8000, 1);
  ASSERT_TRUE(SpannIndex::Build(d.base, dir.path() + "/i", {}).ok());
  auto index = SpannIndex::Open(dir.path() + "/i");
  ASSERT_TRUE(index.ok()) << index.status();
  ASSERT_GT((*index)->num_heads(), 16u * (*index)->default_max_postings());  // (the cap's case)
  std::vector<Neighbor> res;
  SearchStats st;
  ASSERT_TRUE((*index)->Search(Row(d.queries, 0), 8000, {}, &res, &st).ok());
  EXPECT_EQ(res.size(), 8000u);
  EXPECT_GT(st.postings_read, 16u * (*index)->default_max_postings());
}

TEST_F(SpannIndexTest, ConcurrentSearchesAgreeWithSerial) {
  auto index = SpannIndex::Open(IndexDir());
  ASSERT_TRUE(index.ok());
  SearchParams p;
  std::vector<std::vector<Neighbor>> serial(100), parallel(100);
  for (uint64_t i = 0; i < 100; ++i) {
    ASSERT_TRUE((*index)->Search(Row(data_->queries, i), 10, p, &serial[i]).ok());
  }
  std::vector<std::thread> threads;
  std::atomic<int> errors{0};
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (uint64_t i = t; i < 100; i += 4) {
        if (!(*index)->Search(Row(data_->queries, i), 10, p, &parallel[i]).ok()) ++errors;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(errors.load(), 0);
  for (uint64_t i = 0; i < 100; ++i) {
    ASSERT_EQ(serial[i].size(), parallel[i].size());
    for (size_t j = 0; j < serial[i].size(); ++j) EXPECT_EQ(serial[i][j].id, parallel[i][j].id);
  }
}

TEST_F(SpannIndexTest, BadQueriesAreInvalidArgument) {
  auto index = SpannIndex::Open(IndexDir());
  ASSERT_TRUE(index.ok());
  std::vector<Neighbor> r;
  SearchParams p;
  std::vector<uint8_t> short_q(64, 1);
  EXPECT_TRUE(absl::IsInvalidArgument(
      (*index)->Search(VectorView::Of(absl::Span<const uint8_t>(short_q)), 10, p, &r)));
  std::vector<float> fq(128, 1.f);
  EXPECT_TRUE(absl::IsInvalidArgument(
      (*index)->Search(VectorView::Of(absl::Span<const float>(fq)), 10, p, &r)));
  EXPECT_TRUE(absl::IsInvalidArgument((*index)->Search(Row(data_->queries, 0), 0, p, &r)));
  EXPECT_TRUE(absl::IsInvalidArgument((*index)->Search(Row(data_->queries, 0), 20001, p, &r)));
  p.prune_ratio = NAN;
  EXPECT_TRUE(absl::IsInvalidArgument((*index)->Search(Row(data_->queries, 0), 10, p, &r)));
}

// The default search budget (max_postings = 0) is the one tuned at build time, recorded in the
// manifest with the recall it reached; searching with it equals searching with it explicitly.
TEST_F(SpannIndexTest, TheDefaultBudgetIsTunedAtBuildAndKept) {
  auto index = SpannIndex::Open(IndexDir());
  ASSERT_TRUE(index.ok());
  const uint32_t budget = (*index)->default_max_postings();
  // Never below the floor (SearchTuneOptions::min_postings) unless the index has fewer heads.
  EXPECT_GE(budget, std::min<uint64_t>(32, (*index)->num_heads()));
  EXPECT_GE((*index)->tuned_recall(), 0.92);
  SearchParams dflt, explicit_budget;
  explicit_budget.max_postings = budget;
  for (uint64_t q = 0; q < 20; ++q) {
    std::vector<Neighbor> a, b;
    ASSERT_TRUE((*index)->Search(Row(data_->queries, q), 10, dflt, &a).ok());
    ASSERT_TRUE((*index)->Search(Row(data_->queries, q), 10, explicit_budget, &b).ok());
    ASSERT_EQ(a.size(), b.size());
    for (size_t i = 0; i < a.size(); ++i) EXPECT_EQ(a[i].id, b[i].id);
  }
}

TEST_F(SpannIndexTest, EveryInjectedDiskFaultIsACleanError) {
  for (FaultKind kind : {FaultKind::kFailRead, FaultKind::kShortRead, FaultKind::kFlipBit}) {
    SpannOpenOptions o;
    o.wrap_block_file = [kind](std::unique_ptr<BlockFile> f) -> std::unique_ptr<BlockFile> {
      return std::make_unique<FaultInjectingBlockFile>(std::move(f), FaultPlan{kind, 3, 0, 777});
    };
    auto index = SpannIndex::Open(IndexDir(), o);
    ASSERT_TRUE(index.ok());
    std::vector<Neighbor> r = {{1, 2.f}};
    absl::Status s = (*index)->Search(Row(data_->queries, 0), 10, SearchParams{}, &r);
    EXPECT_TRUE(absl::IsDataLoss(s)) << static_cast<int>(kind) << ": " << s;
    if (kind == FaultKind::kFlipBit) {
      EXPECT_NE(s.message().find("posting"), std::string::npos) << s;
    }
    EXPECT_EQ(r.size(), 1u) << "the result must be untouched on error";
    // The next query, without a fault, succeeds.
    EXPECT_TRUE((*index)->Search(Row(data_->queries, 1), 10, SearchParams{}, &r).ok());
  }
}

// A query whose io_uring ring fails gets an error; its reader is not pooled again, so the next
// queries (on fresh readers) answer as before.
TEST_F(SpannIndexTest, AReaderWhoseRingFailedIsReplaced) {
  if (!IoUringAvailable()) GTEST_SKIP() << "no io_uring here";
  auto healthy = SpannIndex::Open(IndexDir());
  ASSERT_TRUE(healthy.ok());
  std::atomic<int> fail_next{0};
  SpannOpenOptions o;
  o.io.engine = IoEngine::kIoUring;
  o.io.inject_wait_error = [&fail_next] { return fail_next.exchange(0) != 0 ? -EIO : 0; };
  auto index = SpannIndex::Open(IndexDir(), o);
  ASSERT_TRUE(index.ok());
  std::vector<Neighbor> want, got;
  ASSERT_TRUE((*index)->Search(Row(data_->queries, 0), 10, SearchParams{}, &got).ok());
  fail_next = 1;
  const absl::Status s = (*index)->Search(Row(data_->queries, 1), 10, SearchParams{}, &got);
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("io_uring"), std::string::npos) << s;
  for (uint64_t q = 1; q < 6; ++q) {
    ASSERT_TRUE((*healthy)->Search(Row(data_->queries, q), 10, SearchParams{}, &want).ok());
    ASSERT_TRUE((*index)->Search(Row(data_->queries, q), 10, SearchParams{}, &got).ok()) << q;
    ASSERT_EQ(want.size(), got.size());
    for (size_t i = 0; i < want.size(); ++i) EXPECT_EQ(want[i].id, got[i].id) << q;
  }
}

TEST(SpannIndex, CorruptOrMissingFilesAreRefused) {
  Data d = Make(SyntheticKind::kSiftLike, 3000, 5);
  TempDir dir;
  std::string idx = dir.path() + "/idx";
  ASSERT_TRUE(SpannIndex::Build(d.base, idx, {}).ok());
  ASSERT_TRUE(SpannIndex::Open(idx).ok());
  // Building over an existing index is refused.
  EXPECT_TRUE(absl::IsAlreadyExists(SpannIndex::Build(d.base, idx, {})));
  // No index at all.
  EXPECT_TRUE(absl::IsNotFound(SpannIndex::Open(dir.path() + "/nothing").status()));

  auto corrupt = [&](const char* file, uint64_t offset) {
    std::string p = idx + "/" + file;
    auto fd = OpenFile(p, O_RDWR);
    ASSERT_TRUE(fd.ok());
    char c;
    ASSERT_TRUE(PReadFull(fd->get(), &c, 1, offset, p).ok());
    c ^= 0x40;
    ASSERT_TRUE(PWriteFull(fd->get(), &c, 1, offset, p).ok());
  };
  for (const char* file : {"MANIFEST", "heads.graph", "postings.tbl"}) {
    corrupt(file, 40);
    auto r = SpannIndex::Open(idx);
    EXPECT_TRUE(absl::IsDataLoss(r.status()) || absl::IsInvalidArgument(r.status()))
        << file << ": " << r.status();
    corrupt(file, 40);  // restore
    ASSERT_TRUE(SpannIndex::Open(idx).ok()) << file;
  }
  // A truncated posting file.
  std::string pd = idx + "/postings.dat";
  ASSERT_EQ(::truncate(pd.c_str(), 8192), 0);
  auto r = SpannIndex::Open(idx);
  EXPECT_TRUE(absl::IsDataLoss(r.status())) << r.status();
}

// A handful of vectors: heads with no upper graph levels at all (found by fuzz_requests under
// UBSan: loading such a graph copied zero bytes into a null pointer).
TEST(SpannIndex, ATinyIndexBuildsAndReopens) {
  TempDir dir;
  VectorSet tiny;
  tiny.type = ElementType::kFloat32;
  tiny.n = 12;
  tiny.dim = 4;
  tiny.data.resize(tiny.n * tiny.dim * 4);
  auto* f = reinterpret_cast<float*>(tiny.data.data());
  for (uint64_t i = 0; i < tiny.n * tiny.dim; ++i) f[i] = static_cast<float>((i * 7919) % 13);
  ASSERT_TRUE(SpannIndex::Build(tiny, dir.path() + "/t", {}).ok());
  auto index = SpannIndex::Open(dir.path() + "/t");
  ASSERT_TRUE(index.ok()) << index.status();
  std::vector<Neighbor> out;
  ASSERT_TRUE(
      (*index)->Search(VectorView{tiny.type, {tiny.row(3), tiny.row_bytes()}}, 3, {}, &out).ok());
  ASSERT_FALSE(out.empty());
  EXPECT_EQ(out[0].distance, 0.0f);
}

// A build cancelled at any check - in the clustering (its first node included), the head graph,
// the assignment, the postings' writing, after tuning - returns Cancelled from that phase (no
// later phase begins) and never leaves an index that opens.
TEST(SpannIndex, ACancelledBuildStopsInEveryPhase) {
  TempDir dir;
  const VectorSet base = Make(SyntheticKind::kSiftLike, 6000, 1).base;
  // The phase of each check a whole build makes (each phase reports its start).
  std::vector<std::string> check_phase;
  {
    std::string phase = "start";
    SpannBuildOptions o;
    o.threads = 1;
    o.progress = [&](const char* p, uint64_t, uint64_t) { phase = p; };
    o.cancelled = [&] {
      check_phase.push_back(phase);
      return false;
    };
    ASSERT_TRUE(SpannIndex::Build(base, dir.path() + "/whole", o).ok());
  }
  std::map<std::string, std::pair<uint64_t, uint64_t>> span;  // phase: first check, count
  for (uint64_t i = 0; i < check_phase.size(); ++i) {
    auto [it, fresh] = span.try_emplace(check_phase[i], i, 0);
    ++it->second.second;
  }
  const std::map<std::string, std::string> message = {
      {"clustering", "the clustering was cancelled"},
      {"head graph", "the head graph's build was cancelled"},
      {"assigning", "the build was cancelled"},
      {"writing", "the build was cancelled"},
      {"tuning search", "the build was cancelled"}};
  std::vector<uint64_t> cuts = {0, 1, check_phase.size() - 1};
  for (const auto& [phase, first_count] : message) {
    ASSERT_TRUE(span.contains(phase)) << phase;
    cuts.push_back(span[phase].first + span[phase].second / 2);
  }
  int case_no = 0;
  for (const uint64_t at : cuts) {
    const std::string want = check_phase[at];
    // The cut is placed within its phase: a build on two threads may make a few more or fewer
    // checks in a phase than the one-thread build counted (the last check, tuning's only one,
    // once fell in "writing" when counted over the whole build).
    const uint64_t offset = at - span[want].first;
    SCOPED_TRACE(absl::StrCat("check ", offset, " of ", span[want].second, " in ", want));
    uint64_t seen_in_phase = 0;
    std::mutex mu;
    std::string phase = "start";
    SpannBuildOptions o;
    o.threads = 2;
    o.progress = [&](const char* p, uint64_t, uint64_t) {
      std::lock_guard<std::mutex> lock(mu);
      phase = p;
    };
    // True once, at check `offset` of phase `want` (the build must take it as true from then on).
    o.cancelled = [&] {
      std::lock_guard<std::mutex> lock(mu);
      return phase == want && seen_in_phase++ == offset;
    };
    const std::string path = dir.path() + "/cut" + std::to_string(case_no++);
    const absl::Status s = SpannIndex::Build(base, path, o);
    EXPECT_TRUE(absl::IsCancelled(s)) << s;
    EXPECT_EQ(s.message(), message.at(want));
    EXPECT_EQ(phase, want) << "a later phase began";
    EXPECT_FALSE(SpannIndex::Open(path).ok());
  }
}

// A stored outlier - far from every other vector - is its own query's first answer at the default
// budget. A stranger's all-97s uint8 vector among 20K SIFT-like ones was chosen as a head no walk
// reached: neither it nor its query found that head, so the exact match stayed unfound unless a
// query read 56 postings.
TEST(SpannIndex, AnOutlierIsFoundByItsOwnVector) {
  TempDir dir;
  for (const uint64_t seed : {1, 2, 3}) {
    SCOPED_TRACE(seed);
    SyntheticOptions o;
    o.seed = seed;
    VectorSet base = SyntheticGenerator::Create(o)->Generate(0, 20000);
    // Seed 1 is the stranger's case: `strata-gen --n=20000`'s base, row 5 deleted, the outlier
    // upserted; the other seeds add one more outlier.
    if (seed == 1) {
      base.data.erase(base.data.begin() + 5 * base.dim, base.data.begin() + 6 * base.dim);
      --base.n;
    }
    for (const uint8_t value : {97, 255}) {
      if (seed == 1 && value != 97) continue;
      base.data.insert(base.data.end(), base.dim, value);
      ++base.n;
    }
    const uint64_t first_outlier = seed == 1 ? 19999 : 20000;
    const std::string path = dir.path() + "/s" + std::to_string(seed);
    ASSERT_TRUE(SpannIndex::Build(base, path, {}).ok());
    auto index = *SpannIndex::Open(path);
    for (uint64_t i = first_outlier; i < base.n; ++i) {
      std::vector<Neighbor> hits;
      ASSERT_TRUE(index->Search(Row(base, i), 1, {}, &hits).ok());
      ASSERT_FALSE(hits.empty());
      EXPECT_EQ(hits[0].id, i);
      EXPECT_EQ(hits[0].distance, 0.0f);
    }
  }
}

TEST(SpannIndex, BuildRejectsBadInput) {
  TempDir dir;
  VectorSet empty;
  empty.type = ElementType::kUint8;
  empty.dim = 8;
  EXPECT_TRUE(absl::IsInvalidArgument(SpannIndex::Build(empty, dir.path() + "/a", {})));
  VectorSet nan;
  nan.type = ElementType::kFloat32;
  nan.dim = 4;
  nan.n = 100;
  nan.data.assign(100 * 16, 0);
  reinterpret_cast<float*>(nan.data.data())[37] = std::nanf("");
  absl::Status s = SpannIndex::Build(nan, dir.path() + "/b", {});
  EXPECT_TRUE(absl::IsInvalidArgument(s)) << s;
  EXPECT_NE(s.message().find("vector 9"), std::string::npos) << s;
  VectorSet u8 = Make(SyntheticKind::kSiftLike, 500, 1).base;
  SpannBuildOptions cos;
  cos.metric = Metric::kCosine;
  EXPECT_TRUE(absl::IsInvalidArgument(SpannIndex::Build(u8, dir.path() + "/c", cos)));
  SpannBuildOptions share;
  share.head_share = -0.5;
  EXPECT_TRUE(absl::IsInvalidArgument(SpannIndex::Build(u8, dir.path() + "/d", share)));
}

TEST(SpannIndex, Float16PostingsRefuseWhatTheyCannotHold) {
  TempDir dir;
  SpannBuildOptions f16;
  f16.posting_encoding = PostingEncoding::kFloat16;
  VectorSet u8 = Make(SyntheticKind::kSiftLike, 500, 1).base;
  absl::Status s = SpannIndex::Build(u8, dir.path() + "/a", f16);
  EXPECT_TRUE(absl::IsInvalidArgument(s)) << s;
  EXPECT_NE(s.message().find("float32"), std::string::npos) << s;

  VectorSet big = Make(SyntheticKind::kDeepLike, 500, 1).base;
  reinterpret_cast<float*>(big.data.data())[7 * 96 + 3] = 1e5f;
  s = SpannIndex::Build(big, dir.path() + "/b", f16);
  EXPECT_TRUE(absl::IsInvalidArgument(s)) << s;
  EXPECT_NE(s.message().find("vector 7"), std::string::npos) << s;
  EXPECT_NE(s.message().find("65504"), std::string::npos) << s;
  // Cosine stores normalised vectors: any finite value fits.
  f16.metric = Metric::kCosine;
  EXPECT_TRUE(SpannIndex::Build(big, dir.path() + "/c", f16).ok());
}

TEST(SpannIndex, FloatQueriesWithNaNAreRejected) {
  Data d = Make(SyntheticKind::kDeepLike, 2000, 5);
  TempDir dir;
  ASSERT_TRUE(SpannIndex::Build(d.base, dir.path() + "/idx", {}).ok());
  auto index = SpannIndex::Open(dir.path() + "/idx");
  ASSERT_TRUE(index.ok());
  std::vector<float> q(96, 0.1f);
  q[5] = std::numeric_limits<float>::infinity();
  std::vector<Neighbor> r;
  EXPECT_TRUE(absl::IsInvalidArgument(
      (*index)->Search(VectorView::Of(absl::Span<const float>(q)), 10, {}, &r)));
}

// Deep-like float32 under each metric, recall against exact search in the same metric, for the
// native index and the same index with float16 postings (half-size entries): the float16 recall
// stays within a point of the native one, the posting file halves, and distances are those of
// the float16-rounded vectors (close to the exact ones).
class SpannMetricTest : public ::testing::TestWithParam<Metric> {};

TEST_P(SpannMetricTest, DeepLikeRecallFloorNativeAndFloat16) {
  Data d = Make(SyntheticKind::kDeepLike, 10000, 100, GetParam());
  TempDir dir;
  SpannBuildOptions o;
  o.metric = GetParam();
  ASSERT_TRUE(SpannIndex::Build(d.base, dir.path() + "/native", o).ok());
  o.posting_encoding = PostingEncoding::kFloat16;
  ASSERT_TRUE(SpannIndex::Build(d.base, dir.path() + "/f16", o).ok());
  auto native = SpannIndex::Open(dir.path() + "/native");
  auto f16 = SpannIndex::Open(dir.path() + "/f16");
  ASSERT_TRUE(native.ok() && f16.ok());
  EXPECT_EQ((*native)->metric(), GetParam());
  EXPECT_EQ((*native)->posting_encoding(), PostingEncoding::kNative);
  EXPECT_EQ((*f16)->posting_encoding(), PostingEncoding::kFloat16);
  EXPECT_LE((*f16)->DiskBytes(), 0.6 * (*native)->DiskBytes());
  SearchParams p;
  p.max_postings = 32;
  double recall_native = Recall(**native, d, p);
  double recall_f16 = Recall(**f16, d, p);
  EXPECT_GE(recall_native, 0.90);
  EXPECT_GE(recall_f16, 0.90);
  EXPECT_GE(recall_f16, recall_native - 0.01);

  // Returned distances against the exact float32 ones (cosine: of the normalised vectors).
  auto exact = [&](const float* q, const float* x) {
    double qq = 0, xx = 0, qx = 0, l2 = 0;
    for (uint32_t j = 0; j < d.base.dim; ++j) {
      qq += double{q[j]} * q[j];
      xx += double{x[j]} * x[j];
      qx += double{q[j]} * x[j];
      l2 += (double{q[j]} - x[j]) * (double{q[j]} - x[j]);
    }
    if (GetParam() == Metric::kL2) return l2;
    if (GetParam() == Metric::kInnerProduct) return -qx;
    return -qx / std::sqrt(qq * xx);
  };
  for (uint64_t i = 0; i < 20; ++i) {
    std::vector<Neighbor> r;
    ASSERT_TRUE((*f16)->Search(Row(d.queries, i), 10, p, &r).ok());
    ASSERT_EQ(r.size(), 10u);
    const auto* q = reinterpret_cast<const float*>(d.queries.row(i));
    for (const Neighbor& n : r) {
      double want = exact(q, reinterpret_cast<const float*>(d.base.row(n.id)));
      EXPECT_NEAR(n.distance, want, 1e-3 * (1 + std::fabs(want))) << "query " << i;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Metrics, SpannMetricTest,
                         ::testing::Values(Metric::kL2, Metric::kInnerProduct, Metric::kCosine),
                         [](const auto& info) { return std::string(MetricName(info.param)); });

TEST(SelectReplicas, RngRuleSkipsHeadsCloserToAChosenHead) {
  // Heads on a line at 0, 1, 10; x at 0.4 (squared distances).
  std::vector<float> pos = {0, 1, 10};
  auto hd = [&](int64_t a, int64_t b) { return (pos[a] - pos[b]) * (pos[a] - pos[b]); };
  std::vector<int64_t> cand = {0, 1, 2};
  std::vector<float> dist = {0.16f, 0.36f, 92.16f};
  // Head 1: d(h1, h0) = 1 > d(x, h1) = 0.36 -> kept (boundary vector). Head 2: d(h2, h0) = 100 >
  // 92.16 and d(h2, h1) = 81 <= 92.16 -> skipped.
  auto chosen = SelectReplicas(cand, dist, 8, 1.0f, hd);
  EXPECT_EQ(chosen, (std::vector<uint32_t>{0, 1}));
  // The cap applies.
  EXPECT_EQ(SelectReplicas(cand, dist, 1, 1.0f, hd), (std::vector<uint32_t>{0}));
  // Missing candidates (-1) end the list.
  std::vector<int64_t> short_cand = {2, -1, -1};
  EXPECT_EQ(SelectReplicas(short_cand, dist, 8, 1.0f, hd), (std::vector<uint32_t>{0}));
}

}  // namespace
}  // namespace strata
