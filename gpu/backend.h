// The engine's compute layer: one interface, two backends. The CUDA backend runs on one device
// with one stream (cuBLAS GEMMs with fp32 accumulation, Strata's own kernels for the rest); the
// CPU backend runs the same operations with Strata's own GEMM (gpu/internal/gemm.h) and OpenMP
// loops, and in f32 is the reference the CUDA kernels are tested against.
//
// Shapes are row-major. Token-level tensors are *packed*: the tokens of a batch's sequences lie
// one after another with no padding, and a sequence table `offsets` (B + 1 int32, offsets[0] = 0,
// offsets[b + 1] - offsets[b] = length of sequence b) says where each sequence lies. A token
// attends only to the tokens of its own sequence: the padding mask, without the padding.
//
// Operations on the CUDA backend are asynchronous (enqueued on the backend's stream); the
// CopyToHost* calls and Synchronize() wait. The CPU backend runs each call to completion.
// Backends are not thread-safe: one caller at a time (the engine serialises through a batcher).
#ifndef STRATA_GPU_BACKEND_H_
#define STRATA_GPU_BACKEND_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/types/span.h"
#include "gpu/dtype.h"
#include "gpu/ggml_type.h"

namespace strata::gpu {

enum class BackendKind { kCpu, kCuda };
// kAuto: CUDA when this build has it and a device is present, else the CPU.
enum class BackendChoice { kAuto, kCpu, kCuda };

[[nodiscard]] absl::StatusOr<BackendChoice> ParseBackendChoice(
    absl::string_view s);  // auto|cpu|cuda

// Memory owned by a backend (host memory for the CPU, device memory for CUDA). Move-only; frees on
// destruction. A tensor must not outlive the backend that made it.
class Tensor final {
 public:
  using Free = void (*)(void*);
  Tensor() = default;
  Tensor(DType dtype, std::vector<int64_t> shape, void* data, Free free)
      : dtype_(dtype), shape_(std::move(shape)), data_(data), free_(free) {}
  ~Tensor() { Reset(); }
  Tensor(Tensor&& o) noexcept { *this = std::move(o); }
  Tensor& operator=(Tensor&& o) noexcept;
  Tensor(const Tensor&) = delete;
  Tensor& operator=(const Tensor&) = delete;

  [[nodiscard]] DType dtype() const { return dtype_; }
  [[nodiscard]] const std::vector<int64_t>& shape() const { return shape_; }
  [[nodiscard]] int64_t dim(int i) const { return shape_[static_cast<size_t>(i)]; }
  [[nodiscard]] int64_t numel() const;
  [[nodiscard]] size_t bytes() const { return static_cast<size_t>(numel()) * DTypeSize(dtype_); }
  [[nodiscard]] bool empty() const { return data_ == nullptr; }
  // Device pointer on CUDA: never dereference on the host.
  [[nodiscard]] void* data() const { return data_; }
  template <typename T>
  [[nodiscard]] T* as() const {
    return static_cast<T*>(data_);
  }
  // Re-labels the shape (same or smaller element count): lets a workspace serve smaller batches.
  void Reshape(std::vector<int64_t> shape);
  [[nodiscard]] int64_t capacity() const { return capacity_ > 0 ? capacity_ : numel(); }

 private:
  void Reset();
  DType dtype_ = DType::kF32;
  std::vector<int64_t> shape_;
  void* data_ = nullptr;
  Free free_ = nullptr;
  int64_t capacity_ = 0;  // elements allocated, set on the first Reshape
};

enum class Activation { kNone, kGelu, kSilu };

// How a Linear layer multiplies. kNative: in the tensors' own dtype with fp32 sums (F32 on the
// CPU; F16/BF16 on CUDA when the encoder runs in them). kBF16: inputs and weights rounded to
// bfloat16, fp32 sums. kInt8: activations quantised per row and weights per output column to
// int8, int32 sums, scaled back to fp32. The CPU backend runs kBF16 and kInt8 only where the CPU
// has the instructions (AMX, AVX512-BF16, AVX512-VNNI); CUDA runs kNative only.
enum class MatmulPrecision { kNative, kBF16, kInt8 };
[[nodiscard]] absl::string_view MatmulPrecisionName(MatmulPrecision p);  // "f32", "bf16", "int8"
// A command-line choice: "auto" (or empty: nullopt, the backend's default), "f32" (or "native"),
// "bf16" or "int8"; InvalidArgument otherwise.
[[nodiscard]] absl::StatusOr<std::optional<MatmulPrecision>> ParseMatmulPrecision(
    absl::string_view s);

// A Linear layer's weight [n, k] as a backend prepared it (Backend::PrepareLinear): packed panels
// on the CPU, the loaded tensor on CUDA. Move-only; must not outlive its backend, and only the
// backend that made it may use it.
class LinearWeight final {
 public:
  // The backend's own form of the weight.
  struct Data {
    virtual ~Data() = default;
  };
  LinearWeight() = default;
  LinearWeight(int64_t out_features, int64_t in_features, std::string gemm_path, Tensor tensor,
               std::unique_ptr<Data> data)
      : n_(out_features),
        k_(in_features),
        gemm_path_(std::move(gemm_path)),
        tensor_(std::move(tensor)),
        data_(std::move(data)) {}

