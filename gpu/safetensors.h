// Read-only access to a safetensors file (Hugging Face's weight format): an 8-byte little-endian
// header length, a JSON header naming each tensor's dtype, shape and byte range, then the data.
// The file is mmap'ed; tensors are views into the mapping (no copies).
#ifndef STRATA_GPU_SAFETENSORS_H_
#define STRATA_GPU_SAFETENSORS_H_

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "gpu/dtype.h"

namespace strata::gpu {

// A tensor inside the mapping. `data` stays valid while the SafetensorsFile lives.
struct TensorView {
  std::string name;
  DType dtype = DType::kF32;
  std::vector<int64_t> shape;
  const void* data = nullptr;
  size_t bytes = 0;

  [[nodiscard]] int64_t numel() const;
};

class SafetensorsFile final {
 public:
  // Maps `path` and parses its header. DataLoss for a truncated file, a malformed header, or a
  // tensor whose byte range falls outside the data or disagrees with its dtype and shape.
  static absl::StatusOr<std::unique_ptr<SafetensorsFile>> Open(const std::string& path);
  ~SafetensorsFile();
  SafetensorsFile(const SafetensorsFile&) = delete;
  SafetensorsFile& operator=(const SafetensorsFile&) = delete;

  // The tensor `name`, checked against `shape` (when not empty). NotFound names the missing tensor
  // and the file; InvalidArgument for a wrong shape or a dtype the engine does not read (the
  // engine reads F32, F16 and BF16; other tensors, e.g. BERT's I64 position_ids, are listed but
  // refused only when asked for).
  [[nodiscard]] absl::StatusOr<TensorView> Get(const std::string& name,
                                               absl::Span<const int64_t> shape = {}) const;
  [[nodiscard]] bool Contains(const std::string& name) const;
  [[nodiscard]] std::vector<std::string> Names() const;
  [[nodiscard]] const std::string& path() const { return path_; }

 private:
  struct Entry {
    std::string dtype;  // as written in the header ("F32", "I64", ...)
    std::vector<int64_t> shape;
    uint64_t begin = 0, end = 0;  // relative to the data section
  };
  SafetensorsFile() = default;

  std::string path_;
  void* map_ = nullptr;
  size_t map_bytes_ = 0;
  const uint8_t* data_ = nullptr;
  std::map<std::string, Entry> entries_;
};

// A tensor to write: float values stored as `dtype`.
struct TensorToWrite {
  std::string name;
  DType dtype = DType::kF32;
  std::vector<int64_t> shape;
  std::vector<float> values;  // numel values, row-major
};

// Writes a safetensors file (atomically). Used by tests to build small models on the fly.
[[nodiscard]] absl::Status WriteSafetensors(const std::string& path,
                                            const std::vector<TensorToWrite>& tensors);

}  // namespace strata::gpu

#endif  // STRATA_GPU_SAFETENSORS_H_
