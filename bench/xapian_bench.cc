// strata-xapian-bench: Xapian 1.4 (glass backend) as a BM25 engine on a question-answering set in
// JSONL (SQuAD v1.1 dev in ../shared/data: passages {"id", "title", "text"}, questions {"question",
// "context_id"}), to set beside our own in-memory index (bench/lexical_bench.cc). One run prints:
//   1. build: a fresh on-disk database (one document per passage, docid = line number + 1, the
//      English stemmer with STEM_SOME, a small stop list, one commit at the end): wall time, the
//      database's bytes on disk (per file and in all) before and after xapian-compact (when it is
//      on PATH), and that size over the bytes of text indexed;
//   2. queries, on the database opened read-only: R@1/5/10 and MRR@10 of the gold passage and
//      per-query latency (parse + get_mset, one thread) with BM25Weight(1.2, 0, 1, 0.75, 0.5) and
//      with Xapian's default weighting (BM25Weight(), i.e. k1 1, k2 0, k3 1, b 0.5, min_normlen
//      0.5);
//   3. updates: replace_document with the same text for --updates documents and one commit, then
//      for --synced_updates documents with a commit (fsync) after each; microseconds per document.
// The database lives in --db_dir (a new directory under /tmp by default), removed at the end.
// Links libxapian only; built by CMake when libxapian-dev is installed (Debian 12: apt-get install
// libxapian-dev xapian-tools; not in tools/install-deps.sh: a peer, not a dependency). Run:
//  build/bin/strata-xapian-bench --passages=../shared/data/squad-v1.1-dev-passages.jsonl
//      --questions=../shared/data/squad-v1.1-dev-questions.jsonl   (one command line)
// Flags: --help (the program's own: --passages, --questions, --db_dir, --updates,
// --synced_updates, --positions, --title_spaces).
#include <stdlib.h>
#include <xapian.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <system_error>
#include <unordered_map>
#include <utility>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "nlohmann/json.hpp"
#include "storage/program_usage.h"

ABSL_FLAG(std::string, passages, "", "JSONL passages: id, title, text");
ABSL_FLAG(std::string, questions, "", "JSONL questions: question, context_id");
ABSL_FLAG(std::string, db_dir, "",
          "a new directory for the database (default: a new one under the temp directory); "
          "removed at the end");
ABSL_FLAG(int, updates, 1000, "documents replaced before one commit");
ABSL_FLAG(int, synced_updates, 200, "documents replaced with a commit after each");
ABSL_FLAG(bool, positions, true, "index term positions (false: index_text_without_positions)");
ABSL_FLAG(bool, title_spaces, true, "turn underscores in titles into spaces");

namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

constexpr const char* kStopWords[] = {
    "a",   "an",    "and",  "are",   "as",    "at",   "be",   "but", "by",  "for",  "if",
    "in",  "into",  "is",   "it",    "no",    "not",  "of",   "on",  "or",  "such", "that",
    "the", "their", "then", "there", "these", "they", "this", "to",  "was", "will", "with"};

struct Flags {
  std::string passages;
  std::string questions;
  std::string db_dir;
  int updates = 1000;
  int synced_updates = 200;
  bool positions = true;
  bool title_spaces = true;
};

double Seconds(Clock::time_point since) {
  return std::chrono::duration<double>(Clock::now() - since).count();
}

// The regular files under `dir` and their sizes in bytes, by path relative to `dir`.
std::map<std::string, uint64_t> FileSizes(const fs::path& dir) {
  std::map<std::string, uint64_t> sizes;
  for (const auto& entry : fs::recursive_directory_iterator(dir)) {
    if (entry.is_regular_file()) {
      sizes[fs::relative(entry.path(), dir).string()] = entry.file_size();
    }
  }
  return sizes;
}

uint64_t PrintSizes(const char* label, const fs::path& dir) {
  const auto sizes = FileSizes(dir);
  uint64_t total = 0;
  std::string files;
  for (const auto& [name, bytes] : sizes) {
    total += bytes;
    files += " " + name + "=" + std::to_string(bytes);
  }
  std::printf("%s: %llu bytes on disk (%zu files:%s)\n", label,
              static_cast<unsigned long long>(total), sizes.size(), files.c_str());
  return total;
}

struct Passage {
  std::string id;
  std::string text;  // what is indexed: title + " " + text
};

