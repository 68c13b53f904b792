// A collection's lexical side (index/text_index.h) and hybrid search (Collection::SearchText):
// it follows every write, comes back identical from the stored payloads, and fuses both sides
// with every hit scored on both.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "index/catalog.h"
#include "index/collection.h"
#include "index/hybrid_tuner.h"
#include "storage/half.h"
#include "tests/test_util.h"
#include "tools/synthetic.h"

namespace strata {
namespace {

using testing::TempDir;

// The payload is the text itself (the service stores a Payload message instead).
CollectionOptions TextOptions() {
  CollectionOptions o;
  o.payload_text = [](absl::string_view payload, absl::Span<const std::string> fields) {
    // Each named field stands for itself in the test: its name is indexed too.
    std::string text(payload);
    for (const std::string& f : fields) absl::StrAppend(&text, " ", f);
    return text;
  };
  return o;
}

std::shared_ptr<Collection> NewCollection(Catalog* cat, uint32_t dim, ElementType type,
                                          uint64_t threshold = 1000000) {
  CollectionConfig c;
  c.name = "t";
  c.dim = dim;
  c.type = type;
  c.build_threshold = threshold;
  return *cat->Create(c);
}

std::vector<uint8_t> F32(std::vector<float> v) {
  std::vector<uint8_t> out(v.size() * sizeof(float));
  std::memcpy(out.data(), v.data(), out.size());
  return out;
}

void Put(Collection* c, uint64_t id, const std::vector<uint8_t>& v, const std::string& text) {
  std::vector<PointInput> rows = {{id, v, text}};
  std::vector<RowError> errors;
  uint64_t n = 0;
  ASSERT_TRUE(c->Upsert(rows, &errors, &n).ok());
  ASSERT_EQ(n, 1u);
}

std::vector<uint64_t> Lexical(const Collection& c, const std::string& text, uint32_t k = 10) {
  TextSearch s;
  s.mode = SearchMode::kLexical;
  s.text = text;
  std::vector<ScoredHit> hits;
  absl::Status st = c.SearchText(s, k, {}, &hits);
  EXPECT_TRUE(st.ok()) << st;
  std::vector<uint64_t> ids;
  for (const ScoredHit& h : hits) {
    EXPECT_TRUE(h.has_lexical && !h.has_dense);
    EXPECT_EQ(h.score, h.lexical_score);
    ids.push_back(h.id);
  }
  return ids;
}

TEST(CollectionText, FollowsUpsertsReplacementsAndDeletesAndSurvivesReopen) {
  TempDir tmp;
  {
    auto cat = *Catalog::Open(tmp.path(), TextOptions());
    auto c = NewCollection(cat.get(), 2, ElementType::kFloat32);
    Put(c.get(), 1, F32({1, 0}), "Red apples make a good pie");
    Put(c.get(), 2, F32({0, 1}), "green apple");
    Put(c.get(), 3, F32({1, 1}), "a blue car");
    Put(c.get(), 4, F32({2, 2}), "");  // no text: not in the lexical index
    EXPECT_EQ(c->text_documents(), 3u);
    EXPECT_EQ(Lexical(*c, "apple"), (std::vector<uint64_t>{2, 1}));  // shorter text first
    EXPECT_EQ(Lexical(*c, "CARS"), (std::vector<uint64_t>{3}));
    EXPECT_TRUE(Lexical(*c, "the of and").empty());  // stop words only: no term, no hit
    // Replaced text leaves the index at once; a delete too.
    Put(c.get(), 2, F32({0, 1}), "yellow banana");
    EXPECT_EQ(Lexical(*c, "apple"), (std::vector<uint64_t>{1}));
    uint64_t deleted = 0;
    std::vector<uint64_t> del = {1};
    ASSERT_TRUE(c->Delete(del, &deleted).ok());
    EXPECT_TRUE(Lexical(*c, "apple").empty());
    EXPECT_EQ(Lexical(*c, "banana"), (std::vector<uint64_t>{2}));
    EXPECT_EQ(c->text_documents(), 2u);
  }
  // Rebuilt from the stored payloads: the same answers.
  auto cat = *Catalog::Open(tmp.path(), TextOptions());
  auto c = *cat->Find("t");
  EXPECT_EQ(c->text_documents(), 2u);
  EXPECT_TRUE(Lexical(*c, "apple").empty());
  EXPECT_EQ(Lexical(*c, "banana"), (std::vector<uint64_t>{2}));
  EXPECT_EQ(Lexical(*c, "car"), (std::vector<uint64_t>{3}));
  const CollectionStats st = c->Stats();
  EXPECT_EQ(st.text_documents, 2u);
  EXPECT_GT(st.text_terms, 0u);
  EXPECT_GT(st.text_memory_bytes, 0u);
}

// Over a built index (vectors read back from the store for the lexical-only candidates) and
// appended vectors alike, every hybrid hit carries its exact dense distance and its BM25, and the
// weight's ends give each side's own order.
TEST(CollectionText, HybridScoresEveryCandidateOnBothSides) {
  TempDir tmp;
  SyntheticOptions so;
  so.seed = 5;
  auto gen = SyntheticGenerator::Create(so);
  const VectorSet base = gen->Generate(0, 3000);
  auto cat = *Catalog::Open(tmp.path(), TextOptions());
  auto c = NewCollection(cat.get(), base.dim, base.type);
  std::vector<PointInput> rows;
  std::vector<std::string> texts(base.n);
  for (uint64_t i = 0; i < base.n; ++i) {
    texts[i] = absl::StrCat("word", i % 40, " unique", i);
    rows.push_back({i, {base.row(i), base.row_bytes()}, texts[i]});
  }
  std::vector<RowError> errors;
  uint64_t n = 0;
  ASSERT_TRUE(c->Upsert(rows, &errors, &n).ok());
  ASSERT_TRUE(c->BuildIndex().ok());
  // One more, appended after the build.
  Put(c.get(), 5000, std::vector<uint8_t>(base.row(7), base.row(7) + base.row_bytes()),
      "unique5000 word3");

  const auto l2 = [&](uint64_t id, const uint8_t* q) {
    const uint8_t* v = id == 5000 ? base.row(7) : base.row(id);
    float d = 0;
    for (uint32_t j = 0; j < base.dim; ++j) {
      const float x = static_cast<float>(q[j]) - static_cast<float>(v[j]);
      d += x * x;
    }
    return d;
  };
  const uint8_t* q = base.row(0);
  TextSearch s;
  s.mode = SearchMode::kHybrid;
  s.text = "unique2999 unique5000 word3";
  s.query = VectorView{base.type, {q, base.row_bytes()}};
  std::vector<ScoredHit> hits;
  ASSERT_TRUE(c->SearchText(s, 20, {}, &hits).ok());
  ASSERT_EQ(hits.size(), 20u);
  for (const ScoredHit& h : hits) {
    ASSERT_TRUE(h.has_dense && h.has_lexical);
    EXPECT_FLOAT_EQ(h.dense_distance, l2(h.id, q)) << h.id;
  }
  for (size_t i = 1; i < hits.size(); ++i) EXPECT_GE(hits[i - 1].score, hits[i].score);
  // The lexical scores are BM25's own.
  TextSearch lex = s;
  lex.mode = SearchMode::kLexical;
  std::vector<ScoredHit> lexical;
  ASSERT_TRUE(c->SearchText(lex, kMaxTextK, {}, &lexical).ok());
  for (const ScoredHit& h : hits) {
    double want = 0;
    for (const ScoredHit& l : lexical) {
      if (l.id == h.id) want = l.lexical_score;
    }
    EXPECT_EQ(h.lexical_score, want) << h.id;
  }
  // Weight 0: lexical order (5000 has two of the terms, 2999 one rare one), each still with its
  // exact distance (2999 is far from row 0: read back from the store); weight 1: the nearest.
  s.fusion.dense_weight = 0;
  ASSERT_TRUE(c->SearchText(s, 2, {}, &hits).ok());
  EXPECT_EQ((std::vector<uint64_t>{hits[0].id, hits[1].id}), (std::vector<uint64_t>{5000, 2999}));
  for (const ScoredHit& h : hits) EXPECT_FLOAT_EQ(h.dense_distance, l2(h.id, q)) << h.id;
  s.fusion.dense_weight = 1;
  ASSERT_TRUE(c->SearchText(s, 1, {}, &hits).ok());
  EXPECT_EQ(hits[0].id, 0u);
  EXPECT_EQ(hits[0].dense_distance, 0.0f);
  s.fusion.method = FusionMethod::kReciprocalRank;
  s.fusion.dense_weight = 0.5;
  ASSERT_TRUE(c->SearchText(s, 5, {}, &hits).ok());
  EXPECT_EQ(hits.size(), 5u);
}

// Quoted phrases must appear as consecutive terms, in lexical and hybrid searches alike.
TEST(CollectionText, PhrasesFilterLexicalAndHybridSearches) {
  TempDir tmp;
  auto cat = *Catalog::Open(tmp.path(), TextOptions());
  auto c = NewCollection(cat.get(), 2, ElementType::kFloat32);
  Put(c.get(), 1, F32({1, 0}), "The write-ahead log makes commits durable");
  Put(c.get(), 2, F32({0, 1}), "write a log ahead of time; write it often");
  Put(c.get(), 3, F32({1, 1}), "ahead log write");
  Put(c.get(), 4, F32({1, 0.1f}), "nothing relevant here");
  // Unquoted, all three share the words; quoted, only the first holds the phrase.
  std::vector<uint64_t> plain = Lexical(*c, "write ahead log");
  std::sort(plain.begin(), plain.end());
  EXPECT_EQ(plain, (std::vector<uint64_t>{1, 2, 3}));
  EXPECT_EQ(Lexical(*c, "\"write ahead log\""), (std::vector<uint64_t>{1}));
  EXPECT_EQ(Lexical(*c, "\"ahead log\" write"), (std::vector<uint64_t>{3, 1}));  // 3 is shorter
  EXPECT_TRUE(Lexical(*c, "\"log write ahead\"").empty());
  EXPECT_EQ(Lexical(*c, "\"often\" write"), (std::vector<uint64_t>{2}));  // a required word
  // Quotes are exact: no stemming ("commit" is not "commits"), stop words in place.
  EXPECT_TRUE(Lexical(*c, "\"makes commit\"").empty());
  EXPECT_EQ(Lexical(*c, "\"Makes COMMITS\""), (std::vector<uint64_t>{1}));
  EXPECT_EQ(Lexical(*c, "\"write it often\""), (std::vector<uint64_t>{2}));
  EXPECT_TRUE(Lexical(*c, "\"write often\"").empty());           // "it" stands between them
  EXPECT_EQ(Lexical(*c, "commit"), (std::vector<uint64_t>{1}));  // unquoted: stemmed
  // Hybrid: the dense side's nearest (4, then 1) are dropped unless they hold the phrase.
  TextSearch s;
  s.mode = SearchMode::kHybrid;
  s.text = "\"write ahead log\"";
  const std::vector<uint8_t> q = F32({1, 0.05f});
  s.query = VectorView{ElementType::kFloat32, q};
  std::vector<ScoredHit> hits;
  ASSERT_TRUE(c->SearchText(s, 10, {}, &hits).ok());
  ASSERT_EQ(hits.size(), 1u);
  EXPECT_EQ(hits[0].id, 1u);
  // Phrases of stop words alone filter too: on the candidates the other words find (lexical),
  // on the dense candidates (hybrid); a lexical search with nothing else to find them by is
  // refused with a message, never answered as if the quotes were not there.
  EXPECT_EQ(Lexical(*c, "\"of time\" write"), (std::vector<uint64_t>{2}));
  EXPECT_EQ(Lexical(*c, "\"a log\" write"), (std::vector<uint64_t>{2}));
  EXPECT_TRUE(Lexical(*c, "\"it a\" write").empty());
  TextSearch lex;
  lex.mode = SearchMode::kLexical;
  lex.text = "\"of the\"";
  const absl::Status refused = c->SearchText(lex, 10, {}, &hits);
  EXPECT_EQ(refused.code(), absl::StatusCode::kInvalidArgument) << refused;
  EXPECT_NE(refused.message().find("stop words"), std::string::npos) << refused;
  s.text = "\"of time\"";
  ASSERT_TRUE(c->SearchText(s, 10, {}, &hits).ok());
  ASSERT_EQ(hits.size(), 1u);
  EXPECT_EQ(hits[0].id, 2u);
  s.text = "\"the the the\"";
  ASSERT_TRUE(c->SearchText(s, 10, {}, &hits).ok());
  EXPECT_TRUE(hits.empty());
}

// Text in scripts written without spaces (Chinese, Japanese) is found by a few of its characters,
// as a word or as a quoted phrase; before, a sentence was one over-long word, never indexed.
TEST(CollectionText, TextWithoutSpacesIsFoundByItsCharacters) {
  TempDir tmp;
  auto cat = *Catalog::Open(tmp.path(), TextOptions());
  auto c = NewCollection(cat.get(), 2, ElementType::kFloat32);
  Put(c.get(), 1, F32({1, 0}),
      "吾輩は猫である。名前はまだ無い。どこで生れたかとんと見当がつかぬ。");
  Put(c.get(), 2, F32({0, 1}), "東京都の人口は約千四百万人である");
  Put(c.get(), 3, F32({1, 1}), "京都は日本の古都");
  EXPECT_EQ(Lexical(*c, "名前"), (std::vector<uint64_t>{1}));
  // (Ranked by the pairs shared: 2 holds "である" too, not "猫で".)
  EXPECT_EQ(Lexical(*c, "猫である"), (std::vector<uint64_t>{1, 2}));
  // (One character alone is a term only where it stands alone: not found inside a run.)
  EXPECT_TRUE(Lexical(*c, "猫").empty());
  EXPECT_EQ(Lexical(*c, "見当がつかぬ"), (std::vector<uint64_t>{1}));
  std::vector<uint64_t> kyoto = Lexical(*c, "京都");
  std::sort(kyoto.begin(), kyoto.end());
  EXPECT_EQ(kyoto, (std::vector<uint64_t>{2, 3}));  // "東京都" holds the pair too
  EXPECT_EQ(Lexical(*c, "\"東京都\""), (std::vector<uint64_t>{2}));
  EXPECT_TRUE(Lexical(*c, "\"都京\"").empty());
}

// A lexical index past its byte limit takes no more text: the upsert that could pass it is
// refused whole (RESOURCE_EXHAUSTED naming the flag, nothing written), the index never passes the
// limit, writes without text and deletes go on, and a reopen indexes everything stored.
TEST(CollectionText, TheLexicalIndexStaysWithinItsByteLimit) {
  TempDir tmp;
  CollectionOptions options = TextOptions();
  options.max_text_index_bytes = 2 << 20;
  auto cat = *Catalog::Open(tmp.path(), options);
  auto c = NewCollection(cat.get(), 2, ElementType::kFloat32);
  const std::vector<uint8_t> v = F32({1, 2});
  std::mt19937 rng(3);
  absl::Status refused;
  uint64_t stored = 0;
  for (int call = 0; call < 200 && refused.ok(); ++call) {
    std::vector<std::string> texts(20);
    std::vector<PointInput> rows;
    for (int r = 0; r < 20; ++r) {
      for (int w = 0; w < 60; ++w) absl::StrAppend(&texts[r], "w", rng() % 100000000, " ");
      rows.push_back({stored + static_cast<uint64_t>(r), v, texts[r]});
    }
    const uint64_t before = c->Count();
    std::vector<RowError> errors;
    uint64_t n = 0;
    refused = c->Upsert(rows, &errors, &n);
    if (refused.ok()) {
      stored += n;
    } else {
      EXPECT_EQ(c->Count(), before);  // nothing of the refused call was written
    }
    EXPECT_LE(c->Stats().text_memory_bytes, options.max_text_index_bytes);
  }
  ASSERT_EQ(refused.code(), absl::StatusCode::kResourceExhausted) << refused;
  EXPECT_NE(refused.message().find("--max_text_index_mb"), std::string::npos) << refused;
  EXPECT_GT(stored, 200u);
  // Without text, and deletes: not the index's growth.
  Put(c.get(), 900000, v, "");
  std::vector<RowError> errors;
  uint64_t n = 0;
  const std::vector<uint64_t> gone = {0, 1};
  ASSERT_TRUE(c->Delete(gone, &n).ok());
  // Reopened with no limit, every stored text is indexed again.
  c.reset();
  cat.reset();
  cat = *Catalog::Open(tmp.path(), TextOptions());
  EXPECT_EQ((*cat->Find("t"))->text_documents(), stored - 2);
}

// An offline bulk load indexes the payload text as online writes do.
TEST(CollectionText, BulkLoadIndexesTheText) {
  TempDir tmp;
  auto cat = *Catalog::Open(tmp.path(), TextOptions());
  SyntheticOptions so;
  auto gen = SyntheticGenerator::Create(so);
  const VectorSet base = gen->Generate(0, 500);
  auto c = NewCollection(cat.get(), base.dim, base.type);
  std::vector<std::string> payloads;
  for (int i = 0; i < 500; ++i) payloads.push_back(absl::StrCat("bulk", i, " row"));
  ASSERT_TRUE(c->BulkLoad(base, {}, payloads, nullptr).ok());
  EXPECT_EQ(c->text_documents(), 500u);
  EXPECT_EQ(Lexical(*c, "bulk321"), (std::vector<uint64_t>{321}));
}

// The collection hands its text_fields to the payload reader, at write and at reopen alike.
TEST(CollectionText, NamedTextFieldsAreIndexedWithTheText) {
  TempDir tmp;
  {
    auto cat = *Catalog::Open(tmp.path(), TextOptions());
    CollectionConfig cfg;
    cfg.name = "f";
    cfg.dim = 2;
    cfg.text_fields = {"zebrafield"};
    auto c = *cat->Create(cfg);
    Put(c.get(), 1, F32({1, 0}), "alpha");
    Put(c.get(), 2, F32({0, 1}), "beta");
    EXPECT_EQ(Lexical(*c, "zebrafield"), (std::vector<uint64_t>{1, 2}));
  }
  auto cat = *Catalog::Open(tmp.path(), TextOptions());
  auto c = *cat->Find("f");
  EXPECT_EQ(c->config().text_fields, std::vector<std::string>{"zebrafield"});
  EXPECT_EQ(Lexical(*c, "zebrafield"), (std::vector<uint64_t>{1, 2}));
  EXPECT_EQ(Lexical(*c, "beta"), (std::vector<uint64_t>{2}));
}

// With float16 postings the index scores its entries against float16-rounded vectors; a hybrid
// candidate found by text alone is scored the same way, so the two kinds compare fairly.
TEST(CollectionText, HybridDistancesMatchTheIndexWithFloat16Postings) {
  TempDir tmp;
  constexpr int kPoints = 2000, kDim = 16;
  std::mt19937 rng(4);
  std::normal_distribution<float> noise;
  std::vector<std::vector<float>> vecs(kPoints, std::vector<float>(kDim));
  for (auto& v : vecs) {
    for (float& x : v) x = noise(rng);
  }
  auto cat = *Catalog::Open(tmp.path(), TextOptions());
  CollectionConfig cfg;
  cfg.name = "h";
  cfg.dim = kDim;
  cfg.metric = Metric::kCosine;
  cfg.posting_encoding = PostingEncoding::kFloat16;
  cfg.build_threshold = 1000000;
  auto c = *cat->Create(cfg);
  std::vector<std::vector<uint8_t>> rows;
  std::vector<std::string> texts;
  std::vector<PointInput> in;
  for (int i = 0; i < kPoints; ++i) {
    rows.push_back(F32(vecs[i]));
    texts.push_back(absl::StrCat("w", i % 50, " u", i));
  }
  for (int i = 0; i < kPoints; ++i) in.push_back({static_cast<uint64_t>(i), rows[i], texts[i]});
  std::vector<RowError> errors;
  uint64_t n = 0;
  ASSERT_TRUE(c->Upsert(in, &errors, &n).ok());
  ASSERT_TRUE(c->BuildIndex().ok());
  // -cos against the float16-rounded unit vector, by hand.
  const auto unit = [](std::vector<float> v) {
    double norm = 0;
    for (float x : v) norm += double{x} * x;
    for (float& x : v) x = static_cast<float>(x / std::sqrt(norm));
    return v;
  };
  const std::vector<float> q = unit(vecs[0]);
  const auto f16_distance = [&](uint64_t id) {
    const std::vector<float> x = unit(vecs[id]);
    double dot = 0;
    for (int d = 0; d < kDim; ++d) dot += double{q[d]} * HalfToFloat(FloatToHalf(x[d]));
    return -dot;
  };
  TextSearch s;
  s.mode = SearchMode::kHybrid;
  s.text = "u1999 u1500 w7";  // far points, found by their words
  const std::vector<uint8_t> qb = F32(vecs[0]);
  s.query = VectorView{ElementType::kFloat32, qb};
  s.fusion.dense_weight = 0.2;
  const auto exact_distance = [&](uint64_t id) {
    const std::vector<float> x = unit(vecs[id]);
    double dot = 0;
    for (int d = 0; d < kDim; ++d) dot += double{q[d]} * x[d];
    return -dot;
  };
  std::vector<FusionCandidate> candidates;
  ASSERT_TRUE(c->HybridCandidates(s, 30, {}, &candidates).ok());
  int lexical_only = 0;
  for (const FusionCandidate& f : candidates) {
    if (f.dense_rank == 0) {
      // Scored here, from the stored vector: as the postings hold it.
      ++lexical_only;
      EXPECT_NEAR(f.dense_distance, f16_distance(f.id), 1e-6) << f.id;
    } else {
      // From the index: its postings (float16) or, for a head, the head graph (float32).
      EXPECT_TRUE(std::abs(f.dense_distance - f16_distance(f.id)) < 1e-6 ||
                  std::abs(f.dense_distance - exact_distance(f.id)) < 1e-6)
          << f.id;
    }
  }
  EXPECT_GT(lexical_only, 10);
}

TEST(CollectionText, RefusesWhatItCannotAnswer) {
  TempDir tmp;
  {
    auto cat = *Catalog::Open(tmp.path());  // no payload_text: no lexical index
    auto c = NewCollection(cat.get(), 2, ElementType::kFloat32);
    Put(c.get(), 1, F32({1, 0}), "text");
    EXPECT_EQ(c->text_documents(), 0u);
    TextSearch s;
    s.mode = SearchMode::kLexical;
    s.text = "text";
    std::vector<ScoredHit> hits;
    EXPECT_TRUE(absl::IsFailedPrecondition(c->SearchText(s, 5, {}, &hits)));
  }
  TempDir tmp2;
  auto cat = *Catalog::Open(tmp2.path(), TextOptions());
  auto c = NewCollection(cat.get(), 2, ElementType::kFloat32);
  Put(c.get(), 1, F32({1, 0}), "text");
  TextSearch s;
  s.mode = SearchMode::kLexical;
  s.text = "text";
  std::vector<ScoredHit> hits;
  EXPECT_TRUE(absl::IsInvalidArgument(c->SearchText(s, 0, {}, &hits)));
  EXPECT_TRUE(absl::IsInvalidArgument(c->SearchText(s, kMaxTextK + 1, {}, &hits)));
  s.mode = SearchMode::kDense;
  EXPECT_TRUE(absl::IsInvalidArgument(c->SearchText(s, 5, {}, &hits)));
  s.mode = SearchMode::kHybrid;
  const std::vector<uint8_t> wrong = F32({1, 2, 3});
  s.query = VectorView{ElementType::kFloat32, wrong};
  EXPECT_TRUE(absl::IsInvalidArgument(c->SearchText(s, 5, {}, &hits)));  // wrong dimension
  const std::vector<uint8_t> right = F32({1, 0});
  s.query = VectorView{ElementType::kFloat32, right};
  s.fusion.dense_weight = 2;
  EXPECT_TRUE(absl::IsInvalidArgument(c->SearchText(s, 5, {}, &hits)));
  s.fusion.dense_weight = 0.5;
  std::string many;
  for (size_t i = 0; i <= kMaxQueryTerms; ++i) absl::StrAppend(&many, "t", i, " ");
  s.text = many;
  absl::Status too_many = c->SearchText(s, 5, {}, &hits);
  EXPECT_TRUE(absl::IsResourceExhausted(too_many));
  EXPECT_NE(too_many.message().find("distinct terms"), std::string::npos) << too_many;
  s.text = "text";
  ASSERT_TRUE(c->SearchText(s, 5, {}, &hits).ok());
  ASSERT_EQ(hits.size(), 1u);
}

// The tuner learns which side carries the answer: with informative text and random vectors the
// weight goes to the lexical side, with the reverse to the dense side; the learned weight is kept
// durably, across a rebuild of the index and a reopen.
TEST(CollectionText, TheHybridWeightIsLearnedFromLabelledQuestionsAndKept) {
  TempDir tmp;
  std::mt19937 rng(9);
  std::normal_distribution<float> noise;
  constexpr int kPoints = 400, kDim = 8;
  std::vector<std::vector<float>> vecs(kPoints, std::vector<float>(kDim));
  for (auto& v : vecs) {
    for (float& x : v) x = noise(rng);
  }
  const auto text_of = [](int i) { return absl::StrCat("topic", i, " shared words here"); };
  const auto make = [&](Collection* c, bool text_informative) {
    std::vector<std::vector<uint8_t>> rows;
    std::vector<std::string> texts;
    std::vector<PointInput> in;
    for (int i = 0; i < kPoints; ++i) {
      rows.push_back(F32(vecs[i]));
      texts.push_back(text_informative ? text_of(i) : "shared words here");
    }
    for (int i = 0; i < kPoints; ++i) in.push_back({static_cast<uint64_t>(i), rows[i], texts[i]});
    std::vector<RowError> errors;
    uint64_t n = 0;
    ASSERT_TRUE(c->Upsert(in, &errors, &n).ok());
  };
  // Questions: the text names its point; the query vector is the point's vector plus noise
  // (informative) or unrelated noise.
  const auto questions = [&](bool dense_informative) {
    std::vector<LabelledQuestion> qs;
    for (int i = 0; i < 60; ++i) {
      std::vector<float> q(kDim);
      for (int d = 0; d < kDim; ++d) {
        q[d] = dense_informative ? vecs[i * 5][d] + 0.05f * noise(rng) : noise(rng);
      }
      LabelledQuestion lq;
      lq.text = text_of(i * 5);
      lq.query = F32(q);
      lq.relevant = {static_cast<uint64_t>(i * 5)};
      qs.push_back(std::move(lq));
    }
    return qs;
  };
  {
    auto cat = *Catalog::Open(tmp.path(), TextOptions());
    CollectionConfig cfg;
    cfg.name = "lex";
    cfg.dim = kDim;
    cfg.build_threshold = 1000000;
    auto lex = *cat->Create(cfg);
    make(lex.get(), /*text_informative=*/true);
    // best_weight has the best MRR@10 of the table (among equals, the one nearest 0.5); the
    // chosen weight is it or, when it does not clear the margin, the default.
    const auto check_choice = [](const HybridTuning& t) {
      ASSERT_EQ(t.table.size(), 11u);
      double best = 0;
      for (const WeightScore& w : t.table) best = std::max(best, w.mrr_at_10);
      for (const WeightScore& w : t.table) {
        if (w.weight == t.best_weight) {
          EXPECT_EQ(w.mrr_at_10, best);
        }
        if (w.mrr_at_10 == best) {
          EXPECT_LE(std::abs(t.best_weight - 0.5), std::abs(w.weight - 0.5));
        }
      }
      EXPECT_TRUE(t.weight == t.best_weight || t.weight == kDefaultDenseWeight);
    };
    auto tuned = TuneHybridWeight(*lex, questions(/*dense_informative=*/false));
    ASSERT_TRUE(tuned.ok()) << tuned.status();
    check_choice(*tuned);
    EXPECT_LE(tuned->weight, 0.5);
    EXPECT_EQ(tuned->table.front().mrr_at_10, 1.0);  // lexical alone finds every one first
    EXPECT_LT(tuned->table.back().mrr_at_10, 0.5);   // the noise vectors do not

    cfg.name = "dense";
    auto dense = *cat->Create(cfg);
    make(dense.get(), /*text_informative=*/false);
    tuned = TuneHybridWeight(*dense, questions(/*dense_informative=*/true));
    ASSERT_TRUE(tuned.ok()) << tuned.status();
    check_choice(*tuned);
    EXPECT_GE(tuned->weight, 0.5);
    EXPECT_GT(tuned->table.back().recall_at_1, 0.9);
    // The texts do not tell the points apart: at weight 0 every fused score ties and the dense
    // side breaks the ties (fusion.h), so even there the order is the dense one.
    EXPECT_EQ(tuned->table.front().mrr_at_10, tuned->table.back().mrr_at_10);
    ASSERT_TRUE(dense->SetHybridDefault(tuned->weight, tuned->table.back().mrr_at_10, 60).ok());
    ASSERT_TRUE(dense->BuildIndex().ok());  // a new generation's record keeps the weight
    EXPECT_EQ(dense->config().hybrid_weight, tuned->weight);
    EXPECT_TRUE(absl::IsInvalidArgument(dense->SetHybridDefault(1.5, 0, 1)));
    EXPECT_TRUE(absl::IsInvalidArgument(TuneHybridWeight(*dense, {}).status()));
    std::vector<LabelledQuestion> unlabelled = questions(true);
    unlabelled[3].relevant.clear();
    EXPECT_TRUE(absl::IsInvalidArgument(TuneHybridWeight(*dense, unlabelled).status()));
    EXPECT_LT(lex->config().hybrid_weight, 0);  // none learned
  }
  auto cat = *Catalog::Open(tmp.path(), TextOptions());
  const CollectionConfig kept = (*cat->Find("dense"))->config();
  EXPECT_GE(kept.hybrid_weight, 0.5);
  EXPECT_EQ(kept.hybrid_questions, 60u);
  EXPECT_GT(kept.index_generation, 0u);
}

}  // namespace
}  // namespace strata