  [[nodiscard]] int64_t out_features() const { return n_; }
  [[nodiscard]] int64_t in_features() const { return k_; }
  // The kernel that multiplies by it, e.g. "bf16 amx (32x32 tiles)" or "cublas F16".
  [[nodiscard]] const std::string& gemm_path() const { return gemm_path_; }
  [[nodiscard]] const Tensor& tensor() const { return tensor_; }  // empty when packed
  [[nodiscard]] const Data* data() const { return data_.get(); }

 private:
  int64_t n_ = 0, k_ = 0;
  std::string gemm_path_;
  Tensor tensor_;
  std::unique_ptr<Data> data_;
};
enum class Pooling { kMean, kCls };
// How rotary position embedding pairs a head's dimensions: kAdjacent rotates (x[2i], x[2i+1]), as
// llama.cpp stores Llama's Q/K weights in GGUF; kHalves rotates (x[i], x[i + d/2]), as Hugging
// Face's checkpoints and GGUF's Qwen2 do. Pair i turns by position * theta^(-2i/d).
enum class RopeStyle { kAdjacent, kHalves };

class Backend {
 public:
  virtual ~Backend() = default;
  [[nodiscard]] virtual BackendKind kind() const = 0;
  // e.g. "cpu (2 OpenMP threads, avx512 row kernels)" or "cuda:0 (NVIDIA H100 80GB HBM3, sm_90)".
  [[nodiscard]] virtual std::string name() const = 0;
  // The floating type activations should use here: F32 on the CPU, F16 on CUDA.
  [[nodiscard]] virtual DType preferred_dtype() const = 0;
  [[nodiscard]] virtual bool Supports(DType dtype) const = 0;

  // Uninitialised memory for `shape` elements of `dtype`. ResourceExhausted when out of memory.
  [[nodiscard]] virtual absl::StatusOr<Tensor> Allocate(DType dtype,
                                                        std::vector<int64_t> shape) = 0;
  // Copies n host values of type `src_dtype` into elements [offset, offset + n) of `dst`,
  // converting floats to dst's type (ints are copied as they are; an int/float mix is
  // InvalidArgument). The source may be an mmap'ed file: nothing is staged when types agree.
  [[nodiscard]] virtual absl::Status CopyFromHost(const void* src, DType src_dtype, size_t n,
                                                  Tensor& dst, size_t offset) = 0;
  // Waits for queued work, then copies the first n elements of `src` to host floats.
  [[nodiscard]] virtual absl::Status CopyToHostFloat(const Tensor& src, size_t n, float* dst) = 0;
  [[nodiscard]] virtual absl::Status Synchronize() = 0;

