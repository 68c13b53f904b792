#include "gpu/encoder.h"

#include <algorithm>
#include <cassert>
#include <chrono>
#include <filesystem>
#include <numeric>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "gpu/safetensors.h"
#include "nlohmann/json.hpp"
#include "storage/log.h"
#include "storage/scoped_fd.h"
#include "storage/status_macros.h"

namespace strata::gpu {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

double Since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

absl::StatusOr<nlohmann::json> ReadJson(const std::string& path) {
  ASSIGN_OR_RETURN(std::string text, ReadWholeFile(path));
  nlohmann::json j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return absl::InvalidArgumentError(absl::StrCat(path, ": not valid JSON"));
  return j;
}

absl::Status GetInt(const nlohmann::json& j, const char* key, const std::string& path, int* out) {
  if (!j.contains(key) || !j[key].is_number_integer() || j[key].get<int64_t>() <= 0 ||
      j[key].get<int64_t>() > (1 << 24)) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": '", key, "' is missing or not a positive integer"));
  }
  *out = j[key].get<int>();
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<EncoderConfig> LoadEncoderConfig(const std::string& model_dir) {
  const std::string path = (fs::path(model_dir) / "config.json").string();
  ASSIGN_OR_RETURN(nlohmann::json j, ReadJson(path));
  EncoderConfig c;
  if (j.contains("model_type") && j["model_type"].is_string()) {
    const std::string type = j["model_type"].get<std::string>();
    if (type != "bert") {
      return absl::InvalidArgumentError(
          absl::StrCat(path, ": model_type '", type, "'; the encoder runs BERT-family models"));
    }
  }
  RETURN_IF_ERROR(GetInt(j, "vocab_size", path, &c.vocab_size));
  RETURN_IF_ERROR(GetInt(j, "hidden_size", path, &c.hidden));
  RETURN_IF_ERROR(GetInt(j, "num_hidden_layers", path, &c.layers));
  RETURN_IF_ERROR(GetInt(j, "num_attention_heads", path, &c.heads));
  RETURN_IF_ERROR(GetInt(j, "intermediate_size", path, &c.intermediate));
  RETURN_IF_ERROR(GetInt(j, "max_position_embeddings", path, &c.max_positions));
  c.type_vocab_size = j.value("type_vocab_size", 0);
  if (j.contains("layer_norm_eps") && j["layer_norm_eps"].is_number()) {
    c.layer_norm_eps = j["layer_norm_eps"].get<float>();
  }
  const std::string act = j.value("hidden_act", std::string("gelu"));
  if (act != "gelu") {
    return absl::InvalidArgumentError(absl::StrCat(
        path, ": hidden_act '", act, "' is not supported (the encoder implements erf 'gelu')"));
  }
  const std::string pos_type = j.value("position_embedding_type", std::string("absolute"));
  if (pos_type != "absolute") {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": position_embedding_type '", pos_type, "' is not supported"));
  }
  if (c.hidden % c.heads != 0) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": hidden_size ", c.hidden,
                                                   " is not a multiple of the ", c.heads,
                                                   " attention heads"));
  }
  c.max_length = c.max_positions;

  // sentence-transformers' settings, when the model ships them.
  const fs::path dir(model_dir);
  if (fs::exists(dir / "1_Pooling" / "config.json")) {
    const std::string p = (dir / "1_Pooling" / "config.json").string();
    ASSIGN_OR_RETURN(nlohmann::json pool, ReadJson(p));
    const bool cls = pool.value("pooling_mode_cls_token", false);
    const bool mean = pool.value("pooling_mode_mean_tokens", false);
    if (cls == mean) {
      return absl::InvalidArgumentError(
          absl::StrCat(p, ": exactly one of CLS and mean pooling is supported"));
    }
    c.pooling = cls ? Pooling::kCls : Pooling::kMean;
  }
  if (fs::exists(dir / "modules.json")) {
    ASSIGN_OR_RETURN(nlohmann::json modules, ReadJson((dir / "modules.json").string()));
    c.normalize = false;
    for (const auto& m : modules) {
      const std::string type = m.value("type", std::string());
      if (type.size() >= 9 && type.compare(type.size() - 9, 9, "Normalize") == 0)
        c.normalize = true;
    }
  }
  if (fs::exists(dir / "sentence_bert_config.json")) {
    ASSIGN_OR_RETURN(nlohmann::json sb, ReadJson((dir / "sentence_bert_config.json").string()));
    if (sb.contains("max_seq_length") && sb["max_seq_length"].is_number_integer()) {
      c.max_length = std::min(c.max_positions, sb["max_seq_length"].get<int>());
    }
  }
  if (fs::exists(dir / "tokenizer_config.json")) {
    ASSIGN_OR_RETURN(nlohmann::json tc, ReadJson((dir / "tokenizer_config.json").string()));
    c.lower_case = tc.value("do_lower_case", true);
  }
  return c;
}