Xapian::Document MakeDocument(Xapian::TermGenerator& generator, const std::string& text,
                              bool positions) {
  Xapian::Document doc;
  generator.set_document(doc);
  if (positions) {
    generator.index_text(text);
  } else {
    generator.index_text_without_positions(text);
  }
  return doc;
}

struct QueryResult {
  double r1 = 0, r5 = 0, r10 = 0, mrr = 0;
  double p50_us = 0, p99_us = 0;
  int errors = 0;
};

// Asks every question (top 10) with `weight` (null: Xapian's default weighting).
QueryResult RunQueries(const Xapian::Database& db, const Xapian::QueryParser& parser,
                       const std::vector<std::pair<std::string, Xapian::docid>>& questions,
                       const Xapian::Weight* weight) {
  Xapian::Enquire enquire(db);
  if (weight != nullptr) enquire.set_weighting_scheme(*weight);
  Xapian::QueryParser qp = parser;
  QueryResult result;
  std::vector<double> micros;
  micros.reserve(questions.size());
  for (const auto& [question, gold] : questions) {
    Xapian::MSet mset;
    const auto t0 = Clock::now();
    try {
      enquire.set_query(qp.parse_query(question, Xapian::QueryParser::FLAG_DEFAULT));
      mset = enquire.get_mset(0, 10);
    } catch (const Xapian::Error&) {
      ++result.errors;
    }
    micros.push_back(std::chrono::duration<double, std::micro>(Clock::now() - t0).count());
    int rank = 0;
    for (auto it = mset.begin(); it != mset.end(); ++it, ++rank) {
      if (*it != gold) continue;
      result.r1 += rank < 1;
      result.r5 += rank < 5;
      result.r10 += 1;
      result.mrr += 1.0 / (rank + 1);
      break;
    }
  }
  const double n = static_cast<double>(questions.size());
  result.r1 /= n;
  result.r5 /= n;
  result.r10 /= n;
  result.mrr /= n;
  std::sort(micros.begin(), micros.end());
  result.p50_us = micros[micros.size() / 2];
  result.p99_us = micros[micros.size() * 99 / 100];
  return result;
}

void PrintQueryResult(const char* name, const QueryResult& r) {
  std::printf("%-46s R@1 %.4f  R@5 %.4f  R@10 %.4f  MRR@10 %.4f  p50 %.0f us  p99 %.0f us", name,
              r.r1, r.r5, r.r10, r.mrr, r.p50_us, r.p99_us);
  if (r.errors > 0) std::printf("  (%d queries failed)", r.errors);
  std::printf("\n");
}

