#include "health/checker.h"
#include "store/logging.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/thread_pool.hpp>
#include <deque>
#include <limits>
#include <mutex>
#include <queue>
#include <random>
#include <unordered_map>

#include "health/policy.h"
#include "health/probe.h"
#include "store/sqlite_store.h"

#ifndef DISCOVERYD_VERSION
#define DISCOVERYD_VERSION "dev"
#endif

namespace health {
namespace {

namespace asio = boost::asio;
using SteadyClock = std::chrono::steady_clock;
using boost::system::error_code;

std::shared_ptr<spdlog::logger> logger() {
  return store::component_logger("health");
}

std::string key_of(std::string_view service, std::string_view id) {
  std::string key;
  key.reserve(service.size() + id.size() + 1);
  key.append(service).append("/").append(id);  // '/' is in no DNS label
  return key;
}

// The instance's row as the database holds it: RemoveUnhealthy only deletes the
// row if these did not move since (no re-registration, no heartbeat).
struct Stamps {
  store::TimePoint updated_at{};
  std::optional<store::TimePoint> last_heartbeat_at;
  std::uint64_t renewals = 0;
};

enum class Phase : std::uint8_t { idle, queued, probing, removing };

struct Tracked {
  bool live = false;
  Phase phase = Phase::idle;
  bool suppressed = false;       // a removal held back by protection (counted once)
  std::uint32_t generation = 0;  // moves on every reset: stale timers and results are ignored
  std::string service;
  std::string id;
  store::IpAddress address;
  std::uint16_t port = 0;
  store::HealthCheck check;
  Settings settings;
  std::optional<Stamps> stamps;  // empty when a commit changed them since the last read
  store::TimePoint tracked_since{};
  std::optional<store::TimePoint> last_heartbeat;
  FailureCount count;
  // The row's renewals (proofs of life) as last learnt from a read or a commit:
  // the count is based on them, and check records say so (see store::CheckRecord).
  std::uint64_t renewals = 0;
  std::string last_reason;
  std::uint64_t touched = 0;  // commit sequence of the last commit that changed it
  std::uint64_t seen_epoch = 0;
  std::int64_t pending_record = -1;  // index into the unflushed check records
};

struct Due {
  SteadyClock::time_point at;
  std::uint32_t slot;
  std::uint32_t generation;
  friend bool operator>(const Due& a, const Due& b) { return a.at > b.at; }
};

struct SlotRef {
  std::uint32_t slot;
  std::uint32_t generation;
};

// What a commit did to one instance, copied off the writer thread. A renewal is
// an identical re-registration: proof of life like a heartbeat, without one.
struct Change {
  enum class Kind : std::uint8_t { upsert, forget, heartbeat, renewal };
  Kind kind = Kind::upsert;
  std::string service;
  std::string id;
  store::IpAddress address;  // upsert only
  std::uint16_t port = 0;    // upsert only
  store::HealthCheck check;  // upsert only
  store::TimePoint at{};
  std::uint64_t renewals = 0;  // the row's after the commit (not for forget)
};

std::string format_ms(std::chrono::milliseconds duration) {
  return std::to_string(duration.count()) + "ms";
}

constexpr std::uint32_t kDeadRecord = std::numeric_limits<std::uint32_t>::max();

// The checker wakes at most once per tick and starts every probe due by then:
// one wakeup starts many probes and collects many completions, instead of a
// thread wakeup (and a timerfd update) per probe. A few milliseconds of lateness
// are nothing against intervals of seconds.
constexpr auto kTick = std::chrono::milliseconds(10);

}  // namespace

struct Checker::Background {
  asio::thread_pool pool{1};
};

class Checker::Impl : public std::enable_shared_from_this<Checker::Impl> {
 public:
  Impl(asio::io_context& io, store::SqliteStore& store, store::Writer& writer, Options options,
       Now now, Random random, asio::thread_pool* background)
      : io_(io),
        store_(store),
        writer_(writer),
        options_(std::move(options)),
        now_(std::move(now)),
        random_(std::move(random)),
        prober_(io, options_.max_http_response_bytes, "discoveryd-health/" DISCOVERYD_VERSION),
        wake_timer_(io),
        flush_timer_(io),
        resync_timer_(io),
        background_(background) {
    options_.max_concurrent_probes = std::max<std::size_t>(options_.max_concurrent_probes, 1);
    options_.max_events = std::max<std::size_t>(options_.max_events, 1);
  }

