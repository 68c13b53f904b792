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
  for (const auto& [term, count] : tf) postings_[term].push_back({doc, count});
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

uint64_t Bm25Index::MemoryBytes() const {
  // Hash tables: a slot and a control byte per capacity; strings beyond their inline buffer.
  using Slot = std::pair<const std::string, std::vector<Posting>>;
  uint64_t bytes = sizeof(*this) + postings_.capacity() * (sizeof(Slot) + 1);
  for (const auto& [term, list] : postings_) {
    if (term.capacity() > std::string().capacity()) bytes += term.capacity() + 1;
    bytes += list.capacity() * sizeof(Posting);
  }
  bytes += doc_of_.capacity() * (sizeof(std::pair<const VectorId, uint32_t>) + 1);
  bytes += ids_.capacity() * sizeof(VectorId) + lengths_.capacity() * sizeof(uint32_t) +
           removed_.capacity() / 8;
  return bytes;
}

}  // namespace strata
