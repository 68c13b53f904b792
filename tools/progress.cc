#include "tools/progress.h"

#include <unistd.h>

#include <cstdio>

namespace strata {
namespace {

std::string Hms(double s) {
  char buf[32];
  auto t = static_cast<long>(s + 0.5);
  if (t >= 3600) {
    std::snprintf(buf, sizeof buf, "%ldh%02ldm", t / 3600, (t / 60) % 60);
  } else {
    std::snprintf(buf, sizeof buf, "%ldm%02lds", t / 60, t % 60);
  }
  return buf;
}

}  // namespace

ProgressBar::ProgressBar(std::string label, uint64_t total, std::string unit)
    : label_(std::move(label)),
      unit_(std::move(unit)),
      total_(total),
      tty_(isatty(STDERR_FILENO) != 0),
      start_(std::chrono::steady_clock::now()),
      last_draw_(start_) {}

ProgressBar::~ProgressBar() { Finish(); }

void ProgressBar::Restart(std::string label, uint64_t total) {
  Finish();
  std::lock_guard<std::mutex> lock(mu_);
  label_ = std::move(label);
  total_ = total;
  finished_ = false;
  last_decile_ = -1;
  start_ = last_draw_ = std::chrono::steady_clock::now();
}

void ProgressBar::Update(uint64_t done) {
  std::lock_guard<std::mutex> lock(mu_);
  if (finished_) return;
  auto now = std::chrono::steady_clock::now();
  if (tty_) {
    if (now - last_draw_ < std::chrono::milliseconds(100) && done < total_) return;
  } else {
    int decile = total_ ? static_cast<int>(done * 10 / total_) : 10;
    if (decile == last_decile_) return;
    last_decile_ = decile;
  }
  last_draw_ = now;
  if (done >= total_) {
    finished_ = true;
    Draw(total_, true);
    return;
  }
  Draw(done, false);
}

void ProgressBar::Finish() {
  std::lock_guard<std::mutex> lock(mu_);
  if (finished_) return;
  finished_ = true;
  Draw(total_, true);
}

void ProgressBar::Stop(uint64_t done) {
  std::lock_guard<std::mutex> lock(mu_);
  if (finished_) return;
  finished_ = true;
  Draw(done, true);
}

void ProgressBar::Draw(uint64_t done, bool final) {
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  double frac = total_ ? static_cast<double>(done) / static_cast<double>(total_) : 1.0;
  // No rate (nor eta) from less than half a second, not even in the final line: a burst divided
  // by microseconds reads as billions per second (a build phase followed from a client).
  constexpr double kMinSecondsForRate = 0.5;
  double rate = secs >= kMinSecondsForRate ? static_cast<double>(done) / secs : 0;
  char per_second[32] = "-/s";
  if (rate > 0) std::snprintf(per_second, sizeof(per_second), "%.0f/s", rate);
  std::string eta =
      (rate > 0 && done < total_) ? Hms(static_cast<double>(total_ - done) / rate) : "-";
  constexpr int kWidth = 30;
  int filled = static_cast<int>(frac * kWidth);
  std::string bar(static_cast<size_t>(filled), '#');
  bar.resize(kWidth, '.');
  std::fprintf(stderr, "%s%-22s [%s] %5.1f%% %llu/%llu %s %s elapsed %s eta %s%s", tty_ ? "\r" : "",
               label_.c_str(), bar.c_str(), 100 * frac, static_cast<unsigned long long>(done),
               static_cast<unsigned long long>(total_), unit_.c_str(), per_second,
               Hms(secs).c_str(), eta.c_str(), (final || !tty_) ? "\n" : "");
  std::fflush(stderr);
}

}  // namespace strata
