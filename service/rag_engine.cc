#include "service/rag_engine.h"

#include <sys/stat.h>

#include <algorithm>
#include <chrono>
#include <deque>

#include "absl/strings/str_cat.h"
#include "base/mutex.h"
#include "service/text_stream.h"
#include "storage/log.h"
#include "storage/status_macros.h"

namespace strata {
namespace {

using Clock = std::chrono::steady_clock;
double Since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

constexpr size_t kMaxCustomPrefixes = 8;
// How often a streaming answer sends what it has (a reader sees ~30 updates a second).
constexpr absl::Duration kStreamInterval = absl::Milliseconds(30);

// FNV-1a: the passage text's version in cache keys (stable across runs, unlike absl::Hash).
uint64_t TextVersion(absl::string_view s) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : s) h = (h ^ c) * 1099511628211ull;
  return h;
}

}  // namespace

RagEngine::~RagEngine() {
  generator_.reset();  // ends generations before the decoder goes
}

absl::StatusOr<std::unique_ptr<RagEngine>> RagEngine::Open(const RagOptions& options) {
  auto e = std::unique_ptr<RagEngine>(new RagEngine());
  e->options_ = options;
  ASSIGN_OR_RETURN(e->decoder_, gpu::Decoder::Open(options.decoder_path, options.decoder));
  struct stat st;
  const size_t size = stat(options.decoder_path.c_str(), &st) == 0 ? st.st_size : 0;
  const size_t slash = options.decoder_path.rfind('/');
  e->model_ = absl::StrCat(
      slash == std::string::npos ? options.decoder_path : options.decoder_path.substr(slash + 1),
      ":", size);
  gpu::PassageKvCacheOptions co;
  // Entries depend on the model and on the instructions they were computed after; the SSD tier
  // outlives the process, so both name the entries it may serve.
  e->cache_model_ = absl::StrCat(e->model_, ":", absl::Hex(TextVersion(options.instructions)));
  co.model = e->cache_model_;
  co.ram_bytes = options.kv_ram_bytes;
  if (options.kv_disk_bytes > 0 && !options.kv_dir.empty()) {
    ASSIGN_OR_RETURN(co.disk, gpu::OpenKvDirectory(options.kv_dir));
    co.disk_bytes = options.kv_disk_bytes;
  }
  e->cache_ = std::make_unique<gpu::PassageKvCache>(std::move(co));
  e->generator_ = std::make_unique<gpu::Generator>(e->decoder_.get(), options.generator);
  ASSIGN_OR_RETURN(e->default_prefix_, e->MakePrefix(options.instructions));
  return e;
}

absl::StatusOr<std::shared_ptr<const RagEngine::Prefix>> RagEngine::MakePrefix(
    const std::string& instructions) {
  auto p = std::make_shared<Prefix>();
  p->prompt = std::make_unique<RagPrompt>(*decoder_, instructions);
  const std::vector<int32_t>& tokens = p->prompt->prefix();
  ASSIGN_OR_RETURN(auto seq, decoder_->NewSequence(static_cast<int64_t>(tokens.size())));
  gpu::KvCapture cap;
  RETURN_IF_ERROR(decoder_->Forward(tokens, *seq, nullptr, false, &cap));
  const gpu::DecoderConfig& c = decoder_->config();
  p->kv = std::make_shared<const gpu::PassageKv>(gpu::PassageKv::Compress(
      gpu::KvFormat::kF32, static_cast<int>(tokens.size()), c.kv_heads, c.head_dim, cap.k, cap.v));
  return std::shared_ptr<const Prefix>(std::move(p));
}

absl::StatusOr<std::shared_ptr<const RagEngine::Prefix>> RagEngine::PrefixFor(
    const std::string& instructions, const std::function<bool()>& cancelled) {
  if (instructions.empty() || instructions == options_.instructions) return default_prefix_;
  {
    MutexLock lock(&mu_);
    for (auto& [text, prefix] : other_prefixes_) {
      if (text == instructions) return prefix;
    }
  }
  // Computed on the decoder's thread, in its turn, like every other piece of decoder work.
  std::shared_ptr<const Prefix> prefix;
  RETURN_IF_ERROR(generator_->RunTask(
      [&]() -> absl::Status {
        ASSIGN_OR_RETURN(prefix, MakePrefix(instructions));
        return absl::OkStatus();
      },
      cancelled));
  MutexLock lock(&mu_);
  other_prefixes_.insert(other_prefixes_.begin(), {instructions, prefix});
  if (other_prefixes_.size() > kMaxCustomPrefixes) other_prefixes_.pop_back();
  return prefix;
}

