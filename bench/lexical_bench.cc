// strata-lexical-bench: the lexical index (index/bm25_index.h) on a question-answering set in
// JSONL: passages {"id", "title", "text"} and questions {"question", "context_id"} or
// {"question", "context_ids": [...]} (SQuAD v1.1 dev in ../shared/data; PostgreSQL's
// documentation with its section titles as questions from tools/make-passages.py --questions).
// Builds BM25 over each passage's title (--title) and text, asks every question, and reports the
// recall at 1/5/10 of a gold passage (the first one ranked), MRR@10, build time, the index's
// terms and per-query latency. With --model_dir it also embeds passages and questions with the
// sentence encoder and reports exact dense search and the service's two fusions (index/fusion.h)
// of the two rankings: reciprocal-rank fusion and relative-score fusion at the --weights given. A
// sweep of weights on one set is for choosing a default to report on another set.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_replace.h"
#include "gpu/encoder.h"
#include "index/bm25_index.h"
#include "index/fusion.h"
#include "index/text_analyzer.h"
#include "nlohmann/json.hpp"
#include "storage/program_usage.h"

ABSL_FLAG(std::string, passages, "", "JSONL passages: id, title, text");
ABSL_FLAG(std::string, questions, "", "JSONL questions: question, context_id");
ABSL_FLAG(bool, title, true, "index each passage's title with its text");
ABSL_FLAG(double, k1, 1.2, "BM25 k1");
ABSL_FLAG(double, b, 0.75, "BM25 b");
ABSL_FLAG(std::string, model_dir, "", "sentence encoder: adds the dense and hybrid rows");
ABSL_FLAG(std::vector<std::string>, weights, std::vector<std::string>({"0.3", "0.4", "0.5", "0.6"}),
          "dense weights of the relative-score fusion rows");

