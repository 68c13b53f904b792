// End-to-end, Generate through the real server with a tiny random decoder: the stream's shape
// (text pieces, then one summary), the passage KV cache (computed once, then hits; invalidated by
// an upsert), cached assembly with everything recomputed answering exactly as full prefill,
// the request checks, a client that goes away, the bound on Generate calls, and a server without
// a decoder.
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "proto/strata.grpc.pb.h"
#include "tests/gpu/tiny_decoder.h"
#include "tests/service/server_process.h"
#include "tests/test_util.h"

namespace strata {
namespace {

namespace pb = ::strata::v1;
using testing::TempDir;

void UpsertTexts(pb::Strata::Stub* stub, const std::string& collection,
                 const std::vector<std::pair<uint64_t, std::string>>& points) {
  pb::UpsertRequest req;
  req.set_collection(collection);
  for (const auto& [id, text] : points) {
    pb::Point* p = req.add_points();
    p->set_id(id);
    for (int j = 0; j < 4; ++j) p->mutable_vector()->add_values(static_cast<float>((id + j) % 7));
    p->mutable_payload()->set_text(text);
    p->mutable_payload()->set_json(absl::StrCat(R"({"title":"doc )", id, R"("})"));
  }
  pb::UpsertResponse resp;
  const grpc::Status st = Call(&pb::Strata::Stub::Upsert, stub, req, &resp);
  ASSERT_TRUE(st.ok()) << st.error_message();
}

struct Answer {
  std::string text;
  int pieces = 0;
  bool summary = false;
  pb::GenerateSummary s;
  grpc::Status status;
};

Answer Ask(pb::Strata::Stub* stub, const pb::GenerateRequest& req) {
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(120));
  auto reader = stub->Generate(&ctx, req);
  Answer a;
  pb::GenerateResponse m;
  while (reader->Read(&m)) {
    EXPECT_FALSE(a.summary) << "a message after the summary";
    if (m.has_summary()) {
      a.summary = true;
      a.s = m.summary();
    } else {
      a.text += m.text();
      ++a.pieces;
    }
  }
  a.status = reader->Finish();
  return a;
}

pb::GenerateRequest Question(const std::string& q, pb::KvCacheMode mode) {
  pb::GenerateRequest r;
  r.set_collection("docs");
  r.set_question(q);
  r.set_k(3);
  r.set_cache_mode(mode);
  r.mutable_params()->set_max_tokens(12);
  return r;
}

class GenerateTest : public ::testing::Test {
 protected:
  void SetUp() override {
    testing::TinyDecoderSpec spec;
    spec.context = 4096;
    ASSERT_TRUE(testing::WriteTinyDecoder(spec, tmp_.File("tiny.gguf")).ok());
    server_ = std::make_unique<ServerProcess>(
        tmp_.File("data"), tmp_.File("server.log"),
        std::vector<std::string>{"--decoder=" + tmp_.File("tiny.gguf"),
                                 "--max_generation_tokens=64", "--kv_cache_disk_mb=1"});
    ASSERT_NO_FATAL_FAILURE(server_->Start());
    CreateCollection(server_->stub(), "docs", 4, pb::FLOAT32);
    std::vector<std::pair<uint64_t, std::string>> points;
    for (uint64_t i = 0; i < 12; ++i) {
      points.emplace_back(i, absl::StrCat("hello world number ", i, " tells about ",
                                          i % 2 ? "cats and mats" : "disks and caches"));
    }
    ASSERT_NO_FATAL_FAILURE(UpsertTexts(server_->stub(), "docs", points));
  }
  // The passage KV cache's entries, in RAM and on disk (Stats).
  uint64_t CacheEntries() {
    pb::StatsResponse stats;
    EXPECT_TRUE(Call(&pb::Strata::Stub::Stats, server_->stub(), pb::StatsRequest{}, &stats).ok());
    return stats.generation().cache_entries();
  }
  TempDir tmp_;
  std::unique_ptr<ServerProcess> server_;
};

TEST_F(GenerateTest, StreamsTextThenASummaryAndReusesPassageKv) {
  const Answer a = Ask(server_->stub(), Question("hello world number 5?", pb::CACHED_INT8));
  ASSERT_TRUE(a.status.ok()) << a.status.error_code() << " " << a.status.error_message();
  ASSERT_TRUE(a.summary);
  const pb::GenerateSummary& s = a.s;
  EXPECT_EQ(s.retrieval_mode(), pb::LEXICAL);  // no embedding model on this server
  ASSERT_EQ(s.citations_size(), 3);
  EXPECT_EQ(s.citations(0).id(), 5u);  // "number 5" is only in passage 5
  EXPECT_EQ(s.citations(0).number(), 1u);
  EXPECT_EQ(s.citations(0).payload().json(), R"({"title":"doc 5"})");
  EXPECT_GT(s.usage().prompt_tokens(), s.usage().cached_tokens());
  EXPECT_GT(s.usage().cached_tokens(), 0u);
  EXPECT_GT(s.usage().generated_tokens(), 0u);
  EXPECT_LE(s.usage().generated_tokens(), 12u);
  EXPECT_EQ(s.cache().format(), "int8");
  EXPECT_EQ(s.cache().misses(), 3u);
  EXPECT_EQ(s.cache().ram_hits(), 0u);
  EXPECT_GT(s.timings().ttft_ms(), 0.0f);
  EXPECT_FALSE(s.finish_reason().empty());
  EXPECT_FALSE(s.model().empty());
  // Text arrives as valid UTF-8 pieces (the tiny model writes arbitrary bytes).
  EXPECT_GT(a.pieces, 0);

  // The same question: the passages' entries come from RAM now, and the answer is the same.
  const Answer b = Ask(server_->stub(), Question("hello world number 5?", pb::CACHED_INT8));
  ASSERT_TRUE(b.status.ok()) << b.status.error_message();
  EXPECT_EQ(b.s.cache().ram_hits(), 3u);
  EXPECT_EQ(b.s.cache().misses(), 0u);
  EXPECT_EQ(b.text, a.text);

  // An upsert of passage 5 (new text) drops its entries: one miss again.
  ASSERT_NO_FATAL_FAILURE(UpsertTexts(server_->stub(), "docs", {{5, "hello world number 5 anew"}}));
  const Answer c = Ask(server_->stub(), Question("hello world number 5?", pb::CACHED_INT8));
  ASSERT_TRUE(c.status.ok()) << c.status.error_message();
  EXPECT_EQ(c.s.cache().misses(), 1u);
  EXPECT_EQ(c.s.cache().ram_hits(), 2u);
  // Stats count each miss once, as the summaries do (3 + 0 + 1), and the entries made for them.
  pb::StatsResponse stats;
  ASSERT_TRUE(Call(&pb::Strata::Stub::Stats, server_->stub(), pb::StatsRequest(), &stats).ok());
  EXPECT_EQ(stats.generation().cache_misses(), 4u);
  EXPECT_EQ(stats.generation().entries_made(), 4u);
}

// /metrics has the decoder's answers and passage cache, as Stats.generation does.
TEST_F(GenerateTest, MetricsCountAnswersAndPassageEntries) {
  // The same server again, with its metrics served.
  EXPECT_EQ(server_->Stop(), 0);
  const int metrics_port = FreePort();
  server_ = std::make_unique<ServerProcess>(
      tmp_.File("data"), tmp_.File("server.log"),
      std::vector<std::string>{"--decoder=" + tmp_.File("tiny.gguf"), "--kv_cache_disk_mb=1",
                               absl::StrCat("--metrics_listen=127.0.0.1:", metrics_port)});
  ASSERT_NO_FATAL_FAILURE(server_->Start());
  const Answer a = Ask(server_->stub(), Question("tell me about cats", pb::CACHED_INT8));
  ASSERT_TRUE(a.status.ok()) << a.status.error_message();
  const std::string body = HttpGet(metrics_port, "/metrics");
  EXPECT_NE(body.find("\nstrata_generation_completed_total 1\n"), std::string::npos) << body;
  EXPECT_NE(body.find("\nstrata_generation_cancelled_total 0\n"), std::string::npos) << body;
  EXPECT_NE(
      body.find(absl::StrCat("\nstrata_passage_kv_misses_total ", a.s.cache().misses(), "\n")),
      std::string::npos)
      << body;
  EXPECT_NE(body.find(absl::StrCat("\nstrata_passage_kv_entries ", CacheEntries(), "\n")),
            std::string::npos)
      << body;
}

TEST_F(GenerateTest, EverythingRecomputedAnswersExactlyAsFullPrefill) {
  pb::GenerateRequest full = Question("tell me about cats", pb::FULL_PREFILL);
  const Answer f = Ask(server_->stub(), full);
  ASSERT_TRUE(f.status.ok()) << f.status.error_message();
  EXPECT_EQ(f.s.usage().cached_tokens(), 0u);
  EXPECT_EQ(f.s.cache().format(), "");
  for (pb::KvCacheMode m : {pb::CACHED_F16, pb::CACHED_INT8, pb::CACHED_INT4}) {
    pb::GenerateRequest all = Question("tell me about cats", m);
    all.set_recompute_ratio(1.0f);
    const Answer a = Ask(server_->stub(), all);
    ASSERT_TRUE(a.status.ok()) << a.status.error_code() << " " << a.status.error_message();
    EXPECT_EQ(a.text, f.text) << m;
    // Every passage token; the shared instructions are exact where they are cached (position 0).
    EXPECT_GT(a.s.usage().recomputed_tokens(), 0u) << m;
    EXPECT_LT(a.s.usage().recomputed_tokens(), a.s.usage().cached_tokens()) << m;
  }
}

TEST_F(GenerateTest, RefusesBadRequestsByName) {
  auto code = [&](const pb::GenerateRequest& r) { return Ask(server_->stub(), r).status; };
  pb::GenerateRequest r = Question("q", pb::CACHED_INT8);
  r.set_k(17);
  EXPECT_EQ(code(r).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  r = Question("", pb::CACHED_INT8);
  EXPECT_EQ(code(r).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  r = Question(" \t\n ", pb::CACHED_INT8);
  EXPECT_EQ(code(r).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  // Invisible characters alone (a zero-width space, a byte-order mark) ask nothing either.
  r = Question("\u200b \ufeff", pb::CACHED_INT8);
  grpc::Status blank = code(r);
  EXPECT_EQ(blank.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(blank.error_message().find("invisible"), std::string::npos) << blank.error_message();
  r = Question("q", pb::CACHED_INT8);
  r.mutable_params()->set_max_tokens(65);
  grpc::Status s = code(r);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(s.error_message().find("max_generation_tokens"), std::string::npos)
      << s.error_message();
  r = Question("q", pb::CACHED_INT8);
  r.mutable_params()->set_temperature(-1);
  EXPECT_EQ(code(r).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  r = Question("q", pb::CACHED_INT8);
  r.set_recompute_ratio(2);
  EXPECT_EQ(code(r).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  r = Question("q", pb::CACHED_INT8);
  r.set_recompute_first(4294967295u);  // named as sent
  s = code(r);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(s.error_message().find("recompute_first 4294967295 "), std::string::npos)
      << s.error_message();
  r = Question("q", pb::CACHED_INT8);
  r.mutable_params()->add_stop("");
  EXPECT_EQ(code(r).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  // Over a limit of what a request carries is RESOURCE_EXHAUSTED, naming the limit.
  r = Question("q", pb::CACHED_INT8);
  r.mutable_params()->add_stop(std::string(65, 's'));
  s = code(r);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_NE(s.error_message().find("at most 64"), std::string::npos) << s.error_message();
  r = Question("q", pb::CACHED_INT8);
  for (int i = 0; i < 9; ++i) r.mutable_params()->add_stop("s");
  EXPECT_EQ(code(r).error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  r = Question("q", static_cast<pb::KvCacheMode>(42));
  EXPECT_EQ(code(r).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  r = Question("q", pb::CACHED_INT8);
  r.set_collection("nope");
  EXPECT_EQ(code(r).error_code(), grpc::StatusCode::NOT_FOUND);
  r = Question(std::string(2000, 'q') + " " + std::string(2000, 'z'), pb::CACHED_INT8);
  EXPECT_EQ(code(r).error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);  // over 256 tokens
  // Nothing to answer from: a collection without text, a search that finds no passage.
  CreateCollection(server_->stub(), "bare", 4, pb::FLOAT32);
  r = Question("hello", pb::CACHED_INT8);
  r.set_collection("bare");
  s = code(r);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_NE(s.error_message().find("no passage text"), std::string::npos) << s.error_message();
  r = Question("zzyzx qwertyuiop", pb::CACHED_INT8);  // no word of it in the passages
  r.set_mode(pb::LEXICAL);
  s = code(r);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_NE(s.error_message().find("found no passage"), std::string::npos) << s.error_message();
  r = Question(std::string(70000, 'a'), pb::CACHED_INT8);  // over --max_text_bytes
  s = code(r);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_NE(s.error_message().find("question has 70000 bytes"), std::string::npos)
      << s.error_message();
  // The server still answers.
  EXPECT_TRUE(Ask(server_->stub(), Question("hello", pb::CACHED_INT8)).status.ok());
}

TEST_F(GenerateTest, AClientThatGoesAwayStopsItsGeneration) {
  pb::GenerateRequest r = Question("hello world", pb::CACHED_INT8);
  r.mutable_params()->set_max_tokens(64);
  r.mutable_params()->set_temperature(1.0f);
  {
    grpc::ClientContext ctx;
    auto reader = server_->stub()->Generate(&ctx, r);
    pb::GenerateResponse m;
    reader->Read(&m);
    ctx.TryCancel();
    while (reader->Read(&m)) {
    }
    EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::CANCELLED);
  }
  for (int i = 0; i < 3; ++i) {
    EXPECT_TRUE(Ask(server_->stub(), Question("hello", pb::CACHED_INT8)).status.ok());
  }
  EXPECT_EQ(server_->Stop(), 0);
}

// Custom instructions (`system`) get their own prefix, made once and reused: the same answer
// twice, and passages cached either way; instructions over 512 tokens are refused.
TEST_F(GenerateTest, CustomInstructionsAnswerAndAreReused) {
  pb::GenerateRequest r = Question("tell me about disks", pb::CACHED_INT8);
  r.set_system("Answer in one short sentence.");
  const Answer a = Ask(server_->stub(), r);
  ASSERT_TRUE(a.status.ok()) << a.status.error_message();
  EXPECT_EQ(a.s.citations_size(), 3);
  const Answer b = Ask(server_->stub(), r);
  ASSERT_TRUE(b.status.ok()) << b.status.error_message();
  EXPECT_EQ(b.text, a.text);
  EXPECT_EQ(b.s.cache().misses(), 0u);
  std::string longer;
  for (int i = 0; i < 600; ++i) absl::StrAppend(&longer, "word", i, " ");
  r.set_system(longer);
  const Answer c = Ask(server_->stub(), r);
  EXPECT_EQ(c.status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_NE(c.status.error_message().find("512 tokens"), std::string::npos)
      << c.status.error_message();
}

// PrecomputePassageKv makes the entries Generate would, so a first question finds them all.
TEST_F(GenerateTest, PrecomputedPassagesAreHitsOnTheFirstQuestion) {
  pb::UpsertRequest bare;  // a point without text
  bare.set_collection("docs");
  pb::Point* p = bare.add_points();
  p->set_id(50);
  for (int j = 0; j < 4; ++j) p->mutable_vector()->add_values(1.0f + j);
  pb::UpsertResponse upserted;
  ASSERT_TRUE(Call(&pb::Strata::Stub::Upsert, server_->stub(), bare, &upserted).ok());
  pb::PrecomputePassageKvRequest req;
  req.set_collection("docs");
  for (uint64_t id = 0; id < 12; ++id) req.add_ids(id);
  req.add_ids(50);
  req.add_ids(99);  // unknown
  req.add_ids(3);   // twice: made once, counted once
  pb::PrecomputePassageKvResponse resp;
  grpc::Status st = Call(&pb::Strata::Stub::PrecomputePassageKv, server_->stub(), req, &resp);
  ASSERT_TRUE(st.ok()) << st.error_message();
  EXPECT_EQ(resp.computed(), 12u);
  EXPECT_EQ(resp.already_cached(), 0u);
  EXPECT_EQ(resp.without_text(), 1u);
  ASSERT_EQ(resp.missing_ids_size(), 1);
  EXPECT_EQ(resp.missing_ids(0), 99u);
  EXPECT_GT(resp.bytes(), 0u);
  EXPECT_EQ(resp.evictions(), 0u);
  EXPECT_GE(resp.cache_capacity_bytes(), resp.cache_bytes());
  // Again: nothing to make.
  ASSERT_TRUE(Call(&pb::Strata::Stub::PrecomputePassageKv, server_->stub(), req, &resp).ok());
  EXPECT_EQ(resp.computed(), 0u);
  EXPECT_EQ(resp.already_cached(), 12u);
  // The first question: every passage is a hit.
  const Answer a = Ask(server_->stub(), Question("tell me about cats", pb::CACHED_INT8));
  ASSERT_TRUE(a.status.ok()) << a.status.error_message();
  EXPECT_EQ(a.s.cache().misses(), 0u);
  EXPECT_EQ(a.s.cache().ram_hits() + a.s.cache().disk_hits(),
            static_cast<uint32_t>(a.s.citations_size()));
  // Another format is another entry.
  req.set_cache_mode(pb::CACHED_INT4);
  ASSERT_TRUE(Call(&pb::Strata::Stub::PrecomputePassageKv, server_->stub(), req, &resp).ok());
  EXPECT_EQ(resp.computed(), 12u);
  // Refusals.
  auto code = [&](const pb::PrecomputePassageKvRequest& r) {
    pb::PrecomputePassageKvResponse unused;
    return Call(&pb::Strata::Stub::PrecomputePassageKv, server_->stub(), r, &unused).error_code();
  };
  pb::PrecomputePassageKvRequest full = req;
  full.set_cache_mode(pb::FULL_PREFILL);
  EXPECT_EQ(code(full), grpc::StatusCode::INVALID_ARGUMENT);
  pb::PrecomputePassageKvRequest none;
  none.set_collection("docs");
  EXPECT_EQ(code(none), grpc::StatusCode::INVALID_ARGUMENT);
  pb::PrecomputePassageKvRequest many;
  many.set_collection("docs");
  for (uint64_t id = 0; id <= 16384; ++id) many.add_ids(id);  // one over --max_batch
  EXPECT_EQ(code(many), grpc::StatusCode::RESOURCE_EXHAUSTED);
  pb::PrecomputePassageKvRequest nowhere = req;
  nowhere.set_collection("nope");
  EXPECT_EQ(code(nowhere), grpc::StatusCode::NOT_FOUND);
}

// Dropping a tenant deletes the points it created, and their cached passage entries go with
// them (nothing derived from their text is kept, in RAM or on disk).
TEST_F(GenerateTest, ATenantsDeletedPointsLeaveNoCachedEntries) {
  pb::CreateTenantRequest create;
  create.set_collection("docs");
  create.set_name("t");
  pb::TenantInfo created;
  ASSERT_TRUE(Call(&pb::Strata::Stub::CreateTenant, server_->stub(), create, &created).ok());
  pb::UpsertRequest up;
  up.set_collection("docs");
  up.set_tenant("t");
  pb::PrecomputePassageKvRequest pre;
  pre.set_collection("docs");
  for (uint64_t id = 100; id < 104; ++id) {
    pb::Point* p = up.add_points();
    p->set_id(id);
    for (int j = 0; j < 4; ++j) p->mutable_vector()->add_values(static_cast<float>(id % 5 + j));
    p->mutable_payload()->set_text(absl::StrCat("the tenant's own passage ", id));
    pre.add_ids(id);
  }
  pb::UpsertResponse upserted;
  ASSERT_TRUE(Call(&pb::Strata::Stub::Upsert, server_->stub(), up, &upserted).ok());
  ASSERT_EQ(upserted.upserted(), 4u);
  const uint64_t before = CacheEntries();
  pb::PrecomputePassageKvResponse made;
  ASSERT_TRUE(Call(&pb::Strata::Stub::PrecomputePassageKv, server_->stub(), pre, &made).ok());
  ASSERT_EQ(made.computed(), 4u);
  ASSERT_EQ(CacheEntries(), before + 4);
  pb::DropTenantRequest drop;
  drop.set_collection("docs");
  drop.set_name("t");
  pb::DropTenantResponse dropped;
  ASSERT_TRUE(Call(&pb::Strata::Stub::DropTenant, server_->stub(), drop, &dropped).ok());
  EXPECT_EQ(dropped.deleted_points(), 4u);
  EXPECT_EQ(CacheEntries(), before);
}

// Entries on disk whose collection or point no longer exists (left by a crash between a drop or
// a delete and the cache's invalidation, or an earlier version) are removed when the server
// starts. Here two entry files are renamed to stand for such passages while the server is down.
TEST_F(GenerateTest, EntriesOfPassagesGoneAreRemovedAtStart) {
  pb::PrecomputePassageKvRequest pre;
  pre.set_collection("docs");
  for (uint64_t id = 0; id < 12; ++id) pre.add_ids(id);
  pb::PrecomputePassageKvResponse made;
  ASSERT_TRUE(Call(&pb::Strata::Stub::PrecomputePassageKv, server_->stub(), pre, &made).ok());
  ASSERT_EQ(made.computed(), 12u);
  ASSERT_EQ(server_->Stop(), 0);  // (what RAM holds is written to disk)
  const std::string dir = tmp_.File("data") + "/kv-cache";
  std::vector<std::string> names;
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    names.push_back(e.path().filename().string());
  }
  ASSERT_EQ(names.size(), 12u);
  // <model>-<collection>-<id>-<version>-<format>: one of collection "gone", one of point 999.
  const std::string docs = absl::StrCat("-", absl::BytesToHexString("docs"), "-");
  const std::string gone = absl::StrCat("-", absl::BytesToHexString("gone"), "-");
  const size_t at = names[0].find(docs);
  ASSERT_NE(at, std::string::npos);
  std::filesystem::rename(dir + "/" + names[0], dir + "/" + names[0].substr(0, at) + gone +
                                                    names[0].substr(at + docs.size()));
  const size_t id_at = names[1].find(docs) + docs.size();
  const size_t id_end = names[1].find('-', id_at);
  std::filesystem::rename(dir + "/" + names[1],
                          dir + "/" + names[1].substr(0, id_at) + "999" + names[1].substr(id_end));
  ASSERT_NO_FATAL_FAILURE(server_->Start());
  EXPECT_EQ(CacheEntries(), 10u);
  size_t files = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir)) files += e.is_regular_file();
  EXPECT_EQ(files, 10u);
}

// A Generate call holds a call thread while it lasts: with --threads=2 only one runs at once,
// and another gets RESOURCE_EXHAUSTED naming the limit while a search still finds a thread.
TEST(GenerateCalls, AreBoundedBelowTheServersThreads) {
  TempDir tmp;
  testing::TinyDecoderSpec spec;
  spec.context = 4096;
  ASSERT_TRUE(testing::WriteTinyDecoder(spec, tmp.File("tiny.gguf")).ok());
  ServerProcess server(
      tmp.File("data"), tmp.File("server.log"),
      {"--decoder=" + tmp.File("tiny.gguf"), "--threads=2", "--max_generation_tokens=2000"});
  ASSERT_NO_FATAL_FAILURE(server.Start());
  CreateCollection(server.stub(), "docs", 4, pb::FLOAT32);
  ASSERT_NO_FATAL_FAILURE(UpsertTexts(server.stub(), "docs", {{1, "hello world"}, {2, "cats"}}));
  pb::GenerateRequest long_one = Question("hello world", pb::CACHED_INT8);
  long_one.mutable_params()->set_max_tokens(2000);  // greedy: the random model repeats a token
  // The first call streams; a second one sent meanwhile is refused. (A few tries, should the
  // first end before the second arrives.)
  bool refused = false;
  for (int attempt = 0; attempt < 20 && !refused; ++attempt) {
    grpc::ClientContext ctx;
    auto reader = server.stub()->Generate(&ctx, long_one);
    pb::GenerateResponse m;
    if (!reader->Read(&m) || m.has_summary()) {
      reader->Finish();
      continue;  // already over
    }
    const Answer second = Ask(server.stub(), Question("cats", pb::CACHED_INT8));
    if (second.status.error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED) {
      refused = true;
      EXPECT_NE(second.status.error_message().find("Generate and PrecomputePassageKv calls"),
                std::string::npos)
          << second.status.error_message();
      EXPECT_NE(second.status.error_message().find("--threads"), std::string::npos);
      // Other calls still find a thread.
      pb::CountRequest count;
      count.set_collection("docs");
      pb::CountResponse counted;
      EXPECT_TRUE(Call(&pb::Strata::Stub::Count, server.stub(), count, &counted).ok());
    } else {
      EXPECT_TRUE(second.status.ok()) << second.status.error_message();
    }
    ctx.TryCancel();
    while (reader->Read(&m)) {
    }
    reader->Finish();
  }
  EXPECT_TRUE(refused);
  // Once it is over (the server notices a cancel within its stream interval), the next is served.
  grpc::Status after;
  for (int i = 0; i < 300; ++i) {
    after = Ask(server.stub(), Question("cats", pb::CACHED_INT8)).status;
    if (after.error_code() != grpc::StatusCode::RESOURCE_EXHAUSTED) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_TRUE(after.ok()) << after.error_message();
  EXPECT_EQ(server.Stop(), 0);
}

TEST(GenerateWithoutDecoder, IsAFailedPreconditionNamingTheFlag) {
  TempDir tmp;
  ServerProcess server(tmp.File("data"), tmp.File("server.log"));
  ASSERT_NO_FATAL_FAILURE(server.Start());
  CreateCollection(server.stub(), "docs", 4, pb::FLOAT32);
  const Answer a = Ask(server.stub(), Question("q", pb::CACHED_INT8));
  EXPECT_EQ(a.status.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_NE(a.status.error_message().find("--decoder"), std::string::npos);
  pb::PrecomputePassageKvRequest pre;
  pre.set_collection("docs");
  pre.add_ids(1);
  pb::PrecomputePassageKvResponse unused;
  const grpc::Status p = Call(&pb::Strata::Stub::PrecomputePassageKv, server.stub(), pre, &unused);
  EXPECT_EQ(p.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_NE(p.error_message().find("--decoder"), std::string::npos);
}

}  // namespace
}  // namespace strata
