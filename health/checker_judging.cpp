// Judging: what a result does to an instance's failure count, when the count
// asks for a removal, when protection holds removals back, and the proofs of
// life (heartbeats, renewals) that clear the count. The rules themselves are
// in policy.cpp; this applies them to the tracked state.
#include <spdlog/spdlog.h>

#include "health/checker_impl.h"

namespace health {

void Checker::Impl::judge(std::uint32_t slot, bool passed, const std::string& reason,
                          std::optional<double> load) {
  Tracked& tracked = slots_[slot];
  const auto now = now_();
  const bool was_failing = tracked.count.failing();
  const auto verdict = tracked.count.record(passed, tracked.settings.failures);
  if (passed) {
    stats_passed_.fetch_add(1);
    tracked.suppressed = false;
    if (load && options_.on_reported_load) {
      options_.on_reported_load(tracked.service, tracked.id, *load);
    }
  } else {
    stats_failed_.fetch_add(1);
    tracked.last_reason = reason;
    logger()->debug("check failed service={} id={} reason=\"{}\" failures={}", tracked.service,
                    tracked.id, reason, tracked.count.failures());
  }
  if (was_failing != tracked.count.failing()) {
    if (was_failing) {
      failing_.fetch_sub(1);
    } else {
      failing_.fetch_add(1);
    }
    update_protection();
  }
  record(slot, now);
  if (verdict == FailureCount::Verdict::keep) return schedule_next(slot);
  if (protection_active_.load()) {
    if (!tracked.suppressed) {
      tracked.suppressed = true;
      stats_suppressed_.fetch_add(1);
      logger()->info("not removing service={} id={} reason=\"{}\" failures={}: protection active",
                     tracked.service, tracked.id, reason, tracked.count.failures());
    }
    return schedule_next(slot);
  }
  begin_removal(slot, now);
}

void Checker::Impl::update_protection() {
  const bool tripped =
      protection_tripped(failing_.load(), tracked_.load(), options_.protection_threshold);
  if (tripped == protection_active_.load()) return;
  protection_active_.store(tripped);
  if (tripped) {
    logger()->warn(
        "protection active: {} of {} instances failing (threshold {}): removals stop; the "
        "checker itself may be cut off",
        failing_.load(), tracked_.load(), *options_.protection_threshold);
  } else {
    logger()->warn("protection cleared: {} of {} instances failing: removals resume",
                   failing_.load(), tracked_.load());
  }
}

void Checker::Impl::set_failures_cleared(Tracked& tracked) {
  if (tracked.count.failing()) failing_.fetch_sub(1);
  tracked.count.reset();
}

// A read shows renewals this checker did not hear of (another daemon sharing
// the database took a heartbeat or re-registration): the failures counted
// before them no longer count, as if the commit had reached us.
void Checker::Impl::adopt_renewals(Tracked& tracked, std::uint64_t renewals) {
  if (renewals == tracked.renewals) return;
  tracked.renewals = renewals;
  tracked.suppressed = false;
  set_failures_cleared(tracked);
}

}  // namespace health