struct Encoder::Layer {
  LinearWeight qkv_w;  // [3H, H]: query, key and value stacked
  Tensor qkv_b;        // [3H]
  LinearWeight out_w;
  Tensor out_b, ln1_g, ln1_b;
  LinearWeight ffn1_w, ffn2_w;
  Tensor ffn1_b, ffn2_b, ln2_g, ln2_b;
};

// Per-pass buffers, grown to the largest pass seen and reused.
struct Encoder::Workspace {
  Tensor ids, positions, offsets;  // int32
  Tensor x, qkv, attn, tmp, ffn, pooled;
};

Encoder::~Encoder() = default;

namespace {

// Uploads the named tensors (stacked along the first dimension when several) to the backend as
// `dtype`, checking each one's shape.
class WeightLoader {
 public:
  WeightLoader(const SafetensorsFile& file, std::string prefix, Backend& backend, DType dtype)
      : file_(file), prefix_(std::move(prefix)), backend_(backend), dtype_(dtype) {}

  absl::StatusOr<Tensor> Load(const std::vector<std::string>& names, std::vector<int64_t> shape) {
    std::vector<int64_t> total = shape;
    total[0] *= static_cast<int64_t>(names.size());
    ASSIGN_OR_RETURN(Tensor t, backend_.Allocate(dtype_, total));
    int64_t per = 1;
    for (int64_t d : shape) per *= d;
    // Straight from the mapping into the backend's tensor, converted on the way when needed.
    for (size_t i = 0; i < names.size(); ++i) {
      ASSIGN_OR_RETURN(TensorView v, file_.Get(prefix_ + names[i], shape));
      RETURN_IF_ERROR(backend_.CopyFromHost(v.data, v.dtype, static_cast<size_t>(per), t,
                                            i * static_cast<size_t>(per)));
      bytes_ += v.bytes;
    }
    return t;
  }
  absl::StatusOr<Tensor> Load(const std::string& name, std::vector<int64_t> shape) {
    return Load(std::vector<std::string>{name}, std::move(shape));
  }
  // A Linear layer's weight, prepared for the backend's GEMM in `precision`.
  absl::StatusOr<LinearWeight> LoadLinear(const std::vector<std::string>& names,
                                          std::vector<int64_t> shape, MatmulPrecision precision) {
    ASSIGN_OR_RETURN(Tensor t, Load(names, std::move(shape)));
    return backend_.PrepareLinear(std::move(t), precision);
  }
  [[nodiscard]] uint64_t bytes() const { return bytes_; }

