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

// Applies a database read taken when `sequence` commits had been followed:
// instances touched by a later commit keep what that commit said. Only the
// instances of shards we own are taken, and only from a read that began after
// we gained their shard.
void Checker::Impl::install(std::vector<store::Instance> instances, std::uint64_t sequence,
                            const ReadScope& scope) {
  if (stopping_) return;
  ++epoch_;
  const auto now = now_();
  for (store::Instance& instance : instances) {
    const auto shard = store::health_shard_of(instance.service(), instance.id());
    if (!owned_[shard] || scope.number <= gained_after_[shard]) continue;
    std::string key = key_of(instance.service(), instance.id());
    if (auto tomb = tombstones_.find(key); tomb != tombstones_.end() && tomb->second > sequence) {
      continue;
    }
    if (auto found = index_.find(key); found != index_.end()) {
      update_from_read(slots_[found->second], found->second, instance, sequence, now);
      continue;
    }
    const auto settings = resolve(instance.registration.check, options_);
    const std::uint32_t slot =
        add(std::move(key), instance.registration.service, instance.registration.id,
            instance.registration.address, instance.registration.port, instance.registration.check,
            now, instance.consecutive_failures, first_delay(instance, settings));
    slots_[slot].stamps =
        Stamps{instance.updated_at, instance.last_heartbeat_at, instance.renewals};
    slots_[slot].last_heartbeat = instance.last_heartbeat_at;
    slots_[slot].renewals = instance.renewals;
    slots_[slot].recorded_failures = instance.consecutive_failures;
    slots_[slot].seen_epoch = epoch_;
  }
  // Gone from the database (another daemon removed it) and not re-added since.
  for (std::uint32_t slot = 0; slot < slots_.size(); ++slot) {
    const Tracked& tracked = slots_[slot];
    if (tracked.live && tracked.seen_epoch != epoch_ && tracked.touched <= sequence &&
        in_scope(tracked, scope)) {
      logger()->debug("forgetting service={} id={}: no longer in the database", tracked.service,
                      tracked.id);
      forget(slot);
    }
  }
  if (!scope.services) {
    std::erase_if(tombstones_, [&](const auto& tomb) { return tomb.second <= sequence; });
  }
  update_protection();
  if (scope.initial) {
    started_ = true;
    logger()->info("health checker started: {} instances", tracked_.load());
    arm();
    arm_flush();
    arm_resync();
  } else if (!scope.shards && !scope.services) {
    stats_resyncs_.fetch_add(1);
  }
}

// An instance we follow, as a read found it: a changed registration starts
// afresh; otherwise the read's stamps and renewals are adopted (the count in
// memory stays: while the shard is ours, our count is the one that is written).
void Checker::Impl::update_from_read(Tracked& tracked, std::uint32_t slot,
                                     const store::Instance& instance, std::uint64_t sequence,
                                     store::TimePoint now) {
  tracked.seen_epoch = epoch_;
  if (tracked.touched > sequence) return;
  const Stamps stamps{instance.updated_at, instance.last_heartbeat_at, instance.renewals};
  const store::Registration& reg = instance.registration;
  if (reg.address != tracked.address || reg.port != tracked.port || reg.check != tracked.check) {
    reset(slot, reg.address, reg.port, reg.check, now);
    tracked.stamps = stamps;
    tracked.last_heartbeat = instance.last_heartbeat_at;
    tracked.renewals = instance.renewals;
    return;
  }
  tracked.stamps = stamps;
  adopt_renewals(tracked, instance.renewals);
  if (instance.last_heartbeat_at &&
      (!tracked.last_heartbeat || *tracked.last_heartbeat < *instance.last_heartbeat_at)) {
    tracked.last_heartbeat = instance.last_heartbeat_at;
  }
}

bool Checker::Impl::in_scope(const Tracked& tracked, const ReadScope& scope) const {
  if (scope.number <= gained_after_[tracked.shard]) return false;
  if (scope.shards && !(*scope.shards)[tracked.shard]) return false;
  return !scope.services || scope.services->contains(tracked.service);
}

// When a read instance is first probed: where its last check leaves it (the
// previous owner's rhythm goes on), overdue ones spread over a tenth of the
// interval; never checked, a random point of the interval.
std::chrono::milliseconds Checker::Impl::first_delay(const store::Instance& instance,
                                                     const Settings& settings) const {
  using std::chrono::milliseconds;
  if (!instance.last_check_at) return first_probe_delay(settings.interval, random_());
  const auto due = *instance.last_check_at + settings.interval;
  const auto left = std::chrono::duration_cast<milliseconds>(due - now_());
  if (left > milliseconds(0)) return std::min(left, settings.interval);
  return milliseconds(static_cast<milliseconds::rep>(
      static_cast<double>((settings.interval / 10).count()) * random_()));
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
        if (!owned_[store::health_shard_of(change.service, change.id)]) break;  // not ours
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
    const std::uint64_t number = self->begin_read();
    const std::uint64_t sequence = self->commit_sequence();
    try {
      auto instances = self->store_.read_all_instances();
      asio::post(self->io_, [self, instances = std::move(instances), sequence, number]() mutable {
        self->install(std::move(instances), sequence, ReadScope{false, {}, {}, number});
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
                                 std::uint32_t failures,
                                 std::optional<std::chrono::milliseconds> first_delay) {
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
  tracked.shard = store::health_shard_of(service, id);
  if (tracked.count.failing()) failing_.fetch_add(1);
  index_.emplace(std::move(key), slot);
  tracked_.fetch_add(1);
  schedule(slot, first_delay.value_or(first_probe_delay(tracked.settings.interval, random_())));
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
