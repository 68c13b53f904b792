#include "index/text_index.h"

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

absl::StatusOr<std::vector<std::string>> AnalyzeQuery(absl::string_view text) {
  std::vector<std::string> terms = AnalyzeText(text);
  absl::flat_hash_set<absl::string_view> distinct(terms.begin(), terms.end());
  if (distinct.size() > kMaxQueryTerms) {
    return absl::InvalidArgumentError(absl::StrCat("the text query has ", distinct.size(),
                                                   " distinct terms; the limit is ", kMaxQueryTerms,
                                                   ": ask a shorter question"));
  }
  return terms;
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
