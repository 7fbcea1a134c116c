// Sharded health checks (docs/architecture.md, "Sharded health checks"): every
// instance belongs to one of kHealthShards shards by a hash of its key, and
// every shard to at most one live member, recorded in the database's
// health_shards table. A member probes the instances of the shards it owns and
// no others, and only while its membership lease is valid by its own clock
// (store/cluster/membership.h), which ends before the database lets anyone
// else claim them.
//
// Ownership moves in two ways, both decided inside one database transaction
// (RegistryStore::balance_shards, the plan below):
//  - Orphans (no owner, or an owner whose lease ran out) are claimed by any
//    member that has fewer than its share.
//  - A member with less than its share asks for shards of the fullest owner
//    (requested_by); that owner stops probing them, writes their failure counts
//    and hands them over at its next balance. No shard is ever taken from a
//    live owner, so two members never probe one instance at the same time.
#pragma once

#include <bitset>
#include <cstdint>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace store {

inline constexpr std::size_t kHealthShards = 256;
using ShardSet = std::bitset<kHealthShards>;

// FNV-1a of "service/id": the same on every daemon, every build, every host.
std::uint16_t health_shard_of(std::string_view service, std::string_view id);

// One row of health_shards ("" = nobody).
struct ShardRow {
  std::string owner;
  std::string requested_by;
  friend bool operator==(const ShardRow&, const ShardRow&) = default;
};

// What one balance left this member with.
struct ShardView {
  ShardSet owned;                // this member's shards, requested ones included
  ShardSet requested;            // owned shards another member asked for: stop probing, hand over
  std::size_t participants = 0;  // members sharing the checks, this one included
};

struct ShardPlan {
  std::vector<std::pair<std::uint16_t, ShardRow>> updates;  // rows to write
  ShardView view;                                           // as after the updates
};

// The decision of one balance by `me` over every row (kHealthShards of them,
// by shard number), given the members whose lease is live by the database's
// clock. `handoff`: owned shards this member has stopped probing and whose
// counts are written; the ones still requested by a live member go to it.
ShardPlan plan_shards(std::string_view me, const std::set<std::string, std::less<>>& live,
                      std::span<const ShardRow> rows, const ShardSet& handoff);

}  // namespace store
