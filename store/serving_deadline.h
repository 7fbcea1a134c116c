// A monotonic deadline until which this daemon may answer from memory. The
// membership (store/cluster/membership.h) extends it after each lease renewal
// it is caught up with; the cache (store/cache/service_cache.h) checks it per
// answer. Lock-free: one atomic load and a clock read on the DNS hot path.
#pragma once

#include <atomic>
#include <chrono>

namespace store {

class ServingDeadline {
 public:
  using Clock = std::chrono::steady_clock;

  bool allows(Clock::time_point now) const {
    return now.time_since_epoch().count() < until_.load(std::memory_order_acquire);
  }
  // Moves the deadline to `until`, never backwards.
  void extend_to(Clock::time_point until) {
    const auto ticks = until.time_since_epoch().count();
    auto current = until_.load(std::memory_order_relaxed);
    while (current < ticks &&
           !until_.compare_exchange_weak(current, ticks, std::memory_order_release)) {
    }
  }
  void revoke() { until_.store(0, std::memory_order_release); }
  Clock::time_point until() const {
    return Clock::time_point(Clock::duration(until_.load(std::memory_order_acquire)));
  }

 private:
  std::atomic<Clock::rep> until_{0};
};

}  // namespace store