int main(int argc, char** argv) {
  strata::SetProgramUsage(
      "BM25 recall on a question-answering set.\n"
      "Example: strata-lexical-bench --passages=squad-v1.1-dev-passages.jsonl "
      "--questions=squad-v1.1-dev-questions.jsonl");
  absl::ParseCommandLine(argc, argv);
  using Clock = std::chrono::steady_clock;
  auto analyzer = strata::TextAnalyzer::Create("english");
  if (!analyzer.ok()) return 1;
  std::ifstream pf(absl::GetFlag(FLAGS_passages)), qf(absl::GetFlag(FLAGS_questions));
  if (!pf || !qf) {
    std::fprintf(stderr, "strata-lexical-bench: cannot open --passages or --questions\n");
    return 1;
  }
  strata::Bm25Index index({absl::GetFlag(FLAGS_k1), absl::GetFlag(FLAGS_b)});
  absl::flat_hash_map<std::string, strata::VectorId> row_of;
  std::string line;
  uint64_t text_bytes = 0;
  std::vector<std::string> passage_texts;
  const auto t0 = Clock::now();
  while (std::getline(pf, line)) {
    const auto p = nlohmann::json::parse(line);
    const std::string text =
        (absl::GetFlag(FLAGS_title) ? absl::StrReplaceAll(p.value("title", ""), {{"_", " "}})
                                    : std::string()) +
        "\n" + p.value("text", "");
    text_bytes += text.size();
    passage_texts.push_back(p.value("text", ""));
    const auto row = static_cast<strata::VectorId>(row_of.size());
    row_of[p["id"].is_string() ? p["id"].get<std::string>() : p["id"].dump()] = row;
    if (!index.Add(row, (*analyzer)->Terms(text)).ok()) return 1;
  }
  const double build = std::chrono::duration<double>(Clock::now() - t0).count();
  std::vector<std::string> questions;
  std::vector<absl::flat_hash_set<strata::VectorId>> gold;
  while (std::getline(qf, line)) {
    const auto q = nlohmann::json::parse(line);
    absl::flat_hash_set<strata::VectorId> rows;
    const auto add = [&](const nlohmann::json& id) {
      auto it = row_of.find(id.is_string() ? id.get<std::string>() : id.dump());
      if (it != row_of.end()) rows.insert(it->second);
    };
    if (q.contains("context_ids")) {
      for (const auto& id : q["context_ids"]) add(id);
    } else {
      add(q["context_id"]);
    }
    if (rows.empty()) continue;
    questions.push_back(q["question"].get<std::string>());
    gold.push_back(std::move(rows));
  }
  if (questions.empty()) return 1;
  constexpr uint32_t kDepth = strata::kDenseDepth;  // the dense side's candidates for fusion
  using Ranking = std::vector<strata::ScoredDoc>;
  std::vector<Ranking> lexical(questions.size());
  std::vector<std::vector<std::string>> question_terms(questions.size());
  std::vector<double> micros;
  for (size_t i = 0; i < questions.size(); ++i) {
    const auto s0 = Clock::now();
    question_terms[i] = (*analyzer)->Terms(questions[i]);
    lexical[i] = index.Search(question_terms[i], strata::kLexicalDepth);
    micros.push_back(std::chrono::duration<double, std::micro>(Clock::now() - s0).count());
  }
  std::sort(micros.begin(), micros.end());
  std::printf("%llu passages (%.1f MB of text), %llu terms; built in %.2f s\n",
              static_cast<unsigned long long>(index.documents()), text_bytes / 1e6,
              static_cast<unsigned long long>(index.terms()), build);
  std::printf("lexical query (analysis + search, one thread): p50 %.0f us, p99 %.0f us\n",
              micros[micros.size() / 2], micros[micros.size() * 99 / 100]);
  const auto report = [&](const char* name, const std::vector<Ranking>& rankings) {
    double hit1 = 0, hit5 = 0, hit10 = 0, mrr = 0;
    for (size_t i = 0; i < rankings.size(); ++i) {
      for (size_t r = 0; r < std::min<size_t>(10, rankings[i].size()); ++r) {
        if (!gold[i].contains(rankings[i][r].id)) continue;
        hit1 += r < 1;
        hit5 += r < 5;
        hit10 += 1;
        mrr += 1.0 / static_cast<double>(r + 1);
        break;
      }
    }
    const auto n = static_cast<double>(rankings.size());
    std::printf("%-34s R@1 %.4f  R@5 %.4f  R@10 %.4f  MRR@10 %.4f\n", name, hit1 / n, hit5 / n,
                hit10 / n, mrr / n);
  };
  std::printf("%zu questions\n", questions.size());
  report("lexical (BM25)", lexical);
  if (absl::GetFlag(FLAGS_model_dir).empty()) return 0;

  auto encoder = strata::gpu::Encoder::Open(absl::GetFlag(FLAGS_model_dir));
  if (!encoder.ok()) {
    std::fprintf(stderr, "strata-lexical-bench: %s\n", encoder.status().ToString().c_str());
    return 1;
  }
  auto pv = (*encoder)->Embed(passage_texts);
  auto qv = (*encoder)->Embed(questions);
  if (!pv.ok() || !qv.ok()) return 1;
  const size_t dim = static_cast<size_t>((*encoder)->dimension());
  std::vector<Ranking> dense(questions.size());
  for (size_t i = 0; i < questions.size(); ++i) {
    Ranking all(passage_texts.size());
    for (size_t p = 0; p < passage_texts.size(); ++p) {
      double dot = 0;
      for (size_t d = 0; d < dim; ++d) dot += (*qv)[i * dim + d] * (*pv)[p * dim + d];
      all[p] = {static_cast<strata::VectorId>(p), dot};
    }
    const size_t keep = std::min<size_t>(kDepth, all.size());
    std::partial_sort(all.begin(), all.begin() + static_cast<ptrdiff_t>(keep), all.end(),
                      [](const auto& a, const auto& b) {
                        return a.score > b.score || (a.score == b.score && a.id < b.id);
                      });
    all.resize(keep);
    dense[i] = std::move(all);
  }
  report("dense (exact, the encoder)", dense);
  // Fuses each question's two rankings with the service's rule (index/fusion.h): the union of
  // both lists, every candidate scored on both sides (exact dot product; BM25 by Score).
  const auto fuse = [&](const strata::FusionParams& params) {
    std::vector<Ranking> out(questions.size());
    for (size_t i = 0; i < questions.size(); ++i) {
      absl::flat_hash_map<strata::VectorId, strata::FusionCandidate> by_id;
      for (size_t r = 0; r < dense[i].size(); ++r) {
        auto& c = by_id[dense[i][r].id];
        c.id = dense[i][r].id;
        c.dense_rank = static_cast<uint32_t>(r + 1);
      }
      for (size_t r = 0; r < lexical[i].size(); ++r) {
        auto& c = by_id[lexical[i][r].id];
        c.id = lexical[i][r].id;
        c.lexical_rank = static_cast<uint32_t>(r + 1);
      }
      std::vector<strata::FusionCandidate> candidates;
      std::vector<strata::VectorId> ids;
      for (auto& [id, c] : by_id) {
        double dot = 0;
        for (size_t d = 0; d < dim; ++d) dot += (*qv)[i * dim + d] * (*pv)[id * dim + d];
        c.dense_distance = static_cast<float>(-dot);
        candidates.push_back(c);
        ids.push_back(id);
      }
      const std::vector<double> bm25 = index.Score(question_terms[i], ids);
      for (size_t c = 0; c < candidates.size(); ++c) candidates[c].lexical_score = bm25[c];
      for (const strata::FusedHit& h : strata::Fuse(candidates, params, 10)) {
        out[i].push_back({static_cast<strata::VectorId>(h.candidate.id), h.score});
      }
    }
    return out;
  };
  report("hybrid: reciprocal-rank fusion",
         fuse({strata::FusionMethod::kReciprocalRank, strata::kDefaultDenseWeight}));
  for (const std::string& text : absl::GetFlag(FLAGS_weights)) {
    double w = 0;
    if (!absl::SimpleAtod(text, &w)) {
      std::fprintf(stderr, "strata-lexical-bench: --weights: '%s' is not a number\n", text.c_str());
      return 1;
    }
    char name[64];
    std::snprintf(name, sizeof(name), "hybrid: relative score, w=%.2f", w);
    report(name, fuse({strata::FusionMethod::kRelativeScore, w}));
  }
  return 0;
}
