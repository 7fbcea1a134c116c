// Internal to the cache: the state of store::ServiceCache shared by its three
// files, each one role:
//   service_cache.cpp              the public face (start/stop, find_cached,
//                                  fetch, stats) and the coherence state
//                                  (generations, trust, known names)
//   service_cache_lookup.cpp       a lookup's way through Redis and SQLite, and
//                                  the fills that follow it
//   service_cache_invalidation.cpp invalidation before acknowledgement and the
//                                  recovery of trust in Redis (outbox replay)
// Not for use outside store/service_cache*.cpp.
#pragma once

#include <atomic>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/thread_pool.hpp>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <vector>

#include "store/cache/known_services.h"
#include "store/cache/near_cache.h"
#include "store/cache/service_cache.h"
#include "store/logging.h"
#include "store/string_map.h"

namespace store {
namespace cache_internal {

inline std::shared_ptr<spdlog::logger> logger() {
  return component_logger("cache");
}

using store::StringMap;

}  // namespace cache_internal

struct ServiceCache::Impl : std::enable_shared_from_this<ServiceCache::Impl> {
  Impl(RegistryStore& store, Writer& writer, CacheOptions options)
      : store(store),
        writer(writer),
        options(std::move(options)),
        fence_prefix(this->options.prefix + "fence:"),
        near(this->options.near_cache_max_entries, this->options.ttl,
             this->options.near_cache_sweep_interval) {}

  RegistryStore& store;
  Writer& writer;
  CacheOptions options;
  // Keys whose changes other daemons announce: <prefix>fence:<service>.
  const std::string fence_prefix;

  boost::asio::io_context io;  // the cache thread: Redis I/O and the lookup state machine
  std::optional<boost::asio::executor_work_guard<boost::asio::io_context::executor_type>> work;
  std::thread thread;
  boost::asio::thread_pool db_readers{1};
  std::unique_ptr<redis::Client> redis;
  std::unique_ptr<FeedFollower> feed;
  std::optional<boost::asio::steady_timer> retry_timer;
  std::optional<boost::asio::steady_timer> known_retry_timer;

  // Generations: every invalidation event takes the next counter value.
  mutable std::mutex generation_mutex;
  cache_internal::StringMap<std::uint64_t> generations;
  std::uint64_t generation_counter = 0;
  std::uint64_t reset_generation = 0;  // all services changed (a feed gap, a fold)
  // The newest version each changed service is known to have (own commits and
  // the feed): a Redis entry older than it is stale.
  cache_internal::StringMap<std::uint64_t> latest_versions;

  NearCache near;                                 // shared by every reader thread
  KnownServices known;                            // the names that may have instances
  std::atomic<std::size_t> lookups_in_flight{0};  // fetch() callbacks not yet run

  // Whether Redis may be read and filled. False until the outbox is replayed.
  mutable std::mutex trust_mutex;
  bool trusted = false;
  std::uint64_t missed_invalidations = 0;

  // Cache-thread-only state.
  struct Flight {
    std::vector<std::function<void(LookupResult)>> waiters;
    std::uint64_t generation = 0;
    int attempts = 0;
  };
  cache_internal::StringMap<Flight> flights;
  bool recovering = false;
  bool recover_again = false;
  std::string known_run_id;

  struct Counters {
    std::atomic<std::uint64_t> near_hits{0}, redis_hits{0}, redis_misses{0}, fills{0},
        fills_refused{0}, invalidations{0}, invalidation_failures{0}, fallbacks{0}, redis_errors{0},
        db_reads{0}, coalesced{0}, stale_retries{0}, outbox_replays{0}, absent_answers{0},
        lookups_shed{0}, redis_stale{0};
  } counters;

  std::string data_key(std::string_view service) const;
  std::string fence_key(std::string_view service) const;
  std::uint64_t generation_of(std::string_view service) const;
  std::uint64_t latest_version_of(std::string_view service) const;
  // Raises the services' known versions (before their invalidation, so that a
  // Redis read issued after it is vetted against the new version).
  void record_versions(const std::vector<OutboxEntry>& versions);

  // Marks services changed: in-flight reads of them are discarded, near entries go.
  void invalidate_local(const std::vector<std::string>& services);
  void invalidate_all_local();
  bool near_cache_usable() const;
  bool memory_may_answer(FeedFollower::Clock::time_point now) const;

  // Whether the known-names set may answer "absent": it has been loaded and the
  // change feed is current.
  bool known_usable() const;

  // The first load, on the starting thread, so that absent names cost nothing
  // from the first query on. A failure retries in the background.
  void load_known_names_now();

  // (Re)loads the known names from the database, off the caller's thread.
  void load_known_names();

  // A read found the service empty at `generation`: forget the name (so that
  // later queries cost nothing) unless a change to it happened since. Returns
  // whether the known set answers for the service now, in which case the empty
  // snapshot is not cached anywhere: caching it would only hold memory.
  bool forget_if_empty(const std::string& service, const ServiceSnapshot& snapshot,
                       std::uint64_t generation);
  bool redis_usable() const;
  void distrust_redis(const char* why);

  // The change feed (follower thread): changes of other daemons, and a gap
  // (changes pruned before we read them: anything may have changed).
  void on_feed_changes(const std::vector<Change>& changes);
  void on_feed_gap();
  // Forgets every version and every Redis entry (which can no longer be
  // vetted): a feed gap, or too many versions tracked.
  void forget_versions_and_redis(const char* why);

  // ---- lookups (cache thread) ----

  void start_or_join(std::string service, std::function<void(LookupResult)> done);
  void read_redis(const std::string& service);
  void read_db(const std::string& service);
  void finish_db_read(const std::string& service, std::uint64_t generation, LookupResult result);
  void fill_redis(const std::string& service, const ServiceSnapshot& snapshot);
  void fill_near(const std::string& service, const ServiceSnapshotPtr& snapshot,
                 std::uint64_t generation);
  void complete(const std::string& service, LookupResult result);

  // ---- invalidation ----

  // Runs the invalidation script for each entry (pipelined) and reports whether
  // Redis confirmed them all. `done` runs on the cache thread.
  void invalidate_in_redis(std::vector<OutboxEntry> entries, std::function<void(bool)> done);
  void on_commit(const Writer::Commit& commit);

  // ---- recovery: make Redis trustworthy again (cache thread) ----

  void schedule_recovery();
  void recover();
  void wipe_prefix(std::string cursor, std::function<void()> done);
  void replay_outbox(std::uint64_t epoch);
  void recovery_failed(const char* why);
};

}  // namespace store
