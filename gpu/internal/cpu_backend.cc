// The CPU backend: float32 activations, Strata's own GEMM for the Linear layers (weights packed
// once; f32, bf16 or int8 products on the kernels this CPU has, gpu/internal/gemm.h), OpenMP over
// rows for the rest. In f32 it is the reference the CUDA kernels are tested against, so its row
// operations favour exact forms (fp32 statistics, erf GELU) over cheaper approximations.
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gpu/backend.h"
#include "gpu/internal/cpu_kernels.h"
#include "gpu/internal/gemm.h"
#include "gpu/internal/head_attention.h"
#include "gpu/internal/quant_dot_q8.h"
#include "gpu/internal/quant_kernels.h"
#include "gpu/internal/quant_matmul.h"
#include "gpu/internal/rope.h"
#include "gpu/internal/thread_pool.h"
#include "storage/cpu_features.h"
#include "storage/log.h"
#include "storage/status_macros.h"

// Refuses a tensor that is not float32 (the CPU backend's only floating type).
#define RETURN_IF_NOT_F32(t, what) RETURN_IF_ERROR(NeedF32((t), (what)))

namespace strata::gpu {
namespace {

void FreeHost(void* p) { std::free(p); }

// Below this many elements an elementwise loop runs on the calling thread: waking the team costs
// more than the loop (a decode step's vectors are a few thousand values).
constexpr int64_t kParallelElements = 1 << 16;

absl::Status NeedF32(const Tensor& t, const char* what) {
  if (t.dtype() != DType::kF32) {
    return absl::InvalidArgumentError(
        absl::StrCat("cpu backend: ", what, " is ", DTypeName(t.dtype()), "; it computes in F32"));
  }
  return absl::OkStatus();
}

// A packed weight, as the CPU backend keeps a Linear layer's weight.
struct CpuLinearData final : LinearWeight::Data {
  explicit CpuLinearData(cpu::PackedWeight w) : packed(std::move(w)) {}
  cpu::PackedWeight packed;
};

// A weight kept in its GGUF block type (PrepareQuantizedLinear).
struct CpuQuantData final : LinearWeight::Data {
  explicit CpuQuantData(cpu::QuantMatrix m) : matrix(std::move(m)) {}
  cpu::QuantMatrix matrix;
};

cpu::GemmPrecision ToGemm(MatmulPrecision p) {
  switch (p) {
    case MatmulPrecision::kNative:
      return cpu::GemmPrecision::kF32;
    case MatmulPrecision::kBF16:
      return cpu::GemmPrecision::kBF16;
    case MatmulPrecision::kInt8:
      return cpu::GemmPrecision::kInt8;
  }
  return cpu::GemmPrecision::kF32;
}

class CpuBackend final : public Backend {
 public:
  BackendKind kind() const override { return BackendKind::kCpu; }
  std::string name() const override {
    return absl::StrCat("cpu (", omp_get_max_threads(), " OpenMP threads, ",
                        cpu::BestCpuKernels().name, " row kernels)");
  }
  DType preferred_dtype() const override { return DType::kF32; }
  bool Supports(DType dtype) const override { return dtype == DType::kF32 || dtype == DType::kI32; }

  absl::StatusOr<Tensor> Allocate(DType dtype, std::vector<int64_t> shape) override {
    if (!Supports(dtype)) {
      return absl::InvalidArgumentError(
          absl::StrCat("cpu backend: cannot hold ", DTypeName(dtype), " tensors (F32 and I32)"));
    }
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    const size_t bytes = std::max<size_t>(64, (static_cast<size_t>(n) * 4 + 63) / 64 * 64);
    void* p = std::aligned_alloc(64, bytes);
    if (p == nullptr) {
      return absl::ResourceExhaustedError(
          absl::StrCat("cpu backend: out of memory for ", bytes, " bytes"));
    }
    return Tensor(dtype, std::move(shape), p, &FreeHost);
  }

