// strata-rag-bench: what caching passage KV costs in answer quality and saves in time to first
// token, in-process, on SQuAD v1.1 dev (../shared/data). For each question: the top --k passages
// by BM25 (the gold passage's recall is reported), the prompt Generate builds
// (service/rag_prompt.h), then
//   full prefill        every token computed; greedy answer A (the reference);
//   each cached mode    passages' keys and values computed once after the shared prefix (as the
//                       server's cache holds them), assembled with recompute (or plain
//                       concatenation): the NLL of A under it (teacher-forced), whether its first
//                       token is A's, its own greedy answer;
// and exact match / F1 of every answer against SQuAD's. TTFT here is the prompt's pass only (no
// retrieval, passages already cached): the first assembly of a question's entries (from host
// memory), and "again" the same assembly repeated (its entries in the decoder's device tier when
// it keeps one: on CUDA; on the CPU the two are the same work). Prints a table; --json writes
// the numbers.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "gpu/decoder.h"
#include "gpu/passage_kv.h"
#include "index/bm25_index.h"
#include "index/text_index.h"
#include "nlohmann/json.hpp"
#include "service/rag_prompt.h"
#include "storage/program_usage.h"

ABSL_FLAG(std::string, model, "models/smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf",
          "GGUF decoder");
ABSL_FLAG(std::string, passages, "../shared/data/squad-v1.1-dev-passages.jsonl", "passages");
ABSL_FLAG(std::string, questions, "../shared/data/squad-v1.1-dev-questions.jsonl", "questions");
ABSL_FLAG(int, limit, 60, "questions (spread evenly over the file)");
ABSL_FLAG(int, k, 4, "passages per question");
ABSL_FLAG(int, answer_tokens, 24, "tokens per answer at most");
ABSL_FLAG(double, recompute_ratio, 0.15, "cached modes: share of passage tokens recomputed");
ABSL_FLAG(int, recompute_first, 4, "cached modes: first tokens of each passage recomputed");
ABSL_FLAG(std::string, selection, "deviation",
          "cached modes: which tokens are recomputed: deviation (CacheBlend's layer-1 "
          "deviation) or attention (what the question reads, from a draft pass)");
ABSL_FLAG(bool, int8_only, false,
          "run full prefill and cached int8 only (quicker sweeps of the recompute settings)");
ABSL_FLAG(std::string, json, "", "write the results here");
ABSL_FLAG(std::string, backend, "cpu", "decoder backend: cpu, cuda or auto");
ABSL_FLAG(bool, int8_activations, true, "decode with int8 activations (false: fp32)");

namespace {

using strata::gpu::Decoder;
using strata::gpu::KvFormat;
using strata::gpu::PassageKv;
using Clock = std::chrono::steady_clock;
double Since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

// SQuAD's answer normalisation: lower case, no punctuation, no articles, single spaces.
std::string Normalize(const std::string& s) {
  std::string t;
  for (char c : s) {
    const auto u = static_cast<unsigned char>(c);
    if (std::ispunct(u)) continue;
    t += static_cast<char>(std::tolower(u));
  }
  std::vector<std::string> words;
  for (absl::string_view w : absl::StrSplit(t, absl::ByAnyChar(" \t\n"), absl::SkipEmpty())) {
    if (w != "a" && w != "an" && w != "the") words.emplace_back(w);
  }
  return absl::StrJoin(words, " ");
}

double F1(const std::string& pred, const std::string& gold) {
  const std::vector<std::string> p = absl::StrSplit(Normalize(pred), ' ', absl::SkipEmpty());
  const std::vector<std::string> g = absl::StrSplit(Normalize(gold), ' ', absl::SkipEmpty());
  if (p.empty() || g.empty()) return p == g ? 1.0 : 0.0;
  std::map<std::string, int> counts;
  for (const auto& w : g) ++counts[w];
  int common = 0;
  for (const auto& w : p) {
    if (counts[w] > 0) --counts[w], ++common;
  }
  if (common == 0) return 0.0;
  const double prec = static_cast<double>(common) / p.size(),
               rec = static_cast<double>(common) / g.size();
  return 2 * prec * rec / (prec + rec);
}

double LogProb(const float* logits, int vocab, int token) {
  double mx = -1e300;
  for (int i = 0; i < vocab; ++i) mx = std::max(mx, static_cast<double>(logits[i]));
  double sum = 0;
  for (int i = 0; i < vocab; ++i) sum += std::exp(logits[i] - mx);
  return logits[token] - mx - std::log(sum);
}

int ArgMax(const float* logits, int vocab) {
  return static_cast<int>(std::max_element(logits, logits + vocab) - logits);
}

struct Mode {
  std::string name;
  bool full;
  KvFormat format;
  float ratio;
  int first;
  // sums
  double nll = 0, em = 0, f1 = 0, ttft = 0;
  double ttft_again = 0;  // cached modes: the same assembly repeated (its own answer)
  int64_t hits_again = 0, spans_again = 0;  // device-tier hits of the repeat
  int64_t tokens = 0, first_agree = 0, answers = 0;
};

}  // namespace

