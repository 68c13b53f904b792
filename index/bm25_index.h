// An inverted index over analyzed text (index/text_analyzer.h), scored with Okapi BM25:
//   score(q, d) = sum over distinct query terms t of idf(t) * tf(t, d) * (k1 + 1)
//                 / (tf(t, d) + k1 * (1 - b + b * |d| / avgdl)),
//   idf(t) = ln(1 + (N - df(t) + 0.5) / (df(t) + 0.5))   (never negative).
//
// In memory, with adds and removes (an upsert is a Remove then an Add); a collection's lexical
// side (index/text_index.h) rebuilds it from the stored payloads when it opens. Removed documents
// are skipped at once and leave every statistic (N, df, average length); their postings are
// dropped when they reach a quarter of the index.
//
// Thread-compatible: Add from one thread; Search is const and may run concurrently once adding
// is done.
#ifndef STRATA_INDEX_BM25_INDEX_H_
#define STRATA_INDEX_BM25_INDEX_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/types/span.h"
#include "index/id_set.h"
#include "index/types.h"

namespace strata {

struct Bm25Options {
  double k1 = 1.2;
  double b = 0.75;
};

struct ScoredDoc {
  VectorId id;
  double score;  // BM25; higher is better
};

class Bm25Index final {
 public:
  explicit Bm25Index(Bm25Options options = {}) : options_(options) {}

  // Adds document `id` with its terms (repeats = frequency). AlreadyExists when the id is in the
  // index (Remove it first to replace it); InvalidArgument when k1 < 0 or b is outside [0, 1].
  [[nodiscard]] absl::Status Add(VectorId id, absl::Span<const std::string> terms);
  // Removes document `id`; NotFound when it is not in the index.
  [[nodiscard]] absl::Status Remove(VectorId id);

  // The k best documents for `query` (terms; repeats count once), by score, ties by smaller id.
  // Documents sharing no term with the query are never returned, nor (with `allow`) documents
  // whose id it does not hold.
  [[nodiscard]] std::vector<ScoredDoc> Search(absl::Span<const std::string> query, uint32_t k,
                                              const IdSet* allow = nullptr) const;
  // The score of each of `ids` for `query`, as Search would give it; 0 for an id that shares no
  // term with the query or is not in the index.
  [[nodiscard]] std::vector<double> Score(absl::Span<const std::string> query,
                                          absl::Span<const VectorId> ids) const;

  // The live documents holding every one of `terms` (none for no term), ascending in the
  // index's internal order.
  [[nodiscard]] std::vector<VectorId> WithAll(absl::Span<const std::string> terms) const;

  // Bytes held, approximately (containers' capacities and hash-table slots). Constant time: the
  // terms' part is kept up to date by Add and counted again by compactions.
  [[nodiscard]] uint64_t MemoryBytes() const;
  // The same, counted over every term (O(terms)): what MemoryBytes keeps up to date (tests).
  [[nodiscard]] uint64_t CountMemoryBytes() const;
  // At most how many bytes Adding documents of these terms takes, as MemoryBytes counts them: the
  // new terms' slots and strings, each posting list's growth (a full one doubles), and the growth
  // of the tables and per-document arrays.
  [[nodiscard]] uint64_t BytesToAdd(absl::Span<const absl::Span<const std::string>> docs) const;

  [[nodiscard]] uint64_t documents() const { return doc_of_.size(); }
  [[nodiscard]] uint64_t terms() const { return postings_.size(); }

 private:
  struct Posting {
    uint32_t doc;  // index into ids_ / lengths_; ascending within a list
    uint32_t tf;
  };
  // A query term's live postings and inverse document frequency.
  struct QueryTerm {
    const std::vector<Posting>* postings;
    double idf;
  };
  std::vector<QueryTerm> Prepare(absl::Span<const std::string> query) const;
  double TermScore(const QueryTerm& t, const Posting& p, double avgdl) const;

  Bm25Options options_;
  absl::flat_hash_map<std::string, std::vector<Posting>> postings_;
  absl::flat_hash_map<VectorId, uint32_t> doc_of_;
  // Drops the removed documents' postings and renumbers the rest.
  void Compact();

  std::vector<VectorId> ids_;
  std::vector<uint32_t> lengths_;
  std::vector<bool> removed_;
  uint64_t removed_count_ = 0;
  uint64_t total_length_ = 0;  // of the live documents
  // Of the terms' strings beyond their inline buffers and of their posting lists' capacities.
  uint64_t term_bytes_ = 0;
  // The part of MemoryBytes that is not term_bytes_ (tables, per-document arrays).
  uint64_t FixedBytes() const;
};

}  // namespace strata

#endif  // STRATA_INDEX_BM25_INDEX_H_
