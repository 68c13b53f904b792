// RagEngine with a tiny random decoder: what the passage cache keeps of an answer's passages when
// they are deleted or their collection dropped while the answer is being made.
#include "service/rag_engine.h"

#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "tests/gpu/tiny_decoder.h"
#include "tests/test_util.h"

namespace strata {
namespace {

using testing::TempDir;

class RagEngineTest : public ::testing::Test {
 protected:
  void SetUp() override {
    testing::TinyDecoderSpec spec;
    spec.context = 2048;
    ASSERT_TRUE(testing::WriteTinyDecoder(spec, tmp_.File("tiny.gguf")).ok());
    RagOptions o;
    o.decoder_path = tmp_.File("tiny.gguf");
    auto engine = RagEngine::Open(o);
    ASSERT_TRUE(engine.ok()) << engine.status();
    engine_ = std::move(*engine);
  }

  // Answers a question from two passages of collection "c", with the cache's epoch as read
  // `epoch` (before the passages were retrieved).
  absl::Status Ask(uint64_t epoch) {
    RagRequest r;
    r.collection = "c";
    r.question = "what do cats like";
    r.passages = {{1, "cats like mats and naps"}, {2, "disks hold caches of pages"}};
    r.max_tokens = 2;
    r.cache_epoch = epoch;
    RagReport report;
    return engine_->Answer(
        r, [](const std::string&) { return true; }, [] { return false; }, &report);
  }

  TempDir tmp_;
  std::unique_ptr<RagEngine> engine_;
};

TEST_F(RagEngineTest, AnAnswersPassagesAreCached) {
  ASSERT_TRUE(Ask(engine_->cache().epoch()).ok());
  EXPECT_EQ(engine_->cache().stats().ram_entries, 2u);
}

// The collection dropped (or a passage deleted) after retrieval read the passages, before the
// answer made their entries: the answer goes on, and nothing of them is kept.
TEST_F(RagEngineTest, PassagesGoneSinceRetrievalAreNotKept) {
  const uint64_t before = engine_->cache().epoch();
  engine_->cache().InvalidateCollection("c");
  ASSERT_TRUE(Ask(before).ok());
  EXPECT_EQ(engine_->cache().stats().ram_entries, 0u);

  const uint64_t again = engine_->cache().epoch();
  const uint64_t deleted[] = {2};
  engine_->cache().Invalidate("c", deleted);
  ASSERT_TRUE(Ask(again).ok());
  EXPECT_EQ(engine_->cache().stats().ram_entries, 1u);  // passage 1's alone
}

// Precompute likewise.
TEST_F(RagEngineTest, PrecomputedPassagesGoneSinceTheyWereReadAreNotKept) {
  const uint64_t before = engine_->cache().epoch();
  const uint64_t deleted[] = {1};
  engine_->cache().Invalidate("c", deleted);
  PrecomputeReport report;
  ASSERT_TRUE(engine_
                  ->Precompute(
                      "c", {{1, "cats like mats and naps"}, {2, "disks hold pages"}},
                      gpu::KvFormat::kInt8, before, [] { return false; }, &report)
                  .ok());
  EXPECT_EQ(report.computed, 2u);
  EXPECT_EQ(report.evictions, 0u);  // (refused as stale: not a full cache)
  EXPECT_EQ(report.stale, 1u);      // and said so
  EXPECT_EQ(engine_->cache().stats().ram_entries, 1u);
}

}  // namespace
}  // namespace strata
