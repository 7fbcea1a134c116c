// Probing: a due instance's probe is started through the Prober (probe.cpp does
// the socket I/O) and its result handed to judge(); a finished probe lets a
// queued one start. A ttl check has no probe: its deadline is judged instead.
#include "health/checker_impl.h"

namespace health {
namespace {

std::string format_ms(std::chrono::milliseconds duration) {
  return std::to_string(duration.count()) + "ms";
}

}  // namespace

void Checker::Impl::start_probe(std::uint32_t slot) {
  Tracked& tracked = slots_[slot];
  tracked.phase = Phase::probing;
  in_flight_.fetch_add(1);
  stats_started_.fetch_add(1);
  ProbeTarget target;
  target.address = tracked.address;  // never another host
  target.port = tracked.check.port ? tracked.check.port : tracked.port;
  target.type = tracked.check.type;
  if (target.type == store::CheckType::http) {
    target.path = tracked.check.path.empty() ? "/" : tracked.check.path;
  }
  prober_.probe(target, tracked.settings.timeout,
                [self = shared_from_this(), slot, generation = tracked.generation](
                    ProbeResult result) { self->on_probe_done(slot, generation, result); });
}

void Checker::Impl::on_probe_done(std::uint32_t slot, std::uint32_t generation,
                                  const ProbeResult& result) {
  in_flight_.fetch_sub(1);
  if (stopping_ || result.aborted) return;
  if (valid(slot, generation) && slots_[slot].phase == Phase::probing) {
    if (may_probe()) {
      judge(slot, result.passed, result.reason, result.load);
    } else {
      schedule_next(slot);  // our lease lapsed meanwhile: the result is not ours to count
    }
  }
  while (!stopping_ && in_flight_.load() < options_.max_concurrent_probes && !waiting_.empty()) {
    const SlotRef next = waiting_.front();
    waiting_.pop_front();
    if (valid(next.slot, next.generation) && slots_[next.slot].phase == Phase::queued) {
      start_probe(next.slot);
    }
  }
  queued_.store(waiting_.size());
}

// A ttl check has no network probe: each deadline either saw a heartbeat or not.
void Checker::Impl::judge_heartbeat(std::uint32_t slot) {
  Tracked& tracked = slots_[slot];
  stats_started_.fetch_add(1);
  const bool passed =
      heartbeat_within(now_(), tracked.last_heartbeat, tracked.tracked_since, tracked.settings.ttl);
  judge(slot, passed, passed ? "" : "no heartbeat within " + format_ms(tracked.settings.ttl),
        std::nullopt);
}

}  // namespace health
