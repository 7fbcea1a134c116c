// The names the front end serves below the zone apex <domain>:
//
//   <service>.service.<domain>          A, AAAA, SRV of every instance
//   <tag>.<service>.service.<domain>    the same, only instances carrying <tag>
//   _<service>._tcp.service.<domain>    SRV (RFC 2782 form)
//   <id>.<service>.instance.<domain>    A or AAAA of one instance: the SRV target
//
// service.<domain>, _tcp.service.<domain> and instance.<domain> always exist (as
// empty non-terminals); <service>.instance.<domain> exists while the service has
// instances. The zone file may not put records inside these subtrees.
#pragma once

#include <string_view>

namespace dns::layout {

inline constexpr std::string_view kServiceLabel = "service";
inline constexpr std::string_view kInstanceLabel = "instance";
inline constexpr std::string_view kTcpLabel = "_tcp";

// Service names, instance ids and tags are what the registry accepts: 1 to 63
// letters, digits or '-', lower-cased. Other labels cannot name anything, so the
// front end answers NXDOMAIN for them without asking the store.
constexpr bool is_registry_label(std::string_view label) {
  if (label.empty() || label.size() > 63) return false;
  for (char c : label) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-';
    if (!ok) return false;
  }
  return true;
}

}  // namespace dns::layout
