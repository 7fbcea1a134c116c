#include "store/balancing/instance_selection.h"

#include <algorithm>
#include <string>

namespace store::lb {

InstanceSelection::InstanceSelection(const ServiceSnapshot& snapshot, std::string_view tag,
                                     std::string_view instance_id,
                                     std::vector<const Instance*>& storage)
    : snapshot_(snapshot), selected_(storage) {
  selected_.clear();
  const auto& instances = snapshot.instances;
  if (!instance_id.empty()) {
    // Instances are ordered by id: one binary search finds the target.
    const auto it = std::ranges::lower_bound(
        instances, instance_id, {}, [](const Instance& i) -> std::string_view { return i.id(); });
    if (it != instances.end() && it->id() == instance_id) selected_.push_back(&*it);
    return;
  }
  for (const Instance& instance : instances) {
    const auto& tags = instance.registration.tags;  // sorted
    if (tag.empty() ||
        std::ranges::binary_search(tags, tag, {},
                                   [](const std::string& t) -> std::string_view { return t; })) {
      selected_.push_back(&instance);
    }
  }
}

void InstanceSelection::balance(Balancer& balancer, LbStrategy strategy) {
  balancer.order(snapshot_.service, strategy, selected_);
}

}  // namespace store::lb