 private:
  const SafetensorsFile& file_;
  std::string prefix_;
  Backend& backend_;
  DType dtype_;
  uint64_t bytes_ = 0;
};

// Grows `t` to hold `shape` (reallocating only when it is too small).
absl::Status Ensure(Backend& backend, DType dtype, std::vector<int64_t> shape, Tensor& t) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  if (!t.empty() && t.capacity() >= n) {
    t.Reshape(std::move(shape));
    return absl::OkStatus();
  }
  t = Tensor();  // free first: the peak stays one buffer
  ASSIGN_OR_RETURN(t, backend.Allocate(dtype, std::move(shape)));
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::unique_ptr<Encoder>> Encoder::Open(const std::string& model_dir,
                                                       const EncoderOptions& options) {
  return Open(model_dir, options,
              [&] { return CreateBackend(options.backend, options.cuda_device); });
}

absl::StatusOr<std::unique_ptr<Encoder>> Encoder::Open(const std::string& model_dir,
                                                       const EncoderOptions& options,
                                                       std::unique_ptr<Backend> backend) {
  if (backend == nullptr) return absl::InvalidArgumentError("Encoder::Open: no backend");
  return Open(model_dir, options,
              [&]() -> absl::StatusOr<std::unique_ptr<Backend>> { return std::move(backend); });
}

absl::StatusOr<std::unique_ptr<Encoder>> Encoder::Open(
    const std::string& model_dir, const EncoderOptions& options,
    absl::FunctionRef<absl::StatusOr<std::unique_ptr<Backend>>()> make_backend) {
  const auto start = Clock::now();
  auto enc = std::unique_ptr<Encoder>(new Encoder());
  enc->model_dir_ = model_dir;
  ASSIGN_OR_RETURN(enc->config_, LoadEncoderConfig(model_dir));
  EncoderConfig& c = enc->config_;
  if (options.max_length) {
    if (*options.max_length < 2 || *options.max_length > c.max_positions) {
      return absl::InvalidArgumentError(
          absl::StrCat("max_length ", *options.max_length, " outside [2, ", c.max_positions, "]"));
    }
    c.max_length = *options.max_length;
  }
  if (options.pooling) c.pooling = *options.pooling;
  if (options.normalize) c.normalize = *options.normalize;
  enc->max_batch_tokens_ = std::max(options.max_batch_tokens, c.max_length);

  ASSIGN_OR_RETURN(enc->tokenizer_,
                   WordPieceTokenizer::FromVocabFile((fs::path(model_dir) / "vocab.txt").string(),
                                                     c.lower_case));
  if (enc->tokenizer_->vocab_size() > c.vocab_size) {
    return absl::InvalidArgumentError(
        absl::StrCat(model_dir, ": vocab.txt has ", enc->tokenizer_->vocab_size(),
                     " tokens but the model's embedding table only ", c.vocab_size));
  }

  // The backend only now that the model's files have been checked: a CUDA context is not made
  // for a model that cannot load.
  ASSIGN_OR_RETURN(enc->backend_, make_backend());
  Backend& be = *enc->backend_;
  enc->dtype_ = options.dtype.value_or(be.preferred_dtype());
  if (!be.Supports(enc->dtype_)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the ", be.name(), " backend cannot compute in ", DTypeName(enc->dtype_),
        be.kind() == BackendKind::kCpu
            ? " (its activations are F32; for bf16 or int8 matrix products set the matmul "
              "precision instead: --embed_precision, or strata-embed-bench --precision)"
            : ""));
  }
  enc->matmul_ = options.matmul.value_or(be.DefaultMatmul());
  if (absl::Status s = be.CheckMatmul(enc->matmul_); !s.ok()) {
    return absl::Status(s.code(), absl::StrCat("the ", be.name(), " backend: ", s.message()));
  }

  const std::string weights = (fs::path(model_dir) / "model.safetensors").string();
  ASSIGN_OR_RETURN(auto file, SafetensorsFile::Open(weights));
  std::string prefix;
  if (!file->Contains("embeddings.word_embeddings.weight") &&
      file->Contains("bert.embeddings.word_embeddings.weight")) {
    prefix = "bert.";  // checkpoints saved from BertFor* heads
  }
  WeightLoader w(*file, prefix, be, enc->dtype_);
  const int64_t h = c.hidden, ffn = c.intermediate;
  enc->word_rows_ = c.vocab_size;
  if (!options.segment_pairs) {
    ASSIGN_OR_RETURN(enc->word_, w.Load("embeddings.word_embeddings.weight", {c.vocab_size, h}));
  } else {
    if (c.max_length < 3) {
      return absl::InvalidArgumentError(absl::StrCat(
          "text pairs need max_length >= 3 ([CLS] and two [SEP]); it is ", c.max_length));
    }
    if (c.type_vocab_size < 2) {
      return absl::InvalidArgumentError(absl::StrCat(
          model_dir, ": text pairs need two token types; the model has ", c.type_vocab_size));
    }
    ASSIGN_OR_RETURN(TensorView word,
                     file->Get(prefix + "embeddings.word_embeddings.weight", {c.vocab_size, h}));
    ASSIGN_OR_RETURN(TensorView type, file->Get(prefix + "embeddings.token_type_embeddings.weight",
                                                {c.type_vocab_size, h}));
    const size_t rows = static_cast<size_t>(c.vocab_size), n = rows * static_cast<size_t>(h);
    std::vector<float> table(2 * n), types(2 * static_cast<size_t>(h));
    ConvertToFloat(word.dtype, word.data, n, table.data());
    ConvertToFloat(type.dtype, type.data, types.size(), types.data());
    for (size_t r = 0; r < rows; ++r) {
      for (size_t j = 0; j < static_cast<size_t>(h); ++j) {
        table[n + r * h + j] = table[r * h + j] + types[h + j] - types[j];
      }
    }
    ASSIGN_OR_RETURN(enc->word_, be.Allocate(enc->dtype_, {2 * c.vocab_size, h}));
    RETURN_IF_ERROR(be.CopyFromHost(table.data(), DType::kF32, table.size(), enc->word_, 0));
    enc->word_rows_ = 2 * c.vocab_size;
  }
  ASSIGN_OR_RETURN(enc->position_,
                   w.Load("embeddings.position_embeddings.weight", {c.max_positions, h}));
  if (c.type_vocab_size > 0) {
    ASSIGN_OR_RETURN(enc->type_,
                     w.Load("embeddings.token_type_embeddings.weight", {c.type_vocab_size, h}));
  }
  ASSIGN_OR_RETURN(enc->emb_gamma_, w.Load("embeddings.LayerNorm.weight", {h}));
  ASSIGN_OR_RETURN(enc->emb_beta_, w.Load("embeddings.LayerNorm.bias", {h}));
  enc->layers_.resize(static_cast<size_t>(c.layers));
  for (int i = 0; i < c.layers; ++i) {
    const std::string p = absl::StrCat("encoder.layer.", i, ".");
    Layer& l = enc->layers_[static_cast<size_t>(i)];
    const std::string a = p + "attention.";
    const MatmulPrecision mp = enc->matmul_;
    ASSIGN_OR_RETURN(l.qkv_w, w.LoadLinear({a + "self.query.weight", a + "self.key.weight",
                                            a + "self.value.weight"},
                                           {h, h}, mp));
    ASSIGN_OR_RETURN(
        l.qkv_b, w.Load({a + "self.query.bias", a + "self.key.bias", a + "self.value.bias"}, {h}));
    ASSIGN_OR_RETURN(l.out_w, w.LoadLinear({a + "output.dense.weight"}, {h, h}, mp));
    ASSIGN_OR_RETURN(l.out_b, w.Load(a + "output.dense.bias", {h}));
    ASSIGN_OR_RETURN(l.ln1_g, w.Load(a + "output.LayerNorm.weight", {h}));
    ASSIGN_OR_RETURN(l.ln1_b, w.Load(a + "output.LayerNorm.bias", {h}));
    ASSIGN_OR_RETURN(l.ffn1_w, w.LoadLinear({p + "intermediate.dense.weight"}, {ffn, h}, mp));
    ASSIGN_OR_RETURN(l.ffn1_b, w.Load(p + "intermediate.dense.bias", {ffn}));
    ASSIGN_OR_RETURN(l.ffn2_w, w.LoadLinear({p + "output.dense.weight"}, {h, ffn}, mp));
    ASSIGN_OR_RETURN(l.ffn2_b, w.Load(p + "output.dense.bias", {h}));
    ASSIGN_OR_RETURN(l.ln2_g, w.Load(p + "output.LayerNorm.weight", {h}));
    ASSIGN_OR_RETURN(l.ln2_b, w.Load(p + "output.LayerNorm.bias", {h}));
  }
  RETURN_IF_ERROR(be.Synchronize());
  if (!enc->layers_.empty()) enc->gemm_path_ = enc->layers_[0].qkv_w.gemm_path();
  {
    MutexLock lock(&enc->mu_);  // not shared yet; the lock is for the analysis's sake
    enc->ws_ = std::make_unique<Workspace>();
  }
  Log(LogLevel::kInfo,
      "encoder %s: %d layers, hidden %d, %d heads, %s pooling%s, max %d tokens; %.1f MB of "
      "weights read, activations %s, on %s, GEMM %s, in %.2f s",
      model_dir, c.layers, c.hidden, c.heads, c.pooling == Pooling::kCls ? "CLS" : "mean",
      c.normalize ? " + L2 norm" : "", c.max_length, w.bytes() / 1e6,
      std::string(DTypeName(enc->dtype_)), be.name(), enc->gemm_path_, Since(start));
  return enc;
}

