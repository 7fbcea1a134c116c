// The cache's part of GET /v1/status: its state and counters (docs/api.md).
#pragma once

#include <nlohmann/json_fwd.hpp>

namespace store {

class ServiceCache;

nlohmann::json status_json(const ServiceCache& cache);

}  // namespace store