  absl::Status CopyFromHost(const void* src, DType src_dtype, size_t n, Tensor& dst,
                            size_t offset) override {
    RETURN_IF_ERROR(CheckCopyFromHost(src_dtype, n, dst, offset));
    const bool dst_int = dst.dtype() == DType::kI32;
    if (dst_int) {
      std::memcpy(dst.as<int32_t>() + offset, src, n * 4);
    } else {
      ConvertToFloat(src_dtype, src, n, dst.as<float>() + offset);
    }
    return absl::OkStatus();
  }

  absl::Status CopyToHostFloat(const Tensor& src, size_t n, float* dst) override {
    RETURN_IF_NOT_F32(src, "CopyToHostFloat source");
    std::memcpy(dst, src.data(), n * 4);
    return absl::OkStatus();
  }

  absl::Status Synchronize() override { return absl::OkStatus(); }

  absl::Status CheckMatmul(MatmulPrecision precision) const override {
    if (cpu::BestGemmKernel(ToGemm(precision)) != nullptr) return absl::OkStatus();
    const CpuFeatures& c = Cpu();
    const bool bf16 = precision == MatmulPrecision::kBF16;
    const bool has = bf16 ? (c.avx512_bf16 || c.amx_bf16) : (c.avx512_vnni || c.amx_int8);
    if (has && ::strata::Supports(SimdLevel::kAvx512)) {
      return absl::FailedPreconditionError(absl::StrCat(
          MatmulPrecisionName(precision),
          " matrix products need the AVX-512 level, which STRATA_SIMD=",
          SimdLevelName(ProjectSimdLevel()), " turns off; unset STRATA_SIMD or use f32"));
    }
    return absl::FailedPreconditionError(
        absl::StrCat("this CPU has no ", MatmulPrecisionName(precision), " matrix instructions (",
                     bf16 ? "AMX-BF16 or AVX512-BF16" : "AMX-INT8 or AVX512-VNNI", "); use f32"));
  }

  // bf16 where it runs on AMX tiles (3-5x the f32 kernel's rate on a passage's products, with the
  // reference's retrieval quality: bench/RESULTS.md); elsewhere f32, since AVX512-BF16 dot products
  // measured slower than f32 FMAs on the one CPU we could try (a Xeon with AMX).
  MatmulPrecision DefaultMatmul() const override {
    const cpu::GemmKernel* bf16 = cpu::BestGemmKernel(cpu::GemmPrecision::kBF16);
    return bf16 != nullptr && bf16->tiles ? MatmulPrecision::kBF16 : MatmulPrecision::kNative;
  }

  absl::StatusOr<LinearWeight> PrepareLinear(Tensor w, MatmulPrecision precision) override {
    RETURN_IF_NOT_F32(w, "Linear weight");
    if (w.shape().size() != 2) {
      return absl::InvalidArgumentError("cpu backend: a Linear weight is [out, in]");
    }
    RETURN_IF_ERROR(CheckMatmul(precision));
    const cpu::GemmKernel* kernel = cpu::BestGemmKernel(ToGemm(precision));
    const int64_t n = w.dim(0), k = w.dim(1);
    ASSIGN_OR_RETURN(cpu::PackedWeight packed,
                     cpu::PackedWeight::Pack(w.as<float>(), n, k, *kernel));
    return LinearWeight(n, k, kernel->name, Tensor(),
                        std::make_unique<CpuLinearData>(std::move(packed)));
  }

