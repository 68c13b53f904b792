#include "gpu/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "nlohmann/json.hpp"
#include "storage/scoped_fd.h"
#include "storage/status_macros.h"

namespace strata::gpu {
namespace {

// A header beyond this is not a weights file we should trust (the real ones are tens of KiB).
constexpr uint64_t kMaxHeaderBytes = 100ull << 20;

bool ParseDType(const std::string& s, DType* out) {
  if (s == "F32")
    *out = DType::kF32;
  else if (s == "F16")
    *out = DType::kF16;
  else if (s == "BF16")
    *out = DType::kBF16;
  else
    return false;
  return true;
}

size_t HeaderDTypeSize(const std::string& s) {
  if (s == "F64" || s == "I64" || s == "U64") return 8;
  if (s == "F32" || s == "I32" || s == "U32") return 4;
  if (s == "F16" || s == "BF16" || s == "I16" || s == "U16") return 2;
  if (s == "I8" || s == "U8" || s == "BOOL" || s == "F8_E4M3" || s == "F8_E5M2") return 1;
  return 0;
}

std::string ShapeString(absl::Span<const int64_t> shape) {
  return absl::StrCat("[", absl::StrJoin(shape, ", "), "]");
}

}  // namespace

int64_t TensorView::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

SafetensorsFile::~SafetensorsFile() {
  if (map_ != nullptr) munmap(map_, map_bytes_);
}

absl::StatusOr<std::unique_ptr<SafetensorsFile>> SafetensorsFile::Open(const std::string& path) {
  ASSIGN_OR_RETURN(ScopedFd fd, OpenFile(path, O_RDONLY));
  struct stat st;
  if (fstat(fd.get(), &st) != 0) return ErrnoToStatus(errno, absl::StrCat("fstat ", path));
  const uint64_t size = static_cast<uint64_t>(st.st_size);
  if (size < 8) {
    return absl::DataLossError(absl::StrCat(path, ": ", size, " bytes, too short for safetensors"));
  }
  auto file = std::unique_ptr<SafetensorsFile>(new SafetensorsFile());
  file->path_ = path;
  file->map_ = mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd.get(), 0);
  if (file->map_ == MAP_FAILED) {
    file->map_ = nullptr;
    return ErrnoToStatus(errno, absl::StrCat("mmap ", path));
  }
  file->map_bytes_ = size;
  const auto* bytes = static_cast<const uint8_t*>(file->map_);
  uint64_t header_len = 0;
  for (int i = 7; i >= 0; --i) header_len = header_len << 8 | bytes[i];
  if (header_len > kMaxHeaderBytes || 8 + header_len > size) {
    return absl::DataLossError(absl::StrCat(path, ": header length ", header_len,
                                            " does not fit the file (", size,
                                            " bytes); not a safetensors file or truncated"));
  }
  file->data_ = bytes + 8 + header_len;
  const uint64_t data_bytes = size - 8 - header_len;
  nlohmann::json header =
      nlohmann::json::parse(reinterpret_cast<const char*>(bytes + 8),
                            reinterpret_cast<const char*>(bytes + 8 + header_len),
                            /*cb=*/nullptr, /*allow_exceptions=*/false);
  if (!header.is_object()) {
    return absl::DataLossError(absl::StrCat(path, ": the safetensors header is not a JSON object"));
  }
  for (auto it = header.begin(); it != header.end(); ++it) {
    if (it.key() == "__metadata__") continue;
    const nlohmann::json& t = it.value();
    auto bad = [&](const std::string& why) {
      return absl::DataLossError(absl::StrCat(path, ": tensor '", it.key(), "': ", why));
    };
    if (!t.is_object() || !t.contains("dtype") || !t["dtype"].is_string() || !t.contains("shape") ||
        !t["shape"].is_array() || !t.contains("data_offsets") || !t["data_offsets"].is_array() ||
        t["data_offsets"].size() != 2) {
      return bad("needs dtype, shape and data_offsets");
    }
    Entry e;
    e.dtype = t["dtype"].get<std::string>();
    int64_t numel = 1;
    for (const auto& d : t["shape"]) {
      if (!d.is_number_unsigned()) return bad("shape holds a non-integer");
      e.shape.push_back(d.get<int64_t>());
      numel *= e.shape.back();
    }
    if (!t["data_offsets"][0].is_number_unsigned() || !t["data_offsets"][1].is_number_unsigned()) {
      return bad("data_offsets are not integers");
    }
    e.begin = t["data_offsets"][0].get<uint64_t>();
    e.end = t["data_offsets"][1].get<uint64_t>();
    if (e.begin > e.end || e.end > data_bytes) {
      return bad(absl::StrCat("bytes [", e.begin, ", ", e.end, ") fall outside the ", data_bytes,
                              " data bytes (truncated file?)"));
    }
    const size_t elem = HeaderDTypeSize(e.dtype);
    if (elem != 0 && e.end - e.begin != static_cast<uint64_t>(numel) * elem) {
      return bad(absl::StrCat(e.end - e.begin, " bytes for shape ", ShapeString(e.shape), " of ",
                              e.dtype));
    }
    file->entries_.emplace(it.key(), std::move(e));
  }
  return file;
}

