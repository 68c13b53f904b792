#include "gpu/decoder.h"

#include <algorithm>
#include <cmath>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "base/check.h"
#include "gpu/attention_mass.h"
#include "gpu/internal/device_span_cache.h"
#include "gpu/internal/quant_matmul.h"
#include "gpu/internal/thread_pool.h"
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
  return Open(path, options, nullptr);
}

absl::StatusOr<std::unique_ptr<Decoder>> Decoder::Open(const std::string& path,
                                                       const DecoderOptions& options,
                                                       std::unique_ptr<Backend> backend) {
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
  if (backend != nullptr) {
    d->backend_ = std::move(backend);
  } else {
    ASSIGN_OR_RETURN(d->backend_, CreateBackend(options.backend, options.cuda_device));
  }
  MutexLock lock(&d->mu_);
  const int64_t span_bytes = d->backend_->kind() != BackendKind::kCuda ? 0
                             : options.device_span_bytes >= 0          ? options.device_span_bytes
                                                                       : int64_t{1} << 30;
  d->span_cache_ = std::make_unique<DeviceSpanCache>(static_cast<size_t>(span_bytes));
  RETURN_IF_ERROR(d->Load(*file, options));
  Log(LogLevel::kInfo, "decoder %s: %s, %d layers, hidden %d, %d/%d heads, vocab %d, %.1f MB on %s",
      path.c_str(), d->config_.name.c_str(), d->config_.layers, d->config_.hidden, d->config_.heads,
      d->config_.kv_heads, d->config_.vocab_size, d->weight_bytes_ / 1e6,
      d->backend_name().c_str());
  return d;
}

absl::Status Decoder::Load(const GgufFile& file, const DecoderOptions& options) {
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
    ASSIGN_OR_RETURN(LinearWeight w,
                     b.PrepareQuantizedLinear(t.type, t.data, n, k, options.int8_activations));
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
  MutexLock lock(&mu_);
  for (int i = 0; i < config_.layers; ++i) {
    ASSIGN_OR_RETURN(Tensor k, backend_->Allocate(DType::kF32, {capacity, kv_width}));
    ASSIGN_OR_RETURN(Tensor v, backend_->Allocate(DType::kF32, {capacity, kv_width}));
    seq->k_.push_back(std::move(k));
    seq->v_.push_back(std::move(v));
  }
  return seq;
}

