// A lookup's way through Redis and SQLite (single flight per service), and the
// fills of Redis and the near cache that follow it.
#include <boost/asio/post.hpp>

#include "store/cache/service_cache_impl.h"
#include "store/cache/snapshot_codec.h"

namespace store {
namespace asio = boost::asio;
using cache_internal::logger;
namespace {

// Fill only if no invalidation since the read: the fence holds the newest
// version any invalidation announced; a snapshot older than it is stale.
constexpr const char* kFillScript = R"lua(
local fence = tonumber(redis.call('GET', KEYS[2]) or '0')
if tonumber(ARGV[1]) < fence then return 0 end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
return 1
)lua";

// A read that keeps losing races with writes is retried; past this it is served
// with a warning rather than starving the client.
constexpr int kMaxStaleRetries = 100;

}  // namespace

void ServiceCache::Impl::start_or_join(std::string service,
                                       std::function<void(LookupResult)> done) {
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

void ServiceCache::Impl::read_redis(const std::string& service) {
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
          // Not usable: read before an invalidation we already saw, or
          // older than a version the feed or our commits announced (a
          // fence Redis lost, an invalidation that never reached it).
          const bool current = snapshot && snapshot->service == service &&
                               self->generation_of(service) == flight->second.generation &&
                               snapshot->version >= self->latest_version_of(service);
          if (snapshot && !current) ++self->counters.redis_stale;
          if (current) {
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

void ServiceCache::Impl::read_db(const std::string& service) {
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

void ServiceCache::Impl::finish_db_read(const std::string& service, std::uint64_t generation,
                                        LookupResult result) {
  auto flight = flights.find(service);
  if (flight == flights.end()) return;
  if (!result.ok) return complete(service, std::move(result));
  if (generation_of(service) != generation) {
    // A change committed while we read: the result may predate it and must not
    // answer anyone who asks after the change was acknowledged. Read again.
    ++counters.stale_retries;
    if (++flight->second.attempts < kMaxStaleRetries) return read_db(service);
    logger()->warn("service {} changed during {} consecutive reads; serving the last one", service,
                   kMaxStaleRetries);
  }
  if (!forget_if_empty(service, *result.snapshot, generation)) {
    fill_redis(service, *result.snapshot);
    fill_near(service, result.snapshot, generation);
  }
  complete(service, std::move(result));
}

void ServiceCache::Impl::fill_redis(const std::string& service, const ServiceSnapshot& snapshot) {
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

void ServiceCache::Impl::fill_near(const std::string& service, const ServiceSnapshotPtr& snapshot,
                                   std::uint64_t generation) {
  if (!near_cache_usable()) return;
  // Checked under the near cache's lock: invalidate_local bumps the generation
  // before it takes that lock to erase, so either we see the bump or it erases us.
  near.insert_if(service, snapshot, [&] { return generation_of(service) == generation; });
}

void ServiceCache::Impl::complete(const std::string& service, LookupResult result) {
  auto flight = flights.find(service);
  auto waiters = std::move(flight->second.waiters);
  flights.erase(flight);
  lookups_in_flight.fetch_sub(waiters.size(), std::memory_order_relaxed);
  for (auto& waiter : waiters) waiter(result);
}

}  // namespace store
