// strata-server: serves the Strata gRPC API over a data directory.
#include <malloc.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <utility>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/ascii.h"
#include "gpu/backend.h"
#include "index/vector_rules.h"
#include "service/grpc_log.h"
#include "service/limits.h"
#include "service/server.h"
#include "storage/log.h"
#include "storage/program_usage.h"
#include "storage/scoped_fd.h"

ABSL_FLAG(std::string, listen, "127.0.0.1:50051",
          "gRPC address (host:port; port 0 picks a free one, see --ready_file)");
ABSL_FLAG(std::string, data_dir, "strata-data", "data directory (created when missing)");
ABSL_FLAG(std::string, metrics_listen, "127.0.0.1:9464",
          "address of the Prometheus /metrics endpoint; empty = none");
ABSL_FLAG(int, threads, 0,
          "calls served at once; more concurrent calls get RESOURCE_EXHAUSTED (0 = max(32, 8 x "
          "cores))");
ABSL_FLAG(uint32_t, max_k, strata::ServerLimits().max_k, "largest k a search may ask for");
ABSL_FLAG(uint32_t, max_batch, strata::ServerLimits().max_batch,
          "most points / ids / queries in one request");
ABSL_FLAG(uint32_t, max_dimension, strata::ServerLimits().max_dimension,
          "largest vector dimension of a collection");
ABSL_FLAG(uint32_t, max_message_mb, strata::ServerLimits().max_message_bytes >> 20,
          "largest request or response, in MiB");
ABSL_FLAG(uint32_t, max_texts, strata::ServerLimits().max_texts,
          "most texts in one Embed call or text-query batch");
ABSL_FLAG(uint32_t, max_text_bytes, strata::ServerLimits().max_text_bytes,
          "largest text, in bytes");
ABSL_FLAG(uint32_t, max_payload_bytes, strata::ServerLimits().max_payload_bytes,
          "largest payload of a point (its JSON and text as stored), in bytes");
ABSL_FLAG(uint64_t, max_text_index_mb, strata::ServerLimits().max_text_index_bytes >> 20,
          "memory a collection's lexical index may hold, in MiB; an upsert whose texts could pass "
          "it gets RESOURCE_EXHAUSTED (0: no limit)");
ABSL_FLAG(uint64_t, memory_budget_mb, strata::ServerLimits().memory_budget_bytes >> 20,
          "memory for all calls in flight together (requests, copies, responses being built), in "
          "MiB; a call that would pass it gets RESOURCE_EXHAUSTED");
ABSL_FLAG(std::string, model_dir, "",
          "sentence-encoder model directory (e.g. models/all-minilm-l6-v2 from "
          "tools/fetch-models.sh) for Embed and text search; empty = no text features");
ABSL_FLAG(std::string, admin_key_file, "",
          "a file holding the admin API key (one line, at least 16 bytes); every call must then "
          "carry it as metadata 'authorization: Bearer <key>'. Also from STRATA_ADMIN_KEY. Without "
          "a key the server is open to every caller and listens on loopback only");
ABSL_FLAG(std::string, tls_cert_file, "",
          "PEM certificate chain for TLS on the gRPC port (with --tls_key_file)");
ABSL_FLAG(std::string, tls_key_file, "", "PEM private key for TLS on the gRPC port");
ABSL_FLAG(std::string, reranker_model, "",
          "cross-encoder model directory (a BertForSequenceClassification with one output, e.g. "
          "cross-encoder/ms-marco-MiniLM-L-6-v2 in safetensors) for Search's second stage "
          "(SearchRequest.rerank), on --embed_backend with --embed_precision; empty = none");
ABSL_FLAG(std::string, embed_backend, "auto",
          "engine backend: auto (CUDA when a device is present, else CPU), cpu or cuda");
ABSL_FLAG(std::string, embed_precision, "auto",
          "how the encoder's Linear layers multiply on the CPU: auto (bf16 where AMX runs it, "
          "else f32), f32, bf16 (AMX or AVX512-BF16) or int8 (AMX or AVX512-VNNI; lower accuracy)");
ABSL_FLAG(int64_t, embed_batch_tokens, 8192,
          "dynamic batching: most tokens embedded in one engine call");
ABSL_FLAG(int, embed_wait_us, 2000,
          "dynamic batching: how long a request waits for others to join its batch (us), when "
          "others are likely (requests queued, or arriving closer together than this)");
ABSL_FLAG(std::string, decoder_backend, "cpu",
          "where the Generate decoder runs: cpu, cuda, or auto (CUDA when a device is present)");
ABSL_FLAG(int64_t, decoder_gpu_kv_mb, 1024,
          "on CUDA: passage KV entries kept decompressed in GPU memory between answers (MiB; "
          "0 = none), so a hot passage is not copied to the GPU again");
