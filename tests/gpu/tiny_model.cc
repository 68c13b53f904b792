#include "tests/gpu/tiny_model.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <random>

#include "absl/strings/str_cat.h"
#include "gpu/encoder.h"
#include "gpu/safetensors.h"
#include "nlohmann/json.hpp"
#include "storage/scoped_fd.h"
#include "storage/status_macros.h"

namespace strata::testing {
namespace {

absl::Status WriteText(const std::string& path, const std::string& text) {
  return WriteFileAtomic(path, absl::Span<const char>(text.data(), text.size()));
}

float Round(gpu::DType t, float v) {
  uint16_t h;
  switch (t) {
    case gpu::DType::kF16:
      h = gpu::FloatToHalf(v);
      return gpu::HalfToFloat(h);
    case gpu::DType::kBF16:
      h = gpu::FloatToBFloat16(v);
      return gpu::BFloat16ToFloat(h);
    default:
      return v;
  }
}

using Mat = std::vector<double>;

// y[m, n] = x[m, k] · w[n, k]ᵀ + b
Mat LinearRef(const Mat& x, int m, int k, const std::vector<float>& w, const std::vector<float>& b,
              int n) {
  Mat y(static_cast<size_t>(m) * n);
  for (int i = 0; i < m; ++i) {
    for (int j = 0; j < n; ++j) {
      double s = b[j];
      for (int l = 0; l < k; ++l) s += x[i * k + l] * w[static_cast<size_t>(j) * k + l];
      y[static_cast<size_t>(i) * n + j] = s;
    }
  }
  return y;
}

void LayerNormRef(Mat& x, int m, int h, const std::vector<float>& g, const std::vector<float>& b,
                  double eps) {
  for (int i = 0; i < m; ++i) {
    double mean = 0, var = 0;
    for (int j = 0; j < h; ++j) mean += x[i * h + j];
    mean /= h;
    for (int j = 0; j < h; ++j) var += (x[i * h + j] - mean) * (x[i * h + j] - mean);
    var /= h;
    for (int j = 0; j < h; ++j)
      x[i * h + j] = (x[i * h + j] - mean) / std::sqrt(var + eps) * g[j] + b[j];
  }
}

}  // namespace

absl::Status WriteTinyBert(const std::string& dir, const TinyBertSpec& spec, TinyWeights* weights) {
  namespace fs = std::filesystem;
  std::vector<std::string> vocab = {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"};
  for (char c = 'a'; c <= 'z'; ++c) vocab.push_back(std::string(1, c));
  for (char c = '0'; c <= '9'; ++c) vocab.push_back(std::string(1, c));
  for (const char* p : {".", ",", "!", "?", "'", "-", "(", ")"}) vocab.push_back(p);
  for (const char* w : {"the", "cat", "sat", "on", "mat", "data", "base", "vector", "search",
                        "index", "query", "##s", "##ing", "##ed", "##er", "un", "##able"}) {
    vocab.push_back(w);
  }
  for (char c = 'a'; c <= 'z'; ++c) vocab.push_back(std::string("##") + c);
  std::string vocab_text;
  for (const auto& v : vocab) vocab_text += v + "\n";
  RETURN_IF_ERROR(WriteText(dir + "/vocab.txt", vocab_text));

  const int h = spec.hidden, v = static_cast<int>(vocab.size()), f = spec.intermediate;
  nlohmann::json config = {
      {"architectures", {spec.classifier ? "BertForSequenceClassification" : "BertModel"}},
      {"model_type", "bert"},
      {"hidden_act", "gelu"},
      {"hidden_size", h},
      {"intermediate_size", f},
      {"layer_norm_eps", 1e-12},
      {"max_position_embeddings", spec.max_positions},
      {"num_attention_heads", spec.heads},
      {"num_hidden_layers", spec.layers},
      {"type_vocab_size", 2},
      {"vocab_size", v},
      {"position_embedding_type", "absolute"}};
  if (spec.classifier) config["id2label"] = {{"0", "LABEL_0"}};
  RETURN_IF_ERROR(WriteText(dir + "/config.json", config.dump(2)));
  fs::create_directories(dir + "/1_Pooling");
  nlohmann::json pooling = {{"word_embedding_dimension", h},
                            {"pooling_mode_cls_token", spec.cls_pooling},
                            {"pooling_mode_mean_tokens", !spec.cls_pooling}};
  RETURN_IF_ERROR(WriteText(dir + "/1_Pooling/config.json", pooling.dump(2)));
  nlohmann::json modules = nlohmann::json::array();
  modules.push_back({{"idx", 0},
                     {"name", "0"},
                     {"path", ""},
                     {"type", "sentence_transformers.models.Transformer"}});
  modules.push_back({{"idx", 1},
                     {"name", "1"},
                     {"path", "1_Pooling"},
                     {"type", "sentence_transformers.models.Pooling"}});
  if (spec.normalize) {
    modules.push_back({{"idx", 2},
                       {"name", "2"},
                       {"path", "2_Normalize"},
                       {"type", "sentence_transformers.models.Normalize"}});
  }
  RETURN_IF_ERROR(WriteText(dir + "/modules.json", modules.dump(2)));

  std::mt19937_64 rng(spec.seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<gpu::TensorToWrite> tensors;
  weights->clear();
  auto add = [&](const std::string& name, std::vector<int64_t> shape, float scale, float offset) {
    if (std::find(spec.omit.begin(), spec.omit.end(), name) != spec.omit.end()) return;
    if (std::find(spec.misshape.begin(), spec.misshape.end(), name) != spec.misshape.end()) {
      shape.back() += 1;
    }
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    std::vector<float> vals(static_cast<size_t>(n));
    for (float& x : vals) x = Round(spec.dtype, offset + scale * normal(rng));
    (*weights)[name] = vals;
    // A classifier's checkpoint holds the body (and its pooler) under "bert.", as
    // BertForSequenceClassification saves it.
    const bool body = spec.classifier && name.rfind("classifier.", 0) != 0;
    tensors.push_back(
        {body ? "bert." + name : name, spec.dtype, std::move(shape), std::move(vals)});
  };
  add("embeddings.word_embeddings.weight", {v, h}, 0.5f, 0);
  add("embeddings.position_embeddings.weight", {spec.max_positions, h}, 0.2f, 0);
  add("embeddings.token_type_embeddings.weight", {2, h}, 0.2f, 0);
  add("embeddings.LayerNorm.weight", {h}, 0.1f, 1);
  add("embeddings.LayerNorm.bias", {h}, 0.1f, 0);
  const float ws = 1.0f / std::sqrt(static_cast<float>(h));
  for (int l = 0; l < spec.layers; ++l) {
    const std::string p = absl::StrCat("encoder.layer.", l, ".");
    for (const char* qkv : {"query", "key", "value"}) {
      add(p + "attention.self." + qkv + ".weight", {h, h}, ws, 0);
      add(p + "attention.self." + qkv + ".bias", {h}, 0.1f, 0);
    }
    add(p + "attention.output.dense.weight", {h, h}, ws, 0);
    add(p + "attention.output.dense.bias", {h}, 0.1f, 0);
    add(p + "attention.output.LayerNorm.weight", {h}, 0.1f, 1);
    add(p + "attention.output.LayerNorm.bias", {h}, 0.1f, 0);
    add(p + "intermediate.dense.weight", {f, h}, ws, 0);
    add(p + "intermediate.dense.bias", {f}, 0.1f, 0);
    add(p + "output.dense.weight", {h, f}, 1.0f / std::sqrt(static_cast<float>(f)), 0);
    add(p + "output.dense.bias", {h}, 0.1f, 0);
    add(p + "output.LayerNorm.weight", {h}, 0.1f, 1);
    add(p + "output.LayerNorm.bias", {h}, 0.1f, 0);
  }
  if (spec.classifier) {
    add("pooler.dense.weight", {h, h}, ws, 0);
    add("pooler.dense.bias", {h}, 0.1f, 0);
    add("classifier.weight", {1, h}, 1.0f, 0);
    add("classifier.bias", {1}, 0.1f, 0);
  }
  return gpu::WriteSafetensors(dir + "/model.safetensors", tensors);
}

namespace {

// The transformer's output [t, h] for `ids` with token types `types` (one per id).
Mat BodyRef(const TinyBertSpec& spec, const TinyWeights& w, const std::vector<int32_t>& ids,
            const std::vector<int>& types) {
  const int h = spec.hidden, t = static_cast<int>(ids.size()), f = spec.intermediate;
  const int heads = spec.heads, hd = h / heads;
  const double eps = 1e-12;
  auto W = [&](const std::string& name) -> const std::vector<float>& { return w.at(name); };
  Mat x(static_cast<size_t>(t) * h);
  for (int i = 0; i < t; ++i) {
    for (int j = 0; j < h; ++j) {
      x[i * h + j] = static_cast<double>(W("embeddings.word_embeddings.weight")[ids[i] * h + j]) +
                     W("embeddings.position_embeddings.weight")[i * h + j] +
                     W("embeddings.token_type_embeddings.weight")[types[i] * h + j];
    }
  }
  LayerNormRef(x, t, h, W("embeddings.LayerNorm.weight"), W("embeddings.LayerNorm.bias"), eps);
  for (int l = 0; l < spec.layers; ++l) {
    const std::string p = absl::StrCat("encoder.layer.", l, ".");
    const std::string a = p + "attention.";
    Mat q = LinearRef(x, t, h, W(a + "self.query.weight"), W(a + "self.query.bias"), h);
    Mat k = LinearRef(x, t, h, W(a + "self.key.weight"), W(a + "self.key.bias"), h);
    Mat v = LinearRef(x, t, h, W(a + "self.value.weight"), W(a + "self.value.bias"), h);
    Mat ctx(static_cast<size_t>(t) * h, 0.0);
    for (int hh = 0; hh < heads; ++hh) {
      for (int i = 0; i < t; ++i) {
        std::vector<double> s(static_cast<size_t>(t));
        double m = -1e300;
        for (int j = 0; j < t; ++j) {
          double d = 0;
          for (int e = 0; e < hd; ++e) d += q[i * h + hh * hd + e] * k[j * h + hh * hd + e];
          s[j] = d / std::sqrt(static_cast<double>(hd));
          m = std::max(m, s[j]);
        }
        double sum = 0;
        for (double& e : s) sum += (e = std::exp(e - m));
        for (int j = 0; j < t; ++j) {
          for (int e = 0; e < hd; ++e)
            ctx[i * h + hh * hd + e] += s[j] / sum * v[j * h + hh * hd + e];
        }
      }
    }
    Mat o = LinearRef(ctx, t, h, W(a + "output.dense.weight"), W(a + "output.dense.bias"), h);
    for (size_t i = 0; i < o.size(); ++i) o[i] += x[i];
    LayerNormRef(o, t, h, W(a + "output.LayerNorm.weight"), W(a + "output.LayerNorm.bias"), eps);
    x = o;
    Mat u =
        LinearRef(x, t, h, W(p + "intermediate.dense.weight"), W(p + "intermediate.dense.bias"), f);
    for (double& e : u) e = 0.5 * e * (1.0 + std::erf(e / std::sqrt(2.0)));
    Mat y = LinearRef(u, t, f, W(p + "output.dense.weight"), W(p + "output.dense.bias"), h);
    for (size_t i = 0; i < y.size(); ++i) y[i] += x[i];
    LayerNormRef(y, t, h, W(p + "output.LayerNorm.weight"), W(p + "output.LayerNorm.bias"), eps);
    x = y;
  }
  return x;
}

}  // namespace

std::vector<float> ReferenceEmbedding(const TinyBertSpec& spec, const TinyWeights& w,
                                      const std::vector<int32_t>& ids) {
  const int h = spec.hidden, t = static_cast<int>(ids.size());
  const Mat x = BodyRef(spec, w, ids, std::vector<int>(ids.size(), 0));
  std::vector<double> pooled(static_cast<size_t>(h), 0.0);
  for (int j = 0; j < h; ++j) {
    if (spec.cls_pooling) {
      pooled[j] = x[j];
    } else {
      for (int i = 0; i < t; ++i) pooled[j] += x[i * h + j];
      pooled[j] /= t;
    }
  }
  double norm = 0;
  for (double e : pooled) norm += e * e;
  norm = std::sqrt(norm);
  std::vector<float> out(static_cast<size_t>(h));
  for (int j = 0; j < h; ++j)
    out[j] = static_cast<float>(spec.normalize ? pooled[j] / norm : pooled[j]);
  return out;
}

double ReferenceCrossScore(const TinyBertSpec& spec, const TinyWeights& w,
                           const std::vector<int32_t>& pair_ids, int vocab_size) {
  const int h = spec.hidden;
  std::vector<int32_t> ids;
  std::vector<int> types;
  for (int32_t id : pair_ids) {
    ids.push_back(id % vocab_size);
    types.push_back(id >= vocab_size ? 1 : 0);
  }
  const Mat x = BodyRef(spec, w, ids, types);
  const auto& pw = w.at("pooler.dense.weight");
  const auto& pb = w.at("pooler.dense.bias");
  double score = w.at("classifier.bias")[0];
  for (int o = 0; o < h; ++o) {
    double acc = pb[o];
    for (int j = 0; j < h; ++j) acc += static_cast<double>(pw[o * h + j]) * x[j];
    score += static_cast<double>(w.at("classifier.weight")[o]) * std::tanh(acc);
  }
  return score;
}

std::string RealModelDir(const std::string& name) {
  namespace fs = std::filesystem;
  const char* env = std::getenv("STRATA_MODELS_DIR");
  const std::string root = env != nullptr && *env != 0 ? env : STRATA_SOURCE_DIR "/models";
  const std::string dir = root + "/" + name;
  return fs::exists(dir + "/model.safetensors") ? dir : std::string();
}

std::string RealModelFile(const std::string& name, const std::string& file) {
  const char* env = std::getenv("STRATA_MODELS_DIR");
  const std::string root = env != nullptr && *env != 0 ? env : STRATA_SOURCE_DIR "/models";
  const std::string path = root + "/" + name + "/" + file;
  return std::filesystem::exists(path) ? path : std::string();
}

std::string FixturePath(const std::string& name) {
  // $STRATA_SOURCE_DIR, the checkout the test was built in, or the working directory (a test
  // binary carried to another machine runs from a copy of the tree).
  namespace fs = std::filesystem;
  const char* env = std::getenv("STRATA_SOURCE_DIR");
  for (const std::string& root :
       {std::string(env != nullptr ? env : ""), std::string(STRATA_SOURCE_DIR), std::string(".")}) {
    if (root.empty()) continue;
    const std::string path = root + "/tests/gpu/data/" + name;
    if (fs::exists(path)) return path;
  }
  return std::string(STRATA_SOURCE_DIR) + "/tests/gpu/data/" + name;
}

double Cosine(const float* a, const float* b, int n) {
  double ab = 0, aa = 0, bb = 0;
  for (int i = 0; i < n; ++i) {
    ab += double(a[i]) * b[i];
    aa += double(a[i]) * a[i];
    bb += double(b[i]) * b[i];
  }
  return ab / std::sqrt(aa * bb);
}

absl::StatusOr<double> TinyEncoderWorstCosine(BackendFactory make, gpu::DType dtype,
                                              const std::string& dir) {
  double worst = 1;
  for (bool cls : {false, true}) {
    TinyBertSpec spec;
    spec.cls_pooling = cls;
    TinyWeights weights;
    const std::string model = absl::StrCat(dir, cls ? "/cls" : "/mean");
    std::filesystem::create_directories(model);
    RETURN_IF_ERROR(WriteTinyBert(model, spec, &weights));
    ASSIGN_OR_RETURN(auto backend, make());
    gpu::EncoderOptions opts;
    opts.dtype = dtype;
    ASSIGN_OR_RETURN(auto enc, gpu::Encoder::Open(model, opts, std::move(backend)));
    // Mixed lengths in one pass, an empty text ([CLS] [SEP] only) among them.
    const std::vector<std::string> texts = {"the cat sat on the mat.", "vector search", "",
                                            "index the data base, query it", "a"};
    ASSIGN_OR_RETURN(std::vector<float> out, enc->Embed(texts));
    for (size_t i = 0; i < texts.size(); ++i) {
      const auto want = ReferenceEmbedding(spec, weights, enc->Tokenize(texts[i]));
      worst = std::min(worst, Cosine(out.data() + i * spec.hidden, want.data(), spec.hidden));
    }
  }
  return worst;
}

absl::StatusOr<double> MiniLmWorstCosine(BackendFactory make, gpu::DType dtype,
                                         const std::string& model_dir, size_t limit) {
  ASSIGN_OR_RETURN(std::string text, ReadWholeFile(FixturePath("minilm_reference.json")));
  const nlohmann::json fixture = nlohmann::json::parse(text);
  std::vector<std::string> texts;
  for (const auto& c : fixture["cases"]) {
    if (texts.size() == limit) break;
    texts.push_back(c["text"].get<std::string>());
  }
  ASSIGN_OR_RETURN(auto backend, make());
  gpu::EncoderOptions opts;
  opts.dtype = dtype;
  ASSIGN_OR_RETURN(auto enc, gpu::Encoder::Open(model_dir, opts, std::move(backend)));
  ASSIGN_OR_RETURN(std::vector<float> out, enc->Embed(texts));
  const int dim = enc->dimension();
  double worst = 1;
  for (size_t i = 0; i < texts.size(); ++i) {
    const auto want = fixture["cases"][i]["embedding"].get<std::vector<float>>();
    if (want.size() != static_cast<size_t>(dim)) {
      return absl::InternalError("the fixture's embeddings do not match the model's dimension");
    }
    worst = std::min(worst, Cosine(out.data() + i * static_cast<size_t>(dim), want.data(), dim));
  }
  return worst;
}

}  // namespace strata::testing
