// Step two of answering dynamic names: turning a service's instances into A, AAAA
// and SRV records. Knows nothing about which name was asked for (that is the
// classifier's job) or about RCODEs (the responder's).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "dns/message_builder.h"
#include "dns/wire.h"
#include "store/model.h"

namespace dns {

// The instances of a snapshot that a name selects, visited in a rotated order so
// that clients which take the first address spread over all instances.
class InstanceSelection {
 public:
  InstanceSelection(const store::ServiceSnapshot& snapshot, std::string_view tag,
                    std::string_view instance_id, std::size_t rotation);

  bool empty() const;
  // The next selected instance after `cursor` (start at 0), or null at the end.
  const store::Instance* next(std::size_t& cursor) const;
  const store::ServiceSnapshot& snapshot() const { return snapshot_; }

 private:
  bool selects(const store::Instance& instance) const;

  const store::ServiceSnapshot& snapshot_;
  std::string_view tag_;
  std::string_view instance_id_;
  std::size_t first_ = 0;
  std::size_t count_ = 0;  // positions to visit
};

struct RecordSettings {
  const Name& apex;
  std::uint32_t ttl;
  std::uint16_t srv_priority;
  bool compress_srv_targets;
};

// `type` is rrtype::a or rrtype::aaaa; instances of the other family are skipped.
// Each function returns false when a record did not fit; the records before it
// stay in the message.
bool add_address_records(MessageBuilder& message, Section section, Owner owner,
                         const InstanceSelection& selection, std::uint16_t type, std::uint32_t ttl);
// SRV records owned by the question name; targets are <id>.<service>.instance.<apex>.
bool add_srv_records(MessageBuilder& message, const InstanceSelection& selection,
                     const RecordSettings& settings);
// The targets' A/AAAA records for the SRV records already in the answer section
// (which must have been written from the same selection).
bool add_srv_target_addresses(MessageBuilder& message, const InstanceSelection& selection,
                              const RecordSettings& settings);

}  // namespace dns
