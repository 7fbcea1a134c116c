// The one place that turns a service's snapshot into the instances an answer
// lists: those a name or request selects (one instance id, or a tag, or all),
// in the order the service's load-balancing strategy chose. DNS answers
// (dns/responder.cpp) and GET /v1/resolve (registry/api.cpp) both use it, so
// both select and balance alike.
#pragma once

#include <cstddef>
#include <string_view>
#include <vector>

#include "store/balancing/load_balancing.h"
#include "store/model.h"

namespace store::lb {

class InstanceSelection {
 public:
  // Selects into `storage` (reused across queries to avoid allocating): the
  // instance `instance_id` if given, else those tagged `tag` (every instance
  // when `tag` is empty).
  InstanceSelection(const ServiceSnapshot& snapshot, std::string_view tag,
                    std::string_view instance_id, std::vector<const Instance*>& storage);

  // Orders the selection by `strategy` (the rotation and random state are the
  // balancer's), so that clients which take the first address spread over the
  // instances as the strategy intends.
  void balance(Balancer& balancer, LbStrategy strategy);

  bool empty() const { return selected_.empty(); }
  // The first instance in the chosen order; the selection must not be empty.
  const Instance& front() const { return *selected_.front(); }
  // The next selected instance after `cursor` (start at 0), or null at the end.
  const Instance* next(std::size_t& cursor) const {
    return cursor < selected_.size() ? selected_[cursor++] : nullptr;
  }
  const ServiceSnapshot& snapshot() const { return snapshot_; }

 private:
  const ServiceSnapshot& snapshot_;
  std::vector<const Instance*>& selected_;
};

}  // namespace store::lb
