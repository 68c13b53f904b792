#include "tests/gpu/backend_ops.h"

#include <algorithm>
#include <cmath>
#include <random>
#include <tuple>

#include "absl/strings/str_cat.h"
#include "storage/status_macros.h"
#include "tests/gpu/tiny_decoder.h"

namespace strata::testing {
namespace {

std::vector<float> Random(std::mt19937_64& rng, size_t n, float scale, float offset = 0) {
  std::normal_distribution<float> d(0.0f, 1.0f);
  std::vector<float> v(n);
  for (float& x : v) x = offset + scale * d(rng);
  return v;
}

}  // namespace

std::vector<OpCase> AllOpCases(uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<OpCase> out;
  for (const char* op : {"linear", "linear_gelu", "linear_silu"}) {
    OpCase c;
    c.op = op;
    c.rows = 37, c.inner = 96, c.cols = 80;  // x [rows, inner], w [cols, inner]
    c.a = Random(rng, c.rows * c.inner, 1.0f);
    c.b = Random(rng, c.cols * c.inner, 0.1f);
    c.c = Random(rng, c.cols, 0.5f);
    out.push_back(c);
  }
  // Shapes on both sides of the CPU backend's small-GEMM threshold, with row, column and inner
  // counts that leave tails of every kind.
  for (auto [rows, inner, cols] : {std::tuple<int, int, int>{1, 50, 6},
                                   {3, 17, 4},
                                   {5, 384, 83},
                                   {10, 384, 1536},
                                   {96, 64, 36},
                                   {130, 96, 80}}) {
    OpCase c;
    c.op = "linear";
    c.rows = rows, c.inner = inner, c.cols = cols;
    c.a = Random(rng, c.rows * c.inner, 1.0f);
    c.b = Random(rng, c.cols * c.inner, 0.1f);
    c.c = Random(rng, c.cols, 0.5f);
    out.push_back(c);
  }
  {
    OpCase c;
    c.op = "embedding";
    c.rows = 29, c.cols = 48, c.inner = 50;  // vocab 50, 64 positions
    c.a = Random(rng, c.inner * c.cols, 1.0f);
    c.b = Random(rng, 64 * c.cols, 1.0f);
    c.c = Random(rng, 2 * c.cols, 1.0f);
    for (int i = 0; i < c.rows; ++i) {
      c.ids.push_back(static_cast<int32_t>((i * 7) % c.inner));
      c.positions.push_back(static_cast<int32_t>(i % 64));
    }
    out.push_back(c);
  }
  for (const char* op : {"layernorm", "layernorm_residual", "rmsnorm"}) {
    OpCase c;
    c.op = op;
    c.rows = 19, c.cols = 384;
    c.a = Random(rng, c.rows * c.cols, 2.0f, 0.5f);
    c.b = Random(rng, c.rows * c.cols, 1.0f);
    c.c = Random(rng, c.cols, 0.1f, 1.0f);
    c.d = Random(rng, c.cols, 0.1f);
    out.push_back(c);
  }
  for (const char* op : {"gelu", "silu", "softmax", "l2norm"}) {
    OpCase c;
    c.op = op;
    c.rows = 23, c.cols = 300;
    c.a = Random(rng, c.rows * c.cols, 3.0f);
    out.push_back(c);
  }
  for (int head_dim : {24, 32, 64}) {  // 24: the kernels' path for dims not a multiple of 16
    OpCase c;
    c.op = "attention";
    c.offsets = {0, 1, 18, 60, 61, 190};  // lengths 1, 17, 42, 1, 129
    c.heads = 3, c.head_dim = head_dim;
    c.rows = c.offsets.back();
    c.a = Random(rng, c.rows * 3 * c.heads * head_dim, 1.0f);
    out.push_back(c);
  }
  // The decoder's operations (F32 whatever the dtype asked). Quantised products on both sides of
  // the CUDA backend's few-row threshold, with a bias and with SiLU, in every GGUF type; a plain
  // type with rows of a length that is no multiple of 32.
  for (gpu::GgmlType t :
       {gpu::GgmlType::kF32, gpu::GgmlType::kF16, gpu::GgmlType::kBF16, gpu::GgmlType::kQ8_0,
        gpu::GgmlType::kQ4_0, gpu::GgmlType::kQ4_1, gpu::GgmlType::kQ4_K, gpu::GgmlType::kQ6_K}) {
    for (auto [op, rows, inner] : {std::tuple<const char*, int, int>{"quant_linear", 3, 512},
                                   {"quant_linear_silu", 21, 512},
                                   {"quant_linear", 1, t == gpu::GgmlType::kF16 ? 50 : 256},
                                   {"quant_linear", 12, t == gpu::GgmlType::kF16 ? 50 : 256}}) {
      OpCase c;
      c.op = op;
      c.type = t;
      c.rows = rows, c.inner = inner, c.cols = 40;
      c.a = Random(rng, c.rows * c.inner, 1.0f);
      c.raw = RandomGgmlRows(t, c.cols, c.inner, rng());
      c.c = Random(rng, c.cols, 0.5f);
      out.push_back(c);
    }
  }
  for (gpu::GgmlType t : {gpu::GgmlType::kQ8_0, gpu::GgmlType::kQ6_K, gpu::GgmlType::kBF16}) {
    OpCase c;
    c.op = "gather_rows";
    c.type = t;
    c.cols = 30, c.inner = 256;  // a table of 30 rows
    c.raw = RandomGgmlRows(t, c.cols, c.inner, rng());
    c.ids = {0, 29, 7, 7, 3};
    out.push_back(c);
  }
  for (const char* op : {"add", "multiply", "copy_rows", "scatter_rows"}) {
    OpCase c;
    c.op = op;
    c.rows = 7, c.cols = op == std::string("scatter_rows") ? 101 : 100;
    c.a = Random(rng, c.rows * c.cols, 1.0f);
    c.b = Random(rng, c.rows * c.cols, 1.0f);
    out.push_back(c);
  }
  // Positions past the backends' tables of angles (20000), scattered ones, consecutive ones.
  for (const std::vector<int32_t>& positions :
       {std::vector<int32_t>{0, 1, 7, 300, 20000}, std::vector<int32_t>{9, 3, 1100, 3, 0},
        std::vector<int32_t>{40, 41, 42, 43}}) {
    for (const char* op : {"rope_adjacent", "rope_halves"}) {
      OpCase c;
      c.op = op;
      c.heads = 3, c.head_dim = 16;
      c.positions = positions;
      c.rows = static_cast<int64_t>(c.positions.size());
      c.a = Random(rng, c.rows * c.heads * c.head_dim, 1.0f);
      out.push_back(c);
    }
  }
  // Query rows of two sequences in one call, as a batch of generations mixes them: decoding rows
  // and a prompt's growing rows, lengths on both sides of the CUDA kernel's tile of 128 keys.
  for (auto [heads, kv_heads, head_dim] :
       {std::tuple<int, int, int>{4, 2, 64}, {2, 1, 32}, {3, 3, 40}}) {
    OpCase c;
    c.op = "cached_attention";
    c.heads = heads, c.kv_heads = kv_heads, c.head_dim = head_dim;
    c.lengths = {1, 129, 130, 131, 300, 5, 40, 257};
    c.cache_of = {0, 0, 0, 0, 0, 1, 1, 0};
    c.rows = static_cast<int64_t>(c.lengths.size());
    c.a = Random(rng, c.rows * heads * head_dim, 1.0f);  // queries
    c.b = Random(rng, 300 * kv_heads * head_dim, 1.0f);  // cache 0: keys, then values
    c.c = Random(rng, 300 * kv_heads * head_dim, 1.0f);
    c.d = Random(rng, 2 * 40 * kv_heads * head_dim, 1.0f);  // cache 1: keys and values
    out.push_back(c);
  }
  for (const char* op : {"pool_mean", "pool_cls"}) {
    OpCase c;
    c.op = op;
    c.offsets = {0, 5, 6, 40};
    c.rows = c.offsets.back(), c.cols = 72;
    c.a = Random(rng, c.rows * c.cols, 1.0f);
    out.push_back(c);
  }
  return out;
}

absl::StatusOr<std::vector<float>> RunOp(gpu::Backend& be, gpu::DType dtype, const OpCase& c) {
  using gpu::DType;
  using gpu::Tensor;
  auto upload = [&](const std::vector<float>& v,
                    std::vector<int64_t> shape) -> absl::StatusOr<Tensor> {
    ASSIGN_OR_RETURN(Tensor t, be.Allocate(dtype, std::move(shape)));
    RETURN_IF_ERROR(be.CopyFromHost(v.data(), DType::kF32, v.size(), t, 0));
    return t;
  };
  auto upload_ints = [&](const std::vector<int32_t>& v) -> absl::StatusOr<Tensor> {
    ASSIGN_OR_RETURN(Tensor t, be.Allocate(DType::kI32, {static_cast<int64_t>(v.size())}));
    RETURN_IF_ERROR(be.CopyFromHost(v.data(), DType::kI32, v.size(), t, 0));
    return t;
  };
  auto download = [&](const Tensor& t) -> absl::StatusOr<std::vector<float>> {
    std::vector<float> v(static_cast<size_t>(t.numel()));
    RETURN_IF_ERROR(be.CopyToHostFloat(t, v.size(), v.data()));
    return v;
  };
  const std::string& op = c.op;
  if (op.rfind("linear", 0) == 0) {
    ASSIGN_OR_RETURN(Tensor x, upload(c.a, {c.rows, c.inner}));
    ASSIGN_OR_RETURN(Tensor w_tensor, upload(c.b, {c.cols, c.inner}));
    ASSIGN_OR_RETURN(gpu::LinearWeight w,
                     be.PrepareLinear(std::move(w_tensor), gpu::MatmulPrecision::kNative));
    ASSIGN_OR_RETURN(Tensor bias, upload(c.c, {c.cols}));
    ASSIGN_OR_RETURN(Tensor y, be.Allocate(dtype, {c.rows, c.cols}));
    const gpu::Activation act = op == "linear_gelu"   ? gpu::Activation::kGelu
                                : op == "linear_silu" ? gpu::Activation::kSilu
                                                      : gpu::Activation::kNone;
    RETURN_IF_ERROR(be.Linear(x, w, &bias, act, y));
    return download(y);
  }
  if (op == "embedding") {
    ASSIGN_OR_RETURN(Tensor ids, upload_ints(c.ids));
    ASSIGN_OR_RETURN(Tensor pos, upload_ints(c.positions));
    ASSIGN_OR_RETURN(Tensor word, upload(c.a, {c.inner, c.cols}));
    ASSIGN_OR_RETURN(Tensor ptab, upload(c.b, {64, c.cols}));
    ASSIGN_OR_RETURN(Tensor type, upload(c.c, {2, c.cols}));
    ASSIGN_OR_RETURN(Tensor out, be.Allocate(dtype, {c.rows, c.cols}));
    RETURN_IF_ERROR(be.EmbeddingSum(ids, pos, word, ptab, &type, out));
    return download(out);
  }
  if (op == "layernorm" || op == "layernorm_residual" || op == "rmsnorm") {
    ASSIGN_OR_RETURN(Tensor x, upload(c.a, {c.rows, c.cols}));
    ASSIGN_OR_RETURN(Tensor r, upload(c.b, {c.rows, c.cols}));
    ASSIGN_OR_RETURN(Tensor g, upload(c.c, {c.cols}));
    ASSIGN_OR_RETURN(Tensor b, upload(c.d, {c.cols}));
    if (op == "rmsnorm") {
      RETURN_IF_ERROR(be.RmsNorm(x, g, 1e-5f, x));  // in place
      return download(x);
    }
    // With a residual, the output overwrites the residual, as the encoder does.
    if (op == "layernorm_residual") {
      RETURN_IF_ERROR(be.LayerNorm(x, &r, g, b, 1e-12f, r));
      return download(r);
    }
    RETURN_IF_ERROR(be.LayerNorm(x, nullptr, g, b, 1e-12f, x));
    return download(x);
  }
  if (op == "gelu" || op == "silu" || op == "softmax" || op == "l2norm") {
    ASSIGN_OR_RETURN(Tensor x, upload(c.a, {c.rows, c.cols}));
    if (op == "gelu") RETURN_IF_ERROR(be.Activate(gpu::Activation::kGelu, x));
    if (op == "silu") RETURN_IF_ERROR(be.Activate(gpu::Activation::kSilu, x));
    if (op == "softmax") RETURN_IF_ERROR(be.Softmax(x));
    if (op == "l2norm") RETURN_IF_ERROR(be.L2Normalize(x));
    return download(x);
  }
  if (op == "attention") {
    const int64_t hidden = static_cast<int64_t>(c.heads) * c.head_dim;
    ASSIGN_OR_RETURN(Tensor qkv, upload(c.a, {c.rows, 3 * hidden}));
    ASSIGN_OR_RETURN(Tensor offsets, upload_ints(c.offsets));
    ASSIGN_OR_RETURN(Tensor out, be.Allocate(dtype, {c.rows, hidden}));
    RETURN_IF_ERROR(be.Attention(qkv, offsets, c.offsets, c.heads, c.head_dim, out));
    return download(out);
  }
  // The decoder's operations: F32 on every backend.
  auto upload32 = [&](const std::vector<float>& v,
                      std::vector<int64_t> shape) -> absl::StatusOr<Tensor> {
    ASSIGN_OR_RETURN(Tensor t, be.Allocate(DType::kF32, std::move(shape)));
    RETURN_IF_ERROR(be.CopyFromHost(v.data(), DType::kF32, v.size(), t, 0));
    return t;
  };
  if (op == "quant_linear" || op == "quant_linear_silu") {
    ASSIGN_OR_RETURN(Tensor x, upload32(c.a, {c.rows, c.inner}));
    ASSIGN_OR_RETURN(gpu::LinearWeight w,
                     be.PrepareQuantizedLinear(c.type, c.raw.data(), c.cols, c.inner));
    ASSIGN_OR_RETURN(Tensor bias, upload32(c.c, {c.cols}));
    ASSIGN_OR_RETURN(Tensor y, be.Allocate(DType::kF32, {c.rows, c.cols}));
    const bool silu = op == "quant_linear_silu";
    RETURN_IF_ERROR(be.Linear(x, w, silu ? &bias : nullptr,
                              silu ? gpu::Activation::kSilu : gpu::Activation::kNone, y));
    return download(y);
  }
  if (op == "gather_rows") {
    ASSIGN_OR_RETURN(gpu::LinearWeight w,
                     be.PrepareQuantizedLinear(c.type, c.raw.data(), c.cols, c.inner));
    ASSIGN_OR_RETURN(Tensor ids, upload_ints(c.ids));
    ASSIGN_OR_RETURN(Tensor out,
                     be.Allocate(DType::kF32, {static_cast<int64_t>(c.ids.size()), c.inner}));
    RETURN_IF_ERROR(be.GatherRows(w, ids, out));
    return download(out);
  }
  if (op == "add" || op == "multiply") {
    ASSIGN_OR_RETURN(Tensor x, upload32(c.a, {c.rows, c.cols}));
    ASSIGN_OR_RETURN(Tensor y, upload32(c.b, {c.rows, c.cols}));
    RETURN_IF_ERROR(op == "add" ? be.Add(x, y) : be.Multiply(x, y));
    return download(x);
  }
  if (op == "copy_rows") {  // rows 2..5 of a into rows 1..4 of b
    ASSIGN_OR_RETURN(Tensor a, upload32(c.a, {c.rows, c.cols}));
    ASSIGN_OR_RETURN(Tensor b, upload32(c.b, {c.rows, c.cols}));
    RETURN_IF_ERROR(be.CopyRows(a, 2, 4, b, 1));
    return download(b);
  }
  if (op == "scatter_rows") {  // rows 0..5 of a to rows 6, 0, 1 of b and 3, 4, 2 of a copy of b
    // In the dtype asked: rows of an odd number of 16-bit values take CUDA's 2-byte copy.
    ASSIGN_OR_RETURN(Tensor a, upload(c.a, {c.rows, c.cols}));
    ASSIGN_OR_RETURN(Tensor b, upload(c.b, {c.rows, c.cols}));
    ASSIGN_OR_RETURN(Tensor b2, upload(c.b, {c.rows, c.cols}));
    const gpu::Backend::RowDestination dests[] = {{&b, 6},  {&b, 0},  {&b, 1},
                                                  {&b2, 3}, {&b2, 4}, {&b2, 2}};
    RETURN_IF_ERROR(be.ScatterRows(a, dests));
    ASSIGN_OR_RETURN(std::vector<float> out, download(b));
    ASSIGN_OR_RETURN(std::vector<float> out2, download(b2));
    out.insert(out.end(), out2.begin(), out2.end());
    return out;
  }
  if (op == "rope_adjacent" || op == "rope_halves") {
    ASSIGN_OR_RETURN(Tensor x, upload32(c.a, {c.rows, c.heads * c.head_dim}));
    RETURN_IF_ERROR(
        be.Rope(x, c.heads, c.head_dim, c.positions, 10000.0f,
                op == "rope_adjacent" ? gpu::RopeStyle::kAdjacent : gpu::RopeStyle::kHalves));
    return download(x);
  }
  if (op == "cached_attention") {
    const int64_t kv_width = static_cast<int64_t>(c.kv_heads) * c.head_dim;
    ASSIGN_OR_RETURN(Tensor q, upload32(c.a, {c.rows, c.heads * c.head_dim}));
    ASSIGN_OR_RETURN(Tensor k0, upload32(c.b, {300, kv_width}));
    ASSIGN_OR_RETURN(Tensor v0, upload32(c.c, {300, kv_width}));
    const auto half = static_cast<std::ptrdiff_t>(c.d.size() / 2);
    ASSIGN_OR_RETURN(Tensor k1, upload32({c.d.begin(), c.d.begin() + half}, {40, kv_width}));
    ASSIGN_OR_RETURN(Tensor v1, upload32({c.d.begin() + half, c.d.end()}, {40, kv_width}));
    std::vector<gpu::Backend::AttentionRow> rows;
    for (size_t t = 0; t < c.lengths.size(); ++t) {
      rows.push_back(
          {c.cache_of[t] == 0 ? &k0 : &k1, c.cache_of[t] == 0 ? &v0 : &v1, c.lengths[t]});
    }
    ASSIGN_OR_RETURN(Tensor out, be.Allocate(DType::kF32, {c.rows, c.heads * c.head_dim}));
    RETURN_IF_ERROR(be.CachedAttention(q, rows, c.heads, c.kv_heads, c.head_dim, out));
    return download(out);
  }
  if (op == "pool_mean" || op == "pool_cls") {
    ASSIGN_OR_RETURN(Tensor x, upload(c.a, {c.rows, c.cols}));
    ASSIGN_OR_RETURN(Tensor offsets, upload_ints(c.offsets));
    const int64_t b = static_cast<int64_t>(c.offsets.size()) - 1;
    ASSIGN_OR_RETURN(Tensor out, be.Allocate(dtype, {b, c.cols}));
    RETURN_IF_ERROR(be.Pool(x, offsets, c.offsets,
                            op == "pool_cls" ? gpu::Pooling::kCls : gpu::Pooling::kMean, out));
    return download(out);
  }
  return absl::InvalidArgumentError(absl::StrCat("unknown op ", op));
}

absl::StatusOr<std::vector<OpComparison>> CompareOpsWithCpu(gpu::Backend& backend, gpu::DType dtype,
                                                            uint64_t seed) {
  auto cpu = gpu::CreateCpuBackend();
  std::vector<OpComparison> out;
  for (const OpCase& c : AllOpCases(seed)) {
    ASSIGN_OR_RETURN(std::vector<float> want, RunOp(*cpu, gpu::DType::kF32, c));
    ASSIGN_OR_RETURN(std::vector<float> got, RunOp(backend, dtype, c));
    if (want.size() != got.size()) {
      return absl::InternalError(
          absl::StrCat(c.op, ": ", got.size(), " outputs, expected ", want.size()));
    }
    OpComparison r{c.op, 0};
    for (size_t i = 0; i < want.size(); ++i) {
      r.worst =
          std::max(r.worst, double(std::abs(want[i] - got[i]) / std::max(1.0f, std::abs(want[i]))));
    }
    out.push_back(std::move(r));
  }
  return out;
}

double OpTolerance(gpu::DType dtype) {
  return dtype == gpu::DType::kF32 ? 2e-4 : dtype == gpu::DType::kF16 ? 3e-2 : 8e-2;
}

}  // namespace strata::testing
