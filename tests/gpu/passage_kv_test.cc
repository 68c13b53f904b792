// Passage KV: compression error bounds per format, the byte form, and assembly of cached passages
// into a context against full prefill on a tiny model.
#include "gpu/passage_kv.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "gpu/decoder.h"
#include "tests/gpu/tiny_decoder.h"
#include "tests/test_util.h"

namespace strata::gpu {
namespace {

void RandomKv(int layers, int tokens, int width, std::vector<std::vector<float>>* k,
              std::vector<std::vector<float>>* v) {
  std::mt19937_64 rng(5);
  std::normal_distribution<float> normal;
  k->assign(static_cast<size_t>(layers), {});
  v->assign(static_cast<size_t>(layers), {});
  for (int l = 0; l < layers; ++l) {
    for (int i = 0; i < tokens * width; ++i) {
      // Keys with an outlier channel, as real keys have.
      (*k)[static_cast<size_t>(l)].push_back(normal(rng) * (i % width == 3 ? 20.0f : 1.0f));
      (*v)[static_cast<size_t>(l)].push_back(normal(rng));
    }
  }
}

TEST(PassageKv, EachFormatStaysWithinItsStep) {
  const int layers = 3, tokens = 70, heads = 2, hd = 64, w = heads * hd;
  std::vector<std::vector<float>> k, v;
  RandomKv(layers, tokens, w, &k, &v);
  for (KvFormat f : {KvFormat::kF32, KvFormat::kF16, KvFormat::kInt8, KvFormat::kInt4}) {
    SCOPED_TRACE(std::string(KvFormatName(f)));
    const PassageKv p = PassageKv::Compress(f, tokens, heads, hd, k, v);
    EXPECT_EQ(p.tokens(), tokens);
    EXPECT_EQ(p.layers(), layers);
    std::vector<float> dk(static_cast<size_t>(tokens * w)), dv(dk.size());
    double worst_k = 0, worst_v = 0;
    for (int l = 0; l < layers; ++l) {
      p.Decompress(l, dk.data(), dv.data());
      for (size_t i = 0; i < dk.size(); ++i) {
        // Relative to the value range of the group the value was coded in: a step is range/255
        // (int8) or range/15 (int4); keys of the outlier channel have their own range.
        const double kr = (i % w == 3) ? 20.0 : 1.0;
        worst_k = std::max(worst_k, std::fabs(dk[i] - k[static_cast<size_t>(l)][i]) / kr);
        worst_v =
            std::max(worst_v, static_cast<double>(std::fabs(dv[i] - v[static_cast<size_t>(l)][i])));
      }
    }
    const double step = f == KvFormat::kInt8 ? 8.0 / 255 : f == KvFormat::kInt4 ? 8.0 / 15 : 0.0;
    const double bound = f == KvFormat::kF32 ? 0.0 : f == KvFormat::kF16 ? 1e-2 : step * 0.75;
    EXPECT_LE(worst_k, bound);
    EXPECT_LE(worst_v, bound);
    if (f == KvFormat::kInt4) {
      EXPECT_GT(worst_v, 0.01);  // int4 is lossy: the check above is not vacuous
    }
  }
  const PassageKv i8 = PassageKv::Compress(KvFormat::kInt8, tokens, heads, hd, k, v);
  const PassageKv i4 = PassageKv::Compress(KvFormat::kInt4, tokens, heads, hd, k, v);
  const PassageKv f16 = PassageKv::Compress(KvFormat::kF16, tokens, heads, hd, k, v);
  EXPECT_LT(i8.bytes(), f16.bytes() * 6 / 10);
  EXPECT_LT(i4.bytes(), i8.bytes() * 6 / 10);
}

TEST(PassageKv, ByteFormRoundTripsAndRefusesDamage) {
  std::vector<std::vector<float>> k, v;
  RandomKv(2, 40, 32, &k, &v);
  const PassageKv p = PassageKv::Compress(KvFormat::kInt4, 40, 2, 16, k, v);
  const std::string bytes = p.Serialize();
  auto back = PassageKv::Parse(bytes);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->Serialize(), bytes);
  std::mt19937_64 rng(1);
  for (int i = 0; i < 200; ++i) {
    std::string b = bytes;
    b[rng() % b.size()] ^= static_cast<char>(1 + rng() % 255);
    EXPECT_EQ(PassageKv::Parse(b).status().code(), absl::StatusCode::kDataLoss);
  }
  for (size_t n : {size_t{0}, size_t{10}, bytes.size() - 1}) {
    EXPECT_EQ(PassageKv::Parse(bytes.substr(0, n)).status().code(), absl::StatusCode::kDataLoss);
  }
}

class AssembleTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(testing::WriteTinyDecoder({}, path_).ok());
    auto d = Decoder::Open(path_);
    ASSERT_TRUE(d.ok()) << d.status();
    d_ = std::move(*d);
  }
  std::vector<int32_t> Tokens(int n, int salt) {
    std::vector<int32_t> t;
    for (int i = 0; i < n; ++i) t.push_back((i * 31 + salt * 7 + 3) % 256);
    return t;
  }
  // The passage's KV computed after `prefix`, as the cache makes it.
  PassageKv Cache(const std::vector<int32_t>& prefix, const std::vector<int32_t>& passage,
                  KvFormat f) {
    auto seq = d_->NewSequence(256);
    EXPECT_TRUE(seq.ok());
    EXPECT_TRUE(d_->Forward(prefix, **seq, nullptr).ok());
    KvCapture cap;
    EXPECT_TRUE(d_->Forward(passage, **seq, nullptr, false, &cap).ok());
    const DecoderConfig& c = d_->config();
    return PassageKv::Compress(f, static_cast<int>(passage.size()), c.kv_heads, c.head_dim, cap.k,
                               cap.v);
  }
  std::vector<float> Full(const std::vector<int32_t>& tokens) {
    auto seq = d_->NewSequence(256);
    std::vector<float> logits;
    EXPECT_TRUE(d_->Forward(tokens, **seq, &logits).ok());
    return logits;
  }
  // Two passages, both cached right after a 6-token prefix; in the context p2 lands 31 positions
  // later, behind p1 and a one-token marker (its keys must be rotated to where it lands), and a
  // question follows.
  struct TwoPassages {
    std::vector<int32_t> prefix, all;
    PassageKv kv1, kv2;
    int64_t at2 = 0;
  };
  TwoPassages MakeTwoPassages() {
    const auto prefix = Tokens(6, 1), p1 = Tokens(30, 2), p2 = Tokens(33, 4), q = Tokens(5, 3);
    TwoPassages t{prefix, prefix, Cache(prefix, p1, KvFormat::kF32),
                  Cache(prefix, p2, KvFormat::kF32)};
    t.all.insert(t.all.end(), p1.begin(), p1.end());
    t.all.push_back(77);
    t.at2 = static_cast<int64_t>(t.all.size());
    t.all.insert(t.all.end(), p2.begin(), p2.end());
    t.all.insert(t.all.end(), q.begin(), q.end());
    return t;
  }
  static double MaxDiff(const std::vector<float>& a, const std::vector<float>& b) {
    double d = 0;
    for (size_t i = 0; i < a.size(); ++i)
      d = std::max(d, static_cast<double>(std::fabs(a[i] - b[i])));
    return d;
  }
  testing::TempDir dir_;
  std::string path_ = dir_.File("tiny.gguf");
  std::unique_ptr<Decoder> d_;
};

