// Tensor's out-of-line members: kept apart from the backends so that the CUDA module
// (libstrata_cuda.so) links them without the rest of the engine.
#include "absl/strings/str_cat.h"
#include "gpu/backend.h"

namespace strata::gpu {

Tensor& Tensor::operator=(Tensor&& o) noexcept {
  if (this != &o) {
    Reset();
    dtype_ = o.dtype_;
    shape_ = std::move(o.shape_);
    data_ = o.data_;
    free_ = o.free_;
    capacity_ = o.capacity_;
    o.data_ = nullptr;
    o.free_ = nullptr;
    o.capacity_ = 0;
    o.shape_.clear();
  }
  return *this;
}

void Tensor::Reset() {
  if (data_ != nullptr && free_ != nullptr) free_(data_);
  data_ = nullptr;
  free_ = nullptr;
}

int64_t Tensor::numel() const {
  int64_t n = 1;
  for (int64_t d : shape_) n *= d;
  return n;
}

void Tensor::Reshape(std::vector<int64_t> shape) {
  if (capacity_ == 0) capacity_ = numel();
  shape_ = std::move(shape);
}

absl::Status CheckCopyFromHost(DType src_dtype, size_t n, const Tensor& dst, size_t offset) {
  if (offset + n > static_cast<size_t>(dst.capacity())) {
    return absl::InvalidArgumentError(absl::StrCat("CopyFromHost: elements [", offset, ", ",
                                                   offset + n, ") past the tensor's ",
                                                   dst.capacity()));
  }
  if ((src_dtype == DType::kI32) != (dst.dtype() == DType::kI32)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "CopyFromHost: cannot convert ", DTypeName(src_dtype), " to ", DTypeName(dst.dtype())));
  }
  return absl::OkStatus();
}

}  // namespace strata::gpu
