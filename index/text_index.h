// The lexical side of a collection: a BM25 index (bm25_index.h) over the text of each point's
// payload, analysed by text_analyzer.h.
//
// Durability: it keeps nothing of its own on disk. The text is part of the payload, which the
// collection writes in the same metadata-store batch as the vector, so the collection rebuilds
// this index from the stored payloads when it opens: after a crash or power loss the lexical
// and vector sides agree on every acknowledged write by construction, and a newer analyser
// re-analyses old text. The price is analysis at open (bench/RESULTS.md, "Hybrid retrieval":
// time per MB of text).
//
// Thread-compatible: the owner serialises Put/Erase against searches (the collection's lock).
// AnalyzeText is thread-safe and meant to run outside that lock.
#ifndef STRATA_INDEX_TEXT_INDEX_H_
#define STRATA_INDEX_TEXT_INDEX_H_

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/functional/function_ref.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "index/bm25_index.h"
#include "index/types.h"

namespace strata {

// The text to index of a stored payload (whose format the service owns), with the collection's
// named payload fields (CollectionConfig::text_fields); empty = none.
using PayloadTextFn =
    std::function<std::string(absl::string_view payload, absl::Span<const std::string> fields)>;

// A query may hold at most this many distinct terms: each costs a pass over its posting list.
inline constexpr size_t kMaxQueryTerms = 256;
// A query with phrases checks at most this many points' texts for them (the ones with every
// phrase term, best BM25 first): each check reads and re-analyses a stored text.
inline constexpr size_t kMaxPhraseChecks = 1000;

// The terms of `text` (English analysis). Thread-safe: one analyser per thread.
[[nodiscard]] std::vector<std::string> AnalyzeText(absl::string_view text);
// The words of `text`, folded but not stemmed, stop words kept (TextAnalyzer::Words).
[[nodiscard]] std::vector<std::string> TextWords(absl::string_view text);

// A lexical query: its terms (scored by BM25) and its phrases, the parts of the text between
// double quotes, which a point's text must hold exactly: the same words in the same order, stop
// words included and nothing stemmed - only case, accents and compatibility forms are folded
// ("Write-ahead log" holds "write ahead log"; "running" does not hold "runs"). A quoted single
// word is a word the text must hold exactly. A phrase's candidates come from the postings of its
// words that are not stop words; a phrase of stop words alone has none there, and is checked on
// the candidates the rest of the query finds (a lexical search with nothing else to find them by
// is refused by the collection, a hybrid one checks its dense candidates). Empty quotes are
// nothing, and a quote without its pair is text.
struct TextQuery {
  struct Phrase {
    std::vector<std::string> terms;  // as indexed: finds the candidates
    std::vector<std::string> words;  // as written (folded): what a text must hold
  };
  std::vector<std::string> terms;  // every term of the text, phrases' included
  std::vector<Phrase> phrases;
};
// ResourceExhausted naming the limit when the text has more than kMaxQueryTerms distinct terms
// (in Chinese, Japanese, Korean and the scripts of South-East Asia a pair of characters is one:
// text_analyzer.h), or its phrases more than
// kMaxQueryTerms words together.
// A text of stop words alone has none (not an error).
[[nodiscard]] absl::StatusOr<TextQuery> ParseTextQuery(absl::string_view text);
// True when a phrase of `query` has a word that is not a stop word (TextIndex::PhraseCandidates
// can then list the documents that may hold the phrases).
[[nodiscard]] bool HasPhraseTerms(const TextQuery& query);

// True when `text_terms` holds `phrase` as consecutive items (an empty phrase: true).
[[nodiscard]] bool ContainsPhrase(absl::Span<const std::string> text_terms,
                                  absl::Span<const std::string> phrase);

// The text of a point as the index read it (for phrase checks); NotFound when it has none.
using StoredTextFn = absl::FunctionRef<absl::StatusOr<std::string>(VectorId)>;

class TextIndex final {
 public:
  // Makes `terms` the document of `id`, replacing any it had; no terms leaves it without one.
  void Put(VectorId id, absl::Span<const std::string> terms);
  void Erase(VectorId id);

  [[nodiscard]] std::vector<ScoredDoc> Search(absl::Span<const std::string> query, uint32_t k,
                                              const IdSet* allow = nullptr) const {
    return bm25_.Search(query, k, allow);
  }
  [[nodiscard]] std::vector<double> Score(absl::Span<const std::string> query,
                                          absl::Span<const VectorId> ids) const {
    return bm25_.Score(query, ids);
  }
  // The k best documents for `query` by BM25, each holding the query's phrases: for a query with
  // phrases, the documents with every phrase term are checked (their text from `stored_text`,
  // re-analysed), best BM25 first, until k hold them or kMaxPhraseChecks were checked. With
  // `allow`, only documents whose id it holds.
  [[nodiscard]] absl::Status Search(const TextQuery& query, uint32_t k, StoredTextFn stored_text,
                                    std::vector<ScoredDoc>* out,
                                    const IdSet* allow = nullptr) const;
  // The documents holding every term of `query`'s phrases (unranked): the only ones that can
  // hold the phrases. Meaningful only when HasPhraseTerms(query).
  [[nodiscard]] std::vector<VectorId> PhraseCandidates(const TextQuery& query) const;
  // Whether document `id`'s text holds every phrase of `query` (true without phrases). It reads
  // the text: check PhraseCandidates first.
  [[nodiscard]] absl::StatusOr<bool> HoldsPhrases(VectorId id, const TextQuery& query,
                                                  StoredTextFn stored_text) const;
  [[nodiscard]] uint64_t documents() const { return bm25_.documents(); }
  [[nodiscard]] uint64_t terms() const { return bm25_.terms(); }
  [[nodiscard]] uint64_t MemoryBytes() const { return bm25_.MemoryBytes(); }
  // At most how many bytes Putting documents of these terms adds (Bm25Index::BytesToAdd).
  [[nodiscard]] uint64_t BytesToAdd(absl::Span<const absl::Span<const std::string>> docs) const {
    return bm25_.BytesToAdd(docs);
  }

 private:
  Bm25Index bm25_;
};

}  // namespace strata

#endif  // STRATA_INDEX_TEXT_INDEX_H_
