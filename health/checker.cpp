// The Checker's public face (health/checker.h) and the Impl's construction,
// stop and thread-safe views. The other roles are in checker_*.cpp (see
// health/README.md); their shared state is declared in checker_impl.h.
#include "health/checker.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <random>

#include "health/checker_impl.h"
#include "store/logging.h"
#include "store/registry_store.h"

#ifndef DISCOVERYD_VERSION
#define DISCOVERYD_VERSION "dev"
#endif

namespace health {
namespace {

namespace asio = boost::asio;

}  // namespace

std::shared_ptr<spdlog::logger> Checker::Impl::logger() {
  return store::component_logger("health");
}

std::string Checker::Impl::key_of(std::string_view service, std::string_view id) {
  std::string key;
  key.reserve(service.size() + id.size() + 1);
  key.append(service).append("/").append(id);  // '/' is in no DNS label
  return key;
}

Checker::Impl::Impl(asio::io_context& io, store::RegistryStore& store, store::Writer& writer,
                    Options options, Now now, Random random, asio::thread_pool* background)
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
      urgent_flush_timer_(io),
      foreign_timer_(io),
      background_(background) {
  if (!options_.sharded) owned_.set();
  owned_count_.store(owned_.count());
  options_.max_concurrent_probes = std::max<std::size_t>(options_.max_concurrent_probes, 1);
  options_.max_events = std::max<std::size_t>(options_.max_events, 1);
}

void Checker::Impl::detach_background() {
  std::lock_guard lock(background_mutex_);
  background_ = nullptr;
}

void Checker::Impl::stop() {
  if (stopping_) return;
  stopping_ = true;
  wake_timer_.cancel();
  flush_timer_.cancel();
  resync_timer_.cancel();
  urgent_flush_timer_.cancel();
  foreign_timer_.cancel();
  waiting_.clear();
  queued_.store(0);
  prober_.cancel_all();
  flush_records();
  logger()->info("health checker stopped");
}

Stats Checker::Impl::stats() const {
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
  stats.shards = owned_count_.load();
  stats.shard_reads = stats_shard_reads_.load();
  stats.foreign_reads = stats_foreign_reads_.load();
  stats.lapsed_skips = stats_lapsed_skips_.load();
  return stats;
}

std::vector<RemovalEvent> Checker::Impl::recent_removals() const {
  std::lock_guard lock(events_mutex_);
  return {events_.begin(), events_.end()};
}

Checker::Checker(asio::io_context& io, store::RegistryStore& store, store::Writer& writer,
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
  Impl::ReadScope scope;
  scope.initial = true;
  scope.number = impl_->begin_read();
  const std::uint64_t sequence = impl_->commit_sequence();
  // Read on the caller's thread, so that a broken database fails start() itself.
  auto instances = impl_->store().read_all_instances();
  asio::post(impl_->io(), [impl = impl_, instances = std::move(instances), sequence,
                           scope = std::move(scope)]() mutable {
    impl->install(std::move(instances), sequence, scope);
  });
}

void Checker::stop() {
  asio::dispatch(impl_->io(), [impl = impl_] { impl->stop(); });
}

void Checker::on_commit(const store::Writer::Commit& commit) {
  using Change = Impl::Change;
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

void Checker::assign_shards(const store::ShardSet& shards, bool lapsed, Released released) {
  asio::post(impl_->io(), [impl = impl_, shards, lapsed, released = std::move(released)]() mutable {
    impl->assign(shards, lapsed, std::move(released));
  });
}

void Checker::on_feed_changes(const std::vector<store::Change>& changes) {
  impl_->note_foreign_changes(changes);
}

void Checker::on_feed_gap() {
  asio::post(impl_->io(), [impl = impl_] { impl->resync_now(); });
}

Stats Checker::stats() const {
  return impl_->stats();
}

std::vector<RemovalEvent> Checker::recent_removals() const {
  return impl_->recent_removals();
}

}  // namespace health