ABSL_FLAG(bool, decoder_int8_activations, true,
          "decode with activations rounded to int8 per 32 values, as llama.cpp does (faster; "
          "used where the CPU has AVX512-VNNI, for Q8_0/Q4_0/Q4_1 weights); false: fp32");
ABSL_FLAG(std::string, decoder, "",
          "GGUF decoder for the Generate RPC (RAG answers), e.g. "
          "models/smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf from "
          "tools/fetch-models.sh; empty = no Generate");
ABSL_FLAG(int, generation_max_running, 16,
          "generations decoding at once (batched together on the decoder)");
ABSL_FLAG(int, generation_max_queued, 64,
          "generations waiting beyond those; more get RESOURCE_EXHAUSTED");
ABSL_FLAG(uint64_t, generation_kv_mb, 2048,
          "memory for the KV caches of running generations together, in MiB");
ABSL_FLAG(
    uint64_t, kv_cache_ram_mb, 512,
    "passage KV cache: host RAM tier, in MiB (each passage's keys and values, computed once)");
ABSL_FLAG(uint64_t, kv_cache_disk_mb, 4096,
          "passage KV cache: SSD tier under data_dir/kv-cache, in MiB; 0 = none");
ABSL_FLAG(int, max_generation_tokens, 1024, "most tokens one answer may ask for");
ABSL_FLAG(bool, auto_repair, true,
          "at start, rebuild the index of every damaged collection from its stored vectors; "
          "false: leave them damaged (searches and writes fail) until `strata-cli repair NAME`");
ABSL_FLAG(std::string, wal_recovery, "strict",
          "when the metadata store's write-ahead log is damaged before its end: strict = refuse to "
          "start, naming how many acknowledged write batches lie beyond the damage; "
          "point_in_time = open at the last intact record, dropping them (loudly: log, Stats, "
          "/metrics)");
ABSL_FLAG(double, drain_seconds, 10, "on SIGTERM/SIGINT: how long in-flight calls may finish");
ABSL_FLAG(std::string, ready_file, "",
          "once serving, write the bound port to this file (for scripts and tests)");

namespace {
int g_signal_pipe[2] = {-1, -1};
void OnSignal(int sig) {
  char c = static_cast<char>(sig);
  ssize_t ignored = write(g_signal_pipe[1], &c, 1);
  (void)ignored;
}

// RocksDB keeps every table file open, and a file that served a batched read holds two more
// descriptors (storage/uring_file_system.h): a large store outgrows the usual soft limit of
// 1,024, and running out makes writes and reads fail. The soft limit goes to the hard one.
void RaiseDescriptorLimit() {
  rlimit lim{};
  if (getrlimit(RLIMIT_NOFILE, &lim) != 0 || lim.rlim_cur >= lim.rlim_max) return;
  const rlim_t was = lim.rlim_cur;
  lim.rlim_cur = lim.rlim_max;
  if (setrlimit(RLIMIT_NOFILE, &lim) != 0) {
    strata::Log(strata::LogLevel::kWarning, "could not raise the open-file limit from %llu: %s",
                static_cast<unsigned long long>(was), std::strerror(errno));
    return;
  }
  strata::Log(strata::LogLevel::kInfo, "open-file limit raised from %llu to %llu",
              static_cast<unsigned long long>(was), static_cast<unsigned long long>(lim.rlim_cur));
}

}  // namespace