int Run(const Flags& flags, const fs::path& root) {
  const fs::path db_path = root / "db";
  const fs::path compact_path = root / "compact";

  // Passages and questions, read before any timing.
  std::vector<Passage> passages;
  std::unordered_map<std::string, Xapian::docid> docid_of;
  uint64_t text_bytes = 0;
  {
    std::ifstream in(flags.passages);
    if (!in) {
      std::fprintf(stderr, "strata-xapian-bench: cannot open %s\n", flags.passages.c_str());
      return 1;
    }
    std::string line;
    while (std::getline(in, line)) {
      if (line.empty()) continue;
      const auto p = nlohmann::json::parse(line);
      std::string title = p.value("title", "");
      if (flags.title_spaces) std::replace(title.begin(), title.end(), '_', ' ');
      Passage passage{p["id"].is_string() ? p["id"].get<std::string>() : p["id"].dump(),
                      title + " " + p.value("text", "")};
      text_bytes += passage.text.size();
      docid_of[passage.id] = static_cast<Xapian::docid>(passages.size() + 1);
      passages.push_back(std::move(passage));
    }
  }
  std::vector<std::pair<std::string, Xapian::docid>> questions;
  int unmatched = 0;
  {
    std::ifstream in(flags.questions);
    if (!in) {
      std::fprintf(stderr, "strata-xapian-bench: cannot open %s\n", flags.questions.c_str());
      return 1;
    }
    std::string line;
    while (std::getline(in, line)) {
      if (line.empty()) continue;
      const auto q = nlohmann::json::parse(line);
      const auto& id = q["context_id"];
      const auto it = docid_of.find(id.is_string() ? id.get<std::string>() : id.dump());
      if (it == docid_of.end()) {
        ++unmatched;
        continue;
      }
      questions.emplace_back(q["question"].get<std::string>(), it->second);
    }
  }
  if (passages.empty() || questions.empty()) {
    std::fprintf(stderr,
                 "strata-xapian-bench: no passages or no questions with a known context_id\n");
    return 1;
  }

  const Xapian::Stem stemmer("english");
  Xapian::SimpleStopper stopper(std::begin(kStopWords), std::end(kStopWords));
  Xapian::TermGenerator generator;
  generator.set_stemmer(stemmer);
  generator.set_stemming_strategy(Xapian::TermGenerator::STEM_SOME);
  generator.set_stopper(&stopper);

  std::printf("Xapian %s, glass backend, db in %s (%s)\n", Xapian::version_string(), root.c_str(),
              flags.positions ? "with positions" : "without positions");
  std::printf("title underscores %s; XAPIAN_FLUSH_THRESHOLD %s\n",
              flags.title_spaces ? "replaced by spaces" : "kept",
              std::getenv("XAPIAN_FLUSH_THRESHOLD") ? std::getenv("XAPIAN_FLUSH_THRESHOLD")
                                                    : "unset (10000)");

  // 1. Build.
  std::printf("\n== build\n");
  {
    const auto t0 = Clock::now();
    Xapian::WritableDatabase db(db_path.string(), Xapian::DB_CREATE | Xapian::DB_BACKEND_GLASS);
    for (size_t i = 0; i < passages.size(); ++i) {
      db.replace_document(static_cast<Xapian::docid>(i + 1),
                          MakeDocument(generator, passages[i].text, flags.positions));
    }
    const auto c0 = Clock::now();
    db.commit();
    const double commit_s = Seconds(c0);
    const double build_s = Seconds(t0);
    std::printf(
        "documents %u, terms %llu, avg length %.1f\n", db.get_doccount(),
        static_cast<unsigned long long>(std::distance(db.allterms_begin(), db.allterms_end())),
        db.get_avlength());
    std::printf("build wall time %.3f s (of which the one commit %.3f s), %.1f us/document\n",
                build_s, commit_s, build_s * 1e6 / passages.size());
    db.close();
  }
  std::printf("text indexed: %llu bytes (title + \" \" + text, UTF-8)\n",
              static_cast<unsigned long long>(text_bytes));
  const uint64_t size = PrintSizes("after commit", db_path);
  std::printf("size / text: %.2f\n", static_cast<double>(size) / text_bytes);
  if (std::system("command -v xapian-compact >/dev/null 2>&1") == 0) {
    const std::string cmd = "xapian-compact --no-renumber '" + db_path.string() + "' '" +
                            compact_path.string() + "' >/dev/null";
    const auto t0 = Clock::now();
    if (std::system(cmd.c_str()) == 0) {
      const double compact_s = Seconds(t0);
      const uint64_t compact = PrintSizes("after xapian-compact", compact_path);
      std::printf("compacted size / text: %.2f (xapian-compact took %.3f s)\n",
                  static_cast<double>(compact) / text_bytes, compact_s);
    } else {
      std::printf("xapian-compact failed\n");
    }
  } else {
    std::printf("xapian-compact not on PATH (package xapian-tools): no compacted size\n");
  }

  // 2. Queries, on the freshly built database opened read-only.
  std::printf("\n== queries: %zu questions (%d with an unknown context_id skipped), top 10\n",
              questions.size(), unmatched);
  {
    Xapian::Database db(db_path.string());
    Xapian::QueryParser parser;
    parser.set_stemmer(stemmer);
    parser.set_stemming_strategy(Xapian::QueryParser::STEM_SOME);
    parser.set_stopper(&stopper);
    parser.set_default_op(Xapian::Query::OP_OR);
    parser.set_database(db);
    const Xapian::BM25Weight bm25(/*k1=*/1.2, /*k2=*/0, /*k3=*/1, /*b=*/0.75,
                                  /*min_normlen=*/0.5);
    PrintQueryResult("BM25Weight(1.2, 0, 1, 0.75, 0.5)", RunQueries(db, parser, questions, &bm25));
    PrintQueryResult("default weight (BM25Weight(1, 0, 1, 0.5, 0.5))",
                     RunQueries(db, parser, questions, nullptr));
  }

  // 3. Updates: replace documents with the same text.
  std::printf("\n== updates (replace_document with the same text; times include index_text)\n");
  {
    Xapian::WritableDatabase db(db_path.string(), Xapian::DB_OPEN);
    const size_t batch = std::min<size_t>(std::max(flags.updates, 0), passages.size());
    auto t0 = Clock::now();
    for (size_t i = 0; i < batch; ++i) {
      db.replace_document(static_cast<Xapian::docid>(i + 1),
                          MakeDocument(generator, passages[i].text, flags.positions));
    }
    const auto c0 = Clock::now();
    db.commit();
    const double commit_s = Seconds(c0);
    const double batch_s = Seconds(t0);
    std::printf("(a) %zu documents, one commit: %.1f us/document (%.3f s in all, commit %.3f s)\n",
                batch, batch_s * 1e6 / batch, batch_s, commit_s);

    // The next documents after the batch (wrapping around), so neither run re-touches the other's.
    const size_t synced = std::min<size_t>(std::max(flags.synced_updates, 0), passages.size());
    std::vector<double> micros;
    t0 = Clock::now();
    for (size_t k = 0; k < synced; ++k) {
      const size_t i = (batch + k) % passages.size();
      const auto d0 = Clock::now();
      db.replace_document(static_cast<Xapian::docid>(i + 1),
                          MakeDocument(generator, passages[i].text, flags.positions));
      db.commit();
      micros.push_back(std::chrono::duration<double, std::micro>(Clock::now() - d0).count());
    }
    const double synced_s = Seconds(t0);
    std::sort(micros.begin(), micros.end());
    std::printf(
        "(b) %zu documents, commit after each: %.1f us/document (p50 %.0f us, p99 %.0f "
        "us; %.3f s in all)\n",
        synced, synced_s * 1e6 / synced, micros[micros.size() / 2],
        micros[micros.size() * 99 / 100], synced_s);
    std::printf("revision after updates: %llu\n",
                static_cast<unsigned long long>(db.get_revision()));
    db.close();
  }
  PrintSizes("after updates", db_path);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  strata::SetProgramUsage(
      "Xapian as a BM25 engine on a question-answering set, beside strata-lexical-bench.\n"
      "Example: strata-xapian-bench --passages=squad-v1.1-dev-passages.jsonl "
      "--questions=squad-v1.1-dev-questions.jsonl");
  absl::ParseCommandLine(argc, argv);
  Flags flags;
  flags.passages = absl::GetFlag(FLAGS_passages);
  flags.questions = absl::GetFlag(FLAGS_questions);
  flags.db_dir = absl::GetFlag(FLAGS_db_dir);
  flags.updates = absl::GetFlag(FLAGS_updates);
  flags.synced_updates = absl::GetFlag(FLAGS_synced_updates);
  flags.positions = absl::GetFlag(FLAGS_positions);
  flags.title_spaces = absl::GetFlag(FLAGS_title_spaces);
  if (flags.passages.empty() || flags.questions.empty()) {
    std::fprintf(stderr, "strata-xapian-bench: --passages and --questions are required\n");
    return 2;
  }
  // The database's directory: one we create (and so may remove), never an existing one.
  fs::path root;
  if (flags.db_dir.empty()) {
    std::string tmpl = (fs::temp_directory_path() / "xapian_bench.XXXXXX").string();
    if (mkdtemp(tmpl.data()) == nullptr) {
      std::perror("strata-xapian-bench: mkdtemp");
      return 1;
    }
    root = tmpl;
  } else {
    root = flags.db_dir;
    std::error_code ec;
    if (fs::exists(root) || !fs::create_directories(root, ec)) {
      std::fprintf(stderr, "strata-xapian-bench: --db_dir %s must be a new directory\n",
                   root.c_str());
      return 1;
    }
  }
  int rc = 1;
  try {
    rc = Run(flags, root);
  } catch (const Xapian::Error& e) {
    std::fprintf(stderr, "strata-xapian-bench: %s\n", e.get_description().c_str());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "strata-xapian-bench: %s\n", e.what());
  }
  std::error_code ec;
  fs::remove_all(root, ec);
  if (ec) {
    std::fprintf(stderr, "strata-xapian-bench: removing %s: %s\n", root.c_str(),
                 ec.message().c_str());
  }
  return rc;
}