  absl::Status Linear(const Tensor& x, const LinearWeight& w, const Tensor* bias, Activation act,
                      Tensor& y) override {
    RETURN_IF_NOT_F32(x, "Linear input");
    RETURN_IF_NOT_F32(y, "Linear output");
    if (w.data() == nullptr) {
      return absl::InvalidArgumentError("cpu backend: a Linear weight it did not prepare");
    }
    if (const auto* q = dynamic_cast<const CpuQuantData*>(w.data())) {
      const int64_t m = x.numel() / q->matrix.k();
      if (m * q->matrix.k() != x.numel() || y.numel() < m * q->matrix.n() ||
          (bias != nullptr && bias->numel() < q->matrix.n())) {
        return absl::InvalidArgumentError(absl::StrCat("cpu backend: Linear of ", x.numel(),
                                                       " inputs by a ", q->matrix.n(), " x ",
                                                       q->matrix.k(), " weight into ", y.numel()));
      }
      cpu::QuantMatmul(x.as<float>(), m, q->matrix, bias != nullptr ? bias->as<float>() : nullptr,
                       static_cast<int>(act), y.as<float>());
      return absl::OkStatus();
    }
    const cpu::PackedWeight& packed = static_cast<const CpuLinearData*>(w.data())->packed;
    const int64_t m = x.numel() / packed.k();
    if (m * packed.k() != x.numel() || y.numel() < m * packed.n()) {
      return absl::InvalidArgumentError(absl::StrCat("cpu backend: Linear of ", x.numel(),
                                                     " inputs by a ", packed.n(), " x ", packed.k(),
                                                     " weight into ", y.numel()));
    }
    if (bias != nullptr && bias->numel() < packed.n()) {
      return absl::InvalidArgumentError(
          absl::StrCat("cpu backend: a bias of ", bias->numel(), " for ", packed.n(), " outputs"));
    }
    cpu::Gemm(x.as<float>(), m, packed, bias != nullptr ? bias->as<float>() : nullptr,
              static_cast<int>(act), y.as<float>(), gemm_scratch_);
    return absl::OkStatus();
  }

  absl::Status EmbeddingSum(const Tensor& ids, const Tensor& positions, const Tensor& word,
                            const Tensor& position, const Tensor* type, Tensor& out) override {
    const int64_t t_count = ids.numel(), h = word.dim(1);
    const int32_t* id = ids.as<int32_t>();
    const int32_t* pos = positions.as<int32_t>();
    const float* wt = word.as<float>();
    const float* pt = position.as<float>();
    const float* tt = type != nullptr ? type->as<float>() : nullptr;
    float* o = out.as<float>();
#pragma omp parallel for schedule(static)
    for (int64_t t = 0; t < t_count; ++t) {
      const float* w = wt + static_cast<int64_t>(id[t]) * h;
      const float* p = pt + static_cast<int64_t>(pos[t]) * h;
      for (int64_t j = 0; j < h; ++j) o[t * h + j] = w[j] + p[j] + (tt != nullptr ? tt[j] : 0.0f);
    }
    return absl::OkStatus();
  }

  absl::Status LayerNorm(const Tensor& x, const Tensor* residual, const Tensor& gamma,
                         const Tensor& beta, float eps, Tensor& out) override {
    const int64_t h = gamma.numel(), rows = x.numel() / h;
    const float* in = x.as<float>();
    const float* res = residual != nullptr ? residual->as<float>() : nullptr;
    const float* g = gamma.as<float>();
    const float* b = beta.as<float>();
    float* o = out.as<float>();
    const cpu::CpuKernels& k = cpu::BestCpuKernels();
#pragma omp parallel
    {
      std::vector<float> scratch(static_cast<size_t>(h));  // per thread
#pragma omp for schedule(static)
      for (int64_t r = 0; r < rows; ++r) {
        k.layer_norm_row(in + r * h, res != nullptr ? res + r * h : nullptr, g, b, eps, h,
                         scratch.data(), o + r * h);
      }
    }
    return absl::OkStatus();
  }

  absl::Status RmsNorm(const Tensor& x, const Tensor& gamma, float eps, Tensor& out) override {
    const int64_t h = gamma.numel(), rows = x.numel() / h;
    const float* in = x.as<float>();
    const float* g = gamma.as<float>();
    float* o = out.as<float>();
    // A decoder operation: on the decoder's pool (thread_pool.h), one row per chunk at least.
    cpu::Pool().ParallelFor(rows, 8, [&](int64_t r0, int64_t r1) {
      for (int64_t r = r0; r < r1; ++r) {
        double ss = 0;
        for (int64_t j = 0; j < h; ++j) ss += static_cast<double>(in[r * h + j]) * in[r * h + j];
        const float inv = static_cast<float>(1.0 / std::sqrt(ss / h + eps));
        for (int64_t j = 0; j < h; ++j) o[r * h + j] = in[r * h + j] * inv * g[j];
      }
    });
    return absl::OkStatus();
  }

