// The health checker's decisions, free of sockets and timers so that they can be
// tested without waiting: when to probe, whether a heartbeat deadline was met,
// what a result does to the failure count, when protection engages.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>

#include "store/model.h"

namespace health {

struct Options;

// A check's settings with the daemon's defaults filled in.
struct Settings {
  std::chrono::milliseconds interval{0};
  std::chrono::milliseconds timeout{0};  // network checks only
  std::chrono::milliseconds ttl{0};      // ttl checks only
  std::uint32_t failures = 0;
};
Settings resolve(const store::HealthCheck& check, const Options& options);

// The first probe of an instance lands at a uniformly random point of its
// interval, so that instances loaded together are spread, never probed at once.
// `u` is uniform in [0, 1).
std::chrono::milliseconds first_probe_delay(std::chrono::milliseconds interval, double u);
// The following ones come every interval × (1 ± jitter), at least 1 ms apart.
std::chrono::milliseconds next_probe_delay(std::chrono::milliseconds interval, double jitter,
                                           double u);

// A ttl check passes when a heartbeat arrived within `ttl` before `now`; an
// instance that never sent one is judged from when it was first tracked (a new
// registration gets one ttl of grace).
bool heartbeat_within(store::TimePoint now, std::optional<store::TimePoint> last_heartbeat,
                      store::TimePoint tracked_since, std::chrono::milliseconds ttl);

// Protection engages when more than threshold × total instances are failing.
bool protection_tripped(std::size_t failing, std::size_t total, std::optional<double> threshold);

// One instance's consecutive failures.
class FailureCount {
 public:
  enum class Verdict { keep, remove };
  FailureCount() = default;
  explicit FailureCount(std::uint32_t initial) : failures_(initial) {}
  // A pass resets the count; a failure adds one and asks for removal from the
  // threshold-th consecutive failure on.
  Verdict record(bool passed, std::uint32_t threshold);
  void reset() { failures_ = 0; }
  std::uint32_t failures() const { return failures_; }
  bool failing() const { return failures_ > 0; }

 private:
  std::uint32_t failures_ = 0;
};

}  // namespace health
