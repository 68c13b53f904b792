// Byte-level BPE against Hugging Face `tokenizers` (tests/gpu/data/bpe_cases.json, written by
// tools/make-decoder-fixtures.py): the pre-tokenizers' pieces on a tiny vocabulary everywhere, and
// SmolLM2's ids where the model has been fetched.
#include "gpu/bpe_tokenizer.h"

#include <gtest/gtest.h>

#include <fstream>

#include "nlohmann/json.hpp"
#include "tests/gpu/tiny_decoder.h"
#include "tests/gpu/tiny_model.h"

namespace strata::gpu {
namespace {

nlohmann::json Cases() {
  std::ifstream in(testing::FixturePath("bpe_cases.json"));
  return nlohmann::json::parse(in)["cases"];
}

std::unique_ptr<BpeTokenizer> Tiny(BpeTokenizer::PreTokenizer pre) {
  std::vector<int32_t> types(testing::TinyVocabulary().size(), 1);
  types[types.size() - 1] = types[types.size() - 2] = 3;
  auto t = BpeTokenizer::Create(testing::TinyVocabulary(), testing::TinyMerges(), types, pre);
  EXPECT_TRUE(t.ok()) << t.status();
  return std::move(*t);
}

TEST(BpeTokenizer, PreTokenizersSplitAsHuggingFaceDoes) {
  const std::pair<const char*, BpeTokenizer::PreTokenizer> styles[] = {
      {"gpt2", BpeTokenizer::PreTokenizer::kGpt2},
      {"smollm", BpeTokenizer::PreTokenizer::kSmolLm},
      {"qwen2", BpeTokenizer::PreTokenizer::kQwen2},
      {"llama-bpe", BpeTokenizer::PreTokenizer::kLlama3}};
  const nlohmann::json cases = Cases();
  ASSERT_GE(cases.size(), 100u);
  for (const auto& [name, style] : styles) {
    auto tok = Tiny(style);
    int mismatches = 0;
    for (const auto& c : cases) {
      const std::string text = c["text"];
      const std::vector<std::string> want = c[name];
      const std::vector<std::string> got = tok->PreTokenize(text);
      if (got != want && ++mismatches <= 3) {
        ADD_FAILURE() << name << " on '" << text << "': " << nlohmann::json(got).dump() << " vs "
                      << nlohmann::json(want).dump();
      }
    }
    EXPECT_EQ(mismatches, 0) << name;
  }
}

TEST(BpeTokenizer, MergesByRankAndRoundTrips) {
  auto tok = Tiny(BpeTokenizer::PreTokenizer::kGpt2);
  const std::vector<int32_t> ids = tok->Encode("hello wo", false);
  // "hello" is one token; " wo" merges to "Ġwo".
  ASSERT_EQ(ids.size(), 2u);
  EXPECT_EQ(tok->Decode(ids[0]), "hello");
  EXPECT_EQ(tok->Decode(ids[1]), " wo");
  for (const char* s : {"", "hello world\n\n", "naïve 東京 😀", "\xff\xfe invalid", "a'll'S"}) {
    EXPECT_EQ(tok->Decode(tok->Encode(s, false)), s) << s;
  }
}

TEST(BpeTokenizer, ControlTokensOnlyWhenAllowed) {
  auto tok = Tiny(BpeTokenizer::PreTokenizer::kSmolLm);
  const int32_t end = tok->Find("<|im_end|>");
  ASSERT_GE(end, 0);
  EXPECT_TRUE(tok->IsControl(end));
  const std::string text = "hi<|im_end|>there";
  const std::vector<int32_t> special = tok->Encode(text, true);
  EXPECT_EQ(std::count(special.begin(), special.end(), end), 1);
  const std::vector<int32_t> plain = tok->Encode(text, false);
  EXPECT_EQ(std::count(plain.begin(), plain.end(), end), 0);
  EXPECT_EQ(tok->Decode(plain), text);
}

TEST(BpeTokenizer, RefusesWhatItCannotFollow) {
  auto bad_merge = BpeTokenizer::Create(testing::TinyVocabulary(), {"x y z"}, {},
                                        BpeTokenizer::PreTokenizer::kGpt2);
  EXPECT_EQ(bad_merge.status().code(), absl::StatusCode::kInvalidArgument);
  auto no_space = BpeTokenizer::Create(testing::TinyVocabulary(), {"he"}, {},
                                       BpeTokenizer::PreTokenizer::kGpt2);
  EXPECT_EQ(no_space.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_FALSE(BpeTokenizer::Create({}, {}, {}, BpeTokenizer::PreTokenizer::kGpt2).ok());
}

TEST(BpeTokenizer, LongInputsStayLinearish) {
  auto tok = Tiny(BpeTokenizer::PreTokenizer::kGpt2);
  // One 200,000-letter piece: the heap merge keeps this well under a second.
  const std::string big(200000, 'l');
  const std::vector<int32_t> ids = tok->Encode(big, false);
  EXPECT_EQ(ids.size(), 100000u);  // "ll" pairs
}

TEST(BpeTokenizer, SmolLm2IdsMatchHuggingFace) {
  const std::string path =
      testing::RealModelFile("smollm2-135m-instruct", "SmolLM2-135M-Instruct.Q4_1.gguf");
  if (path.empty()) GTEST_SKIP() << "SmolLM2 not fetched (tools/fetch-models.sh)";
  auto file = GgufFile::Open(path);
  ASSERT_TRUE(file.ok()) << file.status();
  auto tok = BpeTokenizer::FromGguf(**file);
  ASSERT_TRUE(tok.ok()) << tok.status();
  EXPECT_EQ((*tok)->pre_tokenizer(), BpeTokenizer::PreTokenizer::kSmolLm);
  int mismatches = 0, cases = 0;
  for (const auto& c : Cases()) {
    const std::string text = c["text"];
    const std::vector<int32_t> want = c["ids"];
    const std::vector<int32_t> got = (*tok)->Encode(text, /*allow_special=*/true);
    ++cases;
    if (got != want && ++mismatches <= 3) {
      ADD_FAILURE() << "'" << text << "': " << nlohmann::json(got).dump() << " vs "
                    << nlohmann::json(want).dump();
    }
  }
  EXPECT_EQ(mismatches, 0) << "of " << cases;
}

}  // namespace
}  // namespace strata::gpu