  absl::Status Activate(Activation act, Tensor& x) override {
    RETURN_IF_NOT_F32(x, "Activate input");
    float* v = x.as<float>();
    const int64_t n = x.numel();
    if (act == Activation::kNone) return absl::OkStatus();
    constexpr int64_t kChunk = 4096;
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; i += kChunk) {
      cpu::BestCpuKernels().bias_act_row(v + i, nullptr, std::min(kChunk, n - i),
                                         static_cast<int>(act));
    }
    return absl::OkStatus();
  }

  absl::Status Softmax(Tensor& x) override {
    RETURN_IF_NOT_F32(x, "Softmax input");
    const int64_t cols = x.shape().back(), rows = x.numel() / cols;
    float* v = x.as<float>();
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < rows; ++r) cpu::BestCpuKernels().softmax_row(v + r * cols, cols, 1.0f);
    return absl::OkStatus();
  }

  absl::Status Attention(const Tensor& qkv, const Tensor& /*offsets*/,
                         absl::Span<const int32_t> host_offsets, int heads, int head_dim,
                         Tensor& out) override {
    RETURN_IF_NOT_F32(qkv, "Attention input");
    const int64_t hidden = static_cast<int64_t>(heads) * head_dim, stride = 3 * hidden;
    const int64_t seqs = static_cast<int64_t>(host_offsets.size()) - 1;
    const float scale = 1.0f / std::sqrt(static_cast<float>(head_dim));
    const float* base = qkv.as<float>();
    float* o = out.as<float>();
    const cpu::GemmKernel& gemm = *cpu::BestGemmKernel(cpu::GemmPrecision::kF32);
    const cpu::CpuKernels& rows = cpu::BestCpuKernels();
#pragma omp parallel
    {
      cpu::HeadAttention head(gemm, rows);  // scratch per thread
#pragma omp for schedule(dynamic)
      for (int64_t job = 0; job < seqs * heads; ++job) {
        const int64_t s = job / heads, h = job % heads;
        const int64_t begin = host_offsets[s], len = host_offsets[s + 1] - begin;
        if (len <= 0) continue;
        head.Run(base + begin * stride + h * head_dim, len, head_dim, stride, hidden, scale,
                 o + begin * hidden + h * head_dim, hidden);
      }
    }
    return absl::OkStatus();
  }

  absl::Status Pool(const Tensor& x, const Tensor& /*offsets*/,
                    absl::Span<const int32_t> host_offsets, Pooling mode, Tensor& out) override {
    RETURN_IF_NOT_F32(x, "Pool input");
    const int64_t h = x.shape().back();
    const int64_t seqs = static_cast<int64_t>(host_offsets.size()) - 1;
    const float* in = x.as<float>();
    float* o = out.as<float>();
#pragma omp parallel for schedule(static)
    for (int64_t s = 0; s < seqs; ++s) {
      const int64_t begin = host_offsets[s], len = host_offsets[s + 1] - begin;
      float* dst = o + s * h;
      if (len <= 0) {
        std::fill_n(dst, h, 0.0f);
        continue;
      }
      if (mode == Pooling::kCls) {
        std::copy_n(in + begin * h, h, dst);
        continue;
      }
      for (int64_t j = 0; j < h; ++j) {
        double sum = 0;
        for (int64_t t = 0; t < len; ++t) sum += in[(begin + t) * h + j];
        dst[j] = static_cast<float>(sum / len);
      }
    }
    return absl::OkStatus();
  }