absl::StatusOr<TensorView> SafetensorsFile::Get(const std::string& name,
                                                absl::Span<const int64_t> shape) const {
  auto it = entries_.find(name);
  if (it == entries_.end()) {
    return absl::NotFoundError(absl::StrCat(path_, ": no tensor named '", name, "'"));
  }
  const Entry& e = it->second;
  TensorView v;
  v.name = name;
  if (!ParseDType(e.dtype, &v.dtype)) {
    return absl::InvalidArgumentError(absl::StrCat(path_, ": tensor '", name, "' has dtype ",
                                                   e.dtype, "; the engine reads F32, F16, BF16"));
  }
  if (!shape.empty() && absl::Span<const int64_t>(e.shape) != shape) {
    return absl::InvalidArgumentError(absl::StrCat(path_, ": tensor '", name, "' has shape ",
                                                   ShapeString(e.shape), ", expected ",
                                                   ShapeString(shape)));
  }
  v.shape = e.shape;
  v.data = data_ + e.begin;
  v.bytes = e.end - e.begin;
  return v;
}

bool SafetensorsFile::Contains(const std::string& name) const { return entries_.count(name) > 0; }

std::vector<std::string> SafetensorsFile::Names() const {
  std::vector<std::string> out;
  for (const auto& [name, e] : entries_) out.push_back(name);
  return out;
}

absl::Status WriteSafetensors(const std::string& path, const std::vector<TensorToWrite>& tensors) {
  nlohmann::json header = nlohmann::json::object();
  header["__metadata__"] = {{"format", "pt"}};
  std::string data;
  for (const TensorToWrite& t : tensors) {
    int64_t numel = 1;
    for (int64_t d : t.shape) numel *= d;
    if (numel != static_cast<int64_t>(t.values.size())) {
      return absl::InvalidArgumentError(absl::StrCat("tensor '", t.name, "': ", t.values.size(),
                                                     " values for shape ", ShapeString(t.shape)));
    }
    const size_t begin = data.size();
    data.resize(begin + t.values.size() * DTypeSize(t.dtype));
    ConvertFromFloat(t.dtype, t.values.data(), t.values.size(), data.data() + begin);
    header[t.name] = {{"dtype", std::string(DTypeName(t.dtype))},
                      {"shape", t.shape},
                      {"data_offsets", {begin, data.size()}}};
  }
  std::string head = header.dump();
  head.resize((head.size() + 7) / 8 * 8, ' ');  // the format allows padding with spaces
  std::string out(8, '\0');
  uint64_t n = head.size();
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>(n >> (8 * i));
  out += head;
  out += data;
  return WriteFileAtomic(path, absl::Span<const char>(out.data(), out.size()));
}

}  // namespace strata::gpu
