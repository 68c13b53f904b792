#include "gpu/cross_encoder.h"

#include <cmath>
#include <filesystem>

#include "absl/strings/str_cat.h"
#include "gpu/dtype.h"
#include "gpu/safetensors.h"
#include "nlohmann/json.hpp"
#include "storage/scoped_fd.h"
#include "storage/status_macros.h"

namespace strata::gpu {
namespace {

namespace fs = std::filesystem;

// Checks config.json for a BERT classifier with one output.
absl::Status CheckClassifierConfig(const std::string& model_dir) {
  const std::string path = (fs::path(model_dir) / "config.json").string();
  ASSIGN_OR_RETURN(std::string text, ReadWholeFile(path));
  const nlohmann::json j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object()) return absl::InvalidArgumentError(absl::StrCat(path, ": not a JSON object"));
  bool classifier = false;
  if (j.contains("architectures") && j["architectures"].is_array()) {
    for (const auto& a : j["architectures"]) {
      classifier =
          classifier || (a.is_string() && a.get<std::string>() == "BertForSequenceClassification");
    }
  }
  if (!classifier) {
    return absl::InvalidArgumentError(
        absl::StrCat(path,
                     ": a reranker is a BertForSequenceClassification model (a "
                     "cross-encoder); this one lists other architectures"));
  }
  size_t labels = 2;  // Hugging Face's default
  if (j.contains("id2label") && j["id2label"].is_object()) labels = j["id2label"].size();
  if (j.contains("num_labels") && j["num_labels"].is_number_unsigned()) {
    labels = j["num_labels"].get<size_t>();
  }
  if (labels != 1) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": the classifier has ", labels,
                                                   " outputs; a reranker scores with one"));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<float>> ReadFloats(const SafetensorsFile& file, const std::string& name,
                                              std::vector<int64_t> shape) {
  ASSIGN_OR_RETURN(TensorView v, file.Get(name, std::move(shape)));
  int64_t n = 1;
  for (int64_t d : v.shape) n *= d;
  std::vector<float> out(static_cast<size_t>(n));
  ConvertToFloat(v.dtype, v.data, out.size(), out.data());
  return out;
}

}  // namespace

absl::StatusOr<std::unique_ptr<CrossEncoder>> CrossEncoder::Open(const std::string& model_dir,
                                                                 EncoderOptions options) {
  RETURN_IF_ERROR(CheckClassifierConfig(model_dir));
  options.pooling = Pooling::kCls;
  options.normalize = false;
  options.segment_pairs = true;
  auto ce = std::unique_ptr<CrossEncoder>(new CrossEncoder());
  ASSIGN_OR_RETURN(ce->encoder_, Encoder::Open(model_dir, options));
  const int64_t h = ce->encoder_->dimension();
  ce->hidden_ = static_cast<int>(h);
  ASSIGN_OR_RETURN(auto file,
                   SafetensorsFile::Open((fs::path(model_dir) / "model.safetensors").string()));
  const std::string pooler =
      file->Contains("bert.pooler.dense.weight") ? "bert.pooler.dense." : "pooler.dense.";
  ASSIGN_OR_RETURN(ce->pooler_w_, ReadFloats(*file, pooler + "weight", {h, h}));
  ASSIGN_OR_RETURN(ce->pooler_b_, ReadFloats(*file, pooler + "bias", {h}));
  ASSIGN_OR_RETURN(ce->head_w_, ReadFloats(*file, "classifier.weight", {1, h}));
  ASSIGN_OR_RETURN(std::vector<float> b, ReadFloats(*file, "classifier.bias", {1}));
  ce->head_b_ = b[0];
  return ce;
}

absl::StatusOr<std::vector<float>> CrossEncoder::Score(absl::string_view question,
                                                       absl::Span<const absl::string_view> passages,
                                                       RerankStats* stats,
                                                       const std::function<bool()>& stop) {
  std::vector<std::vector<int32_t>> pairs;
  pairs.reserve(passages.size());
  int64_t cut = 0, tokens = 0;
  for (absl::string_view p : passages) {
    if (p.size() > kMaxPassageBytes) {
      size_t cut_at = kMaxPassageBytes;  // back to the start of a UTF-8 character
      while (cut_at > 0 && (static_cast<unsigned char>(p[cut_at]) & 0xC0) == 0x80) --cut_at;
      p = p.substr(0, cut_at);
    }
    bool truncated = false;
    pairs.push_back(encoder_->TokenizePair(question, p, &truncated));
    cut += truncated ? 1 : 0;
    tokens += static_cast<int64_t>(pairs.back().size());
  }
  const size_t h = static_cast<size_t>(hidden_);
  std::vector<float> cls(pairs.size() * h);
  RETURN_IF_ERROR(encoder_->EmbedTokens(pairs, cls.data(), nullptr, stop));
  std::vector<float> scores(pairs.size());
  std::vector<float> pooled(h);
  for (size_t i = 0; i < pairs.size(); ++i) {
    const float* x = cls.data() + i * h;
    for (size_t o = 0; o < h; ++o) {
      const float* w = pooler_w_.data() + o * h;
      float acc = pooler_b_[o];
      for (size_t j = 0; j < h; ++j) acc += w[j] * x[j];
      pooled[o] = std::tanh(acc);
    }
    float s = head_b_;
    for (size_t j = 0; j < h; ++j) s += head_w_[j] * pooled[j];
    scores[i] = s;
  }
  if (stats != nullptr) {
    stats->pairs += static_cast<int64_t>(pairs.size());
    stats->tokens += tokens;
    stats->truncated += cut;
  }
  return scores;
}

}  // namespace strata::gpu
