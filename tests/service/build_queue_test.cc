#include "service/build_queue.h"

#include <chrono>
#include <thread>

#include "gtest/gtest.h"
#include "index/catalog.h"
#include "storage/fault_injection_env.h"
#include "tests/test_util.h"
#include "tools/synthetic.h"

namespace strata {
namespace {

using testing::TempDir;

std::shared_ptr<Collection> Filled(Catalog* cat, const std::string& name, uint64_t n) {
  SyntheticOptions o;
  o.seed = 5;
  const VectorSet base = SyntheticGenerator::Create(o)->Generate(0, n);
  CollectionConfig cfg;
  cfg.name = name;
  cfg.dim = base.dim;
  cfg.type = base.type;
  cfg.build_threshold = 1000000;
  std::shared_ptr<Collection> c = *cat->Create(cfg);
  std::vector<PointInput> rows;
  for (uint64_t i = 0; i < n; ++i) rows.push_back({i, {base.row(i), base.row_bytes()}, {}});
  std::vector<RowError> errors;
  uint64_t upserted = 0;
  EXPECT_TRUE(c->Upsert(rows, &errors, &upserted).ok());
  return c;
}

// A catalog whose file operations go through `env` (faults on demand).
class BuildQueueTest : public ::testing::Test {
 protected:
  CollectionOptions WithEnv() {
    CollectionOptions o;
    o.env = &env;
    return o;
  }
  TempDir tmp;
  FaultInjectionEnv env;
  std::unique_ptr<Catalog> cat = *Catalog::Open(tmp.path(), WithEnv());
};

// Stopping the queue (a server stopping) stops the build under way instead of waiting it out: the
// build is held in its postings file's sync, the queue told to stop, the sync let go; the build
// then ends Cancelled before its manifest, and says so.
TEST_F(BuildQueueTest, StopEndsTheBuildUnderWay) {
  std::shared_ptr<Collection> c = Filled(cat.get(), "c", 3000);
  std::shared_ptr<Collection> other = Filled(cat.get(), "d", 10);
  BuildQueue queue;
  env.HoldSyncs("postings.dat");
  const uint64_t id = queue.Schedule(c, /*requested=*/true);
  ASSERT_GT(id, 0u);
  env.AwaitHeldSyncs(1);
  std::thread stopper([&] { queue.Stop(); });
  // Stop has begun once the queue takes no more builds (it told the running one in that step).
  while (queue.Schedule(other, /*requested=*/true) != 0) std::this_thread::yield();
  env.ReleaseSyncs();
  stopper.join();
  const std::optional<BuildStatus> st = queue.Latest(c->config().uid);
  ASSERT_TRUE(st.has_value());
  EXPECT_EQ(st->state, BuildStatus::State::kFailed);
  EXPECT_NE(st->error.find("was stopped"), std::string::npos) << st->error;
  EXPECT_EQ(c->Stats().state, CollectionStats::State::kFlat);
  EXPECT_EQ(c->Stats().indexed_vectors, 0u);
}

// A build that fails says how, as a call would (the status code beside the message): a disk with
// no room for the new postings file is RESOURCE_EXHAUSTED, which a client tells from a
// collection's state (FAILED_PRECONDITION) or a stopped server.
TEST_F(BuildQueueTest, AFailedBuildKeepsItsStatusCode) {
  std::shared_ptr<Collection> c = Filled(cat.get(), "c", 3000);
  env.SetDiskFull(true, "postings.dat");
  BuildQueue queue;
  // Build `id`'s status once it is over (a hang guard of a minute, far past its time).
  const auto ended = [&](uint64_t id) -> BuildStatus {
    for (int i = 0; i < 60000; ++i) {
      const std::optional<BuildStatus> st = queue.Latest(c->config().uid);
      if (st.has_value() && st->id == id &&
          (st->state == BuildStatus::State::kDone || st->state == BuildStatus::State::kFailed)) {
        return *st;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    ADD_FAILURE() << "build " << id << " did not end";
    return {};
  };
  const uint64_t id = queue.Schedule(c, /*requested=*/true);
  ASSERT_GT(id, 0u);
  BuildStatus st = ended(id);
  EXPECT_EQ(st.state, BuildStatus::State::kFailed);
  EXPECT_EQ(st.error_code, absl::StatusCode::kResourceExhausted) << st.error;
  EXPECT_EQ(c->Stats().state, CollectionStats::State::kFlat);

  // With room again, the next build is done and its status has no code left from the last.
  env.SetDiskFull(false);
  const uint64_t next = queue.Schedule(c, /*requested=*/true);
  ASSERT_GT(next, id);
  st = ended(next);
  EXPECT_EQ(st.state, BuildStatus::State::kDone) << st.error;
  EXPECT_EQ(st.error_code, absl::StatusCode::kOk);
}

}  // namespace
}  // namespace strata
