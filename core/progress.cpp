// ProgressBar (see progress.h).
#include "core/progress.h"

#include <unistd.h>

#include <cmath>
#include <cstdio>

namespace circuitlab {

namespace {
std::string fmt_duration(double s) {
  if (!std::isfinite(s) || s < 0) return "--:--";
  long t = static_cast<long>(s + 0.5);
  char buf[32];
  if (t >= 3600)
    std::snprintf(buf, sizeof buf, "%ld:%02ld:%02ld", t / 3600, (t / 60) % 60, t % 60);
  else
    std::snprintf(buf, sizeof buf, "%02ld:%02ld", t / 60, t % 60);
  return buf;
}
std::string fmt_rate(double r) {
  char buf[32];
  if (r >= 1e6)
    std::snprintf(buf, sizeof buf, "%.2fM", r / 1e6);
  else if (r >= 1e3)
    std::snprintf(buf, sizeof buf, "%.1fk", r / 1e3);
  else
    std::snprintf(buf, sizeof buf, "%.2f", r);
  return buf;
}
}  // namespace

ProgressBar::ProgressBar(std::string label, double total, std::string unit, double scale)
    : label_(std::move(label)), unit_(std::move(unit)), total_(total), scale_(scale),
      tty_(::isatty(2) != 0), start_(std::chrono::steady_clock::now()), last_draw_(start_) {}

ProgressBar::~ProgressBar() {
  if (!finished_ && tty_) std::fputc('\n', stderr);
}

double ProgressBar::elapsed_s() const {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
}

void ProgressBar::update(double done, const std::string& extra) {
  done_ = done;
  auto now = std::chrono::steady_clock::now();
  double since = std::chrono::duration<double>(now - last_draw_).count();
  if (since < (tty_ ? 0.1 : 10.0)) return;
  last_draw_ = now;
  draw(false, extra);
}

void ProgressBar::finish(const std::string& extra) {
  if (finished_) return;
  finished_ = true;
  if (total_ > 0 && done_ < total_) done_ = total_;
  draw(true, extra);
}

void ProgressBar::draw(bool final_line, const std::string& extra) {
  double el = elapsed_s();
  double rate = el > 0 ? done_ / scale_ / el : 0;
  double frac = total_ > 0 ? std::min(1.0, done_ / total_) : 0;
  double eta = (rate > 0 && total_ > 0) ? (total_ - done_) / scale_ / rate : NAN;
  const int width = 24;
  int fill = static_cast<int>(frac * width);
  std::string bar(fill, '#');
  bar.append(width - fill, '.');
  char line[512];
  std::snprintf(line, sizeof line, "%s [%s] %5.1f%% %s %s %s/s %s %s", label_.c_str(), bar.c_str(),
                frac * 100.0, fmt_duration(el).c_str(), fmt_rate(rate).c_str(), unit_.c_str(),
                final_line ? "done" : ("ETA " + fmt_duration(eta)).c_str(), extra.c_str());
  if (tty_)
    std::fprintf(stderr, "\r\033[K%s%s", line, final_line ? "\n" : "");
  else
    std::fprintf(stderr, "%s\n", line);
  std::fflush(stderr);
}

}  // namespace circuitlab
