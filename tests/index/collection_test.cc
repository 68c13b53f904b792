#include "index/collection.h"

#include <atomic>
#include <chrono>
#include <filesystem>
#include <random>
#include <set>
#include <thread>

#include "absl/strings/str_cat.h"
#include "base/mutex.h"
#include "gtest/gtest.h"
#include "index/brute_force.h"
#include "index/catalog.h"
#include "storage/fault_injection_env.h"
#include "tests/index/collection_test_util.h"
#include "tests/test_util.h"
#include "tools/synthetic.h"

namespace strata {
namespace {

using collection_testing::Data;
using collection_testing::Make;
using collection_testing::NewCollection;
using collection_testing::SearchAll;
using collection_testing::UpsertRows;
using testing::TempDir;

// A damaged index of a collection whose points were all deleted has nothing to rebuild from and
// nothing to lose: the collection starts over without an index and takes writes again.
TEST(Collection, ADamagedIndexOfAnEmptiedCollectionStartsOver) {
  TempDir tmp;
  Data d = Make(3000, 1);
  {
    auto cat = *Catalog::Open(tmp.path());
    auto c = NewCollection(cat.get(), d.base.dim, 1000000);
    UpsertRows(c.get(), d.base, 0, 3000);
    ASSERT_TRUE(c->BuildIndex().ok());
    std::vector<uint64_t> all(3000);
    for (uint64_t i = 0; i < 3000; ++i) all[i] = i;
    uint64_t deleted = 0;
    ASSERT_TRUE(c->Delete(all, &deleted).ok());
    ASSERT_EQ(deleted, 3000u);
  }
  for (const auto& e : std::filesystem::recursive_directory_iterator(tmp.path() + "/collections")) {
    if (e.path().filename() == "heads.graph") std::filesystem::remove(e.path());
  }
  auto cat = *Catalog::Open(tmp.path());
  auto c = *cat->Find("c");
  EXPECT_EQ(c->Stats().state, CollectionStats::State::kFlat);
  EXPECT_FALSE(c->WantsBuild());
  UpsertRows(c.get(), d.base, 0, 10);
  std::vector<Hit> hits;
  ASSERT_TRUE(
      c->Search(VectorView{d.base.type, {d.base.row(3), d.base.row_bytes()}}, 1, {}, &hits).ok());
  ASSERT_EQ(hits.size(), 1u);
  EXPECT_EQ(hits[0].id, 3u);
}

// Overlapping clusters (64-d, cosine): n points around 100 centres with noise 2.5x the centres'
// spread, so clusters overlap heavily (like the data of the issue that found the loss). A fixed
// budget of 32 postings reached recall@10 0.805 at 10K and 0.718 at 20K here.
VectorSet OverlappingClusters(uint64_t first, uint64_t n) {
  std::mt19937_64 centres_rng(17);
  std::normal_distribution<float> nd(0, 1);
  std::vector<float> centres(100 * 64);
  for (float& c : centres) c = nd(centres_rng);
  VectorSet s;
  s.type = ElementType::kFloat32;
  s.dim = 64;
  s.n = n;
  s.data.resize(n * 64 * 4);
  auto* f = reinterpret_cast<float*>(s.data.data());
  for (uint64_t i = 0; i < n; ++i) {
    std::mt19937_64 rng(1000003 * (first + i) + 1);
    const uint64_t c = rng() % 100;
    for (uint32_t j = 0; j < 64; ++j) f[i * 64 + j] = centres[c * 64 + j] + 2.5f * nd(rng);
  }
  return s;
}

// The defaults hold recall as a collection grows: the first build at 10K and a rebuild at 20K
// both search at recall@10 >= 0.90 with SearchParams left at their defaults.
TEST(Collection, DefaultSearchKeepsRecallAsTheCollectionGrows) {
  TempDir tmp;
  const VectorSet base = OverlappingClusters(0, 20000);
  const VectorSet queries = OverlappingClusters(20000, 200);
  auto cat = *Catalog::Open(tmp.path());
  CollectionConfig cfg;
  cfg.name = "c";
  cfg.dim = 64;
  cfg.metric = Metric::kCosine;
  cfg.build_threshold = 10000;
  auto c = *cat->Create(cfg);
  for (uint64_t size : {10000u, 20000u}) {
    SCOPED_TRACE(size);
    UpsertRows(c.get(), base, size - 10000, 10000);
    ASSERT_TRUE(c->BuildIndex().ok());
    const GroundTruth gt = *ExactKnn(testing::Slice(base, 0, size), queries, Metric::kCosine, 10);
    const double recall = testing::RecallAtK(gt, SearchAll(*c, queries, 10), 10);
    EXPECT_GE(recall, 0.90);
    const CollectionStats st = c->Stats();
    EXPECT_GE(st.tuned_recall, 0.92);
    EXPECT_GE(st.default_max_postings, 32u);
  }
}

TEST(Collection, FlatSearchIsExactAndIndexedSearchMeetsTheRecallFloor) {
  TempDir tmp;
  Data d = Make(8000, 100);
  auto cat = *Catalog::Open(tmp.path());
  auto c = NewCollection(cat.get(), d.base.dim, 1000000);
  UpsertRows(c.get(), d.base, 0, d.base.n);
  EXPECT_EQ(c->Stats().state, CollectionStats::State::kFlat);
  EXPECT_DOUBLE_EQ(testing::RecallAtK(d.gt, SearchAll(*c, d.queries, 10), 10), 1.0);
  ASSERT_TRUE(c->BuildIndex().ok());
  EXPECT_EQ(c->Stats().state, CollectionStats::State::kIndexed);
  EXPECT_GE(testing::RecallAtK(d.gt, SearchAll(*c, d.queries, 10), 10), 0.90);
}

TEST(Collection, WritesAfterTheBuildAreVisibleAndSurviveReopen) {
  TempDir tmp;
  Data d = Make(6000, 50);
  std::vector<std::vector<uint32_t>> before;
  // (No posting maintenance: the searches after the reopen are to equal those before it.)
  CollectionOptions options;
  options.background_maintenance = false;
  {
    auto cat = *Catalog::Open(tmp.path(), options);
    auto c = NewCollection(cat.get(), d.base.dim, 1000000);
    UpsertRows(c.get(), d.base, 0, 4000);
    ASSERT_TRUE(c->BuildIndex().ok());
    UpsertRows(c.get(), d.base, 4000, 2000);  // appended to postings
    EXPECT_EQ(c->Stats().appended_vectors, 2000u);
    EXPECT_GE(testing::RecallAtK(d.gt, SearchAll(*c, d.queries, 10), 10), 0.90);
    // Replace id 0 by query 0 itself, delete id 1.
    std::vector<PointInput> rows = {{0, {d.queries.row(0), d.queries.row_bytes()}, "p"}};
    std::vector<RowError> errors;
    uint64_t n = 0;
    ASSERT_TRUE(c->Upsert(rows, &errors, &n).ok());
    uint64_t deleted = 0;
    std::vector<uint64_t> del = {1, 999999};
    ASSERT_TRUE(c->Delete(del, &deleted).ok());
    EXPECT_EQ(deleted, 1u);
    EXPECT_EQ(c->Count(), 5999u);
    before = SearchAll(*c, d.queries, 10);
    EXPECT_EQ(before[0][0], 0u);
    // The old vector of id 0 no longer finds id 0 first.
    std::vector<Hit> hits;
    ASSERT_TRUE(
        c->Search(VectorView{d.base.type, {d.base.row(0), d.base.row_bytes()}}, 5, {}, &hits).ok());
    for (const Hit& h : hits) EXPECT_NE(h.id, 1u);
    EXPECT_NE(hits[0].id, 0u);
  }
  auto cat = *Catalog::Open(tmp.path(), options);
  auto c = *cat->Find("c");
  EXPECT_EQ(c->Count(), 5999u);
  EXPECT_EQ(SearchAll(*c, d.queries, 10), before);
  std::vector<PointOutput> found;
  std::vector<uint64_t> missing;
  std::vector<uint64_t> ids = {0, 1};
  ASSERT_TRUE(c->Get(ids, true, true, &found, &missing).ok());
  ASSERT_EQ(found.size(), 1u);
  EXPECT_EQ(found[0].payload, "p");
  EXPECT_EQ(found[0].vector, std::vector<uint8_t>(d.queries.row(0), d.queries.row(1)));
  EXPECT_EQ(missing, std::vector<uint64_t>{1});
  // A rebuild folds the appended vectors in and keeps every answer reachable.
  ASSERT_TRUE(c->BuildIndex().ok());
  EXPECT_EQ(c->Stats().appended_vectors, 0u);
  EXPECT_EQ(c->Stats().indexed_vectors, 5999u);
  EXPECT_GE(testing::RecallAtK(d.gt, SearchAll(*c, d.queries, 10), 10), 0.85);
}

// Options of a collection on `env` (null: the POSIX one) whose postings are maintained only when
// a test calls RunMaintenance.
CollectionOptions OnEnvWithoutMaintenance(Env* env) {
  CollectionOptions options;
  options.env = env;
  options.background_maintenance = false;
  return options;
}

// The rows of written vectors live in a scratch file whose disk space a write allocates before
// it commits: a full disk then fails the write, whole, with the file named, and the collection
// goes on (the next write, a restart) as if it had not been tried. Before a build and after one.
TEST(Collection, AWriteThatFindsNoDiskForItsRowsFailsWhole) {
  TempDir tmp;
  FaultInjectionEnv env;
  const CollectionOptions options = OnEnvWithoutMaintenance(&env);
  Data d = Make(3000, 1);
  {
    auto cat = *Catalog::Open(tmp.path(), options);
    auto c = NewCollection(cat.get(), d.base.dim, 1000000);
    for (const bool built : {false, true}) {
      const uint64_t first = built ? 2000 : 0;
      if (built) {
        UpsertRows(c.get(), d.base, 0, 1000);
        ASSERT_TRUE(c->BuildIndex().ok());
        ASSERT_EQ(c->Stats().appended_file_bytes, 0u);  // the build took the rows
      }
      // The first write of rows since the file was made (or emptied) must allocate it (tried
      // at twice the size, then at the size it needs); nothing before it in that write appends
      // to a file.
      env.FailNth(FaultInjectionEnv::Op::kAppend, 0, /*count=*/2);
      std::vector<PointInput> rows;
      for (uint64_t i = first; i < first + 10; ++i) {
        rows.push_back({i, {d.base.row(i), d.base.row_bytes()}, {}});
      }
      std::vector<RowError> errors;
      uint64_t upserted = 0;
      const uint64_t before = c->Count();
      const absl::Status s = c->Upsert(rows, &errors, &upserted);
      ASSERT_FALSE(s.ok());
      EXPECT_NE(s.message().find("appended-rows"), std::string::npos) << s;
      EXPECT_EQ(c->Count(), before);
      std::vector<PointOutput> found;
      std::vector<uint64_t> missing;
      const uint64_t ids[] = {first, first + 9};
      ASSERT_TRUE(c->Get(ids, false, false, &found, &missing).ok());
      EXPECT_TRUE(found.empty());
      ASSERT_TRUE(c->Upsert(rows, &errors, &upserted).ok());
      EXPECT_EQ(c->Count(), before + 10);
      EXPECT_GT(c->Stats().appended_file_bytes, 0u);
      std::vector<Hit> hits;
      ASSERT_TRUE(c->Search(VectorView{d.base.type, rows[3].vector}, 1, {}, &hits).ok());
      ASSERT_EQ(hits.size(), 1u);
      EXPECT_EQ(hits[0].id, first + 3);
    }
  }
  // Reopened: the rows' file is filled again from the metadata store.
  auto cat = *Catalog::Open(tmp.path(), options);
  auto c = *cat->Find("c");
  EXPECT_EQ(c->Count(), 1010u);
  EXPECT_EQ(c->Stats().appended_vectors, 10u);
  for (uint64_t id : {0u, 2005u}) {
    std::vector<Hit> hits;
    ASSERT_TRUE(
        c->Search(VectorView{d.base.type, {d.base.row(id), d.base.row_bytes()}}, 3, {}, &hits)
            .ok());
    EXPECT_TRUE(std::any_of(hits.begin(), hits.end(), [&](const Hit& h) {
      return h.id == id && h.distance == 0;
    })) << id;
  }
}

// Whatever an earlier version or a hand left under the rows' file's name - a file, a directory, a
// link to another file, a FIFO - the open removes, without touching what a link named.
TEST(Collection, TheRowsFileIsMadeAgainWhateverLiesThere) {
  TempDir tmp;
  const CollectionOptions options = OnEnvWithoutMaintenance(nullptr);
  Data d = Make(1500, 1);
  {
    auto cat = *Catalog::Open(tmp.path(), options);
    auto c = NewCollection(cat.get(), d.base.dim, 1000);
    UpsertRows(c.get(), d.base, 0, 1000);
    ASSERT_TRUE(c->BuildIndex().ok());
    UpsertRows(c.get(), d.base, 1000, 500);
  }
  namespace fs = std::filesystem;
  const fs::path rows = fs::path(tmp.path()) / "collections" / "1" / "appended-rows";
  const fs::path victim = fs::path(tmp.path()) / "victim";
  ASSERT_TRUE(WriteFileAtomic(*Env::Default(), victim.string(), std::string("keep me")).ok());
  for (int what = 0; what < 4; ++what) {
    std::error_code ec;
    fs::remove_all(rows, ec);
    if (what == 0) {
      ASSERT_TRUE(WriteFileAtomic(*Env::Default(), rows.string(), std::string(100, 'x')).ok());
    } else if (what == 1) {
      fs::create_directories(rows / "inside");
    } else if (what == 2) {
      fs::create_symlink(victim, rows);
    } else {
      ASSERT_EQ(::mkfifo(rows.c_str(), 0644), 0);
    }
    auto cat = *Catalog::Open(tmp.path(), options);
    auto c = *cat->Find("c");
    EXPECT_EQ(c->Count(), 1500u) << what;
    EXPECT_EQ(c->Stats().appended_vectors, 500u) << what;
    std::vector<Hit> hits;
    ASSERT_TRUE(
        c->Search(VectorView{d.base.type, {d.base.row(1200), d.base.row_bytes()}}, 3, {}, &hits)
            .ok());
    EXPECT_TRUE(std::any_of(hits.begin(), hits.end(), [](const Hit& h) {
      return h.id == 1200 && h.distance == 0;
    })) << what;
    EXPECT_FALSE(fs::exists(fs::symlink_status(rows))) << what;  // (its name removed at once)
  }
  absl::StatusOr<std::string> kept = Env::Default()->ReadFile(victim.string());
  ASSERT_TRUE(kept.ok());
  EXPECT_EQ(*kept, "keep me");
}

// A build that fails (here a write of its posting file: a full disk, say) removes what it wrote
// at once, and the next build goes on.
TEST(Collection, AFailedBuildLeavesNothingOnTheDisk) {
  TempDir tmp;
  FaultInjectionEnv env;
  const CollectionOptions options = OnEnvWithoutMaintenance(&env);
  Data d = Make(2000, 1);
  auto cat = *Catalog::Open(tmp.path(), options);
  auto c = NewCollection(cat.get(), d.base.dim, 1000000);
  UpsertRows(c.get(), d.base, 0, 2000);
  namespace fs = std::filesystem;
  const fs::path dir = fs::path(tmp.path()) / "collections" / "1";
  const auto entries = [&] {
    std::set<std::string> names;
    for (const auto& e : fs::directory_iterator(dir)) names.insert(e.path().filename().string());
    return names;
  };
  const std::set<std::string> before = entries();
  env.FailNth(FaultInjectionEnv::Op::kAppend, 3);
  ASSERT_FALSE(c->BuildIndex().ok());
  EXPECT_EQ(entries(), before);
  // A build that got as far as its generation's directory and then failed (its install did)
  // leaves that directory: the next build of that generation replaces it.
  fs::create_directories(dir / "index-1" / "left");
  ASSERT_TRUE(c->BuildIndex().ok());
  EXPECT_EQ(c->Stats().indexed_vectors, 2000u);
  EXPECT_FALSE(fs::exists(dir / "index-1" / "left"));
}

// A build stops early when its collection is dropped (NotFound) or its builds are stopped (a
// server stopping: Cancelled): no phase begins after, nothing of it stays on the disk, and a
// stopped collection still answers from what it had.
TEST(Collection, ADropOrAStopEndsABuildEarly) {
  TempDir tmp;
  Data d = Make(6000, 1);
  namespace fs = std::filesystem;
  auto cat = *Catalog::Open(tmp.path());
  for (const bool drop : {true, false}) {
    SCOPED_TRACE(drop ? "drop" : "stop");
    auto c = NewCollection(cat.get(), d.base.dim, 1000000);
    UpsertRows(c.get(), d.base, 0, 6000);
    const fs::path dir = fs::path(tmp.path()) / "collections" / std::to_string(c->config().id);
    std::vector<std::string> phases;
    const absl::Status s = c->BuildIndex([&](const char* phase, uint64_t, uint64_t) {
      if (phases.empty() || phases.back() != phase) phases.push_back(phase);
      if (phases.back() == "head graph" && phases.size() == 3) {  // (after "reading", "clustering")
        if (drop) {
          ASSERT_TRUE(cat->Drop("c").ok());
        } else {
          c->StopBuilds();
        }
      }
    });
    EXPECT_EQ(phases.back(), "head graph");
    if (drop) {
      EXPECT_TRUE(absl::IsNotFound(s)) << s;
      continue;
    }
    EXPECT_TRUE(absl::IsCancelled(s)) << s;
    EXPECT_NE(s.message().find("was stopped"), std::string::npos) << s;
    EXPECT_FALSE(fs::exists(dir / "index-1.tmp"));
    EXPECT_FALSE(fs::exists(dir / "index-1"));
    EXPECT_EQ(c->Stats().state, CollectionStats::State::kFlat);
    std::vector<Hit> hits;
    ASSERT_TRUE(c->Search(VectorView{d.base.type, {d.base.row(7), d.base.row_bytes()}}, 1,
                          SearchParams{}, &hits)
                    .ok());
    ASSERT_EQ(hits.size(), 1u);
    EXPECT_EQ(hits[0].id, 7u);
    // Stopped for good (the server is going): a later build stops at once.
    EXPECT_TRUE(absl::IsCancelled(c->BuildIndex()));
  }
}

// Searches beside deletes, upserts and a rebuild (whose install makes searches that were reading
// start again): every search answers, every hit is at its vector's true distance, and no point
// deleted before a search began is found by it.
TEST(Collection, SearchesBesideWritesAndARebuildSeeOnlyLivePoints) {
  TempDir tmp;
  Data d = Make(6000, 1);
  auto cat = *Catalog::Open(tmp.path());
  auto c = NewCollection(cat.get(), d.base.dim, 1000000);
  UpsertRows(c.get(), d.base, 0, 3000);
  ASSERT_TRUE(c->BuildIndex().ok());
  Mutex mu;
  std::set<uint64_t> deleted;  // acknowledged deletes
  std::atomic<bool> stop = false;
  std::atomic<int> searches = 0;
  const auto search = [&](uint64_t seed) {
    std::mt19937_64 rng(seed);
    while (!stop.load()) {
      const uint64_t row = rng() % 6000;
      std::set<uint64_t> gone;
      {
        MutexLock lock(&mu);
        gone = deleted;
      }
      std::vector<Hit> hits;
      const absl::Status s =
          c->Search(VectorView{d.base.type, {d.base.row(row), d.base.row_bytes()}}, 10, {}, &hits);
      ASSERT_TRUE(s.ok()) << s;
      for (const Hit& h : hits) {
        ASSERT_LT(h.id, 6000u);
        ASSERT_FALSE(gone.contains(h.id)) << "found " << h.id << ", deleted before the search";
        float want = 0;
        for (uint32_t j = 0; j < d.base.dim; ++j) {
          const float x =
              static_cast<float>(d.base.row(row)[j]) - static_cast<float>(d.base.row(h.id)[j]);
          want += x * x;
        }
        ASSERT_EQ(h.distance, want) << "hit " << h.id;
      }
      searches.fetch_add(1);
    }
  };
  std::thread s1(search, 1), s2(search, 2);
  std::thread build;
  for (uint64_t row = 3000; row < 6000; row += 100) {
    UpsertRows(c.get(), d.base, row, 100);
    std::vector<uint64_t> ids;
    for (uint64_t i = (row - 3000) / 2; i < (row - 3000) / 2 + 50; i += 5) ids.push_back(i);
    uint64_t n = 0;
    ASSERT_TRUE(c->Delete(ids, &n).ok());
    {
      MutexLock lock(&mu);
      deleted.insert(ids.begin(), ids.end());
    }
    if (row == 4500) build = std::thread([&] { EXPECT_TRUE(c->BuildIndex().ok()); });
  }
  build.join();
  stop.store(true);
  s1.join();
  s2.join();
  EXPECT_GT(searches.load(), 0);
  EXPECT_EQ(c->Count(), 6000u - 300u);
}

TEST(Collection, WritesDuringABuildAreCarriedOver) {
  TempDir tmp;
  Data d = Make(9000, 20);
  auto cat = *Catalog::Open(tmp.path());
  auto c = NewCollection(cat.get(), d.base.dim, 1000000);
  UpsertRows(c.get(), d.base, 0, 6000);
  std::thread build([&] { ASSERT_TRUE(c->BuildIndex().ok()); });
  for (uint64_t row = 6000; row < 9000; row += 100) UpsertRows(c.get(), d.base, row, 100);
  build.join();
  EXPECT_EQ(c->Count(), 9000u);
  // Every vector finds itself.
  for (uint64_t i = 0; i < 9000; i += 97) {
    std::vector<Hit> hits;
    ASSERT_TRUE(
        c->Search(VectorView{d.base.type, {d.base.row(i), d.base.row_bytes()}}, 1, {}, &hits).ok());
    ASSERT_EQ(hits.size(), 1u);
    EXPECT_EQ(hits[0].distance, 0.0f) << "row " << i;
  }
}

TEST(Collection, DropDuringABuildLeavesADataDirectoryThatOpens) {
  TempDir tmp;
  Data d = Make(6000, 1);
  {
    auto cat = *Catalog::Open(tmp.path());
    auto c = NewCollection(cat.get(), d.base.dim, 1000000);
    UpsertRows(c.get(), d.base, 0, 6000);
    std::thread build([&] {
      absl::Status s = c->BuildIndex();
      EXPECT_TRUE(s.ok() || absl::IsNotFound(s)) << s;  // finished first, or saw the drop
    });
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    ASSERT_TRUE(cat->Drop("c").ok());
    build.join();
  }
  auto cat = Catalog::Open(tmp.path());
  ASSERT_TRUE(cat.ok()) << cat.status();
  EXPECT_TRUE((*cat)->List().empty());
  EXPECT_TRUE(absl::IsNotFound((*cat)->Find("c").status()));
}

TEST(Collection, BadRowsAreReportedByIndex) {
  TempDir tmp;
  auto cat = *Catalog::Open(tmp.path());
  CollectionConfig cfg;
  cfg.name = "f";
  cfg.dim = 2;
  auto c = *cat->Create(cfg);
  float good[2] = {1, 2}, bad[2] = {1, std::numeric_limits<float>::quiet_NaN()};
  auto bytes = [](const float* f, size_t n) {
    return absl::Span<const uint8_t>(reinterpret_cast<const uint8_t*>(f), n * 4);
  };
  std::vector<PointInput> rows = {
      {1, bytes(good, 2), {}}, {2, bytes(bad, 2), {}}, {3, bytes(good, 1), {}}};
  std::vector<RowError> errors;
  uint64_t n = 0;
  ASSERT_TRUE(c->Upsert(rows, &errors, &n).ok());
  EXPECT_EQ(n, 1u);
  ASSERT_EQ(errors.size(), 2u);
  EXPECT_EQ(errors[0].index, 1u);
  EXPECT_EQ(errors[1].index, 2u);
  EXPECT_TRUE(absl::IsAlreadyExists(cat->Create(cfg).status()));
  EXPECT_TRUE(absl::IsNotFound(cat->Drop("nope")));
  ASSERT_TRUE(cat->Drop("f").ok());
  EXPECT_TRUE(absl::IsNotFound(c->Upsert(rows, &errors, &n)));
}

// A float32 collection with float16 postings: built and appended entries are both searchable, the
// encoding survives a reopen, and rows beyond float16's range are refused by row.
TEST(Collection, Float16PostingsAreKeptAndRowsBeyondTheirRangeRefused) {
  TempDir tmp;
  SyntheticOptions o;
  o.kind = SyntheticKind::kDeepLike;
  o.seed = 4;
  auto g = SyntheticGenerator::Create(o);
  Data d{g->Generate(0, 6000), g->Generate(6000, 50), {}};
  d.gt = *ExactKnn(d.base, d.queries, Metric::kL2, 10);
  std::vector<std::vector<uint32_t>> before;
  // (No posting maintenance: the searches after the reopen are to equal those before it.)
  CollectionOptions options;
  options.background_maintenance = false;
  {
    auto cat = *Catalog::Open(tmp.path(), options);
    CollectionConfig cfg;
    cfg.name = "h";
    cfg.dim = d.base.dim;
    cfg.posting_encoding = PostingEncoding::kFloat16;
    cfg.build_threshold = 1000000;
    auto c = *cat->Create(cfg);
    UpsertRows(c.get(), d.base, 0, 4000);
    ASSERT_TRUE(c->BuildIndex().ok());
    UpsertRows(c.get(), d.base, 4000, 2000);
    EXPECT_EQ(c->Stats().appended_vectors, 2000u);
    before = SearchAll(*c, d.queries, 10);
    EXPECT_GE(testing::RecallAtK(d.gt, before, 10), 0.90);

    std::vector<float> big(d.base.dim, 0.5f);
    big[9] = -7e4f;
    std::vector<PointInput> rows = {
        {99999, {reinterpret_cast<const uint8_t*>(big.data()), big.size() * 4}, {}}};
    std::vector<RowError> errors;
    uint64_t n = 0;
    ASSERT_TRUE(c->Upsert(rows, &errors, &n).ok());
    EXPECT_EQ(n, 0u);
    ASSERT_EQ(errors.size(), 1u);
    EXPECT_NE(errors[0].message.find("float16"), std::string::npos) << errors[0].message;
    EXPECT_EQ(c->Count(), 6000u);
  }
  auto cat = *Catalog::Open(tmp.path(), options);
  auto c = *cat->Find("h");
  EXPECT_EQ(c->config().posting_encoding, PostingEncoding::kFloat16);
  EXPECT_EQ(SearchAll(*c, d.queries, 10), before);

  CollectionConfig bytes;
  bytes.name = "b";
  bytes.dim = 8;
  bytes.type = ElementType::kUint8;
  bytes.posting_encoding = PostingEncoding::kFloat16;
  EXPECT_TRUE(absl::IsInvalidArgument(cat->Create(bytes).status()));
}

// A build asked for is recorded in the collection record until a build installs: a stop that
// cut it short, or came before it started, leaves it to the next start (the server queues it).
// A build that finds nothing to index is done with it too; a dropped collection takes none.
TEST(Collection, ARequestedBuildIsRecordedUntilABuildInstalls) {
  TempDir tmp;
  Data d = Make(600, 1);
  {
    auto cat = *Catalog::Open(tmp.path());
    auto c = NewCollection(cat.get(), d.base.dim, 1000000);
    UpsertRows(c.get(), d.base, 0, 500);
    auto e = NewCollection(cat.get(), d.base.dim, 1000000, "empty");
    EXPECT_FALSE(c->BuildRequested());
    ASSERT_TRUE(c->RequestBuild().ok());
    ASSERT_TRUE(c->RequestBuild().ok());  // (twice: one record)
    EXPECT_TRUE(c->BuildRequested());
    ASSERT_TRUE(e->RequestBuild().ok());
    EXPECT_TRUE(absl::IsFailedPrecondition(e->BuildIndex()));
    EXPECT_FALSE(e->BuildRequested());
  }
  {
    auto cat = *Catalog::Open(tmp.path());
    auto c = *cat->Find("c");
    EXPECT_TRUE(c->BuildRequested());  // the stop came first
    EXPECT_FALSE((*cat->Find("empty"))->BuildRequested());
    ASSERT_TRUE(c->BuildIndex().ok());
    EXPECT_FALSE(c->BuildRequested());
    ASSERT_TRUE(cat->Drop("empty").ok());
  }
  auto cat = *Catalog::Open(tmp.path());
  auto c = *cat->Find("c");
  EXPECT_FALSE(c->BuildRequested());
  EXPECT_EQ(c->Stats().indexed_vectors, 500u);
  // A request made while a build runs (after its snapshot) is for the build it queues: the
  // running one's install leaves it recorded.
  bool asked = false;
  ASSERT_TRUE(c->BuildIndex([&](const char*, uint64_t, uint64_t) {
                 if (!asked) {
                   EXPECT_TRUE(c->RequestBuild().ok());
                 }
                 asked = true;
               }).ok());
  EXPECT_TRUE(c->BuildRequested());
  ASSERT_TRUE(c->BuildIndex().ok());
  EXPECT_FALSE(c->BuildRequested());
  ASSERT_TRUE(cat->Drop("c").ok());
  EXPECT_TRUE(absl::IsNotFound(c->RequestBuild()));
}

}  // namespace
}  // namespace strata