std::string Encoder::backend_name() const {
  return absl::StrCat(backend_->name(), ", GEMM ", gemm_path_);
}

std::vector<int32_t> Encoder::Tokenize(absl::string_view text, bool* truncated) const {
  std::vector<int32_t> ids = tokenizer_->Tokenize(text);
  const size_t room = static_cast<size_t>(config_.max_length - 2);
  if (truncated != nullptr) *truncated = ids.size() > room;
  if (ids.size() > room) ids.resize(room);
  ids.insert(ids.begin(), tokenizer_->cls_id());
  ids.push_back(tokenizer_->sep_id());
  return ids;
}

std::vector<int32_t> Encoder::TokenizePair(absl::string_view first, absl::string_view second,
                                           bool* truncated) const {
  assert(word_rows_ == 2 * config_.vocab_size &&
         "TokenizePair needs EncoderOptions::segment_pairs");
  std::vector<int32_t> a = tokenizer_->Tokenize(first), b = tokenizer_->Tokenize(second);
  const size_t room = static_cast<size_t>(std::max(config_.max_length - 3, 0));
  if (truncated != nullptr) *truncated = a.size() + b.size() > room;
  while (a.size() + b.size() > room) (a.size() > b.size() ? a : b).pop_back();
  std::vector<int32_t> ids;
  ids.reserve(a.size() + b.size() + 3);
  ids.push_back(tokenizer_->cls_id());
  ids.insert(ids.end(), a.begin(), a.end());
  ids.push_back(tokenizer_->sep_id());
  for (int32_t id : b) ids.push_back(id + config_.vocab_size);
  ids.push_back(tokenizer_->sep_id() + config_.vocab_size);
  return ids;
}

