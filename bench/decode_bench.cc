// strata-decode-bench: the decoder's speed in-process, apart from the server: prefill of a
// context of --context tokens, then --tokens decode steps, run three ways (Decoder::Forward one
// token at a time, Decoder::Step, and the continuous-batching Generator with --concurrent
// generations at once). Tokens are fixed ids (speed does not depend on them). Prints one line per
// way; bench/generation.sh puts llama.cpp's decode speed on the same model beside it. A fourth way,
// "arrivals", measures what a running generation feels when others arrive: one generation of a
// short prompt decodes while --arrivals generations of --context prompt tokens are submitted one
// after another, and it reports the running one's gaps between tokens and the newcomers' time to
// first token, with the whole prompt filled in one iteration and in stretches of --fill_rows.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "base/mutex.h"
#include "base/notification.h"
#include "gpu/decoder.h"
#include "gpu/generator.h"
#include "storage/program_usage.h"

ABSL_FLAG(std::string, model, "models/smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf",
          "GGUF decoder");
ABSL_FLAG(int, context, 32, "prompt tokens before decoding");
ABSL_FLAG(int, tokens, 128, "tokens decoded");
ABSL_FLAG(int, concurrent, 1, "generator: generations at once");
ABSL_FLAG(std::string, ways, "forward,step,generator",
          "which ways to run (forward, step, generator, arrivals)");
ABSL_FLAG(int, arrivals, 8, "arrivals: generations submitted, one after another");
ABSL_FLAG(int64_t, fill_rows, strata::gpu::GeneratorOptions{}.fill_rows,
          "arrivals: rows of a prompt per iteration beside running generations (compared with "
          "the whole prompt at once)");
ABSL_FLAG(std::string, backend, "cpu", "decoder backend: cpu, cuda or auto");
ABSL_FLAG(bool, int8_activations, true,
          "decode with int8 activations (gpu/decoder.h DecoderOptions); false: fp32");

namespace {
using Clock = std::chrono::steady_clock;
double Since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}
}  // namespace

