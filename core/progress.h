// A progress bar for long work: done/total, rate (with unit) and ETA on stderr.
// On a terminal it redraws one line at most 10 times a second; in a log (CI) it prints a
// line every 10 s and at the end. Not thread-safe: one owner updates it.
#pragma once
#include <chrono>
#include <cstdint>
#include <string>

namespace circuitlab {

class ProgressBar {
 public:
  // unit: what `done` counts ("tok", "MB", "step"); scale divides done for the rate display.
  ProgressBar(std::string label, double total, std::string unit, double scale = 1.0);
  ~ProgressBar();
  void update(double done, const std::string& extra = "");
  void finish(const std::string& extra = "");
  double elapsed_s() const;

 private:
  void draw(bool final_line, const std::string& extra);
  std::string label_, unit_;
  double total_, scale_, done_ = 0;
  bool tty_, finished_ = false;
  std::chrono::steady_clock::time_point start_, last_draw_;
};

}  // namespace circuitlab
