#include "gpu/generator.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "base/retry_later.h"
#include "storage/log.h"
#include "storage/status_macros.h"

namespace strata::gpu {
namespace {
double Seconds(std::chrono::steady_clock::duration d) {
  return std::chrono::duration<double>(d).count();
}
}  // namespace

Generator::Generator(Decoder* decoder, GeneratorOptions options)
    : decoder_(decoder), options_(options), thread_([this] { Loop(); }) {}

Generator::~Generator() {
  {
    MutexLock lock(&mu_);
    stopping_ = true;
  }
  thread_.join();
}

size_t Generator::SequenceBytes(int64_t positions) const {
  const DecoderConfig& c = decoder_->config();
  return static_cast<size_t>(positions) * static_cast<size_t>(c.layers) * 2 *
         static_cast<size_t>(c.kv_heads) * static_cast<size_t>(c.head_dim) * sizeof(float);
}

GeneratorStats Generator::stats() const {
  MutexLock lock(&mu_);
  GeneratorStats s = stats_;
  s.queued = static_cast<int64_t>(queue_.size());
  s.kv_bytes = kv_in_use_;
  return s;
}

absl::StatusOr<std::shared_ptr<GenerationControl>> Generator::Submit(GenerationRequest r) {
  const int64_t positions = static_cast<int64_t>(r.prompt.size()) + r.max_tokens;
  if (r.prompt.empty() || r.max_tokens < 1) {
    return absl::InvalidArgumentError("a generation needs a prompt and max_tokens >= 1");
  }
  if (positions > decoder_->config().context_length) {
    return absl::InvalidArgumentError(
        absl::StrCat("the prompt's ", r.prompt.size(), " tokens + max_tokens ", r.max_tokens,
                     " exceed the model's context of ", decoder_->config().context_length));
  }
  RETURN_IF_ERROR(CheckSamplingParams(r.sampling));
  std::vector<bool> made(r.spans.size(), false);
  for (const GenerationRequest::SpanSource& m : r.to_make) {
    if (m.span >= r.spans.size() || r.spans[m.span].kv != nullptr || !m.make || made[m.span]) {
      return absl::InvalidArgumentError(
          "an entry to make must name, once, a span that has no entry");
    }
    made[m.span] = true;
  }
  for (size_t i = 0; i < r.spans.size(); ++i) {
    if (r.spans[i].kv == nullptr && !made[i]) {
      return absl::InvalidArgumentError(
          absl::StrCat("cached span ", i, " has no entry and none to make"));
    }
  }
  auto job = std::make_unique<Job>();
  job->kv_bytes = SequenceBytes(positions);
  if (job->kv_bytes > options_.kv_budget_bytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("this generation's KV cache (", job->kv_bytes >> 20, " MiB) exceeds ",
                     options_.kv_budget_name, " (", options_.kv_budget_bytes >> 20,
                     " MiB) by itself; ask for fewer passages or tokens"));
  }
  job->control = std::make_shared<GenerationControl>();
  job->submitted = Clock::now();
  job->req = std::move(r);
  auto control = job->control;
  MutexLock lock(&mu_);
  if (stopping_) return absl::UnavailableError("the generator is shutting down");
  if (static_cast<int>(queue_.size()) >= options_.max_queued) {
    return absl::ResourceExhaustedError(
        absl::StrCat(options_.max_queued, " generations are already waiting; ", kRetryLater));
  }
  queue_.push_back(std::move(job));
  return control;
}

