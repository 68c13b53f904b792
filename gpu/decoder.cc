#include "gpu/decoder.h"

#include <cmath>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "storage/log.h"
#include "storage/status_macros.h"

namespace strata::gpu {

struct Decoder::Layer {
  Tensor attn_norm, ffn_norm;
  Tensor bq, bk, bv;  // qwen2 only
  LinearWeight wq, wk, wv, wo, gate, up, down;
};

size_t DecoderSequence::bytes() const {
  size_t b = 0;
  for (const Tensor& t : k_) b += t.bytes();
  for (const Tensor& t : v_) b += t.bytes();
  return b;
}

absl::StatusOr<DecoderConfig> ReadDecoderConfig(const GgufFile& file) {
  DecoderConfig c;
  ASSIGN_OR_RETURN(std::string arch, file.GetString("general.architecture"));
  if (arch == "llama") {
    c.arch = DecoderArch::kLlama;
    c.rope_style = RopeStyle::kAdjacent;
  } else if (arch == "qwen2") {
    c.arch = DecoderArch::kQwen2;
    c.rope_style = RopeStyle::kHalves;
  } else {
    return absl::InvalidArgumentError(absl::StrCat(file.path(), ": architecture '", arch,
                                                   "'; Strata decodes llama and qwen2 models"));
  }
  if (file.Find("general.name") != nullptr) {
    ASSIGN_OR_RETURN(c.name, file.GetString("general.name"));
  }
  auto get_int = [&](const std::string& key, int* out, int64_t lo, int64_t hi) -> absl::Status {
    ASSIGN_OR_RETURN(int64_t v, file.GetInt(absl::StrCat(arch, ".", key)));
    if (v < lo || v > hi) {
      return absl::InvalidArgumentError(absl::StrCat(file.path(), ": ", arch, ".", key, " = ", v,
                                                     " is outside [", lo, ", ", hi, "]"));
    }
    *out = static_cast<int>(v);
    return absl::OkStatus();
  };
  RETURN_IF_ERROR(get_int("block_count", &c.layers, 1, 1024));
  RETURN_IF_ERROR(get_int("embedding_length", &c.hidden, 1, 1 << 16));
  RETURN_IF_ERROR(get_int("feed_forward_length", &c.ffn, 1, 1 << 18));
  RETURN_IF_ERROR(get_int("attention.head_count", &c.heads, 1, 1024));
  c.kv_heads = c.heads;
  if (file.Find(absl::StrCat(arch, ".attention.head_count_kv")) != nullptr) {
    RETURN_IF_ERROR(get_int("attention.head_count_kv", &c.kv_heads, 1, c.heads));
  }
  RETURN_IF_ERROR(get_int("context_length", &c.context_length, 1, 1 << 20));
  if (c.hidden % c.heads != 0 || c.heads % c.kv_heads != 0) {
    return absl::InvalidArgumentError(absl::StrCat(file.path(), ": ", c.heads, " heads over ",
                                                   c.hidden, " dimensions and ", c.kv_heads,
                                                   " KV heads do not divide evenly"));
  }
  c.head_dim = c.hidden / c.heads;
  if (c.head_dim % 2 != 0) {
    return absl::InvalidArgumentError(absl::StrCat(file.path(), ": odd head size ", c.head_dim));
  }
  if (file.Find(absl::StrCat(arch, ".attention.key_length")) != nullptr) {
    int key_length = 0;
    RETURN_IF_ERROR(get_int("attention.key_length", &key_length, 1, 1 << 16));
    if (key_length != c.head_dim) {
      return absl::InvalidArgumentError(absl::StrCat(file.path(), ": head size ", key_length,
                                                     " apart from hidden / heads (", c.head_dim,
                                                     ") is not supported"));
    }
  }
  if (file.Find(absl::StrCat(arch, ".rope.dimension_count")) != nullptr) {
    int rope_dims = 0;
    RETURN_IF_ERROR(get_int("rope.dimension_count", &rope_dims, 1, 1 << 16));
    if (rope_dims != c.head_dim) {
      return absl::InvalidArgumentError(
          absl::StrCat(file.path(), ": RoPE over ", rope_dims, " of ", c.head_dim,
                       " dimensions (partial RoPE) is not supported"));
    }
  }
  for (const char* scaling : {"rope.scaling.type", "rope.scaling.factor"}) {
    const GgufValue* v = file.Find(absl::StrCat(arch, ".", scaling));
    if (v != nullptr && !(v->kind == GgufValue::Kind::kString && v->s == "none") &&
        !(v->kind == GgufValue::Kind::kFloat && (v->f == 0.0 || v->f == 1.0))) {
      return absl::InvalidArgumentError(
          absl::StrCat(file.path(), ": RoPE scaling (", arch, ".", scaling,
                       ") is not supported yet; use a model without it"));
    }
  }
  if (file.Contains("rope_freqs.weight")) {
    return absl::InvalidArgumentError(absl::StrCat(
        file.path(), ": per-frequency RoPE factors (rope_freqs.weight) are not supported yet"));
  }
  if (file.Find(absl::StrCat(arch, ".rope.freq_base")) != nullptr) {
    ASSIGN_OR_RETURN(double theta, file.GetFloat(absl::StrCat(arch, ".rope.freq_base")));
    c.rope_theta = static_cast<float>(theta);
  }
  ASSIGN_OR_RETURN(double eps,
                   file.GetFloat(absl::StrCat(arch, ".attention.layer_norm_rms_epsilon")));
  c.rms_eps = static_cast<float>(eps);
  if (!(c.rope_theta > 1.0f) || !(c.rms_eps > 0.0f && c.rms_eps < 1.0f)) {
    return absl::InvalidArgumentError(absl::StrCat(file.path(), ": rope.freq_base ", c.rope_theta,
                                                   " or rms epsilon ", c.rms_eps, " out of range"));
  }
  ASSIGN_OR_RETURN(const std::vector<std::string>* tokens,
                   file.GetStrings("tokenizer.ggml.tokens"));
  c.vocab_size = static_cast<int>(tokens->size());
  return c;
}

Decoder::~Decoder() = default;

std::string Decoder::backend_name() const {
  return absl::StrCat(backend_->name(), ", weights ", weights_path_);
}

absl::StatusOr<std::unique_ptr<Decoder>> Decoder::Open(const std::string& path,
                                                       const DecoderOptions& options) {
  ASSIGN_OR_RETURN(std::unique_ptr<GgufFile> file, GgufFile::Open(path));
  auto d = std::unique_ptr<Decoder>(new Decoder());
  d->path_ = path;
  ASSIGN_OR_RETURN(d->config_, ReadDecoderConfig(*file));
  ASSIGN_OR_RETURN(d->tokenizer_, BpeTokenizer::FromGguf(*file));
  ASSIGN_OR_RETURN(ChatTemplate chat, ChatTemplate::FromGguf(*file, *d->tokenizer_));
  d->chat_ = std::make_unique<ChatTemplate>(std::move(chat));
  ASSIGN_OR_RETURN(int64_t eos, file->GetInt("tokenizer.ggml.eos_token_id"));
  if (eos < 0 || eos >= d->config_.vocab_size) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": eos token ", eos, " is outside the ",
                                                   d->config_.vocab_size, "-token vocabulary"));
  }
  d->eos_id_ = static_cast<int32_t>(eos);
  ASSIGN_OR_RETURN(d->backend_, CreateBackend(options.backend, options.cuda_device));
  absl::MutexLock lock(&d->mu_);
  RETURN_IF_ERROR(d->Load(*file));
  Log(LogLevel::kInfo, "decoder %s: %s, %d layers, hidden %d, %d/%d heads, vocab %d, %.1f MB on %s",
      path.c_str(), d->config_.name.c_str(), d->config_.layers, d->config_.hidden, d->config_.heads,
      d->config_.kv_heads, d->config_.vocab_size, d->weight_bytes_ / 1e6,
      d->backend_name().c_str());
  return d;
}

