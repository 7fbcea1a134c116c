// The membership's part of GET /v1/status: this daemon's id, whether memory
// may answer, the acknowledgement gate's counters and the members as last read.
#pragma once

#include <nlohmann/json_fwd.hpp>

namespace store {

class Membership;

nlohmann::json status_json(const Membership& membership);

}  // namespace store