  absl::Status L2Normalize(Tensor& x) override {
    RETURN_IF_NOT_F32(x, "L2Normalize input");
    const int64_t cols = x.shape().back(), rows = x.numel() / cols;
    float* v = x.as<float>();
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < rows; ++r) {
      double ss = 0;
      for (int64_t j = 0; j < cols; ++j)
        ss += static_cast<double>(v[r * cols + j]) * v[r * cols + j];
      if (ss == 0) continue;
      // As torch.nn.functional.normalize: divide by max(norm, 1e-12).
      const float inv = static_cast<float>(1.0 / std::max(std::sqrt(ss), 1e-12));
      for (int64_t j = 0; j < cols; ++j) v[r * cols + j] *= inv;
    }
    return absl::OkStatus();
  }

  absl::StatusOr<LinearWeight> PrepareQuantizedLinear(GgmlType type, const void* rows, int64_t n,
                                                      int64_t k, bool int8_activations) override {
    ASSIGN_OR_RETURN(cpu::QuantMatrix m,
                     cpu::QuantMatrix::Copy(type, rows, n, k, int8_activations));
    std::string path = absl::StrCat(GgmlTypeName(type), " blocks unpacked in the product (",
                                    cpu::BestQuantKernels().name, ")");
    if (m.int8_activations()) {
      absl::StrAppend(&path, ", decoding with int8 activations (", cpu::FastQ8DotKernels()->name,
                      ")");
    }
    return LinearWeight(n, k, std::move(path), Tensor(),
                        std::make_unique<CpuQuantData>(std::move(m)));
  }

  absl::Status GatherRows(const LinearWeight& table, const Tensor& ids, Tensor& out) override {
    RETURN_IF_NOT_F32(out, "GatherRows output");
    const auto* q = dynamic_cast<const CpuQuantData*>(table.data());
    if (q == nullptr || ids.dtype() != DType::kI32 || out.numel() < ids.numel() * q->matrix.k()) {
      return absl::InvalidArgumentError(
          "cpu backend: GatherRows needs a quantised table, int32 "
          "ids and room for their rows");
    }
    const cpu::QuantKernels& qk = cpu::BestQuantKernels();
    const int32_t* id = ids.as<int32_t>();
    const int64_t k = q->matrix.k();
    for (int64_t t = 0; t < ids.numel(); ++t) {
      if (id[t] < 0 || id[t] >= q->matrix.n()) {
        return absl::InvalidArgumentError(
            absl::StrCat("cpu backend: row ", id[t], " of a ", q->matrix.n(), "-row table"));
      }
      qk.dequantize_row(q->matrix.type(), q->matrix.row(id[t]), k, out.as<float>() + t * k);
    }
    return absl::OkStatus();
  }

  absl::Status Add(Tensor& x, const Tensor& y) override { return Elementwise(x, y, false); }
  absl::Status Multiply(Tensor& x, const Tensor& y) override { return Elementwise(x, y, true); }

  absl::Status Rope(Tensor& x, int heads, int head_dim, absl::Span<const int32_t> positions,
                    float theta, RopeStyle style) override {
    RETURN_IF_NOT_F32(x, "Rope input");
    const int64_t width = static_cast<int64_t>(heads) * head_dim;
    const auto rows = static_cast<int64_t>(positions.size());
    if (heads < 1 || head_dim < 2 || head_dim % 2 != 0 || rows * width > x.numel()) {
      return absl::InvalidArgumentError("cpu backend: Rope shape does not fit its tensor");
    }
    const int half = head_dim / 2;
    int32_t top = -1;
    bool in_table_range = true;
    for (int32_t p : positions) {
      top = std::max(top, p);
      in_table_range = in_table_range && p >= 0 && p < kRopeTablePositions;
    }
    // One position outside the table sends the whole call to the per-row path.
    const float* table = in_table_range ? RopeAngles(theta, head_dim, top) : nullptr;
    std::vector<double> inv_freq;
    if (table == nullptr) inv_freq = RopeFrequencies(theta, head_dim);
    float* v = x.as<float>();
    cpu::Pool().ParallelFor(rows, 16, [&](int64_t t0, int64_t t1) {
      std::vector<float> direct;
      for (int64_t t = t0; t < t1; ++t) {
        const int32_t pos = positions[static_cast<size_t>(t)];
        const float* cs = nullptr;  // cos, sin of pair i at cs[2i], cs[2i + 1]
        if (table != nullptr) {
          cs = table + static_cast<int64_t>(pos) * head_dim;
        } else {
          direct.resize(static_cast<size_t>(head_dim));
          RopeRow(inv_freq, pos, direct.data());
          cs = direct.data();
        }
        for (int h = 0; h < heads; ++h) {
          float* r = v + t * width + static_cast<int64_t>(h) * head_dim;
          for (int i = 0; i < half; ++i) {
            const int a = style == RopeStyle::kAdjacent ? 2 * i : i;
            const int b = style == RopeStyle::kAdjacent ? 2 * i + 1 : i + half;
            const float x0 = r[a], x1 = r[b], c = cs[2 * i], s = cs[2 * i + 1];
            r[a] = x0 * c - x1 * s;
            r[b] = x0 * s + x1 * c;
          }
        }
      }
    });
    return absl::OkStatus();
  }

  absl::Status CopyRows(const Tensor& src, int64_t src_row, int64_t rows, Tensor& dst,
                        int64_t dst_row) override {
    const int64_t width = src.shape().back();
    if (dst.shape().back() != width || src.dtype() != dst.dtype() || src_row < 0 || rows < 0 ||
        (src_row + rows) * width > src.numel() || dst_row < 0 ||
        (dst_row + rows) * width > dst.numel()) {
      return absl::InvalidArgumentError("cpu backend: CopyRows does not fit its tensors");
    }
    const auto row_bytes = static_cast<int64_t>(DTypeSize(src.dtype())) * width;
    std::memcpy(static_cast<char*>(dst.data()) + dst_row * row_bytes,
                static_cast<const char*>(src.data()) + src_row * row_bytes,
                static_cast<size_t>(rows * row_bytes));
    return absl::OkStatus();
  }

  absl::Status CachedAttention(const Tensor& q, absl::Span<const AttentionRow> rows, int heads,
                               int kv_heads, int head_dim, Tensor& out) override {
    RETURN_IF_NOT_F32(q, "CachedAttention query");
    const int64_t width = static_cast<int64_t>(heads) * head_dim;
    const int64_t kv_width = static_cast<int64_t>(kv_heads) * head_dim;
    const auto n = static_cast<int64_t>(rows.size());
    if (kv_heads < 1 || heads % kv_heads != 0 || n * width > q.numel() || n * width > out.numel()) {
      return absl::InvalidArgumentError("cpu backend: CachedAttention shapes do not fit");
    }
    for (const AttentionRow& r : rows) {
      if (r.k == nullptr || r.v == nullptr || r.length < 1 || r.length * kv_width > r.k->numel() ||
          r.length * kv_width > r.v->numel()) {
        return absl::InvalidArgumentError("cpu backend: a CachedAttention row's cache is short");
      }
    }
    const float scale = 1.0f / std::sqrt(static_cast<float>(head_dim));
    const int group = heads / kv_heads;
    const float* qv = q.as<float>();
    float* out_data = out.as<float>();
    const cpu::CpuKernels& kern = cpu::BestCpuKernels();
    // Flash-decoding: the work is cut into pieces, each a set of query rows sharing one kv head
    // against one stretch of its cache, so a key and value row is read once for all of them
    // (attend_partial); the pieces' partials are combined per query row and head.
    //  - A decoding row: its group of query heads, the cache cut into stretches so that even one
    //    long sequence keeps every thread busy.
    //  - A prompt (rows of one sequence whose lengths grow: consecutive tokens, or the scattered
    //    tokens Decoder::Assemble recomputes): blocks of up to kPromptBlock rows, spread over at
    //    most kMaxBlockSpread positions, share the keys before the block's first row in one piece
    //    (a block's rows read them once between them); each later row's keys past those are a
    //    small piece of its own (the triangle, for consecutive rows).
    struct Piece {
      int64_t t0, rows;  // query rows t0 .. t0 + rows - 1 (all of them, or one)
      int64_t kvh, begin, end;
      size_t slot;  // its first partial (one per query row and head of the group)
    };
    constexpr int64_t kPromptBlock = 16;
    constexpr int64_t kMaxBlockSpread = 256;
    constexpr int64_t kMaxStretch = 512;
    std::vector<Piece> pieces;
    std::vector<int64_t> dest;  // per partial: its query row and head, t * heads + h
    auto add = [&](int64_t t0, int64_t count, int64_t kvh, int64_t begin, int64_t end) {
      pieces.push_back({t0, count, kvh, begin, end, dest.size()});
      for (int64_t i = 0; i < count; ++i) {
        for (int r = 0; r < group; ++r) dest.push_back((t0 + i) * heads + kvh * group + r);
      }
    };
    const int64_t want = 4 * cpu::Pool().threads();
    for (int64_t t = 0; t < n;) {
      const AttentionRow& r0 = rows[static_cast<size_t>(t)];
      int64_t run = 1;  // rows of one prompt from t on
      while (t + run < n && run < kPromptBlock) {
        const AttentionRow& rr = rows[static_cast<size_t>(t + run)];
        if (rr.k != r0.k || rr.v != r0.v ||
            rr.length <= rows[static_cast<size_t>(t + run - 1)].length ||
            rr.length > r0.length + kMaxBlockSpread) {
          break;
        }
        ++run;
      }
      // The keys every row of the block sees, in stretches (one row: as many as balance threads).
      const int64_t shared = r0.length;
      const int64_t pieces_wanted =
          run == 1 ? std::max<int64_t>(1, std::min((shared + 63) / 64,
                                                   (want + n * kv_heads - 1) / (n * kv_heads)))
                   : (shared + kMaxStretch - 1) / kMaxStretch;
      const int64_t stretch = std::max<int64_t>(1, (shared + pieces_wanted - 1) / pieces_wanted);
      for (int64_t g = 0; g < kv_heads; ++g) {
        for (int64_t b = 0; b < shared; b += stretch)
          add(t, run, g, b, std::min(shared, b + stretch));
        for (int64_t i = 1; i < run; ++i) {  // the triangle
          add(t + i, 1, g, shared, rows[static_cast<size_t>(t + i)].length);
        }
      }
      t += run;
    }
    const size_t slots = dest.size();
    std::vector<float> m(slots), l(slots), o(slots * static_cast<size_t>(head_dim));
    // The partials of each query row and head, grouped (a counting sort of dest): first[j] ..
    // first[j + 1] in `order`.
    std::vector<size_t> first(static_cast<size_t>(n * heads) + 1, 0), order(slots);
    for (int64_t d : dest) ++first[static_cast<size_t>(d) + 1];
    for (size_t j = 1; j < first.size(); ++j) first[j] += first[j - 1];
    {
      std::vector<size_t> at(first.begin(), first.end() - 1);
      for (size_t p = 0; p < slots; ++p) order[at[static_cast<size_t>(dest[p])]++] = p;
    }
    cpu::Pool().ParallelFor(static_cast<int64_t>(pieces.size()), 1, [&](int64_t j0, int64_t j1) {
      std::vector<float> qbuf, scratch;
      for (int64_t j = j0; j < j1; ++j) {
        const Piece& pc = pieces[static_cast<size_t>(j)];
        const AttentionRow& r = rows[static_cast<size_t>(pc.t0)];
        const int64_t qrows = pc.rows * group;
        // The piece's query rows side by side: row i's heads of kv head kvh.
        qbuf.resize(static_cast<size_t>(qrows * head_dim));
        for (int64_t i = 0; i < pc.rows; ++i) {
          std::memcpy(qbuf.data() + i * group * head_dim,
                      qv + (pc.t0 + i) * width + pc.kvh * group * head_dim,
                      sizeof(float) * static_cast<size_t>(group * head_dim));
        }
        scratch.resize(static_cast<size_t>(qrows * (pc.end - pc.begin) + 16 * head_dim));
        const int64_t at = pc.begin * kv_width + pc.kvh * head_dim;
        kern.attend_partial(qbuf.data(), static_cast<int>(qrows), r.k->as<float>() + at,
                            r.v->as<float>() + at, kv_width, pc.end - pc.begin, head_dim, scale,
                            scratch.data(), m.data() + pc.slot, l.data() + pc.slot,
                            o.data() + pc.slot * static_cast<size_t>(head_dim));
      }
    });
    // Combine each query row and head's partials.
    cpu::Pool().ParallelFor(n * heads, 16, [&](int64_t j0, int64_t j1) {
      for (int64_t j = j0; j < j1; ++j) {
        const absl::Span<const size_t> ps(
            order.data() + first[static_cast<size_t>(j)],
            first[static_cast<size_t>(j) + 1] - first[static_cast<size_t>(j)]);
        float mx = -INFINITY;
        for (size_t p : ps) mx = std::max(mx, m[p]);
        float* dst = out_data + (j / heads) * width + (j % heads) * head_dim;
        std::fill(dst, dst + head_dim, 0.0f);
        double sum = 0;
        for (size_t p : ps) {
          const float w = std::exp(m[p] - mx);
          sum += static_cast<double>(w) * l[p];
          const float* op = o.data() + p * static_cast<size_t>(head_dim);
          for (int64_t d = 0; d < head_dim; ++d) dst[d] += w * op[d];
        }
        const float inv = static_cast<float>(1.0 / sum);
        for (int64_t d = 0; d < head_dim; ++d) dst[d] *= inv;
      }
    });
    return absl::OkStatus();
  }

 private:
  static absl::Status Elementwise(Tensor& x, const Tensor& y, bool multiply) {
    RETURN_IF_NOT_F32(x, "elementwise input");
    RETURN_IF_NOT_F32(y, "elementwise operand");
    if (y.numel() < x.numel()) {
      return absl::InvalidArgumentError("cpu backend: elementwise operand is smaller");
    }
    float* a = x.as<float>();
    const float* b = y.as<float>();
    const int64_t n = x.numel();
    cpu::Pool().ParallelFor(n, kParallelElements, [&](int64_t i0, int64_t i1) {
      for (int64_t i = i0; i < i1; ++i) a[i] = multiply ? a[i] * b[i] : a[i] + b[i];
    });
    return absl::OkStatus();
  }

  // RopeRow's values for positions [0, top], kept between calls (a prompt's every layer rotates
  // the same positions; a decoding step the next one): grown in steps of 1,024 positions, at
  // most kRopeTablePositions (8 MiB at head size 128). A call with a position past it computes
  // every row's angles itself.
  const float* RopeAngles(float theta, int head_dim, int32_t top) {
    if (theta != rope_theta_ || head_dim != rope_head_dim_) {
      rope_table_.clear();
      rope_theta_ = theta;
      rope_head_dim_ = head_dim;
    }
    const int64_t have = static_cast<int64_t>(rope_table_.size()) / head_dim;
    if (top >= have) {
      const int64_t want = RopeTableRows(top);
      rope_table_.resize(static_cast<size_t>(want * head_dim));
      const std::vector<double> inv_freq = RopeFrequencies(theta, head_dim);
      for (int64_t p = have; p < want; ++p) {
        RopeRow(inv_freq, static_cast<int32_t>(p), rope_table_.data() + p * head_dim);
      }
    }
    return rope_table_.data();
  }

  cpu::GemmScratch gemm_scratch_;  // one caller at a time (backend.h)
  std::vector<float> rope_table_;  // RopeAngles'
  float rope_theta_ = 0;
  int rope_head_dim_ = 0;
};

}  // namespace

std::unique_ptr<Backend> CreateCpuBackend() {
  // Issue 16's failure, made loud: generic kernels on a CPU that has vector units (only possible
  // now when STRATA_SIMD asks for them).
  static const bool warned = [] {
    const cpu::GemmKernel* f32 = cpu::BestGemmKernel(cpu::GemmPrecision::kF32);
    if (f32->level == SimdLevel::kScalar && Supports(SimdLevel::kAvx2)) {
      Log(LogLevel::kWarning,
          "the CPU backend's GEMM runs its generic kernel (%s) on a CPU with AVX2%s: embedding "
          "runs at a fraction of its speed; unset STRATA_SIMD",
          f32->name, Supports(SimdLevel::kAvx512) ? " and AVX-512" : "");
      return true;
    }
    return false;
  }();
  (void)warned;
  return std::make_unique<CpuBackend>();
}

}  // namespace strata::gpu
