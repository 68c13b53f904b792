#include "index/text_index.h"

#include <algorithm>
#include <cassert>
#include <cstdlib>
#include <memory>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "index/text_analyzer.h"
#include "storage/log.h"

namespace strata {
namespace {

TextAnalyzer& ThreadAnalyzer() {
  thread_local std::unique_ptr<TextAnalyzer> analyzer;
  if (analyzer == nullptr) {
    auto created = TextAnalyzer::Create("english");
    // libstemmer always carries English; without it nothing lexical can work.
    if (!created.ok()) {
      Log(LogLevel::kError, "text analysis: %s", created.status().message());
      std::abort();
    }
    analyzer = std::move(*created);
  }
  return *analyzer;
}

}  // namespace

std::vector<std::string> AnalyzeText(absl::string_view text) {
  return ThreadAnalyzer().Terms(text);
}

std::vector<std::string> TextWords(absl::string_view text) { return ThreadAnalyzer().Words(text); }

absl::StatusOr<TextQuery> ParseTextQuery(absl::string_view text) {
  TextQuery q;
  // Quoted parts are phrases; all of the text, quotes aside, gives the terms.
  std::string unquoted;
  unquoted.reserve(text.size());
  size_t at = 0;
  while (at < text.size()) {
    const size_t open = text.find('"', at);
    const size_t close = open == absl::string_view::npos ? open : text.find('"', open + 1);
    if (close == absl::string_view::npos) {  // no (more) pairs: the rest is plain text
      absl::StrAppend(&unquoted, text.substr(at));
      break;
    }
    const absl::string_view inside = text.substr(open + 1, close - open - 1);
    absl::StrAppend(&unquoted, text.substr(at, open - at), " ", inside, " ");
    TextQuery::Phrase phrase{AnalyzeText(inside), TextWords(inside)};
    if (!phrase.words.empty()) q.phrases.push_back(std::move(phrase));
    at = close + 1;
  }
  q.terms = AnalyzeText(unquoted);
  size_t phrase_words = 0;
  for (const TextQuery::Phrase& p : q.phrases) phrase_words += p.words.size();
  if (phrase_words > kMaxQueryTerms) {
    return absl::ResourceExhaustedError(absl::StrCat("the text query's phrases have ", phrase_words,
                                                     " words; the limit is ", kMaxQueryTerms,
                                                     ": quote shorter phrases"));
  }
  absl::flat_hash_set<absl::string_view> distinct(q.terms.begin(), q.terms.end());
  if (distinct.size() > kMaxQueryTerms) {
    return absl::ResourceExhaustedError(absl::StrCat("the text query has ", distinct.size(),
                                                     " distinct terms; the limit is ",
                                                     kMaxQueryTerms, ": ask a shorter question"));
  }
  return q;
}

bool ContainsPhrase(absl::Span<const std::string> text_terms,
                    absl::Span<const std::string> phrase) {
  if (phrase.empty()) return true;
  if (phrase.size() > text_terms.size()) return false;
  // Knuth-Morris-Pratt over words: each text word is compared a bounded number of times, so a
  // text and a phrase of one repeated word ("the the ... the") cost their lengths, not their
  // product. border[i]: the longest proper prefix of phrase[0..i] that is also its suffix.
  std::vector<size_t> border(phrase.size(), 0);
  for (size_t i = 1, b = 0; i < phrase.size(); ++i) {
    while (b > 0 && phrase[i] != phrase[b]) b = border[b - 1];
    if (phrase[i] == phrase[b]) ++b;
    border[i] = b;
  }
  for (size_t i = 0, matched = 0; i < text_terms.size(); ++i) {
    while (matched > 0 && text_terms[i] != phrase[matched]) matched = border[matched - 1];
    if (text_terms[i] == phrase[matched] && ++matched == phrase.size()) return true;
  }
  return false;
}

namespace {

// Every phrase term of `query`, repeats kept.
std::vector<std::string> PhraseTerms(const TextQuery& query) {
  std::vector<std::string> all;
  for (const auto& phrase : query.phrases) {
    all.insert(all.end(), phrase.terms.begin(), phrase.terms.end());
  }
  return all;
}

}  // namespace

bool HasPhraseTerms(const TextQuery& query) {
  return std::any_of(query.phrases.begin(), query.phrases.end(),
                     [](const TextQuery::Phrase& p) { return !p.terms.empty(); });
}

std::vector<VectorId> TextIndex::PhraseCandidates(const TextQuery& query) const {
  return bm25_.WithAll(PhraseTerms(query));
}

absl::StatusOr<bool> TextIndex::HoldsPhrases(VectorId id, const TextQuery& query,
                                             StoredTextFn stored_text) const {
  if (query.phrases.empty()) return true;
  absl::StatusOr<std::string> text = stored_text(id);
  if (absl::IsNotFound(text.status())) return false;
  if (!text.ok()) return text.status();
  const std::vector<std::string> words = TextWords(*text);
  for (const auto& phrase : query.phrases) {
    if (!ContainsPhrase(words, phrase.words)) return false;
  }
  return true;
}

absl::Status TextIndex::Search(const TextQuery& query, uint32_t k, StoredTextFn stored_text,
                               std::vector<ScoredDoc>* out, const IdSet* allow) const {
  out->clear();
  if (query.phrases.empty()) {
    *out = bm25_.Search(query.terms, k, allow);
    return absl::OkStatus();
  }
  std::vector<VectorId> ids;
  if (HasPhraseTerms(query)) {
    ids = PhraseCandidates(query);
  } else {  // phrases of stop words alone: the best documents for the other terms, if any
    for (const ScoredDoc& d : bm25_.Search(query.terms, kMaxPhraseChecks, allow)) {
      ids.push_back(d.id);
    }
  }
  if (allow != nullptr) std::erase_if(ids, [&](VectorId id) { return !allow->Contains(id); });
  const std::vector<double> scores = bm25_.Score(query.terms, ids);
  std::vector<ScoredDoc> ranked;
  ranked.reserve(ids.size());
  for (size_t i = 0; i < ids.size(); ++i) ranked.push_back({ids[i], scores[i]});
  std::sort(ranked.begin(), ranked.end(), [](const ScoredDoc& a, const ScoredDoc& b) {
    return a.score > b.score || (a.score == b.score && a.id < b.id);
  });
  for (size_t i = 0; i < ranked.size() && i < kMaxPhraseChecks && out->size() < k; ++i) {
    absl::StatusOr<bool> holds = HoldsPhrases(ranked[i].id, query, stored_text);
    if (!holds.ok()) return holds.status();
    if (*holds) out->push_back(ranked[i]);
  }
  return absl::OkStatus();
}

void TextIndex::Put(VectorId id, absl::Span<const std::string> terms) {
  Erase(id);
  if (terms.empty()) return;
  // Add fails only for an id already present (erased above) or bad BM25 options (the defaults).
  absl::Status added = bm25_.Add(id, terms);
  assert(added.ok() && "BM25 Add after Erase, with the default options, cannot fail");
  (void)added;
}

void TextIndex::Erase(VectorId id) { (void)bm25_.Remove(id); }

}  // namespace strata
