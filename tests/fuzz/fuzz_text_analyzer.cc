// The lexical analysis and BM25 index on arbitrary bytes (valid UTF-8 or not): every term is
// non-empty, within the length limit and valid UTF-8, and the index takes the terms, finds the
// document again by its own terms (and as a phrase of them), and finds nothing once it is removed;
// the same bytes parsed as a query (phrases in quotes) never crash.
#include <utf8proc.h>

#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "index/bm25_index.h"
#include "index/text_analyzer.h"
#include "index/text_index.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::unique_ptr<strata::TextAnalyzer> analyzer = [] {
    auto a = strata::TextAnalyzer::Create("english");
    if (!a.ok()) std::abort();
    return std::move(a).value();
  }();
  const std::vector<std::string> terms =
      analyzer->Terms(absl::string_view(reinterpret_cast<const char*>(data), size));
  for (const std::string& t : terms) {
    if (t.empty() || t.size() > strata::TextAnalyzer::kMaxTermBytes * 4) std::abort();
    const auto* p = reinterpret_cast<const utf8proc_uint8_t*>(t.data());
    utf8proc_ssize_t left = static_cast<utf8proc_ssize_t>(t.size());
    while (left > 0) {
      utf8proc_int32_t c;
      const utf8proc_ssize_t n = utf8proc_iterate(p, left, &c);
      if (n <= 0) std::abort();  // a term that is not valid UTF-8
      p += n;
      left -= n;
    }
  }
  strata::Bm25Index index;
  const std::vector<absl::Span<const std::string>> docs = {terms};
  const uint64_t bound = index.BytesToAdd(docs), before = index.MemoryBytes();
  if (!index.Add(7, terms).ok()) std::abort();
  if (index.MemoryBytes() != index.CountMemoryBytes()) std::abort();
  if (index.MemoryBytes() - before > bound) std::abort();
  const auto hits = index.Search(terms, 3);
  if (terms.empty() ? !hits.empty() : (hits.size() != 1 || hits[0].id != 7)) std::abort();
  // The document holds itself as a phrase and every term of it; a query parsed from the same
  // bytes is within its limits or refused, never a crash.
  if (!strata::ContainsPhrase(terms, terms)) std::abort();
  if (!terms.empty() && index.WithAll(terms) != std::vector<strata::VectorId>{7}) std::abort();
  auto query = strata::ParseTextQuery(absl::string_view(reinterpret_cast<const char*>(data), size));
  if (query.ok()) {
    for (const auto& phrase : query->phrases) {
      // (a phrase of stop words alone has words and no terms)
      if (phrase.words.empty() || phrase.words.size() < phrase.terms.size()) std::abort();
    }
  }
  if (!index.Remove(7).ok() || !index.Search(terms, 3).empty()) std::abort();
  return 0;
}
