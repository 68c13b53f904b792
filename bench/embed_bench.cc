// strata-embed-bench: sentences/s and tokens/s of Strata's encoder at batch sizes 1..256 on real
// passages (JSONL with a 'text' field, e.g. from tools/make-passages.py), with the time split
// into tokenization and forward passes. bench/embed_peer.py runs the PyTorch reference
// (sentence-transformers) on the same passages; bench/embed.sh runs both and prints the ratios.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "gpu/encoder.h"
#include "nlohmann/json.hpp"
#include "storage/program_usage.h"

ABSL_FLAG(std::string, model_dir, "models/all-minilm-l6-v2", "sentence-encoder model directory");
ABSL_FLAG(std::string, passages, "", "JSONL passages (a 'text' field per line)");
ABSL_FLAG(std::string, backend, "auto", "auto, cpu or cuda");
ABSL_FLAG(std::string, dtype, "",
          "activation type: f32, f16, bf16 (default: the backend's; the CPU's is f32 - for bf16 "
          "matrix products there, use --precision)");
ABSL_FLAG(std::string, precision, "auto", "matmul precision on the CPU: auto, f32, bf16, int8");
ABSL_FLAG(std::string, batch_sizes, "1,4,16,64,256", "texts per Embed call");
ABSL_FLAG(int, texts, 256, "texts embedded per batch size (the first N passages)");
ABSL_FLAG(int, max_batch_tokens, 16384, "tokens per forward pass");
ABSL_FLAG(std::string, json, "", "also write the results here as JSON lines");
ABSL_FLAG(std::string, dump, "",
          "also write every passage's embedding here (raw float32, passages x dimension, in "
          "order) for bench/embed_accuracy.py");

int main(int argc, char** argv) {
  strata::SetProgramUsage(
      "Measures the encoder's throughput on real passages.\n"
      "Example: strata-embed-bench --passages=passages.jsonl --batch_sizes=1,16,256");
  absl::ParseCommandLine(argc, argv);
  using Clock = std::chrono::steady_clock;
  namespace gpu = strata::gpu;
  std::vector<std::string> texts;
  {
    std::ifstream f(absl::GetFlag(FLAGS_passages));
    if (!f) {
      std::fprintf(stderr, "strata-embed-bench: cannot open --passages '%s'\n",
                   absl::GetFlag(FLAGS_passages).c_str());
      return 1;
    }
    std::string line;
    while (static_cast<int>(texts.size()) < absl::GetFlag(FLAGS_texts) && std::getline(f, line)) {
      auto j = nlohmann::json::parse(line, nullptr, false);
      if (j.is_object() && j.contains("text") && j["text"].is_string()) {
        texts.push_back(j["text"].get<std::string>());
      }
    }
  }
  if (texts.empty()) {
    std::fprintf(stderr, "strata-embed-bench: no passages read\n");
    return 1;
  }
  gpu::EncoderOptions eo;
  auto backend = gpu::ParseBackendChoice(absl::GetFlag(FLAGS_backend));
  if (!backend.ok()) {
    std::fprintf(stderr, "strata-embed-bench: %s\n",
                 std::string(backend.status().message()).c_str());
    return 1;
  }
  eo.backend = *backend;
  const std::string dt = absl::GetFlag(FLAGS_dtype);
  if (dt == "f32") eo.dtype = gpu::DType::kF32;
  if (dt == "f16") eo.dtype = gpu::DType::kF16;
  if (dt == "bf16") eo.dtype = gpu::DType::kBF16;
  if (!dt.empty() && !eo.dtype.has_value()) {
    std::fprintf(stderr, "strata-embed-bench: --dtype must be f32, f16 or bf16, not '%s'\n",
                 dt.c_str());
    return 1;
  }
  eo.max_batch_tokens = absl::GetFlag(FLAGS_max_batch_tokens);
  auto precision = gpu::ParseMatmulPrecision(absl::GetFlag(FLAGS_precision));
  if (!precision.ok()) {
    std::fprintf(stderr, "strata-embed-bench: %s\n",
                 std::string(precision.status().message()).c_str());
    return 1;
  }
  eo.matmul = *precision;
  auto enc = gpu::Encoder::Open(absl::GetFlag(FLAGS_model_dir), eo);
  if (!enc.ok()) {
    std::fprintf(stderr, "strata-embed-bench: %s\n", std::string(enc.status().message()).c_str());
    return 1;
  }
  std::FILE* json = nullptr;
  if (!absl::GetFlag(FLAGS_json).empty()) json = std::fopen(absl::GetFlag(FLAGS_json).c_str(), "w");
  // Warm-up: first-touch of weights and workspaces.
  (void)(*enc)->Embed(absl::MakeConstSpan(texts).subspan(0, std::min<size_t>(16, texts.size())));
  std::printf("strata encoder on %s, %zu passages\n", (*enc)->backend_name().c_str(), texts.size());
  std::printf("%6s %12s %12s %10s %10s %8s\n", "batch", "sentences/s", "tokens/s", "tokenize%",
              "forward_s", "passes");
  for (absl::string_view b : absl::StrSplit(absl::GetFlag(FLAGS_batch_sizes), ',')) {
    int batch = 0;
    if (!absl::SimpleAtoi(b, &batch) || batch <= 0) {
      std::fprintf(stderr, "strata-embed-bench: bad batch size '%s'\n", std::string(b).c_str());
      return 1;
    }
    gpu::EmbedStats st;
    const auto t0 = Clock::now();
    for (size_t i = 0; i < texts.size(); i += static_cast<size_t>(batch)) {
      const size_t n = std::min(texts.size() - i, static_cast<size_t>(batch));
      auto out = (*enc)->Embed(absl::MakeConstSpan(texts).subspan(i, n), &st);
      if (!out.ok()) {
        std::fprintf(stderr, "strata-embed-bench: %s\n",
                     std::string(out.status().message()).c_str());
        return 1;
      }
    }
    const double secs = std::chrono::duration<double>(Clock::now() - t0).count();
    std::printf("%6d %12.1f %12.0f %9.1f%% %10.2f %8lld\n", batch, texts.size() / secs,
                st.tokens / secs, 100 * st.tokenize_seconds / secs, st.forward_seconds,
                static_cast<long long>(st.passes));
    if (json != nullptr) {
      std::fprintf(json,
                   "{\"engine\": \"strata\", \"backend\": \"%s\", \"batch\": %d, \"texts\": %zu, "
                   "\"tokens\": %lld, \"seconds\": %.4f}\n",
                   (*enc)->backend_kind() == gpu::BackendKind::kCuda ? "cuda" : "cpu", batch,
                   texts.size(), static_cast<long long>(st.tokens), secs);
    }
    std::fflush(stdout);
  }
  if (json != nullptr) std::fclose(json);
  if (!absl::GetFlag(FLAGS_dump).empty()) {
    auto all = (*enc)->Embed(texts);
    std::FILE* f = all.ok() ? std::fopen(absl::GetFlag(FLAGS_dump).c_str(), "wb") : nullptr;
    if (f == nullptr || std::fwrite(all->data(), sizeof(float), all->size(), f) != all->size() ||
        std::fclose(f) != 0) {
      std::fprintf(stderr, "strata-embed-bench: cannot write --dump '%s'\n",
                   absl::GetFlag(FLAGS_dump).c_str());
      return 1;
    }
  }
  return 0;
}
