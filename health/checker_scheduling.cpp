// Scheduling: one timer heap for every instance, woken at most once per tick;
// each probe lands at a jittered point of its interval; beyond
// max_concurrent_probes a probe waits in a queue (never dropped).
#include <algorithm>

#include "health/checker_impl.h"

namespace health {
namespace {

using boost::system::error_code;

// The checker wakes at most once per tick and starts every probe due by then:
// one wakeup starts many probes and collects many completions, instead of a
// thread wakeup (and a timerfd update) per probe. A few milliseconds of lateness
// are nothing against intervals of seconds.
constexpr auto kTick = std::chrono::milliseconds(10);

}  // namespace

void Checker::Impl::schedule(std::uint32_t slot, std::chrono::milliseconds delay) {
  if (stopping_) return;
  Tracked& tracked = slots_[slot];
  tracked.phase = Phase::idle;
  due_.push({SteadyClock::now() + delay, slot, tracked.generation});
  arm();
}

void Checker::Impl::schedule_next(std::uint32_t slot) {
  const Tracked& tracked = slots_[slot];
  schedule(slot, next_probe_delay(tracked.settings.interval, options_.jitter, random_()));
}

// One timer for every instance: it fires at the earliest due probe.
void Checker::Impl::arm() {
  if (!started_ || stopping_ || due_.empty()) return;
  const auto next = std::max(due_.top().at, last_wake_ + kTick);
  if (next >= armed_at_) return;
  armed_at_ = next;
  wake_timer_.expires_at(next);
  wake_timer_.async_wait([self = shared_from_this()](const error_code& error) {
    if (!error) self->on_wake();
  });
}

void Checker::Impl::on_wake() {
  armed_at_ = SteadyClock::time_point::max();
  if (stopping_) return;
  const auto now = SteadyClock::now();
  last_wake_ = now;
  while (!due_.empty() && due_.top().at <= now) {
    const Due due = due_.top();
    due_.pop();
    if (!valid(due.slot, due.generation) || slots_[due.slot].phase != Phase::idle) continue;
    dispatch(due.slot);
  }
  arm();
}

void Checker::Impl::dispatch(std::uint32_t slot) {
  Tracked& tracked = slots_[slot];
  if (!may_probe()) {
    // Our lease may have run out: another daemon may own the shard by now.
    stats_lapsed_skips_.fetch_add(1);
    return schedule_next(slot);
  }
  if (tracked.check.type == store::CheckType::ttl) return judge_heartbeat(slot);
  if (in_flight_.load() < options_.max_concurrent_probes) return start_probe(slot);
  tracked.phase = Phase::queued;
  waiting_.push_back({slot, tracked.generation});
  queued_.store(waiting_.size());
  stats_cap_hits_.fetch_add(1);
}

}  // namespace health
