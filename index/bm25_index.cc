#include "index/bm25_index.h"

#include <algorithm>
#include <cmath>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"

namespace strata {

absl::Status Bm25Index::Add(VectorId id, absl::Span<const std::string> terms) {
  if (!(options_.k1 >= 0) || !(options_.b >= 0 && options_.b <= 1)) {
    return absl::InvalidArgumentError(
        absl::StrCat("BM25 needs k1 >= 0 and b in [0, 1]; got ", options_.k1, ", ", options_.b));
  }
  if (doc_of_.contains(id)) {
    return absl::AlreadyExistsError(absl::StrCat("document ", id, " is in the lexical index"));
  }
  const auto doc = static_cast<uint32_t>(ids_.size());
  doc_of_.emplace(id, doc);
  ids_.push_back(id);
  lengths_.push_back(static_cast<uint32_t>(terms.size()));
  removed_.push_back(false);
  total_length_ += terms.size();
  absl::flat_hash_map<absl::string_view, uint32_t> tf;
  for (const std::string& t : terms) ++tf[t];
  for (const auto& [term, count] : tf) {
    auto [it, fresh] = postings_.try_emplace(std::string(term));
    if (fresh && it->first.capacity() > std::string().capacity()) {
      term_bytes_ += it->first.capacity() + 1;
    }
    const size_t before = it->second.capacity();
    it->second.push_back({doc, count});
    term_bytes_ += (it->second.capacity() - before) * sizeof(Posting);
  }
  return absl::OkStatus();
}

absl::Status Bm25Index::Remove(VectorId id) {
  auto it = doc_of_.find(id);
  if (it == doc_of_.end()) {
    return absl::NotFoundError(absl::StrCat("document ", id, " is not in the lexical index"));
  }
  removed_[it->second] = true;
  total_length_ -= lengths_[it->second];
  ++removed_count_;
  doc_of_.erase(it);
  if (removed_count_ * 4 > ids_.size()) Compact();
  return absl::OkStatus();
}

void Bm25Index::Compact() {
  std::vector<uint32_t> renumber(ids_.size());
  std::vector<VectorId> ids;
  std::vector<uint32_t> lengths;
  for (uint32_t d = 0; d < ids_.size(); ++d) {
    if (removed_[d]) continue;
    renumber[d] = static_cast<uint32_t>(ids.size());
    ids.push_back(ids_[d]);
    lengths.push_back(lengths_[d]);
  }
  for (auto it = postings_.begin(); it != postings_.end();) {
    std::vector<Posting>& list = it->second;
    std::erase_if(list, [this](const Posting& p) { return removed_[p.doc]; });
    for (Posting& p : list) p.doc = renumber[p.doc];
    if (list.empty()) {
      postings_.erase(it++);
    } else {
      ++it;
    }
  }
  ids_ = std::move(ids);
  lengths_ = std::move(lengths);
  removed_.assign(ids_.size(), false);
  removed_.shrink_to_fit();
  removed_count_ = 0;
  for (uint32_t d = 0; d < ids_.size(); ++d) doc_of_[ids_[d]] = d;
  // Give the memory of what went back: the tables shrink to their contents.
  postings_.rehash(0);
  doc_of_.rehash(0);
  for (auto& [term, list] : postings_) {
    if (list.capacity() > 2 * list.size()) list.shrink_to_fit();
  }
  term_bytes_ = CountMemoryBytes() - FixedBytes();
}

std::vector<Bm25Index::QueryTerm> Bm25Index::Prepare(absl::Span<const std::string> query) const {
  std::vector<QueryTerm> out;
  const double n = static_cast<double>(doc_of_.size());
  absl::flat_hash_set<absl::string_view> seen;
  for (const std::string& t : query) {
    if (!seen.insert(t).second) continue;
    auto it = postings_.find(t);
    if (it == postings_.end()) continue;
    uint64_t live = 0;
    for (const Posting& p : it->second) live += !removed_[p.doc];
    if (live == 0) continue;
    const double df = static_cast<double>(live);
    out.push_back({&it->second, std::log(1.0 + (n - df + 0.5) / (df + 0.5))});
  }
  return out;
}

double Bm25Index::TermScore(const QueryTerm& t, const Posting& p, double avgdl) const {
  const double k1 = options_.k1, b = options_.b;
  const double tf = p.tf;
  const double norm = k1 * (1.0 - b + b * lengths_[p.doc] / std::max(avgdl, 1e-9));
  return t.idf * tf * (k1 + 1.0) / (tf + norm);
}

std::vector<ScoredDoc> Bm25Index::Search(absl::Span<const std::string> query, uint32_t k,
                                         const IdSet* allow) const {
  std::vector<ScoredDoc> out;
  if (k == 0 || doc_of_.empty()) return out;
  const double avgdl = static_cast<double>(total_length_) / static_cast<double>(doc_of_.size());
  absl::flat_hash_map<uint32_t, double> scores;
  for (const QueryTerm& t : Prepare(query)) {
    for (const Posting& p : *t.postings) {
      if (removed_[p.doc] || (allow != nullptr && !allow->Contains(ids_[p.doc]))) continue;
      scores[p.doc] += TermScore(t, p, avgdl);
    }
  }
  out.reserve(scores.size());
  for (const auto& [doc, score] : scores) out.push_back({ids_[doc], score});
  const auto better = [](const ScoredDoc& a, const ScoredDoc& c) {
    return a.score > c.score || (a.score == c.score && a.id < c.id);
  };
  const size_t keep = std::min<size_t>(k, out.size());
  std::partial_sort(out.begin(), out.begin() + static_cast<ptrdiff_t>(keep), out.end(), better);
  out.resize(keep);
  return out;
}

std::vector<double> Bm25Index::Score(absl::Span<const std::string> query,
                                     absl::Span<const VectorId> ids) const {
  std::vector<double> out(ids.size(), 0.0);
  if (doc_of_.empty()) return out;
  const double avgdl = static_cast<double>(total_length_) / static_cast<double>(doc_of_.size());
  const std::vector<QueryTerm> terms = Prepare(query);
  for (size_t i = 0; i < ids.size(); ++i) {
    auto d = doc_of_.find(ids[i]);
    if (d == doc_of_.end()) continue;
    // The summation order is Search's (terms in query order), so the scores are equal bit for bit.
    for (const QueryTerm& t : terms) {
      auto p = std::lower_bound(t.postings->begin(), t.postings->end(), d->second,
                                [](const Posting& a, uint32_t doc) { return a.doc < doc; });
      if (p != t.postings->end() && p->doc == d->second) out[i] += TermScore(t, *p, avgdl);
    }
  }
  return out;
}

std::vector<VectorId> Bm25Index::WithAll(absl::Span<const std::string> terms) const {
  std::vector<VectorId> out;
  std::vector<const std::vector<Posting>*> lists;
  for (const std::string& t : terms) {
    auto it = postings_.find(t);
    if (it == postings_.end()) return out;  // a term no document has
    lists.push_back(&it->second);
  }
  if (lists.empty()) return out;
  // Walk the shortest list; look each document up in the others.
  std::sort(lists.begin(), lists.end(), [](auto* a, auto* b) { return a->size() < b->size(); });
  for (const Posting& p : *lists[0]) {
    if (removed_[p.doc]) continue;
    bool all = true;
    for (size_t l = 1; l < lists.size() && all; ++l) {
      auto q = std::lower_bound(lists[l]->begin(), lists[l]->end(), p.doc,
                                [](const Posting& a, uint32_t doc) { return a.doc < doc; });
      all = q != lists[l]->end() && q->doc == p.doc;
    }
    if (all) out.push_back(ids_[p.doc]);
  }
  return out;
}

uint64_t Bm25Index::FixedBytes() const {
  // Hash tables: a slot and a control byte per capacity.
  using Slot = std::pair<const std::string, std::vector<Posting>>;
  uint64_t bytes = sizeof(*this) + postings_.capacity() * (sizeof(Slot) + 1);
  bytes += doc_of_.capacity() * (sizeof(std::pair<const VectorId, uint32_t>) + 1);
  bytes += ids_.capacity() * sizeof(VectorId) + lengths_.capacity() * sizeof(uint32_t) +
           removed_.capacity() / 8;
  return bytes;
}

uint64_t Bm25Index::MemoryBytes() const { return FixedBytes() + term_bytes_; }

uint64_t Bm25Index::CountMemoryBytes() const {
  uint64_t bytes = FixedBytes();
  for (const auto& [term, list] : postings_) {
    if (term.capacity() > std::string().capacity()) bytes += term.capacity() + 1;
    bytes += list.capacity() * sizeof(Posting);
  }
  return bytes;
}

uint64_t Bm25Index::BytesToAdd(absl::Span<const absl::Span<const std::string>> docs) const {
  using Slot = std::pair<const std::string, std::vector<Posting>>;
  using DocSlot = std::pair<const VectorId, uint32_t>;
  // Postings each term gains: one per document holding it.
  absl::flat_hash_map<absl::string_view, uint64_t> gains;
  for (absl::Span<const std::string> doc : docs) {
    absl::flat_hash_set<absl::string_view> distinct(doc.begin(), doc.end());
    for (absl::string_view t : distinct) ++gains[t];
  }
  // push_back doubles a full vector's capacity (from 1; libstdc++ and libc++), `more` times.
  const auto vector_growth = [](uint64_t size, uint64_t capacity, uint64_t more) -> uint64_t {
    uint64_t grown = capacity;
    while (grown < size + more) grown = grown == 0 ? 1 : 2 * grown;
    return grown - capacity;
  };
  uint64_t bytes = 0, new_terms = 0;
  for (const auto& [term, more] : gains) {
    auto it = postings_.find(term);
    if (it == postings_.end()) {
      ++new_terms;
      if (term.size() > std::string().capacity()) bytes += term.size() + 1;
      bytes += vector_growth(0, 0, more) * sizeof(Posting);
    } else {
      bytes += vector_growth(it->second.size(), it->second.capacity(), more) * sizeof(Posting);
    }
  }
  // A table grows (doubling) once it is 7/8 full; count every slot the growth would make.
  const auto table_growth = [](uint64_t size, uint64_t capacity, uint64_t more, uint64_t slot) {
    uint64_t grown = std::max<uint64_t>(capacity, 1);
    while (size + more > grown - grown / 8) grown = grown * 2 + 1;
    return (grown - capacity) * (slot + 1);
  };
  bytes += table_growth(postings_.size(), postings_.capacity(), new_terms, sizeof(Slot));
  // (doc_of_ keeps a tombstone per removed document until the next compaction: ids_ counts them)
  bytes += table_growth(ids_.size(), doc_of_.capacity(), docs.size(), sizeof(DocSlot));
  bytes += vector_growth(ids_.size(), ids_.capacity(), docs.size()) * sizeof(VectorId);
  bytes += vector_growth(lengths_.size(), lengths_.capacity(), docs.size()) * sizeof(uint32_t);
  // (vector<bool> holds 64-bit words: a word at least)
  bytes += (vector_growth(removed_.size(), removed_.capacity(), docs.size()) + 64 + 7) / 8;
  return bytes;
}

}  // namespace strata
