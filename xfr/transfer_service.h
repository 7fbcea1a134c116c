// Who may transfer the zone and what they get (dns::TransferHandler): AXFR as
// the whole current version; IXFR as the journal's steps from the client's
// serial, the whole zone when the journal does not reach back (RFC 1995
// section 4), one SOA when the client is current. Only from `allow`ed
// addresses and, with a key, only TSIG-signed with it; everything else is
// REFUSED (NOTAUTH for a name that is not the zone's, or a bad signature).
// Over UDP, AXFR is FORMERR (as Knot and BIND answer) and IXFR gets the
// SOA-only reply, which tells the client to come back over TCP.
#pragma once

#include <atomic>
#include <optional>
#include <vector>

#include "dns/transfer.h"
#include "store/ip_prefix.h"
#include "xfr/transfer_stream.h"
#include "xfr/tsig.h"
#include "xfr/zone_model.h"

namespace xfr {

struct TransferOptions {
  std::vector<store::IpPrefix> allow;  // empty: nobody
  std::optional<TsigKey> key;
};

struct TransferStats {
  std::uint64_t axfr = 0;
  std::uint64_t ixfr = 0;          // answered incrementally (or current)
  std::uint64_t ixfr_as_axfr = 0;  // the journal did not reach back
  std::uint64_t refused = 0;
};

class TransferService final : public dns::TransferHandler {
 public:
  TransferService(ZoneModel& model, TransferOptions options);

  std::unique_ptr<dns::MessageStream> transfer(std::span<const std::uint8_t> message,
                                               const store::IpAddress& client) override;
  std::size_t answer_udp(std::span<const std::uint8_t> message, const store::IpAddress& client,
                         std::span<std::uint8_t> out) override;
  TransferStats stats() const;

 private:
  struct Request;
  // RCODE 0 when `client` may have the zone.
  std::uint16_t admit(const Request& request, const store::IpAddress& client) const;
  std::unique_ptr<dns::MessageStream> transfer_over_udp(std::span<const std::uint8_t> message,
                                                        const store::IpAddress& client);
  // A refusal; a NOTAUTH for a bad signature carries the TSIG error.
  std::unique_ptr<dns::MessageStream> refuse_signed(const Request& request,
                                                    std::span<const std::uint8_t> message,
                                                    std::uint16_t rcode) const;
  std::unique_ptr<TransferStream> full_zone(const Request& request,
                                            const ZoneVersion& version) const;

  ZoneModel& model_;
  TransferOptions options_;
  mutable std::atomic<std::uint64_t> axfr_{0}, ixfr_{0}, ixfr_as_axfr_{0}, refused_{0};
};

}  // namespace xfr
