#include "tests/gpu/decoder_backend_checks.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "gpu/decoder.h"
#include "gpu/passage_kv.h"
#include "storage/status_macros.h"
#include "tests/gpu/tiny_decoder.h"

namespace strata::testing {
namespace {

double MaxDiff(const std::vector<float>& a, const std::vector<float>& b) {
  if (a.size() != b.size()) return INFINITY;
  double d = 0;
  for (size_t i = 0; i < a.size(); ++i) d = std::max(d, std::fabs(double(a[i]) - b[i]));
  return d;
}

}  // namespace

absl::StatusOr<std::vector<std::string>> TinyDecodersAgainstTheReference(BackendFactory make,
                                                                         int layers,
                                                                         const std::string& dir) {
  using gpu::DecoderArch;
  using gpu::GgmlType;
  std::vector<std::string> problems;
  for (GgmlType t : {GgmlType::kF32, GgmlType::kF16, GgmlType::kBF16, GgmlType::kQ8_0,
                     GgmlType::kQ4_0, GgmlType::kQ4_1, GgmlType::kQ4_K, GgmlType::kQ6_K}) {
    for (DecoderArch arch : {DecoderArch::kLlama, DecoderArch::kQwen2}) {
      TinyDecoderSpec spec;
      spec.arch = arch;
      spec.matrix_type = t;
      spec.embedding_type = arch == DecoderArch::kLlama ? GgmlType::kQ8_0 : GgmlType::kF16;
      spec.tied = arch == DecoderArch::kLlama;
      spec.layers = layers;
      ASSIGN_OR_RETURN(auto backend, make());
      ASSIGN_OR_RETURN(TinyDecoderCheck r,
                       CheckTinyDecoder(spec, dir + "/tiny.gguf", {}, std::move(backend)));
      const std::string name =
          absl::StrCat(gpu::GgmlTypeName(t), arch == DecoderArch::kLlama ? " llama" : " qwen2");
      if (r.argmax_mismatches != 0) {
        problems.push_back(absl::StrCat(name, ": top-1 differs at ", r.argmax_mismatches, " of ",
                                        r.positions, " positions"));
      }
      if (!(r.prompt_worst < 2e-3)) {
        problems.push_back(absl::StrCat(name, ": prompt log-probs off by ", r.prompt_worst));
      }
      if (!(r.step_worst < 2e-3)) {
        problems.push_back(absl::StrCat(name, ": token-by-token log-probs off by ", r.step_worst));
      }
    }
  }
  return problems;
}

absl::StatusOr<std::vector<std::string>> AssemblyAgainstTheCpu(BackendFactory make,
                                                               const std::string& dir) {
  const std::string path = dir + "/tiny.gguf";
  RETURN_IF_ERROR(WriteTinyDecoder({}, path));
  gpu::DecoderOptions fp32;  // the CUDA backend's products keep fp32 activations
  fp32.int8_activations = false;
  ASSIGN_OR_RETURN(auto cpu, gpu::Decoder::Open(path, fp32));
  ASSIGN_OR_RETURN(auto backend, make());
  ASSIGN_OR_RETURN(auto other, gpu::Decoder::Open(path, {}, std::move(backend)));
  ASSIGN_OR_RETURN(auto want, AssemblyLogits(*cpu));
  ASSIGN_OR_RETURN(auto got, AssemblyLogits(*other));
  std::vector<std::string> problems;
  if (double d = MaxDiff(got[1], got[2]); !(d < 1e-4)) {
    problems.push_back(absl::StrCat("cached in place vs full prefill: ", d));
  }
  if (double d = MaxDiff(got[3], got[0]); !(d < 1e-4)) {
    problems.push_back(absl::StrCat("moved, all recomputed vs full prefill: ", d));
  }
  for (size_t i = 0; i < got.size(); ++i) {
    if (double d = MaxDiff(got[i], want[i]); !(d < 1e-3)) {
      problems.push_back(absl::StrCat("assembly ", i, " vs the CPU's: ", d));
    }
  }
  return problems;
}

absl::StatusOr<std::vector<std::string>> DeviceTierRepeats(BackendFactory make,
                                                           const std::string& dir) {
  const std::string path = dir + "/tiny.gguf";
  RETURN_IF_ERROR(WriteTinyDecoder({}, path));
  std::vector<std::string> problems;
  std::vector<float> want;
  for (int64_t budget : {int64_t{0}, int64_t{64} << 20}) {
    ASSIGN_OR_RETURN(auto backend, make());
    gpu::DecoderOptions options;
    options.device_span_bytes = budget;
    ASSIGN_OR_RETURN(auto d, gpu::Decoder::Open(path, options, std::move(backend)));
    const int vocab = d->config().vocab_size;
    std::vector<int32_t> prefix, passage, all;
    for (int i = 0; i < 36; ++i) (i < 6 ? prefix : passage).push_back((i * 31 + 3) % vocab);
    ASSIGN_OR_RETURN(auto seq, d->NewSequence(64));
    RETURN_IF_ERROR(d->Forward(prefix, *seq, nullptr));
    gpu::KvCapture cap;
    RETURN_IF_ERROR(d->Forward(passage, *seq, nullptr, false, &cap));
    const gpu::PassageKv kv =
        gpu::PassageKv::Compress(gpu::KvFormat::kInt8, static_cast<int>(passage.size()),
                                 d->config().kv_heads, d->config().head_dim, cap.k, cap.v);
    all = prefix;
    all.insert(all.end(), passage.begin(), passage.end());
    for (int32_t t : {5, 9, 11, 2}) all.push_back(t % vocab);
    const gpu::CachedSpan span{static_cast<int64_t>(prefix.size()), &kv, 2};
    gpu::AssembleOptions o;
    o.recompute_ratio = 0.2f;
    for (int pass = 0; pass < 2; ++pass) {
      ASSIGN_OR_RETURN(auto s, d->NewSequence(64));
      std::vector<float> logits;
      gpu::AssembleStats st;
      RETURN_IF_ERROR(d->Assemble(all, {&span, 1}, o, *s, &logits, &st));
      const int64_t hits = budget > 0 && pass == 1 ? 1 : 0;
      if (st.device_hits != hits) {
        problems.push_back(absl::StrCat("budget ", budget, ", pass ", pass, ": ", st.device_hits,
                                        " device-tier hits, expected ", hits));
      }
      if (want.empty()) want = logits;
      if (double diff = MaxDiff(logits, want); !(diff <= 1e-6)) {
        problems.push_back(absl::StrCat("budget ", budget, ", pass ", pass,
                                        ": logits differ from the first assembly's by ", diff));
      }
    }
  }
  return problems;
}

}  // namespace strata::testing
