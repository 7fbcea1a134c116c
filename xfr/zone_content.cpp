#include "xfr/zone_content.h"

#include <algorithm>
#include <array>
#include <iterator>
#include <set>

#include "dns/layout.h"

namespace xfr {
namespace {

std::string wire_of(const dns::Name& name) {
  const auto wire = name.wire();
  return {wire.begin(), wire.end()};
}

std::string address_rdata(const store::IpAddress& address) {
  return {reinterpret_cast<const char*>(address.bytes.data()), address.size()};
}

std::uint16_t address_type(const store::IpAddress& address) {
  return address.is_v4() ? dns::rrtype::a : dns::rrtype::aaaa;
}

std::string srv_rdata(const store::Registration& registration, std::uint16_t priority,
                      const dns::Name& target) {
  std::string rdata(6, '\0');
  auto* bytes = reinterpret_cast<std::uint8_t*>(rdata.data());
  dns::store_u16(bytes, priority);
  dns::store_u16(bytes + 2, registration.weight);
  dns::store_u16(bytes + 4, registration.port);
  return rdata + wire_of(target);  // RFC 2782: the target is never compressed
}

// The address and SRV records of `instances` at `owner` (the service name or
// one of its tag names).
void add_instance_records(std::vector<Record>& records, const std::string& owner,
                          const store::Instance& instance, const std::string& srv,
                          const ZoneSettings& settings) {
  const store::IpAddress& address = instance.registration.address;
  records.push_back({owner, address_type(address), settings.ttl, address_rdata(address)});
  records.push_back({owner, dns::rrtype::srv, settings.ttl, srv});
}

}  // namespace

std::vector<Record> service_records(const store::ServiceSnapshot& snapshot,
                                    const ZoneSettings& settings) {
  std::vector<Record> records;
  const auto service_name =
      dns::Name::from_labels({snapshot.service, dns::layout::kServiceLabel}, settings.apex);
  const auto tcp_name = dns::Name::from_labels(
      {"_" + snapshot.service, dns::layout::kTcpLabel, dns::layout::kServiceLabel}, settings.apex);
  if (!service_name || !tcp_name) return records;  // longer than a name may be
  const std::string owner = wire_of(*service_name);
  const std::string tcp_owner = wire_of(*tcp_name);
  for (const store::Instance& instance : snapshot.instances) {
    const auto target = dns::Name::from_labels(
        {instance.id(), snapshot.service, dns::layout::kInstanceLabel}, settings.apex);
    if (!target) continue;  // the daemon cannot answer it either
    const std::string srv = srv_rdata(instance.registration, settings.srv_priority, *target);
    add_instance_records(records, owner, instance, srv, settings);
    records.push_back({tcp_owner, dns::rrtype::srv, settings.ttl, srv});
    const store::IpAddress& address = instance.registration.address;
    records.push_back(
        {wire_of(*target), address_type(address), settings.ttl, address_rdata(address)});
    for (const std::string& tag : instance.registration.tags) {
      const auto tag_name = dns::Name::from_labels({tag}, *service_name);
      if (tag_name) add_instance_records(records, wire_of(*tag_name), instance, srv, settings);
    }
  }
  std::sort(records.begin(), records.end());
  // Two instances at one address are one A record at the service's name.
  records.erase(std::unique(records.begin(), records.end()), records.end());
  return records;
}

std::vector<Record> static_records(const dns::Zone& zone) {
  std::vector<Record> records;
  zone.for_each_node([&](const dns::ZoneNode& node) {
    for (const dns::StaticRRset& rrset : node.rrsets) {
      if (rrset.type == dns::rrtype::soa) continue;
      for (const auto& rdata : rrset.rdatas) {
        records.push_back(
            {wire_of(node.name), rrset.type, rrset.ttl, std::string(rdata.begin(), rdata.end())});
      }
    }
  });
  return records;
}

Record soa_record(const dns::Zone& zone, std::uint32_t serial) {
  std::array<std::uint8_t, dns::Zone::kMaxSoaRdata> buffer;
  const auto rdata = zone.soa_rdata(buffer, serial);
  return {wire_of(zone.apex()), dns::rrtype::soa, zone.soa().ttl,
          std::string(rdata.begin(), rdata.end())};
}

std::vector<Record> difference(const std::vector<Record>& after,
                               const std::vector<Record>& before) {
  std::vector<Record> only_after;
  std::set_difference(after.begin(), after.end(), before.begin(), before.end(),
                      std::back_inserter(only_after));
  return only_after;
}

}  // namespace xfr
