// The DNS front end's part of GET /v1/status: where it listens and its counters
// (docs/api.md lists them).
#pragma once

#include <nlohmann/json_fwd.hpp>

namespace dns {

class Server;

nlohmann::json status_json(const Server& server);

}  // namespace dns
