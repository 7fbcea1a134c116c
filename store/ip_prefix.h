// Address ranges in CIDR notation ("10.0.0.0/8", "fe80::/10"), shared by the
// registration deny list (registry) and the DNS rate limiter's exemptions (dns).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "store/model.h"

namespace store {

struct IpPrefix {
  IpAddress network;        // host bits are zero
  std::uint8_t length = 0;  // 0..32 (IPv4) or 0..128 (IPv6)

  // "a.b.c.d/len", "v6::/len", or a bare address (a host prefix). Rejects host
  // bits set below the prefix ("10.0.0.1/8"): such a typo would otherwise widen or
  // narrow a security boundary silently. nullopt on anything malformed.
  static std::optional<IpPrefix> parse(std::string_view text);
  // The prefix of `address` with `length` bits kept (the rate limiter's client key).
  static IpPrefix of(const IpAddress& address, std::uint8_t length);

  // IPv4-mapped IPv6 addresses (::ffff:a.b.c.d) match IPv4 prefixes, since a
  // dual-stack socket reports IPv4 clients that way.
  bool contains(const IpAddress& address) const;
  std::string to_string() const;
  friend bool operator==(const IpPrefix&, const IpPrefix&) = default;
};

// The IPv4 address inside an IPv4-mapped IPv6 address, else `address` itself.
IpAddress unmap_v4(const IpAddress& address);

// True when any prefix in `prefixes` contains `address`.
bool any_contains(const std::vector<IpPrefix>& prefixes, const IpAddress& address);

// 127.0.0.0/8 and ::1/128.
const std::vector<IpPrefix>& loopback_prefixes();
// In loopback_prefixes(), IPv4-mapped forms included.
bool is_loopback(const IpAddress& address);

}  // namespace store