gpu::PassageKey RagEngine::Key(const std::string& collection, const RagPassage& p,
                               gpu::KvFormat format) const {
  return gpu::PassageKey{cache_model_, collection, p.id, TextVersion(p.text), format};
}

absl::StatusOr<std::shared_ptr<const gpu::PassageKv>> RagEngine::MakePassageKv(
    const gpu::PassageKey& key, const std::vector<int32_t>& tokens, uint64_t cache_epoch,
    bool* no_room, bool* stale_out) {
  const uint64_t epoch = std::min(cache_epoch, cache_->epoch());
  // Another request may have made it since this one looked (a Lookup only then: the miss is
  // already counted).
  std::shared_ptr<const gpu::PassageKv> kv;
  if (cache_->Contains(key)) {
    gpu::KvTier tier;
    kv = cache_->Lookup(key, &tier);
    if (kv != nullptr) {
      if (no_room != nullptr) *no_room = false;
      if (stale_out != nullptr) *stale_out = false;
      return kv;
    }
  }
  // Prefilled once, alone, after the shared (default) prefix.
  const gpu::PassageKv& prefix = *default_prefix_->kv;
  ASSIGN_OR_RETURN(auto seq,
                   decoder_->NewSequence(prefix.tokens() + static_cast<int64_t>(tokens.size())));
  RETURN_IF_ERROR(decoder_->Restore(prefix, *seq));
  gpu::KvCapture cap;
  RETURN_IF_ERROR(decoder_->Forward(tokens, *seq, nullptr, false, &cap));
  const gpu::DecoderConfig& c = decoder_->config();
  kv = std::make_shared<const gpu::PassageKv>(gpu::PassageKv::Compress(
      key.format, static_cast<int>(tokens.size()), c.kv_heads, c.head_dim, cap.k, cap.v));
  // Not kept when the passage was invalidated meanwhile, or the cache cannot hold it.
  bool stale = false;
  const bool in_cache = cache_->Insert(key, kv, epoch, &stale);
  if (no_room != nullptr) *no_room = !in_cache && !stale;
  if (stale_out != nullptr) *stale_out = stale;
  return kv;
}

absl::Status RagEngine::Precompute(const std::string& collection,
                                   const std::vector<RagPassage>& passages, gpu::KvFormat format,
                                   uint64_t cache_epoch, const std::function<bool()>& cancelled,
                                   PrecomputeReport* report) {
  if (format == gpu::KvFormat::kF32) {
    return absl::InvalidArgumentError("passage entries are cached as f16, int8 or int4");
  }
  const RagPrompt& prompt = *default_prefix_->prompt;
  const uint64_t dropped_before = cache_->dropped();
  uint64_t not_kept = 0;  // made, but the cache could not keep them (too large for it)
  for (const RagPassage& p : passages) {
    if (cancelled && cancelled()) {
      report->evictions = std::max(cache_->dropped() - dropped_before, not_kept);
      return absl::CancelledError("the caller went away");
    }
    bool cut = false;
    const std::vector<int32_t> tokens = prompt.PassageTokens(p.text, &cut);
    if (tokens.empty()) {
      ++report->without_text;
      continue;
    }
    const gpu::PassageKey key = Key(collection, p, format);
    if (cache_->Contains(key)) {  // (not read: a disk entry stays on disk)
      ++report->already_cached;
      continue;
    }
    std::shared_ptr<const gpu::PassageKv> made;
    bool no_room = false, stale = false;
    RETURN_IF_ERROR(generator_->RunTask(
        [&]() -> absl::Status {
          ASSIGN_OR_RETURN(made, MakePassageKv(key, tokens, cache_epoch, &no_room, &stale));
          return absl::OkStatus();
        },
        cancelled));
    ++report->computed;
    report->bytes += made->bytes();
    not_kept += no_room ? 1 : 0;
    report->stale += stale ? 1 : 0;
  }
  cache_->Flush();  // this call's spills written, so what the cache dropped for them is counted
  report->evictions = std::max(cache_->dropped() - dropped_before, not_kept);
  return absl::OkStatus();
}

