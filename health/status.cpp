#include "health/status.h"

#include <nlohmann/json.hpp>

#include "health/checker.h"
#include "store/duration.h"

namespace health {

nlohmann::json status_json(const Checker& checker) {
  const auto s = checker.stats();
  return {{"instances", s.instances},
          {"failing", s.failing},
          {"probes_started", s.probes_started},
          {"probes_passed", s.probes_passed},
          {"probes_failed", s.probes_failed},
          {"probes_in_flight", s.probes_in_flight},
          {"probes_queued", s.probes_queued},
          {"removals", s.removals},
          {"removals_suppressed", s.removals_suppressed},
          {"removals_kept", s.removals_kept},
          {"protection_active", s.protection_active},
          {"cap_hits", s.cap_hits},
          {"record_batches", s.record_batches},
          {"resyncs", s.resyncs},
          {"shards", s.shards},
          {"shard_reads", s.shard_reads},
          {"foreign_reads", s.foreign_reads},
          {"lapsed_skips", s.lapsed_skips}};
}

nlohmann::json events_json(const std::vector<RemovalEvent>& events) {
  nlohmann::json list = nlohmann::json::array();
  for (const auto& event : events) {
    list.push_back({{"type", "removed"},
                    {"service", event.service},
                    {"id", event.id},
                    {"address", event.address},
                    {"port", event.port},
                    {"reason", event.reason},
                    {"failures", event.failures},
                    {"at", store::format_timestamp(event.at)}});
  }
  return list;
}

}  // namespace health