TEST_F(AssembleTest, OnePassageWhereItWasCachedEqualsFullPrefill) {
  const auto prefix = Tokens(6, 1), passage = Tokens(40, 2), question = Tokens(5, 3);
  const PassageKv kv = Cache(prefix, passage, KvFormat::kF32);
  std::vector<int32_t> all = prefix;
  all.insert(all.end(), passage.begin(), passage.end());
  all.insert(all.end(), question.begin(), question.end());
  auto seq = d_->NewSequence(256);
  std::vector<float> logits;
  AssembleStats st;
  const CachedSpan span{static_cast<int64_t>(prefix.size()), &kv, 0};
  ASSERT_TRUE(d_->Assemble(all, {&span, 1}, {}, **seq, &logits, &st).ok());
  EXPECT_LT(MaxDiff(logits, Full(all)), 1e-4);
  EXPECT_EQ(st.cached_tokens, 40);
  EXPECT_EQ(st.recomputed_tokens, 0);
  EXPECT_EQ(st.fresh_tokens, 11);
  EXPECT_EQ((*seq)->length(), static_cast<int64_t>(all.size()));
  // The sequence decodes on from there as after a full prefill.
  auto full_seq = d_->NewSequence(256);
  std::vector<float> a, b;
  ASSERT_TRUE(d_->Forward(all, **full_seq, nullptr).ok());
  const std::vector<int32_t> next = {9};
  ASSERT_TRUE(d_->Forward(next, **seq, &a).ok());
  ASSERT_TRUE(d_->Forward(next, **full_seq, &b).ok());
  EXPECT_LT(MaxDiff(a, b), 1e-4);
}

