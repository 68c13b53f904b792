#include "gpu/gguf.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "storage/scoped_fd.h"
#include "storage/status_macros.h"

namespace strata::gpu {
namespace {

constexpr uint32_t kMagic = 0x46554747;  // "GGUF" read as a little-endian u32
constexpr uint64_t kDefaultAlignment = 32;
constexpr uint32_t kMaxDims = 4;

// GGUF's metadata value types.
enum ValueType : uint32_t {
  kU8 = 0,
  kI8 = 1,
  kU16 = 2,
  kI16 = 3,
  kU32 = 4,
  kI32 = 5,
  kF32 = 6,
  kBool = 7,
  kString = 8,
  kArray = 9,
  kU64 = 10,
  kI64 = 11,
  kF64 = 12,
};

// Bytes of one scalar of `type`; 0 for strings, arrays and unknown types.
size_t ScalarBytes(uint32_t type) {
  switch (type) {
    case kU8:
    case kI8:
    case kBool:
      return 1;
    case kU16:
    case kI16:
      return 2;
    case kU32:
    case kI32:
    case kF32:
      return 4;
    case kU64:
    case kI64:
    case kF64:
      return 8;
    default:
      return 0;
  }
}

// A bounds-checked little-endian cursor over the file.
class Cursor {
 public:
  Cursor(const uint8_t* data, size_t size, const std::string& name)
      : data_(data), size_(size), name_(name) {}

  [[nodiscard]] size_t pos() const { return pos_; }
  [[nodiscard]] size_t left() const { return size_ - pos_; }

  absl::Status Need(uint64_t n, absl::string_view what) const {
    if (n > left()) {
      return absl::DataLossError(absl::StrCat(name_, ": ", what, " needs ", n, " bytes at offset ",
                                              pos_, " but the file has ", left(),
                                              " left (truncated or not GGUF)"));
    }
    return absl::OkStatus();
  }
  template <typename T>
  absl::StatusOr<T> Read(absl::string_view what) {
    RETURN_IF_ERROR(Need(sizeof(T), what));
    T v;
    std::memcpy(&v, data_ + pos_, sizeof(T));
    pos_ += sizeof(T);
    return v;
  }
  absl::StatusOr<std::string> String(absl::string_view what) {
    ASSIGN_OR_RETURN(uint64_t n, Read<uint64_t>(what));
    RETURN_IF_ERROR(Need(n, what));
    std::string s(reinterpret_cast<const char*>(data_ + pos_), n);
    pos_ += n;
    return s;
  }
  absl::Status Skip(uint64_t n, absl::string_view what) {
    RETURN_IF_ERROR(Need(n, what));
    pos_ += n;
    return absl::OkStatus();
  }
  // One scalar of `type` as (u, i, f); false for a type that is not a number or bool.
  absl::Status Scalar(uint32_t type, GgufValue* v, absl::string_view what) {
    RETURN_IF_ERROR(Need(ScalarBytes(type), what));
    const uint8_t* p = data_ + pos_;
    pos_ += ScalarBytes(type);
    auto get = [p](auto t) {
      std::memcpy(&t, p, sizeof(t));
      return t;
    };
    switch (type) {
      case kU8:
        v->kind = GgufValue::Kind::kUint, v->u = get(uint8_t{});
        break;
      case kU16:
        v->kind = GgufValue::Kind::kUint, v->u = get(uint16_t{});
        break;
      case kU32:
        v->kind = GgufValue::Kind::kUint, v->u = get(uint32_t{});
        break;
      case kU64:
        v->kind = GgufValue::Kind::kUint, v->u = get(uint64_t{});
        break;
      case kI8:
        v->kind = GgufValue::Kind::kInt, v->i = get(int8_t{});
        break;
      case kI16:
        v->kind = GgufValue::Kind::kInt, v->i = get(int16_t{});
        break;
      case kI32:
        v->kind = GgufValue::Kind::kInt, v->i = get(int32_t{});
        break;
      case kI64:
        v->kind = GgufValue::Kind::kInt, v->i = get(int64_t{});
        break;
      case kF32:
        v->kind = GgufValue::Kind::kFloat, v->f = get(float{});
        break;
      case kF64:
        v->kind = GgufValue::Kind::kFloat, v->f = get(double{});
        break;
      case kBool:
        v->kind = GgufValue::Kind::kBool, v->b = get(uint8_t{}) != 0;
        break;
      default:
        return absl::DataLossError(absl::StrCat(name_, ": ", what, " has value type ", type,
                                                ", which GGUF does not define"));
    }
    if (v->kind == GgufValue::Kind::kUint) v->i = static_cast<int64_t>(v->u), v->f = v->u;
    if (v->kind == GgufValue::Kind::kInt) v->u = static_cast<uint64_t>(v->i), v->f = v->i;
    return absl::OkStatus();
  }

