// Step two of answering dynamic names: turning a service's instances into A, AAAA
// and SRV records. Knows nothing about which name was asked for (that is the
// classifier's job) or about RCODEs (the responder's).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

#include "dns/message_builder.h"
#include "dns/wire.h"
#include "store/balancing/instance_selection.h"
#include "store/model.h"

namespace dns {

using store::lb::InstanceSelection;

struct RecordSettings {
  const Name& apex;
  std::uint32_t ttl;
  std::uint16_t srv_priority;
  bool compress_srv_targets;
};

// `type` is rrtype::a or rrtype::aaaa; instances of the other family are skipped.
// At most `limit` records are added (0: no limit); `added` counts them.
// Each function returns false when a record did not fit; the records before it
// stay in the message.
bool add_address_records(MessageBuilder& message, Section section, Owner owner,
                         const InstanceSelection& selection, std::uint16_t type, std::uint32_t ttl,
                         std::size_t limit, std::size_t& added);
// SRV records owned by the question name; targets are <id>.<service>.instance.<apex>.
bool add_srv_records(MessageBuilder& message, const InstanceSelection& selection,
                     const RecordSettings& settings);
// The targets' A/AAAA records for the SRV records already in the answer section
// (which must have been written from the same selection).
bool add_srv_target_addresses(MessageBuilder& message, const InstanceSelection& selection,
                              const RecordSettings& settings);

}  // namespace dns
