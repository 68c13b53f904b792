#include "storage/vector_file.h"

#include <fcntl.h>

#include <cstring>
#include <filesystem>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
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
                   "' from its extension (expected .fbin, .u8bin, .i8bin, .ibin, .fvecs, .bvecs, "
                   ".ivecs or .npy)"));
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
    if (hdr[1] == 0 || hdr[1] > 65536) {  // (the header's fields are int32: -5 says -5)
      return absl::DataLossError(
          absl::StrCat(path, ": implausible dimension ", static_cast<int32_t>(hdr[1])));
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

namespace {

// A 2-D (or 1-D) C-order .npy array: NumPy's format, version 1.0-3.0.
struct NpyArray {
  std::string descr;  // e.g. "<f4", "|u1", "<i8"
  uint64_t rows = 0, cols = 0;
  std::vector<uint8_t> bytes;
};

absl::StatusOr<NpyArray> ReadNpy(const std::string& path, uint64_t max_rows) {
  // Header first, then the rows straight into the result (no whole-file copy).
  ASSIGN_OR_RETURN(ScopedFd fd, OpenFile(path, O_RDONLY));
  ASSIGN_OR_RETURN(uint64_t size, FileSize(path));
  auto bad = [&](absl::string_view why) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": not a readable .npy file (", why, ")"));
  };
  char pre[12];
  if (size < 10) return bad("no NUMPY magic");
  RETURN_IF_ERROR(PReadFull(fd.get(), pre, std::min<uint64_t>(size, 12), 0, path));
  if (std::memcmp(pre, "\x93NUMPY", 6) != 0) return bad("no NUMPY magic");
  uint8_t major = static_cast<uint8_t>(pre[6]);
  uint64_t header_len, header_at;
  if (major == 1) {
    header_len = static_cast<uint8_t>(pre[8]) | uint64_t{static_cast<uint8_t>(pre[9])} << 8;
    header_at = 10;
  } else if (major == 2 || major == 3) {
    if (size < 12) return bad("truncated header");
    uint32_t len;
    std::memcpy(&len, pre + 8, 4);
    header_len = len;
    header_at = 12;
  } else {
    return bad(absl::StrCat("version ", major));
  }
  if (size < header_at + header_len) return bad("truncated header");
  std::string header(header_len, '\0');
  RETURN_IF_ERROR(PReadFull(fd.get(), header.data(), header_len, header_at, path));
  auto field = [&](absl::string_view key) -> std::string {
    size_t k = header.find(absl::StrCat("'", key, "'"));
    if (k == std::string::npos) return "";
    size_t colon = header.find(':', k);
    if (colon == std::string::npos) return "";
    size_t start = header.find_first_not_of(' ', colon + 1);
    if (start == std::string::npos) return "";
    if (header[start] == '\'') {
      size_t end = header.find('\'', start + 1);
      return end == std::string::npos ? "" : header.substr(start + 1, end - start - 1);
    }
    if (header[start] == '(') {
      size_t end = header.find(')', start);
      return end == std::string::npos ? "" : header.substr(start + 1, end - start - 1);
    }
    size_t end = header.find_first_of(",}", start);
    return header.substr(start, end - start);
  };
  NpyArray a;
  a.descr = field("descr");
  if (field("fortran_order") != "False") return bad("Fortran order is not supported");
  std::vector<uint64_t> shape;
  for (absl::string_view part : absl::StrSplit(field("shape"), ',', absl::SkipWhitespace())) {
    uint64_t v;
    if (!absl::SimpleAtoi(absl::StripAsciiWhitespace(part), &v)) return bad("bad shape");
    shape.push_back(v);
  }
  if (shape.empty() || shape.size() > 2) return bad("only 1-D and 2-D arrays are supported");
  a.rows = shape[0];
  a.cols = shape.size() == 2 ? shape[1] : 1;
  size_t esize = a.descr.size() >= 3 ? a.descr.back() - '0' : 0;
  if (a.descr.size() != 3 || (a.descr[0] != '<' && a.descr[0] != '|') || esize == 0 || esize > 8) {
    return bad(absl::StrCat("dtype '", a.descr, "' (little-endian numbers only)"));
  }
  uint64_t data_at = header_at + header_len;
  if (size - data_at != a.rows * a.cols * esize) {
    return absl::DataLossError(absl::StrCat(path, ": holds ", size - data_at,
                                            " data bytes, the header promises ",
                                            a.rows * a.cols * esize));
  }
  if (max_rows != 0 && a.rows > max_rows) a.rows = max_rows;
  a.bytes.resize(a.rows * a.cols * esize);
  RETURN_IF_ERROR(PReadFull(fd.get(), a.bytes.data(), a.bytes.size(), data_at, path));
  return a;
}

}  // namespace

