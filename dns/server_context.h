// What the UDP and TCP listeners share (internal to dns/). Owned by shared_ptr so
// that connections and pending fetches keep it alive past Server's destruction.
#pragma once

#include <memory>

#include <spdlog/spdlog.h>

#include "dns/options.h"
#include "dns/query_processor.h"
#include "dns/stats.h"
#include "dns/transfer.h"
#include "store/logging.h"
#include "store/lookup.h"

namespace dns {

// The "dns" logger if the daemon registered one, else spdlog's default.
inline std::shared_ptr<spdlog::logger> dns_logger() {
  return store::component_logger("dns");
}

struct ServerContext {
  ServerContext(Options options, std::shared_ptr<const Zone> zone, store::ServiceLookup& lookup)
      : options(options), processor(std::move(zone), lookup, std::move(options)), lookup(lookup) {}

  Options options;
  QueryProcessor processor;
  store::ServiceLookup& lookup;
  // Set before the server starts when Options::zone_transfers is on.
  std::shared_ptr<TransferHandler> transfers;
  Stats stats;
  std::shared_ptr<spdlog::logger> log = dns_logger();
};

}  // namespace dns
