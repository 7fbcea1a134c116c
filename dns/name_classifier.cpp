#include "dns/name_classifier.h"

#include <array>

#include "dns/layout.h"

namespace dns {

namespace {

ClassifiedName service_name(std::string_view service, std::string_view tag = {}) {
  if (!layout::is_registry_label(service)) return {};
  if (!tag.empty() && !layout::is_registry_label(tag)) return {};
  return {.kind = NameKind::service, .service = service, .tag = tag};
}

// Names below service.<domain>; `labels[0]` is the one right below "service".
ClassifiedName classify_service_subtree(const std::string_view* labels, std::size_t count) {
  switch (count) {
    case 0:
      return {.kind = NameKind::structural};
    case 1:
      if (labels[0] == layout::kTcpLabel) return {.kind = NameKind::structural};
      return service_name(labels[0]);
    case 2:
      if (labels[0] == layout::kTcpLabel) {
        const std::string_view service = labels[1];
        if (service.size() < 2 || service.front() != '_') return {};
        const std::string_view bare = service.substr(1);
        if (!layout::is_registry_label(bare)) return {};
        return {.kind = NameKind::service_srv, .service = bare};
      }
      return service_name(labels[0], labels[1]);
    default:
      return {};
  }
}

// Names below instance.<domain>.
ClassifiedName classify_instance_subtree(const std::string_view* labels, std::size_t count) {
  switch (count) {
    case 0:
      return {.kind = NameKind::structural};
    case 1:
      if (!layout::is_registry_label(labels[0])) return {};
      return {.kind = NameKind::service_instances, .service = labels[0]};
    case 2:
      if (!layout::is_registry_label(labels[0]) || !layout::is_registry_label(labels[1])) return {};
      return {.kind = NameKind::instance, .service = labels[0], .instance_id = labels[1]};
    default:
      return {};
  }
}

}  // namespace

ClassifiedName classify(const Name& name, const Zone& zone) {
  if (!name.is_subdomain_of(zone.apex())) return {.kind = NameKind::out_of_zone};
  if (const ZoneNode* node = zone.find(name)) return {.kind = NameKind::static_node, .node = node};

  const std::size_t relative = name.label_count() - zone.apex().label_count();
  // The labels below the apex, nearest to the apex first.
  std::array<std::string_view, 4> labels;
  if (relative > labels.size()) return {};
  for (std::size_t i = 0; i < relative; ++i) labels[i] = name.label(relative - 1 - i);

  if (labels[0] == layout::kServiceLabel) return classify_service_subtree(&labels[1], relative - 1);
  if (labels[0] == layout::kInstanceLabel) {
    return classify_instance_subtree(&labels[1], relative - 1);
  }
  return {};
}

}  // namespace dns
