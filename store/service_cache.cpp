#include "store/service_cache.h"
#include "store/logging.h"

#include <spdlog/spdlog.h>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/thread_pool.hpp>
#include <future>
#include <mutex>
#include <shared_mutex>
#include <thread>
#include <unordered_map>

#include "store/known_services.h"
#include "store/near_cache.h"
#include "store/snapshot_codec.h"

namespace store {
namespace asio = boost::asio;
namespace {

std::shared_ptr<spdlog::logger> logger() {
  return store::component_logger("cache");
}

// Fill only if no invalidation since the read: the fence holds the newest
// version any invalidation announced; a snapshot older than it is stale.
constexpr const char* kFillScript = R"lua(
local fence = tonumber(redis.call('GET', KEYS[2]) or '0')
if tonumber(ARGV[1]) < fence then return 0 end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
return 1
)lua";

// Raise the fence to the new version, then drop the entry. Atomic, so no fill
// can slip between the two.
constexpr const char* kInvalidateScript = R"lua(
local fence = tonumber(redis.call('GET', KEYS[2]) or '0')
if tonumber(ARGV[1]) > fence then redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[2]) end
redis.call('DEL', KEYS[1])
return 1
)lua";

// Fences outlive any read that could race with them by orders of magnitude.
constexpr std::chrono::milliseconds kFenceTtl{24 * 3600 * 1000};
// A read that keeps losing races with writes is retried; past this it is served
// with a warning rather than starving the client.
constexpr int kMaxStaleRetries = 100;

struct TransparentHash {
  using is_transparent = void;
  std::size_t operator()(std::string_view text) const {
    return std::hash<std::string_view>{}(text);
  }
};
template <typename Value>
using StringMap = std::unordered_map<std::string, Value, TransparentHash, std::equal_to<>>;

}  // namespace

struct ServiceCache::Impl : std::enable_shared_from_this<ServiceCache::Impl> {
  Impl(SqliteStore& store, Writer& writer, CacheOptions options)
      : store(store),
        writer(writer),
        options(std::move(options)),
        near(this->options.near_cache_max_entries, this->options.ttl,
             this->options.near_cache_sweep_interval) {}

  SqliteStore& store;
  Writer& writer;
  CacheOptions options;

  asio::io_context io;  // the cache thread: Redis I/O and the lookup state machine
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> work;
  std::thread thread;
  asio::thread_pool db_readers{1};
  std::unique_ptr<redis::Client> redis;
  std::optional<asio::steady_timer> retry_timer;
  std::optional<asio::steady_timer> known_retry_timer;

  // Generations: every invalidation event takes the next counter value.
  mutable std::mutex generation_mutex;
  StringMap<std::uint64_t> generations;
  std::uint64_t generation_counter = 0;
  std::uint64_t reset_generation = 0;  // all services changed (lost tracking)

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
  StringMap<Flight> flights;
  bool recovering = false;
  bool recover_again = false;
  std::string known_run_id;

  struct Counters {
    std::atomic<std::uint64_t> near_hits{0}, redis_hits{0}, redis_misses{0}, fills{0},
        fills_refused{0}, invalidations{0}, invalidation_failures{0}, fallbacks{0}, redis_errors{0},
        db_reads{0}, coalesced{0}, stale_retries{0}, outbox_replays{0}, absent_answers{0},
        lookups_shed{0}, tracked_changes{0};
  } counters;

  std::string data_key(std::string_view service) const {
    return options.prefix + "svc:" + std::string(service);
  }
  std::string fence_key(std::string_view service) const {
    return options.prefix + "fence:" + std::string(service);
  }

  std::uint64_t generation_of(std::string_view service) const {
    std::lock_guard lock(generation_mutex);
    auto it = generations.find(service);
    const std::uint64_t own = it == generations.end() ? 0 : it->second;
    return std::max(own, reset_generation);
  }

