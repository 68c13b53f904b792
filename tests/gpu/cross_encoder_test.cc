#include "gpu/cross_encoder.h"

#include <cmath>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "storage/scoped_fd.h"
#include "tests/gpu/tiny_model.h"
#include "tests/test_util.h"

namespace strata::gpu {
namespace {

using ::testing::HasSubstr;

class TinyCrossEncoder : public ::testing::Test {
 protected:
  void SetUp() override {
    spec_.classifier = true;
    ASSERT_TRUE(testing::WriteTinyBert(dir_.path(), spec_, &weights_).ok());
  }
  EncoderOptions Cpu() const {
    EncoderOptions o;
    o.backend = BackendChoice::kCpu;
    o.matmul = MatmulPrecision::kNative;  // f32 products: the reference is exact
    return o;
  }
  testing::TinyBertSpec spec_;
  testing::TinyWeights weights_;
  testing::TempDir dir_;
};

TEST_F(TinyCrossEncoder, ScoresMatchTheReferenceForward) {
  auto ce = CrossEncoder::Open(dir_.path(), Cpu());
  ASSERT_TRUE(ce.ok()) << ce.status();
  const std::string question = "where did the cat sit?";
  const std::vector<absl::string_view> passages = {"the cat sat on the mat.", "vector search", "",
                                                   "index the data base, query it", "unable"};
  RerankStats stats;
  auto scores = (*ce)->Score(question, passages, &stats);
  ASSERT_TRUE(scores.ok()) << scores.status();
  ASSERT_EQ(scores->size(), passages.size());
  const Encoder& enc = (*ce)->encoder();
  std::vector<double> want;
  for (size_t i = 0; i < passages.size(); ++i) {
    const std::vector<int32_t> ids = enc.TokenizePair(question, passages[i]);
    want.push_back(testing::ReferenceCrossScore(spec_, weights_, ids, enc.config().vocab_size));
    EXPECT_NEAR((*scores)[i], want.back(), 1e-4 * std::max(1.0, std::abs(want.back()))) << i;
  }
  // The scores tell the passages apart (a model that ignored the second text would not).
  EXPECT_NE(want[0], want[1]);
  EXPECT_EQ(stats.pairs, 5);
  EXPECT_EQ(stats.truncated, 0);
}

TEST_F(TinyCrossEncoder, PairsAreTheSecondTextsTypeAndCutLongestFirst) {
  auto ce = CrossEncoder::Open(dir_.path(), Cpu());
  ASSERT_TRUE(ce.ok()) << ce.status();
  const Encoder& enc = (*ce)->encoder();
  const int v = enc.config().vocab_size;
  const std::vector<int32_t> ids = enc.TokenizePair("the cat", "on");
  const std::vector<int32_t> a = enc.tokenizer().Tokenize("the cat");
  const std::vector<int32_t> b = enc.tokenizer().Tokenize("on");
  ASSERT_EQ(ids.size(), a.size() + b.size() + 3);
  EXPECT_EQ(ids.front(), enc.tokenizer().cls_id());
  EXPECT_EQ(ids[a.size() + 1], enc.tokenizer().sep_id());  // first segment: type 0
  EXPECT_EQ(ids[a.size() + 2], b[0] + v);                  // second: type 1
  EXPECT_EQ(ids.back(), enc.tokenizer().sep_id() + v);

  // Over max_length (64 tokens), the longer text loses tokens first.
  std::string long_passage;
  for (int i = 0; i < 200; ++i) long_passage += "cat ";
  bool cut = false;
  const std::vector<int32_t> long_ids = enc.TokenizePair("the cat sat", long_passage, &cut);
  EXPECT_TRUE(cut);
  EXPECT_EQ(long_ids.size(), static_cast<size_t>(enc.max_length()));
  EXPECT_EQ(long_ids[4], enc.tokenizer().sep_id());  // the question kept whole: 3 pieces
  auto scores = (*ce)->Score("the cat sat", {absl::string_view(long_passage)});
  ASSERT_TRUE(scores.ok()) << scores.status();
  EXPECT_NEAR((*scores)[0], testing::ReferenceCrossScore(spec_, weights_, long_ids, v), 1e-3);
}

TEST(CrossEncoder, RefusesModelsThatAreNotOneOutputClassifiers) {
  testing::TempDir dir;
  testing::TinyBertSpec spec;  // a sentence encoder (BertModel)
  testing::TinyWeights w;
  ASSERT_TRUE(testing::WriteTinyBert(dir.path(), spec, &w).ok());
  EncoderOptions o;
  o.backend = BackendChoice::kCpu;
  auto ce = CrossEncoder::Open(dir.path(), o);
  ASSERT_FALSE(ce.ok());
  EXPECT_EQ(ce.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(ce.status().message(), HasSubstr("BertForSequenceClassification"));

  // Two labels (a classifier, but not a scorer).
  spec.classifier = true;
  ASSERT_TRUE(testing::WriteTinyBert(dir.path(), spec, &w).ok());
  auto text = ReadWholeFile(dir.path() + "/config.json");
  ASSERT_TRUE(text.ok());
  std::string config = *text;
  config.replace(config.find("\"LABEL_0\""), 9, "\"LABEL_0\", \"1\": \"LABEL_1\"");
  ASSERT_TRUE(WriteFileAtomic(dir.path() + "/config.json", config).ok());
  ce = CrossEncoder::Open(dir.path(), o);
  ASSERT_FALSE(ce.ok());
  EXPECT_THAT(ce.status().message(), HasSubstr("2 outputs"));

  // A missing head tensor is named.
  testing::TinyBertSpec no_head;
  no_head.classifier = true;
  no_head.omit = {"classifier.weight"};
  testing::TempDir dir2;
  ASSERT_TRUE(testing::WriteTinyBert(dir2.path(), no_head, &w).ok());
  ce = CrossEncoder::Open(dir2.path(), o);
  ASSERT_FALSE(ce.ok());
  EXPECT_THAT(ce.status().message(), HasSubstr("classifier.weight"));
}

}  // namespace
}  // namespace strata::gpu
