// See span_repeat.h.
#include "train/span_repeat.h"

#include "core/splitmix.h"

namespace circuitlab::train {

namespace {
// Uniform integer in [lo, hi] from a hash state (advances it).
int64_t uniform(uint64_t& s, int64_t lo, int64_t hi) {
  s = splitmix64(s);
  return lo + static_cast<int64_t>(s % static_cast<uint64_t>(hi - lo + 1));
}
}  // namespace

int64_t SpanRepeat::apply(torch::Tensor& windows, uint64_t first_index) const {
  TORCH_CHECK(windows.dim() == 2 && windows.scalar_type() == torch::kInt64 && windows.device().is_cpu(),
              "span repeat: expected CPU int64 windows [B, T+1], got ", windows.sizes());
  if (prob <= 0) return 0;
  windows = windows.contiguous();
  const int64_t B = windows.size(0), N = windows.size(1);  // N = T + 1
  const int64_t max_len = N / 2;
  if (max_len < min_len) return 0;
  int64_t* w = windows.data_ptr<int64_t>();
  int64_t edited = 0;
  for (int64_t b = 0; b < B; ++b) {
    uint64_t s = splitmix64(seed * 0x2545F4914F6CDD1Dull ^ splitmix64(first_index + static_cast<uint64_t>(b)));
    s = splitmix64(s);
    double u = static_cast<double>(s >> 11) * (1.0 / 9007199254740992.0);
    if (u >= prob) continue;
    const int64_t len = uniform(s, min_len, max_len);
    const int64_t src = uniform(s, 0, N - 2 * len);        // source span [src, src+len)
    const int64_t dst = adjacent ? src + len : uniform(s, src + len, N - len);  // after it, no overlap
    int64_t* row = w + b * N;
    for (int64_t i = 0; i < len; ++i) row[dst + i] = row[src + i];
    ++edited;
  }
  return edited;
}

}  // namespace circuitlab::train
