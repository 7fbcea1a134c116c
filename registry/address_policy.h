// Which addresses an instance may register. The health checker connects to every
// registered address, and DNS hands it to clients, so an unrestricted registration
// turns the daemon into a probe of multicast groups, link-local services (the
// cloud metadata endpoint at 169.254.169.254) or the daemon itself. The policy
// refuses those before anything is written; loopback stays allowed so that
// development setups on one machine keep working.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "registry/validation.h"
#include "store/ip_prefix.h"
#include "store/model.h"

namespace registry {

// An address and port the daemon serves on (HTTP API, DNS). The address may be a
// wildcard (0.0.0.0 or ::), meaning every local address.
struct ListenEndpoint {
  store::IpAddress address;
  std::uint16_t port = 0;
};

class AddressPolicy {
 public:
  // 0.0.0.0/8 ("this network"), 224.0.0.0/4 (IPv4 multicast), 255.255.255.255/32
  // (broadcast), 169.254.0.0/16 (IPv4 link-local), ::/128 (unspecified), ff00::/8
  // (IPv6 multicast), fe80::/10 (IPv6 link-local) and fd00:ec2::254/128 (the
  // metadata service's IPv6 address on AWS). IPv4-mapped IPv6 addresses
  // (::ffff:169.254.169.254) fall in the IPv4 ranges.
  static std::vector<store::IpPrefix> default_deny_ranges();

  // `deny_ranges` replaces the defaults (an empty list denies no range);
  // `own_endpoints` are where this daemon listens. A wildcard endpoint is resolved
  // here to the machine's interface addresses (getifaddrs) and loopback.
  AddressPolicy(std::vector<store::IpPrefix> deny_ranges,
                std::vector<ListenEndpoint> own_endpoints);

  // nullopt when the registration may be stored; otherwise why not, naming the
  // field ("address", "port" or "check.port"). Thread-safe (no mutable state).
  std::optional<ValidationError> check(const store::Registration& registration) const;

  const std::vector<store::IpPrefix>& deny_ranges() const { return deny_ranges_; }

 private:
  bool is_own_endpoint(const store::IpAddress& address, std::uint16_t port) const;

  std::vector<store::IpPrefix> deny_ranges_;
  std::vector<ListenEndpoint> own_endpoints_;
  // The machine's addresses (IPv4-mapped ones unmapped), for wildcard endpoints.
  std::vector<store::IpAddress> local_addresses_;
};

}  // namespace registry