absl::Status Generator::RunTask(const std::function<absl::Status()>& task,
                                const std::function<bool()>& cancelled) {
  auto t = std::make_shared<Task>();
  t->run = &task;
  MutexLock lock(&mu_);
  if (stopping_) return absl::UnavailableError("the generator is shutting down");
  if (static_cast<int>(tasks_.size()) >= options_.max_queued) {
    return absl::ResourceExhaustedError(
        absl::StrCat(options_.max_queued, " decoder tasks are already waiting; ", kRetryLater));
  }
  tasks_.push_back(t);
  // Waits for the scheduler, asking `cancelled` every 50 ms.
  auto done = [&t]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return t->done; };
  while (!mu_.AwaitWithTimeout(absl::Condition(&done), absl::Milliseconds(50))) {
    if (cancelled && cancelled() && !t->done) {
      // Skipped if the scheduler has not taken it yet; if it is running, it ends first (it uses
      // `task`, owned by the caller) and its own status is returned.
      t->abandoned = true;
      mu_.Await(absl::Condition(&done));
      break;
    }
  }
  return t->status;
}

void Generator::Finish(std::unique_ptr<Job> job, const std::string& reason, absl::Status status) {
  job->result.finish_reason = reason;
  job->result.status = std::move(status);
  if (job->result.generated_tokens > 0) {
    job->result.decode_seconds = Seconds(Clock::now() - job->first_token);
  }
  {
    MutexLock lock(&mu_);
    if (job->admitted) kv_in_use_ -= job->kv_bytes;
    // (the job has left them)
    stats_.preparing = static_cast<int64_t>(preparing_.size() + filling_.size());
    if (reason == "cancelled") {
      ++stats_.cancelled;
    } else if (!job->result.status.ok()) {
      ++stats_.failed;
    } else {
      ++stats_.completed;
    }
  }
  if (job->req.on_done) job->req.on_done(job->result);
}

bool Generator::Deliver(Job& job, int32_t token) {
  if (job.result.generated_tokens == 0) {
    job.first_token = Clock::now();
    job.result.first_token_seconds = Seconds(job.first_token - job.submitted);
  }
  const auto& stops = job.req.stop_tokens;
  if (std::find(stops.begin(), stops.end(), token) != stops.end()) return false;
  ++job.result.generated_tokens;
  job.history.push_back(token);
  if (job.req.on_token && !job.req.on_token(token)) {
    job.control->Cancel();
    return false;
  }
  job.next = token;
  return job.result.generated_tokens < job.req.max_tokens;
}

std::string Generator::EndReason(const Job& job) {
  if (job.control->cancelled()) return "cancelled";
  if (job.result.generated_tokens >= job.req.max_tokens) return "length";
  return "stop";  // an end-of-turn token, or the caller's Stop()
}

void Generator::End(std::unique_ptr<Job> job) {
  const std::string reason = EndReason(*job);
  Finish(std::move(job), reason, absl::OkStatus());
}

void Generator::Admit(std::unique_ptr<Job> job) {
  if (job->control->ended()) {
    End(std::move(job));
    return;
  }
  auto seq =
      decoder_->NewSequence(static_cast<int64_t>(job->req.prompt.size()) + job->req.max_tokens);
  if (!seq.ok()) {
    Finish(std::move(job), "error", seq.status());
    return;
  }
  job->seq = std::move(*seq);
  if (job->req.to_make.empty()) {
    Launch(std::move(job));
  } else {
    preparing_.push_back(std::move(job));
  }
}

void Generator::Prepare() {
  std::unique_ptr<Job>& job = preparing_.front();
  if (job->control->ended()) {
    std::unique_ptr<Job> j = std::move(job);
    preparing_.pop_front();
    End(std::move(j));
    return;
  }
  const auto t0 = Clock::now();
  GenerationRequest::SpanSource& source = job->req.to_make[job->made];
  absl::StatusOr<std::shared_ptr<const PassageKv>> kv = source.make();
  job->result.make_seconds += Seconds(Clock::now() - t0);
  if (!kv.ok() || *kv == nullptr) {
    std::unique_ptr<Job> j = std::move(job);
    preparing_.pop_front();
    Finish(std::move(j), "error",
           kv.ok() ? absl::InternalError("an entry was made empty") : kv.status());
    return;
  }
  job->req.spans[source.span].kv = kv->get();
  job->req.keep.push_back(*std::move(kv));
  {
    MutexLock lock(&mu_);
    ++stats_.entries_made;
  }
  if (++job->made < job->req.to_make.size()) return;
  std::unique_ptr<Job> j = std::move(job);
  preparing_.pop_front();
  Launch(std::move(j));
}

