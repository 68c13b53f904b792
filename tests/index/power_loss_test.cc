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
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
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

TEST(PowerLoss, EveryAcknowledgedWriteSurvivesACutAtAnyPoint) {
  testing::TempDir tmp;
  FaultInjectionEnv env;
  CollectionOptions options;
  options.env = &env;
  options.build_threads = 1;
  std::mt19937_64 rng(20261204);
  State model;           // what was acknowledged
  bool built = false;    // an acknowledged build happened
  uint64_t version = 0;  // makes every written value distinct
  int cuts_in_a_build = 0, cuts_in_a_write = 0, cuts_in_open = 0, whole = 0, none = 0;
  constexpr int kCycles = 60;
  for (int cycle = 0; cycle < kCycles; ++cycle) {
    SCOPED_TRACE(absl::StrCat("cycle ", cycle));
    std::optional<Change> interrupted;  // the write the cut hit, if it was a write
    if (cycle > 0 && rng() % 4 == 0) {
      // A cut while the catalog opens (RocksDB's recovery writes, leftovers removed): the next
      // open must still find everything.
      env.PowerCutAfter(static_cast<int64_t>(rng() % 24));
      {
        absl::StatusOr<std::unique_ptr<Catalog>> cut = Catalog::Open(tmp.path(), options);
        if (!cut.ok()) {
          ASSERT_TRUE(env.power_is_cut()) << cut.status();
        }
      }
      if (env.power_is_cut()) {
        ++cuts_in_open;
        ASSERT_TRUE(env.DropUnsyncedData().ok());
      }
      env.PowerCutAfter(-1);
    }
    {
      absl::StatusOr<std::unique_ptr<Catalog>> cat = Catalog::Open(tmp.path(), options);
      ASSERT_TRUE(cat.ok()) << cat.status();
      std::shared_ptr<Collection> c;
      if (cycle == 0) {
        CollectionConfig cfg;
        cfg.name = "c";
        cfg.dim = kDim;
        cfg.type = ElementType::kUint8;
        cfg.build_threshold = 1000000;
        auto made = (*cat)->Create(cfg);
        ASSERT_TRUE(made.ok()) << made.status();
        c = *made;
      } else {
        auto found = (*cat)->Find("c");
        ASSERT_TRUE(found.ok()) << found.status();
        c = *found;
      }
      const CollectionStats stats = c->Stats();
      ASSERT_NE(stats.state, CollectionStats::State::kDamaged) << stats.damage;
      if (built) {
        EXPECT_EQ(stats.state, CollectionStats::State::kIndexed);
      }
      // No cut yet in this cycle: what the last cycle's cut left.
      ASSERT_EQ(Describe(Read(*c)), Describe(model));
      // Searches answer with live points at their true distances.
      std::vector<uint8_t> q(kDim);
      for (uint8_t& x : q) x = static_cast<uint8_t>(rng());
      std::vector<Hit> hits;
      ASSERT_TRUE(c->Search(VectorView{ElementType::kUint8, q}, 10, {}, &hits).ok());
      EXPECT_EQ(hits.size(), std::min<size_t>(10, model.size()));
      for (const Hit& h : hits) {
        auto it = model.find(h.id);
        ASSERT_NE(it, model.end()) << "hit " << h.id << " is not a live point";
        EXPECT_FLOAT_EQ(h.distance, L2(q, it->second.vector)) << "hit " << h.id;
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
        Change change;
        std::vector<PointInput> rows;
        std::vector<uint64_t> gone;
        const bool upsert = kind < 75 || model.empty();
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
      // The machine stops: later calls (closing RocksDB) fail as the cut ones did.
      if (!env.power_is_cut()) env.PowerCutAfter(0);
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
  // The cuts fell in every kind of step (the seed is fixed: these only guard the test's reach).
  EXPECT_GT(cuts_in_a_write, 5);
  EXPECT_GT(cuts_in_a_build, 3);
  EXPECT_GT(cuts_in_open, 3);
  EXPECT_TRUE(built);
  using Op = FaultInjectionEnv::Op;
  std::printf(
      "cuts: %d in writes (%d kept whole, %d dropped whole), %d in builds, %d in opens; calls: "
      "%ld creates, "
      "%ld appends, %ld syncs, %ld renames, %ld directory syncs, %ld removes\n",
      cuts_in_a_write, whole, none, cuts_in_a_build, cuts_in_open, env.calls(Op::kCreate),
      env.calls(Op::kAppend), env.calls(Op::kSync), env.calls(Op::kRename), env.calls(Op::kSyncDir),
      env.calls(Op::kRemove));
}

}  // namespace
}  // namespace strata