TEST_F(AssembleTest, MovedPassagesRecomputedInFullEqualFullPrefill) {
  const TwoPassages t = MakeTwoPassages();
  const std::vector<int32_t>& prefix = t.prefix;
  const std::vector<int32_t>& all = t.all;
  const PassageKv &kv1 = t.kv1, &kv2 = t.kv2;
  const int64_t at2 = t.at2;
  const std::vector<float> full = Full(all);
  const CachedSpan spans[] = {{6, &kv1, 0}, {at2, &kv2, 0}};
  for (RecomputeSelection selection :
       {RecomputeSelection::kQuestionAttention, RecomputeSelection::kKeyValueDeviation}) {
    SCOPED_TRACE(static_cast<int>(selection));
    auto run = [&](float ratio, AssembleStats* st) {
      auto seq = d_->NewSequence(256);
      std::vector<float> logits;
      AssembleOptions o;
      o.recompute_ratio = ratio;
      o.selection = selection;
      EXPECT_TRUE(d_->Assemble(all, spans, o, **seq, &logits, st).ok());
      return logits;
    };
    AssembleStats all_st, none_st, some_st;
    EXPECT_LT(MaxDiff(run(1.0f, &all_st), full), 1e-4);  // everything recomputed: exact
    EXPECT_EQ(all_st.recomputed_tokens, 63);
    const double plain = MaxDiff(run(0.0f, &none_st), full);
    EXPECT_GT(plain, 1e-4);  // p2 never saw p1: plain concatenation differs
    EXPECT_EQ(none_st.recomputed_tokens, 0);
    const double some = MaxDiff(run(0.3f, &some_st), full);
    EXPECT_EQ(some_st.recomputed_tokens, 19);  // round(0.3 * 63)
    EXPECT_LT(some, plain);
    // The prefix cached too, where it was computed (exact): still 19 of the passages' 63
    // tokens, none of the prefix's, and the same logits.
    auto seq0 = d_->NewSequence(256);
    KvCapture cap;
    ASSERT_TRUE(d_->Forward(prefix, **seq0, nullptr, false, &cap).ok());
    const DecoderConfig& c = d_->config();
    const PassageKv kv0 = PassageKv::Compress(KvFormat::kF32, static_cast<int>(prefix.size()),
                                              c.kv_heads, c.head_dim, cap.k, cap.v);
    const CachedSpan with_prefix[] = {{0, &kv0, 0, /*exact=*/true}, spans[0], spans[1]};
    auto seq = d_->NewSequence(256);
    std::vector<float> logits;
    AssembleOptions o;
    o.recompute_ratio = 0.3f;
    o.selection = selection;
    AssembleStats st;
    ASSERT_TRUE(d_->Assemble(all, with_prefix, o, **seq, &logits, &st).ok());
    EXPECT_EQ(st.cached_tokens, 69);
    EXPECT_EQ(st.recomputed_tokens, 19);
    EXPECT_LT(MaxDiff(logits, run(0.3f, &some_st)), 1e-4);
  }
}

