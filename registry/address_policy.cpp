#include "registry/address_policy.h"

#include <ifaddrs.h>
#include <sys/socket.h>

#include <algorithm>
#include <memory>
#include <string>

namespace registry {
namespace {

store::IpPrefix prefix(const char* text) {
  return store::IpPrefix::parse(text).value();
}

bool is_unspecified(const store::IpAddress& address) {
  return std::all_of(address.bytes.begin(), address.bytes.begin() + address.size(),
                     [](std::uint8_t byte) { return byte == 0; });
}

// Every address configured on the machine's interfaces. A failure leaves the
// list empty: a wildcard endpoint then still matches loopback, the common case.
std::vector<store::IpAddress> interface_addresses() {
  std::vector<store::IpAddress> addresses;
  ifaddrs* list = nullptr;
  if (getifaddrs(&list) != 0) return addresses;
  const std::unique_ptr<ifaddrs, decltype(&freeifaddrs)> owner(list, &freeifaddrs);
  for (const ifaddrs* entry = list; entry != nullptr; entry = entry->ifa_next) {
    if (entry->ifa_addr == nullptr) continue;
    if (const auto address = store::IpAddress::from_sockaddr(*entry->ifa_addr)) {
      addresses.push_back(store::unmap_v4(*address));
    }
  }
  return addresses;
}

// Appended piece by piece: GCC 12 at -O3 raises a false -Wrestrict inside
// libstdc++ for `"[" + std::string&&` (operator+ inlined into insert(0, ...)).
std::string endpoint_text(const store::IpAddress& address, std::uint16_t port) {
  std::string text;
  if (!address.is_v4()) text += '[';
  text += address.to_string();
  if (!address.is_v4()) text += ']';
  text += ':';
  text += std::to_string(port);
  return text;
}

}  // namespace

std::vector<store::IpPrefix> AddressPolicy::default_deny_ranges() {
  return {
      prefix("0.0.0.0/8"),           // "this network": 0.x reaches the local host on Linux
      prefix("224.0.0.0/4"),         // IPv4 multicast
      prefix("255.255.255.255/32"),  // limited broadcast
      prefix("169.254.0.0/16"),      // IPv4 link-local, including the cloud metadata service
      prefix("::/128"),              // unspecified: connects to the local host
      prefix("ff00::/8"),            // IPv6 multicast
      prefix("fe80::/10"),           // IPv6 link-local
      prefix("fd00:ec2::254/128"),   // the cloud metadata service over IPv6 (AWS)
  };
}

AddressPolicy::AddressPolicy(std::vector<store::IpPrefix> deny_ranges,
                             std::vector<ListenEndpoint> own_endpoints)
    : deny_ranges_(std::move(deny_ranges)), own_endpoints_(std::move(own_endpoints)) {
  for (auto& endpoint : own_endpoints_) endpoint.address = store::unmap_v4(endpoint.address);
  const bool any_wildcard = std::ranges::any_of(own_endpoints_, [](const ListenEndpoint& endpoint) {
    return is_unspecified(endpoint.address);
  });
  if (any_wildcard) local_addresses_ = interface_addresses();
}

bool AddressPolicy::is_own_endpoint(const store::IpAddress& address, std::uint16_t port) const {
  const store::IpAddress candidate = store::unmap_v4(address);
  for (const ListenEndpoint& endpoint : own_endpoints_) {
    if (endpoint.port != port) continue;
    if (!is_unspecified(endpoint.address)) {
      if (endpoint.address == candidate) return true;
      continue;
    }
    // 0.0.0.0 listens on IPv4 only; :: is dual-stack (Linux's default), so it
    // also receives IPv4 connections.
    if (endpoint.address.is_v4() && !candidate.is_v4()) continue;
    if (store::is_loopback(candidate) ||
        std::ranges::find(local_addresses_, candidate) != local_addresses_.end()) {
      return true;
    }
  }
  return false;
}

std::optional<ValidationError> AddressPolicy::check(const store::Registration& registration) const {
  const store::IpAddress& address = registration.address;
  for (const store::IpPrefix& range : deny_ranges_) {
    if (range.contains(address)) {
      return ValidationError{
          "address " + address.to_string() + " is in a denied range (" + range.to_string() + ")",
          "address"};
    }
  }
  // DNS would send clients to the daemon itself, and the health checker would
  // probe its own listeners.
  if (is_own_endpoint(address, registration.port)) {
    return ValidationError{
        endpoint_text(address, registration.port) + " is one of this daemon's own endpoints",
        "port"};
  }
  const store::HealthCheck& check = registration.check;
  if (check.type != store::CheckType::ttl && check.port != 0 &&
      is_own_endpoint(address, check.port)) {
    return ValidationError{"health check target " + endpoint_text(address, check.port) +
                               " is one of this daemon's own endpoints",
                           "check.port"};
  }
  return std::nullopt;
}

}  // namespace registry
