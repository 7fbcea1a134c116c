#include "store/cluster/cluster_status.h"

#include <nlohmann/json.hpp>

#include "store/cluster/membership.h"
#include "store/cluster/shard_ownership.h"

namespace store {

nlohmann::json status_json(const Membership& membership) {
  const auto s = membership.stats();
  nlohmann::json members = nlohmann::json::array();
  for (const auto& member : membership.members()) {
    members.push_back({{"id", member.id},
                       {"endpoints", member.endpoints},
                       {"applied", member.applied},
                       {"live", member.live}});
  }
  return {{"member_id", membership.id()},
          {"serving", s.serving},
          {"live_others", s.live_others},
          {"acks_held", s.held},
          {"acks_released", s.released},
          {"renewals", s.renewals},
          {"renewal_failures", s.renewal_failures},
          {"leases_given_up", s.leases_given_up},
          {"members", std::move(members)}};
}

nlohmann::json status_json(const ShardOwnership& shards) {
  const auto s = shards.stats();
  return {{"owned", s.owned},         {"probing", s.probing},
          {"requested", s.requested}, {"participants", s.participants},
          {"balances", s.balances},   {"balance_failures", s.balance_failures},
          {"lapses", s.lapses}};
}

}  // namespace store
