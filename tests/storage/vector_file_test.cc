#include "storage/vector_file.h"

#include <unistd.h>

#include <cstring>
#include <fstream>
#include <random>

#include "gtest/gtest.h"
#include "storage/scoped_fd.h"
#include "tests/test_util.h"

namespace strata {
namespace {

VectorSet Random(ElementType t, uint64_t n, uint32_t d, uint64_t seed) {
  std::mt19937_64 rng(seed);
  VectorSet s;
  s.type = t;
  s.n = n;
  s.dim = d;
  s.data.resize(n * s.row_bytes());
  if (t == ElementType::kFloat32) {
    auto* f = reinterpret_cast<float*>(s.data.data());
    std::normal_distribution<float> nd;
    for (uint64_t i = 0; i < n * d; ++i) f[i] = nd(rng);
  } else {
    for (auto& b : s.data) b = static_cast<uint8_t>(rng());
  }
  return s;
}

TEST(VectorFile, RoundTripsEveryFormat) {
  testing::TempDir dir;
  struct Case {
    const char* name;
    ElementType type;
  } cases[] = {{"a.fbin", ElementType::kFloat32},
               {"a.u8bin", ElementType::kUint8},
               {"a.i8bin", ElementType::kInt8},
               {"a.fvecs", ElementType::kFloat32},
               {"a.bvecs", ElementType::kUint8}};
  for (const auto& c : cases) {
    VectorSet s = Random(c.type, 37, 19, 1);
    ASSERT_TRUE(WriteVectors(dir.File(c.name), s).ok()) << c.name;
    auto r = ReadVectors(dir.File(c.name));
    ASSERT_TRUE(r.ok()) << c.name << ": " << r.status();
    EXPECT_EQ(r->type, s.type);
    EXPECT_EQ(r->n, s.n);
    EXPECT_EQ(r->dim, s.dim);
    EXPECT_EQ(r->data, s.data) << c.name;
    auto head = ReadVectors(dir.File(c.name), 5);
    ASSERT_TRUE(head.ok());
    EXPECT_EQ(head->n, 5u);
  }
}

TEST(VectorFile, TruncatedFilesAreDataLoss) {
  testing::TempDir dir;
  for (const char* name : {"t.u8bin", "t.fvecs"}) {
    VectorSet s = Random(std::string(name).find("u8") != std::string::npos ? ElementType::kUint8
                                                                           : ElementType::kFloat32,
                         10, 8, 2);
    ASSERT_TRUE(WriteVectors(dir.File(name), s).ok());
    ASSERT_EQ(::truncate(dir.File(name).c_str(), static_cast<off_t>(*FileSize(dir.File(name)) - 3)),
              0);
    auto r = ReadVectors(dir.File(name));
    EXPECT_TRUE(absl::IsDataLoss(r.status())) << name << ": " << r.status();
  }
}

// A header's dimension is an int32: a negative one is named as such.
TEST(VectorFile, ANegativeDimensionIsNamedAsWritten) {
  testing::TempDir dir;
  {
    std::ofstream f(dir.File("neg.fbin"), std::ios::binary);
    const int32_t hdr[2] = {1, -5};
    f.write(reinterpret_cast<const char*>(hdr), sizeof(hdr));
  }
  auto r = ReadVectors(dir.File("neg.fbin"));
  EXPECT_TRUE(absl::IsDataLoss(r.status())) << r.status();
  EXPECT_NE(r.status().message().find("implausible dimension -5"), std::string::npos) << r.status();
}

TEST(VectorFile, UnknownExtensionAndWrongTypeAreInvalidArgument) {
  testing::TempDir dir;
  std::ofstream(dir.File("x.csv")) << "1,2,3\n";
  EXPECT_TRUE(absl::IsInvalidArgument(ReadVectors(dir.File("x.csv")).status()));
  EXPECT_TRUE(absl::IsInvalidArgument(
      WriteVectors(dir.File("x.u8bin"), Random(ElementType::kFloat32, 2, 2, 3))));
  EXPECT_TRUE(absl::IsNotFound(ReadVectors(dir.File("missing.fbin")).status()));
}

TEST(GroundTruthFile, RoundTrips) {
  testing::TempDir dir;
  GroundTruth gt;
  gt.n = 3;
  gt.k = 4;
  for (int i = 0; i < 12; ++i) {
    gt.ids.push_back(i * 3);
    gt.distances.push_back(i * 0.5f);
  }
  ASSERT_TRUE(WriteGroundTruth(dir.File("gt.bin"), gt).ok());
  auto r = ReadGroundTruth(dir.File("gt.bin"));
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->n, 3u);
  EXPECT_EQ(r->k, 4u);
  EXPECT_EQ(r->ids, gt.ids);
  EXPECT_EQ(r->distances, gt.distances);
  ASSERT_EQ(::truncate(dir.File("gt.bin").c_str(), 20), 0);
  EXPECT_TRUE(absl::IsDataLoss(ReadGroundTruth(dir.File("gt.bin")).status()));
}

// A version 1.0 .npy file as NumPy writes it: magic, header padded to 64 bytes, data.
std::string Npy(const std::string& descr, const std::string& shape, const std::string& data) {
  std::string header =
      "{'descr': '" + descr + "', 'fortran_order': False, 'shape': (" + shape + "), }";
  while ((10 + header.size() + 1) % 64 != 0) header += ' ';
  header += '\n';
  std::string out = "\x93NUMPY";
  out += '\x01';
  out += '\x00';
  out += static_cast<char>(header.size() & 0xFF);
  out += static_cast<char>(header.size() >> 8);
  return out + header + data;
}

TEST(VectorFile, ReadsNpyVectorsAndIds) {
  testing::TempDir dir;
  float f[6] = {1, 2, 3, 4, 5, 6};
  ASSERT_TRUE(WriteFileAtomic(dir.File("v.npy"),
                              Npy("<f4", "2, 3", std::string(reinterpret_cast<char*>(f), 24)))
                  .ok());
  auto v = ReadVectors(dir.File("v.npy"));
  ASSERT_TRUE(v.ok()) << v.status();
  EXPECT_EQ(v->type, ElementType::kFloat32);
  EXPECT_EQ(v->n, 2u);
  EXPECT_EQ(v->dim, 3u);
  EXPECT_EQ(std::memcmp(v->data.data(), f, 24), 0);
  EXPECT_EQ(ReadVectors(dir.File("v.npy"), 1)->n, 1u);

  ASSERT_TRUE(WriteFileAtomic(dir.File("b.npy"), Npy("|u1", "2, 2", "\x01\x02\x03\x04")).ok());
  EXPECT_EQ(ReadVectors(dir.File("b.npy"))->type, ElementType::kUint8);

  int64_t ids[3] = {7, 1ll << 40, 9};
  ASSERT_TRUE(WriteFileAtomic(dir.File("ids.npy"),
                              Npy("<i8", "3,", std::string(reinterpret_cast<char*>(ids), 24)))
                  .ok());
  auto r = ReadIds(dir.File("ids.npy"));
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(*r, (std::vector<uint64_t>{7, 1ull << 40, 9}));
  int32_t neg[2] = {3, -1};
  ASSERT_TRUE(WriteFileAtomic(dir.File("neg.npy"),
                              Npy("<i4", "2,", std::string(reinterpret_cast<char*>(neg), 8)))
                  .ok());
  EXPECT_TRUE(absl::IsInvalidArgument(ReadIds(dir.File("neg.npy")).status()));

  // Refused: a data size that does not match the header, a big-endian dtype, Fortran order.
  ASSERT_TRUE(WriteFileAtomic(dir.File("short.npy"), Npy("<f4", "2, 3", "abcd")).ok());
  EXPECT_TRUE(absl::IsDataLoss(ReadVectors(dir.File("short.npy")).status()));
  ASSERT_TRUE(WriteFileAtomic(dir.File("be.npy"), Npy(">f4", "1, 1", "abcd")).ok());
  EXPECT_TRUE(absl::IsInvalidArgument(ReadVectors(dir.File("be.npy")).status()));
  std::string fortran = Npy("<f4", "1, 1", "abcd");
  fortran.replace(fortran.find("False"), 5, "True ");
  ASSERT_TRUE(WriteFileAtomic(dir.File("fo.npy"), fortran).ok());
  EXPECT_TRUE(absl::IsInvalidArgument(ReadVectors(dir.File("fo.npy")).status()));
  ASSERT_TRUE(WriteFileAtomic(dir.File("junk.npy"), std::string("not numpy at all")).ok());
  EXPECT_TRUE(absl::IsInvalidArgument(ReadVectors(dir.File("junk.npy")).status()));
}

}  // namespace
}  // namespace strata
