#include "gpu/sampler.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"

namespace strata::gpu {

absl::Status CheckSamplingParams(const SamplingParams& p) {
  if (!(p.temperature >= 0.0f && p.temperature <= 100.0f)) {
    return absl::InvalidArgumentError(
        absl::StrCat("temperature ", p.temperature, " is outside [0, 100]"));
  }
  if (p.top_k < 0) return absl::InvalidArgumentError(absl::StrCat("top_k ", p.top_k, " < 0"));
  if (p.penalty_last_n < 0) {
    return absl::InvalidArgumentError(absl::StrCat("penalty_last_n ", p.penalty_last_n, " < 0"));
  }
  if (!(p.top_p > 0.0f && p.top_p <= 1.0f)) {
    return absl::InvalidArgumentError(absl::StrCat("top_p ", p.top_p, " is outside (0, 1]"));
  }
  if (!(p.repetition_penalty >= 1.0f && p.repetition_penalty <= 10.0f)) {
    return absl::InvalidArgumentError(
        absl::StrCat("repetition_penalty ", p.repetition_penalty, " is outside [1, 10]"));
  }
  return absl::OkStatus();
}

Sampler::Sampler(const SamplingParams& params) : params_(params), rng_(params.seed) {}

int32_t Sampler::Next(absl::Span<float> logits, absl::Span<const int32_t> history) {
  const auto vocab = static_cast<int32_t>(logits.size());
  if (params_.repetition_penalty != 1.0f) {
    seen_.assign(logits.size(), 0);
    const size_t from = history.size() > static_cast<size_t>(params_.penalty_last_n)
                            ? history.size() - static_cast<size_t>(params_.penalty_last_n)
                            : 0;
    for (int32_t id : history.subspan(from)) {
      if (id < 0 || id >= vocab || seen_[id]) continue;
      seen_[id] = 1;
      float& l = logits[id];
      l = l > 0 ? l / params_.repetition_penalty : l * params_.repetition_penalty;
    }
  }
  if (params_.temperature == 0.0f) {
    int32_t best = -1;
    for (int32_t i = 0; i < vocab; ++i) {
      if (std::isfinite(logits[i]) && (best < 0 || logits[i] > logits[best])) best = i;
    }
    return best < 0 ? 0 : best;
  }
  candidates_.clear();
  for (int32_t i = 0; i < vocab; ++i) {
    if (std::isfinite(logits[i])) candidates_.emplace_back(logits[i], i);
  }
  if (candidates_.empty()) return 0;
  auto higher = [](const auto& a, const auto& b) {
    return a.first != b.first ? a.first > b.first : a.second < b.second;
  };
  size_t keep = candidates_.size();
  if (params_.top_k > 0 && static_cast<size_t>(params_.top_k) < keep) {
    keep = static_cast<size_t>(params_.top_k);
    std::partial_sort(candidates_.begin(), candidates_.begin() + static_cast<std::ptrdiff_t>(keep),
                      candidates_.end(), higher);
    candidates_.resize(keep);
  } else {
    std::sort(candidates_.begin(), candidates_.end(), higher);
  }
  // Softmax at the temperature, in double, over the survivors (sorted, most likely first).
  const double top = candidates_[0].first;
  std::vector<double> p(candidates_.size());
  double sum = 0;
  for (size_t i = 0; i < candidates_.size(); ++i) {
    p[i] = std::exp((candidates_[i].first - top) / params_.temperature);
    sum += p[i];
  }
  if (params_.top_p < 1.0f) {
    double mass = 0;
    size_t n = 0;
    while (n < p.size() && mass < params_.top_p * sum) mass += p[n++];
    p.resize(std::max<size_t>(n, 1));
    sum = mass > 0 ? mass : p[0];
  }
  std::uniform_real_distribution<double> u(0.0, sum);
  double r = u(rng_);
  for (size_t i = 0; i < p.size(); ++i) {
    r -= p[i];
    if (r <= 0) return candidates_[i].second;
  }
  return candidates_[p.size() - 1].second;
}

}  // namespace strata::gpu
