// The health checker's part of GET /v1/status and the body of GET /v1/events
// (docs/api.md).
#pragma once

#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace health {

class Checker;
struct RemovalEvent;

nlohmann::json status_json(const Checker& checker);
nlohmann::json events_json(const std::vector<RemovalEvent>& events);

}  // namespace health
