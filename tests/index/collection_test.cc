#include "index/collection.h"

#include <sys/stat.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <future>
#include <random>
#include <set>
#include <thread>

#include "base/mutex.h"
#include "gtest/gtest.h"
#include "index/brute_force.h"
#include "index/catalog.h"
#include "storage/block_reader.h"
#include "storage/fault_injection_env.h"
#include "storage/metadata_store.h"
#include "tests/test_util.h"
#include "tools/synthetic.h"

namespace strata {
namespace {

using testing::TempDir;

struct Data {
  VectorSet base, queries;
  GroundTruth gt;
};

Data Make(uint64_t n, uint64_t nq) {
  SyntheticOptions o;
  o.seed = 3;
  auto g = SyntheticGenerator::Create(o);
  Data d{g->Generate(0, n), g->Generate(n, nq), {}};
  d.gt = *ExactKnn(d.base, d.queries, Metric::kL2, 10);
  return d;
}

std::shared_ptr<Collection> NewCollection(Catalog* cat, uint32_t dim, uint64_t threshold,
                                          const std::string& name = "c") {
  CollectionConfig c;
  c.name = name;
  c.dim = dim;
  c.type = ElementType::kUint8;
  c.build_threshold = threshold;
  return *cat->Create(c);
}

void UpsertRows(Collection* c, const VectorSet& s, uint64_t first, uint64_t count,
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

std::vector<std::vector<uint32_t>> SearchAll(const Collection& c, const VectorSet& q, uint32_t k) {
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

// A write waiting on a slow sync stalls no reader: searches, Gets and Counts answer meanwhile,
// from the state before the write (it is not acknowledged yet), and see it once it returns;
// between its commit and its publication they still read the state before it.
// Before writes committed outside the collection's lock, every reader below waited for the
// sync. (The futures' deadline only turns a hang into a failure; nothing here is timed.)
TEST(Collection, AWriteWaitingOnItsSyncStallsNoReader) {
  TempDir tmp;
  FaultInjectionEnv env;
  CollectionOptions options;
  options.env = &env;
  std::atomic<bool> hook_armed = false;
  std::function<void()> hook;
  options.test_after_commit = [&] {
    if (hook_armed.exchange(false)) hook();
  };
  Data d = Make(2000, 1);
  auto cat = *Catalog::Open(tmp.path(), options);
  auto c = NewCollection(cat.get(), d.base.dim, 1000000);
  UpsertRows(c.get(), d.base, 0, 1500);
  ASSERT_TRUE(c->BuildIndex().ok());
  const VectorView q{d.base.type, {d.base.row(1600), d.base.row_bytes()}};
  // Runs `reads` on another thread while the write is held; `unhold` lets the write go on.
  const auto read_while_held = [&](std::function<void()> reads, std::function<void()> unhold) {
    std::future<void> done = std::async(std::launch::async, reads);
    const bool ready = done.wait_for(std::chrono::minutes(2)) == std::future_status::ready;
    if (!ready) unhold();  // so that the readers, and the test, finish
    done.wait();
    EXPECT_TRUE(ready) << "a reader waited for the write";
  };
  const auto stored = [&](uint64_t id) -> std::vector<uint8_t> {
    std::vector<PointOutput> found;
    std::vector<uint64_t> missing;
    const uint64_t ids[] = {id};
    EXPECT_TRUE(c->Get(ids, true, false, &found, &missing).ok());
    return found.empty() ? std::vector<uint8_t>{} : found[0].vector;
  };
  const std::vector<uint8_t> old_row(d.base.row(1), d.base.row(1) + d.base.row_bytes());
  const std::vector<uint8_t> new_row(d.base.row(1600), d.base.row(1600) + d.base.row_bytes());

  // An upsert replacing id 1 with the query itself and adding id 5000 (held in its sync of the
  // write-ahead log).
  env.HoldSyncs(".log");
  std::thread writer([&] {
    const PointInput rows[] = {{1, new_row, {}}, {5000, new_row, {}}};
    std::vector<RowError> errors;
    uint64_t upserted = 0;
    EXPECT_TRUE(c->Upsert(rows, &errors, &upserted).ok());
  });
  env.AwaitHeldSyncs(1);
  read_while_held(
      [&] {
        std::vector<Hit> hits;
        EXPECT_TRUE(c->Search(q, 10, {}, &hits).ok());
        for (const Hit& h : hits) EXPECT_TRUE(h.id != 1 || h.distance > 0) << "unacknowledged";
        EXPECT_EQ(stored(1), old_row);
        EXPECT_TRUE(stored(5000).empty());
        EXPECT_EQ(c->Count(), 1500u);
      },
      [&] { env.ReleaseSyncs(); });
  env.ReleaseSyncs();
  writer.join();
  EXPECT_EQ(stored(1), new_row);
  EXPECT_EQ(c->Count(), 1501u);

  // A delete of id 2, stopped after its commit and before the collection shows it: id 2 is whole
  // to readers (its vector too: they read the published snapshot of the metadata store, where
  // the delete is not yet).
  const std::vector<uint8_t> row2(d.base.row(2), d.base.row(2) + d.base.row_bytes());
  std::promise<void> committed, go_on;
  bool released = false;
  hook = [&] {
    committed.set_value();
    go_on.get_future().wait();
  };
  hook_armed = true;
  std::thread deleter([&] {
    const uint64_t ids[] = {2};
    uint64_t deleted = 0;
    EXPECT_TRUE(c->Delete(ids, &deleted).ok());
    EXPECT_EQ(deleted, 1u);
  });
  committed.get_future().wait();
  read_while_held(
      [&] {
        EXPECT_EQ(stored(2), row2);
        EXPECT_EQ(c->Count(), 1501u);
        std::vector<Hit> hits;
        const VectorView q2{d.base.type, {d.base.row(2), d.base.row_bytes()}};
        EXPECT_TRUE(c->Search(q2, 1, {}, &hits).ok());
        ASSERT_EQ(hits.size(), 1u);
        EXPECT_EQ(hits[0].id, 2u);
      },
      [&] {
        released = true;
        go_on.set_value();
      });
  if (!released) go_on.set_value();
  deleter.join();
  EXPECT_TRUE(stored(2).empty());
  EXPECT_EQ(c->Count(), 1500u);
}

// Reads of the index's posting file that wait, while held, until released: a slow disk.
class ReadGate {
 public:
  void Hold() {
    MutexLock lock(&mu_);
    held_ = true;
  }
  void Release() {
    MutexLock lock(&mu_);
    held_ = false;
  }
  void AwaitWaiting(int n) {
    MutexLock lock(&mu_);
    const auto enough = [this, n]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return waiting_ >= n; };
    mu_.Await(absl::Condition(&enough));
  }
  void Pass() {
    MutexLock lock(&mu_);
    ++waiting_;
    const auto open = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return !held_; };
    mu_.Await(absl::Condition(&open));
    --waiting_;
  }

 private:
  Mutex mu_;
  bool held_ ABSL_GUARDED_BY(mu_) = false;
  int waiting_ ABSL_GUARDED_BY(mu_) = 0;
};

class GatedBlockFile final : public BlockFile {
 public:
  GatedBlockFile(std::unique_ptr<BlockFile> base, ReadGate* gate)
      : base_(std::move(base)), gate_(gate) {}
  absl::StatusOr<std::unique_ptr<BlockReader>> NewReader() override {
    class Reader final : public BlockReader {
     public:
      Reader(std::unique_ptr<BlockReader> base, ReadGate* gate)
          : base_(std::move(base)), gate_(gate) {}
      absl::Status ReadBatch(absl::Span<const ReadOp> ops,
                             absl::FunctionRef<absl::Status(size_t)> on_done) override {
        gate_->Pass();
        return base_->ReadBatch(ops, on_done);
      }

     private:
      std::unique_ptr<BlockReader> base_;
      ReadGate* gate_;
    };
    auto reader = base_->NewReader();
    if (!reader.ok()) return reader.status();
    return std::unique_ptr<BlockReader>(new Reader(std::move(*reader), gate_));
  }
  IoEngine engine() const override { return base_->engine(); }
  bool direct() const override { return base_->direct(); }
  uint64_t size() const override { return base_->size(); }
  const std::string& path() const override { return base_->path(); }

