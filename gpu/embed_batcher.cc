#include "gpu/embed_batcher.h"

#include <algorithm>

#include "storage/status_macros.h"

namespace strata::gpu {
namespace {

// How often a waiting call checks whether its caller has gone.
constexpr absl::Duration kCancelPoll = absl::Milliseconds(20);

}  // namespace

EmbedBatcher::EmbedBatcher(Encoder* encoder, EmbedBatcherOptions options)
    : encoder_(encoder), options_(options), worker_([this] { Run(); }) {}

EmbedBatcher::~EmbedBatcher() {
  {
    MutexLock lock(&mu_);
    stop_ = true;
  }
  worker_.join();
}

EmbedBatcherStats EmbedBatcher::stats() const {
  MutexLock lock(&mu_);
  return stats_;
}

absl::StatusOr<std::vector<float>> EmbedBatcher::Embed(absl::Span<const std::string> texts,
                                                       EmbedStats* stats,
                                                       const std::function<bool()>& cancelled) {
  int64_t truncated = 0;
  const std::vector<std::vector<int32_t>> seqs = encoder_->TokenizeAll(texts, &truncated);
  Request req;
  for (const auto& s : seqs) req.tokens += static_cast<int64_t>(s.size());
  std::vector<float> out(texts.size() * static_cast<size_t>(encoder_->dimension()));
  if (texts.empty()) return out;
  req.sequences = seqs;
  req.out = out.data();
  if (cancelled && cancelled()) {  // gone while its texts were tokenized
    MutexLock lock(&mu_);
    stats_.cancelled += 1;
    return absl::CancelledError("the embedding was abandoned by its caller");
  }
  {
    MutexLock lock(&mu_);
    if (stop_) return absl::UnavailableError("the embedding engine is shutting down");
    req.arrived = absl::Now();
    last_gap_ = req.arrived - last_arrival_;
    last_arrival_ = req.arrived;
    queue_.push_back(&req);
    queued_tokens_ += req.tokens;
    if (!cancelled) {
      mu_.Await(absl::Condition(&req.done));
    } else {
      // Poll the caller's cancellation while waiting. The worker writes into req.out (this
      // frame's buffer) while the batch runs, so a running request is only marked abandoned and
      // waited for: the worker stops its batch at the next pass when nobody else is in it.
      while (!mu_.AwaitWithTimeout(absl::Condition(&req.done), kCancelPoll)) {
        if (!cancelled()) continue;
        auto it = std::find(queue_.begin(), queue_.end(), &req);
        if (it != queue_.end()) {
          queue_.erase(it);
          queued_tokens_ -= req.tokens;
          stats_.cancelled += 1;
          return absl::CancelledError("the embedding was abandoned by its caller");
        }
        if (!req.abandoned.exchange(true)) stats_.cancelled += 1;
      }
    }
    stats_.truncated += static_cast<uint64_t>(truncated);
  }
  RETURN_IF_ERROR(req.status);
  if (stats != nullptr) {
    stats->texts += static_cast<int64_t>(texts.size());
    stats->tokens += req.tokens;
    stats->truncated += truncated;
  }
  return out;
}

void EmbedBatcher::Run() {
  for (;;) {
    std::vector<Request*> batch;
    {
      MutexLock lock(&mu_);
      auto has_work = [this]()
                          ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return stop_ || !queue_.empty(); };
      mu_.Await(absl::Condition(&has_work));
      if (queue_.empty()) return;  // stopping with nothing queued
      if (!stop_ && (queue_.size() > 1 || last_gap_ < options_.max_wait)) {
        // Company is likely: hold the window open until the budget is full or the first has
        // waited max_wait.
        auto full = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
          return stop_ || queued_tokens_ >= options_.max_batch_tokens;
        };
        stats_.held += 1;
        mu_.AwaitWithDeadline(absl::Condition(&full), queue_.front()->arrived + options_.max_wait);
      }
      if (stop_) {
        for (Request* r : queue_) {
          r->status = absl::UnavailableError("the embedding engine is shutting down");
          r->done = true;
        }
        queue_.clear();
        queued_tokens_ = 0;
        continue;
      }
      int64_t tokens = 0;
      while (!queue_.empty() &&
             (batch.empty() || tokens + queue_.front()->tokens <= options_.max_batch_tokens)) {
        tokens += queue_.front()->tokens;
        batch.push_back(queue_.front());
        queue_.pop_front();
      }
      queued_tokens_ -= tokens;
    }
    // One encoder call over every request's sequences (the encoder splits it into passes).
    std::vector<std::vector<int32_t>> all;
    for (Request* r : batch) all.insert(all.end(), r->sequences.begin(), r->sequences.end());
    const size_t dim = static_cast<size_t>(encoder_->dimension());
    std::vector<float> out(all.size() * dim);
    // Stops between passes once every request in the batch has been abandoned.
    const auto all_abandoned = [&batch] {
      return std::all_of(batch.begin(), batch.end(),
                         [](const Request* r) { return r->abandoned.load(); });
    };
    absl::Status s = encoder_->EmbedTokens(all, out.data(), nullptr, all_abandoned);
    MutexLock lock(&mu_);
    size_t row = 0;
    for (Request* r : batch) {
      r->status = s;
      if (s.ok()) {
        std::copy_n(out.data() + row * dim, r->sequences.size() * dim, r->out);
        stats_.requests += 1;
        stats_.texts += r->sequences.size();
        stats_.tokens += static_cast<uint64_t>(r->tokens);
      }
      row += r->sequences.size();
      r->done = true;
    }
    stats_.batches += 1;
  }
}

}  // namespace strata::gpu