absl::Status RagEngine::Check(const RagRequest& req) const {
  if (req.max_tokens < 1 || req.max_tokens > options_.max_tokens) {
    return absl::InvalidArgumentError(absl::StrCat("max_tokens ", req.max_tokens,
                                                   " is outside [1, ", options_.max_tokens,
                                                   "] (strata-server --max_generation_tokens)"));
  }
  if (!(req.recompute_ratio >= 0.0f && req.recompute_ratio <= 1.0f)) {
    return absl::InvalidArgumentError(
        absl::StrCat("recompute_ratio ", req.recompute_ratio, " is outside [0, 1]"));
  }
  if (req.recompute_first < 0 || req.recompute_first > kMaxPassageTokens) {
    return absl::InvalidArgumentError(absl::StrCat("recompute_first ", req.recompute_first,
                                                   " is outside [0, ", kMaxPassageTokens, "]"));
  }
  RETURN_IF_ERROR(gpu::CheckSamplingParams(req.sampling));
  if (!req.instructions.empty() && decoder_->tokenizer().Encode(req.instructions, false).size() >
                                       static_cast<size_t>(kMaxInstructionTokens)) {
    return absl::ResourceExhaustedError(
        absl::StrCat("the instructions (system) exceed ", kMaxInstructionTokens, " tokens"));
  }
  if (const size_t n = default_prefix_->prompt->QuestionTokens(req.question).size();
      n > static_cast<size_t>(kMaxQuestionTokens)) {
    return absl::ResourceExhaustedError(
        absl::StrCat("the question is ", n, " tokens; at most ", kMaxQuestionTokens));
  }
  return absl::OkStatus();
}

