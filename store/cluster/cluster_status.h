// The membership's part of GET /v1/status: this daemon's id, whether memory
// may answer, the acknowledgement gate's counters and the members as last read.
#pragma once

#include <nlohmann/json_fwd.hpp>

namespace store {

class Membership;
class ShardOwnership;

nlohmann::json status_json(const Membership& membership);
// Health-shard ownership: owned, probing, requested, participants, counters.
nlohmann::json status_json(const ShardOwnership& shards);

}  // namespace store
