// Load balancing across a service's replicas: the order in which DNS answers
// list instances and the instance GET /v1/resolve picks. Shared by dns/ and
// registry/.
//
// The strategies are pure functions over a list of instances, a rotation number
// and a random source, so they are unit-testable without sockets or clocks. The
// only state, per-service rotation counters and the random seed, lives in a
// Balancer that each front end owns (no database or Redis round trip per query;
// several daemons rotate independently, which stays balanced in aggregate).
#pragma once

#include <cstdint>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>

#include "store/model.h"
#include "store/string_map.h"

namespace store::lb {

// A small, fast PRNG (splitmix64): injectable and reproducible from a seed.
class Random {
 public:
  explicit Random(std::uint64_t seed) : state_(seed) {}
  std::uint64_t next();
  double uniform();                          // [0, 1)
  std::uint64_t below(std::uint64_t bound);  // [0, bound), bound > 0

 private:
  std::uint64_t state_;
};

// round_robin: rotates left by `rotation` (mod size): successive rotations put
// each instance first equally often.
void order_round_robin(std::span<const Instance*> instances, std::uint64_t rotation);
// weighted: a weighted shuffle (Efraimidis-Spirakis): the first position goes to
// an instance with probability weight / total weight, the rest follow likewise.
void order_weighted(std::span<const Instance*> instances, Random& random);
// least_loaded: ascending by last reported load; instances that never reported
// one count as the average of those that did (not as zero); ties rotate.
void order_least_loaded(std::span<const Instance*> instances, std::uint64_t rotation);
// random: a uniform shuffle.
void order_random(std::span<const Instance*> instances, Random& random);

void order(LbStrategy strategy, std::span<const Instance*> instances, std::uint64_t rotation,
           Random& random);

// Per-service rotation counters and a random seed source. Thread-safe; the lock
// is held for a hash lookup and an increment. Memory is bounded: the counters
// are forgotten when more than `max_services` services were seen.
class Balancer {
 public:
  explicit Balancer(std::uint64_t seed = 0, std::size_t max_services = 65536);

  // Orders `instances` (the selected instances of `service`) by `strategy`.
  void order(std::string_view service, LbStrategy strategy, std::span<const Instance*> instances);

 private:
  std::mutex mutex_;
  StringMap<std::uint64_t> rotations_;
  Random seeds_;
  std::size_t max_services_;
};

}  // namespace store::lb
