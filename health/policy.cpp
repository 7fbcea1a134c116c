#include "health/policy.h"

#include <algorithm>
#include <cmath>

#include "health/checker.h"

namespace health {

Settings resolve(const store::HealthCheck& check, const Options& options) {
  Settings settings;
  settings.failures = check.failures ? check.failures : options.default_failures;
  settings.failures = std::max<std::uint32_t>(settings.failures, 1);
  if (check.type == store::CheckType::ttl) {
    settings.ttl = check.ttl.count() > 0 ? check.ttl : options.default_interval;
    settings.interval = check.interval.count() > 0 ? check.interval : settings.ttl;
  } else {
    settings.interval = check.interval.count() > 0 ? check.interval : options.default_interval;
    settings.timeout = check.timeout.count() > 0 ? check.timeout : options.default_timeout;
  }
  settings.interval = std::max(settings.interval, std::chrono::milliseconds(1));
  return settings;
}

std::chrono::milliseconds first_probe_delay(std::chrono::milliseconds interval, double u) {
  u = std::clamp(u, 0.0, 1.0);
  const auto delay = static_cast<std::int64_t>(static_cast<double>(interval.count()) * u);
  return std::chrono::milliseconds(std::clamp<std::int64_t>(delay, 0, interval.count()));
}

std::chrono::milliseconds next_probe_delay(std::chrono::milliseconds interval, double jitter,
                                           double u) {
  jitter = std::clamp(jitter, 0.0, 1.0);
  u = std::clamp(u, 0.0, 1.0);
  const double factor = 1.0 + jitter * (2.0 * u - 1.0);
  const auto delay =
      static_cast<std::int64_t>(std::llround(static_cast<double>(interval.count()) * factor));
  return std::chrono::milliseconds(std::max<std::int64_t>(delay, 1));
}

bool heartbeat_within(store::TimePoint now, std::optional<store::TimePoint> last_heartbeat,
                      store::TimePoint tracked_since, std::chrono::milliseconds ttl) {
  const store::TimePoint reference =
      last_heartbeat ? std::max(*last_heartbeat, tracked_since) : tracked_since;
  return now - reference <= ttl;
}

bool protection_tripped(std::size_t failing, std::size_t total, std::optional<double> threshold) {
  if (!threshold || total == 0) return false;
  return static_cast<double>(failing) > *threshold * static_cast<double>(total);
}

FailureCount::Verdict FailureCount::record(bool passed, std::uint32_t threshold) {
  if (passed) {
    failures_ = 0;
    return Verdict::keep;
  }
  if (failures_ < UINT32_MAX) ++failures_;
  return failures_ >= std::max<std::uint32_t>(threshold, 1) ? Verdict::remove : Verdict::keep;
}

}  // namespace health
