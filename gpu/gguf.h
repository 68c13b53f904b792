// Read-only access to a GGUF file (llama.cpp's model format, versions 2 and 3): a header, typed
// metadata (key -> value), tensor descriptions, then the tensor data, aligned. All integers are
// little endian. The file is mmap'ed; tensors are views into the mapping.
//
// Every count, length and range in the file is checked against the file's size before it is used:
// a truncated or hostile file is DataLoss naming what is wrong, never a read out of bounds or an
// allocation the file's size does not justify.
#ifndef STRATA_GPU_GGUF_H_
#define STRATA_GPU_GGUF_H_

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <variant>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "gpu/ggml_type.h"

namespace strata::gpu {

// A metadata value. Scalars keep their kind (unsigned, signed, float, bool, string); arrays are
// either strings or numbers (every numeric element type read as double and as int64).
struct GgufValue {
  enum class Kind { kUint, kInt, kFloat, kBool, kString, kStringArray, kNumberArray };
  Kind kind = Kind::kUint;
  uint64_t u = 0;
  int64_t i = 0;
  double f = 0;
  bool b = false;
  std::string s;
  std::vector<std::string> strings;
  std::vector<double> numbers;
};

struct GgufTensor {
  std::string name;
  GgmlType type = GgmlType::kF32;
  // ggml order: shape[0] is the row length (contiguous), shape[1] the number of rows, ...
  std::vector<int64_t> shape;
  const uint8_t* data = nullptr;  // into the mapping
  size_t bytes = 0;

  [[nodiscard]] int64_t row_length() const { return shape.empty() ? 0 : shape[0]; }
  [[nodiscard]] int64_t rows() const;  // product of shape[1..]
};

class GgufFile final {
 public:
  // Maps and parses `path`. NotFound for a missing file; DataLoss for a file that is not GGUF, is
  // truncated, or describes tensors outside itself; InvalidArgument for a GGUF version other than
  // 2 or 3. Tensors of types Strata does not read are listed and refused only by Tensor().
  static absl::StatusOr<std::unique_ptr<GgufFile>> Open(const std::string& path);
  // The same over bytes the caller keeps alive (fuzzing, tests); `name` appears in errors.
  static absl::StatusOr<std::unique_ptr<GgufFile>> Parse(const uint8_t* data, size_t size,
                                                         const std::string& name);
  ~GgufFile();
  GgufFile(const GgufFile&) = delete;
  GgufFile& operator=(const GgufFile&) = delete;

  [[nodiscard]] const std::string& path() const { return path_; }
  [[nodiscard]] uint32_t version() const { return version_; }
  [[nodiscard]] const std::map<std::string, GgufValue>& metadata() const { return metadata_; }
  [[nodiscard]] const GgufValue* Find(absl::string_view key) const;
  // Typed getters: NotFound names a missing key, InvalidArgument one of another kind.
  [[nodiscard]] absl::StatusOr<std::string> GetString(absl::string_view key) const;
  [[nodiscard]] absl::StatusOr<int64_t> GetInt(absl::string_view key) const;  // uint or int
  [[nodiscard]] absl::StatusOr<double> GetFloat(absl::string_view key) const;
  [[nodiscard]] absl::StatusOr<const std::vector<std::string>*> GetStrings(
      absl::string_view key) const;
  [[nodiscard]] absl::StatusOr<const std::vector<double>*> GetNumbers(absl::string_view key) const;

  // The tensor `name`. NotFound names the tensor and file; InvalidArgument for a type Strata
  // does not read (named, with the ones it does).
  [[nodiscard]] absl::StatusOr<GgufTensor> Tensor(const std::string& name) const;
  [[nodiscard]] bool Contains(const std::string& name) const { return tensors_.count(name) > 0; }
  [[nodiscard]] std::vector<std::string> TensorNames() const;
  [[nodiscard]] size_t size() const { return size_; }

 private:
  struct Entry {
    uint32_t type_code = 0;
    std::vector<int64_t> shape;
    uint64_t offset = 0;  // from the data section
    uint64_t bytes = 0;   // 0 for a type we do not read
  };
  GgufFile() = default;
  absl::Status ParseAll();

  std::string path_;
  void* map_ = nullptr;
  const uint8_t* base_ = nullptr;
  size_t size_ = 0;
  uint64_t data_offset_ = 0;  // start of the data section
  uint32_t version_ = 0;
  std::map<std::string, GgufValue> metadata_;
  std::map<std::string, Entry> tensors_;
};

// A GGUF file to write (tests build tiny models with it).
struct GgufTensorToWrite {
  std::string name;
  GgmlType type = GgmlType::kF32;
  std::vector<int64_t> shape;  // ggml order
  std::string bytes;           // GgmlRowBytes(type, shape[0]) * rows
};
using GgufMetadataValue = std::variant<uint32_t, int32_t, float, bool, std::string,
                                       std::vector<std::string>, std::vector<int32_t>>;
// Writes a version-3 file with 32-byte alignment (atomically). InvalidArgument when a tensor's
// bytes do not match its type and shape.
[[nodiscard]] absl::Status WriteGguf(const std::string& path,
                                     const std::map<std::string, GgufMetadataValue>& metadata,
                                     const std::vector<GgufTensorToWrite>& tensors);

}  // namespace strata::gpu

#endif  // STRATA_GPU_GGUF_H_