int main(int argc, char** argv) {
  // glibc raises its mmap threshold (to up to 32 MiB) each time it frees a large block, after
  // which request-sized buffers (batches of vectors, their write batches) come from the heap,
  // which keeps what is freed: a fixed threshold returns them to the system. Measured: anonymous
  // memory after 30,000 upserts of 768-d float32 vectors, 293 MiB with the default, 121 MiB
  // with this.
  mallopt(M_MMAP_THRESHOLD, 128 * 1024);
  strata::SetProgramUsage(
      "Serves the Strata gRPC API (collections, upsert, search, health, reflection) over a data\n"
      "directory; with --model_dir it also embeds text (Embed RPC, search by text); with\n"
      "--decoder it answers questions from a collection's passages (Generate RPC).\n"
      "Prometheus metrics on /metrics. Options may also come from a file: --flagfile=FILE\n"
      "(one --flag=value per line). Stops cleanly on SIGTERM or SIGINT.\n"
      "Example: strata-server --data_dir=/var/lib/strata --listen=127.0.0.1:50051");
  absl::ParseCommandLine(argc, argv);
  RaiseDescriptorLimit();

  strata::ServerOptions o;
  o.listen = absl::GetFlag(FLAGS_listen);
  o.data_dir = absl::GetFlag(FLAGS_data_dir);
  o.metrics_listen = absl::GetFlag(FLAGS_metrics_listen);
  o.threads = absl::GetFlag(FLAGS_threads);
  o.auto_repair = absl::GetFlag(FLAGS_auto_repair);
  o.wal_recovery = absl::GetFlag(FLAGS_wal_recovery);
  o.limits.max_k = absl::GetFlag(FLAGS_max_k);
  o.limits.max_batch = absl::GetFlag(FLAGS_max_batch);
  o.limits.max_dimension = absl::GetFlag(FLAGS_max_dimension);
  o.limits.max_texts = absl::GetFlag(FLAGS_max_texts);
  o.limits.max_text_bytes = absl::GetFlag(FLAGS_max_text_bytes);
  o.limits.max_payload_bytes = absl::GetFlag(FLAGS_max_payload_bytes);
  o.limits.max_text_index_bytes = absl::GetFlag(FLAGS_max_text_index_mb) << 20;
  // Limits of 0 would refuse every call of their kind (a k of 1 over --max_k=0): refused here.
  for (const auto& [flag, value] : {std::pair<const char*, uint64_t>{"max_k", o.limits.max_k},
                                    {"max_batch", o.limits.max_batch},
                                    {"max_texts", o.limits.max_texts},
                                    {"max_text_bytes", o.limits.max_text_bytes},
                                    {"max_payload_bytes", o.limits.max_payload_bytes}}) {
    if (value == 0) {
      std::fprintf(stderr, "strata-server: --%s must be at least 1\n", flag);
      return 2;
    }
  }
  if (const double drain = absl::GetFlag(FLAGS_drain_seconds); !(drain >= 0)) {
    std::fprintf(stderr, "strata-server: --drain_seconds must be 0 or more\n");
    return 2;
  }
  if (o.limits.max_dimension == 0 || o.limits.max_dimension > strata::kMaxDimension) {
    std::fprintf(stderr, "strata-server: --max_dimension must be in [1, %u]\n",
                 strata::kMaxDimension);
    return 2;
  }
  const uint64_t budget_mb = absl::GetFlag(FLAGS_memory_budget_mb);
  if (budget_mb < 64 || budget_mb > (uint64_t{1} << 24)) {
    std::fprintf(stderr, "strata-server: --memory_budget_mb must be in [64, 16777216]\n");
    return 2;
  }
  o.limits.memory_budget_bytes = budget_mb << 20;
  // A call may hold its request twice over and its response twice (service/call_budget.h).
  if (budget_mb < 4 * uint64_t{absl::GetFlag(FLAGS_max_message_mb)}) {
    std::fprintf(stderr,
                 "strata-server: --memory_budget_mb (%llu) must be at least 4 x --max_message_mb "
                 "(%u), or the largest allowed calls could never be served\n",
                 static_cast<unsigned long long>(budget_mb), absl::GetFlag(FLAGS_max_message_mb));
    return 2;
  }
  o.embed.model_dir = absl::GetFlag(FLAGS_model_dir);
  // The admin key: from a file, or the environment (then removed from it, so /proc/PID/environ no
  // longer shows it). Asked for but empty is an error, never an open server.
  const char* env_key = std::getenv("STRATA_ADMIN_KEY");
  const std::string key_file = absl::GetFlag(FLAGS_admin_key_file);
  if (!key_file.empty()) {
    auto key = strata::ReadWholeFile(key_file);
    if (!key.ok()) {
      std::fprintf(stderr, "strata-server: --admin_key_file: %s\n",
                   std::string(key.status().message()).c_str());
      return 2;
    }
    o.admin_key = std::string(absl::StripAsciiWhitespace(*key));
    if (o.admin_key.empty()) {
      std::fprintf(stderr, "strata-server: --admin_key_file %s is empty\n", key_file.c_str());
      return 2;
    }
    struct stat st {};
    if (stat(key_file.c_str(), &st) == 0 && (st.st_mode & (S_IRGRP | S_IROTH)) != 0) {
      strata::Log(strata::LogLevel::kWarning,
                  "the admin key file %s is readable by other users (chmod 600 it)", key_file);
    }
    if (env_key != nullptr) {
      strata::Log(strata::LogLevel::kWarning,
                  "both --admin_key_file and STRATA_ADMIN_KEY are set: the file's key is used");
    }
  } else if (env_key != nullptr) {
    o.admin_key = std::string(absl::StripAsciiWhitespace(env_key));
    if (o.admin_key.empty()) {
      std::fprintf(stderr, "strata-server: STRATA_ADMIN_KEY is set but empty\n");
      return 2;
    }
  }
  if (env_key != nullptr) {
    // unsetenv alone leaves the original bytes where /proc/PID/environ reads them: overwrite them.
    std::memset(const_cast<char*>(env_key), 0, std::strlen(env_key));
  }
  unsetenv("STRATA_ADMIN_KEY");
  if (!o.admin_key.empty()) {
    strata::Log(strata::LogLevel::kInfo, "admin key from %s",
                key_file.empty() ? "STRATA_ADMIN_KEY" : key_file);
  }
  o.tls_cert_file = absl::GetFlag(FLAGS_tls_cert_file);
  o.tls_key_file = absl::GetFlag(FLAGS_tls_key_file);
  o.embed.reranker_model_dir = absl::GetFlag(FLAGS_reranker_model);
  o.embed.backend = absl::GetFlag(FLAGS_embed_backend);
  o.embed.precision = absl::GetFlag(FLAGS_embed_precision);
  // Checked before anything opens, with or without --model_dir: a typo is never silently ignored.
  if (auto p = strata::gpu::ParseMatmulPrecision(o.embed.precision); !p.ok()) {
    std::fprintf(stderr, "strata-server: --embed_precision: %s\n",
                 std::string(p.status().message()).c_str());
    return 2;
  }
  o.embed.max_batch_tokens = absl::GetFlag(FLAGS_embed_batch_tokens);
  o.embed.max_wait_us = absl::GetFlag(FLAGS_embed_wait_us);
  if (o.embed.max_batch_tokens < 1 || o.embed.max_wait_us < 0) {
    std::fprintf(stderr,
                 "strata-server: --embed_batch_tokens must be >= 1 and --embed_wait_us >= 0\n");
    return 2;
  }
  o.generate.decoder = absl::GetFlag(FLAGS_decoder);
  o.generate.int8_activations = absl::GetFlag(FLAGS_decoder_int8_activations);
  o.generate.backend = absl::GetFlag(FLAGS_decoder_backend);
  o.generate.gpu_kv_mb = absl::GetFlag(FLAGS_decoder_gpu_kv_mb);
  o.generate.max_running = absl::GetFlag(FLAGS_generation_max_running);
  o.generate.max_queued = absl::GetFlag(FLAGS_generation_max_queued);
  o.generate.kv_budget_mb = absl::GetFlag(FLAGS_generation_kv_mb);
  o.generate.kv_cache_ram_mb = absl::GetFlag(FLAGS_kv_cache_ram_mb);
  o.generate.kv_cache_disk_mb = absl::GetFlag(FLAGS_kv_cache_disk_mb);
  o.generate.max_tokens = absl::GetFlag(FLAGS_max_generation_tokens);
  if (o.generate.max_running < 1 || o.generate.max_queued < 1 || o.generate.kv_budget_mb < 1 ||
      o.generate.max_tokens < 1) {
    std::fprintf(stderr,
                 "strata-server: --generation_max_running, --generation_kv_mb and "
                 "--max_generation_tokens and --generation_max_queued must be >= 1\n");
    return 2;
  }
  uint32_t mb = absl::GetFlag(FLAGS_max_message_mb);
  if (mb == 0 || mb > 2047) {
    std::fprintf(stderr, "strata-server: --max_message_mb must be in [1, 2047]\n");
    return 2;
  }
  o.limits.max_message_bytes = mb << 20;

  if (pipe(g_signal_pipe) != 0) {
    std::perror("strata-server: pipe");
    return 1;
  }
  struct sigaction sa {};
  sa.sa_handler = OnSignal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGTERM, &sa, nullptr);
  sigaction(SIGINT, &sa, nullptr);
  signal(SIGPIPE, SIG_IGN);

  strata::RouteGrpcLogs();  // gRPC's lines through ours, rate-limited (service/grpc_log.h)
  auto server = strata::Server::Start(o);
  if (!server.ok()) {
    std::fprintf(stderr, "strata-server: %s\n", std::string(server.status().message()).c_str());
    return 1;
  }
  std::string ready = absl::GetFlag(FLAGS_ready_file);
  if (!ready.empty()) {
    absl::Status s = strata::WriteFileAtomic(ready, std::to_string((*server)->port()) + "\n");
    if (!s.ok()) {
      std::fprintf(stderr, "strata-server: %s\n", std::string(s.message()).c_str());
      return 1;
    }
  }
  // Only a byte a signal handler wrote stops the server: a read that a debugger or a stop
  // interrupts otherwise (seen as "signal 0") is tried again.
  char sig = 0;
  for (;;) {
    const ssize_t n = read(g_signal_pipe[0], &sig, 1);
    if (n == 1) break;
    if (n == 0 || (n < 0 && errno != EINTR)) {  // (neither happens while the pipe is ours)
      strata::Log(strata::LogLevel::kWarning, "waiting for a signal: %s",
                  n == 0 ? "end of the signal pipe" : std::strerror(errno));
      usleep(100000);
    }
  }
  strata::Log(strata::LogLevel::kInfo, "signal %d received", static_cast<int>(sig));
  (*server)->Shutdown(absl::GetFlag(FLAGS_drain_seconds));
  server->reset();
  return 0;
}
