// Power cuts at random points of a collection's life. Each cycle opens the catalog on a
// FaultInjectionEnv (storage/fault_injection_env.h: the index files and RocksDB's alike), runs
// upserts, deletes and index builds, and cuts the power at a random write-side call among them:
// that call and every later one fail, the catalog is closed, everything not synced is dropped,
// and the next cycle reopens it. After every cut:
//   - the catalog opens, and the collection with it, never damaged;
//   - every acknowledged write is there (vectors, payloads, deletes, the count), and the write
//     the cut interrupted is there whole or not at all;
//   - an acknowledged build is still the index (the collection is indexed, not flat);
//   - searches answer, and every hit is a live point at its true distance.
#include <gtest/gtest.h>

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "index/catalog.h"
#include "index/collection.h"
#include "storage/fault_injection_env.h"
#include "tests/test_util.h"

namespace strata {
namespace {

constexpr uint32_t kDim = 16;
constexpr uint64_t kIds = 400;

struct Point {
  std::vector<uint8_t> vector;
  std::string payload;
  bool operator==(const Point&) const = default;
};
using State = std::map<uint64_t, Point>;

// What one write would change: points set (nullopt = deleted).
using Change = std::map<uint64_t, std::optional<Point>>;

State Applied(State s, const Change& c) {
  for (const auto& [id, p] : c) {
    if (p.has_value()) {
      s[id] = *p;
    } else {
      s.erase(id);
    }
  }
  return s;
}

// The collection's points as Get and Count report them.
State Read(const Collection& c) {
  std::vector<uint64_t> ids(kIds);
  for (uint64_t i = 0; i < kIds; ++i) ids[i] = i;
  std::vector<PointOutput> found;
  std::vector<uint64_t> missing;
  EXPECT_TRUE(c.Get(ids, /*with_vector=*/true, /*with_payload=*/true, &found, &missing).ok());
  State s;
  for (PointOutput& p : found) s[p.id] = Point{std::move(p.vector), std::move(p.payload)};
  EXPECT_EQ(c.Count(), s.size());
  return s;
}

std::string Describe(const State& s) {
  std::string out = absl::StrCat(s.size(), " points:");
  for (const auto& [id, p] : s) absl::StrAppend(&out, " ", id, "=", p.payload);
  return out;
}

float L2(const std::vector<uint8_t>& a, const std::vector<uint8_t>& b) {
  float d = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    const float x = static_cast<float>(a[i]) - static_cast<float>(b[i]);
    d += x * x;
  }
  return d;
}

// The test's collection "c" (16-d uint8, L2): made in the first cycle, found in the others.
absl::StatusOr<std::shared_ptr<Collection>> TheCollection(Catalog& cat, bool make) {
  if (!make) return cat.Find("c");
  CollectionConfig cfg;
  cfg.name = "c";
  cfg.dim = kDim;
  cfg.type = ElementType::kUint8;
  cfg.build_threshold = 1000000;
  return cat.Create(cfg);
}

// Collections on the power-cut simulator `env`, one build thread, and posting maintenance when
// the test says, over postings short enough to split often.
CollectionOptions OnTheSimulator(FaultInjectionEnv* env) {
  CollectionOptions options;
  options.env = env;
  options.build_threads = 1;
  options.background_maintenance = false;
  options.posting_limit = 6;
  return options;
}

// A cut while the catalog opens (RocksDB's recovery writes, leftovers removed), after `calls`
// write-side calls: the next open must still find everything. Counts a cut that fell in it.
void CutWhileOpening(FaultInjectionEnv* env, const std::string& dir,
                     const CollectionOptions& options, uint64_t calls, int* cuts) {
  env->PowerCutAfter(static_cast<int64_t>(calls));
  {
    absl::StatusOr<std::unique_ptr<Catalog>> cut = Catalog::Open(dir, options);
    if (!cut.ok()) {
      ASSERT_TRUE(env->power_is_cut()) << cut.status();
    } else {
      (*cut)->WaitForPurges();  // (a drop's records a cut left: the cut may fall there too)
    }
  }
  if (env->power_is_cut()) {
    ++*cuts;
    ASSERT_TRUE(env->DropUnsyncedData().ok());
  }
  env->PowerCutAfter(-1);
}

TEST(PowerLoss, EveryAcknowledgedWriteSurvivesACutAtAnyPoint) {
  testing::TempDir tmp;
  FaultInjectionEnv env;
  const CollectionOptions options = OnTheSimulator(&env);
  std::mt19937_64 rng(20261204);
  State model;           // what was acknowledged
  bool built = false;    // an acknowledged build happened
  uint64_t version = 0;  // makes every written value distinct
  int cuts_in_a_build = 0, cuts_in_a_write = 0, cuts_in_open = 0, whole = 0, none = 0;
  int cuts_in_maintenance = 0;
  uint64_t splits = 0, merges = 0;
  constexpr int kCycles = 60;
  for (int cycle = 0; cycle < kCycles; ++cycle) {
    SCOPED_TRACE(absl::StrCat("cycle ", cycle));
    std::optional<Change> interrupted;  // the write the cut hit, if it was a write
    if (cycle > 0 && rng() % 4 == 0) {
      ASSERT_NO_FATAL_FAILURE(
          CutWhileOpening(&env, tmp.path(), options, rng() % 24, &cuts_in_open));
    }
    {
      absl::StatusOr<std::unique_ptr<Catalog>> cat = Catalog::Open(tmp.path(), options);
      ASSERT_TRUE(cat.ok()) << cat.status();
      std::shared_ptr<Collection> c;
      absl::StatusOr<std::shared_ptr<Collection>> opened = TheCollection(**cat, cycle == 0);
      ASSERT_TRUE(opened.ok()) << opened.status();
      c = *opened;
      const CollectionStats stats = c->Stats();
      ASSERT_NE(stats.state, CollectionStats::State::kDamaged) << stats.damage;
      if (built) {
        EXPECT_EQ(stats.state, CollectionStats::State::kIndexed);
      }
      // No cut yet in this cycle: what the last cycle's cut left.
      ASSERT_EQ(Describe(Read(*c)), Describe(model));
      // Searches answer with live points at their true distances (with a budget that reads
      // enough of the postings maintenance keeps short here to find 10).
      std::vector<uint8_t> q(kDim);
      for (uint8_t& x : q) x = static_cast<uint8_t>(rng());
      std::vector<Hit> hits;
      SearchParams wide;
      wide.max_postings = 256;
      ASSERT_TRUE(c->Search(VectorView{ElementType::kUint8, q}, 10, wide, &hits).ok());
      EXPECT_EQ(hits.size(), std::min<size_t>(10, model.size()));
      for (const Hit& h : hits) {
        auto it = model.find(h.id);
        ASSERT_NE(it, model.end()) << "hit " << h.id << " is not a live point";
        EXPECT_FLOAT_EQ(h.distance, L2(q, it->second.vector)) << "hit " << h.id;
      }
      // Every live point is in a posting a search reads: found by itself over every posting.
      SearchParams every;
      every.max_postings = 1000000;
      every.prune_ratio = 0;
      for (const auto& [id, p] : model) {
        ASSERT_TRUE(c->Search(VectorView{ElementType::kUint8, p.vector}, 1, every, &hits).ok());
        ASSERT_FALSE(hits.empty());
        ASSERT_EQ(hits[0].distance, 0.0f) << "point " << id << " is in no posting";
      }

      // The cut: somewhere in this cycle's writes, or (when they take fewer calls) after them.
      // (A write takes a few calls, a build a few hundred: half the cuts fall early.)
      env.PowerCutAfter(static_cast<int64_t>(rng() % 2 == 0 ? rng() % 16 : rng() % 400));
      for (int op = 0; op < 8 && !env.power_is_cut(); ++op) {
        const uint64_t kind = rng() % 100;
        if (kind < 15 && !model.empty()) {
          const absl::Status s = c->BuildIndex();
          if (s.ok()) {
            built = true;
          } else {
            ASSERT_TRUE(env.power_is_cut()) << s;
            ++cuts_in_a_build;
          }
          continue;
        }
        if (kind < 27) {
          // Splits, merges and rewrites of the postings the writes made too long or short, by
          // two threads side by side (so two steps may be unsynced at once); a cut leaves each
          // whole or not begun, and changes no point.
          const CollectionStats before = c->Stats();
          absl::Status other;
          std::thread second([&] { other = c->RunMaintenance(); });
          const absl::Status s = c->RunMaintenance();
          second.join();
          for (const absl::Status& r : {s, other}) {
            ASSERT_TRUE(r.ok() || env.power_is_cut()) << r;
          }
          if (!s.ok() || !other.ok()) ++cuts_in_maintenance;
          const CollectionStats after = c->Stats();
          splits += after.splits - before.splits;
          merges += after.merges - before.merges;
          continue;
        }
        Change change;
        std::vector<PointInput> rows;
        std::vector<uint64_t> gone;
        const bool upsert = kind < 80 || model.empty();
        const int n = 1 + static_cast<int>(rng() % (upsert ? 24 : 8));
        for (int i = 0; i < n; ++i) {
          const uint64_t id = rng() % kIds;
          if (change.count(id) != 0) continue;
          if (upsert) {
            Point p{std::vector<uint8_t>(kDim), absl::StrCat("v", ++version)};
            for (uint8_t& x : p.vector) x = static_cast<uint8_t>(rng());
            change[id] = p;
          } else {
            change[id] = std::nullopt;
            gone.push_back(id);
          }
        }
        for (const auto& [id, p] : change) {
          if (p.has_value()) rows.push_back({id, p->vector, p->payload});
        }
        absl::Status s;
        if (upsert) {
          std::vector<RowError> errors;
          uint64_t upserted = 0;
          s = c->Upsert(rows, &errors, &upserted);
          if (s.ok()) {
            ASSERT_TRUE(errors.empty());
          }
        } else {
          uint64_t deleted = 0;
          s = c->Delete(gone, &deleted);
        }
        if (s.ok()) {
          model = Applied(std::move(model), change);
        } else {
          ASSERT_TRUE(env.power_is_cut()) << s;
          interrupted = std::move(change);
          ++cuts_in_a_write;
        }
      }
      if (!env.power_is_cut()) {
        // Every call went through: the view before the restart agrees with the model too.
        ASSERT_EQ(Describe(Read(*c)), Describe(model));
        // The machine stops: later calls (closing RocksDB) fail as the cut ones did.
        env.PowerCutAfter(0);
      }
    }
    ASSERT_TRUE(env.DropUnsyncedData().ok());
    if (interrupted.has_value()) {
      // All or nothing: find out which from the reopened collection, then hold it to that.
      auto cat = Catalog::Open(tmp.path(), options);
      ASSERT_TRUE(cat.ok()) << cat.status();
      const State now = Read(**(*cat)->Find("c"));
      const State with = Applied(model, *interrupted);
      if (now == with) {
        model = with;
        ++whole;
      } else {
        ++none;
      }
    }
  }
  {  // The last cycle's cut, checked as the others were.
    auto cat = Catalog::Open(tmp.path(), options);
    ASSERT_TRUE(cat.ok()) << cat.status();
    EXPECT_EQ(Describe(Read(**(*cat)->Find("c"))), Describe(model));
  }
  // The cuts fell in every kind of step (the seed is fixed: these only guard the test's reach).
  EXPECT_GT(cuts_in_a_write, 5);
  EXPECT_GT(cuts_in_a_build, 3);
  EXPECT_GT(cuts_in_open, 3);
  EXPECT_GT(cuts_in_maintenance, 1);
  EXPECT_GT(splits, 10u);
  EXPECT_TRUE(built);
  using Op = FaultInjectionEnv::Op;
  std::printf(
      "cuts: %d in writes (%d kept whole, %d dropped whole), %d in builds, %d in opens, %d in "
      "posting maintenance (%lu splits, %lu merges done); calls: %ld creates, %ld appends, %ld "
      "syncs, %ld renames, %ld directory syncs, %ld removes\n",
      cuts_in_a_write, whole, none, cuts_in_a_build, cuts_in_open, cuts_in_maintenance,
      static_cast<unsigned long>(splits), static_cast<unsigned long>(merges),
      env.calls(Op::kCreate), env.calls(Op::kAppend), env.calls(Op::kSync), env.calls(Op::kRename),
      env.calls(Op::kSyncDir), env.calls(Op::kRemove));
}

// Cuts among collections made, written, built and dropped side by side: after every cut the
// catalog opens, lists exactly the collections the acknowledged calls left (a create or drop the
// cut interrupted is there whole or not at all), and each holds exactly its acknowledged points.
// A dropped collection's records go, and nothing of it comes back in a later collection (ids are
// never reused).
TEST(PowerLoss, CollectionDropsAreWholeAcrossCuts) {
  testing::TempDir tmp;
  FaultInjectionEnv env;
  const CollectionOptions options = OnTheSimulator(&env);
  std::mt19937_64 rng(20261206);
  std::map<std::string, State> model;  // acknowledged
  std::set<std::string> with_tenant;   // collections whose tenant "t" was acknowledged
  const std::vector<std::string> tenant_t = {"t"};
  int next_name = 0, drops = 0, cut_drops = 0, cut_purges = 0, cut_creates = 0, cut_writes = 0;
  int cuts_in_open = 0, tenant_drops = 0;
  uint64_t version = 0;
  const auto listed = [](const Catalog& cat) {
    std::set<std::string> out;
    for (const auto& c : cat.List()) out.insert(c->config().name);
    return absl::StrJoin(out, ",");
  };
  const auto expected = [&] {
    std::set<std::string> out;
    for (const auto& [name, state] : model) out.insert(name);
    return absl::StrJoin(out, ",");
  };
  // The call a cut interrupted: a create, a drop, or an upsert (`change`) of collection `name`.
  struct Interrupted {
    enum class Kind { kCreate, kDrop, kUpsert } kind;
    std::string name;
    Change change;
  };
  constexpr int kCycles = 40;
  for (int cycle = 0; cycle < kCycles; ++cycle) {
    SCOPED_TRACE(absl::StrCat("cycle ", cycle));
    std::optional<Interrupted> interrupted;
    if (cycle > 0 && rng() % 4 == 0) {  // (a purge a cut left is finished there)
      ASSERT_NO_FATAL_FAILURE(
          CutWhileOpening(&env, tmp.path(), options, rng() % 40, &cuts_in_open));
    }
    {
      absl::StatusOr<std::unique_ptr<Catalog>> cat = Catalog::Open(tmp.path(), options);
      ASSERT_TRUE(cat.ok()) << cat.status();
      (*cat)->WaitForPurges();  // (the purges of the drops a cut left run in the background)
      ASSERT_EQ(listed(**cat), expected());
      for (const auto& [name, state] : model) {
        std::shared_ptr<Collection> c = *(*cat)->Find(name);
        ASSERT_NE(c->Stats().state, CollectionStats::State::kDamaged) << name;
        ASSERT_EQ(Describe(Read(*c)), Describe(state)) << name;
      }
      env.PowerCutAfter(static_cast<int64_t>(rng() % 2 == 0 ? rng() % 24 : rng() % 300));
      for (int op = 0; op < 10 && !env.power_is_cut(); ++op) {
        const uint64_t kind = rng() % 100;
        if (kind < 20 || model.empty()) {
          CollectionConfig cfg;
          cfg.name = absl::StrCat("c", next_name++);
          cfg.dim = kDim;
          cfg.type = ElementType::kUint8;
          cfg.build_threshold = 1000000;
          const absl::StatusOr<std::shared_ptr<Collection>> made = (*cat)->Create(cfg);
          if (made.ok()) {
            model[cfg.name] = {};
            // Most get a tenant, so that drops meet the tenants family's records too.
            if (rng() % 4 != 0) {
              const absl::Status t = (*made)->CreateTenant("t");
              if (t.ok()) {
                with_tenant.insert(cfg.name);
              } else {
                ASSERT_TRUE(env.power_is_cut()) << t;
              }
            }
          } else {
            ASSERT_TRUE(env.power_is_cut()) << made.status();
            interrupted = Interrupted{Interrupted::Kind::kCreate, cfg.name, {}};
            ++cut_creates;
          }
          continue;
        }
        auto it = model.begin();
        std::advance(it, static_cast<long>(rng() % model.size()));
        const std::string name = it->first;
        std::shared_ptr<Collection> c = *(*cat)->Find(name);
        if (kind < 35) {
          // A third of the drops are cut within their first calls (the drop's write, or the
          // purge's batches).
          if (rng() % 3 == 0) env.PowerCutAfter(static_cast<int64_t>(rng() % 5));
          const absl::Status s = (*cat)->Drop(name);
          (*cat)->WaitForPurges();  // (the cuts' count goes on through the purge, in order)
          if (s.ok()) {
            model.erase(name);
            ++drops;
            tenant_drops += with_tenant.contains(name);
            cut_purges += env.power_is_cut();  // (acknowledged; the next open finishes it)
          } else {
            ASSERT_TRUE(env.power_is_cut()) << s;
            interrupted = Interrupted{Interrupted::Kind::kDrop, name, {}};
            ++cut_drops;
          }
          continue;
        }
        if (kind < 45 && !it->second.empty()) {
          const absl::Status s = c->BuildIndex();
          ASSERT_TRUE(s.ok() || env.power_is_cut()) << s;
          continue;
        }
        if (kind < 50) {
          const absl::Status s = c->RunMaintenance();
          ASSERT_TRUE(s.ok() || env.power_is_cut()) << s;
          continue;
        }
        Change change;
        std::vector<PointInput> rows;
        const int n = 1 + static_cast<int>(rng() % 24);
        for (int i = 0; i < n; ++i) {
          const uint64_t id = rng() % kIds;
          if (change.count(id) != 0) continue;
          Point p{std::vector<uint8_t>(kDim), absl::StrCat("v", ++version)};
          for (uint8_t& x : p.vector) x = static_cast<uint8_t>(rng());
          change[id] = std::move(p);
        }
        for (const auto& [id, p] : change) {
          rows.push_back({id, p->vector, p->payload});
          if (with_tenant.contains(name) && rng() % 2 == 0) {
            rows.back().tenants = tenant_t;
            rows.back().set_tenants = true;
          }
        }
        std::vector<RowError> errors;
        uint64_t upserted = 0;
        const absl::Status s = c->Upsert(rows, &errors, &upserted);
        if (s.ok()) {
          it->second = Applied(std::move(it->second), change);
        } else {
          ASSERT_TRUE(env.power_is_cut()) << s;
          interrupted = Interrupted{Interrupted::Kind::kUpsert, name, std::move(change)};
          ++cut_writes;
        }
      }
      // The machine stops: later calls (closing RocksDB) fail as the cut ones did.
      if (!env.power_is_cut()) env.PowerCutAfter(0);
    }
    ASSERT_TRUE(env.DropUnsyncedData().ok());
    env.PowerCutAfter(-1);
    if (!interrupted.has_value()) continue;
    // All or nothing: find out which from the reopened catalog, then hold the model to that.
    absl::StatusOr<std::unique_ptr<Catalog>> cat = Catalog::Open(tmp.path(), options);
    ASSERT_TRUE(cat.ok()) << cat.status();
    (*cat)->WaitForPurges();  // (the same writes every run, for a seed that fails to replay)
    absl::StatusOr<std::shared_ptr<Collection>> found = (*cat)->Find(interrupted->name);
    switch (interrupted->kind) {
      case Interrupted::Kind::kCreate:
        if (found.ok()) model[interrupted->name] = {};
        break;
      case Interrupted::Kind::kDrop:
        if (!found.ok()) model.erase(interrupted->name);
        break;
      case Interrupted::Kind::kUpsert: {
        ASSERT_TRUE(found.ok()) << found.status();
        State& state = model[interrupted->name];
        const State with = Applied(state, interrupted->change);
        if (Read(**found) == with) state = with;
        break;
      }
    }
  }
  {
    // No record of a dropped collection is left: every record keyed by a collection id (first,
    // or after a kind letter) belongs to a listed collection, and no purge is left unfinished.
    absl::StatusOr<std::unique_ptr<Catalog>> cat = Catalog::Open(tmp.path(), options);
    ASSERT_TRUE(cat.ok()) << cat.status();
    (*cat)->WaitForPurges();
    ASSERT_EQ(listed(**cat), expected());
    std::set<uint32_t> ids;
    for (const auto& c : (*cat)->List()) ids.insert(c->config().id);
    std::map<Cf, size_t> records;
    for (Cf cf : {Cf::kVersions, Cf::kPayloads, Cf::kVectors, Cf::kPostings, Cf::kHeads, Cf::kIdMap,
                  Cf::kTenants}) {
      const size_t at = cf == Cf::kIdMap || cf == Cf::kTenants ? 1 : 0;
      ASSERT_TRUE((*cat)
                      ->store()
                      ->Scan(cf, "",
                             [&](absl::string_view key, absl::string_view) {
                               ++records[cf];
                               EXPECT_TRUE(ids.contains(ReadU32(key, at)))
                                   << "a record of dropped collection id " << ReadU32(key, at)
                                   << " in family " << CfName(cf);
                               return absl::OkStatus();
                             })
                      .ok());
    }
    size_t points = 0;
    for (const auto& [name, state] : model) points += state.size();
    EXPECT_EQ(records[Cf::kVectors], points);
    ASSERT_TRUE((*cat)
                    ->store()
                    ->Scan(Cf::kCollections, "\x01purge/",
                           [&](absl::string_view, absl::string_view) {
                             ADD_FAILURE() << "a purge left unfinished";
                             return absl::OkStatus();
                           })
                    .ok());
  }
  // The cuts fell in drops and creates (the seed is fixed: these only guard the test's reach).
  EXPECT_GT(drops, 5);
  EXPECT_GT(cut_drops + cut_purges, 3);
  EXPECT_GT(cut_creates + cut_writes, 3);
  EXPECT_GT(cuts_in_open, 3);
  EXPECT_GT(tenant_drops, 3);  // (collections with tenants' records)
  std::printf(
      "%d collections made, %d drops, cuts: %d in a drop, %d in a drop's purge, %d in a create, "
      "%d in a write, %d in an open\n",
      next_name, drops, cut_drops, cut_purges, cut_creates, cut_writes, cuts_in_open);
}

// The same cuts over tenants' views: admin upserts naming tenants, a tenant's own upserts,
// grants, revokes, deletes and tenant drops (which delete the points the tenant created and
// only it saw). After every cut each tenant's Get, Count and Search show exactly what a model
// of the acknowledged calls says it may see - no more (a leak) and no less (a loss) - and the
// interrupted call is there whole or not at all.
struct TenantPoint {
  Point point;
  std::set<std::string> tenants;
  std::string owner;  // "" = the admin
  bool operator==(const TenantPoint&) const = default;
};
using TenantState = std::map<uint64_t, TenantPoint>;
const std::vector<std::string> kTenants = {"a", "b", "c"};

// The collection as the admin's and each tenant's calls show it; checks the views agree.
TenantState ReadTenants(const Collection& c) {
  TenantState out;
  for (auto& [id, p] : Read(c)) out[id].point = std::move(p);
  std::vector<uint64_t> ids(kIds);
  for (uint64_t i = 0; i < kIds; ++i) ids[i] = i;
  for (const std::string& t : kTenants) {
    std::vector<PointOutput> found;
    std::vector<uint64_t> missing;
    const absl::Status got = c.Get(Scope{t}, ids, true, true, &found, &missing);
    if (absl::IsNotFound(got)) continue;  // dropped by a cut call, not made again yet: sees nothing
    EXPECT_TRUE(got.ok()) << got;
    for (const PointOutput& p : found) {
      auto it = out.find(p.id);
      EXPECT_NE(it, out.end()) << "tenant " << t << " sees " << p.id << ", which is gone";
      if (it == out.end()) continue;
      EXPECT_EQ(p.vector, it->second.point.vector);
      it->second.tenants.insert(t);
    }
    absl::StatusOr<uint64_t> count = c.Count(Scope{t});
    EXPECT_TRUE(count.ok());
    if (count.ok()) {
      EXPECT_EQ(*count, found.size()) << "tenant " << t;
    }
  }
  return out;
}

std::string DescribeTenants(const TenantState& s) {
  std::string out = absl::StrCat(s.size(), " points:");
  for (const auto& [id, p] : s) {
    absl::StrAppend(&out, " ", id, "=", p.point.payload, "[", absl::StrJoin(p.tenants, ","), "]");
  }
  return out;
}

// A drop whose write fails (an EIO on the log's append) leaves the collection listed at the next
// start with its files: the collection released meanwhile removes its directory only once a drop
// is durable.
TEST(PowerLoss, ADropWhoseWriteFailsKeepsTheCollectionsFiles) {
  testing::TempDir tmp;
  FaultInjectionEnv env;
  const CollectionOptions options = OnTheSimulator(&env);
  State model;
  {
    std::unique_ptr<Catalog> cat = *Catalog::Open(tmp.path(), options);
    std::shared_ptr<Collection> c = *TheCollection(*cat, /*make=*/true);
    std::mt19937_64 rng(7);
    std::vector<PointInput> rows;
    for (uint64_t id = 0; id < 200; ++id) {
      Point p{std::vector<uint8_t>(kDim), absl::StrCat("v", id)};
      for (uint8_t& x : p.vector) x = static_cast<uint8_t>(rng());
      model[id] = std::move(p);
    }
    for (const auto& [id, p] : model) rows.push_back({id, p.vector, p.payload});
    std::vector<RowError> errors;
    uint64_t upserted = 0;
    ASSERT_TRUE(c->Upsert(rows, &errors, &upserted).ok());
    ASSERT_TRUE(c->BuildIndex().ok());
    ASSERT_TRUE(cat->store()->Settle().ok());
    c.reset();
    env.FailNth(FaultInjectionEnv::Op::kAppend, 0, 1000000);  // (RocksDB then refuses writes)
    EXPECT_FALSE(cat->Drop("c").ok());
  }
  env.FailNth(FaultInjectionEnv::Op::kAppend, 0, 0);
  std::unique_ptr<Catalog> cat = *Catalog::Open(tmp.path(), options);
  absl::StatusOr<std::shared_ptr<Collection>> c = cat->Find("c");
  ASSERT_TRUE(c.ok()) << c.status();
  const CollectionStats stats = (*c)->Stats();
  EXPECT_EQ(stats.state, CollectionStats::State::kIndexed) << stats.damage;
  EXPECT_EQ(Describe(Read(**c)), Describe(model));
}

// A maintenance step's batch is synced in its commit, as a client's write is: once RunMaintenance
// returns, the steps are on disk, so a power cut right after (no client write to carry them)
// loses none of the heads they added or retired.
TEST(PowerLoss, FinishedMaintenanceStepsSurviveACutWithNoWriteAfterThem) {
  testing::TempDir tmp;
  FaultInjectionEnv env;
  const CollectionOptions options = OnTheSimulator(&env);
  std::mt19937_64 rng(5);
  const auto row = [&](uint8_t centre) {
    std::vector<uint8_t> v(kDim);
    for (uint8_t& x : v) x = static_cast<uint8_t>(centre + rng() % 16);
    return v;
  };
  CollectionStats done;
  {
    absl::StatusOr<std::unique_ptr<Catalog>> cat = Catalog::Open(tmp.path(), options);
    ASSERT_TRUE(cat.ok()) << cat.status();
    absl::StatusOr<std::shared_ptr<Collection>> c = TheCollection(**cat, /*make=*/true);
    ASSERT_TRUE(c.ok()) << c.status();
    std::vector<PointInput> points;
    std::vector<std::vector<uint8_t>> rows;
    for (uint64_t id = 0; id < kIds; ++id) rows.push_back(row(id < 200 ? 0 : 200));
    for (uint64_t id = 0; id < kIds; ++id) points.push_back({id, rows[id], {}});
    std::vector<RowError> errors;
    uint64_t upserted = 0;
    ASSERT_TRUE((*c)->Upsert(absl::MakeSpan(points).subspan(0, 200), &errors, &upserted).ok());
    ASSERT_TRUE((*c)->BuildIndex().ok());
    // The second half, far from the first: the postings it lands in grow past the limit.
    ASSERT_TRUE((*c)->Upsert(absl::MakeSpan(points).subspan(200), &errors, &upserted).ok());
    ASSERT_TRUE((*c)->RunMaintenance().ok());
    done = (*c)->Stats();
    ASSERT_GT(done.splits, 0u);
    env.PowerCutAfter(0);  // nothing more reaches the disk
  }
  ASSERT_TRUE(env.DropUnsyncedData().ok());
  env.PowerCutAfter(-1);
  absl::StatusOr<std::unique_ptr<Catalog>> cat = Catalog::Open(tmp.path(), options);
  ASSERT_TRUE(cat.ok()) << cat.status();
  absl::StatusOr<std::shared_ptr<Collection>> c = TheCollection(**cat, /*make=*/false);
  ASSERT_TRUE(c.ok()) << c.status();
  const CollectionStats after = (*c)->Stats();
  EXPECT_EQ(after.added_heads, done.added_heads);
  EXPECT_EQ(after.retired_heads, done.retired_heads);
  EXPECT_EQ((*c)->Count(), kIds);
}

TEST(PowerLoss, TenantViewsHoldExactlyAcrossCuts) {
  testing::TempDir tmp;
  FaultInjectionEnv env;
  CollectionOptions options;
  options.env = &env;
  options.build_threads = 1;
  // Flat extents up to 16 points, cell extents (over 4 cells, once a build made them) up to 400:
  // most tenants here have cell extents after the build, made once the collection holds 150
  // points.
  options.tenant_extent_bytes = 16 * (4 + kDim);
  options.cell_extent_bytes = 400 * (4 + kDim);
  options.tenant_cells = 4;
  // The flat extents' file compacted whenever it is larger than twice its live chunks: cuts
  // fall in compactions too.
  options.tenant_extent_compaction_slack_bytes = 0;
  std::mt19937_64 rng(415);
  TenantState model;  // tenants and owners are the model's own (Get shows only the tenants)
  uint64_t version = 0;
  int cuts = 0;
  bool built = false;
  const auto visible = [](const TenantState& m) {  // what ReadTenants can compare
    TenantState v = m;
    for (auto& [id, p] : v) p.owner.clear();
    return v;
  };
  for (int cycle = 0; cycle < 40; ++cycle) {
    SCOPED_TRACE(absl::StrCat("cycle ", cycle));
    std::optional<TenantState> if_whole;  // the model had the interrupted call gone through
    {
      absl::StatusOr<std::unique_ptr<Catalog>> cat = Catalog::Open(tmp.path(), options);
      ASSERT_TRUE(cat.ok()) << cat.status();
      std::shared_ptr<Collection> c;
      absl::StatusOr<std::shared_ptr<Collection>> opened = TheCollection(**cat, cycle == 0);
      ASSERT_TRUE(opened.ok()) << opened.status();
      c = *opened;
      if (cycle == 0) {
        for (const std::string& t : kTenants) ASSERT_TRUE(c->CreateTenant(t).ok());
      }
      ASSERT_EQ(DescribeTenants(ReadTenants(*c)), DescribeTenants(visible(model)));
      for (const std::string& t : kTenants) {  // a drop whose re-creation the cut stopped
        if (absl::IsNotFound(c->DescribeTenant(t).status())) {
          ASSERT_TRUE(c->CreateTenant(t).ok());
        }
      }
      // A tenant's search returns only what it may see.
      std::vector<uint8_t> q(kDim);
      for (uint8_t& x : q) x = static_cast<uint8_t>(rng());
      for (const std::string& t : kTenants) {
        std::vector<Hit> hits;
        ASSERT_TRUE(c->Search(Scope{t}, VectorView{ElementType::kUint8, q}, 10, {}, &hits).ok());
        for (const Hit& h : hits) {
          auto it = model.find(h.id);
          ASSERT_TRUE(it != model.end() && it->second.tenants.contains(t))
              << "tenant " << t << " found " << h.id;
        }
      }
      // No extent a cut left behind disagrees or fails its checks (a search would go around
      // it, so only this tells).
      ASSERT_EQ(c->Stats().extents_found_wrong, 0u);

      if (!built && c->Count() >= 150) {
        ASSERT_TRUE(c->BuildIndex().ok());  // the cells, and the cell extents
        built = true;
      }
      env.PowerCutAfter(static_cast<int64_t>(rng() % 2 == 0 ? rng() % 12 : rng() % 200));
      for (int op = 0; op < 8 && !env.power_is_cut(); ++op) {
        TenantState next = model;
        absl::Status s;
        const std::string& t = kTenants[rng() % kTenants.size()];
        const uint64_t kind = rng() % 100;
        std::vector<uint64_t> ids;
        for (int i = 0, n = 1 + static_cast<int>(rng() % 12); i < n; ++i) {
          ids.push_back(rng() % kIds);
        }
        std::sort(ids.begin(), ids.end());
        ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
        if (kind < 30) {  // the admin upserts, naming tenants
          std::vector<PointInput> rows;
          std::vector<std::vector<std::string>> names(ids.size());
          for (size_t i = 0; i < ids.size(); ++i) {
            TenantPoint p{{std::vector<uint8_t>(kDim), absl::StrCat("v", ++version)}, {}, ""};
            for (uint8_t& x : p.point.vector) x = static_cast<uint8_t>(rng());
            for (const std::string& name : kTenants) {
              if (rng() % 2 == 0) {
                names[i].push_back(name);
                p.tenants.insert(name);
              }
            }
            next[ids[i]] = p;
            rows.push_back({ids[i], next[ids[i]].point.vector, next[ids[i]].point.payload, names[i],
                            /*set_tenants=*/true});
          }
          std::vector<RowError> errors;
          uint64_t upserted = 0;
          s = c->Upsert(rows, &errors, &upserted);
          if (s.ok()) {
            ASSERT_TRUE(errors.empty()) << errors[0].message;
          }
        } else if (kind < 50) {  // a tenant upserts new points and replaces its own
          std::vector<PointInput> rows;
          for (uint64_t id : ids) {
            auto it = next.find(id);
            if (it != next.end() && it->second.owner != t) continue;  // it may not
            TenantPoint p{{std::vector<uint8_t>(kDim), absl::StrCat("v", ++version)}, {t}, t};
            for (uint8_t& x : p.point.vector) x = static_cast<uint8_t>(rng());
            if (it != next.end()) p.tenants = it->second.tenants;
            next[id] = p;
            rows.push_back({id, next[id].point.vector, next[id].point.payload});
          }
          std::vector<RowError> errors;
          uint64_t upserted = 0;
          s = c->Upsert(Scope{t}, rows, &errors, &upserted);
          if (s.ok()) {
            ASSERT_TRUE(errors.empty()) << errors[0].message;
          }
        } else if (kind < 65) {  // grant
          for (uint64_t id : ids) {
            if (next.contains(id)) next[id].tenants.insert(t);
          }
          uint64_t changed = 0;
          std::vector<uint64_t> missing;
          s = c->Grant(t, ids, &changed, &missing);
        } else if (kind < 80) {  // revoke (an owner keeps its own points in view: skip those)
          std::vector<uint64_t> revoked;
          for (uint64_t id : ids) {
            auto it = next.find(id);
            if (it == next.end() || it->second.owner == t) continue;
            it->second.tenants.erase(t);
            revoked.push_back(id);
          }
          uint64_t changed = 0;
          s = c->Revoke(t, revoked, &changed);
        } else if (kind < 92) {  // the admin deletes
          for (uint64_t id : ids) next.erase(id);
          uint64_t deleted = 0;
          s = c->Delete(ids, &deleted);
        } else {  // the tenant is dropped (its lone points deleted) and made again
          for (auto it = next.begin(); it != next.end();) {
            TenantPoint& p = it->second;
            p.tenants.erase(t);
            if (p.owner == t) {
              p.owner.clear();
              if (p.tenants.empty()) {
                it = next.erase(it);
                continue;
              }
            }
            ++it;
          }
          std::vector<uint64_t> deleted;
          s = c->DropTenant(t, /*keep_points=*/false, &deleted);
          if (s.ok()) {
            model = next;
            s = c->CreateTenant(t);
          }
        }
        if (s.ok()) {
          model = std::move(next);
        } else {
          ASSERT_TRUE(env.power_is_cut()) << s;
          // Whole or not at all - a tenant drop too (then gone: its re-creation did not run).
          if_whole = std::move(next);
          ++cuts;
        }
      }
      if (!env.power_is_cut()) {
        // Every call went through: the views before the restart agree with the model too.
        ASSERT_EQ(DescribeTenants(ReadTenants(*c)), DescribeTenants(visible(model)));
        env.PowerCutAfter(0);
      }
    }
    ASSERT_TRUE(env.DropUnsyncedData().ok());
    if (if_whole.has_value()) {
      auto cat = Catalog::Open(tmp.path(), options);
      ASSERT_TRUE(cat.ok()) << cat.status();
      if (ReadTenants(**(*cat)->Find("c")) == visible(*if_whole)) model = *if_whole;
    }
  }
  {  // The last cycle's cut, checked as the others were.
    auto cat = Catalog::Open(tmp.path(), options);
    ASSERT_TRUE(cat.ok()) << cat.status();
    EXPECT_EQ(DescribeTenants(ReadTenants(**(*cat)->Find("c"))), DescribeTenants(visible(model)));
  }
  EXPECT_GT(cuts, 10);
  std::printf("tenants: %d cuts\n", cuts);
}
}  // namespace
}  // namespace strata