absl::Status RagEngine::Answer(const RagRequest& req,
                               const std::function<bool(const std::string&)>& on_text,
                               const std::function<bool()>& cancelled, RagReport* report) {
  RETURN_IF_ERROR(Check(req));
  ASSIGN_OR_RETURN(std::shared_ptr<const Prefix> prefix, PrefixFor(req.instructions, cancelled));
  const RagPrompt& prompt = *prefix->prompt;
  const std::vector<int32_t> question = prompt.QuestionTokens(req.question);
  // Passages: tokens, then entries (cached modes).
  const auto t_kv = Clock::now();
  std::vector<std::vector<int32_t>> bodies;
  std::vector<const RagPassage*> used;  // passages with at least one token
  for (const RagPassage& p : req.passages) {
    bool cut = false;
    std::vector<int32_t> body = prompt.PassageTokens(p.text, &cut);
    if (body.empty()) continue;  // e.g. only bytes the vocabulary has no token for
    report->passages_cut += cut ? 1 : 0;
    bodies.push_back(std::move(body));
    used.push_back(&p);
  }
  const PromptLayout layout = prompt.Build(bodies, question);
  auto made_bytes = std::make_shared<std::atomic<size_t>>(0);  // entries the generator makes
  // Checked before any passage is computed: a context that cannot fit wastes no decoder time.
  if (static_cast<int64_t>(layout.tokens.size()) + req.max_tokens >
      decoder_->config().context_length) {
    return absl::InvalidArgumentError(
        absl::StrCat("the prompt's ", layout.tokens.size(), " tokens + max_tokens ", req.max_tokens,
                     " exceed the model's context of ", decoder_->config().context_length,
                     "; ask for fewer passages or tokens"));
  }
  gpu::GenerationRequest gen;
  gen.prompt = layout.tokens;
  if (!req.full_prefill) {
    gen.spans.push_back({0, prefix->kv.get(), 0, /*exact=*/true});
    gen.keep.push_back(prefix->kv);
    for (size_t i = 0; i < used.size(); ++i) {
      if (cancelled && cancelled()) return absl::CancelledError("the client went away");
      const gpu::PassageKey key = Key(req.collection, *used[i], req.format);
      gpu::KvTier tier;
      std::shared_ptr<const gpu::PassageKv> kv = cache_->Lookup(key, &tier, &report->bytes_read);
      gen.spans.push_back({layout.passages[i].position, kv.get(),
                           static_cast<int>(req.recompute_first)});  // (checked)
      if (kv != nullptr) {
        (tier == gpu::KvTier::kRam ? report->ram_hits : report->disk_hits) += 1;
        report->cache_bytes += kv->bytes();
        gen.keep.push_back(std::move(kv));
        continue;
      }
      // A miss is made by the generator once this generation is admitted (gpu/generator.h).
      ++report->misses;
      gen.to_make.push_back(
          {gen.spans.size() - 1,
           [this, key, tokens = std::move(bodies[i]), made_bytes,
            epoch = req.cache_epoch]() -> absl::StatusOr<std::shared_ptr<const gpu::PassageKv>> {
             ASSIGN_OR_RETURN(auto made, MakePassageKv(key, tokens, epoch));
             made_bytes->fetch_add(made->bytes());
             return made;
           }});
    }
    gen.assemble.recompute_ratio = req.recompute_ratio;
  }
  report->lookup_seconds = Since(t_kv);
  report->kv_seconds = report->lookup_seconds;
  gen.sampling = req.sampling;
  gen.max_tokens = req.max_tokens;
  gen.stop_tokens = {decoder_->eos_id(), decoder_->chat().end_of_turn()};

  // Tokens come from the scheduler thread; this thread turns them into text and sends it.
  struct Events {
    Mutex mu;
    std::deque<int32_t> tokens ABSL_GUARDED_BY(mu);
    bool done ABSL_GUARDED_BY(mu) = false;
    gpu::GenerationResult result ABSL_GUARDED_BY(mu);
  };
  auto events = std::make_shared<Events>();
  gen.on_token = [events](int32_t t) {
    MutexLock lock(&events->mu);
    events->tokens.push_back(t);
    return true;
  };
  gen.on_done = [events](const gpu::GenerationResult& r) {
    MutexLock lock(&events->mu);
    events->result = r;
    events->done = true;
  };
  ASSIGN_OR_RETURN(std::shared_ptr<gpu::GenerationControl> control,
                   generator_->Submit(std::move(gen)));
  TextStream stream(req.stops);
  bool client_gone = false;
  gpu::GenerationResult result;
  while (true) {
    std::deque<int32_t> batch;
    bool done = false;
    {
      MutexLock lock(&events->mu);
      // Woken by the end only; tokens are collected every kStreamInterval. Waking per token
      // would put this thread on a core between the decoder's threads every few milliseconds,
      // and a preempted OpenMP thread stalls the whole pass (it halved decode speed on 2 cores).
      auto ready = [&events]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(events->mu) { return events->done; };
      events->mu.AwaitWithTimeout(absl::Condition(&ready), kStreamInterval);
      batch.swap(events->tokens);
      done = events->done;
      if (done) result = events->result;
    }
    std::string bytes;
    for (int32_t t : batch) bytes += decoder_->tokenizer().Decode(t);
    if (!stream.stopped() && !client_gone) {
      const std::string text = stream.Push(bytes);
      if (!text.empty() && !on_text(text)) client_gone = true;
      if (stream.stopped()) control->Stop();
    }
    if (!client_gone && cancelled && cancelled()) client_gone = true;
    if (client_gone) control->Cancel();
    if (done) break;
  }
  if (!client_gone && !stream.stopped()) {
    const std::string rest = stream.Finish();
    if (!rest.empty()) on_text(rest);
  }
  report->prompt_tokens = result.prompt_tokens;
  report->cached_tokens = result.assemble.cached_tokens;  // the instructions' and passages'
  report->recomputed_tokens = result.assemble.recomputed_tokens;
  report->generated_tokens = result.generated_tokens;
  report->queue_seconds = result.queue_seconds;
  report->cache_bytes += made_bytes->load();
  report->kv_seconds += result.make_seconds;
  report->prefill_seconds = result.prefill_seconds;
  report->first_token_seconds = result.first_token_seconds;
  report->decode_seconds = result.decode_seconds;
  report->finish_reason = stream.stopped() ? "stop_string"
                          : client_gone    ? "cancelled"
                                           : result.finish_reason;
  return result.status;
}

}  // namespace strata
