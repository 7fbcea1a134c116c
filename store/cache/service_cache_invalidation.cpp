// Invalidation before acknowledgement (a Writer commit subscriber) and the
// recovery of trust in Redis: run_id check, prefix wipe, outbox replay.
#include <boost/asio/post.hpp>
#include <future>

#include "store/cache/service_cache_impl.h"

namespace store {
namespace asio = boost::asio;
using cache_internal::logger;
namespace {

// Raise the fence to the new version, then drop the entry. Atomic, so no fill
// can slip between the two. Fences have no TTL: under a volatile-* (or
// noeviction) maxmemory policy Redis never evicts them, so a fill older than
// a fence is always refused (and readers vet entries against the feed anyway).
// One per changed service; a daemon's first contact wipes them all.
constexpr const char* kInvalidateScript = R"lua(
local fence = tonumber(redis.call('GET', KEYS[2]) or '0')
if tonumber(ARGV[1]) > fence then redis.call('SET', KEYS[2], ARGV[1]) end
redis.call('DEL', KEYS[1])
return 1
)lua";

// Warns once per Redis if its eviction policy may evict fences.
void check_eviction_policy(const std::string& info) {
  const auto at = info.find("maxmemory_policy:");
  if (at == std::string::npos) return;
  const auto value = info.substr(at + 17, info.find_first_of("\r\n", at) - at - 17);
  if (value.starts_with("allkeys")) {
    logger()->warn(
        "Redis maxmemory-policy is {}: it may evict version fences, so more fills are "
        "refused; use volatile-lru (or noeviction)",
        value);
  }
}

}  // namespace

void ServiceCache::Impl::invalidate_in_redis(std::vector<OutboxEntry> entries,
                                             std::function<void(bool)> done) {
  if (entries.empty()) return done(true);
  auto remaining = std::make_shared<std::size_t>(entries.size());
  auto all_ok = std::make_shared<bool>(true);
  auto shared_done = std::make_shared<std::function<void(bool)>>(std::move(done));
  for (const auto& entry : entries) {
    redis->command({"EVAL", kInvalidateScript, "2", data_key(entry.service),
                    fence_key(entry.service), std::to_string(entry.version)},
                   [remaining, all_ok, shared_done](redis::Result result) {
                     if (!result.ok || result.reply.is_error()) *all_ok = false;
                     if (--*remaining == 0) (*shared_done)(*all_ok);
                   });
  }
}

void ServiceCache::Impl::on_commit(const Writer::Commit& commit) {
  if (commit.changed_services.empty()) return;
  std::vector<OutboxEntry> entries;
  for (const auto& service : commit.changed_services) entries.push_back({service, 0});
  for (std::size_t i = 0; i < commit.mutations.size(); ++i) {
    const auto& result = commit.results[i];
    if (!result.changed()) continue;
    const auto& service = service_of(commit.mutations[i]);
    auto entry =
        std::lower_bound(entries.begin(), entries.end(), service,
                         [](const OutboxEntry& e, const std::string& s) { return e.service < s; });
    entry->version = std::max(entry->version, result.service_version);
    // Handled here, before the acknowledgement: the feed need not hand it over.
    if (feed && result.sequence != 0) feed->skip(result.sequence);
  }
  record_versions(entries);
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

void ServiceCache::Impl::schedule_recovery() {
  retry_timer->expires_after(std::chrono::milliseconds(200));
  retry_timer->async_wait([self = shared_from_this()](const boost::system::error_code& ec) {
    if (!ec) self->recover();
  });
}

void ServiceCache::Impl::recover() {
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
  redis->command({"INFO", "server", "memory"},
                 [self = shared_from_this(), epoch](redis::Result result) {
                   if (!result.ok || result.reply.kind != redis::Reply::Kind::string) {
                     return self->recovery_failed("INFO failed");
                   }
                   const auto& info = result.reply.text;
                   std::string run_id;
                   if (auto at = info.find("run_id:"); at != std::string::npos) {
                     run_id = info.substr(at + 7, info.find_first_of("\r\n", at) - at - 7);
                   }
                   if (run_id == self->known_run_id) return self->replay_outbox(epoch);
                   check_eviction_policy(info);
                   // A Redis we have not vetted (first contact, or it restarted, possibly from
                   // an old snapshot): drop every entry under our prefix before reading any.
                   self->wipe_prefix("0", [self, epoch, run_id] {
                     self->known_run_id = run_id;
                     self->replay_outbox(epoch);
                   });
                 });
}

void ServiceCache::Impl::wipe_prefix(std::string cursor, std::function<void()> done) {
  redis->command({"SCAN", cursor, "MATCH", options.prefix + "*", "COUNT", "1000"},
                 [self = shared_from_this(), done = std::move(done)](redis::Result result) mutable {
                   if (!result.ok || result.reply.kind != redis::Reply::Kind::array ||
                       result.reply.elements.size() != 2) {
                     return self->recovery_failed("SCAN failed");
                   }
                   std::string next = result.reply.elements[0].text;
                   std::vector<std::string> unlink = {"UNLINK"};
                   for (const auto& key : result.reply.elements[1].elements)
                     unlink.push_back(key.text);
                   auto continue_scan = [self, next, done = std::move(done)]() mutable {
                     if (next == "0") return done();
                     self->wipe_prefix(next, std::move(done));
                   };
                   if (unlink.size() == 1) return continue_scan();
                   self->redis->command(std::move(unlink),
                                        [self, continue_scan = std::move(continue_scan)](
                                            redis::Result result) mutable {
                                          if (!result.ok)
                                            return self->recovery_failed("UNLINK failed");
                                          continue_scan();
                                        });
                 });
}

void ServiceCache::Impl::replay_outbox(std::uint64_t epoch) {
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

void ServiceCache::Impl::recovery_failed(const char* why) {
  recovering = false;
  logger()->debug("cache recovery: {}; retrying", why);
  schedule_recovery();
}

}  // namespace store
