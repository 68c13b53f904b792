// CollectionImpl's text searches (index/collection.h, "Text"): lexical (BM25 over the payload
// text, phrases checked on stored texts) and hybrid (dense and lexical candidates fused), and the
// collection's tuned hybrid default.
#include <algorithm>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "index/collection.h"
#include "index/internal/collection_impl.h"
#include "storage/status_macros.h"

namespace strata::collection_internal {

absl::Status CollectionImpl::SearchText(const Scope& scope, const TextSearch& search, uint32_t k,
                                        const SearchParams& params, std::vector<ScoredHit>* hits,
                                        SearchStats* stats,
                                        std::shared_ptr<const ReadMoment>* moment) const {
  hits->clear();
  if (search.mode == SearchMode::kHybrid) {
    std::vector<FusionCandidate> candidates;
    RETURN_IF_ERROR(HybridCandidates(scope, search, k, params, &candidates, stats, moment));
    for (const FusedHit& f : Fuse(candidates, search.fusion, k)) {
      ScoredHit h;
      h.id = f.candidate.id;
      h.score = f.score;
      h.has_dense = true;
      h.dense_distance = f.candidate.dense_distance;
      h.has_lexical = true;
      h.lexical_score = f.candidate.lexical_score;
      hits->push_back(h);
    }
    return absl::OkStatus();
  }
  if (search.mode == SearchMode::kDense) {
    return absl::InvalidArgumentError("SearchText answers lexical and hybrid searches");
  }
  RETURN_IF_ERROR(CheckTextSearch(k));
  ASSIGN_OR_RETURN(const TextQuery query, ParseTextQuery(search.text));
  if (!query.phrases.empty() && !HasPhraseTerms(query) && query.terms.empty()) {
    return absl::InvalidArgumentError(
        "the query's phrases are stop words alone, which the lexical index does not hold, and it "
        "has no other word to find candidates by: add a word that is not a stop word, or search "
        "in HYBRID mode (its dense candidates are checked for the phrases)");
  }
  ReaderMutexLock lock(&mu_);
  RETURN_IF_ERROR(CheckServing());
  ASSIGN_OR_RETURN(const ViewRef view, View(scope));
  std::vector<ScoredDoc> found;
  RETURN_IF_ERROR(text_.Search(
      query, k, [this, at = snap_.get()](VectorId id) { return StoredText(id, at); }, &found,
      view.ids));
  for (const ScoredDoc& d : found) {
    if (d.id >= ext_of_.size()) {
      return absl::DataLossError(
          absl::StrCat("collection '", config_.name, "': unknown internal id ", d.id));
    }
    ScoredHit h;
    h.id = ext_of_[d.id];
    h.score = d.score;
    h.has_lexical = true;
    h.lexical_score = d.score;
    hits->push_back(h);
  }
  if (stats != nullptr) *stats = SearchStats{};
  NoteMoment(
      scope, found, [](const ScoredDoc& d) { return d.id; }, moment);
  return absl::OkStatus();
}

absl::Status CollectionImpl::HybridCandidates(const Scope& scope, const TextSearch& search,
                                              uint32_t k, const SearchParams& params,
                                              std::vector<FusionCandidate>* candidates,
                                              SearchStats* stats,
                                              std::shared_ptr<const ReadMoment>* moment) const {
  RETURN_IF_ERROR(CheckTextSearch(k));
  RETURN_IF_ERROR(CheckFusionParams(search.fusion));
  std::vector<uint8_t> q;
  RETURN_IF_ERROR(QueryForm(search.query, &q));
  ASSIGN_OR_RETURN(const TextQuery query, ParseTextQuery(search.text));
  const std::vector<std::string>& terms = query.terms;

  candidates->clear();
  ReaderMutexLock lock(&mu_);
  RETURN_IF_ERROR(CheckServing());
  ASSIGN_OR_RETURN(ViewRef view, View(scope));
  SearchStats st;
  std::vector<Neighbor> dense;
  // `view` as it is after the search (which may release mu_ while reading: SearchIndex).
  RETURN_IF_ERROR(DenseSearch(q.data(), std::max(k, kDenseDepth), params, &view, &dense, &st));
  const auto stored_text = [this, at = snap_.get()](VectorId id) { return StoredText(id, at); };
  if (!query.phrases.empty()) {  // phrases filter both sides
    // Phrases with a word that is not a stop word: only documents with their terms may hold them.
    const bool prefilter = HasPhraseTerms(query);
    const std::vector<VectorId> with_terms =
        prefilter ? text_.PhraseCandidates(query) : std::vector<VectorId>{};
    const absl::flat_hash_set<VectorId> may_hold(with_terms.begin(), with_terms.end());
    std::vector<Neighbor> kept;
    for (const Neighbor& n : dense) {
      if (prefilter && !may_hold.contains(n.id)) continue;  // lacks a phrase term: no text read
      ASSIGN_OR_RETURN(bool match, text_.HoldsPhrases(n.id, query, stored_text));
      if (match) kept.push_back(n);
    }
    dense = std::move(kept);
  }
  std::vector<ScoredDoc> lexical;
  RETURN_IF_ERROR(text_.Search(query, std::max(k, kLexicalDepth), stored_text, &lexical, view.ids));
  // The union (by internal id), each candidate scored on both sides.
  absl::flat_hash_map<VectorId, uint32_t> at;
  std::vector<VectorId> ids;  // internal, by candidate
  for (size_t r = 0; r < dense.size(); ++r) {
    at[dense[r].id] = static_cast<uint32_t>(ids.size());
    ids.push_back(dense[r].id);
    candidates->push_back({0, dense[r].distance, 0, static_cast<uint32_t>(r + 1), 0});
  }
  const size_t n_dense = ids.size();
  for (size_t r = 0; r < lexical.size(); ++r) {
    auto [it, fresh] = at.insert({lexical[r].id, static_cast<uint32_t>(ids.size())});
    if (fresh) {
      ids.push_back(lexical[r].id);
      candidates->push_back({});
    }
    (*candidates)[it->second].lexical_score = lexical[r].score;
    (*candidates)[it->second].lexical_rank = static_cast<uint32_t>(r + 1);
  }
  // Lexical candidates outside the dense list: their exact distances.
  std::vector<float> distances;
  RETURN_IF_ERROR(DistancesTo(q.data(), absl::MakeConstSpan(ids).subspan(n_dense), &distances));
  for (size_t i = 0; i < distances.size(); ++i) {
    (*candidates)[n_dense + i].dense_distance = distances[i];
  }
  // Dense candidates outside the lexical list: their BM25 (0 when they share no term).
  const std::vector<double> scores = text_.Score(terms, absl::MakeConstSpan(ids).first(n_dense));
  for (size_t i = 0; i < n_dense; ++i) {
    if ((*candidates)[i].lexical_rank == 0) (*candidates)[i].lexical_score = scores[i];
  }
  for (size_t i = 0; i < ids.size(); ++i) {
    if (ids[i] >= ext_of_.size()) {
      return absl::DataLossError(
          absl::StrCat("collection '", config_.name, "': unknown internal id ", ids[i]));
    }
    (*candidates)[i].id = ext_of_[ids[i]];
  }
  // A row stored before the vector rules (never indexed, but in the lexical index) can have a
  // distance that is not finite; fusion needs finite scores (fusion.h).
  std::erase_if(*candidates, [](const FusionCandidate& c) {
    return !std::isfinite(c.dense_distance) || !std::isfinite(c.lexical_score);
  });
  if (stats != nullptr) *stats = st;
  // (mu_ held since the dense side's last read: SearchIndex)
  NoteMoment(
      scope, ids, [](VectorId id) { return id; }, moment);
  return absl::OkStatus();
}

absl::Status CollectionImpl::SetHybridDefault(double weight, double mrr, uint32_t questions) {
  RETURN_IF_ERROR(CheckNotDropped());
  RETURN_IF_ERROR(CheckFusionParams({FusionMethod::kRelativeScore, weight}));
  MutexLock write_lock(&write_mu_);
  WriteBatch batch;
  const auto plan = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(write_mu_)
                        ABSL_SHARED_LOCKS_REQUIRED(mu_) -> absl::Status {
    RETURN_IF_ERROR(CheckNotDropped());
    CollectionConfig next = Record(generation_);
    next.hybrid_weight = weight;
    next.hybrid_mrr = mrr;
    next.hybrid_questions = questions;
    batch.Put(Cf::kCollections, next.name, next.Serialize());
    return absl::OkStatus();
  };
  return Write(&batch, plan, [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(write_mu_, mu_) {
    hybrid_ = {weight, mrr, questions};
  });
}

absl::Status CollectionImpl::CheckTextRoom(uint64_t adding) const {
  const uint64_t held = text_.MemoryBytes(), limit = options_.max_text_index_bytes;
  if (limit == 0 || held + adding <= limit) return absl::OkStatus();
  return absl::ResourceExhaustedError(absl::StrFormat(
      "collection '%s': its lexical index holds %.1f MiB and these texts could add up to %.1f "
      "MiB, past its limit of %.1f MiB (--max_text_index_mb): nothing was written. Texts of "
      "mostly distinct words (identifiers, hashes) cost up to ~10x their size; index fewer "
      "fields, or raise the limit",
      config_.name, held / 1048576.0, adding / 1048576.0, limit / 1048576.0));
}

}  // namespace strata::collection_internal
