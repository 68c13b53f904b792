// End-to-end, lexical and hybrid search through the service: the mode each text query gets and
// says it got, both scores per hit, the request checks, lexical search on a server without a
// model, and the lexical side agreeing with the stored points after kill -9.
#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gpu/cross_encoder.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "proto/strata.grpc.pb.h"
#include "tests/gpu/tiny_model.h"
#include "tests/service/server_process.h"
#include "tests/test_util.h"

namespace strata {
namespace {

namespace pb = ::strata::v1;
namespace fs = std::filesystem;
using testing::TempDir;

// Passage i holds a few common words and its own number ("passage 17 ..."), which no other has.
std::vector<std::string> Passages(int n) {
  const std::vector<std::string> words = {"cat",   "sat",    "mat",   "data", "base",
                                          "index", "vector", "query", "disk", "cache"};
  std::mt19937 rng(11);
  std::vector<std::string> out;
  for (int i = 0; i < n; ++i) {
    std::string t = absl::StrCat("passage ", i);
    for (int w = 0; w < 6; ++w) absl::StrAppend(&t, " ", words[rng() % words.size()]);
    out.push_back(t);
  }
  return out;
}

pb::SearchResponse SearchText(pb::Strata::Stub* stub, const std::string& collection,
                              const std::string& text, uint32_t k, grpc::Status* st,
                              pb::SearchMode mode = pb::SEARCH_MODE_UNSPECIFIED,
                              pb::Fusion fusion = pb::FUSION_UNSPECIFIED,
                              std::optional<float> dense_weight = std::nullopt) {
  pb::SearchRequest req;
  req.set_collection(collection);
  req.set_text(text);
  req.set_k(k);
  req.set_mode(mode);
  req.set_fusion(fusion);
  if (dense_weight) req.set_dense_weight(*dense_weight);
  pb::SearchResponse resp;
  *st = Call(&pb::Strata::Stub::Search, stub, req, &resp);
  return resp;
}

TEST(Hybrid, TextQueriesNameTheirModeAndScoreBothSides) {
  TempDir tmp;
  const std::string model = tmp.File("model");
  fs::create_directories(model);
  testing::TinyBertSpec spec;
  testing::TinyWeights weights;
  ASSERT_TRUE(testing::WriteTinyBert(model, spec, &weights).ok());
  ServerProcess server(tmp.File("data"), tmp.File("server.log"), {"--model_dir=" + model});
  ASSERT_NO_FATAL_FAILURE(server.Start());
  const std::vector<std::string> texts = Passages(80);
  {
    std::ofstream f(tmp.File("passages.jsonl"));
    for (size_t i = 0; i < texts.size(); ++i) {
      f << nlohmann::json{{"id", i}, {"text", texts[i]}}.dump() << "\n";
    }
  }
  const std::string log = tmp.File("load.log");
  pid_t load = Spawn({Bin("strata-load"), "--text=" + tmp.File("passages.jsonl"),
                      "--collection=docs", "--server=" + server.address()},
                     log);
  ASSERT_EQ(WaitExit(load), 0) << ReadLog(log);
  pb::DescribeCollectionRequest dreq;
  dreq.set_name("docs");
  pb::CollectionInfo info;
  ASSERT_TRUE(Call(&pb::Strata::Stub::DescribeCollection, server.stub(), dreq, &info).ok());
  EXPECT_EQ(info.text_points(), texts.size());
  EXPECT_GT(info.text_terms(), 80u);
  EXPECT_GT(info.text_memory_bytes(), 0u);

  // The default for a text query over a collection with text: hybrid, relative score, 0.5; every
  // hit scored on both sides, distance = -score.
  grpc::Status st;
  pb::SearchResponse r = SearchText(server.stub(), "docs", "passage 17 cat", 10, &st);
  ASSERT_TRUE(st.ok()) << st.error_message();
  EXPECT_EQ(r.mode(), pb::HYBRID);
  EXPECT_EQ(r.fusion(), pb::RELATIVE_SCORE);
  EXPECT_FLOAT_EQ(r.dense_weight(), 0.5f);
  ASSERT_EQ(r.hits_size(), 10);
  for (const pb::Hit& h : r.hits()) {
    ASSERT_TRUE(h.has_scores());
    EXPECT_TRUE(h.scores().has_dense_distance());
    EXPECT_TRUE(h.scores().has_lexical_score());
    EXPECT_FLOAT_EQ(h.distance(), -h.scores().score());
  }
  for (int i = 1; i < r.hits_size(); ++i) {
    EXPECT_GE(r.hits(i - 1).scores().score(), r.hits(i).scores().score());
  }
  EXPECT_GT(r.stats().embed_micros(), 0u);

  // Lexical: the one passage with the number first, BM25 only, no embedding.
  r = SearchText(server.stub(), "docs", "passage 17", 3, &st, pb::LEXICAL);
  ASSERT_TRUE(st.ok()) << st.error_message();
  EXPECT_EQ(r.mode(), pb::LEXICAL);
  ASSERT_GE(r.hits_size(), 1);
  EXPECT_EQ(r.hits(0).id(), 17u);
  EXPECT_FALSE(r.hits(0).scores().has_dense_distance());
  EXPECT_GT(r.hits(0).scores().lexical_score(), 0.0f);
  EXPECT_EQ(r.stats().embed_micros(), 0u);
  // With all the weight on the lexical side, hybrid ranks as lexical does.
  pb::SearchResponse lexical_only =
      SearchText(server.stub(), "docs", "passage 17", 1, &st, pb::HYBRID, pb::RELATIVE_SCORE, 0);
  ASSERT_TRUE(st.ok()) << st.error_message();
  EXPECT_EQ(lexical_only.hits(0).id(), 17u);
  EXPECT_FLOAT_EQ(lexical_only.dense_weight(), 0.0f);
  // A quoted phrase: only the passage holding it, in both modes.
  for (pb::SearchMode m : {pb::LEXICAL, pb::HYBRID}) {
    r = SearchText(server.stub(), "docs", "\"passage 17\" cat", 5, &st, m);
    ASSERT_TRUE(st.ok()) << st.error_message();
    ASSERT_EQ(r.hits_size(), 1) << m;
    EXPECT_EQ(r.hits(0).id(), 17u);
  }
  r = SearchText(server.stub(), "docs", "passage 17", 5, &st, pb::HYBRID, pb::RECIPROCAL_RANK);
  ASSERT_TRUE(st.ok()) << st.error_message();
  EXPECT_EQ(r.fusion(), pb::RECIPROCAL_RANK);
  // Dense: distances, no scores.
  r = SearchText(server.stub(), "docs", texts[5], 1, &st, pb::DENSE);
  ASSERT_TRUE(st.ok()) << st.error_message();
  EXPECT_EQ(r.mode(), pb::DENSE);
  EXPECT_EQ(r.hits(0).id(), 5u);
  EXPECT_FALSE(r.hits(0).has_scores());
  EXPECT_NEAR(r.hits(0).distance(), -1.0f, 1e-3);
  // A batch takes the mode for every text.
  pb::SearchBatchRequest breq;
  breq.set_collection("docs");
  breq.add_texts("passage 3");
  breq.add_texts("passage 4");
  breq.set_k(1);
  breq.set_mode(pb::LEXICAL);
  pb::SearchBatchResponse bresp;
  ASSERT_TRUE(Call(&pb::Strata::Stub::SearchBatch, server.stub(), breq, &bresp).ok());
  ASSERT_EQ(bresp.results_size(), 2);
  EXPECT_EQ(bresp.results(0).mode(), pb::LEXICAL);
  EXPECT_EQ(bresp.results(0).hits(0).id(), 3u);
  EXPECT_EQ(bresp.results(1).hits(0).id(), 4u);

  // What does not apply is refused, naming the field.
  SearchText(server.stub(), "docs", "cat", 3, &st, pb::DENSE, pb::FUSION_UNSPECIFIED, 0.3f);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(st.error_message().find("dense_weight"), std::string::npos) << st.error_message();
  SearchText(server.stub(), "docs", "cat", 3, &st, pb::HYBRID, pb::FUSION_UNSPECIFIED, 1.5f);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  SearchText(server.stub(), "docs", "cat", 3, &st, static_cast<pb::SearchMode>(9));
  EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  SearchText(server.stub(), "docs", "cat", 3, &st, pb::HYBRID, static_cast<pb::Fusion>(9));
  EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  pb::SearchRequest vreq;
  vreq.set_collection("docs");
  vreq.set_k(1);
  vreq.set_mode(pb::LEXICAL);
  for (int j = 0; j < spec.hidden; ++j) vreq.mutable_query()->add_values(1.0f);
  pb::SearchResponse vresp;
  st = Call(&pb::Strata::Stub::Search, server.stub(), vreq, &vresp);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(st.error_message().find("needs a text query"), std::string::npos) << st.error_message();
  // TuneHybrid: a dry run reports without keeping; a real one is kept, named by Describe, used
  // by hybrid searches that set no weight, and refuses what it cannot learn from.
  pb::TuneHybridRequest treq;
  treq.set_collection("docs");
  for (int i = 0; i < 40; ++i) {
    pb::LabelledQuestion* q = treq.add_questions();
    q->set_text(absl::StrCat("passage ", i));
    q->add_relevant_ids(static_cast<uint64_t>(i));
  }
  treq.set_dry_run(true);
  pb::TuneHybridResponse tresp;
  st = Call(&pb::Strata::Stub::TuneHybrid, server.stub(), treq, &tresp);
  ASSERT_TRUE(st.ok()) << st.error_message();
  EXPECT_EQ(tresp.questions(), 40u);
  ASSERT_EQ(tresp.scores_size(), 11);
  // The texts name their passages, the tiny model's vectors are noise: the lexical side wins.
  EXPECT_LE(tresp.dense_weight(), 0.5f);
  EXPECT_GT(tresp.scores(0).mrr_at_10(), tresp.scores(10).mrr_at_10());
  ASSERT_TRUE(Call(&pb::Strata::Stub::DescribeCollection, server.stub(), dreq, &info).ok());
  EXPECT_FALSE(info.hybrid().learned());
  EXPECT_FLOAT_EQ(info.hybrid().dense_weight(), 0.5f);
  treq.set_dry_run(false);
  ASSERT_TRUE(Call(&pb::Strata::Stub::TuneHybrid, server.stub(), treq, &tresp).ok());
  ASSERT_TRUE(Call(&pb::Strata::Stub::DescribeCollection, server.stub(), dreq, &info).ok());
  EXPECT_TRUE(info.hybrid().learned());
  EXPECT_FLOAT_EQ(info.hybrid().dense_weight(), tresp.dense_weight());
  EXPECT_EQ(info.hybrid().questions(), 40u);
  r = SearchText(server.stub(), "docs", "passage 17", 3, &st);
  ASSERT_TRUE(st.ok()) << st.error_message();
  EXPECT_FLOAT_EQ(r.dense_weight(), tresp.dense_weight());
  r = SearchText(server.stub(), "docs", "passage 17", 3, &st, pb::HYBRID, pb::RECIPROCAL_RANK);
  EXPECT_FLOAT_EQ(r.dense_weight(), 0.5f);  // learned for relative-score fusion only
  treq.mutable_questions(3)->clear_relevant_ids();
  st = Call(&pb::Strata::Stub::TuneHybrid, server.stub(), treq, &tresp);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(st.error_message().find("question 3"), std::string::npos) << st.error_message();
  treq.mutable_questions(3)->add_relevant_ids(987654321);  // not a point of the collection
  st = Call(&pb::Strata::Stub::TuneHybrid, server.stub(), treq, &tresp);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(st.error_message().find("987654321"), std::string::npos) << st.error_message();
  treq.clear_questions();
  st = Call(&pb::Strata::Stub::TuneHybrid, server.stub(), treq, &tresp);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  // An empty text is refused in a batch as in a single search.
  pb::SearchBatchRequest empty;
  empty.set_collection("docs");
  empty.add_texts("passage 1");
  empty.add_texts("");
  empty.set_k(1);
  for (pb::SearchMode m : {pb::LEXICAL, pb::HYBRID}) {
    empty.set_mode(m);
    st = Call(&pb::Strata::Stub::SearchBatch, server.stub(), empty, &bresp);
    EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << m;
    EXPECT_NE(st.error_message().find("text 1 is empty"), std::string::npos) << st.error_message();
  }

  std::string many;
  for (int i = 0; i < 300; ++i) absl::StrAppend(&many, "w", i, " ");
  SearchText(server.stub(), "docs", many, 3, &st, pb::LEXICAL);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_NE(st.error_message().find("distinct terms"), std::string::npos) << st.error_message();
  EXPECT_EQ(server.Stop(), 0);
  // The learned weight survives a restart.
  ASSERT_NO_FATAL_FAILURE(server.Start());
  ASSERT_TRUE(Call(&pb::Strata::Stub::DescribeCollection, server.stub(), dreq, &info).ok());
  EXPECT_TRUE(info.hybrid().learned());
  EXPECT_EQ(server.Stop(), 0);
}

// Points stored with text; `texts[i]` for id i.
void UpsertTexts(pb::Strata::Stub* stub, const std::string& collection, uint64_t first,
                 const std::vector<std::string>& texts, grpc::Status* st) {
  pb::UpsertRequest req;
  req.set_collection(collection);
  for (size_t i = 0; i < texts.size(); ++i) {
    pb::Point* p = req.add_points();
    p->set_id(first + i);
    for (int j = 0; j < 4; ++j)
      p->mutable_vector()->add_values(static_cast<float>((first + i + j) % 7));
    p->mutable_payload()->set_text(texts[i]);
  }
  pb::UpsertResponse resp;
  *st = Call(&pb::Strata::Stub::Upsert, stub, req, &resp);
}

// The second stage: the cross-encoder re-scores the search's best `rerank` candidates and the best
// k by its score come back, scored as the model scores them in-process.
TEST(Hybrid, RerankOrdersTheCandidatesByTheCrossEncoder) {
  TempDir tmp;
  const std::string model = tmp.File("model"), reranker = tmp.File("reranker");
  fs::create_directories(model);
  fs::create_directories(reranker);
  testing::TinyBertSpec spec, cross;
  cross.classifier = true;
  cross.seed = 9;
  testing::TinyWeights weights;
  ASSERT_TRUE(testing::WriteTinyBert(model, spec, &weights).ok());
  ASSERT_TRUE(testing::WriteTinyBert(reranker, cross, &weights).ok());
  // f32 products on both sides, so the server's scores are the in-process model's.
  ServerProcess server(
      tmp.File("data"), tmp.File("server.log"),
      {"--model_dir=" + model, "--reranker_model=" + reranker, "--embed_precision=f32"});
  ASSERT_NO_FATAL_FAILURE(server.Start());
  CreateCollection(server.stub(), "t", 4, pb::FLOAT32);  // lexical search: any vectors
  grpc::Status st;
  const std::vector<std::string> texts = Passages(40);
  UpsertTexts(server.stub(), "t", 0, texts, &st);
  ASSERT_TRUE(st.ok()) << st.error_message();

  const std::string question = "passage 17 cat";
  pb::SearchRequest req;
  req.set_collection("t");
  req.set_text(question);
  req.set_mode(pb::LEXICAL);
  req.set_k(20);
  pb::SearchResponse first;  // the candidates, in the search's order
  ASSERT_TRUE(Call(&pb::Strata::Stub::Search, server.stub(), req, &first).ok());
  ASSERT_EQ(first.hits_size(), 20);
  req.set_k(5);
  req.set_rerank(20);
  pb::SearchResponse r;
  st = Call(&pb::Strata::Stub::Search, server.stub(), req, &r);
  ASSERT_TRUE(st.ok()) << st.error_message();
  EXPECT_EQ(r.reranked(), 20u);
  ASSERT_EQ(r.hits_size(), 5);
  EXPECT_GT(r.stats().rerank_micros(), 0u);

  gpu::EncoderOptions o;
  o.backend = gpu::BackendChoice::kCpu;
  o.matmul = gpu::MatmulPrecision::kNative;
  auto ce = gpu::CrossEncoder::Open(reranker, o);
  ASSERT_TRUE(ce.ok()) << ce.status();
  std::vector<absl::string_view> candidates;
  for (const pb::Hit& h : first.hits()) candidates.push_back(texts[h.id()]);
  auto scores = (*ce)->Score(question, candidates);
  ASSERT_TRUE(scores.ok()) << scores.status();
  std::vector<std::pair<float, uint64_t>> want;
  for (int i = 0; i < first.hits_size(); ++i) want.emplace_back((*scores)[i], first.hits(i).id());
  std::stable_sort(want.begin(), want.end(),
                   [](const auto& a, const auto& b) { return a.first > b.first; });
  for (int i = 0; i < r.hits_size(); ++i) {
    const pb::Hit& h = r.hits(i);
    ASSERT_TRUE(h.scores().has_rerank_score());
    EXPECT_NEAR(h.scores().rerank_score(), want[i].first, 1e-3) << i;
    EXPECT_EQ(h.id(), want[i].second) << i;
    EXPECT_FLOAT_EQ(h.distance(), -h.scores().rerank_score());
    EXPECT_FALSE(h.has_payload()) << "payloads only when asked for";
  }
  req.set_with_payload(true);
  ASSERT_TRUE(Call(&pb::Strata::Stub::Search, server.stub(), req, &r).ok());
  EXPECT_EQ(r.hits(0).payload().text(), texts[r.hits(0).id()]);
  pb::StatsRequest sreq;
  pb::StatsResponse stats;
  ASSERT_TRUE(Call(&pb::Strata::Stub::Stats, server.stub(), sreq, &stats).ok());
  EXPECT_EQ(stats.rerank().model(), "reranker");
  EXPECT_EQ(stats.rerank().calls(), 2u);
  EXPECT_EQ(stats.rerank().pairs(), 40u);
  EXPECT_GT(stats.rerank().tokens(), 40u * 3);
  EXPECT_EQ(stats.rerank().refused(), 0u);

  // The depth goes from k to 100, and needs a text query.
  for (uint32_t depth : {4u, 101u}) {
    req.set_rerank(depth);
    st = Call(&pb::Strata::Stub::Search, server.stub(), req, &r);
    EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << depth;
    EXPECT_NE(st.error_message().find("rerank"), std::string::npos) << st.error_message();
  }
  req.clear_text();
  req.set_rerank(10);
  for (int j = 0; j < 4; ++j) req.mutable_query()->add_values(0.5f);
  st = Call(&pb::Strata::Stub::Search, server.stub(), req, &r);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << st.error_message();
}

// Without a model a text query is lexical; dense and hybrid say why they cannot answer.
TEST(Hybrid, AServerWithoutAModelSearchesLexically) {
  TempDir tmp;
  ServerProcess server(tmp.File("data"), tmp.File("server.log"));
  ASSERT_NO_FATAL_FAILURE(server.Start());
  CreateCollection(server.stub(), "t", 4, pb::FLOAT32);
  grpc::Status st;
  UpsertTexts(server.stub(), "t", 0, Passages(30), &st);
  ASSERT_TRUE(st.ok()) << st.error_message();
  pb::SearchResponse r = SearchText(server.stub(), "t", "Passage 12!", 2, &st);
  ASSERT_TRUE(st.ok()) << st.error_message();
  EXPECT_EQ(r.mode(), pb::LEXICAL);
  EXPECT_EQ(r.hits(0).id(), 12u);
  for (pb::SearchMode m : {pb::DENSE, pb::HYBRID}) {
    SearchText(server.stub(), "t", "passage 12", 2, &st, m);
    EXPECT_EQ(st.error_code(), grpc::StatusCode::FAILED_PRECONDITION) << m;
    EXPECT_NE(st.error_message().find("--model_dir"), std::string::npos) << st.error_message();
  }
  {  // Reranking needs the server's cross-encoder; a malformed request is malformed anyway.
    pb::SearchRequest req;
    req.set_collection("t");
    req.set_text("passage 12");
    req.set_k(2);
    req.set_rerank(101);
    pb::SearchResponse resp;
    st = Call(&pb::Strata::Stub::Search, server.stub(), req, &resp);
    EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << st.error_message();
    req.set_rerank(10);
    st = Call(&pb::Strata::Stub::Search, server.stub(), req, &resp);
    EXPECT_EQ(st.error_code(), grpc::StatusCode::FAILED_PRECONDITION) << st.error_message();
    EXPECT_NE(st.error_message().find("--reranker_model"), std::string::npos) << st.error_message();
    // A query of only white space asks nothing.
    req.set_rerank(0);
    req.set_text(" \t ");
    st = Call(&pb::Strata::Stub::Search, server.stub(), req, &resp);
    EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << st.error_message();
    EXPECT_NE(st.error_message().find("white space"), std::string::npos) << st.error_message();
    // Nor does one of invisible characters.
    req.set_text("\u200b\u2060");
    st = Call(&pb::Strata::Stub::Search, server.stub(), req, &resp);
    EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << st.error_message();
    EXPECT_NE(st.error_message().find("no words"), std::string::npos) << st.error_message();
  }
  pb::TuneHybridRequest treq;
  treq.set_collection("t");
  pb::LabelledQuestion* q = treq.add_questions();
  q->set_text("passage 12");
  q->add_relevant_ids(12);
  pb::TuneHybridResponse tresp;
  st = Call(&pb::Strata::Stub::TuneHybrid, server.stub(), treq, &tresp);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::FAILED_PRECONDITION) << st.error_message();
  // Named JSON fields are indexed with the text: a string, or an array of strings.
  {
    pb::CreateCollectionRequest creq;
    creq.set_name("titled");
    creq.set_dimension(4);
    creq.set_element_type(pb::FLOAT32);
    creq.set_metric(pb::L2);
    creq.add_text_fields("title");
    creq.add_text_fields("tags");
    pb::CollectionInfo cinfo;
    ASSERT_TRUE(Call(&pb::Strata::Stub::CreateCollection, server.stub(), creq, &cinfo).ok());
    EXPECT_EQ(cinfo.text_fields_size(), 2);
    pb::UpsertRequest ureq;
    ureq.set_collection("titled");
    pb::Point* p = ureq.add_points();
    p->set_id(5);
    for (int j = 0; j < 4; ++j) p->mutable_vector()->add_values(1.0f);
    p->mutable_payload()->set_text("body words");
    p->mutable_payload()->set_json(
        R"({"title": "Aardvark facts", "tags": ["burrow", 7], "other": "ignored"})");
    pb::UpsertResponse uresp;
    ASSERT_TRUE(Call(&pb::Strata::Stub::Upsert, server.stub(), ureq, &uresp).ok());
    for (const char* word : {"aardvarks", "burrow", "body"}) {
      r = SearchText(server.stub(), "titled", word, 3, &st, pb::LEXICAL);
      ASSERT_TRUE(st.ok()) << st.error_message();
      ASSERT_EQ(r.hits_size(), 1) << word;
      EXPECT_EQ(r.hits(0).id(), 5u);
    }
    r = SearchText(server.stub(), "titled", "ignored", 3, &st, pb::LEXICAL);
    EXPECT_EQ(r.hits_size(), 0);
    creq.set_name("badfields");
    creq.clear_text_fields();
    creq.add_text_fields("title");
    creq.add_text_fields("title");
    st = Call(&pb::Strata::Stub::CreateCollection, server.stub(), creq, &cinfo);
    EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_NE(st.error_message().find("named twice"), std::string::npos) << st.error_message();
    creq.clear_text_fields();
    creq.add_text_fields("a b");
    st = Call(&pb::Strata::Stub::CreateCollection, server.stub(), creq, &cinfo);
    EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_NE(st.error_message().find("text field"), std::string::npos) << st.error_message();
  }
  // A collection without text: nothing lexical to answer with, and no model either.
  CreateCollection(server.stub(), "bare", 4, pb::FLOAT32);
  SearchText(server.stub(), "bare", "passage", 2, &st);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  r = SearchText(server.stub(), "bare", "passage", 2, &st, pb::LEXICAL);
  EXPECT_TRUE(st.ok()) << st.error_message();
  EXPECT_EQ(r.hits_size(), 0);
  EXPECT_EQ(server.Stop(), 0);
}

// The crash harness for the lexical side: writers upsert and delete texted points while the
// server is killed with SIGKILL, three times. After each restart the lexical index agrees with
// the stored points on every id (found by its own word if and only if Get finds it, with the
// text Get returns), and nothing acknowledged is missing.
TEST(Hybrid, AfterKillNineTheLexicalSideAgreesWithTheStoredPoints) {
  TempDir tmp;
  ServerProcess server(tmp.File("data"), tmp.File("server.log"));
  ASSERT_NO_FATAL_FAILURE(server.Start());
  CreateCollection(server.stub(), "k", 4, pb::FLOAT32);
  constexpr uint64_t kIds = 400;
  // The text of id i at version v: a word naming both ("idNvV"), so a stale version is visible.
  const auto text_of = [](uint64_t id, int v) { return absl::StrCat("id", id, "v", v, " common"); };
  std::mutex mu;
  std::map<uint64_t, std::optional<std::string>> acked;  // id -> acknowledged text (none: deleted)
  std::map<uint64_t, std::set<std::string>> words;       // id -> every own word ever sent for it
  for (int round = 0; round < 3; ++round) {
    std::set<uint64_t> uncertain;  // ids of calls that failed: applied or not, either is right
    std::atomic<bool> stop{false};
    std::atomic<int> calls{0};  // acknowledged this round
    std::thread writer([&] {
      std::mt19937 rng(static_cast<unsigned>(round));
      auto stub = pb::Strata::NewStub(
          grpc::CreateChannel(server.address(), grpc::InsecureChannelCredentials()));
      for (int v = round * 1000; !stop.load(); ++v) {
        const uint64_t first = rng() % (kIds - 8);
        if (rng() % 4 == 0) {
          pb::DeleteRequest req;
          req.set_collection("k");
          req.add_ids(first);
          pb::DeleteResponse resp;
          const bool ok = Call(&pb::Strata::Stub::Delete, stub.get(), req, &resp).ok();
          std::lock_guard<std::mutex> lock(mu);
          if (ok) {
            ++calls;
            acked[first] = std::nullopt;
          } else {
            uncertain.insert(first);
          }
          continue;
        }
        std::vector<std::string> texts;
        for (uint64_t i = 0; i < 8; ++i) {
          texts.push_back(text_of(first + i, v));
          std::lock_guard<std::mutex> lock(mu);
          words[first + i].insert(texts.back().substr(0, texts.back().find(' ')));
        }
        grpc::Status st;
        UpsertTexts(stub.get(), "k", first, texts, &st);
        std::lock_guard<std::mutex> lock(mu);
        if (st.ok()) ++calls;
        for (uint64_t i = 0; i < 8; ++i) {
          if (st.ok()) {
            acked[first + i] = texts[i];
          } else {
            uncertain.insert(first + i);
          }
        }
      }
    });
    // Killed in the middle of the writes, later each round.
    while (calls.load() < 20 + 40 * round)
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    server.Kill();
    stop = true;
    writer.join();
    ASSERT_NO_FATAL_FAILURE(server.Start());

    pb::GetRequest get;
    get.set_collection("k");
    get.set_with_payload(true);
    for (uint64_t i = 0; i < kIds; ++i) get.add_ids(i);
    pb::GetResponse got;
    grpc::Status gs = Call(&pb::Strata::Stub::Get, server.stub(), get, &got);
    ASSERT_TRUE(gs.ok()) << gs.error_message();
    std::map<uint64_t, std::string> stored;
    for (const pb::Point& p : got.points()) stored[p.id()] = p.payload().text();
    std::lock_guard<std::mutex> lock(mu);
    for (auto& [id, text] : acked) {
      // The last acknowledged write of each id holds, unless a later call that got no answer
      // (in flight at the kill) may have changed it: then what is stored is the truth from now.
      auto it = stored.find(id);
      if (uncertain.count(id)) {
        text = it == stored.end() ? std::nullopt : std::optional<std::string>(it->second);
        continue;
      }
      ASSERT_EQ(it != stored.end(), text.has_value()) << "id " << id;
      if (text.has_value()) {
        EXPECT_EQ(it->second, *text) << "id " << id;
      }
    }
    for (uint64_t id = 0; id < kIds; ++id) {
      auto it = stored.find(id);
      if (it == stored.end()) {
        // Absent: none of the words it ever had finds it.
        for (const std::string& word : words[id]) {
          grpc::Status st;
          pb::SearchResponse r = SearchText(server.stub(), "k", word, 5, &st, pb::LEXICAL);
          ASSERT_TRUE(st.ok()) << st.error_message();
          EXPECT_EQ(r.hits_size(), 0) << "deleted id " << id << " still found by " << word;
        }
        continue;
      }
      // Present: its own word (the version it holds) finds it, and only it; its older words
      // find nothing.
      const std::string word = it->second.substr(0, it->second.find(' '));
      for (const std::string& w : words[id]) {
        grpc::Status st;
        pb::SearchResponse r = SearchText(server.stub(), "k", w, 5, &st, pb::LEXICAL);
        ASSERT_TRUE(st.ok()) << st.error_message();
        if (w == word) {
          ASSERT_EQ(r.hits_size(), 1) << w;
          EXPECT_EQ(r.hits(0).id(), id) << w;
        } else {
          EXPECT_EQ(r.hits_size(), 0) << "id " << id << " still found by its old word " << w;
        }
      }
    }
    pb::DescribeCollectionRequest dreq;
    dreq.set_name("k");
    pb::CollectionInfo info;
    ASSERT_TRUE(Call(&pb::Strata::Stub::DescribeCollection, server.stub(), dreq, &info).ok());
    EXPECT_EQ(info.text_points(), info.count());
    EXPECT_EQ(info.count(), stored.size());
  }
  EXPECT_EQ(server.Stop(), 0);
}

}  // namespace
}  // namespace strata