int main(int argc, char** argv) {
  strata::SetProgramUsage("RAG answer quality and TTFT: full prefill vs cached passage KV modes.");
  absl::ParseCommandLine(argc, argv);
  // Passages and a BM25 index over title + text.
  std::vector<std::string> pid, ptext;
  std::map<std::string, uint64_t> index_of;
  strata::Bm25Index bm25;
  {
    std::ifstream in(absl::GetFlag(FLAGS_passages));
    std::string line;
    while (std::getline(in, line)) {
      const auto j = nlohmann::json::parse(line);
      std::string title = j.value("title", "");
      std::replace(title.begin(), title.end(), '_', ' ');
      const std::string text = title.empty()
                                   ? j["text"].get<std::string>()
                                   : absl::StrCat(title, "\n", j["text"].get<std::string>());
      index_of[j["id"]] = pid.size();
      if (!bm25.Add(pid.size(), strata::AnalyzeText(text)).ok()) return 1;
      pid.push_back(j["id"]);
      ptext.push_back(text);
    }
  }
  std::vector<nlohmann::json> all;
  {
    std::ifstream in(absl::GetFlag(FLAGS_questions));
    std::string line;
    while (std::getline(in, line)) all.push_back(nlohmann::json::parse(line));
  }
  if (pid.empty() || all.empty()) {
    std::fprintf(stderr,
                 "strata-rag-bench: no passages or questions (see --passages/--questions)\n");
    return 1;
  }
  auto backend = strata::gpu::ParseBackendChoice(absl::GetFlag(FLAGS_backend));
  if (!backend.ok()) {
    std::fprintf(stderr, "strata-rag-bench: %s\n", std::string(backend.status().message()).c_str());
    return 1;
  }
  auto opened = Decoder::Open(
      absl::GetFlag(FLAGS_model),
      {.backend = *backend, .int8_activations = absl::GetFlag(FLAGS_int8_activations)});
  if (!opened.ok()) {
    std::fprintf(stderr, "strata-rag-bench: %s\n", std::string(opened.status().message()).c_str());
    return 1;
  }
  Decoder& d = **opened;
  const strata::gpu::DecoderConfig& c = d.config();
  const int vocab = c.vocab_size, answer_tokens = absl::GetFlag(FLAGS_answer_tokens);
  const strata::RagPrompt prompt(d, strata::kDefaultRagInstructions);
  // The shared prefix, as the server computes it.
  std::shared_ptr<PassageKv> prefix_kv;
  {
    auto seq = *d.NewSequence(static_cast<int64_t>(prompt.prefix().size()));
    strata::gpu::KvCapture cap;
    if (!d.Forward(prompt.prefix(), *seq, nullptr, false, &cap).ok()) return 1;
    prefix_kv = std::make_shared<PassageKv>(
        PassageKv::Compress(KvFormat::kF32, static_cast<int>(prompt.prefix().size()), c.kv_heads,
                            c.head_dim, cap.k, cap.v));
  }
  const float ratio = static_cast<float>(absl::GetFlag(FLAGS_recompute_ratio));
  const std::string selection_name = absl::GetFlag(FLAGS_selection);
  if (selection_name != "attention" && selection_name != "deviation") {
    std::fprintf(stderr, "strata-rag-bench: --selection is attention or deviation, not %s\n",
                 selection_name.c_str());
    return 1;
  }
  const auto selection = selection_name == "attention"
                             ? strata::gpu::RecomputeSelection::kQuestionAttention
                             : strata::gpu::RecomputeSelection::kKeyValueDeviation;
  const int first = absl::GetFlag(FLAGS_recompute_first);
  std::vector<Mode> modes = {{"full prefill", true, KvFormat::kF32, 0, 0},
                             {"cached f16", false, KvFormat::kF16, ratio, first},
                             {"cached int8", false, KvFormat::kInt8, ratio, first},
                             {"cached int4", false, KvFormat::kInt4, ratio, first},
                             {"int8, plain concat", false, KvFormat::kInt8, 0, 0}};
  if (absl::GetFlag(FLAGS_int8_only)) modes = {modes[0], modes[2]};
  // Passage entries, computed once each (capture once, then every format).
  std::map<std::pair<uint64_t, int>, std::shared_ptr<PassageKv>> cache;
  double cache_seconds = 0;
  int cache_misses = 0;
  auto entry = [&](uint64_t p, const std::vector<int32_t>& tokens, KvFormat f) {
    auto key = std::make_pair(p, static_cast<int>(f));
    if (auto it = cache.find(key); it != cache.end()) return it->second;
    const auto t0 = Clock::now();
    auto seq = *d.NewSequence(prefix_kv->tokens() + static_cast<int64_t>(tokens.size()));
    (void)d.Restore(*prefix_kv, *seq);
    strata::gpu::KvCapture cap;
    (void)d.Forward(tokens, *seq, nullptr, false, &cap);
    for (KvFormat g : {KvFormat::kF16, KvFormat::kInt8, KvFormat::kInt4}) {
      cache[{p, static_cast<int>(g)}] = std::make_shared<PassageKv>(PassageKv::Compress(
          g, static_cast<int>(tokens.size()), c.kv_heads, c.head_dim, cap.k, cap.v));
    }
    cache_seconds += Since(t0);
    ++cache_misses;
    return cache[key];
  };
  const int limit = std::min<int>(absl::GetFlag(FLAGS_limit), static_cast<int>(all.size()));
  const int k = absl::GetFlag(FLAGS_k);
  int recalled = 0;
  const int32_t eot = d.chat().end_of_turn(), eos = d.eos_id();
  for (int qi = 0; qi < limit; ++qi) {
    const nlohmann::json& q = all[static_cast<size_t>(qi) * all.size() / limit];
    const std::string question = q["question"];
    const std::vector<std::string> golds = q["answers"];
    const auto hits = bm25.Search(strata::AnalyzeText(question), k);
    std::vector<std::vector<int32_t>> bodies;
    bool has_gold = false;
    for (const auto& h : hits) {
      bodies.push_back(prompt.PassageTokens(ptext[h.id]));
      has_gold = has_gold || pid[h.id] == q["context_id"].get<std::string>();
    }
    recalled += has_gold ? 1 : 0;
    const strata::PromptLayout layout = prompt.Build(bodies, prompt.QuestionTokens(question));
    const int64_t n = static_cast<int64_t>(layout.tokens.size());
    // Greedy answer from the sequence `seq` whose last logits are `logits`.
    auto greedy = [&](strata::gpu::DecoderSequence& seq, std::vector<float> logits,
                      std::vector<int32_t>* out, double* nll) {
      for (int t = 0; t < answer_tokens; ++t) {
        const int32_t next = ArgMax(logits.data(), vocab);
        if (next == eot || next == eos) break;
        if (nll != nullptr) *nll -= LogProb(logits.data(), vocab, next);
        out->push_back(next);
        if (!d.Forward({&next, 1}, seq, &logits).ok()) break;
      }
    };
    std::vector<int32_t> reference;
    for (Mode& m : modes) {
      auto seq = *d.NewSequence(n + answer_tokens + 1);
      std::vector<float> logits;
      const auto t0 = Clock::now();
      if (m.full) {
        if (!d.Forward(layout.tokens, *seq, &logits).ok()) return 1;
        m.ttft += Since(t0);
        double nll = 0;
        greedy(*seq, logits, &reference, &nll);
        m.nll += nll;
        m.tokens += static_cast<int64_t>(reference.size());
        m.first_agree += 1;
      } else {
        std::vector<strata::gpu::CachedSpan> spans = {{0, prefix_kv.get(), 0, /*exact=*/true}};
        std::vector<std::shared_ptr<PassageKv>> keep;
        for (size_t i = 0; i < hits.size(); ++i) {
          keep.push_back(entry(hits[i].id, bodies[i], m.format));
        }
        for (size_t i = 0; i < hits.size(); ++i) {
          spans.push_back({layout.passages[i].position, keep[i].get(), m.first});
        }
        strata::gpu::AssembleOptions o;
        o.recompute_ratio = m.ratio;
        o.selection = selection;
        const auto t1 = Clock::now();
        if (!d.Assemble(layout.tokens, spans, o, *seq, &logits).ok()) return 1;
        m.ttft += Since(t1);
        // NLL of the reference answer, teacher-forced.
        bool agree_all = true;
        if (!reference.empty()) {
          m.first_agree += ArgMax(logits.data(), vocab) == reference[0] ? 1 : 0;
          m.nll -= LogProb(logits.data(), vocab, reference[0]);
          agree_all = ArgMax(logits.data(), vocab) == reference[0];
          if (reference.size() > 1) {
            std::vector<float> all_logits;
            const std::vector<int32_t> forced(reference.begin(), reference.end() - 1);
            if (!d.Forward(forced, *seq, &all_logits, true).ok()) return 1;
            for (size_t i = 1; i < reference.size(); ++i) {
              const float* l = all_logits.data() + (i - 1) * static_cast<size_t>(vocab);
              m.nll -= LogProb(l, vocab, reference[i]);
              agree_all = agree_all && ArgMax(l, vocab) == reference[i];
            }
          }
          m.tokens += static_cast<int64_t>(reference.size());
        } else {
          m.first_agree += 1;
        }
        (void)agree_all;
      }
      // This mode's own answer.
      std::vector<int32_t> own;
      if (m.full) {
        own = reference;
      } else {
        auto seq2 = *d.NewSequence(n + answer_tokens + 1);
        std::vector<strata::gpu::CachedSpan> spans = {{0, prefix_kv.get(), 0, /*exact=*/true}};
        std::vector<std::shared_ptr<PassageKv>> keep;
        for (size_t i = 0; i < hits.size(); ++i)
          keep.push_back(entry(hits[i].id, bodies[i], m.format));
        for (size_t i = 0; i < hits.size(); ++i)
          spans.push_back({layout.passages[i].position, keep[i].get(), m.first});
        strata::gpu::AssembleOptions o;
        o.recompute_ratio = m.ratio;
        o.selection = selection;
        std::vector<float> l2;
        strata::gpu::AssembleStats st;
        const auto t2 = Clock::now();
        if (!d.Assemble(layout.tokens, spans, o, *seq2, &l2, &st).ok()) return 1;
        m.ttft_again += Since(t2);
        m.hits_again += st.device_hits;
        m.spans_again += static_cast<int64_t>(spans.size());
        greedy(*seq2, l2, &own, nullptr);
      }
      const std::string text = d.tokenizer().Decode(own);
      double em = 0, f1 = 0;
      for (const std::string& g : golds) {
        em = std::max(em, Normalize(text) == Normalize(g) ? 1.0 : 0.0);
        f1 = std::max(f1, F1(text, g));
      }
      m.em += em;
      m.f1 += f1;
      ++m.answers;
    }
    std::fprintf(stderr, "\rstrata-rag-bench: %d/%d questions", qi + 1, limit);
  }
  std::fprintf(stderr, "\n");
  const Mode& full = modes[0];
  std::printf(
      "SQuAD v1.1 dev, %d questions, top-%d BM25 passages (gold passage recall %.3f), "
      "answers <= %d tokens, recompute %.2f (by %s) + first %d\n",
      limit, k, static_cast<double>(recalled) / limit, answer_tokens, ratio, selection_name.c_str(),
      first);
  std::printf("passage entries computed: %d in %.1f s (%.0f ms each, then reused)\n", cache_misses,
              cache_seconds, 1000 * cache_seconds / std::max(1, cache_misses));
  std::printf("%-20s %10s %10s %12s %8s %8s %10s %9s %11s %9s %10s\n", "mode", "NLL/token", "dNLL",
              "first tok", "EM", "F1", "TTFT ms", "speedup", "again ms", "speedup", "tier hits");
  nlohmann::json out = nlohmann::json::array();
  for (const Mode& m : modes) {
    const double nll_tok = m.tokens > 0 ? m.nll / m.tokens : 0;
    const double dnll = full.nll > 0 ? 100.0 * (m.nll - full.nll) / full.nll : 0;
    std::printf("%-20s %10.4f %9.2f%% %11.1f%% %8.3f %8.3f %10.1f %8.2fx", m.name.c_str(), nll_tok,
                dnll, 100.0 * m.first_agree / limit, m.em / m.answers, m.f1 / m.answers,
                1000 * m.ttft / limit, full.ttft / m.ttft);
    if (m.full) {
      std::printf("\n");
    } else {
      std::printf(" %11.1f %8.2fx %9.0f%%\n", 1000 * m.ttft_again / limit, full.ttft / m.ttft_again,
                  100.0 * m.hits_again / std::max<int64_t>(1, m.spans_again));
    }
    out.push_back({{"mode", m.name},
                   {"nll_per_token", nll_tok},
                   {"dnll_percent", dnll},
                   {"first_token_agreement", static_cast<double>(m.first_agree) / limit},
                   {"em", m.em / m.answers},
                   {"f1", m.f1 / m.answers},
                   {"ttft_ms", 1000 * m.ttft / limit},
                   {"speedup", full.ttft / m.ttft},
                   {"ttft_again_ms", m.full ? 0.0 : 1000 * m.ttft_again / limit},
                   {"device_tier_hit_share",
                    m.full ? 0.0
                           : static_cast<double>(m.hits_again) /
                                 static_cast<double>(std::max<int64_t>(1, m.spans_again))}});
  }
  if (!absl::GetFlag(FLAGS_json).empty()) {
    std::ofstream(absl::GetFlag(FLAGS_json)) << nlohmann::json{
        {"questions", limit},
        {"k", k},
        {"gold_recall", static_cast<double>(recalled) / limit},
        {"modes", out}}.dump(1);
  }
  return 0;
}
