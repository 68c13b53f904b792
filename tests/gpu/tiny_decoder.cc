#include "tests/gpu/tiny_decoder.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <map>
#include <random>

#include "absl/strings/str_cat.h"
#include "gpu/gguf.h"
#include "gpu/passage_kv.h"
#include "storage/half.h"
#include "storage/status_macros.h"

namespace strata::testing {
namespace {

using gpu::GgmlType;

std::string Utf8(char32_t c) {
  std::string s;
  if (c < 0x80) {
    s += static_cast<char>(c);
  } else if (c < 0x800) {
    s += static_cast<char>(0xC0 | (c >> 6));
    s += static_cast<char>(0x80 | (c & 0x3F));
  } else {
    s += static_cast<char>(0xE0 | (c >> 12));
    s += static_cast<char>(0x80 | ((c >> 6) & 0x3F));
    s += static_cast<char>(0x80 | (c & 0x3F));
  }
  return s;
}

void PutF16(std::string& out, size_t at, float v) {
  const uint16_t h = FloatToHalf(v);
  std::memcpy(&out[at], &h, 2);
}

// n values of a weight in `type`: random codes with scales that keep values near N(0, 0.05).
std::string RandomRows(GgmlType type, int64_t rows, int64_t k, std::mt19937_64& rng) {
  std::normal_distribution<float> normal(0.0f, 0.05f);
  std::uniform_real_distribution<float> uni(0.5f, 1.5f);
  const size_t bytes = gpu::GgmlRowBytes(type, k) * static_cast<size_t>(rows);
  std::string out(bytes, '\0');
  switch (type) {
    case GgmlType::kF32:
      for (size_t i = 0; i < bytes / 4; ++i) {
        const float v = normal(rng);
        std::memcpy(&out[i * 4], &v, 4);
      }
      return out;
    case GgmlType::kF16:
      for (size_t i = 0; i < bytes / 2; ++i) PutF16(out, i * 2, normal(rng));
      return out;
    case GgmlType::kBF16:
      for (size_t i = 0; i < bytes / 2; ++i) {
        const uint16_t b = FloatToBFloat16(normal(rng));
        std::memcpy(&out[i * 2], &b, 2);
      }
      return out;
    default:
      break;
  }
  for (char& c : out) c = static_cast<char>(rng() & 0xFF);
  const int bb = gpu::GgmlBlockBytes(type);
  for (size_t b = 0; b < bytes; b += static_cast<size_t>(bb)) {
    switch (type) {
      case GgmlType::kQ8_0:
        PutF16(out, b, 0.0008f * uni(rng));
        break;
      case GgmlType::kQ4_0:
        PutF16(out, b, 0.012f * uni(rng));
        break;
      case GgmlType::kQ4_1:
        PutF16(out, b, 0.012f * uni(rng));
        PutF16(out, b + 2, -0.09f * uni(rng));
        break;
      case GgmlType::kQ4_K:
        PutF16(out, b, 0.0002f * uni(rng));
        PutF16(out, b + 2, 0.0002f * uni(rng));
        break;
      case GgmlType::kQ6_K:
        PutF16(out, b + 208, 0.00003f * uni(rng));
        break;
      default:
        break;
    }
  }
  return out;
}

std::string F32Vector(int64_t n, std::mt19937_64& rng, float mean, float sd) {
  std::normal_distribution<float> normal(mean, sd);
  std::string out(static_cast<size_t>(n) * 4, '\0');
  for (int64_t i = 0; i < n; ++i) {
    const float v = normal(rng);
    std::memcpy(&out[static_cast<size_t>(i) * 4], &v, 4);
  }
  return out;
}

}  // namespace

std::string RandomGgmlRows(GgmlType type, int64_t rows, int64_t k, uint64_t seed) {
  std::mt19937_64 rng(seed);
  return RandomRows(type, rows, k, rng);
}

std::vector<std::string> TinyVocabulary() {
  std::vector<std::string> v;
  char32_t next = 256;
  for (int b = 0; b < 256; ++b) {
    const bool printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || b >= 174;
    v.push_back(Utf8(printable ? static_cast<char32_t>(b) : next++));
  }
  for (const char* t : {"he", "ll", "llo", "hello", "\xC4\xA0w", "\xC4\xA0wo"}) v.push_back(t);
  v.push_back("<|im_start|>");
  v.push_back("<|im_end|>");
  return v;
}

std::vector<std::string> TinyMerges() {
  return {"h e", "l l", "ll o", "he llo", "\xC4\xA0 w", "\xC4\xA0w o"};
}

absl::Status WriteTinyDecoder(const TinyDecoderSpec& s, const std::string& path) {
  const std::vector<std::string> merges = TinyMerges();
  const std::vector<std::string> vocab = TinyVocabulary();
  std::vector<int32_t> types(vocab.size(), 1);
  types[types.size() - 1] = types[types.size() - 2] = 3;
  const std::string arch = s.arch == gpu::DecoderArch::kLlama ? "llama" : "qwen2";
  std::map<std::string, gpu::GgufMetadataValue> meta = {
      {"general.architecture", arch},
      {"general.name", std::string("tiny")},
      {arch + ".block_count", static_cast<uint32_t>(s.layers)},
      {arch + ".embedding_length", static_cast<uint32_t>(s.hidden)},
      {arch + ".feed_forward_length", static_cast<uint32_t>(s.ffn)},
      {arch + ".attention.head_count", static_cast<uint32_t>(s.heads)},
      {arch + ".attention.head_count_kv", static_cast<uint32_t>(s.kv_heads)},
      {arch + ".context_length", static_cast<uint32_t>(s.context)},
      {arch + ".rope.freq_base", 10000.0f},
      {arch + ".attention.layer_norm_rms_epsilon", 1e-5f},
      {"tokenizer.ggml.model", std::string("gpt2")},
      {"tokenizer.ggml.pre", std::string(s.arch == gpu::DecoderArch::kLlama ? "smollm" : "qwen2")},
      {"tokenizer.ggml.tokens", vocab},
      {"tokenizer.ggml.merges", merges},
      {"tokenizer.ggml.token_type", types},
      {"tokenizer.ggml.eos_token_id", static_cast<uint32_t>(vocab.size() - 1)},
      {"tokenizer.chat_template",
       std::string("{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n"
                   "{% endfor %}")},
  };
  std::mt19937_64 rng(s.seed);
  const int64_t vocab_n = static_cast<int64_t>(vocab.size());
  const int64_t kv = static_cast<int64_t>(s.hidden) / s.heads * s.kv_heads;
  std::vector<gpu::GgufTensorToWrite> t;
  auto matrix = [&](const std::string& name, GgmlType type, int64_t n, int64_t k) {
    t.push_back({name, type, {k, n}, RandomRows(type, n, k, rng)});
  };
  auto vec = [&](const std::string& name, int64_t n, float mean, float sd) {
    t.push_back({name, GgmlType::kF32, {n}, F32Vector(n, rng, mean, sd)});
  };
  matrix("token_embd.weight", s.embedding_type, vocab_n, s.hidden);
  if (!s.tied) matrix("output.weight", s.matrix_type, vocab_n, s.hidden);
  vec("output_norm.weight", s.hidden, 1.0f, 0.1f);
  for (int i = 0; i < s.layers; ++i) {
    const std::string p = absl::StrCat("blk.", i, ".");
    vec(p + "attn_norm.weight", s.hidden, 1.0f, 0.1f);
    vec(p + "ffn_norm.weight", s.hidden, 1.0f, 0.1f);
    matrix(p + "attn_q.weight", s.matrix_type, s.hidden, s.hidden);
    matrix(p + "attn_k.weight", s.matrix_type, kv, s.hidden);
    matrix(p + "attn_v.weight", s.matrix_type, kv, s.hidden);
    matrix(p + "attn_output.weight", s.matrix_type, s.hidden, s.hidden);
    matrix(p + "ffn_gate.weight", s.matrix_type, s.ffn, s.hidden);
    matrix(p + "ffn_up.weight", s.matrix_type, s.ffn, s.hidden);
    matrix(p + "ffn_down.weight", s.matrix_type, s.hidden, s.ffn);
    if (s.arch == gpu::DecoderArch::kQwen2) {
      vec(p + "attn_q.bias", s.hidden, 0.0f, 0.5f);
      vec(p + "attn_k.bias", kv, 0.0f, 0.5f);
      vec(p + "attn_v.bias", kv, 0.0f, 0.5f);
    }
  }
  return gpu::WriteGguf(path, meta, t);
}

std::vector<std::vector<double>> ReferenceLogProbs(const std::string& path,
                                                   const std::vector<int32_t>& ids) {
  auto file = gpu::GgufFile::Open(path);
  if (!file.ok()) return {};
  const gpu::GgufFile& f = **file;
  auto config = gpu::ReadDecoderConfig(f);
  if (!config.ok()) return {};
  const gpu::DecoderConfig& c = *config;
  // [n][k] as doubles.
  auto mat = [&](const std::string& name) {
    gpu::GgufTensor t = *f.Tensor(name);
    const int64_t k = t.row_length(), n = t.rows();
    std::vector<std::vector<double>> m(static_cast<size_t>(n));
    std::vector<float> row(static_cast<size_t>(k));
    for (int64_t r = 0; r < n; ++r) {
      gpu::DequantizeRow(t.type, t.data + gpu::GgmlRowBytes(t.type, k) * static_cast<size_t>(r), k,
                         row.data());
      m[static_cast<size_t>(r)].assign(row.begin(), row.end());
    }
    return m;
  };
  auto vec = [&](const std::string& name) { return mat(name)[0]; };
  using Rows = std::vector<std::vector<double>>;
  auto linear = [](const Rows& x, const Rows& w) {
    Rows y(x.size(), std::vector<double>(w.size()));
    for (size_t t = 0; t < x.size(); ++t) {
      for (size_t j = 0; j < w.size(); ++j) {
        double s = 0;
        for (size_t i = 0; i < w[j].size(); ++i) s += x[t][i] * w[j][i];
        y[t][j] = s;
      }
    }
    return y;
  };
  auto rms = [&](const Rows& x, const std::vector<double>& g) {
    Rows y = x;
    for (auto& r : y) {
      double ss = 0;
      for (double v : r) ss += v * v;
      const double inv = 1.0 / std::sqrt(ss / static_cast<double>(r.size()) + c.rms_eps);
      for (size_t i = 0; i < r.size(); ++i) r[i] = r[i] * inv * g[i];
    }
    return y;
  };
  const int hd = c.head_dim;
  auto rope = [&](Rows& x, int heads) {
    for (size_t t = 0; t < x.size(); ++t) {
      for (int h = 0; h < heads; ++h) {
        for (int i = 0; i < hd / 2; ++i) {
          const double a =
              static_cast<double>(t) * std::pow(static_cast<double>(c.rope_theta), -2.0 * i / hd);
          const bool adj = c.rope_style == gpu::RopeStyle::kAdjacent;
          double& x0 = x[t][static_cast<size_t>(h * hd + (adj ? 2 * i : i))];
          double& x1 = x[t][static_cast<size_t>(h * hd + (adj ? 2 * i + 1 : i + hd / 2))];
          const double a0 = x0, a1 = x1;
          x0 = a0 * std::cos(a) - a1 * std::sin(a);
          x1 = a0 * std::sin(a) + a1 * std::cos(a);
        }
      }
    }
  };
  const Rows emb = mat("token_embd.weight");
  Rows x;
  for (int32_t id : ids) x.push_back(emb[static_cast<size_t>(id)]);
  const size_t T = ids.size();
  for (int l = 0; l < c.layers; ++l) {
    const std::string p = absl::StrCat("blk.", l, ".");
    Rows xn = rms(x, vec(p + "attn_norm.weight"));
    Rows q = linear(xn, mat(p + "attn_q.weight")), k = linear(xn, mat(p + "attn_k.weight")),
         v = linear(xn, mat(p + "attn_v.weight"));
    if (c.arch == gpu::DecoderArch::kQwen2) {
      const auto bq = vec(p + "attn_q.bias"), bk = vec(p + "attn_k.bias"),
                 bv = vec(p + "attn_v.bias");
      for (size_t t = 0; t < T; ++t) {
        for (size_t i = 0; i < bq.size(); ++i) q[t][i] += bq[i];
        for (size_t i = 0; i < bk.size(); ++i) k[t][i] += bk[i], v[t][i] += bv[i];
      }
    }
    rope(q, c.heads);
    rope(k, c.kv_heads);
    Rows att(T, std::vector<double>(static_cast<size_t>(c.hidden)));
    for (size_t t = 0; t < T; ++t) {
      for (int h = 0; h < c.heads; ++h) {
        const int g = h / (c.heads / c.kv_heads);
        std::vector<double> s(t + 1);
        double mx = -1e300;
        for (size_t j = 0; j <= t; ++j) {
          double d = 0;
          for (int i = 0; i < hd; ++i) d += q[t][h * hd + i] * k[j][g * hd + i];
          s[j] = d / std::sqrt(static_cast<double>(hd));
          mx = std::max(mx, s[j]);
        }
        double sum = 0;
        for (double& e : s) sum += (e = std::exp(e - mx));
        for (size_t j = 0; j <= t; ++j) {
          for (int i = 0; i < hd; ++i) att[t][h * hd + i] += s[j] / sum * v[j][g * hd + i];
        }
      }
    }
    Rows o = linear(att, mat(p + "attn_output.weight"));
    for (size_t t = 0; t < T; ++t)
      for (int i = 0; i < c.hidden; ++i) x[t][i] += o[t][i];
    xn = rms(x, vec(p + "ffn_norm.weight"));
    Rows gt = linear(xn, mat(p + "ffn_gate.weight")), up = linear(xn, mat(p + "ffn_up.weight"));
    for (size_t t = 0; t < T; ++t) {
      for (size_t i = 0; i < gt[t].size(); ++i) {
        gt[t][i] = gt[t][i] / (1.0 + std::exp(-gt[t][i])) * up[t][i];
      }
    }
    Rows d = linear(gt, mat(p + "ffn_down.weight"));
    for (size_t t = 0; t < T; ++t)
      for (int i = 0; i < c.hidden; ++i) x[t][i] += d[t][i];
  }
  x = rms(x, vec("output_norm.weight"));
  Rows logits = linear(x, f.Contains("output.weight") ? mat("output.weight") : emb);
  for (auto& r : logits) {
    const double mx = *std::max_element(r.begin(), r.end());
    double sum = 0;
    for (double v : r) sum += std::exp(v - mx);
    for (double& v : r) v = v - mx - std::log(sum);
  }
  return logits;
}

std::vector<double> LogSoftmax(const float* x, int n) {
  double mx = -1e300;
  for (int i = 0; i < n; ++i) mx = std::max(mx, static_cast<double>(x[i]));
  double sum = 0;
  for (int i = 0; i < n; ++i) sum += std::exp(x[i] - mx);
  std::vector<double> out(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) out[static_cast<size_t>(i)] = x[i] - mx - std::log(sum);
  return out;
}

int ArgMax(const std::vector<double>& v) {
  return static_cast<int>(std::max_element(v.begin(), v.end()) - v.begin());
}

absl::StatusOr<TinyDecoderCheck> CheckTinyDecoder(const TinyDecoderSpec& spec,
                                                  const std::string& path,
                                                  const gpu::DecoderOptions& options,
                                                  std::unique_ptr<gpu::Backend> backend) {
  RETURN_IF_ERROR(WriteTinyDecoder(spec, path));
  ASSIGN_OR_RETURN(std::unique_ptr<gpu::Decoder> d,
                   gpu::Decoder::Open(path, options, std::move(backend)));
  const int vocab = d->config().vocab_size;
  std::vector<int32_t> ids;
  for (int i = 0; i < 20; ++i) ids.push_back((i * 37 + 5) % vocab);
  const auto want = ReferenceLogProbs(path, ids);
  if (want.size() != ids.size()) return absl::InternalError("the reference forward failed");
  TinyDecoderCheck out;
  ASSIGN_OR_RETURN(auto seq, d->NewSequence(64));
  std::vector<float> logits;
  RETURN_IF_ERROR(d->Forward(ids, *seq, &logits, /*all_logits=*/true));
  for (size_t t = 0; t < ids.size(); ++t, ++out.positions) {
    const std::vector<double> got = LogSoftmax(logits.data() + t * vocab, vocab);
    if (ArgMax(got) != ArgMax(want[t])) ++out.argmax_mismatches;
    for (int j = 0; j < vocab; ++j) {
      out.prompt_worst = std::max(out.prompt_worst, std::fabs(got[static_cast<size_t>(j)] -
                                                              want[t][static_cast<size_t>(j)]));
    }
  }
  ASSIGN_OR_RETURN(auto step, d->NewSequence(64));
  std::vector<float> last;
  for (int32_t id : ids) RETURN_IF_ERROR(d->Forward({&id, 1}, *step, &last));
  if (step->length() != static_cast<int64_t>(ids.size())) {
    return absl::InternalError("token-by-token decoding lost a position");
  }
  const std::vector<double> inc = LogSoftmax(last.data(), vocab);
  for (int j = 0; j < vocab; ++j) {
    out.step_worst = std::max(out.step_worst, std::fabs(inc[static_cast<size_t>(j)] -
                                                        want.back()[static_cast<size_t>(j)]));
  }
  return out;
}

absl::StatusOr<std::vector<std::vector<float>>> AssemblyLogits(gpu::Decoder& d) {
  const int vocab = d.config().vocab_size;
  auto tokens = [&](int n, int salt) {
    std::vector<int32_t> t;
    for (int i = 0; i < n; ++i) t.push_back((i * 31 + salt * 7 + 3) % vocab);
    return t;
  };
  const auto prefix = tokens(6, 1), p1 = tokens(30, 2), p2 = tokens(33, 4), q = tokens(5, 3);
  auto last = [&](const std::vector<float>& logits) {
    return std::vector<float>(logits.end() - vocab, logits.end());
  };
  auto full = [&](const std::vector<int32_t>& all) -> absl::StatusOr<std::vector<float>> {
    ASSIGN_OR_RETURN(auto seq, d.NewSequence(256));
    std::vector<float> logits;
    RETURN_IF_ERROR(d.Forward(all, *seq, &logits));
    return last(logits);
  };
  auto cache = [&](const std::vector<int32_t>& passage,
                   gpu::KvFormat f) -> absl::StatusOr<gpu::PassageKv> {
    ASSIGN_OR_RETURN(auto seq, d.NewSequence(256));
    RETURN_IF_ERROR(d.Forward(prefix, *seq, nullptr));
    gpu::KvCapture cap;
    RETURN_IF_ERROR(d.Forward(passage, *seq, nullptr, false, &cap));
    return gpu::PassageKv::Compress(f, static_cast<int>(passage.size()), d.config().kv_heads,
                                    d.config().head_dim, cap.k, cap.v);
  };
  auto assemble = [&](const std::vector<int32_t>& all, absl::Span<const gpu::CachedSpan> spans,
                      const gpu::AssembleOptions& o) -> absl::StatusOr<std::vector<float>> {
    ASSIGN_OR_RETURN(auto seq, d.NewSequence(256));
    std::vector<float> logits;
    RETURN_IF_ERROR(d.Assemble(all, spans, o, *seq, &logits));
    return last(logits);
  };
  std::vector<int32_t> all = prefix;
  all.insert(all.end(), p1.begin(), p1.end());
  all.push_back(77 % vocab);
  const auto at2 = static_cast<int64_t>(all.size());
  all.insert(all.end(), p2.begin(), p2.end());
  all.insert(all.end(), q.begin(), q.end());
  std::vector<int32_t> one = prefix;
  one.insert(one.end(), p1.begin(), p1.end());
  one.insert(one.end(), q.begin(), q.end());
  std::vector<std::vector<float>> out;
  ASSIGN_OR_RETURN(auto f0, full(all));
  out.push_back(std::move(f0));
  ASSIGN_OR_RETURN(const gpu::PassageKv exact, cache(p1, gpu::KvFormat::kF32));
  const gpu::CachedSpan in_place{static_cast<int64_t>(prefix.size()), &exact, 0};
  ASSIGN_OR_RETURN(auto a1, assemble(one, {&in_place, 1}, {}));
  out.push_back(std::move(a1));
  ASSIGN_OR_RETURN(auto f2, full(one));
  out.push_back(std::move(f2));
  ASSIGN_OR_RETURN(const gpu::PassageKv kv1, cache(p1, gpu::KvFormat::kInt8));
  ASSIGN_OR_RETURN(const gpu::PassageKv kv2, cache(p2, gpu::KvFormat::kInt8));
  const gpu::CachedSpan spans[] = {{static_cast<int64_t>(prefix.size()), &kv1, 0}, {at2, &kv2, 0}};
  for (auto [ratio, selection] : {std::pair<float, gpu::RecomputeSelection>{
                                      1.0f, gpu::RecomputeSelection::kKeyValueDeviation},
                                  {0.3f, gpu::RecomputeSelection::kKeyValueDeviation},
                                  {0.3f, gpu::RecomputeSelection::kQuestionAttention}}) {
    gpu::AssembleOptions o;
    o.recompute_ratio = ratio;
    o.selection = selection;
    ASSIGN_OR_RETURN(auto a, assemble(all, spans, o));
    out.push_back(std::move(a));
  }
  return out;
}

}  // namespace strata::testing