std::vector<std::vector<int32_t>> Encoder::TokenizeAll(absl::Span<const std::string> texts,
                                                       int64_t* truncated) const {
  std::vector<std::vector<int32_t>> seqs;
  seqs.reserve(texts.size());
  int64_t cut_count = 0;
  for (const std::string& t : texts) {
    bool cut = false;
    seqs.push_back(Tokenize(t, &cut));
    cut_count += cut ? 1 : 0;
  }
  if (truncated != nullptr) *truncated = cut_count;
  return seqs;
}

absl::StatusOr<std::vector<float>> Encoder::Embed(absl::Span<const std::string> texts,
                                                  EmbedStats* stats) {
  const auto start = Clock::now();
  int64_t truncated = 0;
  const std::vector<std::vector<int32_t>> seqs = TokenizeAll(texts, &truncated);
  if (stats != nullptr) {
    stats->tokenize_seconds += Since(start);
    stats->truncated += truncated;
  }
  std::vector<float> out(texts.size() * static_cast<size_t>(dimension()));
  RETURN_IF_ERROR(EmbedTokens(seqs, out.data(), stats));
  return out;
}

absl::Status Encoder::EmbedTokens(absl::Span<const std::vector<int32_t>> sequences, float* out,
                                  EmbedStats* stats, const std::function<bool()>& stop) {
  for (size_t i = 0; i < sequences.size(); ++i) {
    const auto& s = sequences[i];
    if (s.empty() || s.size() > static_cast<size_t>(config_.max_length)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "sequence ", i, " has ", s.size(), " tokens; 1 to ", config_.max_length, " allowed"));
    }
    for (int32_t id : s) {
      if (id < 0 || id >= word_rows_) {
        return absl::InvalidArgumentError(
            absl::StrCat("sequence ", i, " holds token id ", id, " outside the vocabulary"));
      }
    }
  }
  // Longest first, so that each pass holds texts of similar length and the tail passes are small.
  std::vector<size_t> order(sequences.size());
  std::iota(order.begin(), order.end(), size_t{0});
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t a, size_t b) { return sequences[a].size() > sequences[b].size(); });
  const auto start = Clock::now();
  MutexLock lock(&mu_);
  int64_t tokens = 0, passes = 0;
  size_t i = 0;
  while (i < order.size()) {
    if (stop && stop()) return absl::CancelledError("the embedding was abandoned by its caller");
    size_t j = i;
    int64_t pass_tokens = 0;
    while (j < order.size() &&
           pass_tokens + static_cast<int64_t>(sequences[order[j]].size()) <= max_batch_tokens_) {
      pass_tokens += static_cast<int64_t>(sequences[order[j]].size());
      ++j;
    }
    RETURN_IF_ERROR(Forward(sequences, absl::MakeConstSpan(order).subspan(i, j - i), out,
                            static_cast<size_t>(dimension())));
    tokens += pass_tokens;
    ++passes;
    i = j;
  }
  if (stats != nullptr) {
    stats->texts += static_cast<int64_t>(sequences.size());
    stats->tokens += tokens;
    stats->passes += passes;
    stats->forward_seconds += Since(start);
  }
  return absl::OkStatus();
}

