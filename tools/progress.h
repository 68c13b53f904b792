// A terminal progress bar for long work (generation, ground truth, builds): percentage, rate and
// ETA on one redrawn stderr line when stderr is a terminal, else a plain line every ~10%.
// Thread-safe: Update() may be called from any thread.
#ifndef STRATA_TOOLS_PROGRESS_H_
#define STRATA_TOOLS_PROGRESS_H_

#include <chrono>
#include <cstdint>
#include <mutex>
#include <string>

namespace strata {

class ProgressBar final {
 public:
  ProgressBar(std::string label, uint64_t total, std::string unit = "");
  ~ProgressBar();
  ProgressBar(const ProgressBar&) = delete;
  ProgressBar& operator=(const ProgressBar&) = delete;

  void Update(uint64_t done);
  // Switches to a new phase (label and total), finishing the current line.
  void Restart(std::string label, uint64_t total);
  void Finish();
  // Ends the line where the work stopped short of the total (an error, a limit reached).
  void Stop(uint64_t done);

 private:
  void Draw(uint64_t done, bool final);
  std::mutex mu_;
  std::string label_, unit_;
  uint64_t total_;
  bool tty_;
  bool finished_ = false;
  int last_decile_ = -1;
  std::chrono::steady_clock::time_point start_, last_draw_;
};

}  // namespace strata

#endif  // STRATA_TOOLS_PROGRESS_H_