namespace strata {
namespace {

// A hit's vector and payload are the ones its search read: a Get at the search's moment reads
// them as they were then, whatever writes came since (a point replaced: its old vector and
// payload; deleted: still there; written since, or not found by the search: missing), while the
// scope is the one of now (a tenant that lost a point since sees nothing of it). On a FLAT
// collection and on a built index; the admin's search, and a tenant's (its exact path).
TEST(Collection, AHitsVectorAndPayloadAreTheOnesItsSearchRead) {
  TempDir tmp;
  Data d = Make(1200, 1);
  auto cat = *Catalog::Open(tmp.path());
  const auto row = [&](uint64_t i) {
    return std::vector<uint8_t>(d.base.row(i), d.base.row(i) + d.base.row_bytes());
  };
  for (const bool built : {false, true}) {
    SCOPED_TRACE(built ? "built" : "flat");
    auto c = NewCollection(cat.get(), d.base.dim, 1000000, built ? "built" : "flat");
    std::vector<std::string> payloads(1000);
    std::vector<PointInput> rows;
    for (uint64_t i = 0; i < 1000; ++i) {
      payloads[i] = absl::StrCat("payload ", i);
      rows.push_back({i, {d.base.row(i), d.base.row_bytes()}, payloads[i]});
    }
    std::vector<RowError> errors;
    uint64_t n = 0;
    ASSERT_TRUE(c->Upsert(rows, &errors, &n).ok());
    if (built) {
      ASSERT_TRUE(c->BuildIndex().ok());
    }
    ASSERT_TRUE(c->CreateTenant("t").ok());
    std::vector<uint64_t> absent, all(1000);
    for (uint64_t i = 0; i < 1000; ++i) all[i] = i;
    ASSERT_TRUE(c->Grant("t", all, &n, &absent).ok());

    std::vector<Hit> hits, tenant_hits;
    std::shared_ptr<const ReadMoment> moment, tenant_moment;
    const VectorView q{d.base.type, {d.base.row(7), d.base.row_bytes()}};
    ASSERT_TRUE(c->Search(Scope{}, q, 3, SearchParams{}, &hits, nullptr, &moment).ok());
    ASSERT_TRUE(
        c->Search(Scope{"t"}, q, 3, SearchParams{}, &tenant_hits, nullptr, &tenant_moment).ok());
    ASSERT_EQ(hits.size(), 3u);
    ASSERT_EQ(hits[0].id, 7u);
    ASSERT_NE(moment, nullptr);
    ASSERT_EQ(tenant_hits.size(), 3u);
    const uint64_t second = hits[1].id, third = hits[2].id;
    ASSERT_EQ(tenant_hits[1].id, second);
    ASSERT_EQ(tenant_hits[2].id, third);
    uint64_t unfound = 0;  // a point the search did not find
    while (unfound == 7 || unfound == second || unfound == third) ++unfound;
    // Since: 7 replaced (new vector and payload), the second hit deleted, the third revoked from
    // t, and 5000 written.
    const std::string new_payload = "replaced";
    PointInput replaced{7, {d.base.row(1100), d.base.row_bytes()}, new_payload};
    ASSERT_TRUE(c->Upsert({&replaced, 1}, &errors, &n).ok());
    const uint64_t gone[] = {second};
    ASSERT_TRUE(c->Delete(gone, &n).ok());
    const uint64_t take[] = {third};
    ASSERT_TRUE(c->Revoke("t", take, &n).ok());
    UpsertRows(c.get(), d.base, 1101, 1, /*id_base=*/5000 - 1101);

    const uint64_t asked[] = {7, unfound, second, third, 5000};
    std::vector<PointOutput> found;
    std::vector<uint64_t> missing;
    ASSERT_TRUE(c->Get(Scope{}, asked, true, true, &found, &missing, moment.get()).ok());
    ASSERT_EQ(found.size(), 3u);
    EXPECT_EQ(found[0].id, 7u);
    EXPECT_EQ(found[0].vector, row(7));
    EXPECT_EQ(found[0].payload, payloads[7]);
    EXPECT_EQ(found[1].id, second);
    EXPECT_EQ(found[1].vector, row(second));
    EXPECT_EQ(found[1].payload, payloads[second]);
    EXPECT_EQ(found[2].id, third);
    EXPECT_EQ(missing, (std::vector<uint64_t>{unfound, 5000}));
    // Without the moment: as they are now.
    ASSERT_TRUE(c->Get(Scope{}, asked, true, true, &found, &missing).ok());
    ASSERT_EQ(found.size(), 4u);
    EXPECT_EQ(found[0].vector, row(1100));
    EXPECT_EQ(found[0].payload, new_payload);
    EXPECT_EQ(found[1].id, unfound);
    EXPECT_EQ(found[2].id, third);
    EXPECT_EQ(found[3].id, 5000u);
    EXPECT_EQ(missing, (std::vector<uint64_t>{second}));
    // The tenant at its search's moment: 7 as it was; the third, revoked since, not at all (nor
    // the second, deleted since, and so no longer the tenant's).
    ASSERT_TRUE(c->Get(Scope{"t"}, asked, true, true, &found, &missing, tenant_moment.get()).ok());
    ASSERT_EQ(found.size(), 1u);
    EXPECT_EQ(found[0].id, 7u);
    EXPECT_EQ(found[0].vector, row(7));
    EXPECT_EQ(found[0].payload, payloads[7]);
    EXPECT_EQ(missing, (std::vector<uint64_t>{unfound, second, third, 5000}));
    // A moment is its own search's: another scope's, or another collection's, is refused.
    EXPECT_TRUE(absl::IsInvalidArgument(
        c->Get(Scope{"t"}, asked, true, true, &found, &missing, moment.get())));
    EXPECT_TRUE(absl::IsInvalidArgument(
        c->Get(Scope{}, asked, true, true, &found, &missing, tenant_moment.get())));
    if (built) {
      auto other = cat->Find("flat");
      ASSERT_TRUE(other.ok());
      EXPECT_TRUE(absl::IsInvalidArgument(
          (*other)->Get(Scope{}, asked, true, true, &found, &missing, moment.get())));
    }
  }
}

}  // namespace
}  // namespace strata
