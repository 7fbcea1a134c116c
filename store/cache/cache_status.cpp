#include "store/cache/cache_status.h"

#include <nlohmann/json.hpp>

#include "store/cache/service_cache.h"

namespace store {

nlohmann::json status_json(const ServiceCache& cache) {
  const auto s = cache.stats();
  return {{"status", cache.status()},
          {"redis_connected", s.redis_connected},
          {"redis_trusted", s.redis_trusted},
          {"feed",
           {{"current", s.feed.current},
            {"applied", s.feed.applied},
            {"polls", s.feed.polls},
            {"changes", s.feed.changes},
            {"skipped", s.feed.skipped},
            {"gaps", s.feed.gaps},
            {"errors", s.feed.errors}}},
          {"near_entries", s.near_entries},
          {"near_evicted", s.near_evicted},
          {"near_refused", s.near_refused},
          {"known_services", s.known_services},
          {"known_names_active", s.known_names_active},
          {"absent_answers", s.absent_answers},
          {"lookups_in_flight", s.lookups_in_flight},
          {"lookups_shed", s.lookups_shed},
          {"tracked_generations", s.tracked_generations},
          {"tracked_versions", s.tracked_versions},
          {"redis_stale", s.redis_stale},
          {"near_hits", s.near_hits},
          {"redis_hits", s.redis_hits},
          {"redis_misses", s.redis_misses},
          {"fills", s.fills},
          {"fills_refused", s.fills_refused},
          {"invalidations", s.invalidations},
          {"invalidation_failures", s.invalidation_failures},
          {"fallbacks", s.fallbacks},
          {"redis_errors", s.redis_errors},
          {"db_reads", s.db_reads},
          {"coalesced", s.coalesced},
          {"stale_retries", s.stale_retries},
          {"outbox_replays", s.outbox_replays}};
}

}  // namespace store
