// strata-generate: runs a GGUF decoder locally (no server) on a prompt, streaming the answer, and
// reports prompt and decode speed. For checking a model file and the engine; RAG answers go
// through the server.
#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_split.h"
#include "gpu/decoder.h"
#include "gpu/sampler.h"
#include "storage/program_usage.h"

ABSL_FLAG(std::string, model, "models/smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf",
          "GGUF decoder (tools/fetch-models.sh fetches the default)");
ABSL_FLAG(std::string, prompt, "", "the user's message (required)");
ABSL_FLAG(std::string, system, "", "system message (default: the model's own, if it has one)");
ABSL_FLAG(bool, raw, false, "feed the prompt as it is, without the chat template");
ABSL_FLAG(int32_t, max_tokens, 128, "tokens to generate at most");
ABSL_FLAG(float, temperature, 0.0f, "0 for greedy decoding");
ABSL_FLAG(int32_t, top_k, 0, "sample among the k most likely tokens (0: all)");
ABSL_FLAG(float, top_p, 1.0f, "nucleus sampling mass");
ABSL_FLAG(float, repetition_penalty, 1.0f, "penalty on tokens already present (1: none)");
ABSL_FLAG(uint64_t, seed, 0, "sampling seed");
ABSL_FLAG(std::string, stop, "", "comma-separated strings that end the answer");
ABSL_FLAG(int32_t, context, 2048, "positions to reserve for prompt + answer");
ABSL_FLAG(std::string, backend, "cpu", "where the decoder runs: cpu, cuda or auto");
ABSL_FLAG(bool, int8_activations, true,
          "decode with int8 activations, as llama.cpp does (where the CPU has AVX512-VNNI); "
          "false: fp32");

namespace {

using Clock = std::chrono::steady_clock;
double Seconds(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

int Fail(const absl::Status& s) {
  std::fprintf(stderr, "strata-generate: %s\n", std::string(s.message()).c_str());
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  strata::SetProgramUsage(
      "Runs a GGUF decoder locally on one prompt and streams the answer.\n"
      "  strata-generate --prompt \"What is a B-tree?\" [--max_tokens 128 --temperature 0]");
  absl::ParseCommandLine(argc, argv);
  const std::string prompt = absl::GetFlag(FLAGS_prompt);
  if (prompt.empty()) {
    std::fprintf(stderr, "strata-generate: --prompt is required (see --help)\n");
    return 2;
  }
  strata::gpu::SamplingParams sp;
  sp.temperature = absl::GetFlag(FLAGS_temperature);
  sp.top_k = absl::GetFlag(FLAGS_top_k);
  sp.top_p = absl::GetFlag(FLAGS_top_p);
  sp.repetition_penalty = absl::GetFlag(FLAGS_repetition_penalty);
  sp.seed = absl::GetFlag(FLAGS_seed);
  if (absl::Status s = strata::gpu::CheckSamplingParams(sp); !s.ok()) return Fail(s);
  const int max_tokens = absl::GetFlag(FLAGS_max_tokens);
  if (max_tokens < 1) return Fail(absl::InvalidArgumentError("--max_tokens must be at least 1"));
  std::vector<std::string> stops;
  for (absl::string_view s : absl::StrSplit(absl::GetFlag(FLAGS_stop), ',', absl::SkipEmpty())) {
    stops.emplace_back(s);
  }

  const auto t_load = Clock::now();
  auto backend = strata::gpu::ParseBackendChoice(absl::GetFlag(FLAGS_backend));
  if (!backend.ok()) return Fail(backend.status());
  auto decoder = strata::gpu::Decoder::Open(
      absl::GetFlag(FLAGS_model),
      strata::gpu::DecoderOptions{.backend = *backend,
                                  .int8_activations = absl::GetFlag(FLAGS_int8_activations)});
  if (!decoder.ok()) return Fail(decoder.status());
  strata::gpu::Decoder& d = **decoder;
  std::vector<int32_t> tokens;
  if (absl::GetFlag(FLAGS_raw)) {
    tokens = d.tokenizer().Encode(prompt, /*allow_special=*/false);
  } else {
    std::vector<strata::gpu::ChatMessage> messages;
    if (!absl::GetFlag(FLAGS_system).empty()) {
      messages.push_back({"system", absl::GetFlag(FLAGS_system)});
    }
    messages.push_back({"user", prompt});
    tokens = d.chat().Encode(d.tokenizer(), messages, /*add_generation_prompt=*/true);
  }
  const int64_t context = absl::GetFlag(FLAGS_context);
  if (static_cast<int64_t>(tokens.size()) + max_tokens > context) {
    return Fail(absl::InvalidArgumentError(absl::StrCat("the prompt's ", tokens.size(),
                                                        " tokens + --max_tokens ", max_tokens,
                                                        " exceed --context ", context)));
  }
  auto seq = d.NewSequence(context);
  if (!seq.ok()) return Fail(seq.status());
  const auto t_prefill = Clock::now();
  std::vector<float> logits;
  if (absl::Status s = d.Forward(tokens, **seq, &logits); !s.ok()) return Fail(s);
  const auto t_first = Clock::now();

  strata::gpu::Sampler sampler(sp);
  std::vector<int32_t> history = tokens;
  std::string answer;
  int generated = 0;
  const char* why = "max_tokens";
  while (true) {
    const int32_t next = sampler.Next(absl::MakeSpan(logits), history);
    if (next == d.eos_id() || next == d.chat().end_of_turn()) {
      why = "end of turn";
      break;
    }
    ++generated;
    history.push_back(next);
    const std::string piece = d.tokenizer().Decode(next);
    answer += piece;
    std::fwrite(piece.data(), 1, piece.size(), stdout);
    std::fflush(stdout);
    bool stopped = false;
    for (const std::string& s : stops) stopped = stopped || answer.find(s) != std::string::npos;
    if (stopped) {
      why = "stop string";
      break;
    }
    if (generated >= max_tokens) break;
    if (absl::Status s = d.Forward({&next, 1}, **seq, &logits); !s.ok()) return Fail(s);
  }
  const auto t_end = Clock::now();
  std::printf("\n");
  const double decode_s = Seconds(t_first, t_end);
  std::fprintf(stderr,
               "strata-generate: %s | load %.2f s | prompt %zu tokens in %.3f s (%.0f tok/s) | "
               "%d tokens in %.3f s (%.1f tok/s) | ended by %s\n",
               d.backend_name().c_str(), Seconds(t_load, t_prefill), tokens.size(),
               Seconds(t_prefill, t_first), tokens.size() / Seconds(t_prefill, t_first), generated,
               decode_s, generated > 1 ? (generated - 1) / decode_s : 0.0, why);
  return 0;
}
