// A collection's readers and writers do not wait for each other's disk: a write waiting on its
// sync stalls no search, a search waiting on its reads stalls no write.
#include <atomic>
#include <chrono>
#include <future>
#include <mutex>
#include <thread>

#include "base/mutex.h"
#include "gtest/gtest.h"
#include "index/catalog.h"
#include "index/collection.h"
#include "storage/block_reader.h"
#include "storage/fault_injection_env.h"
#include "tests/index/collection_test_util.h"
#include "tests/test_util.h"

namespace strata {
namespace {

using collection_testing::Data;
using collection_testing::Make;
using collection_testing::NewCollection;
using collection_testing::UpsertRows;
using testing::TempDir;

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

// A Get reading the store stalls no writer: its reads run with no lock held, so writes made
// meanwhile are acknowledged (before, a Get of many cold ids held the lock through its reads, and
// a writer waiting for it held back every later reader). What it returns is one moment's: the
// points live and in the scope when it checks them, with their vectors as they were then - a
// point deleted before the Get and written again while it reads comes back whole, and a tenant
// never receives what another tenant's point held before the admin gave it the id.
TEST(Collection, AGetReadingTheStoreStallsNoWriter) {
  TempDir tmp;
  CollectionOptions options;
  std::mutex gate_mu;  // held by the test while it wants a Get stopped between its reads
  std::atomic<int> gate_step = 0;
  std::promise<void> get_waiting;
  options.test_get_between_reads = [&](int step) {
    int want = step;
    if (!gate_step.compare_exchange_strong(want, 0)) return;
    get_waiting.set_value();
    std::lock_guard<std::mutex> wait(gate_mu);
  };
  Data d = Make(300, 1);
  auto cat = *Catalog::Open(tmp.path(), options);
  auto c = NewCollection(cat.get(), d.base.dim, 1000000);
  UpsertRows(c.get(), d.base, 0, 300);
  for (const char* t : {"t", "u"}) ASSERT_TRUE(c->CreateTenant(t).ok());
  const uint64_t seen[] = {1, 2, 3};
  uint64_t changed = 0;
  std::vector<uint64_t> absent;
  ASSERT_TRUE(c->Grant("t", seen, &changed, &absent).ok());
  const auto row = [&](uint64_t i) {
    return std::vector<uint8_t>(d.base.row(i), d.base.row(i) + d.base.row_bytes());
  };
  const auto upsert = [&](const Scope& scope, uint64_t id, const std::vector<uint8_t>& v,
                          const std::vector<std::string>& tenants) {
    PointInput p{id, v, {}};
    p.tenants = tenants;
    p.set_tenants = !tenants.empty();
    std::vector<RowError> errors;
    uint64_t upserted = 0;
    EXPECT_TRUE(c->Upsert(scope, {&p, 1}, &errors, &upserted).ok());
    EXPECT_EQ(upserted, 1u);
  };
  const auto get_while = [&](const Scope& scope, int step, std::function<void()> meanwhile,
                             std::vector<PointOutput>* found, std::vector<uint64_t>* missing) {
    std::unique_lock<std::mutex> hold(gate_mu);
    get_waiting = std::promise<void>();
    std::future<void> waiting = get_waiting.get_future();
    gate_step = step;
    std::thread getter([&] {
      const uint64_t ids[] = {1, 2, 3, 4, 5000, 6000};
      EXPECT_TRUE(c->Get(scope, ids, true, false, found, missing).ok());
    });
    bool done = waiting.wait_for(std::chrono::minutes(2)) == std::future_status::ready;
    EXPECT_TRUE(done) << "the Get never reached step " << step;
    if (done) {
      std::future<void> writes = std::async(std::launch::async, meanwhile);
      done = writes.wait_for(std::chrono::minutes(2)) == std::future_status::ready;
      hold.unlock();  // either way, so that the test ends
      writes.wait();
    } else {
      hold.unlock();
    }
    getter.join();
    return done;
  };
  std::vector<PointOutput> found;
  std::vector<uint64_t> missing;
  // Stopped after reading the id map: 2 deleted, 1 replaced, 4 (deleted before) written again
  // and 5000 made, all meanwhile.
  const uint64_t four[] = {4};
  uint64_t deleted = 0;
  ASSERT_TRUE(c->Delete(four, &deleted).ok());
  EXPECT_TRUE(get_while(
      Scope{}, 1,
      [&] {
        const uint64_t gone[] = {2};
        EXPECT_TRUE(c->Delete(gone, &deleted).ok());
        upsert(Scope{}, 1, row(200), {});
        upsert(Scope{}, 4, row(201), {});
        upsert(Scope{}, 5000, row(202), {});
      },
      &found, &missing))
      << "a write waited for a Get's reads";
  ASSERT_EQ(found.size(), 3u);
  EXPECT_EQ(found[0].id, 1u);
  EXPECT_EQ(found[0].vector, row(200));  // as when checked
  EXPECT_EQ(found[1].id, 3u);
  EXPECT_EQ(found[2].id, 4u);
  EXPECT_EQ(found[2].vector, row(201));
  EXPECT_EQ(missing, (std::vector<uint64_t>{2, 5000, 6000}));  // 5000: not in the id map when read
  // Stopped before reading the vectors: what is written then is not seen, whoever writes it.
  EXPECT_TRUE(get_while(
      Scope{}, 2, [&] { upsert(Scope{}, 1, row(210), {}); }, &found, &missing))
      << "a write waited for a Get's reads";
  ASSERT_FALSE(found.empty());
  EXPECT_EQ(found[0].vector, row(200));
  // A tenant's Get: a revoke meanwhile is seen; and id 6000, which tenant u created before the
  // admin gave it to t meanwhile, comes back with the admin's vector, never u's.
  upsert(Scope{"u"}, 6000, row(220), {});
  EXPECT_TRUE(get_while(
      Scope{"t"}, 1,
      [&] {
        const uint64_t take[] = {2, 3};
        EXPECT_TRUE(c->Revoke("t", take, &changed).ok());
        upsert(Scope{}, 6000, row(230), {"t"});
      },
      &found, &missing))
      << "a revoke waited for a Get's reads";
  ASSERT_EQ(found.size(), 2u);
  EXPECT_EQ(found[0].id, 1u);
  EXPECT_EQ(found[1].id, 6000u);
  EXPECT_EQ(found[1].vector, row(230));
  EXPECT_EQ(missing, (std::vector<uint64_t>{2, 3, 4, 5000}));
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
                                    std::vector<uint64_t> deleted;
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
                                    std::vector<uint64_t> deleted;
                                    EXPECT_TRUE(c->DropTenant("b", true, &deleted).ok());
                                    EXPECT_TRUE(c->CreateTenant("b").ok());
                                  }));
  EXPECT_TRUE(s.ok()) << s;
  EXPECT_TRUE(hits.empty()) << hits.size() << " hits for a tenant that sees nothing, first "
                            << hits[0].id;
}

}  // namespace
}  // namespace strata
