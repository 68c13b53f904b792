// The lexical index's analysis and BM25 scoring, against scores worked out here by hand.
#include <algorithm>
#include <cmath>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "gtest/gtest.h"
#include "index/bm25_index.h"
#include "index/text_analyzer.h"
#include "index/text_index.h"

namespace strata {
namespace {

std::unique_ptr<TextAnalyzer> English() {
  auto a = TextAnalyzer::Create("english");
  EXPECT_TRUE(a.ok()) << a.status();
  return std::move(a).value();
}

TEST(TextAnalyzer, FoldsCaseAndAccentsStemsAndDropsStopWords) {
  auto a = English();
  EXPECT_EQ(a->Terms("The Running dogs ran!"), (std::vector<std::string>{"run", "dog", "ran"}));
  EXPECT_EQ(a->Terms("Café CAFE cafés"), (std::vector<std::string>{"cafe", "cafe", "cafe"}));
  // Compatibility forms fold too: full-width letters and the "ﬁ" ligature.
  EXPECT_EQ(a->Terms("ＰｏｓｔｇｒｅＳＱＬ ﬁle"), (std::vector<std::string>{"postgresql", "file"}));
  // Digits are words; punctuation and symbols split.
  EXPECT_EQ(a->Terms("port 5432/tcp, v1.2"),
            (std::vector<std::string>{"port", "5432", "tcp", "v1", "2"}));
  // Other scripts tokenize (not stemmed by the English stemmer, but kept).
  EXPECT_EQ(a->Terms("Москва"), (std::vector<std::string>{"москва"}));
}

// Scripts without spaces between words give each pair of neighbouring characters (a lone one
// alone), so a long run of them is indexed rather than dropped as one over-long word, and a query
// of a few characters finds it. Words of other scripts beside them stay words.
TEST(TextAnalyzer, UnspacedScriptsGivePairsOfCharacters) {
  auto a = English();
  EXPECT_EQ(a->Terms("東京都"), (std::vector<std::string>{"東京", "京都"}));
  EXPECT_EQ(a->Terms("猫"), (std::vector<std::string>{"猫"}));
  EXPECT_EQ(a->Terms("Python3の使い方"),
            (std::vector<std::string>{"python3", "の使", "使い", "い方"}));
  EXPECT_EQ(a->Terms("データ 猫 DB"), (std::vector<std::string>{"デー", "ータ", "猫", "db"}));
  // Half-width katakana fold to full-width first, voicing marks and all; kana keep their marks
  // ("ガス", gas, is not "カス", dregs) where other letters lose theirs, beside kana or not.
  EXPECT_EQ(a->Terms("ｶﾀｶﾅ"), a->Terms("カタカナ"));
  EXPECT_EQ(a->Terms("ﾃﾞｰﾀ"), a->Terms("データ"));
  EXPECT_NE(a->Terms("ガス"), a->Terms("カス"));
  // A text folds the same whatever else it holds: "㌘" is "グラム" alone or beside other kana,
  // and a Greek letter with its subscript iota is "α" beside kana too.
  EXPECT_EQ(a->Terms("㌘"), a->Terms("グラム"));
  EXPECT_EQ(a->Terms("㌘ ガ"), (std::vector<std::string>{"グラ", "ラム", "ガ"}));
  EXPECT_EQ(a->Terms("\u03b1\u0345 ガ").front(), a->Terms("\u03b1\u0345").front());
  // Punctuation and symbols of those scripts are not paired: Thai's ๚ and ฿ are no terms.
  EXPECT_EQ(a->Terms("ราคา๚ ฿"), a->Terms("ราคา"));
  // The iteration mark belongs to its run; the katakana middle dot splits words.
  EXPECT_EQ(a->Terms("佐々木"), (std::vector<std::string>{"佐々", "々木"}));
  EXPECT_EQ(a->Terms("ジョン・スミス"), (std::vector<std::string>{"ジョ", "ョン", "スミ", "ミス"}));
  EXPECT_EQ(a->Terms("パン Café ÉCOLE"), (std::vector<std::string>{"パン", "cafe", "ecol"}));
  EXPECT_EQ(a->Terms("Café ÉCOLE"), (std::vector<std::string>{"cafe", "ecol"}));
  EXPECT_EQ(a->Terms("한국어 ガ"), (std::vector<std::string>{"한국", "국어", "ガ"}));
  // Korean is written with spaces, its words carrying particles: pairs within each word.
  EXPECT_EQ(a->Terms("데이터 베이스"), (std::vector<std::string>{"데이", "이터", "베이", "이스"}));
  EXPECT_EQ(a->Terms("수도"), std::vector<std::string>{"수도"});
  const std::vector<std::string> seoul = a->Terms("서울은 한국의 수도이며");
  EXPECT_NE(std::find(seoul.begin(), seoul.end(), "수도"), seoul.end());
  // Thai has no spaces between words (its marks fold away, as accents do, on both sides).
  const std::vector<std::string> thai = a->Terms("กรุงเทพมหานครเป็นเมืองหลวงของประเทศไทย");
  EXPECT_GT(thai.size(), 20u);
  for (const std::string& t : a->Terms("ประเทศไทย")) {
    EXPECT_NE(std::find(thai.begin(), thai.end(), t), thai.end()) << t;
  }
  // A sentence of 33 characters (99 bytes): once one term over the limit, dropped; now 32 pairs.
  const std::string sentence = "吾輩は猫である名前はまだ無いどこで生れたかとんと見当がつかぬ何でも";
  EXPECT_EQ(a->Terms(sentence).size(), 32u);
  // Phrases compare the same pairs in order.
  EXPECT_EQ(a->Words("東京都"), a->Terms("東京都"));
}

TEST(TextAnalyzer, SurvivesBadInput) {
  auto a = English();
  EXPECT_TRUE(a->Terms("").empty());
  EXPECT_TRUE(a->Terms("   \t\n!!!").empty());
  // Invalid UTF-8 bytes are skipped, the words around them kept.
  EXPECT_EQ(a->Terms(std::string("vector\xff\xfe search\xc3")),
            (std::vector<std::string>{"vector", "search"}));
  // A term longer than the limit is dropped.
  EXPECT_TRUE(a->Terms(std::string(TextAnalyzer::kMaxTermBytes + 1, 'x')).empty());
  EXPECT_EQ(a->Terms(std::string(TextAnalyzer::kMaxTermBytes, 'x')).size(), 1u);
  EXPECT_FALSE(TextAnalyzer::Create("klingon").ok());
}

TEST(Bm25Index, ScoresAsTheFormulaSays) {
  // Three documents; the query "cat" appears in two.
  Bm25Index index({/*k1=*/1.2, /*b=*/0.75});
  ASSERT_TRUE(index.Add(10, {"cat", "sat", "mat"}).ok());
  ASSERT_TRUE(index.Add(20, {"dog", "sat"}).ok());
  ASSERT_TRUE(index.Add(30, {"cat", "cat", "cat", "dog"}).ok());
  const double n = 3, df = 2, avgdl = 9.0 / 3;
  const double idf = std::log(1 + (n - df + 0.5) / (df + 0.5));
  auto bm25 = [&](double tf, double dl) {
    return idf * tf * 2.2 / (tf + 1.2 * (1 - 0.75 + 0.75 * dl / avgdl));
  };
  const auto hits = index.Search({"cat"}, 10);
  ASSERT_EQ(hits.size(), 2u);
  EXPECT_EQ(hits[0].id, 30u);
  EXPECT_NEAR(hits[0].score, bm25(3, 4), 1e-12);
  EXPECT_EQ(hits[1].id, 10u);
  EXPECT_NEAR(hits[1].score, bm25(1, 3), 1e-12);
  // A repeated query term counts once; an unknown term adds nothing; k cuts the list.
  const auto again = index.Search({"cat", "cat", "zebra"}, 1);
  ASSERT_EQ(again.size(), 1u);
  EXPECT_EQ(again[0].id, 30u);
  EXPECT_NEAR(again[0].score, hits[0].score, 1e-12);
  EXPECT_TRUE(index.Search({"zebra"}, 10).empty());
  EXPECT_TRUE(index.Search({"cat"}, 0).empty());
}

TEST(Bm25Index, RareTermsWeighMoreAndTiesGoToTheSmallerId) {
  Bm25Index index;
  ASSERT_TRUE(index.Add(2, {"common", "rare"}).ok());
  ASSERT_TRUE(index.Add(1, {"common", "other"}).ok());
  ASSERT_TRUE(index.Add(3, {"common", "other"}).ok());
  const auto hits = index.Search({"common", "rare"}, 3);
  ASSERT_EQ(hits.size(), 3u);
  EXPECT_EQ(hits[0].id, 2u);  // the only one with the rare term
  EXPECT_EQ(hits[1].id, 1u);  // 1 and 3 tie: smaller id first
  EXPECT_EQ(hits[2].id, 3u);
  EXPECT_DOUBLE_EQ(hits[1].score, hits[2].score);
}

TEST(Bm25Index, RefusesDuplicateIdsAndBadParameters) {
  Bm25Index index;
  ASSERT_TRUE(index.Add(1, {"a"}).ok());
  EXPECT_TRUE(absl::IsAlreadyExists(index.Add(1, {"b"})));
  EXPECT_EQ(index.documents(), 1u);
  Bm25Index bad({/*k1=*/1.2, /*b=*/1.5});
  EXPECT_TRUE(absl::IsInvalidArgument(bad.Add(1, {"a"})));
  // An empty document is a document (it lowers avgdl) but matches nothing.
  ASSERT_TRUE(index.Add(2, {}).ok());
  EXPECT_EQ(index.Search({"a"}, 5).size(), 1u);
}

// Removing a document gives exactly the index that never had it (every statistic follows), before
// and after the removed postings are compacted away; a removed id can come back.
TEST(Bm25Index, RemoveIsAsIfTheDocumentWasNeverAdded) {
  auto analyzer = English();
  const std::vector<std::string> docs = {"the cat sat on the mat",
                                         "dogs chase cats",
                                         "a cat and a dog",
                                         "vector search on disk",
                                         "postings lists on ssd",
                                         "cats and dogs and mats",
                                         "the quick brown fox jumps",
                                         "lexical search with bm25",
                                         "dense and sparse retrieval",
                                         "the mat was red"};
  const std::vector<std::vector<std::string>> queries = {
      analyzer->Terms("cat mat"), analyzer->Terms("dog"), analyzer->Terms("search disk")};
  const auto expect_same = [&](const Bm25Index& a, const Bm25Index& b) {
    for (const auto& q : queries) {
      const auto x = a.Search(q, 10), y = b.Search(q, 10);
      ASSERT_EQ(x.size(), y.size());
      for (size_t i = 0; i < x.size(); ++i) {
        EXPECT_EQ(x[i].id, y[i].id);
        EXPECT_NEAR(x[i].score, y[i].score, 1e-12);
      }
    }
  };
  Bm25Index all, without;
  for (VectorId i = 0; i < docs.size(); ++i) {
    ASSERT_TRUE(all.Add(i, analyzer->Terms(docs[i])).ok());
    if (i != 0 && i != 5) {
      ASSERT_TRUE(without.Add(i, analyzer->Terms(docs[i])).ok());
    }
  }
  ASSERT_TRUE(all.Remove(0).ok());  // 2 of 10 removed: kept as tombstones
  ASSERT_TRUE(all.Remove(5).ok());
  EXPECT_EQ(all.documents(), 8u);
  expect_same(all, without);
  EXPECT_TRUE(absl::IsNotFound(all.Remove(5)));
  EXPECT_TRUE(absl::IsNotFound(all.Remove(99)));
  // A third removal passes a quarter of the index: compacted, still the same answers.
  ASSERT_TRUE(all.Remove(9).ok());
  ASSERT_TRUE(without.Remove(9).ok());
  expect_same(all, without);
  // Back again (an upsert is a Remove and an Add).
  ASSERT_TRUE(all.Add(5, analyzer->Terms("a new text about cats")).ok());
  ASSERT_TRUE(without.Add(5, analyzer->Terms("a new text about cats")).ok());
  expect_same(all, without);
  EXPECT_TRUE(absl::IsAlreadyExists(all.Add(5, {"x"})));
}

TEST(TextQuery, QuotedPartsArePhrasesAndEveryPartGivesTerms) {
  auto q = ParseTextQuery("\"Write-ahead logs\" and durability");
  ASSERT_TRUE(q.ok()) << q.status();
  ASSERT_EQ(q->phrases.size(), 1u);
  EXPECT_EQ(q->phrases[0].terms, (std::vector<std::string>{"write", "ahead", "log"}));
  EXPECT_EQ(q->phrases[0].words, (std::vector<std::string>{"write", "ahead", "logs"}));
  EXPECT_EQ(q->terms, (std::vector<std::string>{"write", "ahead", "log", "durabl"}));
  // A quoted single word is a required word; a quoted stop word is a phrase with no term (no
  // postings to find it by: the other words find its candidates); a lone quote is text. Stop
  // words stay in a phrase's words.
  q = ParseTextQuery("\"Vacuum\" \"the\" tables \"unclosed");
  ASSERT_TRUE(q.ok());
  ASSERT_EQ(q->phrases.size(), 2u);
  EXPECT_EQ(q->phrases[0].words, std::vector<std::string>{"vacuum"});
  EXPECT_TRUE(q->phrases[1].terms.empty());
  EXPECT_EQ(q->phrases[1].words, std::vector<std::string>{"the"});
  EXPECT_TRUE(HasPhraseTerms(*q));
  q = ParseTextQuery("\"of the\" write");
  ASSERT_EQ(q->phrases.size(), 1u);
  EXPECT_FALSE(HasPhraseTerms(*q));
  EXPECT_EQ(q->terms, std::vector<std::string>{"write"});
  q = ParseTextQuery("\"the Cat\"");
  ASSERT_EQ(q->phrases.size(), 1u);
  EXPECT_EQ(q->phrases[0].terms, std::vector<std::string>{"cat"});
  EXPECT_EQ(q->phrases[0].words, (std::vector<std::string>{"the", "cat"}));
  q = ParseTextQuery("\"Vacuum\" \"the\" tables \"unclosed");
  EXPECT_EQ(q->terms, (std::vector<std::string>{"vacuum", "tabl", "unclos"}));
  EXPECT_TRUE(ParseTextQuery("").ok());
  EXPECT_TRUE(ParseTextQuery("\"\"").value().phrases.empty());
  const std::vector<std::string> text = {"a", "b", "c", "b", "d"};
  EXPECT_TRUE(ContainsPhrase(text, std::vector<std::string>{"b", "d"}));
  EXPECT_TRUE(ContainsPhrase(text, std::vector<std::string>{"a", "b", "c", "b", "d"}));
  EXPECT_FALSE(ContainsPhrase(text, std::vector<std::string>{"b", "a"}));
  EXPECT_FALSE(ContainsPhrase(text, std::vector<std::string>{"a", "b", "c", "b", "d", "e"}));
  EXPECT_TRUE(ContainsPhrase(text, {}));
}

// ContainsPhrase (linear in the text and the phrase) agrees with the plain search at every
// offset, on small alphabets where partial matches and self-overlapping phrases abound.
TEST(TextQuery, ContainsPhraseAgreesWithTheSearchAtEveryOffset) {
  const auto reference = [](const std::vector<std::string>& text,
                            const std::vector<std::string>& phrase) {
    if (phrase.empty()) return true;
    for (size_t i = 0; i + phrase.size() <= text.size(); ++i) {
      if (std::equal(phrase.begin(), phrase.end(), text.begin() + static_cast<ptrdiff_t>(i))) {
        return true;
      }
    }
    return false;
  };
  std::mt19937 rng(7);
  int found = 0;
  for (int trial = 0; trial < 20000; ++trial) {
    const int letters = 1 + static_cast<int>(rng() % 3);
    std::vector<std::string> text(rng() % 24), phrase(rng() % 7);
    for (auto& w : text) w = std::string(1, static_cast<char>('a' + rng() % letters));
    for (auto& w : phrase) w = std::string(1, static_cast<char>('a' + rng() % letters));
    const bool want = reference(text, phrase);
    found += want ? 1 : 0;
    ASSERT_EQ(ContainsPhrase(text, phrase), want)
        << "text " << absl::StrJoin(text, " ") << ", phrase " << absl::StrJoin(phrase, " ");
  }
  EXPECT_GT(found, 2000);  // both answers well represented
  EXPECT_LT(found, 18000);
  // A phrase of many repeated words is refused past the limit, not checked at its cost.
  std::string many = "\"";
  for (size_t i = 0; i <= kMaxQueryTerms; ++i) many += "the ";
  many += "\" write";
  EXPECT_EQ(ParseTextQuery(many).status().code(), absl::StatusCode::kResourceExhausted);
}

// MemoryBytes, kept up to date by Add and recounted by compactions, is what counting every
// term gives; BytesToAdd bounds what Adds take, table growth included.
TEST(Bm25Index, MemoryBytesIsKeptAsCountedAndBytesToAddBoundsIt) {
  Bm25Index index;
  std::mt19937 rng(5);
  for (int round = 0; round < 300; ++round) {
    std::vector<std::vector<std::string>> docs(1 + rng() % 4);
    for (auto& d : docs) {
      const int words = static_cast<int>(rng() % 40);
      for (int w = 0; w < words; ++w) {
        // Some short, some past the inline buffer; some shared, many new.
        d.push_back(absl::StrCat(rng() % 3 == 0 ? "averyveryverylongword" : "w", rng() % 5000));
      }
    }
    std::vector<absl::Span<const std::string>> spans(docs.begin(), docs.end());
    const uint64_t bound = index.BytesToAdd(spans), before = index.MemoryBytes();
    for (size_t i = 0; i < docs.size(); ++i) {
      ASSERT_TRUE(index.Add(static_cast<VectorId>(round * 10 + i), docs[i]).ok());
    }
    EXPECT_LE(index.MemoryBytes() - before, bound) << round;
    if (round % 7 == 3) {  // removes, and the compactions they bring
      for (int r = 0; r < round; r += 3) (void)index.Remove(static_cast<VectorId>(r * 10));
    }
    ASSERT_EQ(index.MemoryBytes(), index.CountMemoryBytes()) << round;
  }
}

TEST(Bm25Index, WithAllIsTheIntersection) {
  Bm25Index index;
  ASSERT_TRUE(index.Add(1, {"a", "b"}).ok());
  ASSERT_TRUE(index.Add(2, {"b", "c"}).ok());
  ASSERT_TRUE(index.Add(3, {"a", "b", "c"}).ok());
  EXPECT_EQ(index.WithAll({"b"}), (std::vector<VectorId>{1, 2, 3}));
  EXPECT_EQ(index.WithAll({"a", "b"}), (std::vector<VectorId>{1, 3}));
  EXPECT_EQ(index.WithAll({"c", "a"}), (std::vector<VectorId>{3}));
  EXPECT_TRUE(index.WithAll({"a", "zebra"}).empty());
  EXPECT_TRUE(index.WithAll({}).empty());
  ASSERT_TRUE(index.Remove(3).ok());
  EXPECT_EQ(index.WithAll({"a", "b"}), (std::vector<VectorId>{1}));
}

// Score gives what Search gives, bit for bit (hybrid search mixes the two), for ids in the
// index, with tombstones and after compaction; 0 for an id sharing no term or not there.
TEST(Bm25Index, ScoreOfGivenIdsEqualsSearch) {
  auto analyzer = English();
  Bm25Index index;
  const std::vector<std::string> docs = {"cats and dogs", "a cat on a mat", "dogs chase cats",
                                         "nothing here",  "mat mat mat",    "cat food for cats"};
  for (VectorId i = 0; i < docs.size(); ++i) {
    ASSERT_TRUE(index.Add(i * 10, analyzer->Terms(docs[i])).ok());
  }
  const std::vector<std::string> q = analyzer->Terms("cat mat");
  const auto check = [&] {
    const auto hits = index.Search(q, 100);
    std::vector<VectorId> ids;
    for (const ScoredDoc& h : hits) ids.push_back(h.id);
    const std::vector<double> scores = index.Score(q, ids);
    for (size_t i = 0; i < hits.size(); ++i) EXPECT_EQ(scores[i], hits[i].score) << hits[i].id;
  };
  check();
  ASSERT_TRUE(index.Remove(10).ok());  // a tombstone
  check();
  ASSERT_TRUE(index.Remove(40).ok());  // compacted (2 of 6)
  check();
  const std::vector<VectorId> others = {30, 10, 12345};  // no term in common, removed, unknown
  EXPECT_EQ(index.Score(q, others), (std::vector<double>{0, 0, 0}));
  EXPECT_GT(index.MemoryBytes(), 0u);
}

}  // namespace
}  // namespace strata
