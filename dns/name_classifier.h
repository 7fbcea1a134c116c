// Step one of answering: what kind of name was asked for. Knows the name layout
// (layout.h) and the static zone, but nothing about records or instances.
#pragma once

#include <cstdint>
#include <string_view>

#include "dns/wire.h"
#include "dns/zone.h"

namespace dns {

enum class NameKind : std::uint8_t {
  out_of_zone,
  nonexistent,        // NXDOMAIN without asking the store
  static_node,        // a node of the zone file (possibly an empty non-terminal)
  structural,         // service., _tcp.service., instance.: always-present ENTs
  service,            // <service>.service and <tag>.<service>.service
  service_srv,        // _<service>._tcp.service
  service_instances,  // <service>.instance: an ENT while the service has instances
  instance,           // <id>.<service>.instance
};

struct ClassifiedName {
  NameKind kind = NameKind::nonexistent;
  const ZoneNode* node = nullptr;  // static_node only
  // Views into the classified Name's storage; empty when not applicable.
  std::string_view service{};
  std::string_view tag{};
  std::string_view instance_id{};

  bool needs_service() const {
    return kind == NameKind::service || kind == NameKind::service_srv ||
           kind == NameKind::service_instances || kind == NameKind::instance;
  }
};

// `name` must be lower-case (as Name always is) and outlive the result.
ClassifiedName classify(const Name& name, const Zone& zone);

}  // namespace dns