absl::Status Encoder::Forward(absl::Span<const std::vector<int32_t>> sequences,
                              absl::Span<const size_t> order, float* out, size_t out_stride) {
  Backend& be = *backend_;
  Workspace& ws = *ws_;
  const EncoderConfig& c = config_;
  const int64_t b = static_cast<int64_t>(order.size()), h = c.hidden;
  std::vector<int32_t> ids, positions, offsets{0};
  for (size_t idx : order) {
    const auto& s = sequences[idx];
    ids.insert(ids.end(), s.begin(), s.end());
    for (size_t p = 0; p < s.size(); ++p) positions.push_back(static_cast<int32_t>(p));
    offsets.push_back(static_cast<int32_t>(ids.size()));
  }
  const int64_t t = static_cast<int64_t>(ids.size());
  RETURN_IF_ERROR(Ensure(be, DType::kI32, {t}, ws.ids));
  RETURN_IF_ERROR(Ensure(be, DType::kI32, {t}, ws.positions));
  RETURN_IF_ERROR(Ensure(be, DType::kI32, {b + 1}, ws.offsets));
  RETURN_IF_ERROR(Ensure(be, dtype_, {t, h}, ws.x));
  RETURN_IF_ERROR(Ensure(be, dtype_, {t, 3 * h}, ws.qkv));
  RETURN_IF_ERROR(Ensure(be, dtype_, {t, h}, ws.attn));
  RETURN_IF_ERROR(Ensure(be, dtype_, {t, h}, ws.tmp));
  RETURN_IF_ERROR(Ensure(be, dtype_, {t, c.intermediate}, ws.ffn));
  RETURN_IF_ERROR(Ensure(be, dtype_, {b, h}, ws.pooled));
  RETURN_IF_ERROR(be.CopyFromHost(ids.data(), DType::kI32, ids.size(), ws.ids, 0));
  RETURN_IF_ERROR(
      be.CopyFromHost(positions.data(), DType::kI32, positions.size(), ws.positions, 0));
  RETURN_IF_ERROR(be.CopyFromHost(offsets.data(), DType::kI32, offsets.size(), ws.offsets, 0));

  RETURN_IF_ERROR(be.EmbeddingSum(ws.ids, ws.positions, word_, position_,
                                  type_.empty() ? nullptr : &type_, ws.x));
  RETURN_IF_ERROR(be.LayerNorm(ws.x, nullptr, emb_gamma_, emb_beta_, c.layer_norm_eps, ws.x));
  const int head_dim = c.hidden / c.heads;
  for (const Layer& l : layers_) {
    RETURN_IF_ERROR(be.Linear(ws.x, l.qkv_w, &l.qkv_b, Activation::kNone, ws.qkv));
    RETURN_IF_ERROR(be.Attention(ws.qkv, ws.offsets, offsets, c.heads, head_dim, ws.attn));
    RETURN_IF_ERROR(be.Linear(ws.attn, l.out_w, &l.out_b, Activation::kNone, ws.tmp));
    RETURN_IF_ERROR(be.LayerNorm(ws.tmp, &ws.x, l.ln1_g, l.ln1_b, c.layer_norm_eps, ws.x));
    RETURN_IF_ERROR(be.Linear(ws.x, l.ffn1_w, &l.ffn1_b, Activation::kGelu, ws.ffn));
    RETURN_IF_ERROR(be.Linear(ws.ffn, l.ffn2_w, &l.ffn2_b, Activation::kNone, ws.tmp));
    RETURN_IF_ERROR(be.LayerNorm(ws.tmp, &ws.x, l.ln2_g, l.ln2_b, c.layer_norm_eps, ws.x));
  }
  RETURN_IF_ERROR(be.Pool(ws.x, ws.offsets, offsets, c.pooling, ws.pooled));
  if (c.normalize) RETURN_IF_ERROR(be.L2Normalize(ws.pooled));
  std::vector<float> pooled(static_cast<size_t>(b * h));
  RETURN_IF_ERROR(be.CopyToHostFloat(ws.pooled, pooled.size(), pooled.data()));
  for (int64_t i = 0; i < b; ++i) {
    std::copy_n(pooled.data() + i * h, h, out + order[static_cast<size_t>(i)] * out_stride);
  }
  return absl::OkStatus();
}

}  // namespace strata::gpu