absl::Status Decoder::CheckTokens(absl::Span<const int32_t> tokens) const {
  if (tokens.empty()) return absl::InvalidArgumentError("no tokens to run");
  for (int32_t id : tokens) {
    if (id < 0 || id >= config_.vocab_size) {
      return absl::InvalidArgumentError(absl::StrCat("token id ", id, " is outside the ",
                                                     config_.vocab_size, "-token vocabulary"));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<Tensor> Decoder::Embed(absl::Span<const int32_t> tokens) {
  Backend& b = *backend_;
  const auto rows = static_cast<int64_t>(tokens.size());
  ASSIGN_OR_RETURN(Tensor ids, b.Allocate(DType::kI32, {rows}));
  RETURN_IF_ERROR(b.CopyFromHost(tokens.data(), DType::kI32, tokens.size(), ids, 0));
  ASSIGN_OR_RETURN(Tensor x, b.Allocate(DType::kF32, {rows, config_.hidden}));
  RETURN_IF_ERROR(b.GatherRows(embeddings_, ids, x));
  return x;
}

absl::Status Decoder::RunLayers(int first, int end, Tensor& x, absl::Span<const Place> rows,
                                KvCapture* capture, QueryCapture* queries) {
  const DecoderConfig& c = config_;
  Backend& b = *backend_;
  const auto n = static_cast<int64_t>(rows.size());
  const int64_t h = c.hidden, kv_width = static_cast<int64_t>(c.kv_heads) * c.head_dim;
  ASSIGN_OR_RETURN(Tensor xn, b.Allocate(DType::kF32, {n, h}));
  ASSIGN_OR_RETURN(Tensor q, b.Allocate(DType::kF32, {n, h}));
  ASSIGN_OR_RETURN(Tensor k, b.Allocate(DType::kF32, {n, kv_width}));
  ASSIGN_OR_RETURN(Tensor v, b.Allocate(DType::kF32, {n, kv_width}));
  ASSIGN_OR_RETURN(Tensor att, b.Allocate(DType::kF32, {n, h}));
  ASSIGN_OR_RETURN(Tensor gate, b.Allocate(DType::kF32, {n, c.ffn}));
  ASSIGN_OR_RETURN(Tensor up, b.Allocate(DType::kF32, {n, c.ffn}));
  std::vector<int32_t> positions(static_cast<size_t>(n));
  for (int64_t r = 0; r < n; ++r)
    positions[static_cast<size_t>(r)] = rows[static_cast<size_t>(r)].position;
  std::vector<Backend::AttentionRow> att_rows(static_cast<size_t>(n));
  std::vector<Backend::RowDestination> k_dests(static_cast<size_t>(n)),
      v_dests(static_cast<size_t>(n));
  for (int i = first; i < end; ++i) {
    Layer& l = layers_[static_cast<size_t>(i)];
    RETURN_IF_ERROR(b.RmsNorm(x, l.attn_norm, c.rms_eps, xn));
    RETURN_IF_ERROR(b.Linear(xn, l.wq, l.bq.empty() ? nullptr : &l.bq, Activation::kNone, q));
    RETURN_IF_ERROR(b.Linear(xn, l.wk, l.bk.empty() ? nullptr : &l.bk, Activation::kNone, k));
    RETURN_IF_ERROR(b.Linear(xn, l.wv, l.bv.empty() ? nullptr : &l.bv, Activation::kNone, v));
    if (capture != nullptr) {
      auto& ck = capture->k[static_cast<size_t>(i)];
      auto& cv = capture->v[static_cast<size_t>(i)];
      const size_t at = ck.size();
      ck.resize(at + static_cast<size_t>(n * kv_width));
      cv.resize(at + static_cast<size_t>(n * kv_width));
      RETURN_IF_ERROR(b.CopyToHostFloat(k, static_cast<size_t>(n * kv_width), ck.data() + at));
      RETURN_IF_ERROR(b.CopyToHostFloat(v, static_cast<size_t>(n * kv_width), cv.data() + at));
    }
    RETURN_IF_ERROR(b.Rope(q, c.heads, c.head_dim, positions, c.rope_theta, c.rope_style));
    RETURN_IF_ERROR(b.Rope(k, c.kv_heads, c.head_dim, positions, c.rope_theta, c.rope_style));
    if (queries != nullptr && i % queries->every == queries->every - 1) {
      // The rows from first_row on: copy the whole prefix of the tensor, keep the tail.
      std::vector<float> all(static_cast<size_t>(n * h));
      RETURN_IF_ERROR(b.CopyToHostFloat(q, all.size(), all.data()));
      auto& dst = queries->q[static_cast<size_t>(i / queries->every)];
      dst.assign(all.begin() + queries->first_row * h, all.end());
    }
    // Keys and values into each row's sequence.
    for (int64_t r = 0; r < n; ++r) {
      const Place& p = rows[static_cast<size_t>(r)];
      k_dests[static_cast<size_t>(r)] = {&p.seq->k_[static_cast<size_t>(i)], p.position};
      v_dests[static_cast<size_t>(r)] = {&p.seq->v_[static_cast<size_t>(i)], p.position};
    }
    RETURN_IF_ERROR(b.ScatterRows(k, k_dests));
    RETURN_IF_ERROR(b.ScatterRows(v, v_dests));
    for (int64_t r = 0; r < n; ++r) {
      const Place& p = rows[static_cast<size_t>(r)];
      att_rows[static_cast<size_t>(r)] = {&p.seq->k_[static_cast<size_t>(i)],
                                          &p.seq->v_[static_cast<size_t>(i)], p.position + 1};
    }
    RETURN_IF_ERROR(b.CachedAttention(q, att_rows, c.heads, c.kv_heads, c.head_dim, att));
    RETURN_IF_ERROR(b.Linear(att, l.wo, nullptr, Activation::kNone, xn));
    RETURN_IF_ERROR(b.Add(x, xn));
    RETURN_IF_ERROR(b.RmsNorm(x, l.ffn_norm, c.rms_eps, xn));
    RETURN_IF_ERROR(b.Linear(xn, l.gate, nullptr, Activation::kSilu, gate));
    RETURN_IF_ERROR(b.Linear(xn, l.up, nullptr, Activation::kNone, up));
    RETURN_IF_ERROR(b.Multiply(gate, up));
    RETURN_IF_ERROR(b.Linear(gate, l.down, nullptr, Activation::kNone, xn));
    RETURN_IF_ERROR(b.Add(x, xn));
  }
  return absl::OkStatus();
}

absl::Status Decoder::Head(const Tensor& x, absl::Span<const int64_t> which,
                           std::vector<float>* logits) {
  if (which.empty() || logits == nullptr) return absl::OkStatus();
  Backend& b = *backend_;
  const DecoderConfig& c = config_;
  const auto n = static_cast<int64_t>(which.size());
  ASSIGN_OR_RETURN(Tensor last, b.Allocate(DType::kF32, {n, c.hidden}));
  for (int64_t r = 0; r < n; ++r) {
    RETURN_IF_ERROR(b.CopyRows(x, which[static_cast<size_t>(r)], 1, last, r));
  }
  RETURN_IF_ERROR(b.RmsNorm(last, output_norm_, c.rms_eps, last));
  ASSIGN_OR_RETURN(Tensor out, b.Allocate(DType::kF32, {n, c.vocab_size}));
  const LinearWeight& proj = output_.data() != nullptr ? output_ : embeddings_;
  RETURN_IF_ERROR(b.Linear(last, proj, nullptr, Activation::kNone, out));
  const size_t at = logits->size();
  logits->resize(at + static_cast<size_t>(n * c.vocab_size));
  return b.CopyToHostFloat(out, static_cast<size_t>(n * c.vocab_size), logits->data() + at);
}

absl::Status Decoder::Forward(absl::Span<const int32_t> tokens, DecoderSequence& seq,
                              std::vector<float>* logits, bool all_logits, KvCapture* capture) {
  RETURN_IF_ERROR(CheckTokens(tokens));
  const auto rows = static_cast<int64_t>(tokens.size());
  if (seq.length_ + rows > seq.capacity_) {
    return absl::OutOfRangeError(absl::StrCat(
        seq.length_, " + ", rows, " tokens overflow a sequence of ", seq.capacity_, " positions"));
  }
  if (capture != nullptr) {
    capture->k.assign(static_cast<size_t>(config_.layers), {});
    capture->v.assign(static_cast<size_t>(config_.layers), {});
  }
  std::vector<Place> places(static_cast<size_t>(rows));
  for (int64_t r = 0; r < rows; ++r) {
    places[static_cast<size_t>(r)] = {&seq, static_cast<int32_t>(seq.length_ + r)};
  }
  MutexLock lock(&mu_);
  ASSIGN_OR_RETURN(Tensor x, Embed(tokens));
  RETURN_IF_ERROR(RunLayers(0, config_.layers, x, places, capture));
  seq.length_ += rows;
  if (logits == nullptr) return absl::OkStatus();
  logits->clear();
  std::vector<int64_t> which;
  for (int64_t r = all_logits ? 0 : rows - 1; r < rows; ++r) which.push_back(r);
  return Head(x, which, logits);
}

absl::Status Decoder::Step(absl::Span<const DecoderRow> rows, std::vector<float>* logits) {
  std::vector<int32_t> tokens;
  for (const DecoderRow& r : rows) tokens.push_back(r.token);
  RETURN_IF_ERROR(CheckTokens(tokens));
  // Positions: each sequence continues from its length, in row order.
  absl::flat_hash_map<DecoderSequence*, int64_t> next;
  std::vector<Place> places;
  std::vector<int64_t> which;
  for (size_t r = 0; r < rows.size(); ++r) {
    DecoderSequence* seq = rows[r].seq;
    if (seq == nullptr) return absl::InvalidArgumentError("a row without a sequence");
    auto [it, inserted] = next.try_emplace(seq, seq->length_);
    if (it->second >= seq->capacity_) {
      return absl::OutOfRangeError(
          absl::StrCat("a sequence of ", seq->capacity_, " positions is full"));
    }
    places.push_back({seq, static_cast<int32_t>(it->second++)});
    if (rows[r].logits) which.push_back(static_cast<int64_t>(r));
  }
  MutexLock lock(&mu_);
  ASSIGN_OR_RETURN(Tensor x, Embed(tokens));
  RETURN_IF_ERROR(RunLayers(0, config_.layers, x, places, nullptr));
  for (const auto& [seq, length] : next) seq->length_ = length;
  if (logits != nullptr) logits->clear();
  return Head(x, which, logits);
}

absl::Status Decoder::LoadSpan(const CachedSpan& s, DecoderSequence& seq,
                               std::vector<float>* layer1_k, std::vector<float>* layer1_v,
                               bool* device_hit) {
  const DecoderConfig& c = config_;
  Backend& b = *backend_;
  const int64_t kv_width = static_cast<int64_t>(c.kv_heads) * c.head_dim;
  const int64_t len = s.kv->tokens(), layer_values = len * kv_width, rows = c.layers * len;
  if (device_hit != nullptr) *device_hit = false;
  if (span_cache_->budget() == 0) {
    // No device tier (the CPU): a layer at a time, so that the host holds one layer's worth.
    std::vector<float> kh(static_cast<size_t>(layer_values)), vh(kh.size());
    std::vector<int32_t> pos(static_cast<size_t>(len));
    for (int64_t t = 0; t < len; ++t)
      pos[static_cast<size_t>(t)] = static_cast<int32_t>(s.position + t);
    ASSIGN_OR_RETURN(Tensor kt, b.Allocate(DType::kF32, {len, kv_width}));
    ASSIGN_OR_RETURN(Tensor vt, b.Allocate(DType::kF32, {len, kv_width}));
    for (int l = 0; l < c.layers; ++l) {
      s.kv->Decompress(l, kh.data(), vh.data());
      if (l == 1 && layer1_k != nullptr) *layer1_k = kh, *layer1_v = vh;
      RETURN_IF_ERROR(b.CopyFromHost(kh.data(), DType::kF32, kh.size(), kt, 0));
      RETURN_IF_ERROR(b.CopyFromHost(vh.data(), DType::kF32, vh.size(), vt, 0));
      RETURN_IF_ERROR(b.Rope(kt, c.kv_heads, c.head_dim, pos, c.rope_theta, c.rope_style));
      RETURN_IF_ERROR(b.CopyRows(kt, 0, len, seq.k_[static_cast<size_t>(l)], s.position));
      RETURN_IF_ERROR(b.CopyRows(vt, 0, len, seq.v_[static_cast<size_t>(l)], s.position));
    }
    return absl::OkStatus();
  }
  // With a device tier (CUDA): every layer at once, and kept for the next assembly.
  const DeviceSpanCache::Entry* kept = span_cache_->Find(s.kv->uid());
  if (device_hit != nullptr) *device_hit = kept != nullptr;
  DeviceSpanCache::Entry loaded;
  if (kept == nullptr) {
    // Decompressed side by side on the host (a layer per task) and copied in one go (a GPU pays
    // per copy, not per byte, at these sizes).
    std::vector<float> kh(static_cast<size_t>(rows * kv_width)), vh(kh.size());
    cpu::Pool().ParallelFor(c.layers, 1, [&](int64_t l0, int64_t l1) {
      for (int64_t l = l0; l < l1; ++l) {
        s.kv->Decompress(static_cast<int>(l), kh.data() + l * layer_values,
                         vh.data() + l * layer_values);
      }
    });
    if (c.layers > 1) {
      loaded.layer1_k.assign(kh.begin() + layer_values, kh.begin() + 2 * layer_values);
      loaded.layer1_v.assign(vh.begin() + layer_values, vh.begin() + 2 * layer_values);
    }
    ASSIGN_OR_RETURN(loaded.k, b.Allocate(DType::kF32, {rows, kv_width}));
    ASSIGN_OR_RETURN(loaded.v, b.Allocate(DType::kF32, {rows, kv_width}));
    RETURN_IF_ERROR(b.CopyFromHost(kh.data(), DType::kF32, kh.size(), loaded.k, 0));
    RETURN_IF_ERROR(b.CopyFromHost(vh.data(), DType::kF32, vh.size(), loaded.v, 0));
    loaded.bytes = 2 * kh.size() * sizeof(float);
  }
  const std::vector<float>& l1k = kept != nullptr ? kept->layer1_k : loaded.layer1_k;
  const std::vector<float>& l1v = kept != nullptr ? kept->layer1_v : loaded.layer1_v;
  if (layer1_k != nullptr && !l1k.empty()) *layer1_k = l1k, *layer1_v = l1v;
  // All layers' keys rotated to the span's positions in one call (on a copy when the unrotated
  // keys stay in the device tier), then each layer's rows into the sequence's caches.
  std::vector<int32_t> pos(static_cast<size_t>(rows));
  for (int64_t i = 0; i < rows; ++i) {
    pos[static_cast<size_t>(i)] = static_cast<int32_t>(s.position + i % len);
  }
  Tensor rotated;
  const Tensor* values = nullptr;
  if (kept != nullptr) {
    ASSIGN_OR_RETURN(rotated, b.Allocate(DType::kF32, {rows, kv_width}));
    RETURN_IF_ERROR(b.CopyRows(kept->k, 0, rows, rotated, 0));
    values = &kept->v;
  } else if (s.kv->uid() != 0 && loaded.bytes <= span_cache_->budget()) {  // it will be kept
    ASSIGN_OR_RETURN(rotated, b.Allocate(DType::kF32, {rows, kv_width}));
    RETURN_IF_ERROR(b.CopyRows(loaded.k, 0, rows, rotated, 0));
    kept = span_cache_->Insert(s.kv->uid(), std::move(loaded));
    if (kept == nullptr) return absl::InternalError("the device tier refused an entry that fits");
    values = &kept->v;
  } else {
    rotated = std::move(loaded.k);
    values = &loaded.v;
  }
  RETURN_IF_ERROR(b.Rope(rotated, c.kv_heads, c.head_dim, pos, c.rope_theta, c.rope_style));
  for (int l = 0; l < c.layers; ++l) {
    RETURN_IF_ERROR(b.CopyRows(rotated, l * len, len, seq.k_[static_cast<size_t>(l)], s.position));
    RETURN_IF_ERROR(b.CopyRows(*values, l * len, len, seq.v_[static_cast<size_t>(l)], s.position));
  }
  return absl::OkStatus();
}

absl::Status Decoder::Restore(const PassageKv& kv, DecoderSequence& seq) {
  const int64_t kv_width = static_cast<int64_t>(config_.kv_heads) * config_.head_dim;
  if (seq.length_ != 0 || kv.tokens() > seq.capacity_ || kv.layers() != config_.layers ||
      kv.width() != kv_width) {
    return absl::InvalidArgumentError(
        "Restore needs an empty sequence long enough, and an entry made by this model");
  }
  MutexLock lock(&mu_);
  RETURN_IF_ERROR(LoadSpan({0, &kv, 0}, seq, nullptr, nullptr, nullptr));
  seq.length_ = kv.tokens();
  return absl::OkStatus();
}

absl::StatusOr<std::vector<double>> Decoder::QuestionAttention(absl::Span<const int32_t> tokens,
                                                               const std::vector<uint8_t>& cached,
                                                               DecoderSequence& seq) {
  const DecoderConfig& c = config_;
  Backend& b = *backend_;
  const auto n = static_cast<int64_t>(tokens.size());
  const int64_t kv_width = static_cast<int64_t>(c.kv_heads) * c.head_dim;
  // The draft: every computed token, over the cached keys and values as they are.
  std::vector<Place> draft;
  std::vector<int32_t> ids;
  int64_t last_cached = -1;
  for (int64_t t = 0; t < n; ++t) {
    if (cached[static_cast<size_t>(t)]) {
      last_cached = t;
    } else {
      draft.push_back({&seq, static_cast<int32_t>(t)});
      ids.push_back(tokens[static_cast<size_t>(t)]);
    }
  }
  // The rows that read: the last ones after the last cached token (the question's end).
  auto first = static_cast<int64_t>(draft.size());
  while (first > 0 && draft[static_cast<size_t>(first - 1)].position > last_cached) --first;
  first = std::max<int64_t>(first, static_cast<int64_t>(draft.size()) - kAttentionSelectionRows);
  std::vector<double> mass(static_cast<size_t>(n), 0.0);
  if (draft.empty() || first == static_cast<int64_t>(draft.size())) return mass;
  QueryCapture queries;
  queries.first_row = first;
  queries.every = std::min(kAttentionSelectionEvery, c.layers);
  queries.q.resize(static_cast<size_t>(c.layers / queries.every));
  ASSIGN_OR_RETURN(Tensor x, Embed(ids));
  RETURN_IF_ERROR(RunLayers(0, c.layers, x, draft, nullptr, &queries));
  std::vector<int32_t> positions;
  for (size_t r = static_cast<size_t>(first); r < draft.size(); ++r) {
    positions.push_back(draft[r].position);
  }
  std::vector<float> keys(static_cast<size_t>(n * kv_width));
  for (size_t i = 0; i < queries.q.size(); ++i) {
    const size_t layer = (i + 1) * static_cast<size_t>(queries.every) - 1;
    RETURN_IF_ERROR(b.CopyToHostFloat(seq.k_[layer], keys.size(), keys.data()));
    AddAttentionMass(queries.q[i].data(), positions, c.heads, c.kv_heads, c.head_dim, keys.data(),
                     n, mass.data());
  }
  return mass;
}

absl::StatusOr<std::vector<double>> Decoder::KeyValueDeviation(
    absl::Span<const int32_t> tokens, absl::Span<const CachedSpan> spans,
    const std::vector<std::vector<float>>& layer1_k,
    const std::vector<std::vector<float>>& layer1_v, DecoderSequence& seq, Tensor* h1) {
  const DecoderConfig& c = config_;
  Backend& b = *backend_;
  const auto n = static_cast<int64_t>(tokens.size());
  const int64_t kv_width = static_cast<int64_t>(c.kv_heads) * c.head_dim;
  // Layer 0 over every token (its keys and values do not depend on the context, so cached
  // tokens lose nothing), then layer 1's keys and values from these fresh states, compared with
  // the cached ones.
  std::vector<Place> every(static_cast<size_t>(n));
  for (int64_t t = 0; t < n; ++t) every[static_cast<size_t>(t)] = {&seq, static_cast<int32_t>(t)};
  ASSIGN_OR_RETURN(*h1, Embed(tokens));
  RETURN_IF_ERROR(RunLayers(0, 1, *h1, every, nullptr));
  const Layer& l1 = layers_[1];
  ASSIGN_OR_RETURN(Tensor xn, b.Allocate(DType::kF32, {n, c.hidden}));
  ASSIGN_OR_RETURN(Tensor k1, b.Allocate(DType::kF32, {n, kv_width}));
  ASSIGN_OR_RETURN(Tensor v1, b.Allocate(DType::kF32, {n, kv_width}));
  RETURN_IF_ERROR(b.RmsNorm(*h1, l1.attn_norm, c.rms_eps, xn));
  RETURN_IF_ERROR(b.Linear(xn, l1.wk, l1.bk.empty() ? nullptr : &l1.bk, Activation::kNone, k1));
  RETURN_IF_ERROR(b.Linear(xn, l1.wv, l1.bv.empty() ? nullptr : &l1.bv, Activation::kNone, v1));
  std::vector<float> fk(static_cast<size_t>(n * kv_width)), fv(fk.size());
  RETURN_IF_ERROR(b.CopyToHostFloat(k1, fk.size(), fk.data()));
  RETURN_IF_ERROR(b.CopyToHostFloat(v1, fv.size(), fv.data()));
  std::vector<double> score(static_cast<size_t>(n), 0.0);
  for (size_t si = 0; si < spans.size(); ++si) {
    const CachedSpan& s = spans[si];
    if (s.exact) continue;
    for (int64_t t = 0; t < s.kv->tokens(); ++t) {
      const int64_t p = s.position + t;
      double d = 0;
      for (int64_t j = 0; j < kv_width; ++j) {
        const double dk = fk[static_cast<size_t>(p * kv_width + j)] -
                          layer1_k[si][static_cast<size_t>(t * kv_width + j)];
        const double dv = fv[static_cast<size_t>(p * kv_width + j)] -
                          layer1_v[si][static_cast<size_t>(t * kv_width + j)];
        d += dk * dk + dv * dv;
      }
      score[static_cast<size_t>(p)] = d;
    }
  }
  return score;
}

absl::Status Decoder::Assemble(absl::Span<const int32_t> tokens, absl::Span<const CachedSpan> spans,
                               const AssembleOptions& options, DecoderSequence& seq,
                               std::vector<float>* logits, AssembleStats* stats) {
  ASSIGN_OR_RETURN(std::unique_ptr<PromptFill> fill,
                   BeginAssembly(tokens, spans, options, seq, stats));
  return FillSome(*fill, 0, logits);
}

absl::StatusOr<std::unique_ptr<PromptFill>> Decoder::BeginFill(absl::Span<const int32_t> tokens,
                                                               absl::Span<const CachedSpan> spans,
                                                               const AssembleOptions& options,
                                                               DecoderSequence& seq,
                                                               AssembleStats* stats) {
  if (!spans.empty()) return BeginAssembly(tokens, spans, options, seq, stats);
  // A prefill: Forward's checks, once for the whole prompt.
  RETURN_IF_ERROR(CheckTokens(tokens));
  if (seq.length_ + static_cast<int64_t>(tokens.size()) > seq.capacity_) {
    return absl::OutOfRangeError(absl::StrCat(tokens.size(), " tokens do not fit a sequence of ",
                                              seq.capacity_, " positions holding ", seq.length_));
  }
  if (stats != nullptr) *stats = AssembleStats{};
  auto fill = std::unique_ptr<PromptFill>(new PromptFill());
  fill->seq_ = &seq;
  fill->tokens_.assign(tokens.begin(), tokens.end());
  fill->rows_ = static_cast<int64_t>(tokens.size());
  return fill;
}

absl::Status Decoder::FillSome(PromptFill& fill, int64_t max_rows, std::vector<float>* logits) {
  if (fill.done()) return absl::FailedPreconditionError("the prompt is filled already");
  // A stretch of at most kQuantInt8Rows rows takes the decode-size product paths (int8
  // activations, GEMV), which round differently from the panel product the one pass takes: a tail
  // that small goes with the stretch before it, so that stretches of more rows than that give
  // the one pass's logits on the CPU. (Smaller stretches, and CUDA's choices between its GEMV and
  // cuBLAS, agree up to that rounding.)
  int64_t m = max_rows <= 0 ? fill.rows_left() : std::min<int64_t>(max_rows, fill.rows_left());
  if (fill.rows_left() - m <= cpu::kQuantInt8Rows) m = fill.rows_left();
  const int64_t first = fill.next_;
  const bool last = first + m == fill.rows_;
  if (!fill.assembly_) {
    fill.next_ = fill.rows_;  // (a failed pass ends the fill)
    RETURN_IF_ERROR(Forward(absl::MakeConstSpan(fill.tokens_)
                                .subspan(static_cast<size_t>(first), static_cast<size_t>(m)),
                            *fill.seq_, last ? logits : nullptr));
    fill.next_ = first + m;
    return absl::OkStatus();
  }
  MutexLock lock(&mu_);
  Backend& b = *backend_;
  fill.next_ = fill.rows_;  // (a failed pass ends the fill)
  std::vector<Place> places;
  places.reserve(static_cast<size_t>(m));
  for (int64_t r = first; r < first + m; ++r) {
    places.push_back({fill.seq_, fill.positions_[static_cast<size_t>(r)]});
  }
  Tensor part;
  Tensor* x = &fill.x_;
  if (m < fill.rows_) {  // a stretch: its rows of the states
    ASSIGN_OR_RETURN(part, b.Allocate(DType::kF32, {m, config_.hidden}));
    RETURN_IF_ERROR(b.CopyRows(fill.x_, first, m, part, 0));
    x = &part;
  }
  RETURN_IF_ERROR(RunLayers(fill.first_layer_, config_.layers, *x, places, nullptr));
  fill.next_ = first + m;
  if (!last) return absl::OkStatus();
  fill.seq_->length_ = fill.length_;
  absl::Status s;
  if (logits != nullptr) {
    logits->clear();
    const std::vector<int64_t> row = {m - 1};
    s = Head(*x, row, logits);
  }
  fill.x_ = Tensor();  // (done: the states are not needed any more)
  return s;
}

absl::StatusOr<std::unique_ptr<PromptFill>> Decoder::BeginAssembly(
    absl::Span<const int32_t> tokens, absl::Span<const CachedSpan> spans,
    const AssembleOptions& options, DecoderSequence& seq, AssembleStats* stats) {
  const DecoderConfig& c = config_;
  RETURN_IF_ERROR(CheckTokens(tokens));
  const auto n = static_cast<int64_t>(tokens.size());
  const int64_t kv_width = static_cast<int64_t>(c.kv_heads) * c.head_dim;
  if (seq.length_ != 0 || n > seq.capacity_) {
    return absl::InvalidArgumentError(
        absl::StrCat("Assemble needs an empty sequence of at least ", n, " positions"));
  }
  if (!(options.recompute_ratio >= 0.0f && options.recompute_ratio <= 1.0f)) {
    return absl::InvalidArgumentError(
        absl::StrCat("recompute ratio ", options.recompute_ratio, " is outside [0, 1]"));
  }
  // Which positions are cached, and which must be computed.
  std::vector<uint8_t> cached(static_cast<size_t>(n), 0), forced(static_cast<size_t>(n), 1);
  int64_t prev_end = 0;
  for (const CachedSpan& s : spans) {
    if (s.kv == nullptr || s.position < prev_end || s.position + s.kv->tokens() > n ||
        s.kv->layers() != c.layers || s.kv->width() != kv_width || s.recompute_first < 0) {
      return absl::InvalidArgumentError(
          "a cached span overlaps another, falls outside the context, or was made by another "
          "model");
    }
    prev_end = s.position + s.kv->tokens();
    for (int64_t t = s.position; t < prev_end; ++t) {
      cached[static_cast<size_t>(t)] = 1;
      forced[static_cast<size_t>(t)] = t - s.position < s.recompute_first ? 1 : 0;
    }
  }
  if (cached[static_cast<size_t>(n - 1)]) {
    return absl::InvalidArgumentError("the context's last token must be computed, not cached");
  }
  MutexLock lock(&mu_);
  Backend& b = *backend_;
  // How many cached tokens the share picks, among those of spans that may deviate and are not
  // recomputed anyway; nothing to pick, no selection pass. A one-layer model has no layer 1 to
  // compare: deviation picks nothing there.
  int64_t base = 0, candidates = 0;
  for (const CachedSpan& s : spans) {
    if (s.exact) continue;
    base += s.kv->tokens();
    candidates += s.kv->tokens() - std::min<int64_t>(s.kv->tokens(), s.recompute_first);
  }
  const size_t take = std::min(
      static_cast<size_t>(candidates),
      static_cast<size_t>(std::llround(options.recompute_ratio * static_cast<double>(base))));
  const bool deviation =
      options.selection == RecomputeSelection::kKeyValueDeviation && c.layers > 1;
  const bool select =
      take > 0 && (deviation || options.selection == RecomputeSelection::kQuestionAttention);
  // 1. Cached keys and values into the sequence, keys rotated to their new positions.
  std::vector<std::vector<float>> layer1_k(spans.size()), layer1_v(spans.size());
  AssembleStats st;
  for (size_t si = 0; si < spans.size(); ++si) {
    bool hit = false;
    RETURN_IF_ERROR(LoadSpan(spans[si], seq, select && deviation ? &layer1_k[si] : nullptr,
                             select && deviation ? &layer1_v[si] : nullptr, &hit));
    st.device_hits += hit ? 1 : 0;
  }
  for (int64_t t = 0; t < n; ++t) {
    if (cached[static_cast<size_t>(t)]) {
      ++st.cached_tokens;
      st.recomputed_tokens += forced[static_cast<size_t>(t)];
    } else {
      ++st.fresh_tokens;
    }
  }
  auto places_of = [&](const std::vector<uint8_t>& chosen) {
    std::vector<Place> p;
    for (int64_t t = 0; t < n; ++t) {
      if (chosen[static_cast<size_t>(t)]) p.push_back({&seq, static_cast<int32_t>(t)});
    }
    return p;
  };
  auto tokens_of = [&](const std::vector<Place>& p) {
    std::vector<int32_t> out;
    for (const Place& q : p) out.push_back(tokens[static_cast<size_t>(q.position)]);
    return out;
  };
  std::vector<uint8_t> chosen = forced;
  Tensor x, h1;
  int first_layer = 0;
  if (select) {
    // 2. A score per cached token, then the best-scoring share of the spans that may deviate.
    std::vector<double> score;
    if (deviation) {
      ASSIGN_OR_RETURN(score, KeyValueDeviation(tokens, spans, layer1_k, layer1_v, seq, &h1));
    } else {
      ASSIGN_OR_RETURN(score, QuestionAttention(tokens, cached, seq));
    }
    std::vector<std::pair<double, int64_t>> ranked;
    for (const CachedSpan& s : spans) {
      if (s.exact) continue;
      for (int64_t p = s.position; p < s.position + s.kv->tokens(); ++p) {
        if (!forced[static_cast<size_t>(p)]) ranked.emplace_back(score[static_cast<size_t>(p)], p);
      }
    }
    DCHECK(ranked.size() == static_cast<size_t>(candidates));
    std::partial_sort(ranked.begin(), ranked.begin() + static_cast<std::ptrdiff_t>(take),
                      ranked.end(), [](const auto& a, const auto& b2) {
                        return a.first != b2.first ? a.first > b2.first : a.second < b2.second;
                      });
    for (size_t i = 0; i < take; ++i) chosen[static_cast<size_t>(ranked[i].second)] = 1;
    st.recomputed_tokens += static_cast<int64_t>(take);
    if (deviation) {  // (select implies take > 0)
      // The chosen rows' states after layer 0 carry on from layer 1.
      const std::vector<Place> rows = places_of(chosen);
      ASSIGN_OR_RETURN(x, b.Allocate(DType::kF32, {static_cast<int64_t>(rows.size()), c.hidden}));
      for (size_t r = 0; r < rows.size(); ++r) {
        RETURN_IF_ERROR(b.CopyRows(h1, rows[r].position, 1, x, static_cast<int64_t>(r)));
      }
      first_layer = 1;
    }
  }
  const std::vector<Place> rows = places_of(chosen);
  if (first_layer == 0) {
    ASSIGN_OR_RETURN(x, Embed(tokens_of(rows)));
  }
  if (stats != nullptr) *stats = st;
  auto fill = std::unique_ptr<PromptFill>(new PromptFill());
  fill->seq_ = &seq;
  fill->assembly_ = true;
  for (const Place& p : rows) fill->positions_.push_back(p.position);
  fill->x_ = std::move(x);
  fill->first_layer_ = first_layer;
  fill->length_ = n;
  fill->rows_ = static_cast<int64_t>(rows.size());
  return fill;
}

}  // namespace strata::gpu