  // Marks services changed: in-flight reads of them are discarded, near entries go.
  void invalidate_local(const std::vector<std::string>& services) {
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

  void invalidate_all_local() {
    {
      std::lock_guard lock(generation_mutex);
      reset_generation = ++generation_counter;
    }
    near.clear();
  }

  bool near_cache_usable() const {
    if (!options.near_cache) return false;
    // With Redis, other daemons may change services too; only invalidation
    // messages tell us, so without them the near cache cannot be trusted.
    return !redis || redis->tracking_active();
  }

  // Whether the known-names set may answer "absent": it has been loaded and,
  // with Redis, the announcements of other daemons' changes are flowing.
  bool known_usable() const {
    if (!options.known_names || !known.authoritative()) return false;
    return !redis || redis->tracking_active();
  }

  // The first load, on the starting thread, so that absent names cost nothing
  // from the first query on. A failure retries in the background.
  void load_known_names_now() {
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

  // (Re)loads the known names from the database, off the caller's thread.
  void load_known_names() {
    const auto ticket = known.begin_load();
    asio::post(db_readers, [self = shared_from_this(), ticket] {
      std::vector<std::string> names;
      try {
        for (auto& summary : self->store.list_services())
          names.push_back(std::move(summary.service));
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

  // A read found the service empty at `generation`: forget the name (so that
  // later queries cost nothing) unless a change to it happened since. Returns
  // whether the known set answers for the service now, in which case the empty
  // snapshot is not cached anywhere: caching it would only hold memory.
  bool forget_if_empty(const std::string& service, const ServiceSnapshot& snapshot,
                       std::uint64_t generation) {
    if (!snapshot.instances.empty() || !known_usable()) return false;
    known.remove_if(service, [&] { return generation_of(service) == generation; });
    return true;
  }

  bool redis_usable() const {
    if (!redis || !redis->connected()) return false;
    std::lock_guard lock(trust_mutex);
    return trusted;
  }

  void distrust_redis(const char* why) {
    bool was_trusted;
    {
      std::lock_guard lock(trust_mutex);
      was_trusted = trusted;
      trusted = false;
      ++missed_invalidations;
    }
    // Whatever came from Redis is suspect now, including near-cache entries filled
    // from it and reads of it still in flight.
    invalidate_all_local();
    if (was_trusted)
      logger()->warn("cache degraded: {}; lookups read SQLite until Redis recovers", why);
  }

  // Fences that changed: another daemon's change (or our own, reported back
  // because the invalidation is a script; harmless), or an expiry.
  void on_foreign_change(const std::vector<std::string>& keys) {
    const std::string prefix = options.prefix + "fence:";
    std::vector<std::string> services;
    for (const auto& key : keys) {
      if (key.size() > prefix.size() && key.starts_with(prefix)) {
        services.push_back(key.substr(prefix.size()));
      }
    }
    counters.tracked_changes += services.size();
    invalidate_local(services);
    // After the generation bump, as in on_commit: a raised fence may announce a
    // service's first instance.
    known.add(services);
  }

  // ---- lookups (cache thread) ----

  void start_or_join(std::string service, std::function<void(LookupResult)> done) {
    auto existing = flights.find(service);
    if (existing != flights.end()) {
      ++counters.coalesced;
      existing->second.waiters.push_back(std::move(done));
      return;
    }
    Flight& flight = flights[service];
    flight.waiters.push_back(std::move(done));
    flight.generation = generation_of(service);
    if (redis_usable()) {
      read_redis(service);
    } else {
      if (redis) ++counters.fallbacks;
      read_db(service);
    }
  }

  void read_redis(const std::string& service) {
    redis->command(
        {"GET", data_key(service)}, [self = shared_from_this(), service](redis::Result result) {
          auto flight = self->flights.find(service);
          if (flight == self->flights.end()) return;
          if (!result.ok) {
            ++self->counters.redis_errors;
            ++self->counters.fallbacks;
            return self->read_db(service);
          }
          if (result.reply.kind == redis::Reply::Kind::string) {
            auto snapshot = decode_snapshot(result.reply.text);
            // The entry was read before an invalidation we already saw: not usable.
            if (snapshot && snapshot->service == service &&
                self->generation_of(service) == flight->second.generation) {
              ++self->counters.redis_hits;
              auto shared = std::make_shared<const ServiceSnapshot>(std::move(*snapshot));
              if (!self->forget_if_empty(service, *shared, flight->second.generation)) {
                self->fill_near(service, shared, flight->second.generation);
              }
              return self->complete(service, {true, std::move(shared), {}});
            }
            if (!snapshot) ++self->counters.redis_errors;
          } else if (result.reply.is_nil()) {
            ++self->counters.redis_misses;
          } else {
            ++self->counters.redis_errors;
          }
          self->read_db(service);
        });
  }

  void read_db(const std::string& service) {
    auto flight = flights.find(service);
    // The generation is taken before the read: a change committed after this
    // point bumps it, so a read that might predate the change is recognised.
    const std::uint64_t generation = generation_of(service);
    flight->second.generation = generation;
    asio::post(db_readers, [self = shared_from_this(), service, generation] {
      LookupResult result;
      try {
        auto snapshot = self->store.read_service(service);
        result = {true, std::make_shared<const ServiceSnapshot>(std::move(snapshot)), {}};
      } catch (const std::exception& error) {
        result = {false, nullptr, error.what()};
      }
      ++self->counters.db_reads;
      if (self->options.after_db_read) self->options.after_db_read(service);
      asio::post(self->io, [self, service, generation, result = std::move(result)]() mutable {
        self->finish_db_read(service, generation, std::move(result));
      });
    });
  }

  void finish_db_read(const std::string& service, std::uint64_t generation, LookupResult result) {
    auto flight = flights.find(service);
    if (flight == flights.end()) return;
    if (!result.ok) return complete(service, std::move(result));
    if (generation_of(service) != generation) {
      // A change committed while we read: the result may predate it and must not
      // answer anyone who asks after the change was acknowledged. Read again.
      ++counters.stale_retries;
      if (++flight->second.attempts < kMaxStaleRetries) return read_db(service);
      logger()->warn("service {} changed during {} consecutive reads; serving the last one",
                     service, kMaxStaleRetries);
    }
    if (!forget_if_empty(service, *result.snapshot, generation)) {
      fill_redis(service, *result.snapshot);
      fill_near(service, result.snapshot, generation);
    }
    complete(service, std::move(result));
  }

  void fill_redis(const std::string& service, const ServiceSnapshot& snapshot) {
    if (!redis_usable()) return;
    const std::string ttl = std::to_string(options.ttl.count());
    std::vector<std::string> command;
    if (options.unsafe_fill_without_fence) {
      command = {"SET", data_key(service), encode_snapshot(snapshot), "PX", ttl};
    } else {
      command = {"EVAL",
                 kFillScript,
                 "2",
                 data_key(service),
                 fence_key(service),
                 std::to_string(snapshot.version),
                 encode_snapshot(snapshot),
                 ttl};
    }
    redis->command(std::move(command), [self = shared_from_this()](redis::Result result) {
      if (!result.ok || result.reply.is_error()) {
        ++self->counters.redis_errors;
      } else if (result.reply.kind == redis::Reply::Kind::integer && result.reply.integer == 0) {
        ++self->counters.fills_refused;
      } else {
        ++self->counters.fills;
      }
    });
  }

  void fill_near(const std::string& service, const ServiceSnapshotPtr& snapshot,
                 std::uint64_t generation) {
    if (!near_cache_usable()) return;
    // Checked under the near cache's lock: invalidate_local bumps the generation
    // before it takes that lock to erase, so either we see the bump or it erases us.
    near.insert_if(service, snapshot, [&] { return generation_of(service) == generation; });
  }

  void complete(const std::string& service, LookupResult result) {
    auto flight = flights.find(service);
    auto waiters = std::move(flight->second.waiters);
    flights.erase(flight);
    lookups_in_flight.fetch_sub(waiters.size(), std::memory_order_relaxed);
    for (auto& waiter : waiters) waiter(result);
  }

  // ---- invalidation ----

  // Runs the invalidation script for each entry (pipelined) and reports whether
  // Redis confirmed them all. `done` runs on the cache thread.
  void invalidate_in_redis(std::vector<OutboxEntry> entries, std::function<void(bool)> done) {
    if (entries.empty()) return done(true);
    auto remaining = std::make_shared<std::size_t>(entries.size());
    auto all_ok = std::make_shared<bool>(true);
    auto shared_done = std::make_shared<std::function<void(bool)>>(std::move(done));
    for (const auto& entry : entries) {
      redis->command(
          {"EVAL", kInvalidateScript, "2", data_key(entry.service), fence_key(entry.service),
           std::to_string(entry.version), std::to_string(kFenceTtl.count())},
          [remaining, all_ok, shared_done](redis::Result result) {
            if (!result.ok || result.reply.is_error()) *all_ok = false;
            if (--*remaining == 0) (*shared_done)(*all_ok);
          });
    }
  }

  void on_commit(const Writer::Commit& commit) {
    if (commit.changed_services.empty()) return;
    invalidate_local(commit.changed_services);
    counters.invalidations += commit.changed_services.size();
    // After the generation bump (see KnownServices::remove_if's caller) and before
    // the acknowledgement: a service that just got instances is known from now on.
    for (std::size_t i = 0; i < commit.mutations.size(); ++i) {
      const auto outcome = commit.results[i].outcome;
      if (outcome == Outcome::created || outcome == Outcome::updated) {
        known.add(service_of(commit.mutations[i]));
      }
    }

    std::vector<OutboxEntry> entries;
    for (const auto& service : commit.changed_services) entries.push_back({service, 0});
    for (std::size_t i = 0; i < commit.mutations.size(); ++i) {
      if (!commit.results[i].changed()) continue;
      const auto& service = service_of(commit.mutations[i]);
      auto entry = std::lower_bound(
          entries.begin(), entries.end(), service,
          [](const OutboxEntry& e, const std::string& s) { return e.service < s; });
      entry->version = std::max(entry->version, commit.results[i].service_version);
    }
    if (!redis) {
      // Nothing to invalidate remotely: the outbox rows are done with.
      writer.confirm_invalidations(std::move(entries));
      return;
    }
    bool redis_trusted;
    {
      std::lock_guard lock(trust_mutex);
      redis_trusted = trusted;
      // Redis is not being read; the outbox keeps the invalidation for the replay.
      if (!trusted) ++missed_invalidations;
    }
    bool confirmed_by_redis = false;
    if (redis_trusted) {
      auto confirmed = std::make_shared<std::promise<bool>>();
      auto confirmed_future = confirmed->get_future();
      asio::post(io, [self = shared_from_this(), entries, confirmed] {
        self->invalidate_in_redis(entries, [confirmed](bool ok) { confirmed->set_value(ok); });
      });
      // Every command completes within its timeout; the margin covers a busy loop.
      confirmed_by_redis =
          confirmed_future.wait_for(options.redis->command_timeout * 20 +
                                    std::chrono::milliseconds(500)) == std::future_status::ready &&
          confirmed_future.get();
      if (!confirmed_by_redis) {
        ++counters.invalidation_failures;
        distrust_redis("an invalidation did not reach Redis");
        asio::post(io, [self = shared_from_this()] { self->recover(); });
      }
    }
    // A lookup that took its generation after the first bump may have read Redis
    // before the DEL (or the distrust) reached it; bumping again once Redis is
    // settled keeps what it read out of the near cache.
    invalidate_local(commit.changed_services);
    if (confirmed_by_redis) writer.confirm_invalidations(std::move(entries));
  }

  // ---- recovery: make Redis trustworthy again (cache thread) ----

  void schedule_recovery() {
    retry_timer->expires_after(std::chrono::milliseconds(200));
    retry_timer->async_wait([self = shared_from_this()](const boost::system::error_code& ec) {
      if (!ec) self->recover();
    });
  }

  void recover() {
    if (!redis || !redis->connected()) return;  // the state callback calls again
    if (recovering) {
      recover_again = true;
      return;
    }
    recovering = true;
    recover_again = false;
    std::uint64_t epoch;
    {
      std::lock_guard lock(trust_mutex);
      epoch = missed_invalidations;
    }
    redis->command({"INFO", "server"}, [self = shared_from_this(), epoch](redis::Result result) {
      if (!result.ok || result.reply.kind != redis::Reply::Kind::string) {
        return self->recovery_failed("INFO failed");
      }
      const auto& info = result.reply.text;
      std::string run_id;
      if (auto at = info.find("run_id:"); at != std::string::npos) {
        run_id = info.substr(at + 7, info.find_first_of("\r\n", at) - at - 7);
      }
      if (run_id == self->known_run_id) return self->replay_outbox(epoch);
      // A Redis we have not vetted (first contact, or it restarted, possibly from
      // an old snapshot): drop every entry under our prefix before reading any.
      self->wipe_prefix("0", [self, epoch, run_id] {
        self->known_run_id = run_id;
        self->replay_outbox(epoch);
      });
    });
  }

  void wipe_prefix(std::string cursor, std::function<void()> done) {
    redis->command(
        {"SCAN", cursor, "MATCH", options.prefix + "*", "COUNT", "1000"},
        [self = shared_from_this(), done = std::move(done)](redis::Result result) mutable {
          if (!result.ok || result.reply.kind != redis::Reply::Kind::array ||
              result.reply.elements.size() != 2) {
            return self->recovery_failed("SCAN failed");
          }
          std::string next = result.reply.elements[0].text;
          std::vector<std::string> unlink = {"UNLINK"};
          for (const auto& key : result.reply.elements[1].elements) unlink.push_back(key.text);
          auto continue_scan = [self, next, done = std::move(done)]() mutable {
            if (next == "0") return done();
            self->wipe_prefix(next, std::move(done));
          };
          if (unlink.size() == 1) return continue_scan();
          self->redis->command(std::move(unlink), [self, continue_scan = std::move(continue_scan)](
                                                      redis::Result result) mutable {
            if (!result.ok) return self->recovery_failed("UNLINK failed");
            continue_scan();
          });
        });
  }

  void replay_outbox(std::uint64_t epoch) {
    asio::post(db_readers, [self = shared_from_this(), epoch] {
      std::vector<OutboxEntry> outbox;
      try {
        outbox = self->store.read_outbox();
      } catch (const std::exception& error) {
        return asio::post(self->io, [self] { self->recovery_failed("cannot read the outbox"); });
      }
      asio::post(self->io, [self, epoch, outbox = std::move(outbox)]() mutable {
        const auto count = outbox.size();
        self->invalidate_in_redis(outbox, [self, epoch, outbox, count](bool ok) mutable {
          if (!ok) return self->recovery_failed("outbox replay failed");
          self->counters.outbox_replays += count;
          self->writer.confirm_invalidations(std::move(outbox));
          bool done = false;
          {
            std::lock_guard lock(self->trust_mutex);
            // Trust Redis only if no invalidation was missed during the replay.
            if (self->missed_invalidations == epoch && !self->recover_again) {
              self->trusted = true;
              done = true;
            }
          }
          self->recovering = false;
          if (done) {
            logger()->info("cache ready: Redis trusted again ({} outbox invalidations replayed)",
                           count);
          } else {
            self->recover();
          }
        });
      });
    });
  }

  void recovery_failed(const char* why) {
    recovering = false;
    logger()->debug("cache recovery: {}; retrying", why);
    schedule_recovery();
  }
};

ServiceCache::ServiceCache(SqliteStore& store, Writer& writer, CacheOptions options)
    : impl_(std::make_shared<Impl>(store, writer, std::move(options))) {}

ServiceCache::~ServiceCache() {
  stop();
}

void ServiceCache::start() {
  auto& impl = *impl_;
  impl.work.emplace(impl.io.get_executor());
  impl.retry_timer.emplace(impl.io);
  impl.known_retry_timer.emplace(impl.io);
  if (impl.options.known_names) impl.load_known_names_now();
  if (impl.options.redis) {
    auto redis_options = *impl.options.redis;
    // Our own writes (fills, invalidations) are handled locally; reporting them
    // back would only cost a round trip and a near-cache miss per name.
    redis_options.tracking_noloop = true;
    impl.redis = std::make_unique<redis::Client>(impl.io, redis_options);
    std::weak_ptr<Impl> weak = impl_;
    impl.redis->set_on_state_change([weak](bool connected) {
      auto self = weak.lock();
      if (!self) return;
      if (connected) {
        self->recover();
      } else {
        self->distrust_redis("Redis connection lost");
      }
    });
    if (impl.options.near_cache || impl.options.known_names) {
      // Only the version fences: every daemon's every change raises its
      // service's fence (in the invalidation script), so a fence message is the
      // announcement of a change, and of a service that may have new
      // instances. Snapshot keys (svc:) are not tracked: they change by fills
      // and expiry too, and Redis 7.0 reports writes made by a script even to
      // the client that ran it (NOLOOP covers plain commands only), so tracking
      // them sent every fill of ours back as an invalidation.
      impl.redis->track_prefix(
          impl.options.prefix + "fence:",
          [weak](const std::vector<std::string>& keys) {
            if (auto self = weak.lock()) self->on_foreign_change(keys);
          },
          [weak] {
            auto self = weak.lock();
            if (!self) return;
            self->invalidate_all_local();
            // Announcements may have been missed: not authoritative until the
            // names are read again, which only helps once they flow again.
            self->known.invalidate();
            if (self->options.known_names && self->redis->tracking_active()) {
              self->load_known_names();
            }
          });
    }
    impl.redis->start();
  }
  impl.thread = std::thread([&impl] { impl.io.run(); });
}

void ServiceCache::stop() {
  auto& impl = *impl_;
  if (!impl.thread.joinable()) return;
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
  if (!impl.near_cache_usable()) return nullptr;
  if (auto snapshot = impl.near.find(service)) {
    ++impl.counters.near_hits;
    return snapshot;
  }
  if (!impl.known_usable() || !impl.known.absent(service)) return nullptr;
  // Nothing is registered under this name: its current snapshot is empty, and
  // answering it costs no I/O and leaves nothing behind.
  ++impl.counters.absent_answers;
  auto empty = std::make_shared<ServiceSnapshot>();
  empty->service = std::string(service);
  return empty;
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
  stats.tracking_active = impl.redis && impl.redis->tracking_active();
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
  stats.tracked_changes = c.tracked_changes;
  return stats;
}

std::string ServiceCache::status() const {
  if (!impl_->options.redis) return "disabled";
  return impl_->redis_usable() ? "ok" : "degraded";
}

}  // namespace store
