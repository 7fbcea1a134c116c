// What a zone transfer carries: the records the daemon answers, as plain
// (owner, type, TTL, RDATA) tuples in wire form. A service's records are a pure
// function of its snapshot, so two snapshots can be compared record by record
// (the IXFR difference) and a secondary serves what the daemon would answer,
// without the per-query load-balancing order (docs/dns.md, "Zone transfers").
#pragma once

#include <compare>
#include <cstdint>
#include <string>
#include <vector>

#include "dns/wire.h"
#include "dns/zone.h"
#include "store/model.h"

namespace xfr {

struct Record {
  std::string owner;  // wire form, lower-case, uncompressed
  std::uint16_t type = 0;
  std::uint32_t ttl = 0;
  std::string rdata;  // wire form, names uncompressed
  friend auto operator<=>(const Record&, const Record&) = default;
};

struct ZoneSettings {
  dns::Name apex;
  std::uint32_t ttl = 5;  // dns::Options::answer_ttl
  std::uint16_t srv_priority = 1;
};

// One service's records, sorted: at <service>.service.<apex> its A, AAAA and
// SRV records; the same SRV records at _<service>._tcp.service.<apex>; at
// <tag>.<service>.service.<apex> those of the instances with the tag; at each
// SRV target <id>.<service>.instance.<apex> that instance's address. Empty for
// a service without instances.
std::vector<Record> service_records(const store::ServiceSnapshot& snapshot,
                                    const ZoneSettings& settings);

// The zone file's records, the apex SOA left out (a transfer writes it with
// the live serial, first and last).
std::vector<Record> static_records(const dns::Zone& zone);

// The SOA with `serial`.
Record soa_record(const dns::Zone& zone, std::uint32_t serial);

// The records of `after` that are not in `before` (both sorted).
std::vector<Record> difference(const std::vector<Record>& after, const std::vector<Record>& before);

}  // namespace xfr
