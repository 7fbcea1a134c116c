#include "dns/status.h"

#include <nlohmann/json.hpp>

#include "dns/server.h"

namespace dns {

nlohmann::json status_json(const Server& server) {
  const Stats& s = server.stats();
  return {{"status", "serving"},
          {"udp", server.udp_endpoint().to_string()},
          {"tcp", server.tcp_endpoint().to_string()},
          {"udp_queries", s.udp_queries.load()},
          {"tcp_queries", s.tcp_queries.load()},
          {"noerror", s.noerror.load()},
          {"nxdomain", s.nxdomain.load()},
          {"servfail", s.servfail.load()},
          {"refused", s.refused.load()},
          {"formerr", s.formerr.load()},
          {"notimp", s.notimp.load()},
          {"truncated", s.truncated.load()},
          {"dropped", s.dropped.load()},
          {"lookups", s.lookups.load()},
          {"lookup_failures", s.lookup_failures.load()},
          {"tcp_connections_open", s.tcp_connections_open.load()},
          {"tcp_connections_rejected", s.tcp_connections_rejected.load()},
          {"tcp_refused_per_client", s.tcp_refused_per_client.load()},
          {"rate_limited_dropped", s.rate_limited_dropped.load()},
          {"rate_limited_slipped", s.rate_limited_slipped.load()}};
}

}  // namespace dns
