// The cache's public face and its coherence state (store/cache/service_cache_impl.h
// says which file holds what).
#include "store/cache/service_cache.h"

#include <boost/asio/post.hpp>

#include "store/cache/service_cache_impl.h"

namespace store {
namespace asio = boost::asio;
using cache_internal::logger;

std::string ServiceCache::Impl::data_key(std::string_view service) const {
  return options.prefix + "svc:" + std::string(service);
}

std::string ServiceCache::Impl::fence_key(std::string_view service) const {
  return fence_prefix + std::string(service);
}

std::uint64_t ServiceCache::Impl::generation_of(std::string_view service) const {
  std::lock_guard lock(generation_mutex);
  auto it = generations.find(service);
  const std::uint64_t own = it == generations.end() ? 0 : it->second;
  return std::max(own, reset_generation);
}

void ServiceCache::Impl::invalidate_local(const std::vector<std::string>& services) {
  {
    std::lock_guard lock(generation_mutex);
    for (const auto& service : services) generations[service] = ++generation_counter;
    // Every name ever invalidated would otherwise stay here forever (random
    // names queried over DNS expire as negative entries and arrive as
    // invalidations). Folding them all into a new reset generation keeps
    // generation_of monotonic for every service, which is what makes a stale
    // read detectable; the price is that reads in flight now retry once.
    if (generations.size() > options.max_tracked_generations) {
      reset_generation = ++generation_counter;
      generations.clear();
    }
  }
  near.erase(services);
}

void ServiceCache::Impl::invalidate_all_local() {
  {
    std::lock_guard lock(generation_mutex);
    reset_generation = ++generation_counter;
  }
  near.clear();
}

std::uint64_t ServiceCache::Impl::latest_version_of(std::string_view service) const {
  std::lock_guard lock(generation_mutex);
  auto it = latest_versions.find(service);
  return it == latest_versions.end() ? 0 : it->second;
}

void ServiceCache::Impl::record_versions(const std::vector<OutboxEntry>& versions) {
  bool too_many;
  {
    std::lock_guard lock(generation_mutex);
    for (const auto& [service, version] : versions) {
      auto& latest = latest_versions[service];
      latest = std::max(latest, version);
    }
    too_many = latest_versions.size() > options.max_tracked_versions;
  }
  if (too_many) forget_versions_and_redis("too many versions tracked");
}

bool ServiceCache::Impl::memory_may_answer(FeedFollower::Clock::time_point now) const {
  // Other daemons may change services too; the feed tells us, so memory answers
  // only while the feed is current and, with several daemons, while the
  // membership says writers wait for us (checked per answer).
  if (!feed || !feed->current(now)) return false;
  return options.serving_deadline == nullptr || options.serving_deadline->allows(now);
}

bool ServiceCache::Impl::near_cache_usable() const {
  return options.near_cache && memory_may_answer(FeedFollower::Clock::now());
}

bool ServiceCache::Impl::known_usable() const {
  return options.known_names && known.authoritative() &&
         memory_may_answer(FeedFollower::Clock::now());
}

void ServiceCache::Impl::load_known_names_now() {
  const auto ticket = known.begin_load();
  try {
    std::vector<std::string> names;
    for (auto& summary : store.list_services()) names.push_back(std::move(summary.service));
    known.finish_load(ticket, names);
  } catch (const std::exception& error) {
    logger()->warn("cannot read the service names ({}); retrying", error.what());
    load_known_names();
  }
}

void ServiceCache::Impl::load_known_names() {
  const auto ticket = known.begin_load();
  asio::post(db_readers, [self = shared_from_this(), ticket] {
    std::vector<std::string> names;
    try {
      for (auto& summary : self->store.list_services()) names.push_back(std::move(summary.service));
    } catch (const std::exception& error) {
      logger()->warn("cannot read the service names ({}); retrying in 1 s", error.what());
      return asio::post(self->io, [self] {
        self->known_retry_timer->expires_after(std::chrono::seconds(1));
        self->known_retry_timer->async_wait([self](const boost::system::error_code& ec) {
          if (!ec) self->load_known_names();
        });
      });
    }
    self->known.finish_load(ticket, names);
  });
}

bool ServiceCache::Impl::forget_if_empty(const std::string& service,
                                         const ServiceSnapshot& snapshot,
                                         std::uint64_t generation) {
  if (!snapshot.instances.empty() || !known_usable()) return false;
  known.remove_if(service, [&] { return generation_of(service) == generation; });
  return true;
}

bool ServiceCache::Impl::redis_usable() const {
  if (!redis || !redis->connected()) return false;
  std::lock_guard lock(trust_mutex);
  return trusted;
}

void ServiceCache::Impl::distrust_redis(const char* why) {
  bool was_trusted;
  {
    std::lock_guard lock(trust_mutex);
    was_trusted = trusted;
    trusted = false;
    ++missed_invalidations;
  }
  // The near cache stays: its entries were vetted against the versions the feed
  // and our commits announced, and the feed keeps them coherent without Redis.
  if (was_trusted)
    logger()->warn("cache degraded: {}; misses read the database until Redis recovers", why);
}

void ServiceCache::Impl::on_feed_changes(const std::vector<Change>& changes) {
  std::vector<OutboxEntry> versions;
  std::vector<std::string> services;
  versions.reserve(changes.size());
  services.reserve(changes.size());
  for (const auto& change : changes) {
    versions.push_back({change.service, change.version});
    services.push_back(change.service);
  }
  record_versions(versions);
  invalidate_local(services);
  // After the generation bump, as in on_commit: a change may be the service's
  // first instance.
  known.add(services);
  if (options.feed_changes) options.feed_changes(changes);
}

void ServiceCache::Impl::on_feed_gap() {
  forget_versions_and_redis("the change feed had a gap");
  if (options.known_names) {
    known.invalidate();
    load_known_names();
  }
  if (options.feed_gap) options.feed_gap();
}

void ServiceCache::Impl::forget_versions_and_redis(const char* why) {
  // In this order: no Redis read starts once distrusted, the generation bump
  // rejects those in flight, and only then may the versions go.
  if (redis) distrust_redis(why);
  invalidate_all_local();
  {
    std::lock_guard lock(generation_mutex);
    latest_versions.clear();
  }
  if (!redis) return;
  asio::post(io, [self = shared_from_this()] {
    self->known_run_id.clear();  // wipe every entry before trusting Redis again
    self->recover();
  });
}

ServiceCache::ServiceCache(RegistryStore& store, Writer& writer, CacheOptions options)
    : impl_(std::make_shared<Impl>(store, writer, std::move(options))) {}

ServiceCache::~ServiceCache() {
  stop();
}

void ServiceCache::start() {
  auto& impl = *impl_;
  impl.work.emplace(impl.io.get_executor());
  impl.retry_timer.emplace(impl.io);
  impl.known_retry_timer.emplace(impl.io);
  // Before the names are read: a change committed after this point reaches
  // the handler, so nothing between the two reads is missed.
  std::weak_ptr<Impl> weak = impl_;
  impl.feed = std::make_unique<FeedFollower>(
      impl.store, impl.options.feed,
      FeedFollower::Handlers{[weak](const std::vector<Change>& changes) {
                               if (auto self = weak.lock()) self->on_feed_changes(changes);
                             },
                             [weak] {
                               if (auto self = weak.lock()) self->on_feed_gap();
                             },
                             impl.options.feed_advanced});
  impl.feed->start();
  if (impl.options.known_names) impl.load_known_names_now();
  if (impl.options.redis) {
    impl.redis = std::make_unique<redis::Client>(impl.io, *impl.options.redis);
    impl.redis->set_on_state_change([weak](bool connected) {
      auto self = weak.lock();
      if (!self) return;
      if (connected) {
        self->recover();
      } else {
        self->distrust_redis("Redis connection lost");
      }
    });
    impl.redis->start();
  }
  impl.thread = std::thread([&impl] { impl.io.run(); });
}

void ServiceCache::stop() {
  auto& impl = *impl_;
  if (!impl.thread.joinable()) return;
  impl.feed->stop();  // before the cache thread goes: its handlers post there
  // Everything that touches the cache's state runs on its thread, stopping too.
  asio::post(impl.io, [&impl] {
    if (impl.redis) impl.redis->stop();  // fails its pending commands, on this thread
    if (impl.retry_timer) impl.retry_timer->cancel();
  });
  impl.db_readers.join();  // reads in progress post their results to the cache thread
  asio::post(impl.io, [&impl] {
    // Lookups still waiting get an answer rather than silence.
    while (!impl.flights.empty()) {
      impl.complete(impl.flights.begin()->first, {false, nullptr, "shutting down"});
    }
  });
  impl.work.reset();
  impl.thread.join();
  impl.redis.reset();
}

ServiceSnapshotPtr ServiceCache::find_cached(std::string_view service) {
  auto& impl = *impl_;
  // One clock read per answer.
  if (!impl.memory_may_answer(FeedFollower::Clock::now())) return nullptr;
  if (!impl.options.near_cache) return nullptr;
  if (auto snapshot = impl.near.find(service)) {
    ++impl.counters.near_hits;
    return snapshot;
  }
  if (!impl.options.known_names || !impl.known.absent(service)) return nullptr;
  // Nothing is registered under this name: its current snapshot is empty, and
  // answering it costs no I/O, no allocation, and leaves nothing behind.
  ++impl.counters.absent_answers;
  static const ServiceSnapshotPtr kNothingRegistered = std::make_shared<const ServiceSnapshot>();
  return kNothingRegistered;
}

void ServiceCache::fetch(std::string service, std::function<void(LookupResult)> done) {
  auto& impl = *impl_;
  // Bounded: past the cap a lookup fails at once (DNS SERVFAIL, HTTP 503)
  // rather than queueing memory and latency behind a flood of cold names.
  if (impl.lookups_in_flight.fetch_add(1, std::memory_order_relaxed) >=
      impl.options.max_lookups_in_flight) {
    impl.lookups_in_flight.fetch_sub(1, std::memory_order_relaxed);
    ++impl.counters.lookups_shed;
    return done({false, nullptr, "too many lookups in flight"});
  }
  asio::post(impl_->io,
             [impl = impl_, service = std::move(service), done = std::move(done)]() mutable {
               impl->start_or_join(std::move(service), std::move(done));
             });
}

std::uint64_t ServiceCache::feed_applied() const {
  return impl_->feed ? impl_->feed->applied() : 0;
}

void ServiceCache::wake_feed() {
  if (impl_->feed) impl_->feed->wake();
}

void ServiceCache::pause_feed_for_test(bool paused) {
  if (impl_->feed) impl_->feed->pause_for_test(paused);
}

void ServiceCache::on_commit(const Writer::Commit& commit) {
  impl_->on_commit(commit);
}

CacheStats ServiceCache::stats() const {
  const auto& impl = *impl_;
  CacheStats stats;
  stats.redis_configured = impl.options.redis.has_value();
  stats.redis_connected = impl.redis && impl.redis->connected();
  {
    std::lock_guard lock(impl.trust_mutex);
    stats.redis_trusted = impl.redis && impl.trusted;
  }
  const auto near = impl.near.stats();
  stats.near_entries = near.entries;
  stats.near_evicted = near.evicted;
  stats.near_refused = near.refused;
  stats.known_services = impl.known.size();
  stats.known_names_active = impl.known_usable();
  stats.lookups_in_flight = impl.lookups_in_flight.load(std::memory_order_relaxed);
  {
    std::lock_guard lock(impl.generation_mutex);
    stats.tracked_generations = impl.generations.size();
    stats.tracked_versions = impl.latest_versions.size();
  }
  const auto& c = impl.counters;
  stats.near_hits = c.near_hits;
  stats.redis_hits = c.redis_hits;
  stats.redis_misses = c.redis_misses;
  stats.fills = c.fills;
  stats.fills_refused = c.fills_refused;
  stats.invalidations = c.invalidations;
  stats.invalidation_failures = c.invalidation_failures;
  stats.fallbacks = c.fallbacks;
  stats.redis_errors = c.redis_errors;
  stats.db_reads = c.db_reads;
  stats.coalesced = c.coalesced;
  stats.stale_retries = c.stale_retries;
  stats.outbox_replays = c.outbox_replays;
  stats.absent_answers = c.absent_answers;
  stats.lookups_shed = c.lookups_shed;
  stats.redis_stale = c.redis_stale;
  if (impl.feed) stats.feed = impl.feed->stats();
  return stats;
}

std::string ServiceCache::status() const {
  if (!impl_->options.redis) return "disabled";
  return impl_->redis_usable() ? "ok" : "degraded";
}

}  // namespace store