  asio::io_context& io() { return io_; }
  store::SqliteStore& store() { return store_; }
  store::TimePoint now() const { return now_(); }
  std::uint64_t commit_sequence() const { return commit_seq_.load(); }

  void detach_background() {
    std::lock_guard lock(background_mutex_);
    background_ = nullptr;
  }

  // --- start, resync, stop -------------------------------------------------------

  // Applies a full read of the database taken when `sequence` commits had been
  // followed: instances touched by a later commit keep what that commit said.
  void install(std::vector<store::Instance> instances, std::uint64_t sequence, bool initial) {
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
              instance.registration.address, instance.registration.port,
              instance.registration.check, now, instance.consecutive_failures);
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

  void stop() {
    if (stopping_) return;
    stopping_ = true;
    wake_timer_.cancel();
    flush_timer_.cancel();
    resync_timer_.cancel();
    waiting_.clear();
    queued_.store(0);
    prober_.cancel_all();
    flush_records();
    logger()->info("health checker stopped");
  }

  // --- commits -------------------------------------------------------------------

  void apply(const std::vector<Change>& changes) {
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
            const std::uint32_t slot = add(std::move(key), change.service, change.id,
                                           change.address, change.port, change.check, change.at, 0);
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

  // --- probing -------------------------------------------------------------------

  Stats stats() const {
    Stats stats;
    stats.instances = tracked_.load();
    stats.probes_started = stats_started_.load();
    stats.probes_passed = stats_passed_.load();
    stats.probes_failed = stats_failed_.load();
    stats.removals = stats_removals_.load();
    stats.removals_suppressed = stats_suppressed_.load();
    stats.removals_kept = stats_kept_.load();
    stats.protection_active = protection_active_.load();
    stats.failing = failing_.load();
    stats.probes_in_flight = in_flight_.load();
    stats.probes_queued = queued_.load();
    stats.cap_hits = stats_cap_hits_.load();
    stats.record_batches = stats_record_batches_.load();
    stats.resyncs = stats_resyncs_.load();
    return stats;
  }

  std::vector<RemovalEvent> recent_removals() const {
    std::lock_guard lock(events_mutex_);
    return {events_.begin(), events_.end()};
  }

  void resync_now() {
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

 private:
  // --- tracking ------------------------------------------------------------------

  bool valid(std::uint32_t slot, std::uint32_t generation) const {
    return slot < slots_.size() && slots_[slot].live && slots_[slot].generation == generation;
  }

  std::uint32_t add(std::string key, const std::string& service, const std::string& id,
                    const store::IpAddress& address, std::uint16_t port,
                    const store::HealthCheck& check, store::TimePoint now, std::uint32_t failures) {
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
  void reset(std::uint32_t slot, const store::IpAddress& address, std::uint16_t port,
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

  void forget(std::uint32_t slot) {
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

  void set_failures_cleared(Tracked& tracked) {
    if (tracked.count.failing()) failing_.fetch_sub(1);
    tracked.count.reset();
  }

  // A read shows renewals this checker did not hear of (another daemon sharing
  // the database took a heartbeat or re-registration): the failures counted
  // before them no longer count, as if the commit had reached us.
  void adopt_renewals(Tracked& tracked, std::uint64_t renewals) {
    if (renewals == tracked.renewals) return;
    tracked.renewals = renewals;
    tracked.suppressed = false;
    set_failures_cleared(tracked);
  }

  // --- scheduling ----------------------------------------------------------------

  void schedule(std::uint32_t slot, std::chrono::milliseconds delay) {
    if (stopping_) return;
    Tracked& tracked = slots_[slot];
    tracked.phase = Phase::idle;
    due_.push({SteadyClock::now() + delay, slot, tracked.generation});
    arm();
  }

  void schedule_next(std::uint32_t slot) {
    const Tracked& tracked = slots_[slot];
    schedule(slot, next_probe_delay(tracked.settings.interval, options_.jitter, random_()));
  }

  // One timer for every instance: it fires at the earliest due probe.
  void arm() {
    if (!started_ || stopping_ || due_.empty()) return;
    const auto next = std::max(due_.top().at, last_wake_ + kTick);
    if (next >= armed_at_) return;
    armed_at_ = next;
    wake_timer_.expires_at(next);
    wake_timer_.async_wait([self = shared_from_this()](const error_code& error) {
      if (!error) self->on_wake();
    });
  }

  void on_wake() {
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

  void dispatch(std::uint32_t slot) {
    Tracked& tracked = slots_[slot];
    if (tracked.check.type == store::CheckType::ttl) return judge_heartbeat(slot);
    if (in_flight_.load() < options_.max_concurrent_probes) return start_probe(slot);
    tracked.phase = Phase::queued;
    waiting_.push_back({slot, tracked.generation});
    queued_.store(waiting_.size());
    stats_cap_hits_.fetch_add(1);
  }

  void start_probe(std::uint32_t slot) {
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

  void on_probe_done(std::uint32_t slot, std::uint32_t generation, const ProbeResult& result) {
    in_flight_.fetch_sub(1);
    if (stopping_ || result.aborted) return;
    if (valid(slot, generation) && slots_[slot].phase == Phase::probing) {
      judge(slot, result.passed, result.reason, result.load);
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
  void judge_heartbeat(std::uint32_t slot) {
    Tracked& tracked = slots_[slot];
    stats_started_.fetch_add(1);
    const bool passed = heartbeat_within(now_(), tracked.last_heartbeat, tracked.tracked_since,
                                         tracked.settings.ttl);
    judge(slot, passed, passed ? "" : "no heartbeat within " + format_ms(tracked.settings.ttl),
          std::nullopt);
  }

  void judge(std::uint32_t slot, bool passed, const std::string& reason,
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

  void update_protection() {
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

  // --- removal -------------------------------------------------------------------

  void begin_removal(std::uint32_t slot, store::TimePoint decided_at) {
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
        logger()->warn("reading service {} before a removal failed: {}", event.service,
                       error.what());
        asio::post(self->io_, [self, slot, generation] {
          if (!self->stopping_ && self->valid(slot, generation) &&
              self->slots_[slot].phase == Phase::removing) {
            self->schedule_next(slot);  // the next failure tries again
          }
        });
      }
    });
  }

  void on_reread(std::uint32_t slot, std::uint32_t generation, RemovalEvent event,
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

  void submit_removal(std::uint32_t slot, RemovalEvent event) {
    const Tracked& tracked = slots_[slot];
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

  void on_removal_result(std::uint32_t slot, std::uint32_t generation, const RemovalEvent& event,
                         const store::MutationResult& result) {
    const bool current = valid(slot, generation) && slots_[slot].phase == Phase::removing;
    switch (result.outcome) {
      case store::Outcome::removed:
        stats_removals_.fetch_add(1);
        logger()->info("removed service={} id={} address={} port={} reason=\"{}\" failures={}",
                       event.service, event.id, event.address, event.port, event.reason,
                       event.failures);
        {
          std::lock_guard lock(events_mutex_);
          events_.push_front(event);
          while (events_.size() > options_.max_events) events_.pop_back();
        }
        if (current) forget(slot);  // usually the commit listener did already
        break;
      case store::Outcome::not_found:
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

  // --- check records -------------------------------------------------------------

  void record(std::uint32_t slot, store::TimePoint now) {
    Tracked& tracked = slots_[slot];
    if (tracked.pending_record >= 0) {
      store::CheckRecord& pending = records_[static_cast<std::size_t>(tracked.pending_record)];
      pending.checked_at = now;
      pending.consecutive_failures = tracked.count.failures();
      pending.renewals = tracked.renewals;
      return;
    }
    tracked.pending_record = static_cast<std::int64_t>(records_.size());
    records_.push_back(
        {tracked.service, tracked.id, now, tracked.count.failures(), tracked.renewals});
    record_slots_.push_back(slot);
  }

  void drop_record(Tracked& tracked) {
    if (tracked.pending_record < 0) return;
    record_slots_[static_cast<std::size_t>(tracked.pending_record)] = kDeadRecord;
    tracked.pending_record = -1;
  }

  void flush_records() {
    if (records_.empty()) return;
    store::RecordChecks batch;
    batch.records.reserve(records_.size());
    for (std::size_t i = 0; i < records_.size(); ++i) {
      const std::uint32_t slot = record_slots_[i];
      if (slot == kDeadRecord) continue;
      if (slots_[slot].pending_record == static_cast<std::int64_t>(i)) {
        slots_[slot].pending_record = -1;
      }
      batch.records.push_back(std::move(records_[i]));
    }
    records_.clear();
    record_slots_.clear();
    if (batch.records.empty()) return;
    writer_.submit(std::move(batch), [self = shared_from_this()](const store::MutationResult& r) {
      if (r.outcome == store::Outcome::failed) {
        logger()->warn("writing check records failed: {}", r.error);
      } else {
        self->stats_record_batches_.fetch_add(1);
      }
    });
  }

  void arm_flush() {
    if (stopping_) return;
    flush_timer_.expires_after(options_.record_flush_period);
    flush_timer_.async_wait([self = shared_from_this()](const error_code& error) {
      if (error || self->stopping_) return;
      self->flush_records();
      self->arm_flush();
    });
  }

  void arm_resync() {
    if (stopping_) return;
    resync_timer_.expires_after(options_.resync_period);
    resync_timer_.async_wait([self = shared_from_this()](const error_code& error) {
      if (error || self->stopping_) return;
      self->resync_now();
      self->arm_resync();
    });
  }

  template <typename Task>
  void post_background(Task&& task) {
    std::lock_guard lock(background_mutex_);
    if (background_) asio::post(*background_, std::forward<Task>(task));
  }

  asio::io_context& io_;
  store::SqliteStore& store_;
  store::Writer& writer_;
  Options options_;
  Now now_;
  Random random_;
  Prober prober_;
  asio::steady_timer wake_timer_;
  asio::steady_timer flush_timer_;
  asio::steady_timer resync_timer_;
  SteadyClock::time_point armed_at_ = SteadyClock::time_point::max();
  SteadyClock::time_point last_wake_{};
  std::priority_queue<Due, std::vector<Due>, std::greater<>> due_;
  std::deque<SlotRef> waiting_;

  std::vector<Tracked> slots_;
  std::vector<std::uint32_t> free_;
  std::unordered_map<std::string, std::uint32_t> index_;
  // Instances forgotten by a commit, by commit sequence: a database read older
  // than that commit must not bring them back.
  std::unordered_map<std::string, std::uint64_t> tombstones_;
  std::uint64_t epoch_ = 0;
  bool started_ = false;
  bool stopping_ = false;

  std::vector<store::CheckRecord> records_;
  std::vector<std::uint32_t> record_slots_;

  std::atomic<std::uint64_t> commit_seq_{0};
  std::atomic<std::size_t> tracked_{0};
  std::atomic<std::size_t> failing_{0};
  std::atomic<std::size_t> in_flight_{0};
  std::atomic<std::size_t> queued_{0};
  std::atomic<bool> protection_active_{false};
  std::atomic<std::uint64_t> stats_started_{0};
  std::atomic<std::uint64_t> stats_passed_{0};
  std::atomic<std::uint64_t> stats_failed_{0};
  std::atomic<std::uint64_t> stats_removals_{0};
  std::atomic<std::uint64_t> stats_suppressed_{0};
  std::atomic<std::uint64_t> stats_kept_{0};
  std::atomic<std::uint64_t> stats_cap_hits_{0};
  std::atomic<std::uint64_t> stats_record_batches_{0};
  std::atomic<std::uint64_t> stats_resyncs_{0};

  mutable std::mutex events_mutex_;
  std::deque<RemovalEvent> events_;

  std::mutex background_mutex_;
  asio::thread_pool* background_;
};

Checker::Checker(asio::io_context& io, store::SqliteStore& store, store::Writer& writer,
                 Options options, Now now, Random random)
    : background_(std::make_unique<Background>()) {
  if (!now) now = [] { return store::Clock::now(); };
  if (!random) {
    random = [engine = std::make_shared<std::mt19937_64>(std::random_device{}())] {
      return std::uniform_real_distribution<double>(0.0, 1.0)(*engine);
    };
  }
  impl_ = std::make_shared<Impl>(io, store, writer, std::move(options), std::move(now),
                                 std::move(random), &background_->pool);
}

Checker::~Checker() {
  stop();
  impl_->detach_background();
  background_->pool.stop();
  background_->pool.join();
}

void Checker::start() {
  const std::uint64_t sequence = impl_->commit_sequence();
  // Read on the caller's thread, so that a broken database fails start() itself.
  auto instances = impl_->store().read_all_instances();
  asio::post(impl_->io(), [impl = impl_, instances = std::move(instances), sequence]() mutable {
    impl->install(std::move(instances), sequence, true);
  });
}

void Checker::stop() {
  asio::dispatch(impl_->io(), [impl = impl_] { impl->stop(); });
}

void Checker::on_commit(const store::Writer::Commit& commit) {
  std::vector<Change> changes;
  const auto at = impl_->now();
  const std::size_t count = std::min(commit.mutations.size(), commit.results.size());
  for (std::size_t i = 0; i < count; ++i) {
    const store::Outcome outcome = commit.results[i].outcome;
    const store::Mutation& mutation = commit.mutations[i];
    const std::uint64_t renewals = commit.results[i].renewals;
    if (const auto* upsert = std::get_if<store::Upsert>(&mutation)) {
      const store::Registration& reg = upsert->registration;
      if (outcome == store::Outcome::unchanged) {
        // Identical re-registration: nothing to probe differently, but alive.
        changes.push_back({Change::Kind::renewal, reg.service, reg.id, {}, 0, {}, at, renewals});
        continue;
      }
      if (outcome != store::Outcome::created && outcome != store::Outcome::updated) continue;
      changes.push_back({Change::Kind::upsert, reg.service, reg.id, reg.address, reg.port,
                         reg.check, at, renewals});
    } else if (const auto* deregister = std::get_if<store::Deregister>(&mutation)) {
      if (outcome != store::Outcome::removed) continue;
      changes.push_back({Change::Kind::forget, deregister->service, deregister->id, {}, 0, {}, at});
    } else if (const auto* removal = std::get_if<store::RemoveUnhealthy>(&mutation)) {
      if (outcome != store::Outcome::removed) continue;
      changes.push_back({Change::Kind::forget, removal->service, removal->id, {}, 0, {}, at});
    } else if (const auto* heartbeat = std::get_if<store::Heartbeat>(&mutation)) {
      if (outcome != store::Outcome::unchanged && outcome != store::Outcome::updated) continue;
      changes.push_back(
          {Change::Kind::heartbeat, heartbeat->service, heartbeat->id, {}, 0, {}, at, renewals});
    }
  }
  if (changes.empty()) return;
  asio::post(impl_->io(), [impl = impl_, changes = std::move(changes)] { impl->apply(changes); });
}

Stats Checker::stats() const {
  return impl_->stats();
}

std::vector<RemovalEvent> Checker::recent_removals() const {
  return impl_->recent_removals();
}

}  // namespace health
