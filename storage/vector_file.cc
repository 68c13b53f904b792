#include "storage/vector_file.h"

#include <fcntl.h>

#include <cstring>
#include <filesystem>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "storage/scoped_fd.h"
#include "storage/status_macros.h"

namespace strata {

const char* ElementTypeName(ElementType t) {
  switch (t) {
    case ElementType::kFloat32:
      return "float32";
    case ElementType::kUint8:
      return "uint8";
    case ElementType::kInt8:
      return "int8";
  }
  return "unknown";
}

bool IsValidElementType(uint32_t raw) { return raw >= 1 && raw <= 3; }

void ConvertToFloat(ElementType t, const uint8_t* src, size_t count, float* out) {
  switch (t) {
    case ElementType::kFloat32:
      std::memcpy(out, src, count * sizeof(float));
      break;
    case ElementType::kUint8:
      for (size_t j = 0; j < count; ++j) out[j] = src[j];
      break;
    case ElementType::kInt8:
      for (size_t j = 0; j < count; ++j) out[j] = static_cast<int8_t>(src[j]);
      break;
  }
}

std::vector<float> RowsAsFloat(const VectorSet& set, uint64_t first, uint64_t count) {
  std::vector<float> out(count * set.dim);
  ConvertToFloat(set.type, set.row(first), out.size(), out.data());
  return out;
}

absl::StatusOr<ElementType> ParseElementType(absl::string_view s) {
  std::string v = absl::AsciiStrToLower(s);
  if (v == "float32" || v == "float" || v == "f32") return ElementType::kFloat32;
  if (v == "uint8" || v == "u8") return ElementType::kUint8;
  if (v == "int8" || v == "i8") return ElementType::kInt8;
  return absl::InvalidArgumentError(
      absl::StrCat("unknown element type '", s, "' (expected float32, uint8 or int8)"));
}

namespace {

enum class Layout { kBin, kVecs };
struct FormatInfo {
  Layout layout;
  int elem_size;     // bytes per value
  bool is_int32;     // .ibin / .ivecs
  ElementType type;  // meaningful when !is_int32
};

absl::StatusOr<FormatInfo> FormatFor(const std::string& path) {
  std::string ext = absl::AsciiStrToLower(std::filesystem::path(path).extension().string());
  if (ext == ".fbin") return FormatInfo{Layout::kBin, 4, false, ElementType::kFloat32};
  if (ext == ".u8bin") return FormatInfo{Layout::kBin, 1, false, ElementType::kUint8};
  if (ext == ".i8bin") return FormatInfo{Layout::kBin, 1, false, ElementType::kInt8};
  if (ext == ".ibin") return FormatInfo{Layout::kBin, 4, true, ElementType::kFloat32};
  if (ext == ".fvecs") return FormatInfo{Layout::kVecs, 4, false, ElementType::kFloat32};
  if (ext == ".bvecs") return FormatInfo{Layout::kVecs, 1, false, ElementType::kUint8};
  if (ext == ".ivecs") return FormatInfo{Layout::kVecs, 4, true, ElementType::kFloat32};
  return absl::InvalidArgumentError(
      absl::StrCat("cannot tell the vector format of '", path,
                   "' from its extension (expected .fbin, .u8bin, .i8bin, .ibin, .fvecs, .bvecs or "
                   ".ivecs)"));
}

// Reads a whole matrix of `elem_size`-byte values: returns rows, dim and the raw bytes.
struct RawMatrix {
  uint64_t n = 0;
  uint32_t dim = 0;
  std::vector<uint8_t> bytes;
};

absl::StatusOr<RawMatrix> ReadRaw(const std::string& path, const FormatInfo& f, uint64_t max_rows) {
  ASSIGN_OR_RETURN(ScopedFd fd, OpenFile(path, O_RDONLY));
  ASSIGN_OR_RETURN(uint64_t size, FileSize(path));
  RawMatrix m;
  if (f.layout == Layout::kBin) {
    if (size < 8) return absl::DataLossError(absl::StrCat(path, ": too short for a header"));
    uint32_t hdr[2];
    RETURN_IF_ERROR(PReadFull(fd.get(), hdr, 8, 0, path));
    uint64_t need = 8 + uint64_t{hdr[0]} * hdr[1] * f.elem_size;
    if (hdr[1] == 0 || hdr[1] > 65536) {
      return absl::DataLossError(absl::StrCat(path, ": implausible dimension ", hdr[1]));
    }
    if (size != need) {
      return absl::DataLossError(absl::StrCat(path, ": header says ", hdr[0], " x ", hdr[1], " (",
                                              need, " bytes) but the file has ", size,
                                              " bytes (truncated or not this format)"));
    }
    m.n = max_rows ? std::min<uint64_t>(max_rows, hdr[0]) : hdr[0];
    m.dim = hdr[1];
    m.bytes.resize(m.n * m.dim * f.elem_size);
    RETURN_IF_ERROR(PReadFull(fd.get(), m.bytes.data(), m.bytes.size(), 8, path));
    return m;
  }
  if (size < 4) return absl::DataLossError(absl::StrCat(path, ": too short for a row header"));
  int32_t d;
  RETURN_IF_ERROR(PReadFull(fd.get(), &d, 4, 0, path));
  if (d <= 0 || d > 65536)
    return absl::DataLossError(absl::StrCat(path, ": implausible dimension ", d));
  uint64_t row = 4 + uint64_t(d) * f.elem_size;
  if (size % row != 0) {
    return absl::DataLossError(absl::StrCat(path, ": size ", size,
                                            " is not a multiple of the row size ", row,
                                            " for dimension ", d, " (truncated?)"));
  }
  m.n = size / row;
  if (max_rows) m.n = std::min(m.n, max_rows);
  m.dim = static_cast<uint32_t>(d);
  std::vector<uint8_t> all(m.n * row);
  RETURN_IF_ERROR(PReadFull(fd.get(), all.data(), all.size(), 0, path));
  m.bytes.resize(m.n * m.dim * f.elem_size);
  for (uint64_t i = 0; i < m.n; ++i) {
    int32_t di;
    std::memcpy(&di, all.data() + i * row, 4);
    if (di != d) {
      return absl::DataLossError(
          absl::StrCat(path, ": row ", i, " has dimension ", di, ", the first row has ", d));
    }
    std::memcpy(m.bytes.data() + i * (row - 4), all.data() + i * row + 4, row - 4);
  }
  return m;
}

absl::Status WriteRaw(const std::string& path, const FormatInfo& f, uint64_t n, uint32_t dim,
                      const void* data) {
  ASSIGN_OR_RETURN(ScopedFd fd, OpenFile(path, O_WRONLY | O_CREAT | O_TRUNC));
  const auto* p = static_cast<const uint8_t*>(data);
  size_t row = size_t{dim} * f.elem_size;
  if (f.layout == Layout::kBin) {
    if (n > UINT32_MAX) return absl::InvalidArgumentError("too many rows for a .bin header");
    uint32_t hdr[2] = {static_cast<uint32_t>(n), dim};
    RETURN_IF_ERROR(WriteFull(fd.get(), hdr, 8, path));
    RETURN_IF_ERROR(WriteFull(fd.get(), p, n * row, path));
  } else {
    std::vector<uint8_t> buf;
    constexpr uint64_t kChunk = 4096;
    for (uint64_t i = 0; i < n; i += kChunk) {
      uint64_t e = std::min(n, i + kChunk);
      buf.resize((e - i) * (row + 4));
      for (uint64_t j = i; j < e; ++j) {
        int32_t d = static_cast<int32_t>(dim);
        std::memcpy(buf.data() + (j - i) * (row + 4), &d, 4);
        std::memcpy(buf.data() + (j - i) * (row + 4) + 4, p + j * row, row);
      }
      RETURN_IF_ERROR(WriteFull(fd.get(), buf.data(), buf.size(), path));
    }
  }
  return SyncFd(fd.get(), path);
}

}  // namespace

absl::StatusOr<VectorSet> ReadVectors(const std::string& path, uint64_t max_rows) {
  ASSIGN_OR_RETURN(FormatInfo f, FormatFor(path));
  if (f.is_int32) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": int32 files hold ids or ground truth, not vectors"));
  }
  ASSIGN_OR_RETURN(RawMatrix m, ReadRaw(path, f, max_rows));
  VectorSet set;
  set.type = f.type;
  set.dim = m.dim;
  set.n = m.n;
  set.data = std::move(m.bytes);
  return set;
}

