// The read path's cache: an in-process near cache in front of Redis in front of
// the database, kept never-stale by active invalidation. docs/architecture.md
// explains the design and the no-stale argument; in short:
//
//  - Every committed change of this daemon reaches on_commit() (a Writer commit
//    subscriber) before it is acknowledged: it records the service's new
//    version, bumps its generation, drops its near-cache entry and runs the
//    invalidation script in Redis (raise the version fence, delete the entry).
//  - Every change of any daemon sharing the database arrives through the
//    database's change feed (store/cache/feed_follower.h), which does the same
//    locally. The near cache and the known names rest on the feed alone: they
//    answer only while the feed is current (per answer, monotonic clock), and
//    stay on when Redis is slow, paused or dead.
//  - Redis is a shared second-level cache. A fill (Redis or near cache) is only
//    accepted if nothing invalidated the service since the read that produced
//    it: the near cache compares generations, Redis compares versions against
//    the fence atomically in Lua. A Redis entry older than the newest version
//    the feed announced is never used, so a fence Redis lost (evicted, or an
//    invalidation that never reached it) cannot bring an old answer back.
//  - If an invalidation cannot reach Redis, the cache stops reading Redis until
//    the outbox of unconfirmed invalidations, kept in the database in the same
//    transaction as each change, has been replayed.
//  - Concurrent misses for one service share one read (single flight).
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "store/cache/feed_follower.h"
#include "store/cache/redis_client.h"
#include "store/lookup.h"
#include "store/registry_store.h"
#include "store/serving_deadline.h"
#include "store/writer.h"

namespace store {

struct CacheOptions {
  std::optional<redis::Options> redis;  // nullopt: no Redis (near cache and SQLite)
  std::string prefix = "discoveryd:";   // every Redis key starts with it
  std::chrono::milliseconds ttl{30'000};
  bool near_cache = true;
  std::size_t near_cache_max_entries = 100'000;
  // When full, a sweep at most this often drops entries not read since the
  // previous sweep (store/near_cache.h): cold entries never evict hot ones.
  std::chrono::milliseconds near_cache_sweep_interval{1000};
  // Keep the names that have instances in memory and answer every other name
  // "nothing registered" without I/O (store/known_services.h).
  bool known_names = true;
  // Lookups waiting for Redis or SQLite at once; past it fetch() fails at once.
  std::size_t max_lookups_in_flight = 4096;
  // Per-service invalidation generations kept before they are folded into one
  // reset generation (see ServiceCache::Impl::invalidate_local): about 100 bytes
  // each, so this bounds memory against clients asking for endless distinct
  // names; a fold makes the reads in flight at that moment retry once.
  std::size_t max_tracked_generations = 10'000;
  // The change feed: how often it is polled and how far behind the database
  // memory may fall before it stops answering (store/cache/feed_follower.h).
  FeedOptions feed;
  // Newest versions the feed announced, kept per changed service to vet Redis
  // entries (about 100 bytes each). Past it they are dropped together with
  // everything in Redis (a wipe), since an entry can no longer be vetted.
  std::size_t max_tracked_versions = 1'000'000;
  // Several daemons on one database (store/cluster/membership.h): memory also
  // answers only before this deadline, and `feed_advanced` hears each time the
  // feed applied more (on the feed's thread). Unset: one daemon alone.
  const ServingDeadline* serving_deadline = nullptr;
  std::function<void()> feed_advanced;
  // Others following the feed through the cache (the health checker): the
  // changes other daemons made, after the cache handled them, and gaps. On the
  // feed's thread; may be empty.
  std::function<void(const std::vector<Change>&)> feed_changes;
  std::function<void()> feed_gap;
  // Test hooks, empty in production: called on the reader thread after a SQLite
  // read and before its result is used, to force interleavings deterministically.
  std::function<void(const std::string& service)> after_db_read;
  // Test hook: disables the version fence of fills, to prove that the stale-fill
  // test detects the bug the fence prevents. Never set outside that test.
  bool unsafe_fill_without_fence = false;
};

struct CacheStats {
  bool redis_configured = false;
  bool redis_connected = false;
  bool redis_trusted = false;  // false: lookups bypass Redis (degraded)
  std::size_t near_entries = 0;
  std::uint64_t near_evicted = 0;    // cold or expired entries dropped to make room
  std::uint64_t near_refused = 0;    // fills not kept: the near cache was full of hot entries
  std::size_t known_services = 0;    // names that may have instances
  bool known_names_active = false;   // absent names are answered without I/O
  std::uint64_t absent_answers = 0;  // lookups answered "nothing registered" from that set
  std::size_t lookups_in_flight = 0;
  std::uint64_t lookups_shed = 0;  // lookups refused because too many were in flight
  FeedStats feed;                  // the change feed this cache follows
  std::size_t tracked_generations = 0;
  std::size_t tracked_versions = 0;
  std::uint64_t redis_stale = 0;  // Redis entries older than the feed's version: not used
  std::uint64_t near_hits = 0;
  std::uint64_t redis_hits = 0;
  std::uint64_t redis_misses = 0;
  std::uint64_t fills = 0;
  std::uint64_t fills_refused = 0;  // stale fills stopped by the version fence
  std::uint64_t invalidations = 0;
  std::uint64_t invalidation_failures = 0;
  std::uint64_t fallbacks = 0;  // lookups answered from SQLite because Redis was unusable
  std::uint64_t redis_errors = 0;
  std::uint64_t db_reads = 0;
  std::uint64_t coalesced = 0;  // lookups that joined a read already in flight
  std::uint64_t stale_retries = 0;
  std::uint64_t outbox_replays = 0;
};

class ServiceCache final : public ServiceLookup, public CommitSubscriber {
 public:
  ServiceCache(RegistryStore& store, Writer& writer, CacheOptions options);
  ~ServiceCache() override;
  ServiceCache(const ServiceCache&) = delete;
  ServiceCache& operator=(const ServiceCache&) = delete;

  // Starts the cache thread and, if configured, the Redis connection.
  void start();
  void stop();

  ServiceSnapshotPtr find_cached(std::string_view service) override;
  void fetch(std::string service, std::function<void(LookupResult)> done) override;

  // Polls the change feed now (a notification from the database arrived).
  void wake_feed();
  // The newest feed sequence this cache's memory reflects.
  std::uint64_t feed_applied() const;
  // Test hook: the feed stops being read (as if the database stopped answering).
  void pause_feed_for_test(bool paused);

  // A commit subscriber (subscribe it first): blocks (at most about the Redis
  // command timeout) until Redis confirmed the invalidations or the cache
  // stopped trusting Redis, so the batch is acknowledged only after that.
  void on_commit(const Writer::Commit& commit) override;

  CacheStats stats() const;
  // "ok", "degraded" (Redis configured but unusable) or "disabled" (no Redis).
  std::string status() const;

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_;
};

}  // namespace store