absl::Status Decoder::Load(const GgufFile& file) {
  const DecoderConfig& c = config_;
  Backend& b = *backend_;
  std::string types;  // the weight types seen, for backend_name()
  // A matrix of `n` outputs by `k` inputs (ggml shape [k, n]).
  auto matrix = [&](const std::string& name, int64_t n, int64_t k) -> absl::StatusOr<LinearWeight> {
    ASSIGN_OR_RETURN(GgufTensor t, file.Tensor(name));
    if (t.shape.size() != 2 || t.shape[0] != k || t.shape[1] != n) {
      return absl::InvalidArgumentError(
          absl::StrCat(file.path(), ": tensor '", name, "' has ggml shape [",
                       absl::StrJoin(t.shape, ", "), "], expected [", k, ", ", n, "]"));
    }
    ASSIGN_OR_RETURN(LinearWeight w, b.PrepareQuantizedLinear(t.type, t.data, n, k));
    weight_bytes_ += t.bytes;
    if (types.find(std::string(GgmlTypeName(t.type))) == std::string::npos) {
      absl::StrAppend(&types, types.empty() ? "" : "/", GgmlTypeName(t.type));
      weights_path_ = w.gemm_path();
    }
    return w;
  };
  auto vector = [&](const std::string& name, int64_t n) -> absl::StatusOr<Tensor> {
    ASSIGN_OR_RETURN(GgufTensor t, file.Tensor(name));
    if (t.shape.size() != 1 || t.shape[0] != n) {
      return absl::InvalidArgumentError(absl::StrCat(file.path(), ": tensor '", name, "' has ",
                                                     t.row_length(), " values, expected ", n));
    }
    std::vector<float> v(static_cast<size_t>(n));
    DequantizeRow(t.type, t.data, n, v.data());
    ASSIGN_OR_RETURN(Tensor out, b.Allocate(DType::kF32, {n}));
    RETURN_IF_ERROR(b.CopyFromHost(v.data(), DType::kF32, v.size(), out, 0));
    weight_bytes_ += t.bytes;
    return out;
  };
  const int64_t kv_width = static_cast<int64_t>(c.kv_heads) * c.head_dim;
  ASSIGN_OR_RETURN(embeddings_, matrix("token_embd.weight", c.vocab_size, c.hidden));
  if (file.Contains("output.weight")) {
    ASSIGN_OR_RETURN(output_, matrix("output.weight", c.vocab_size, c.hidden));
  }
  ASSIGN_OR_RETURN(output_norm_, vector("output_norm.weight", c.hidden));
  layers_.resize(static_cast<size_t>(c.layers));
  for (int i = 0; i < c.layers; ++i) {
    Layer& l = layers_[static_cast<size_t>(i)];
    const std::string p = absl::StrCat("blk.", i, ".");
    ASSIGN_OR_RETURN(l.attn_norm, vector(p + "attn_norm.weight", c.hidden));
    ASSIGN_OR_RETURN(l.ffn_norm, vector(p + "ffn_norm.weight", c.hidden));
    ASSIGN_OR_RETURN(l.wq, matrix(p + "attn_q.weight", c.hidden, c.hidden));
    ASSIGN_OR_RETURN(l.wk, matrix(p + "attn_k.weight", kv_width, c.hidden));
    ASSIGN_OR_RETURN(l.wv, matrix(p + "attn_v.weight", kv_width, c.hidden));
    ASSIGN_OR_RETURN(l.wo, matrix(p + "attn_output.weight", c.hidden, c.hidden));
    ASSIGN_OR_RETURN(l.gate, matrix(p + "ffn_gate.weight", c.ffn, c.hidden));
    ASSIGN_OR_RETURN(l.up, matrix(p + "ffn_up.weight", c.ffn, c.hidden));
    ASSIGN_OR_RETURN(l.down, matrix(p + "ffn_down.weight", c.hidden, c.ffn));
    if (c.arch == DecoderArch::kQwen2) {
      ASSIGN_OR_RETURN(l.bq, vector(p + "attn_q.bias", c.hidden));
      ASSIGN_OR_RETURN(l.bk, vector(p + "attn_k.bias", kv_width));
      ASSIGN_OR_RETURN(l.bv, vector(p + "attn_v.bias", kv_width));
    }
  }
  if (types.find('/') != std::string::npos) weights_path_ = absl::StrCat(types, " blocks");
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<DecoderSequence>> Decoder::NewSequence(int64_t capacity) {
  if (capacity < 1 || capacity > config_.context_length) {
    return absl::InvalidArgumentError(absl::StrCat("a sequence of ", capacity,
                                                   " positions; the model's context holds 1 to ",
                                                   config_.context_length));
  }
  auto seq = std::unique_ptr<DecoderSequence>(new DecoderSequence());
  seq->capacity_ = capacity;
  const int64_t kv_width = static_cast<int64_t>(config_.kv_heads) * config_.head_dim;
  absl::MutexLock lock(&mu_);
  for (int i = 0; i < config_.layers; ++i) {
    ASSIGN_OR_RETURN(Tensor k, backend_->Allocate(DType::kF32, {capacity, kv_width}));
    ASSIGN_OR_RETURN(Tensor v, backend_->Allocate(DType::kF32, {capacity, kv_width}));
    seq->k_.push_back(std::move(k));
    seq->v_.push_back(std::move(v));
  }
  return seq;
}

absl::Status Decoder::Forward(absl::Span<const int32_t> tokens, DecoderSequence& seq,
                              std::vector<float>* logits, bool all_logits) {
  const DecoderConfig& c = config_;
  const auto rows = static_cast<int64_t>(tokens.size());
  if (rows == 0) return absl::InvalidArgumentError("no tokens to run");
  for (int32_t id : tokens) {
    if (id < 0 || id >= c.vocab_size) {
      return absl::InvalidArgumentError(
          absl::StrCat("token id ", id, " is outside the ", c.vocab_size, "-token vocabulary"));
    }
  }
  if (seq.length_ + rows > seq.capacity_) {
    return absl::OutOfRangeError(absl::StrCat(
        seq.length_, " + ", rows, " tokens overflow a sequence of ", seq.capacity_, " positions"));
  }
  const int64_t start = seq.length_;
  const int64_t h = c.hidden, kv_width = static_cast<int64_t>(c.kv_heads) * c.head_dim;
  absl::MutexLock lock(&mu_);
  Backend& b = *backend_;
  ASSIGN_OR_RETURN(Tensor ids, b.Allocate(DType::kI32, {rows}));
  RETURN_IF_ERROR(b.CopyFromHost(tokens.data(), DType::kI32, tokens.size(), ids, 0));
  ASSIGN_OR_RETURN(Tensor x, b.Allocate(DType::kF32, {rows, h}));
  ASSIGN_OR_RETURN(Tensor xn, b.Allocate(DType::kF32, {rows, h}));
  ASSIGN_OR_RETURN(Tensor q, b.Allocate(DType::kF32, {rows, h}));
  ASSIGN_OR_RETURN(Tensor k, b.Allocate(DType::kF32, {rows, kv_width}));
  ASSIGN_OR_RETURN(Tensor v, b.Allocate(DType::kF32, {rows, kv_width}));
  ASSIGN_OR_RETURN(Tensor att, b.Allocate(DType::kF32, {rows, h}));
  ASSIGN_OR_RETURN(Tensor gate, b.Allocate(DType::kF32, {rows, c.ffn}));
  ASSIGN_OR_RETURN(Tensor up, b.Allocate(DType::kF32, {rows, c.ffn}));
  RETURN_IF_ERROR(b.GatherRows(embeddings_, ids, x));
  for (int i = 0; i < c.layers; ++i) {
    Layer& l = layers_[static_cast<size_t>(i)];
    Tensor& kc = seq.k_[static_cast<size_t>(i)];
    Tensor& vc = seq.v_[static_cast<size_t>(i)];
    RETURN_IF_ERROR(b.RmsNorm(x, l.attn_norm, c.rms_eps, xn));
    RETURN_IF_ERROR(b.Linear(xn, l.wq, l.bq.empty() ? nullptr : &l.bq, Activation::kNone, q));
    RETURN_IF_ERROR(b.Linear(xn, l.wk, l.bk.empty() ? nullptr : &l.bk, Activation::kNone, k));
    RETURN_IF_ERROR(b.Linear(xn, l.wv, l.bv.empty() ? nullptr : &l.bv, Activation::kNone, v));
    RETURN_IF_ERROR(b.Rope(q, rows, c.heads, c.head_dim, start, c.rope_theta, c.rope_style));
    RETURN_IF_ERROR(b.Rope(k, rows, c.kv_heads, c.head_dim, start, c.rope_theta, c.rope_style));
    RETURN_IF_ERROR(b.CopyRows(k, 0, rows, kc, start));
    RETURN_IF_ERROR(b.CopyRows(v, 0, rows, vc, start));
    RETURN_IF_ERROR(
        b.CachedAttention(q, rows, kc, vc, start, c.heads, c.kv_heads, c.head_dim, att));
    RETURN_IF_ERROR(b.Linear(att, l.wo, nullptr, Activation::kNone, xn));
    RETURN_IF_ERROR(b.Add(x, xn));
    RETURN_IF_ERROR(b.RmsNorm(x, l.ffn_norm, c.rms_eps, xn));
    RETURN_IF_ERROR(b.Linear(xn, l.gate, nullptr, Activation::kSilu, gate));
    RETURN_IF_ERROR(b.Linear(xn, l.up, nullptr, Activation::kNone, up));
    RETURN_IF_ERROR(b.Multiply(gate, up));
    RETURN_IF_ERROR(b.Linear(gate, l.down, nullptr, Activation::kNone, xn));
    RETURN_IF_ERROR(b.Add(x, xn));
  }
  seq.length_ = start + rows;
  if (logits == nullptr) return absl::OkStatus();
  const int64_t out_rows = all_logits ? rows : 1;
  ASSIGN_OR_RETURN(Tensor last, b.Allocate(DType::kF32, {out_rows, h}));
  RETURN_IF_ERROR(b.CopyRows(x, rows - out_rows, out_rows, last, 0));
  RETURN_IF_ERROR(b.RmsNorm(last, output_norm_, c.rms_eps, last));
  ASSIGN_OR_RETURN(Tensor out, b.Allocate(DType::kF32, {out_rows, c.vocab_size}));
  const LinearWeight& proj = output_.data() != nullptr ? output_ : embeddings_;
  RETURN_IF_ERROR(b.Linear(last, proj, nullptr, Activation::kNone, out));
  logits->resize(static_cast<size_t>(out_rows * c.vocab_size));
  return b.CopyToHostFloat(out, logits->size(), logits->data());
}

}  // namespace strata::gpu
