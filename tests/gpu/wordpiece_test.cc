#include "gpu/wordpiece.h"

#include "absl/strings/str_join.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "storage/scoped_fd.h"
#include "tests/gpu/tiny_model.h"

namespace strata::gpu {
namespace {

using ::testing::ElementsAre;
using ::testing::Not;

std::unique_ptr<WordPieceTokenizer> Small(bool lower = true) {
  auto tok = WordPieceTokenizer::FromVocab(
      {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "un", "##aff", "##able", "aff", "able",  "the",
       "cafe",  "!",     ",",     "$",     "中", "文",    "a",      "##a", "Hello", "hello"},
      lower);
  EXPECT_TRUE(tok.ok()) << tok.status();
  return std::move(tok).value();
}

std::vector<std::string> Pieces(const WordPieceTokenizer& tok, const std::string& text) {
  std::vector<std::string> out;
  for (int32_t id : tok.Tokenize(text)) out.push_back(tok.token(id));
  return out;
}

TEST(WordPiece, GreedyLongestMatchWithContinuations) {
  auto tok = Small();
  EXPECT_THAT(Pieces(*tok, "unaffable"), ElementsAre("un", "##aff", "##able"));
  EXPECT_THAT(Pieces(*tok, "the unaffable"), ElementsAre("the", "un", "##aff", "##able"));
  // No full cover: the whole word is unknown, not a partial match.
  EXPECT_THAT(Pieces(*tok, "unaffablex"), ElementsAre("[UNK]"));
}

TEST(WordPiece, NormalisesCaseAccentsWhitespaceAndControls) {
  auto tok = Small();
  EXPECT_THAT(tok->PreTokenize("  Café\tTHE\n\u00a0x\x01y "), ElementsAre("cafe", "the", "xy"));
  EXPECT_THAT(Pieces(*tok, "CAFÉ"), ElementsAre("cafe"));
  // Cased vocabularies keep case and accents.
  auto cased = Small(/*lower=*/false);
  EXPECT_THAT(cased->PreTokenize("Café Hello"), ElementsAre("Café", "Hello"));
}

TEST(WordPiece, SplitsPunctuationAndCjk) {
  auto tok = Small();
  EXPECT_THAT(tok->PreTokenize("the,cafe!$a"), ElementsAre("the", ",", "cafe", "!", "$", "a"));
  EXPECT_THAT(tok->PreTokenize("a中文a"), ElementsAre("a", "中", "文", "a"));
  EXPECT_THAT(Pieces(*tok, "中文"), ElementsAre("中", "文"));
}

TEST(WordPiece, LongWordsAreUnknown) {
  auto tok = Small();
  std::vector<std::string> want = {"a"};  // a 100-character word is still split
  for (int i = 1; i < 100; ++i) want.push_back(std::string("##a"));
  EXPECT_EQ(Pieces(*tok, std::string(100, 'a')), want);
  EXPECT_THAT(Pieces(*tok, std::string(101, 'a')), ElementsAre("[UNK]"));
}

TEST(WordPiece, EncodeAddsSpecialsAndTruncates) {
  auto tok = Small();
  EXPECT_THAT(tok->Encode("the cafe", 16), ElementsAre(2, 9, 10, 3));
  EXPECT_THAT(tok->Encode("the cafe the cafe", 4), ElementsAre(2, 9, 10, 3));
  EXPECT_THAT(tok->Encode("", 8), ElementsAre(2, 3));
}

TEST(WordPiece, PadsABatchWithMasks) {
  auto tok = Small();
  std::vector<std::vector<int32_t>> seqs = {tok->Encode("the", 8), tok->Encode("the cafe a", 8)};
  TokenBatch b = tok->Pad(seqs);
  EXPECT_EQ(b.batch, 2);
  EXPECT_EQ(b.max_length, 5);
  EXPECT_THAT(b.lengths, ElementsAre(3, 5));
  EXPECT_THAT(b.ids, ElementsAre(2, 9, 3, 0, 0, 2, 9, 10, 16, 3));
  EXPECT_THAT(b.mask, ElementsAre(1, 1, 1, 0, 0, 1, 1, 1, 1, 1));
}

TEST(WordPiece, InvalidUtf8IsDroppedNotACrash) {
  auto tok = Small();
  EXPECT_THAT(tok->PreTokenize("the\xff\xfe cafe\xc3"), ElementsAre("the", "cafe"));
}

// Blank is what the tokenizer keeps nothing of, and nothing else.
TEST(WordPiece, BlankTextIsWhatTheTokenizerKeepsNothingOf) {
  auto tok = Small();
  const std::vector<std::string> blanks = {"",
                                           " \t\r\n",
                                           "\u200b",
                                           "\ufeff \u2060\u3000",
                                           "\xff\xfe",
                                           std::string("\0 \0", 3),
                                           "\u00a0\u2028\x01",
                                           "\u0301 \u0308"};
  for (const std::string& blank : blanks) {
    EXPECT_TRUE(IsBlankText(blank)) << blank;
    EXPECT_THAT(tok->PreTokenize(blank), ElementsAre()) << blank;
  }
  for (const char* text : {"a", " \u200ba ", "\xff.", "\u4e2d", "caf\u00e9"}) {
    EXPECT_FALSE(IsBlankText(text)) << text;
    EXPECT_THAT(tok->PreTokenize(text), Not(ElementsAre())) << text;
  }
}

TEST(WordPiece, VocabularyWithoutSpecialTokensIsRefused) {
  auto tok = WordPieceTokenizer::FromVocab({"[PAD]", "a"}, true);
  EXPECT_TRUE(absl::IsInvalidArgument(tok.status()));
  EXPECT_TRUE(
      absl::IsNotFound(WordPieceTokenizer::FromVocabFile("/nonexistent/vocab.txt", true).status()));
}

// The real model's vocabulary against the ids its own tokenizer.json gives (Hugging Face
// `tokenizers`, recorded by tests/gpu/make_fixtures.py) on ~300 varied strings.
TEST(WordPiece, MatchesTheReferenceTokenizerOnTheRealVocabulary) {
  const std::string model = testing::RealModelDir("all-minilm-l6-v2");
  if (model.empty()) GTEST_SKIP() << "all-minilm-l6-v2 not fetched (run tools/fetch-models.sh)";
  auto tok = WordPieceTokenizer::FromVocabFile(model + "/vocab.txt", /*lower_case=*/true);
  ASSERT_TRUE(tok.ok()) << tok.status();
  auto text = ReadWholeFile(testing::FixturePath("wordpiece_cases.json"));
  ASSERT_TRUE(text.ok()) << text.status();
  const nlohmann::json cases = nlohmann::json::parse(*text)["cases"];
  ASSERT_GE(cases.size(), 300u);
  int mismatches = 0;
  for (const auto& c : cases) {
    const std::string s = c["text"].get<std::string>();
    const std::vector<int32_t> want = c["ids"].get<std::vector<int32_t>>();
    const std::vector<int32_t> got = (*tok)->Encode(s, 1 << 20);
    if (got != want) {
      ++mismatches;
      ADD_FAILURE() << "text: " << s << "\n  want: " << absl::StrJoin(want, " ")
                    << "\n  got:  " << absl::StrJoin(got, " ");
    }
  }
  EXPECT_EQ(mismatches, 0);
}

}  // namespace
}  // namespace strata::gpu