 private:
  std::unique_ptr<BlockFile> base_;
  ReadGate* gate_;
};

// An indexed collection of `n` SIFT-like rows whose posting reads pass `gate`.
struct GatedCollection {
  explicit GatedCollection(uint64_t n) : d(Make(n, 1)) {
    CollectionOptions options;
    options.open.wrap_block_file = [this](std::unique_ptr<BlockFile> f) {
      return std::unique_ptr<BlockFile>(new GatedBlockFile(std::move(f), &gate));
    };
    // Tenants of a few thousand points search the postings (not an extent), whose reads wait.
    options.tenant_extent_bytes = 32768;
    cat = *Catalog::Open(tmp.path(), options);
    c = NewCollection(cat.get(), d.base.dim, 1000000);
    UpsertRows(c.get(), d.base, 0, n);
    EXPECT_TRUE(c->BuildIndex().ok());
  }
  // Runs `search` on a thread with its postings' reads held, and `meanwhile` beside it, then lets
  // the reads go. False when `meanwhile` did not finish while they were held (it waited for
  // them; the deadline only turns a hang into a failure).
  bool WhileASearchReads(std::function<void()> search, std::function<void()> meanwhile) {
    gate.Hold();
    std::thread searcher(search);
    gate.AwaitWaiting(1);
    std::future<void> writes = std::async(std::launch::async, meanwhile);
    const bool done = writes.wait_for(std::chrono::minutes(2)) == std::future_status::ready;
    gate.Release();  // either way, so that the test ends
    writes.wait();
    searcher.join();
    return done;
  }

