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
  removed_count_ = 0;
  for (uint32_t d = 0; d < ids_.size(); ++d) doc_of_[ids_[d]] = d;
}

std::vector<ScoredDoc> Bm25Index::Search(absl::Span<const std::string> query, uint32_t k) const {
  std::vector<ScoredDoc> out;
  if (k == 0 || doc_of_.empty()) return out;
  const double n = static_cast<double>(doc_of_.size());
  const double avgdl = static_cast<double>(total_length_) / n;
  const double k1 = options_.k1, b = options_.b;
  absl::flat_hash_map<uint32_t, double> scores;
  absl::flat_hash_set<absl::string_view> seen;
  for (const std::string& t : query) {
    if (!seen.insert(t).second) continue;
    auto it = postings_.find(t);
    if (it == postings_.end()) continue;
    uint64_t live = 0;
    for (const Posting& p : it->second) live += !removed_[p.doc];
    if (live == 0) continue;
    const double df = static_cast<double>(live);
    const double idf = std::log(1.0 + (n - df + 0.5) / (df + 0.5));
    for (const Posting& p : it->second) {
      if (removed_[p.doc]) continue;
      const double tf = p.tf;
      const double norm = k1 * (1.0 - b + b * lengths_[p.doc] / std::max(avgdl, 1e-9));
      scores[p.doc] += idf * tf * (k1 + 1.0) / (tf + norm);
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

}  // namespace strata
