// The CPU backend against naive double-precision loops written here, op by op.
#include <cmath>
#include <random>
#include <tuple>

#include "gtest/gtest.h"
#include "tests/gpu/backend_ops.h"

namespace strata::gpu {
namespace {

using testing::OpCase;

double GeluRef(double x) { return 0.5 * x * (1 + std::erf(x / std::sqrt(2.0))); }
double SiluRef(double x) { return x / (1 + std::exp(-x)); }

std::vector<double> Naive(const OpCase& c) {
  std::vector<double> out;
  const std::string& op = c.op;
  if (op.rfind("linear", 0) == 0) {
    for (int64_t i = 0; i < c.rows; ++i) {
      for (int64_t j = 0; j < c.cols; ++j) {
        double s = c.c[j];
        for (int64_t k = 0; k < c.inner; ++k)
          s += double(c.a[i * c.inner + k]) * c.b[j * c.inner + k];
        out.push_back(op == "linear_gelu" ? GeluRef(s) : op == "linear_silu" ? SiluRef(s) : s);
      }
    }
  } else if (op == "embedding") {
    for (int64_t t = 0; t < c.rows; ++t) {
      for (int64_t j = 0; j < c.cols; ++j) {
        out.push_back(double(c.a[c.ids[t] * c.cols + j]) + c.b[c.positions[t] * c.cols + j] +
                      c.c[j]);
      }
    }
  } else if (op == "layernorm" || op == "layernorm_residual" || op == "rmsnorm") {
    for (int64_t r = 0; r < c.rows; ++r) {
      std::vector<double> v(c.cols);
      double mean = 0, var = 0, ss = 0;
      for (int64_t j = 0; j < c.cols; ++j) {
        v[j] = c.a[r * c.cols + j] + (op == "layernorm_residual" ? c.b[r * c.cols + j] : 0.0f);
        mean += v[j];
        ss += v[j] * v[j];
      }
      mean /= c.cols;
      for (double x : v) var += (x - mean) * (x - mean);
      var /= c.cols;
      for (int64_t j = 0; j < c.cols; ++j) {
        out.push_back(op == "rmsnorm" ? v[j] / std::sqrt(ss / c.cols + 1e-5) * c.c[j]
                                      : (v[j] - mean) / std::sqrt(var + 1e-12) * c.c[j] + c.d[j]);
      }
    }
  } else if (op == "gelu" || op == "silu") {
    for (float x : c.a) out.push_back(op == "gelu" ? GeluRef(x) : SiluRef(x));
  } else if (op == "softmax" || op == "l2norm") {
    for (int64_t r = 0; r < c.rows; ++r) {
      const float* row = c.a.data() + r * c.cols;
      double m = -1e300, sum = 0, ss = 0;
      for (int64_t j = 0; j < c.cols; ++j) m = std::max(m, double(row[j]));
      for (int64_t j = 0; j < c.cols; ++j)
        sum += std::exp(row[j] - m), ss += double(row[j]) * row[j];
      for (int64_t j = 0; j < c.cols; ++j) {
        out.push_back(op == "softmax" ? std::exp(row[j] - m) / sum : row[j] / std::sqrt(ss));
      }
    }
  } else if (op == "attention") {
    const int64_t hidden = int64_t{c.heads} * c.head_dim;
    out.assign(c.rows * hidden, 0.0);
    for (size_t s = 0; s + 1 < c.offsets.size(); ++s) {
      const int64_t begin = c.offsets[s], end = c.offsets[s + 1];
      for (int h = 0; h < c.heads; ++h) {
        for (int64_t i = begin; i < end; ++i) {
          std::vector<double> p;
          double m = -1e300, sum = 0;
          for (int64_t j = begin; j < end; ++j) {
            double d = 0;
            for (int e = 0; e < c.head_dim; ++e) {
              d += double(c.a[i * 3 * hidden + h * c.head_dim + e]) *
                   c.a[j * 3 * hidden + hidden + h * c.head_dim + e];
            }
            p.push_back(d / std::sqrt(double(c.head_dim)));
            m = std::max(m, p.back());
          }
          for (double& x : p) sum += (x = std::exp(x - m));
          for (int64_t j = begin; j < end; ++j) {
            for (int e = 0; e < c.head_dim; ++e) {
              out[i * hidden + h * c.head_dim + e] +=
                  p[j - begin] / sum * c.a[j * 3 * hidden + 2 * hidden + h * c.head_dim + e];
            }
          }
        }
      }
    }
  } else if (op == "quant_linear" || op == "quant_linear_silu" || op == "gather_rows") {
    const size_t row_bytes = GgmlRowBytes(c.type, c.inner);
    std::vector<float> w(static_cast<size_t>(c.cols * c.inner));
    for (int64_t j = 0; j < c.cols; ++j) {
      DequantizeRow(c.type, c.raw.data() + j * row_bytes, c.inner, w.data() + j * c.inner);
    }
    if (op == "gather_rows") {
      for (int32_t id : c.ids)
        out.insert(out.end(), w.begin() + id * c.inner, w.begin() + (id + 1) * c.inner);
    } else {
      const bool silu = op == "quant_linear_silu";
      for (int64_t i = 0; i < c.rows; ++i) {
        for (int64_t j = 0; j < c.cols; ++j) {
          double s = silu ? c.c[j] : 0.0;
          for (int64_t k = 0; k < c.inner; ++k)
            s += double(c.a[i * c.inner + k]) * w[j * c.inner + k];
          out.push_back(silu ? SiluRef(s) : s);
        }
      }
    }
  } else if (op == "add" || op == "multiply") {
    for (size_t i = 0; i < c.a.size(); ++i) {
      out.push_back(op == "add" ? double(c.a[i]) + c.b[i] : double(c.a[i]) * c.b[i]);
    }
  } else if (op == "copy_rows") {  // rows 2..5 of a into rows 1..4 of b
    out.assign(c.b.begin(), c.b.end());
    for (int64_t r = 0; r < 4; ++r) {
      for (int64_t j = 0; j < c.cols; ++j) out[(1 + r) * c.cols + j] = c.a[(2 + r) * c.cols + j];
    }
  } else if (op == "scatter_rows") {  // rows 0..5 of a to rows 6, 0, 1 of b; 3, 4, 2 of b's copy
    std::vector<double> b(c.b.begin(), c.b.end()), b2 = b;
    const int64_t to[] = {6, 0, 1, 3, 4, 2};
    for (int64_t r = 0; r < 6; ++r) {
      std::vector<double>& dst = r < 3 ? b : b2;
      for (int64_t j = 0; j < c.cols; ++j) dst[to[r] * c.cols + j] = c.a[r * c.cols + j];
    }
    out = b;
    out.insert(out.end(), b2.begin(), b2.end());
  } else if (op == "rope_adjacent" || op == "rope_halves") {
    out.assign(c.a.begin(), c.a.end());
    const int hd = c.head_dim;
    for (int64_t t = 0; t < c.rows; ++t) {
      for (int h = 0; h < c.heads; ++h) {
        for (int i = 0; i < hd / 2; ++i) {
          const double a = c.positions[t] * std::pow(10000.0, -2.0 * i / hd);
          const int64_t base = (t * c.heads + h) * hd;
          const int64_t x0 = base + (op == "rope_adjacent" ? 2 * i : i);
          const int64_t x1 = base + (op == "rope_adjacent" ? 2 * i + 1 : i + hd / 2);
          const double v0 = c.a[x0], v1 = c.a[x1];
          out[x0] = v0 * std::cos(a) - v1 * std::sin(a);
          out[x1] = v0 * std::sin(a) + v1 * std::cos(a);
        }
      }
    }
  } else if (op == "cached_attention") {
    const int64_t kv_width = int64_t{c.kv_heads} * c.head_dim,
                  width = int64_t{c.heads} * c.head_dim;
    const size_t half = c.d.size() / 2;
    for (int64_t t = 0; t < c.rows; ++t) {
      const float* k = c.cache_of[t] == 0 ? c.b.data() : c.d.data();
      const float* v = c.cache_of[t] == 0 ? c.c.data() : c.d.data() + half;
      for (int h = 0; h < c.heads; ++h) {
        const int64_t col = int64_t{h / (c.heads / c.kv_heads)} * c.head_dim;
        std::vector<double> p;
        double m = -1e300, sum = 0;
        for (int64_t j = 0; j < c.lengths[t]; ++j) {
          double d = 0;
          for (int e = 0; e < c.head_dim; ++e) {
            d += double(c.a[t * width + h * c.head_dim + e]) * k[j * kv_width + col + e];
          }
          p.push_back(d / std::sqrt(double(c.head_dim)));
          m = std::max(m, p.back());
        }
        for (double& x : p) sum += (x = std::exp(x - m));
        for (int e = 0; e < c.head_dim; ++e) {
          double o = 0;
          for (int64_t j = 0; j < c.lengths[t]; ++j) o += p[j] / sum * v[j * kv_width + col + e];
          out.push_back(o);
        }
      }
    }
  } else if (op == "pool_mean" || op == "pool_cls") {
    for (size_t s = 0; s + 1 < c.offsets.size(); ++s) {
      const int64_t begin = c.offsets[s], end = c.offsets[s + 1];
      for (int64_t j = 0; j < c.cols; ++j) {
        double v = 0;
        if (op == "pool_cls") {
          v = c.a[begin * c.cols + j];
        } else {
          for (int64_t t = begin; t < end; ++t) v += c.a[t * c.cols + j];
          v /= double(end - begin);
        }
        out.push_back(v);
      }
    }
  }
  return out;
}

TEST(CpuBackend, EveryOpMatchesNaiveLoops) {
  auto be = CreateCpuBackend();
  for (const OpCase& c : testing::AllOpCases(42)) {
    SCOPED_TRACE(c.op + " " + std::to_string(c.rows) + "x" + std::to_string(c.inner) + "x" +
                 std::to_string(c.cols));
    auto got = testing::RunOp(*be, DType::kF32, c);
    ASSERT_TRUE(got.ok()) << got.status();
    const std::vector<double> want = Naive(c);
    ASSERT_EQ(got->size(), want.size());
    double worst = 0;
    for (size_t i = 0; i < want.size(); ++i) {
      worst = std::max(worst, std::abs(want[i] - (*got)[i]) / std::max(1.0, std::abs(want[i])));
    }
    EXPECT_LT(worst, 1e-4) << c.op;
  }
}

// Attention of decoding rows against their own caches (grouped query heads, caches of different
// lengths, split into stretches and recombined inside) against a double-precision loop.
TEST(CpuBackend, CachedAttentionMatchesNaiveLoops) {
  auto be = CreateCpuBackend();
  std::mt19937_64 rng(5);
  std::normal_distribution<float> normal;
  for (const auto& [heads, kv_heads, head_dim] :
       std::vector<std::tuple<int, int, int>>{{9, 3, 64}, {4, 4, 32}, {8, 1, 16}}) {
    std::vector<int64_t> lengths = {1, 7, 64, 65, 300, 1500};
    const int64_t width = int64_t{heads} * head_dim, kv_width = int64_t{kv_heads} * head_dim;
    std::vector<float> qh;
    std::vector<std::vector<float>> kh(lengths.size()), vh(lengths.size());
    std::vector<Tensor> kt, vt;
    for (size_t t = 0; t < lengths.size(); ++t) {
      const int64_t cap = lengths[t] + 3;  // room past the length, never read
      kh[t].resize(static_cast<size_t>(cap * kv_width));
      vh[t].resize(kh[t].size());
      for (float& x : kh[t]) x = 2 * normal(rng);
      for (float& x : vh[t]) x = normal(rng);
      kt.push_back(*be->Allocate(DType::kF32, {cap, kv_width}));
      vt.push_back(*be->Allocate(DType::kF32, {cap, kv_width}));
      ASSERT_TRUE(be->CopyFromHost(kh[t].data(), DType::kF32, kh[t].size(), kt.back(), 0).ok());
      ASSERT_TRUE(be->CopyFromHost(vh[t].data(), DType::kF32, vh[t].size(), vt.back(), 0).ok());
    }
    std::vector<Backend::AttentionRow> rows;
    for (size_t t = 0; t < lengths.size(); ++t) rows.push_back({&kt[t], &vt[t], lengths[t]});
    // Then a prompt: 40 rows of the last cache with lengths 1261..1300 (blocks of rows sharing
    // the keys before them, and the triangles inside the blocks).
    for (int64_t i = 0; i < 40; ++i) {
      rows.push_back({&kt.back(), &vt.back(), 1261 + i});
      lengths.push_back(1261 + i);
      kh.push_back(kh.back());
      vh.push_back(vh.back());
    }
    // Then scattered rows of the same cache with growing lengths (the tokens Assemble
    // recomputes): blocks share the keys before their first row, each row reads its own rest.
    for (int64_t len : {3, 9, 10, 200, 260, 263, 700, 701, 1100, 1357, 1358, 1500}) {
      rows.push_back({&kt.back(), &vt.back(), len});
      lengths.push_back(len);
      kh.push_back(kh.back());
      vh.push_back(vh.back());
    }
    const int64_t n = static_cast<int64_t>(rows.size());
    qh.resize(static_cast<size_t>(n * width));
    for (float& x : qh) x = normal(rng);
    Tensor q = *be->Allocate(DType::kF32, {n, width});
    Tensor out = *be->Allocate(DType::kF32, {n, width});
    ASSERT_TRUE(be->CopyFromHost(qh.data(), DType::kF32, qh.size(), q, 0).ok());
    ASSERT_TRUE(be->CachedAttention(q, rows, heads, kv_heads, head_dim, out).ok());
    std::vector<float> got(static_cast<size_t>(n * width));
    ASSERT_TRUE(be->CopyToHostFloat(out, got.size(), got.data()).ok());
    double worst = 0;
    for (int64_t t = 0; t < n; ++t) {
      for (int h = 0; h < heads; ++h) {
        const int g = h / (heads / kv_heads);
        std::vector<double> s(static_cast<size_t>(lengths[t]));
        double mx = -1e300;
        for (int64_t j = 0; j < lengths[t]; ++j) {
          double d = 0;
          for (int e = 0; e < head_dim; ++e) {
            d += double(qh[t * width + h * head_dim + e]) *
                 kh[t][static_cast<size_t>(j * kv_width + g * head_dim + e)];
          }
          s[static_cast<size_t>(j)] = d / std::sqrt(double(head_dim));
          mx = std::max(mx, s[static_cast<size_t>(j)]);
        }
        double sum = 0;
        for (double& x : s) sum += (x = std::exp(x - mx));
        for (int e = 0; e < head_dim; ++e) {
          double want = 0;
          for (int64_t j = 0; j < lengths[t]; ++j) {
            want += s[static_cast<size_t>(j)] / sum *
                    vh[t][static_cast<size_t>(j * kv_width + g * head_dim + e)];
          }
          worst = std::max(worst, std::abs(want - got[t * width + h * head_dim + e]));
        }
      }
    }
    EXPECT_LT(worst, 1e-4) << heads << "/" << kv_heads << " heads of " << head_dim;
  }
}

TEST(CpuBackend, RopeMatchesDoubleAnglesWithAndWithoutItsTable) {
  const int heads = 3, head_dim = 16;
  const float theta = 10000.0f;
  // Calls within the backend's table (built, then grown), and one with positions past it, which
  // computes its angles per row; the table's rotations must equal the per-row ones exactly.
  const std::vector<std::vector<int32_t>> calls = {
      {0, 1, 7, 1023}, {1024, 5000, 16383}, {0, 1, 7, 1023, 1024, 5000, 16383, 16384, 100000}};
  for (RopeStyle style : {RopeStyle::kAdjacent, RopeStyle::kHalves}) {
    auto be = CreateCpuBackend();
    std::vector<std::vector<float>> rotated;  // per call
    std::vector<float> xh;
    for (const std::vector<int32_t>& positions : calls) {
      const auto rows = static_cast<int64_t>(positions.size());
      xh.resize(static_cast<size_t>(rows * heads * head_dim));
      for (size_t i = 0; i < xh.size(); ++i) {
        xh[i] = std::sin(0.37f * static_cast<float>(i % (7 * heads * head_dim)) + 1.0f);
      }
      Tensor x = *be->Allocate(DType::kF32, {rows, heads * head_dim});
      ASSERT_TRUE(be->CopyFromHost(xh.data(), DType::kF32, xh.size(), x, 0).ok());
      ASSERT_TRUE(be->Rope(x, heads, head_dim, positions, theta, style).ok());
      std::vector<float> got(xh.size());
      ASSERT_TRUE(be->CopyToHostFloat(x, got.size(), got.data()).ok());
      double worst = 0;
      for (int64_t t = 0; t < rows; ++t) {
        for (int h = 0; h < heads; ++h) {
          const float* in = xh.data() + (t * heads + h) * head_dim;
          const float* out = got.data() + (t * heads + h) * head_dim;
          for (int i = 0; i < head_dim / 2; ++i) {
            const int a = style == RopeStyle::kAdjacent ? 2 * i : i;
            const int b = style == RopeStyle::kAdjacent ? 2 * i + 1 : i + head_dim / 2;
            const double angle =
                positions[static_cast<size_t>(t)] * std::pow(double(theta), -2.0 * i / head_dim);
            const double c = std::cos(angle), s = std::sin(angle);
            worst = std::max(worst, std::abs(out[a] - (in[a] * c - in[b] * s)));
            worst = std::max(worst, std::abs(out[b] - (in[a] * s + in[b] * c)));
          }
        }
      }
      EXPECT_LT(worst, 1e-5);
      rotated.push_back(got);
    }
    // The same input rows at the same positions: the last call (per row) repeats the first two
    // (from the table) bit for bit. The input depends only on the row's index modulo 7.
    const size_t row = static_cast<size_t>(heads * head_dim);
    for (size_t r = 0; r < 4; ++r) {
      EXPECT_TRUE(std::equal(rotated[0].begin() + r * row, rotated[0].begin() + (r + 1) * row,
                             rotated[2].begin() + r * row));
    }
  }
}

TEST(CpuBackend, RefusesHalfPrecision) {
  auto be = CreateCpuBackend();
  EXPECT_FALSE(be->Supports(DType::kF16));
  EXPECT_TRUE(absl::IsInvalidArgument(be->Allocate(DType::kF16, {4}).status()));
}

TEST(Backend, ParsesItsChoice) {
  EXPECT_EQ(*ParseBackendChoice("auto"), BackendChoice::kAuto);
  EXPECT_EQ(*ParseBackendChoice("CPU"), BackendChoice::kCpu);
  EXPECT_EQ(*ParseBackendChoice("cuda"), BackendChoice::kCuda);
  EXPECT_TRUE(absl::IsInvalidArgument(ParseBackendChoice("tpu").status()));
}

}  // namespace
}  // namespace strata::gpu
