#include "tests/gpu/decoder_fixture.h"

#include <algorithm>
#include <cmath>
#include <fstream>

#include "nlohmann/json.hpp"
#include "storage/status_macros.h"
#include "tests/gpu/tiny_model.h"

namespace strata::testing {

absl::StatusOr<LogitsFixtureCheck> CheckSmolLm2Fixture(gpu::Decoder& d) {
  std::ifstream in(FixturePath("smollm2_logits.json"));
  if (!in) return absl::NotFoundError("tests/gpu/data/smollm2_logits.json is missing");
  const nlohmann::json j = nlohmann::json::parse(in);
  const int vocab = d.config().vocab_size;
  LogitsFixtureCheck out;
  for (const auto& c : j["cases"]) {
    ++out.prompts;
    const std::vector<int32_t> ids = c["ids"];
    const std::vector<int32_t> ours =
        d.chat().Encode(d.tokenizer(), {{"user", c["question"].get<std::string>()}}, true);
    if (ours != ids) ++out.ids_mismatches;
    ASSIGN_OR_RETURN(auto seq, d.NewSequence(static_cast<int64_t>(ids.size())));
    std::vector<float> logits;
    RETURN_IF_ERROR(d.Forward(ids, *seq, &logits, /*all_logits=*/true));
    for (size_t t = 0; t < ids.size(); ++t, ++out.positions) {
      const float* x = logits.data() + t * static_cast<size_t>(vocab);
      double mx = -1e300;
      for (int i = 0; i < vocab; ++i) mx = std::max(mx, static_cast<double>(x[i]));
      double sum = 0;
      for (int i = 0; i < vocab; ++i) sum += std::exp(x[i] - mx);
      const double log_z = mx + std::log(sum);
      const std::vector<int32_t> top = c["top_ids"][t];
      const std::vector<double> lp = c["top_logprobs"][t];
      if (std::max_element(x, x + vocab) - x != top[0]) ++out.argmax_mismatches;
      for (size_t r = 0; r < top.size(); ++r) {
        out.worst = std::max(out.worst, std::fabs(x[top[r]] - log_z - lp[r]));
      }
    }
  }
  return out;
}

}  // namespace strata::testing