 private:
  const uint8_t* data_;
  size_t size_;
  size_t pos_ = 0;
  const std::string& name_;
};

// Arrays grow past this many elements as they are read: an element in memory is up to 8x its
// bytes in the file (a bool read as a double), so a count is not trusted for a reservation.
constexpr uint64_t kMaxReserve = uint64_t{1} << 18;

absl::Status ReadValue(Cursor& c, uint32_t type, GgufValue* v, const std::string& what) {
  if (type == kString) {
    ASSIGN_OR_RETURN(v->s, c.String(what));
    v->kind = GgufValue::Kind::kString;
    return absl::OkStatus();
  }
  if (type != kArray) return c.Scalar(type, v, what);
  ASSIGN_OR_RETURN(uint32_t elem, c.Read<uint32_t>(what));
  ASSIGN_OR_RETURN(uint64_t n, c.Read<uint64_t>(what));
  if (elem == kString) {
    // Each string takes at least its 8-byte length: n beyond that cannot be in the file.
    RETURN_IF_ERROR(c.Need(n > c.left() / 8 ? c.left() + 1 : n * 8, what));
    v->kind = GgufValue::Kind::kStringArray;
    v->strings.reserve(std::min<uint64_t>(n, kMaxReserve));
    for (uint64_t i = 0; i < n; ++i) {
      ASSIGN_OR_RETURN(std::string s, c.String(what));
      v->strings.push_back(std::move(s));
    }
    return absl::OkStatus();
  }
  const size_t eb = ScalarBytes(elem);
  if (eb == 0) {
    return absl::DataLossError(
        absl::StrCat(what, ": an array of value type ", elem, " (nested arrays are not read)"));
  }
  RETURN_IF_ERROR(c.Need(n > c.left() / eb ? c.left() + 1 : n * eb, what));
  v->kind = GgufValue::Kind::kNumberArray;
  v->numbers.reserve(std::min<uint64_t>(n, kMaxReserve));
  for (uint64_t i = 0; i < n; ++i) {
    GgufValue x;
    RETURN_IF_ERROR(c.Scalar(elem, &x, what));
    v->numbers.push_back(x.kind == GgufValue::Kind::kBool ? (x.b ? 1.0 : 0.0) : x.f);
  }
  return absl::OkStatus();
}

std::string ShapeString(const std::vector<int64_t>& shape) {
  return absl::StrCat("[", absl::StrJoin(shape, ", "), "]");
}

}  // namespace

int64_t GgufTensor::rows() const {
  int64_t r = 1;
  for (size_t i = 1; i < shape.size(); ++i) r *= shape[i];
  return r;
}

GgufFile::~GgufFile() {
  if (map_ != nullptr) munmap(map_, size_);
}

absl::StatusOr<std::unique_ptr<GgufFile>> GgufFile::Open(const std::string& path) {
  ASSIGN_OR_RETURN(ScopedFd fd, OpenFile(path, O_RDONLY));
  struct stat st;
  if (fstat(fd.get(), &st) != 0) return ErrnoToStatus(errno, absl::StrCat("fstat ", path));
  auto file = std::unique_ptr<GgufFile>(new GgufFile());
  file->path_ = path;
  file->size_ = static_cast<size_t>(st.st_size);
  if (file->size_ < 24) {
    return absl::DataLossError(
        absl::StrCat(path, ": ", file->size_, " bytes, too short for a GGUF file"));
  }
  file->map_ = mmap(nullptr, file->size_, PROT_READ, MAP_PRIVATE, fd.get(), 0);
  if (file->map_ == MAP_FAILED) {
    file->map_ = nullptr;
    return ErrnoToStatus(errno, absl::StrCat("mmap ", path));
  }
  file->base_ = static_cast<const uint8_t*>(file->map_);
  RETURN_IF_ERROR(file->ParseAll());
  return file;
}

absl::StatusOr<std::unique_ptr<GgufFile>> GgufFile::Parse(const uint8_t* data, size_t size,
                                                          const std::string& name) {
  auto file = std::unique_ptr<GgufFile>(new GgufFile());
  file->path_ = name;
  file->base_ = data;
  file->size_ = size;
  RETURN_IF_ERROR(file->ParseAll());
  return file;
}

absl::Status GgufFile::ParseAll() {
  Cursor c(base_, size_, path_);
  ASSIGN_OR_RETURN(uint32_t magic, c.Read<uint32_t>("the magic number"));
  if (magic != kMagic) return absl::DataLossError(absl::StrCat(path_, ": not a GGUF file"));
  ASSIGN_OR_RETURN(version_, c.Read<uint32_t>("the version"));
  if (version_ != 2 && version_ != 3) {
    return absl::InvalidArgumentError(
        absl::StrCat(path_, ": GGUF version ", version_, "; Strata reads versions 2 and 3"));
  }
  ASSIGN_OR_RETURN(uint64_t tensor_count, c.Read<uint64_t>("the tensor count"));
  ASSIGN_OR_RETURN(uint64_t kv_count, c.Read<uint64_t>("the metadata count"));
  // A key-value pair takes at least 12 bytes and a tensor description at least 24.
  if (kv_count > c.left() / 12 || tensor_count > c.left() / 24) {
    return absl::DataLossError(absl::StrCat(path_, ": ", kv_count, " metadata entries and ",
                                            tensor_count, " tensors cannot fit in ", size_,
                                            " bytes"));
  }
  for (uint64_t i = 0; i < kv_count; ++i) {
    ASSIGN_OR_RETURN(std::string key, c.String("a metadata key"));
    ASSIGN_OR_RETURN(uint32_t type, c.Read<uint32_t>("a metadata type"));
    GgufValue v;
    RETURN_IF_ERROR(ReadValue(c, type, &v, absl::StrCat(path_, ": metadata '", key, "'")));
    if (!metadata_.emplace(key, std::move(v)).second) {
      return absl::DataLossError(absl::StrCat(path_, ": metadata '", key, "' appears twice"));
    }
  }
  uint64_t alignment = kDefaultAlignment;
  if (const GgufValue* a = Find("general.alignment"); a != nullptr) {
    if (a->kind != GgufValue::Kind::kUint || a->u == 0 || a->u > 65536 || (a->u & (a->u - 1))) {
      return absl::DataLossError(
          absl::StrCat(path_, ": general.alignment must be a power of two up to 65536"));
    }
    alignment = a->u;
  }
  for (uint64_t i = 0; i < tensor_count; ++i) {
    ASSIGN_OR_RETURN(std::string name, c.String("a tensor name"));
    ASSIGN_OR_RETURN(uint32_t n_dims, c.Read<uint32_t>("a tensor's dimension count"));
    auto bad = [&](const std::string& why) {
      return absl::DataLossError(absl::StrCat(path_, ": tensor '", name, "': ", why));
    };
    if (n_dims == 0 || n_dims > kMaxDims) return bad(absl::StrCat(n_dims, " dimensions"));
    Entry e;
    uint64_t numel = 1;
    for (uint32_t d = 0; d < n_dims; ++d) {
      ASSIGN_OR_RETURN(uint64_t dim, c.Read<uint64_t>("a tensor dimension"));
      if (dim == 0 || dim > (uint64_t{1} << 40) || numel > (uint64_t{1} << 42) / dim) {
        return bad(absl::StrCat("dimension ", dim, " is out of range"));
      }
      numel *= dim;
      e.shape.push_back(static_cast<int64_t>(dim));
    }
    ASSIGN_OR_RETURN(e.type_code, c.Read<uint32_t>("a tensor type"));
    ASSIGN_OR_RETURN(e.offset, c.Read<uint64_t>("a tensor offset"));
    if (e.offset % alignment != 0) return bad(absl::StrCat("offset ", e.offset, " is unaligned"));
    if (std::optional<GgmlType> t = GgmlTypeFromCode(e.type_code)) {
      if (e.shape[0] % GgmlBlockValues(*t) != 0) {
        return bad(absl::StrCat("rows of ", e.shape[0], " values do not fill whole ",
                                GgmlTypeName(*t), " blocks of ", GgmlBlockValues(*t)));
      }
      e.bytes = numel / static_cast<uint64_t>(GgmlBlockValues(*t)) *
                static_cast<uint64_t>(GgmlBlockBytes(*t));
    }
    if (!tensors_.emplace(name, std::move(e)).second) return bad("named twice");
  }
  const uint64_t data_start = (c.pos() + alignment - 1) / alignment * alignment;
  if (data_start > size_ && !tensors_.empty()) {
    return absl::DataLossError(absl::StrCat(path_, ": the data section starts past the end"));
  }
  const uint64_t data_bytes = size_ - data_start;
  for (const auto& [name, e] : tensors_) {
    if (e.offset > data_bytes || e.bytes > data_bytes - e.offset) {
      return absl::DataLossError(absl::StrCat(
          path_, ": tensor '", name, "' (", e.bytes, " bytes at ", e.offset,
          ") falls outside the data section of ", data_bytes, " bytes (truncated file?)"));
    }
  }
  data_offset_ = data_start;
  return absl::OkStatus();
}

const GgufValue* GgufFile::Find(absl::string_view key) const {
  auto it = metadata_.find(std::string(key));
  return it == metadata_.end() ? nullptr : &it->second;
}

namespace {
absl::Status Missing(const std::string& path, absl::string_view key) {
  return absl::NotFoundError(absl::StrCat(path, ": no metadata '", key, "'"));
}
absl::Status WrongKind(const std::string& path, absl::string_view key, absl::string_view want) {
  return absl::InvalidArgumentError(absl::StrCat(path, ": metadata '", key, "' is not ", want));
}
}  // namespace

absl::StatusOr<std::string> GgufFile::GetString(absl::string_view key) const {
  const GgufValue* v = Find(key);
  if (v == nullptr) return Missing(path_, key);
  if (v->kind != GgufValue::Kind::kString) return WrongKind(path_, key, "a string");
  return v->s;
}

absl::StatusOr<int64_t> GgufFile::GetInt(absl::string_view key) const {
  const GgufValue* v = Find(key);
  if (v == nullptr) return Missing(path_, key);
  if (v->kind == GgufValue::Kind::kUint && v->u <= uint64_t{1} << 62) {
    return static_cast<int64_t>(v->u);
  }
  if (v->kind == GgufValue::Kind::kInt) return v->i;
  return WrongKind(path_, key, "an integer");
}

absl::StatusOr<double> GgufFile::GetFloat(absl::string_view key) const {
  const GgufValue* v = Find(key);
  if (v == nullptr) return Missing(path_, key);
  if (v->kind == GgufValue::Kind::kFloat || v->kind == GgufValue::Kind::kUint ||
      v->kind == GgufValue::Kind::kInt) {
    return v->f;
  }
  return WrongKind(path_, key, "a number");
}

absl::StatusOr<const std::vector<std::string>*> GgufFile::GetStrings(absl::string_view key) const {
  const GgufValue* v = Find(key);
  if (v == nullptr) return Missing(path_, key);
  if (v->kind != GgufValue::Kind::kStringArray) return WrongKind(path_, key, "a string array");
  return &v->strings;
}

absl::StatusOr<const std::vector<double>*> GgufFile::GetNumbers(absl::string_view key) const {
  const GgufValue* v = Find(key);
  if (v == nullptr) return Missing(path_, key);
  if (v->kind != GgufValue::Kind::kNumberArray) return WrongKind(path_, key, "a number array");
  return &v->numbers;
}

absl::StatusOr<GgufTensor> GgufFile::Tensor(const std::string& name) const {
  auto it = tensors_.find(name);
  if (it == tensors_.end()) {
    return absl::NotFoundError(absl::StrCat(path_, ": no tensor named '", name, "'"));
  }
  const Entry& e = it->second;
  std::optional<GgmlType> type = GgmlTypeFromCode(e.type_code);
  if (!type) {
    return absl::InvalidArgumentError(absl::StrCat(
        path_, ": tensor '", name, "' has ggml type ", e.type_code,
        "; Strata reads F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q4_K and Q6_K (re-quantise the model "
        "to one of them)"));
  }
  GgufTensor t;
  t.name = name;
  t.type = *type;
  t.shape = e.shape;
  t.data = base_ + data_offset_ + e.offset;
  t.bytes = e.bytes;
  return t;
}

std::vector<std::string> GgufFile::TensorNames() const {
  std::vector<std::string> out;
  for (const auto& [name, e] : tensors_) out.push_back(name);
  return out;
}

namespace {

template <typename T>
void Put(std::string& out, T v) {
  char b[sizeof(T)];
  std::memcpy(b, &v, sizeof(T));
  out.append(b, sizeof(T));
}
void PutString(std::string& out, const std::string& s) {
  Put<uint64_t>(out, s.size());
  out += s;
}

}  // namespace

absl::Status WriteGguf(const std::string& path,
                       const std::map<std::string, GgufMetadataValue>& metadata,
                       const std::vector<GgufTensorToWrite>& tensors) {
  std::string out;
  Put<uint32_t>(out, kMagic);
  Put<uint32_t>(out, 3);
  Put<uint64_t>(out, tensors.size());
  Put<uint64_t>(out, metadata.size());
  for (const auto& [key, value] : metadata) {
    PutString(out, key);
    std::visit(
        [&out](const auto& v) {
          using V = std::decay_t<decltype(v)>;
          if constexpr (std::is_same_v<V, uint32_t>) {
            Put<uint32_t>(out, kU32), Put<uint32_t>(out, v);
          } else if constexpr (std::is_same_v<V, int32_t>) {
            Put<uint32_t>(out, kI32), Put<int32_t>(out, v);
          } else if constexpr (std::is_same_v<V, float>) {
            Put<uint32_t>(out, kF32), Put<float>(out, v);
          } else if constexpr (std::is_same_v<V, bool>) {
            Put<uint32_t>(out, kBool), Put<uint8_t>(out, v ? 1 : 0);
          } else if constexpr (std::is_same_v<V, std::string>) {
            Put<uint32_t>(out, kString), PutString(out, v);
          } else if constexpr (std::is_same_v<V, std::vector<std::string>>) {
            Put<uint32_t>(out, kArray), Put<uint32_t>(out, kString), Put<uint64_t>(out, v.size());
            for (const std::string& s : v) PutString(out, s);
          } else {
            Put<uint32_t>(out, kArray), Put<uint32_t>(out, kI32), Put<uint64_t>(out, v.size());
            for (int32_t x : v) Put<int32_t>(out, x);
          }
        },
        value);
  }
  uint64_t offset = 0;
  std::vector<uint64_t> offsets;
  for (const GgufTensorToWrite& t : tensors) {
    int64_t rows = 1;
    for (size_t i = 1; i < t.shape.size(); ++i) rows *= t.shape[i];
    if (t.shape.empty() || t.shape[0] % GgmlBlockValues(t.type) != 0 ||
        t.bytes.size() != GgmlRowBytes(t.type, t.shape[0]) * static_cast<size_t>(rows)) {
      return absl::InvalidArgumentError(absl::StrCat("tensor '", t.name, "': ", t.bytes.size(),
                                                     " bytes for ", GgmlTypeName(t.type), " shape ",
                                                     ShapeString(t.shape)));
    }
    PutString(out, t.name);
    Put<uint32_t>(out, static_cast<uint32_t>(t.shape.size()));
    for (int64_t d : t.shape) Put<uint64_t>(out, static_cast<uint64_t>(d));
    Put<uint32_t>(out, static_cast<uint32_t>(t.type));
    Put<uint64_t>(out, offset);
    offsets.push_back(offset);
    offset =
        (offset + t.bytes.size() + kDefaultAlignment - 1) / kDefaultAlignment * kDefaultAlignment;
  }
  out.resize((out.size() + kDefaultAlignment - 1) / kDefaultAlignment * kDefaultAlignment, '\0');
  const size_t data_start = out.size();
  for (size_t i = 0; i < tensors.size(); ++i) {
    out.resize(data_start + offsets[i], '\0');
    out += tensors[i].bytes;
  }
  return WriteFileAtomic(path, absl::Span<const char>(out.data(), out.size()));
}

}  // namespace strata::gpu
