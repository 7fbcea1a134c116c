// Tracking: the set of instances the checker follows, kept in step with the
// database. A full read (start, and every resync_period a resync, since another
// daemon may share the database) is installed; the writer's commits are applied
// as they come. A read older than a commit never undoes what the commit said.
#include <spdlog/spdlog.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>

#include "health/checker_impl.h"
#include "store/registry_store.h"

namespace health {
namespace {

namespace asio = boost::asio;
using boost::system::error_code;

}  // namespace

// Applies a full read of the database taken when `sequence` commits had been
// followed: instances touched by a later commit keep what that commit said.
void Checker::Impl::install(std::vector<store::Instance> instances, std::uint64_t sequence,
                            bool initial) {
  if (stopping_) return;
  ++epoch_;
  const auto now = now_();
  for (store::Instance& instance : instances) {
    std::string key = key_of(instance.service(), instance.id());
    if (auto tomb = tombstones_.find(key); tomb != tombstones_.end() && tomb->second > sequence) {
      continue;
    }
    const Stamps stamps{instance.updated_at, instance.last_heartbeat_at, instance.renewals};
    if (auto found = index_.find(key); found != index_.end()) {
      Tracked& tracked = slots_[found->second];
      tracked.seen_epoch = epoch_;
      if (tracked.touched > sequence) continue;
      const store::Registration& reg = instance.registration;
      if (reg.address != tracked.address || reg.port != tracked.port ||
          reg.check != tracked.check) {
        reset(found->second, reg.address, reg.port, reg.check, now);
        tracked.stamps = stamps;
        tracked.last_heartbeat = instance.last_heartbeat_at;
        tracked.renewals = instance.renewals;
      } else {
        tracked.stamps = stamps;
        adopt_renewals(tracked, instance.renewals);
        if (instance.last_heartbeat_at &&
            (!tracked.last_heartbeat || *tracked.last_heartbeat < *instance.last_heartbeat_at)) {
          tracked.last_heartbeat = instance.last_heartbeat_at;
        }
      }
      continue;
    }
    const std::uint32_t slot =
        add(std::move(key), instance.registration.service, instance.registration.id,
            instance.registration.address, instance.registration.port, instance.registration.check,
            now, instance.consecutive_failures);
    slots_[slot].stamps = stamps;
    slots_[slot].last_heartbeat = instance.last_heartbeat_at;
    slots_[slot].renewals = instance.renewals;
    slots_[slot].seen_epoch = epoch_;
  }
  // Gone from the database (another daemon removed it) and not re-added since.
  for (std::uint32_t slot = 0; slot < slots_.size(); ++slot) {
    const Tracked& tracked = slots_[slot];
    if (tracked.live && tracked.seen_epoch != epoch_ && tracked.touched <= sequence) {
      logger()->debug("forgetting service={} id={}: no longer in the database", tracked.service,
                      tracked.id);
      forget(slot);
    }
  }
  std::erase_if(tombstones_, [&](const auto& tomb) { return tomb.second <= sequence; });
  update_protection();
  if (initial) {
    started_ = true;
    logger()->info("health checker started: {} instances", tracked_.load());
    arm();
    arm_flush();
    arm_resync();
  } else {
    stats_resyncs_.fetch_add(1);
  }
}

void Checker::Impl::apply(const std::vector<Change>& changes) {
  if (stopping_) return;
  const std::uint64_t sequence = commit_seq_.fetch_add(1) + 1;
  for (const Change& change : changes) {
    std::string key = key_of(change.service, change.id);
    const auto found = index_.find(key);
    switch (change.kind) {
      case Change::Kind::upsert:
        tombstones_.erase(key);
        if (found != index_.end()) {
          reset(found->second, change.address, change.port, change.check, change.at);
          slots_[found->second].touched = sequence;
          slots_[found->second].renewals = change.renewals;
        } else {
          const std::uint32_t slot = add(std::move(key), change.service, change.id, change.address,
                                         change.port, change.check, change.at, 0);
          slots_[slot].touched = sequence;
          slots_[slot].renewals = change.renewals;
        }
        break;
      case Change::Kind::forget:
        tombstones_[key] = sequence;
        if (found != index_.end()) forget(found->second);
        break;
      case Change::Kind::heartbeat:
      case Change::Kind::renewal:
        // Proof of life: the failures so far no longer count, and a removal not
        // yet submitted is reconsidered with the moved stamps (a submitted one
        // comes back `unchanged`: the store sees the renewal).
        if (found != index_.end()) {
          Tracked& tracked = slots_[found->second];
          if (change.kind == Change::Kind::heartbeat) tracked.last_heartbeat = change.at;
          tracked.stamps.reset();
          tracked.suppressed = false;
          tracked.touched = sequence;
          tracked.renewals = change.renewals;
          set_failures_cleared(tracked);
        }
        break;
    }
  }
  update_protection();
}

void Checker::Impl::resync_now() {
  post_background([self = shared_from_this()] {
    const std::uint64_t sequence = self->commit_sequence();
    try {
      auto instances = self->store_.read_all_instances();
      asio::post(self->io_, [self, instances = std::move(instances), sequence]() mutable {
        self->install(std::move(instances), sequence, false);
      });
    } catch (const std::exception& error) {
      logger()->warn("resync failed: {}", error.what());
    }
  });
}

void Checker::Impl::arm_resync() {
  if (stopping_) return;
  resync_timer_.expires_after(options_.resync_period);
  resync_timer_.async_wait([self = shared_from_this()](const error_code& error) {
    if (error || self->stopping_) return;
    self->resync_now();
    self->arm_resync();
  });
}

bool Checker::Impl::valid(std::uint32_t slot, std::uint32_t generation) const {
  return slot < slots_.size() && slots_[slot].live && slots_[slot].generation == generation;
}

std::uint32_t Checker::Impl::add(std::string key, const std::string& service, const std::string& id,
                                 const store::IpAddress& address, std::uint16_t port,
                                 const store::HealthCheck& check, store::TimePoint now,
                                 std::uint32_t failures) {
  std::uint32_t slot;
  if (!free_.empty()) {
    slot = free_.back();
    free_.pop_back();
  } else {
    slot = static_cast<std::uint32_t>(slots_.size());
    slots_.emplace_back();
  }
  Tracked& tracked = slots_[slot];
  tracked.live = true;
  tracked.service = service;
  tracked.id = id;
  tracked.address = address;
  tracked.port = port;
  tracked.check = check;
  tracked.settings = resolve(check, options_);
  tracked.tracked_since = now;
  tracked.count = FailureCount(failures);
  if (tracked.count.failing()) failing_.fetch_add(1);
  index_.emplace(std::move(key), slot);
  tracked_.fetch_add(1);
  schedule(slot, first_probe_delay(tracked.settings.interval, random_()));
  return slot;
}

// A changed registration starts afresh (as the store does): new settings, no
// failures, a new first probe; whatever was in flight for it is ignored.
void Checker::Impl::reset(std::uint32_t slot, const store::IpAddress& address, std::uint16_t port,
                          const store::HealthCheck& check, store::TimePoint now) {
  Tracked& tracked = slots_[slot];
  ++tracked.generation;
  tracked.address = address;
  tracked.port = port;
  tracked.check = check;
  tracked.settings = resolve(check, options_);
  tracked.stamps.reset();
  tracked.tracked_since = now;
  tracked.suppressed = false;
  set_failures_cleared(tracked);
  drop_record(tracked);
  schedule(slot, first_probe_delay(tracked.settings.interval, random_()));
}

void Checker::Impl::forget(std::uint32_t slot) {
  Tracked& tracked = slots_[slot];
  if (tracked.count.failing()) failing_.fetch_sub(1);
  drop_record(tracked);
  index_.erase(key_of(tracked.service, tracked.id));
  const std::uint32_t generation = tracked.generation + 1;
  tracked = Tracked{};
  tracked.generation = generation;
  free_.push_back(slot);
  tracked_.fetch_sub(1);
}

}  // namespace health
