// splitmix64: the one counter-based hash behind every seeded choice that must be reproducible
// from integers alone (batch offsets, the val split, span repetition), so resume needs no RNG
// state beyond a counter. Not a general-purpose RNG.
#pragma once
#include <cstdint>

namespace circuitlab {

inline uint64_t splitmix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

}  // namespace circuitlab