absl::Status WriteVectors(const std::string& path, const VectorSet& set) {
  ASSIGN_OR_RETURN(FormatInfo f, FormatFor(path));
  if (f.is_int32 || f.type != set.type) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot write ", ElementTypeName(set.type), " vectors to '", path, "'"));
  }
  return WriteRaw(path, f, set.n, set.dim, set.data.data());
}

absl::StatusOr<GroundTruth> ReadGroundTruth(const std::string& path) {
  std::string ext = absl::AsciiStrToLower(std::filesystem::path(path).extension().string());
  GroundTruth gt;
  if (ext == ".ivecs" || ext == ".ibin") {
    ASSIGN_OR_RETURN(FormatInfo f, FormatFor(path));
    ASSIGN_OR_RETURN(RawMatrix m, ReadRaw(path, f, 0));
    gt.n = static_cast<uint32_t>(m.n);
    gt.k = m.dim;
    gt.ids.resize(m.n * m.dim);
    std::memcpy(gt.ids.data(), m.bytes.data(), m.bytes.size());
    return gt;
  }
  ASSIGN_OR_RETURN(ScopedFd fd, OpenFile(path, O_RDONLY));
  ASSIGN_OR_RETURN(uint64_t size, FileSize(path));
  if (size < 8) return absl::DataLossError(absl::StrCat(path, ": too short for a header"));
  uint32_t hdr[2];
  RETURN_IF_ERROR(PReadFull(fd.get(), hdr, 8, 0, path));
  uint64_t cells = uint64_t{hdr[0]} * hdr[1];
  if (size != 8 + cells * 8) {
    return absl::DataLossError(absl::StrCat(path, ": ground-truth header says ", hdr[0], " x ",
                                            hdr[1], " but the file has ", size, " bytes"));
  }
  gt.n = hdr[0];
  gt.k = hdr[1];
  gt.ids.resize(cells);
  gt.distances.resize(cells);
  RETURN_IF_ERROR(PReadFull(fd.get(), gt.ids.data(), cells * 4, 8, path));
  RETURN_IF_ERROR(PReadFull(fd.get(), gt.distances.data(), cells * 4, 8 + cells * 4, path));
  return gt;
}

absl::Status WriteGroundTruth(const std::string& path, const GroundTruth& gt) {
  uint64_t cells = uint64_t{gt.n} * gt.k;
  if (gt.ids.size() != cells || gt.distances.size() != cells) {
    return absl::InvalidArgumentError("ground truth arrays do not match n * k");
  }
  ASSIGN_OR_RETURN(ScopedFd fd, OpenFile(path, O_WRONLY | O_CREAT | O_TRUNC));
  uint32_t hdr[2] = {gt.n, gt.k};
  RETURN_IF_ERROR(WriteFull(fd.get(), hdr, 8, path));
  RETURN_IF_ERROR(WriteFull(fd.get(), gt.ids.data(), cells * 4, path));
  RETURN_IF_ERROR(WriteFull(fd.get(), gt.distances.data(), cells * 4, path));
  return SyncFd(fd.get(), path);
}

}  // namespace strata