  // Takes a Linear weight w [n, k] (from Allocate + CopyFromHost) and prepares it for Linear() in
  // `precision` (the CPU packs it once into its GEMM's panels and frees w). FailedPrecondition
  // naming the reason when this backend cannot multiply in that precision on this machine.
  [[nodiscard]] virtual absl::StatusOr<LinearWeight> PrepareLinear(Tensor w,
                                                                   MatmulPrecision precision) = 0;
  // OK when PrepareLinear would accept `precision` here; else FailedPrecondition saying why and
  // what to do instead.
  [[nodiscard]] virtual absl::Status CheckMatmul(MatmulPrecision precision) const = 0;
  // The precision an encoder uses when not told: the fastest one measured to keep the reference's
  // embeddings (bench/RESULTS.md, issue 16).
  [[nodiscard]] virtual MatmulPrecision DefaultMatmul() const = 0;
  // y[m, n] = act(x[m, k] · w[n, k]ᵀ + bias[n]); bias may be null. x and y share the activations'
  // dtype; the products accumulate in fp32 (int32 under kInt8).
  [[nodiscard]] virtual absl::Status Linear(const Tensor& x, const LinearWeight& w,
                                            const Tensor* bias, Activation act, Tensor& y) = 0;
  // out[t] = word[ids[t]] + position[positions[t]] + type[0] (type may be null). ids and positions
  // are int32 [T]; ids must be < rows of `word` (checked by the caller, who owns the tokenizer).
  [[nodiscard]] virtual absl::Status EmbeddingSum(const Tensor& ids, const Tensor& positions,
                                                  const Tensor& word, const Tensor& position,
                                                  const Tensor* type, Tensor& out) = 0;
  // out = LayerNorm(x + residual) over the last dimension, with gamma and beta (fp32 statistics).
  // residual may be null; out may alias x.
  [[nodiscard]] virtual absl::Status LayerNorm(const Tensor& x, const Tensor* residual,
                                               const Tensor& gamma, const Tensor& beta, float eps,
                                               Tensor& out) = 0;
  // out = x / rms(x) * gamma over the last dimension; out may alias x.
  [[nodiscard]] virtual absl::Status RmsNorm(const Tensor& x, const Tensor& gamma, float eps,
                                             Tensor& out) = 0;
  // In place: GELU (erf form) or SiLU of every element.
  [[nodiscard]] virtual absl::Status Activate(Activation act, Tensor& x) = 0;
  // In place: softmax over the last dimension of every row.
  [[nodiscard]] virtual absl::Status Softmax(Tensor& x) = 0;
  // Bidirectional multi-head attention over packed sequences. qkv is [T, 3 * heads * head_dim]
  // (all queries, then all keys, then all values of a token); out is [T, heads * head_dim].
  // `offsets` (int32 [B + 1]) lives on the backend; `host_offsets` is the same table on the host
  // (for launch planning). Scores are scaled by 1/sqrt(head_dim).
  [[nodiscard]] virtual absl::Status Attention(const Tensor& qkv, const Tensor& offsets,
                                               absl::Span<const int32_t> host_offsets, int heads,
                                               int head_dim, Tensor& out) = 0;
  // out[b] = mean of the tokens of sequence b, or its first token (CLS); x is [T, H], out [B, H].
  [[nodiscard]] virtual absl::Status Pool(const Tensor& x, const Tensor& offsets,
                                          absl::Span<const int32_t> host_offsets, Pooling mode,
                                          Tensor& out) = 0;
  // In place: every row scaled to unit L2 norm (a zero row stays zero).
  [[nodiscard]] virtual absl::Status L2Normalize(Tensor& x) = 0;

  // ---- Decoder operations, in F32: both backends run them (a backend without them returns
  // Unimplemented, which the decoder reports at load). ----

