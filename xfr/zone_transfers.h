// Zone transfers as one component for the daemon's composition root: the zone
// model that follows the registry, the TransferHandler the DNS server hands
// AXFR/IXFR to, and the NOTIFY sender, wired together (docs/architecture.md,
// "Zone transfers").
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <nlohmann/json.hpp>

#include "dns/server.h"
#include "xfr/notifier.h"
#include "xfr/transfer_service.h"
#include "xfr/zone_model.h"

namespace xfr {

struct ZoneTransferOptions {
  ZoneSettings settings;
  std::vector<store::IpPrefix> allow;
  std::optional<TsigKey> key;
  NotifyOptions notify;  // no targets: no NOTIFY
};

class ZoneTransfers {
 public:
  // `io` runs the NOTIFY socket (the DNS thread's).
  ZoneTransfers(store::RegistryStore& store, std::shared_ptr<const dns::Zone> zone,
                boost::asio::io_context& io, ZoneTransferOptions options);
  ~ZoneTransfers();

  // Reads the registry (throws StoreError), publishes the serial and hands
  // transfers of `server` to this component; before the server starts.
  void start(dns::Server& server);
  void stop();
  // The change feed moved.
  void wake() { model_.wake(); }
  nlohmann::json status() const;

 private:
  ZoneModel model_;
  std::shared_ptr<TransferService> service_;
  std::unique_ptr<Notifier> notifier_;
};

}  // namespace xfr