void Generator::Launch(std::unique_ptr<Job> job) {
  job->result.prompt_tokens = static_cast<int64_t>(job->req.prompt.size());
  filling_.push_back(std::move(job));
}

void Generator::Fill() {
  // Ended ones leave first, wherever they wait (their KV budget goes back at once).
  for (auto it = filling_.begin(); it != filling_.end();) {
    if ((*it)->control->ended()) {
      std::unique_ptr<Job> j = std::move(*it);
      it = filling_.erase(it);
      End(std::move(j));
    } else {
      ++it;
    }
  }
  if (filling_.empty()) return;
  std::unique_ptr<Job>& front = filling_.front();
  Job& job = *front;
  const auto t0 = Clock::now();
  if (job.fill == nullptr) {
    // Its turn: the prompt begins (an assembly loads its entries and picks its rows here, one
    // job at a time, so a waiting job holds no states), and this iteration's work is that.
    // Waiting only: the entries it made (make_seconds) came between.
    job.result.queue_seconds = std::max(0.0, Seconds(t0 - job.submitted) - job.result.make_seconds);
    absl::StatusOr<std::unique_ptr<PromptFill>> fill = decoder_->BeginFill(
        job.req.prompt, job.req.spans, job.req.assemble, *job.seq, &job.result.assemble);
    job.result.prefill_seconds += Seconds(Clock::now() - t0);
    if (!fill.ok()) {
      std::unique_ptr<Job> j = std::move(front);
      filling_.pop_front();
      Finish(std::move(j), "error", fill.status());
      return;
    }
    job.fill = *std::move(fill);
    // A prefill's begin does no pass: its first stretch runs now.
    if (!job.req.spans.empty()) return;
  }
  std::vector<float> logits;
  const auto t1 = Clock::now();
  const absl::Status s =
      decoder_->FillSome(*job.fill, running_.empty() ? 0 : options_.fill_rows, &logits);
  job.result.prefill_seconds += Seconds(Clock::now() - t1);
  if (s.ok() && !job.fill->done()) return;
  std::unique_ptr<Job> j = std::move(front);
  filling_.pop_front();
  j->fill.reset();
  if (!s.ok()) {
    Finish(std::move(j), "error", s);
    return;
  }
  j->sampler = std::make_unique<Sampler>(j->req.sampling);
  j->history = j->req.prompt;
  if (Deliver(*j, j->sampler->Next(absl::MakeSpan(logits), j->history))) {
    running_.push_back(std::move(j));
  } else {
    End(std::move(j));
  }
}