  // Takes a weight of n rows of k values stored in a GGUF type (n * GgmlRowBytes(type, k) bytes
  // at `rows`, copied) and prepares it for Linear() and GatherRows(): the CPU keeps the blocks and
  // dequantises them on the fly inside its products (fp32 sums). int8_activations: products
  // of a few rows (decoding) may quantise their activations to int8 per 32 values and use
  // integer block products, as llama.cpp does (faster, approximate; the CPU does so for Q8_0,
  // Q4_0 and Q4_1 where it has AVX512-VNNI). InvalidArgument when k is not a whole number of the
  // type's blocks.
  [[nodiscard]] virtual absl::StatusOr<LinearWeight> PrepareQuantizedLinear(
      GgmlType type, const void* rows, int64_t n, int64_t k, bool int8_activations = false);
  // out[t] = row ids[t] of a prepared quantised weight (token embeddings), as floats; ids int32
  // [T] on the backend, each < table.out_features() (checked by the caller).
  [[nodiscard]] virtual absl::Status GatherRows(const LinearWeight& table, const Tensor& ids,
                                                Tensor& out);
  // In place, elementwise over x's elements: x += y, or x *= y (y has at least as many).
  [[nodiscard]] virtual absl::Status Add(Tensor& x, const Tensor& y);
  [[nodiscard]] virtual absl::Status Multiply(Tensor& x, const Tensor& y);
  // In place: rotary position embedding of the first positions.size() rows of x
  // [rows, heads * head_dim], row t at positions[t] (host memory).
  [[nodiscard]] virtual absl::Status Rope(Tensor& x, int heads, int head_dim,
                                          absl::Span<const int32_t> positions, float theta,
                                          RopeStyle style);
  // Copies rows [src_row, src_row + rows) of src into dst from row dst_row; both have rows of
  // the same width and dtype. InvalidArgument when they do not fit.
  [[nodiscard]] virtual absl::Status CopyRows(const Tensor& src, int64_t src_row, int64_t rows,
                                              Tensor& dst, int64_t dst_row);
  // Row r of src into row dests[r].row of *dests[r].dst (tensors of src's width and dtype), for
  // every r < dests.size(): a batch's keys and values into each row's own cache. The default
  // copies run by run of consecutive rows into one tensor through CopyRows; a backend that pays
  // per copy does it in one go. InvalidArgument, before anything is written, when a row does not
  // fit.
  struct RowDestination {
    Tensor* dst = nullptr;
    int64_t row = 0;
  };
  [[nodiscard]] virtual absl::Status ScatterRows(const Tensor& src,
                                                 absl::Span<const RowDestination> dests);
  // Attention of query rows against key/value caches with grouped heads: q is
  // [rows, heads * head_dim]; query t reads the first rows[t].length rows of its own caches
  // rows[t].k and rows[t].v ([capacity, kv_heads * head_dim], keys already rotated), so a batch
  // may mix sequences, and causality is a length. Query head h reads kv head
  // h / (heads / kv_heads); scores are scaled by 1/sqrt(head_dim). out is [rows, heads * head_dim].
  struct AttentionRow {
    const Tensor* k = nullptr;
    const Tensor* v = nullptr;
    int64_t length = 0;
  };
  [[nodiscard]] virtual absl::Status CachedAttention(const Tensor& q,
                                                     absl::Span<const AttentionRow> rows, int heads,
                                                     int kv_heads, int head_dim, Tensor& out);
};

// The Unimplemented of a backend without decoder operations.
inline absl::Status NoDecoderOp(const Backend& b, absl::string_view op) {
  return absl::UnimplementedError(absl::StrCat(b.name(), " does not run decoder operations yet (",
                                               op, "); use the CPU backend"));
}
inline absl::StatusOr<LinearWeight> Backend::PrepareQuantizedLinear(GgmlType, const void*, int64_t,
                                                                    int64_t, bool) {
  return NoDecoderOp(*this, "PrepareQuantizedLinear");
}
inline absl::Status Backend::GatherRows(const LinearWeight&, const Tensor&, Tensor&) {
  return NoDecoderOp(*this, "GatherRows");
}
inline absl::Status Backend::Add(Tensor&, const Tensor&) { return NoDecoderOp(*this, "Add"); }
inline absl::Status Backend::Multiply(Tensor&, const Tensor&) {
  return NoDecoderOp(*this, "Multiply");
}
inline absl::Status Backend::Rope(Tensor&, int, int, absl::Span<const int32_t>, float, RopeStyle) {
  return NoDecoderOp(*this, "Rope");
}
inline absl::Status Backend::CopyRows(const Tensor&, int64_t, int64_t, Tensor&, int64_t) {
  return NoDecoderOp(*this, "CopyRows");
}
inline absl::Status Backend::ScatterRows(const Tensor& src,
                                         absl::Span<const RowDestination> dests) {
  const int64_t width = src.shape().empty() ? 0 : src.shape().back();
  if (static_cast<int64_t>(dests.size()) * width > src.numel()) {
    return absl::InvalidArgumentError("ScatterRows has more rows than its source");
  }
  for (const RowDestination& d : dests) {
    if (d.dst == nullptr || d.dst->dtype() != src.dtype() || d.dst->shape().empty() ||
        d.dst->shape().back() != width || d.row < 0 || (d.row + 1) * width > d.dst->numel()) {
      return absl::InvalidArgumentError("a ScatterRows row does not fit its destination");
    }
  }
  for (size_t r = 0; r < dests.size();) {
    size_t e = r + 1;
    while (e < dests.size() && dests[e].dst == dests[r].dst &&
           dests[e].row == dests[e - 1].row + 1) {
      ++e;
    }
    const absl::Status copied = CopyRows(src, static_cast<int64_t>(r), static_cast<int64_t>(e - r),
                                         *dests[r].dst, dests[r].row);
    if (!copied.ok()) return copied;
    r = e;
  }
  return absl::OkStatus();
}
inline absl::Status Backend::CachedAttention(const Tensor&, absl::Span<const AttentionRow>, int,
                                             int, int, Tensor&) {
  return NoDecoderOp(*this, "CachedAttention");
}

// For backends: InvalidArgument when CopyFromHost's arguments do not fit `dst` (range past its
// capacity, or an int/float mix).
[[nodiscard]] absl::Status CheckCopyFromHost(DType src_dtype, size_t n, const Tensor& dst,
                                             size_t offset);

// The backend for `choice`, logged at INFO. kCuda on a machine (or build) without a usable device
// is FailedPrecondition saying why; kAuto falls back to the CPU and logs the reason.
[[nodiscard]] absl::StatusOr<std::unique_ptr<Backend>> CreateBackend(BackendChoice choice,
                                                                     int cuda_device = 0);
[[nodiscard]] std::unique_ptr<Backend> CreateCpuBackend();

}  // namespace strata::gpu

#endif  // STRATA_GPU_BACKEND_H_
