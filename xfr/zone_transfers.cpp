#include "xfr/zone_transfers.h"

namespace xfr {

ZoneTransfers::ZoneTransfers(store::RegistryStore& store, std::shared_ptr<const dns::Zone> zone,
                             boost::asio::io_context& io, ZoneTransferOptions options)
    : model_(store, std::move(zone), {.settings = options.settings}),
      service_(
          std::make_shared<TransferService>(model_, TransferOptions{options.allow, options.key})) {
  if (!options.notify.targets.empty()) {
    options.notify.zone = options.settings.apex.to_text();
    options.notify.key = options.key;
    notifier_ = std::make_unique<Notifier>(io, std::move(options.notify));
  }
}

ZoneTransfers::~ZoneTransfers() {
  stop();
}

void ZoneTransfers::start(dns::Server& server) {
  model_.start();
  server.set_transfer_handler(service_);
  if (notifier_) {
    notifier_->start();
    model_.on_serial(
        [notifier = notifier_.get()](std::uint32_t serial) { notifier->serial_changed(serial); });
  }
}

void ZoneTransfers::stop() {
  model_.stop();
  if (notifier_) notifier_->stop();
}

nlohmann::json ZoneTransfers::status() const {
  const auto version = model_.current();
  const auto model = model_.stats();
  const auto transfers = service_->stats();
  nlohmann::json status = {
      {"serial", version ? version->serial : 0},
      {"sequence", version ? version->sequence : 0},
      {"records", version ? version->record_count : 0},
      {"journal_steps", model.journal_steps},
      {"journal_records", model.journal_records},
      {"refreshes", model.refreshes},
      {"read_errors", model.errors},
      {"axfr", transfers.axfr},
      {"ixfr", transfers.ixfr},
      {"ixfr_as_axfr", transfers.ixfr_as_axfr},
      {"refused", transfers.refused},
  };
  if (notifier_) {
    const auto notify = notifier_->stats();
    status["notify"] = {{"sent", notify.sent},
                        {"retries", notify.retries},
                        {"answered", notify.answered},
                        {"last_serial", notify.last_serial}};
  }
  return status;
}

}  // namespace xfr