void Generator::Loop() {
  std::vector<float> logits;
  while (true) {
    std::unique_ptr<Job> admit;
    std::shared_ptr<Task> task;
    std::vector<std::unique_ptr<Job>> cancelled_waiting;
    {
      MutexLock lock(&mu_);
      auto ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        return stopping_ || !queue_.empty() || !running_.empty() || !preparing_.empty() ||
               !filling_.empty() || !tasks_.empty();
      };
      mu_.Await(absl::Condition(&ready));
      if (stopping_) break;
      if (!tasks_.empty()) task = std::move(tasks_.front()), tasks_.pop_front();
      // Waiters ended by their callers leave the queue at once (their callers wait on them).
      for (auto it = queue_.begin(); it != queue_.end();) {
        if ((*it)->control->ended()) {
          cancelled_waiting.push_back(std::move(*it));
          it = queue_.erase(it);
        } else {
          ++it;
        }
      }
      // Admit one waiting generation per iteration when it fits.
      const size_t busy = running_.size() + preparing_.size() + filling_.size();
      if (!queue_.empty() && static_cast<int>(busy) < options_.max_running &&
          kv_in_use_ + queue_.front()->kv_bytes <= options_.kv_budget_bytes) {
        admit = std::move(queue_.front());
        queue_.pop_front();
        kv_in_use_ += admit->kv_bytes;
        admit->admitted = true;
      }
      stats_.running = static_cast<int64_t>(running_.size());
      stats_.preparing =
          static_cast<int64_t>(preparing_.size() + filling_.size()) + (admit != nullptr ? 1 : 0);
    }
    for (auto& j : cancelled_waiting) End(std::move(j));
    if (admit != nullptr) Admit(std::move(admit));
    // One missing entry and one task per iteration, between the running generations' passes.
    if (!preparing_.empty()) Prepare();
    if (task != nullptr) {
      bool skip = false;
      {
        MutexLock lock(&mu_);
        skip = task->abandoned;
      }
      absl::Status s = skip ? absl::CancelledError("the caller went away") : (*task->run)();
      MutexLock lock(&mu_);
      task->status = std::move(s);
      task->done = true;
      stats_.tasks_run += skip ? 0 : 1;
    }
    // A stretch of a prompt, between the running generations' passes.
    if (!filling_.empty()) Fill();
    // Ended ones leave before the pass.
    for (size_t i = 0; i < running_.size();) {
      if (running_[i]->control->ended()) {
        std::unique_ptr<Job> j = std::move(running_[i]);
        running_.erase(running_.begin() + static_cast<std::ptrdiff_t>(i));
        End(std::move(j));
      } else {
        ++i;
      }
    }
    if (running_.empty()) {
      MutexLock lock(&mu_);
      stats_.running = 0;
      stats_.preparing = static_cast<int64_t>(preparing_.size() + filling_.size());
      continue;
    }
    std::vector<DecoderRow> rows;
    for (auto& j : running_) rows.push_back({j->seq.get(), j->next, true});
    const absl::Status s = decoder_->Step(rows, &logits);
    {
      MutexLock lock(&mu_);
      ++stats_.steps;
      stats_.batched_rows += static_cast<int64_t>(rows.size());
    }
    const int vocab = decoder_->config().vocab_size;
    std::vector<std::unique_ptr<Job>> still;
    for (size_t i = 0; i < running_.size(); ++i) {
      std::unique_ptr<Job>& j = running_[i];
      if (!s.ok()) {
        Finish(std::move(j), "error", s);
        continue;
      }
      const int32_t token =
          j->sampler->Next(absl::MakeSpan(logits.data() + i * static_cast<size_t>(vocab),
                                          static_cast<size_t>(vocab)),
                           j->history);
      if (Deliver(*j, token)) {
        still.push_back(std::move(j));
      } else {
        End(std::move(j));
      }
    }
    running_ = std::move(still);
    MutexLock lock(&mu_);
    stats_.running = static_cast<int64_t>(running_.size());
    stats_.preparing = static_cast<int64_t>(preparing_.size() + filling_.size());
  }
  // Shutting down: everyone ends cancelled.
  for (auto& j : running_) Finish(std::move(j), "cancelled", absl::OkStatus());
  running_.clear();
  for (auto& j : preparing_) Finish(std::move(j), "cancelled", absl::OkStatus());
  preparing_.clear();
  for (auto& j : filling_) Finish(std::move(j), "cancelled", absl::OkStatus());
  filling_.clear();
  std::deque<std::unique_ptr<Job>> queued;
  {
    MutexLock lock(&mu_);
    queued.swap(queue_);
  }
  for (auto& j : queued) Finish(std::move(j), "cancelled", absl::OkStatus());
  MutexLock lock(&mu_);
  for (auto& t : tasks_) {
    t->status = absl::UnavailableError("the generator is shutting down");
    t->done = true;
  }
  tasks_.clear();
}

}  // namespace strata::gpu