  TempDir tmp;
  ReadGate gate;
  Data d;
  std::unique_ptr<Catalog> cat;
  std::shared_ptr<Collection> c;
};

// A search waiting on its posting reads stalls no writer: the collection's lock is released for
// the reads, so a delete and an upsert made meanwhile are acknowledged (before, they waited for
// the disk), and the search, scanning once its reads are back, sees the state after them.
TEST(Collection, ASearchWaitingOnTheDiskStallsNoWriter) {
  GatedCollection g(1500);
  Collection* c = g.c.get();
  const VectorView q{g.d.base.type, {g.d.base.row(7), g.d.base.row_bytes()}};
  std::vector<Hit> hits;
  const bool done = g.WhileASearchReads([&] { EXPECT_TRUE(c->Search(q, 5, {}, &hits).ok()); },
                                        [&] {
                                          const uint64_t gone[] = {7};
                                          uint64_t deleted = 0;
                                          EXPECT_TRUE(c->Delete(gone, &deleted).ok());
                                          const PointInput rows[] = {{5000, q.bytes, {}}};
                                          std::vector<RowError> errors;
                                          uint64_t upserted = 0;
                                          EXPECT_TRUE(c->Upsert(rows, &errors, &upserted).ok());
                                        });
  EXPECT_TRUE(done) << "a write waited for a search's disk reads";
  ASSERT_FALSE(hits.empty());
  EXPECT_EQ(hits[0].id, 5000u);  // the upsert made while the search read, at distance 0
  EXPECT_EQ(hits[0].distance, 0.0f);
  for (const Hit& h : hits) EXPECT_NE(h.id, 7u) << "deleted while the search read";
}

// A tenant dropped while its search reads postings (the lock released): the search says so
// (NotFound) even when another tenant took the dropped one's number and the index was rebuilt
// meanwhile; a tenant made again under the same name is a new, empty view - nothing of the old
// one's, nor another tenant's, comes back.
TEST(Collection, ATenantDroppedWhileItsSearchReadsSeesNothing) {
  GatedCollection g(3000);
  Collection* c = g.c.get();
  std::vector<uint64_t> all(3000);
  for (uint64_t i = 0; i < 3000; ++i) all[i] = i;
  const VectorView q{g.d.base.type, {g.d.base.row(7), g.d.base.row_bytes()}};
  for (const char* t : {"a", "b"}) ASSERT_TRUE(c->CreateTenant(t).ok());
  uint64_t changed = 0;
  std::vector<uint64_t> missing;
  ASSERT_TRUE(c->Grant("a", all, &changed, &missing).ok());  // past the exact search: postings
  std::vector<Hit> hits;
  absl::Status s;
  EXPECT_TRUE(g.WhileASearchReads([&] { s = c->Search(Scope{"a"}, q, 10, {}, &hits); },
                                  [&] {
                                    uint64_t deleted = 0;
                                    EXPECT_TRUE(c->DropTenant("a", true, &deleted).ok());
                                    EXPECT_TRUE(c->CreateTenant("c").ok());  // a's number?
                                    const uint64_t few[] = {7, 8, 9};
                                    EXPECT_TRUE(c->Grant("c", few, &changed, &missing).ok());
                                    EXPECT_TRUE(c->BuildIndex().ok());
                                  }));
  EXPECT_TRUE(absl::IsNotFound(s)) << s;
  ASSERT_TRUE(c->Grant("b", all, &changed, &missing).ok());
  EXPECT_TRUE(g.WhileASearchReads([&] { s = c->Search(Scope{"b"}, q, 10, {}, &hits); },
                                  [&] {
                                    uint64_t deleted = 0;
                                    EXPECT_TRUE(c->DropTenant("b", true, &deleted).ok());
                                    EXPECT_TRUE(c->CreateTenant("b").ok());
                                  }));
  EXPECT_TRUE(s.ok()) << s;
  EXPECT_TRUE(hits.empty()) << hits.size() << " hits for a tenant that sees nothing, first "
                            << hits[0].id;
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

// A create or a drop waiting on its synced write stalls no call on the other collections: Find
// and List answer meanwhile (before, the catalog's lock was held across the write, and every
// call's Find waited for the disk). The collection being created is not listed before its
// write returns; the one being dropped refuses calls from the start of its drop. (The futures'
// deadline only turns a hang into a failure; nothing here is timed.)
TEST(Catalog, ACreateOrDropWaitingOnItsSyncStallsNoOtherCall) {
  TempDir tmp;
  FaultInjectionEnv env;
  CollectionOptions options;
  options.env = &env;
  Data d = Make(200, 1);
  auto cat = *Catalog::Open(tmp.path(), options);
  auto kept = NewCollection(cat.get(), d.base.dim, 1000000, "kept");
  auto doomed = NewCollection(cat.get(), d.base.dim, 1000000, "doomed");
  UpsertRows(kept.get(), d.base, 0, 100);
  const auto answers_while_held = [&](std::function<void()> calls) {
    std::future<void> done = std::async(std::launch::async, calls);
    const bool ready = done.wait_for(std::chrono::minutes(2)) == std::future_status::ready;
    if (!ready) env.ReleaseSyncs();  // so that the calls, and the test, finish
    done.wait();
    EXPECT_TRUE(ready) << "a call waited for the catalog's write";
  };
  const auto uses_kept = [&] {
    auto found = cat->Find("kept");
    ASSERT_TRUE(found.ok()) << found.status();
    EXPECT_EQ((*found)->Count(), 100u);
    std::vector<Hit> hits;
    EXPECT_TRUE(
        (*found)
            ->Search(VectorView{d.base.type, {d.base.row(3), d.base.row_bytes()}}, 1, {}, &hits)
            .ok());
    ASSERT_EQ(hits.size(), 1u);
    EXPECT_EQ(hits[0].id, 3u);
  };

  env.HoldSyncs(".log");
  std::thread creator([&] {
    CollectionConfig config;
    config.name = "new";
    config.dim = d.base.dim;
    config.type = ElementType::kUint8;
    EXPECT_TRUE(cat->Create(config).ok());
  });
  env.AwaitHeldSyncs(1);
  answers_while_held([&] {
    uses_kept();
    EXPECT_TRUE(absl::IsNotFound(cat->Find("new").status()));
    EXPECT_EQ(cat->List().size(), 2u);
  });
  env.ReleaseSyncs();
  creator.join();
  EXPECT_TRUE(cat->Find("new").ok());

  env.HoldSyncs(".log");
  std::thread dropper([&] { EXPECT_TRUE(cat->Drop("doomed").ok()); });
  env.AwaitHeldSyncs(1);
  answers_while_held([&] {
    uses_kept();
    const PointInput row[] = {{7, {d.base.row(7), d.base.row_bytes()}, {}}};
    std::vector<RowError> errors;
    uint64_t upserted = 0;
    EXPECT_TRUE(absl::IsNotFound(doomed->Upsert(row, &errors, &upserted)));
  });
  env.ReleaseSyncs();
  dropper.join();
  EXPECT_TRUE(absl::IsNotFound(cat->Find("doomed").status()));
  EXPECT_EQ(cat->List().size(), 2u);
}

// A collection whose own records cannot be read (a malformed version record; a version record of
// an internal id far past the others, which would have sized the id tables by it: 4 billion ids,
// or a write out of bounds at 0xFFFFFFFF) does not keep the catalog, nor the other collections,
// from opening: it stays apart, its data as it was, Find says why, its name stays taken, and
// Drop deletes it (its records and directory) and frees the name.
// A collection whose catalog record itself cannot be read (damaged: a line missing, or nothing
// left of it) is kept apart the same way: the catalog and the other collections open, Find says
// why, the name stays taken, and Drop deletes it (with its records and directory when the record
// still says its id) and frees the name.
TEST(Catalog, ACollectionWhoseCatalogRecordCannotBeReadStaysApartUntilDropped) {
  namespace fs = std::filesystem;
  const Data d = Make(300, 1);
  // What is left of the record: its id and uid; nothing; or another collection's id, which is
  // not trusted (a drop would delete that one's files).
  enum class Left { kIdAndUid, kNothing, kOthersId };
  for (const Left left : {Left::kIdAndUid, Left::kNothing, Left::kOthersId}) {
    SCOPED_TRACE(static_cast<int>(left));
    const bool says_id = left == Left::kIdAndUid;
    TempDir tmp;
    uint32_t id = 0, good_id = 0;
    std::string uid;
    {
      auto cat = *Catalog::Open(tmp.path());
      auto bad = NewCollection(cat.get(), d.base.dim, 1000000, "bad");
      UpsertRows(bad.get(), d.base, 0, 200);
      id = bad->config().id;
      uid = bad->config().uid;
      auto good = NewCollection(cat.get(), d.base.dim, 1000000, "good");
      UpsertRows(good.get(), d.base, 0, 100);
      good_id = good->config().id;
      WriteBatch batch;
      batch.Put(Cf::kCollections, "bad",
                left == Left::kNothing
                    ? std::string("\x01\x02")
                    : absl::StrCat("format=1\nname=bad\nid=", says_id ? id : good_id, "\nuid=", uid,
                                   "\ndim="));
      ASSERT_TRUE(cat->store()->Write(&batch, /*sync=*/true).ok());
    }
    const fs::path dir = fs::path(tmp.path()) / "collections" / std::to_string(id);
    auto cat = Catalog::Open(tmp.path());
    ASSERT_TRUE(cat.ok()) << cat.status();
    const auto found = (*cat)->Find("bad");
    ASSERT_TRUE(absl::IsDataLoss(found.status())) << found.status();
    EXPECT_NE(found.status().message().find("catalog record"), std::string::npos) << found.status();
    ASSERT_EQ((*cat)->ListUnopened().size(), 1u);
    EXPECT_EQ((*cat)->ListUnopened()[0].config.uid, left == Left::kNothing ? "" : uid);
    EXPECT_EQ((*cat)->ListUnopened()[0].config.id, says_id ? id : 0u);
    auto good = (*cat)->Find("good");
    ASSERT_TRUE(good.ok()) << good.status();
    EXPECT_EQ((*good)->Count(), 100u);
    EXPECT_TRUE(fs::exists(dir));  // (left for a restore)
    CollectionConfig again;
    again.name = "bad";
    again.dim = d.base.dim;
    again.type = ElementType::kUint8;
    EXPECT_TRUE(absl::IsAlreadyExists((*cat)->Create(again).status()));
    ASSERT_TRUE((*cat)->Drop("bad").ok());
    // (Without its id the drop cannot tell its directory: the next start removes it, owned by
    // none.)
    EXPECT_EQ(fs::exists(dir), !says_id);
    (*cat)->WaitForPurges();
    auto made = (*cat)->Create(again);
    ASSERT_TRUE(made.ok()) << made.status();
    EXPECT_NE((*made)->config().id, id);
    EXPECT_EQ((*made)->Count(), 0u);
    cat->reset();
    cat = Catalog::Open(tmp.path());
    ASSERT_TRUE(cat.ok()) << cat.status();
    EXPECT_TRUE((*cat)->ListUnopened().empty());
    EXPECT_EQ((*cat)->List().size(), 2u);
    EXPECT_FALSE(fs::exists(dir));
    auto kept = (*cat)->Find("good");
    ASSERT_TRUE(kept.ok()) << kept.status();
    EXPECT_EQ((*kept)->Count(), 100u);
    EXPECT_TRUE(fs::exists(fs::path(tmp.path()) / "collections" / std::to_string(good_id)));
  }
}

TEST(Catalog, ACollectionWhoseRecordsCannotBeReadStaysApartUntilDropped) {
  namespace fs = std::filesystem;
  const Data d = Make(500, 1);
  for (const uint32_t bad_id : {0xFFFFFFFFu, 1u << 26, ~0u - 5}) {
    for (const bool malformed : {false, true}) {
      if (malformed && bad_id != 0xFFFFFFFFu) continue;
      SCOPED_TRACE(::testing::Message() << bad_id << (malformed ? " malformed" : ""));
      TempDir tmp;
      uint32_t id = 0;
      {
        auto cat = *Catalog::Open(tmp.path());
        auto c = NewCollection(cat.get(), d.base.dim, 1000000);
        UpsertRows(c.get(), d.base, 0, d.base.n);
        id = c->config().id;
        CollectionConfig other;
        other.name = "other";
        other.dim = d.base.dim;
        other.type = d.base.type;
        auto o = cat->Create(other);
        ASSERT_TRUE(o.ok()) << o.status();
        UpsertRows(o->get(), d.base, 0, 100);
        std::string key;
        AppendU32(&key, id);
        AppendU32(&key, bad_id);
        WriteBatch batch;
        batch.Put(Cf::kVersions, key, malformed ? std::string("xyz") : std::string("\1\1", 2));
        ASSERT_TRUE(cat->store()->Write(&batch, /*sync=*/true).ok());
      }
      const fs::path dir = fs::path(tmp.path()) / "collections" / std::to_string(id);
      ASSERT_TRUE(fs::exists(dir));
      auto cat = Catalog::Open(tmp.path());
      ASSERT_TRUE(cat.ok()) << cat.status();
      const auto found = (*cat)->Find("c");
      ASSERT_TRUE(absl::IsDataLoss(found.status())) << found.status();
      EXPECT_NE(found.status().message().find("version record"), std::string::npos)
          << found.status();
      ASSERT_EQ((*cat)->ListUnopened().size(), 1u);
      EXPECT_EQ((*cat)->ListUnopened()[0].config.name, "c");
      ASSERT_EQ((*cat)->List().size(), 1u);
      auto o = (*cat)->Find("other");
      ASSERT_TRUE(o.ok()) << o.status();
      EXPECT_EQ((*o)->Count(), 100u);
      CollectionConfig again;
      again.name = "c";
      again.dim = d.base.dim;
      again.type = d.base.type;
      EXPECT_TRUE(absl::IsAlreadyExists((*cat)->Create(again).status()));
      // Left as it was: the next start finds it the same.
      cat->reset();
      cat = Catalog::Open(tmp.path());
      ASSERT_TRUE(cat.ok()) << cat.status();
      ASSERT_EQ((*cat)->ListUnopened().size(), 1u);
      std::string uid;
      ASSERT_TRUE((*cat)->Drop("c", &uid).ok());
      EXPECT_EQ(uid.size(), 32u);
      EXPECT_TRUE((*cat)->ListUnopened().empty());
      EXPECT_TRUE(absl::IsNotFound((*cat)->Find("c").status()));
      EXPECT_FALSE(fs::exists(dir));
      (*cat)->WaitForPurges();
      size_t left = 0;
      std::string prefix;
      AppendU32(&prefix, id);
      for (Cf cf : {Cf::kVersions, Cf::kVectors, Cf::kPostings, Cf::kHeads}) {
        ASSERT_TRUE((*cat)
                        ->store()
                        ->Scan(cf, prefix,
                               [&](auto, auto) {
                                 ++left;
                                 return absl::OkStatus();
                               })
                        .ok());
      }
      EXPECT_EQ(left, 0u);
      ASSERT_TRUE((*cat)->Create(again).ok());
      cat->reset();
      auto reopened = Catalog::Open(tmp.path());
      ASSERT_TRUE(reopened.ok()) << reopened.status();
      EXPECT_TRUE((*reopened)->ListUnopened().empty());
      EXPECT_EQ((*reopened)->List().size(), 2u);
    }
  }
}

TEST(CollectionConfig, RoundTripsAndReadsRecordsWrittenBeforeFloat16Postings) {
  CollectionConfig c;
  c.name = "x";
  c.id = 3;
  c.dim = 96;
  c.posting_encoding = PostingEncoding::kFloat16;
  auto back = CollectionConfig::Parse(c.Serialize());
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->posting_encoding, PostingEncoding::kFloat16);
  EXPECT_EQ(back->Serialize(), c.Serialize());
  // An older record has no posting_encoding line: native.
  std::string old = c.Serialize();
  size_t at = old.find("posting_encoding=");
  old.erase(at, old.find('\n', at) + 1 - at);
  auto parsed = CollectionConfig::Parse(old);
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(parsed->posting_encoding, PostingEncoding::kNative);
  std::string bad = c.Serialize();
  bad.replace(bad.find("float16"), 7, "float99");
  EXPECT_TRUE(absl::IsDataLoss(CollectionConfig::Parse(bad).status()));
  // A learned hybrid weight round-trips; records without one (all older ones) have none.
  EXPECT_LT(parsed->hybrid_weight, 0);
  c.hybrid_weight = 0.3;
  c.hybrid_mrr = 0.875;
  c.hybrid_questions = 1024;
  back = CollectionConfig::Parse(c.Serialize());
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->hybrid_weight, 0.3);
  EXPECT_EQ(back->hybrid_mrr, 0.875);
  EXPECT_EQ(back->hybrid_questions, 1024u);
  std::string out_of_range = c.Serialize();
  const size_t w = out_of_range.find("hybrid_weight=");
  out_of_range.replace(w, out_of_range.find('\n', w) - w, "hybrid_weight=1.5");
  EXPECT_TRUE(absl::IsDataLoss(CollectionConfig::Parse(out_of_range).status()));
  // Text fields round-trip and are validated.
  c.text_fields = {"title", "section_2"};
  back = CollectionConfig::Parse(c.Serialize());
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->text_fields, c.text_fields);
  EXPECT_TRUE(c.Validate().ok());
  c.text_fields = {"a,b"};
  EXPECT_TRUE(absl::IsInvalidArgument(c.Validate()));
  c.text_fields = {""};
  EXPECT_TRUE(absl::IsInvalidArgument(c.Validate()));
  c.text_fields.assign(kMaxTextFields + 1, "f");
  EXPECT_TRUE(absl::IsInvalidArgument(c.Validate()));
}

}  // namespace
}  // namespace strata