absl::StatusOr<std::vector<uint64_t>> ReadIds(const std::string& path) {
  std::string ext = absl::AsciiStrToLower(std::filesystem::path(path).extension().string());
  std::vector<uint64_t> ids;
  if (ext == ".npy") {
    ASSIGN_OR_RETURN(NpyArray a, ReadNpy(path, 0));
    if (a.cols != 1) return absl::InvalidArgumentError(absl::StrCat(path, ": ids must be 1-D"));
    char kind = a.descr[1];
    size_t esize = a.descr[2] - '0';
    if ((kind != 'i' && kind != 'u') || (esize != 4 && esize != 8)) {
      return absl::InvalidArgumentError(
          absl::StrCat(path, ": ids must be int32/int64/uint32/uint64, not ", a.descr));
    }
    ids.resize(a.rows);
    for (uint64_t i = 0; i < a.rows; ++i) {
      const uint8_t* p = a.bytes.data() + i * esize;
      int64_t v;  // signed kinds: checked for negatives; uint64 taken as is
      if (esize == 8) {
        std::memcpy(&ids[i], p, 8);
        v = kind == 'u' ? 0 : static_cast<int64_t>(ids[i]);
      } else {
        uint32_t w;
        std::memcpy(&w, p, 4);
        v = kind == 'i' ? int64_t{static_cast<int32_t>(w)} : int64_t{w};
      }
      if (v < 0) {
        return absl::InvalidArgumentError(absl::StrCat(path, ": id at row ", i, " is negative"));
      }
      if (esize == 4) ids[i] = static_cast<uint64_t>(v);
    }
    return ids;
  }
  if (ext == ".ibin" || ext == ".ivecs") {
    ASSIGN_OR_RETURN(FormatInfo f, FormatFor(path));
    ASSIGN_OR_RETURN(RawMatrix m, ReadRaw(path, f, 0));
    if (m.dim != 1) {
      return absl::InvalidArgumentError(absl::StrCat(path, ": ids need one column, not ", m.dim));
    }
    ids.resize(m.n);
    for (uint64_t i = 0; i < m.n; ++i) {
      int32_t v;
      std::memcpy(&v, m.bytes.data() + i * 4, 4);
      if (v < 0) {
        return absl::InvalidArgumentError(absl::StrCat(path, ": id at row ", i, " is negative"));
      }
      ids[i] = static_cast<uint64_t>(v);
    }
    return ids;
  }
  return absl::InvalidArgumentError(
      absl::StrCat(path, ": ids are read from .npy (int/uint, 32 or 64 bits) or .ibin"));
}

absl::StatusOr<VectorSet> ReadVectors(const std::string& path, uint64_t max_rows) {
  // (A missing file is named as missing, before its name's extension is judged.)
  if (std::error_code ec; !std::filesystem::exists(path, ec)) {
    return absl::NotFoundError(absl::StrCat(path, ": no such file"));
  }
  if (absl::AsciiStrToLower(std::filesystem::path(path).extension().string()) == ".npy") {
    ASSIGN_OR_RETURN(NpyArray a, ReadNpy(path, max_rows));
    VectorSet set;
    if (a.descr == "<f4") {
      set.type = ElementType::kFloat32;
    } else if (a.descr == "|u1") {
      set.type = ElementType::kUint8;
    } else if (a.descr == "|i1") {
      set.type = ElementType::kInt8;
    } else {
      return absl::InvalidArgumentError(
          absl::StrCat(path, ": vectors must be float32, uint8 or int8, not '", a.descr, "'"));
    }
    if (a.cols == 0 || a.cols > UINT32_MAX) {
      return absl::InvalidArgumentError(absl::StrCat(path, ": bad dimension ", a.cols));
    }
    set.dim = static_cast<uint32_t>(a.cols);
    set.n = a.rows;
    set.data = std::move(a.bytes);
    return set;
  }
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