int main(int argc, char** argv) {
  strata::SetProgramUsage("Decoder speed in-process: prefill, then decode, three ways.");
  absl::ParseCommandLine(argc, argv);
  strata::gpu::DecoderOptions options;
  options.int8_activations = absl::GetFlag(FLAGS_int8_activations);
  auto backend = strata::gpu::ParseBackendChoice(absl::GetFlag(FLAGS_backend));
  if (!backend.ok()) {
    std::fprintf(stderr, "strata-decode-bench: %s\n",
                 std::string(backend.status().message()).c_str());
    return 1;
  }
  options.backend = *backend;
  auto d = strata::gpu::Decoder::Open(absl::GetFlag(FLAGS_model), options);
  if (!d.ok()) {
    std::fprintf(stderr, "strata-decode-bench: %s\n", std::string(d.status().message()).c_str());
    return 1;
  }
  const int context = absl::GetFlag(FLAGS_context), n = absl::GetFlag(FLAGS_tokens);
  std::vector<int32_t> prompt;
  for (int i = 0; i < context; ++i) prompt.push_back(100 + (i * 37) % 20000);
  const std::string ways = absl::GetFlag(FLAGS_ways);
  std::vector<float> logits;
  {  // Untimed: the first passes pay one-time costs (a GPU loads its kernels on first use, cuBLAS
     // picks its algorithms per shape, the CPU backend grows its tables).
    auto warm = (*d)->NewSequence(context + 2);
    if (!warm.ok() || !(*d)->Forward(prompt, **warm, &logits).ok()) return 1;
    int32_t t = 200;
    if (!(*d)->Forward({&t, 1}, **warm, &logits).ok()) return 1;
  }
  for (const char* way : {"forward", "step"}) {
    if (ways.find(way) == std::string::npos) continue;
    auto seq = (*d)->NewSequence(context + n);
    const auto t0 = Clock::now();
    if (!(*d)->Forward(prompt, **seq, &logits).ok()) return 1;
    const double prefill = Since(t0);
    const auto t1 = Clock::now();
    for (int i = 0; i < n; ++i) {
      int32_t t = 200 + i;
      strata::gpu::DecoderRow row{seq->get(), t, true};
      const absl::Status s = std::string(way) == "forward" ? (*d)->Forward({&t, 1}, **seq, &logits)
                                                           : (*d)->Step({&row, 1}, &logits);
      if (!s.ok()) return 1;
    }
    const double decode = Since(t1);
    std::printf("%-9s context %5d: prefill %7.1f tok/s | decode %6.1f tok/s (%.2f ms/token)\n", way,
                context, context / prefill, n / decode, 1000 * decode / n);
  }
  if (ways.find("generator") != std::string::npos) {
    strata::gpu::Generator g(d->get(), {});
    const int c = absl::GetFlag(FLAGS_concurrent);
    strata::Mutex mu;
    int done = 0;
    double first = 0, decode = 0;
    int64_t generated = 0;
    const auto t0 = Clock::now();
    for (int i = 0; i < c; ++i) {
      strata::gpu::GenerationRequest r;
      r.prompt = prompt;
      r.max_tokens = n;
      r.on_done = [&](const strata::gpu::GenerationResult& res) {
        strata::MutexLock lock(&mu);
        ++done;
        first += res.first_token_seconds;
        decode = std::max(decode, res.decode_seconds);
        generated += res.generated_tokens;
      };
      if (!g.Submit(std::move(r)).ok()) return 1;
    }
    {
      strata::MutexLock lock(&mu);
      auto all = [&]() { return done == c; };
      mu.Await(absl::Condition(&all));
    }
    const double wall = Since(t0);
    const strata::gpu::GeneratorStats st = g.stats();
    std::printf(
        "generator context %5d, %d at once: mean TTFT %.3f s | %.1f tok/s together "
        "(%lld tokens in %.2f s), mean batch %.2f\n",
        context, c, first / c, static_cast<double>(generated) / wall,
        static_cast<long long>(generated), wall,
        st.steps > 0 ? static_cast<double>(st.batched_rows) / st.steps : 0.0);
  }
  if (ways.find("arrivals") != std::string::npos) {
    const int arrivals = absl::GetFlag(FLAGS_arrivals);
    for (const int64_t rows : {int64_t{0}, absl::GetFlag(FLAGS_fill_rows)}) {
      strata::gpu::GeneratorOptions o;
      o.fill_rows = rows;
      strata::Mutex mu;
      std::vector<Clock::time_point> times;  // the running one's tokens
      bool stop = false;
      strata::Notification started, ended;
      // (after what its callbacks use: on an early return it ends them first)
      strata::gpu::Generator g(d->get(), o);
      strata::gpu::GenerationRequest run;
      run.prompt.assign(prompt.begin(), prompt.begin() + std::min<size_t>(32, prompt.size()));
      run.max_tokens = 100000;
      run.on_token = [&](int32_t) {
        strata::MutexLock lock(&mu);
        times.push_back(Clock::now());
        if (times.size() == 4) started.Notify();
        return !stop;
      };
      run.on_done = [&](const strata::gpu::GenerationResult&) { ended.Notify(); };
      run.max_tokens = std::min(run.max_tokens, (*d)->config().context_length - 32);
      if (!g.Submit(std::move(run)).ok()) return 1;
      started.WaitForNotification();
      size_t first = 0;
      {
        strata::MutexLock lock(&mu);
        first = times.size();
      }
      double ttft = 0;
      for (int i = 0; i < arrivals; ++i) {
        strata::Notification done;
        strata::gpu::GenerationRequest r;
        r.prompt = prompt;
        r.max_tokens = 1;
        r.on_done = [&](const strata::gpu::GenerationResult& res) {
          ttft += res.first_token_seconds;
          done.Notify();
        };
        if (!g.Submit(std::move(r)).ok()) return 1;
        done.WaitForNotification();
      }
      {
        strata::MutexLock lock(&mu);
        stop = true;
      }
      ended.WaitForNotification();
      std::vector<double> gaps;
      for (size_t i = first + 1; i < times.size(); ++i) {
        gaps.push_back(std::chrono::duration<double>(times[i] - times[i - 1]).count());
      }
      if (gaps.empty()) return 1;
      std::sort(gaps.begin(), gaps.end());
      const double span = std::chrono::duration<double>(times.back() - times[first]).count();
      std::printf(
          "arrivals  context %5d, fill %s: newcomers' mean TTFT %.3f s | the running one: "
          "%.1f tok/s, gap between tokens median %.1f ms, p99 %.1f ms, max %.1f ms\n",
          context, rows == 0 ? "whole prompt" : absl::StrCat(rows, " rows").c_str(),
          ttft / arrivals, static_cast<double>(gaps.size()) / span, 1000 * gaps[gaps.size() / 2],
          1000 * gaps[std::min(gaps.size() - 1, gaps.size() * 99 / 100)], 1000 * gaps.back());
    }
  }
  return 0;
}