namespace strata {
namespace {

// A text search's hits come with what it read: a Get at its moment gives a point replaced since
// with the payload (the text) its score was computed on, and not the new one; lexical and hybrid.
TEST(CollectionText, AHitsPayloadIsTheTextItsSearchScored) {
  TempDir tmp;
  auto cat = *Catalog::Open(tmp.path(), TextOptions());
  auto c = NewCollection(cat.get(), 2, ElementType::kFloat32);
  for (uint64_t i = 0; i < 20; ++i) {
    Put(c.get(), i, F32({static_cast<float>(i), 1}), absl::StrCat("common word", i));
  }
  for (const SearchMode mode : {SearchMode::kLexical, SearchMode::kHybrid}) {
    SCOPED_TRACE(mode == SearchMode::kLexical ? "lexical" : "hybrid");
    Put(c.get(), 3, F32({3, 1}), "common word3 zebra");
    TextSearch s;
    s.mode = mode;
    s.text = "zebra";
    const std::vector<uint8_t> q = F32({3, 1});
    s.query = VectorView{ElementType::kFloat32, q};
    std::vector<ScoredHit> hits;
    std::shared_ptr<const ReadMoment> moment;
    ASSERT_TRUE(c->SearchText(Scope{}, s, 1, {}, &hits, nullptr, &moment).ok());
    ASSERT_EQ(hits.size(), 1u);
    ASSERT_EQ(hits[0].id, 3u);
    Put(c.get(), 3, F32({3, 1}), "replaced since");
    const uint64_t ids[] = {3};
    std::vector<PointOutput> found;
    std::vector<uint64_t> missing;
    ASSERT_TRUE(c->Get(Scope{}, ids, false, true, &found, &missing, moment.get()).ok());
    ASSERT_EQ(found.size(), 1u);
    EXPECT_EQ(found[0].payload, "common word3 zebra");
    ASSERT_TRUE(c->Get(Scope{}, ids, false, true, &found, &missing).ok());
    ASSERT_EQ(found.size(), 1u);
    EXPECT_EQ(found[0].payload, "replaced since");
  }
}

}  // namespace
}  // namespace strata