// A prompt filled a stretch at a time (BeginFill / FillSome, as the generator runs it beside
// other generations) gives what the one pass gives: logits, stats, and a sequence that decodes on
// alike; for a prefill (no span) and an assembly with each selection.
TEST_F(AssembleTest, AFillInStretchesEqualsTheOnePass) {
  const TwoPassages t = MakeTwoPassages();
  const std::vector<int32_t>& all = t.all;
  const CachedSpan two[] = {{6, &t.kv1, 2}, {t.at2, &t.kv2, 0}};
  const std::vector<int32_t> next = {9};
  struct Case {
    absl::Span<const CachedSpan> spans;
    RecomputeSelection selection;
  };
  for (const Case& k : {Case{{}, RecomputeSelection::kKeyValueDeviation},
                        Case{two, RecomputeSelection::kKeyValueDeviation},
                        Case{two, RecomputeSelection::kQuestionAttention}}) {
    SCOPED_TRACE(::testing::Message()
                 << k.spans.size() << " spans, selection " << static_cast<int>(k.selection));
    AssembleOptions o;
    o.recompute_ratio = 0.3f;
    o.selection = k.selection;
    // The one pass, and the token after it.
    auto one = d_->NewSequence(256);
    std::vector<float> want, want_next;
    AssembleStats want_st;
    if (k.spans.empty()) {
      ASSERT_TRUE(d_->Forward(all, **one, &want).ok());
    } else {
      ASSERT_TRUE(d_->Assemble(all, k.spans, o, **one, &want, &want_st).ok());
    }
    ASSERT_TRUE(d_->Forward(next, **one, &want_next).ok());
    for (int64_t stretch : {1, 7, 0}) {
      SCOPED_TRACE(stretch);
      auto seq = d_->NewSequence(256);
      AssembleStats st;
      auto fill = d_->BeginFill(all, k.spans, o, **seq, &st);
      ASSERT_TRUE(fill.ok()) << fill.status();
      EXPECT_EQ(st.recomputed_tokens, want_st.recomputed_tokens);
      const int64_t rows = (*fill)->rows_left();
      EXPECT_EQ(rows, k.spans.empty() ? static_cast<int64_t>(all.size())
                                      : want_st.fresh_tokens + want_st.recomputed_tokens);
      std::vector<float> logits;
      int passes = 0;
      while (!(*fill)->done()) {
        EXPECT_TRUE(logits.empty());  // only the last stretch gives the logits
        ASSERT_TRUE(d_->FillSome(**fill, stretch, &logits).ok());
        ++passes;
      }
      int want_passes = 0;  // a tail of 16 rows or fewer goes with the stretch before it
      for (int64_t left = rows; left > 0; ++want_passes) {
        const int64_t m = stretch == 0 || left - stretch <= 16 ? left : stretch;
        left -= m;
      }
      EXPECT_EQ(passes, want_passes);
      ASSERT_EQ(logits.size(), want.size());
      EXPECT_LT(MaxDiff(logits, want), 1e-4);
      EXPECT_EQ((*seq)->length(), static_cast<int64_t>(all.size()));
      std::vector<float> after;
      ASSERT_TRUE(d_->Forward(next, **seq, &after).ok());
      EXPECT_LT(MaxDiff(after, want_next), 1e-4);
      EXPECT_EQ(d_->FillSome(**fill, 1, &logits).code(), absl::StatusCode::kFailedPrecondition);
    }
  }
  // BeginFill refuses what Forward and Assemble refuse.
  auto seq = d_->NewSequence(16);
  EXPECT_EQ(d_->BeginFill(all, {}, {}, **seq).status().code(), absl::StatusCode::kOutOfRange);
  auto big = d_->NewSequence(256);
  const std::vector<int32_t> bad = {1, 100000};
  EXPECT_EQ(d_->BeginFill(bad, {}, {}, **big).status().code(), absl::StatusCode::kInvalidArgument);
  const CachedSpan at_end{static_cast<int64_t>(all.size()) - 33, &t.kv2, 0};
  EXPECT_EQ(d_->BeginFill(all, {&at_end, 1}, {}, **big).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(AssembleTest, RefusesSpansThatDoNotFit) {
  const auto prefix = Tokens(6, 1), passage = Tokens(20, 2);
  const PassageKv kv = Cache(prefix, passage, KvFormat::kInt8);
  std::vector<int32_t> all = prefix;
  all.insert(all.end(), passage.begin(), passage.end());
  auto seq = d_->NewSequence(256);
  std::vector<float> logits;
  const CachedSpan last{6, &kv, 0};  // covers the last token
  EXPECT_EQ(d_->Assemble(all, {&last, 1}, {}, **seq, &logits).code(),
            absl::StatusCode::kInvalidArgument);
  all.push_back(5);
  const CachedSpan past{10, &kv, 0};  // runs past the end
  EXPECT_EQ(d_->Assemble(all, {&past, 1}, {}, **seq, &logits).code(),
            absl::StatusCode::kInvalidArgument);
  const CachedSpan spans[] = {{6, &kv, 0}, {10, &kv, 0}};  // overlap
  all.resize(60, 5);
  EXPECT_EQ(d_->Assemble(all, spans, {}, **seq, &logits).code(),
            absl::StatusCode::kInvalidArgument);
  AssembleOptions bad;
  bad.recompute_ratio = 1.5f;
  EXPECT_EQ(d_->Assemble(all, {&last, 1}, bad, **seq, &logits).code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace strata::gpu
