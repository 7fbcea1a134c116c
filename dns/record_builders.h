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
#include "store/load_balancing.h"
#include "store/model.h"

namespace dns {

// The instances of a snapshot that a name selects, in the order the service's
// load-balancing strategy chose (store/load_balancing.h), so that clients which
// take the first address spread over the instances as the strategy intends.
class InstanceSelection {
 public:
  // Selects into `storage` (reused across queries to avoid allocating).
  InstanceSelection(const store::ServiceSnapshot& snapshot, std::string_view tag,
                    std::string_view instance_id, std::vector<const store::Instance*>& storage);

  // Orders the selection by `strategy` (the rotation and random state are the
  // balancer's).
  void balance(store::lb::Balancer& balancer, store::LbStrategy strategy);

  bool empty() const { return selected_.empty(); }
  // The next selected instance after `cursor` (start at 0), or null at the end.
  const store::Instance* next(std::size_t& cursor) const {
    return cursor < selected_.size() ? selected_[cursor++] : nullptr;
  }
  const store::ServiceSnapshot& snapshot() const { return snapshot_; }

 private:
  const store::ServiceSnapshot& snapshot_;
  std::vector<const store::Instance*>& selected_;
};

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
