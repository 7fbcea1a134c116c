// Removal: an instance judged for removal is removed through the writer as a
// RemoveUnhealthy conditional on the stamps it was judged on (rereading the
// service first if a commit moved them), and the outcome is recorded: a removal
// event, a kept instance, or a retry at the next failure.
#include <spdlog/spdlog.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>

#include "health/checker_impl.h"
#include "store/registry_store.h"

namespace health {
namespace {

namespace asio = boost::asio;

}  // namespace

void Checker::Impl::begin_removal(std::uint32_t slot, store::TimePoint decided_at) {
  Tracked& tracked = slots_[slot];
  tracked.phase = Phase::removing;
  RemovalEvent event{tracked.service, tracked.id,          tracked.address.to_string(),
                     tracked.port,    tracked.last_reason, tracked.count.failures(),
                     decided_at};
  if (tracked.stamps) return submit_removal(slot, std::move(event));
  // A commit (registration or heartbeat) moved the row's stamps since it was last
  // read: reread the service to learn them, then decide again.
  post_background([self = shared_from_this(), slot, generation = tracked.generation,
                   event = std::move(event)]() mutable {
    const std::uint64_t sequence = self->commit_sequence();
    try {
      auto snapshot = self->store_.read_service(event.service);
      asio::post(self->io_, [self, slot, generation, event = std::move(event),
                             snapshot = std::move(snapshot), sequence]() mutable {
        self->on_reread(slot, generation, std::move(event), snapshot, sequence);
      });
    } catch (const std::exception& error) {
      logger()->warn("reading service {} before a removal failed: {}", event.service, error.what());
      asio::post(self->io_, [self, slot, generation] {
        if (!self->stopping_ && self->valid(slot, generation) &&
            self->slots_[slot].phase == Phase::removing) {
          self->schedule_next(slot);  // the next failure tries again
        }
      });
    }
  });
}

void Checker::Impl::on_reread(std::uint32_t slot, std::uint32_t generation, RemovalEvent event,
                              const store::ServiceSnapshot& snapshot, std::uint64_t sequence) {
  if (stopping_) return;
  bool present = false;
  for (const store::Instance& instance : snapshot.instances) {
    const auto found = index_.find(key_of(instance.service(), instance.id()));
    if (found == index_.end()) continue;
    Tracked& tracked = slots_[found->second];
    if (tracked.touched > sequence) continue;
    tracked.stamps = Stamps{instance.updated_at, instance.last_heartbeat_at, instance.renewals};
    adopt_renewals(tracked, instance.renewals);
    if (found->second == slot) present = true;
  }
  if (!valid(slot, generation) || slots_[slot].phase != Phase::removing) return;
  Tracked& tracked = slots_[slot];
  if (!present && tracked.touched <= sequence) return forget(slot);  // already gone
  if (tracked.count.failures() < tracked.settings.failures || !tracked.stamps) {
    return schedule_next(slot);  // alive again meanwhile (a heartbeat)
  }
  if (protection_active_.load()) return schedule_next(slot);
  submit_removal(slot, std::move(event));
}

void Checker::Impl::submit_removal(std::uint32_t slot, RemovalEvent event) {
  const Tracked& tracked = slots_[slot];
  if (!may_probe()) return schedule_next(slot);  // the shard may be someone else's now
  store::RemoveUnhealthy removal{tracked.service, tracked.id, tracked.stamps->updated_at,
                                 tracked.stamps->last_heartbeat_at, tracked.stamps->renewals};
  writer_.submit(std::move(removal),
                 [self = shared_from_this(), slot, generation = tracked.generation,
                  event = std::move(event)](const store::MutationResult& r) {
                   asio::post(self->io_, [self, slot, generation, event, r] {
                     self->on_removal_result(slot, generation, event, r);
                   });
                 });
}

void Checker::Impl::on_removal_result(std::uint32_t slot, std::uint32_t generation,
                                      const RemovalEvent& event,
                                      const store::MutationResult& result) {
  const bool current = valid(slot, generation) && slots_[slot].phase == Phase::removing;
  switch (result.outcome) {
    case store::Outcome::removed:
      logger()->info("removed service={} id={} address={} port={} reason=\"{}\" failures={}",
                     event.service, event.id, event.address, event.port, event.reason,
                     event.failures);
      {
        std::lock_guard lock(events_mutex_);
        events_.push_front(event);
        while (events_.size() > options_.max_events) events_.pop_back();
      }
      // Counted after the event is in the history, so whoever sees the count
      // (stats(), /v1/status) also finds the event in recent_removals().
      stats_removals_.fetch_add(1);
      // Not forgotten here: the commit fan-out is the one place that stops
      // following removed instances (Checker::on_commit posted that before
      // this completion ran).
      break;
    case store::Outcome::not_found:
      // Already gone, perhaps removed by another daemon sharing the database:
      // no commit of ours told the fan-out, so stop following it here.
      if (current) forget(slot);
      break;
    case store::Outcome::unchanged:
      // Re-registered or heartbeated since the probe: alive, start afresh.
      stats_kept_.fetch_add(1);
      logger()->info("kept service={} id={}: re-registered or sent a heartbeat since its check",
                     event.service, event.id);
      if (current && !stopping_) {
        Tracked& tracked = slots_[slot];
        tracked.stamps.reset();
        tracked.suppressed = false;
        set_failures_cleared(tracked);
        record(slot, now_());
        schedule_next(slot);
      }
      break;
    default:
      logger()->warn("removing service={} id={} failed: {}; trying again at its next failure",
                     event.service, event.id, result.error);
      if (current && !stopping_) schedule_next(slot);
      break;
  }
  update_protection();
}

}  // namespace health
