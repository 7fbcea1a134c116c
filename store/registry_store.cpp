// The parts of the RegistryStore interface every implementation shares.
#include "store/registry_store.h"

#include <type_traits>

namespace store {

std::string_view to_string(Outcome outcome) {
  switch (outcome) {
    case Outcome::created:
      return "created";
    case Outcome::updated:
      return "updated";
    case Outcome::unchanged:
      return "unchanged";
    case Outcome::removed:
      return "removed";
    case Outcome::not_found:
      return "not_found";
    case Outcome::failed:
      return "failed";
  }
  return "failed";
}

const std::string& service_of(const Mutation& mutation) {
  static const std::string kNone;
  return std::visit(
      [](const auto& m) -> const std::string& {
        using Type = std::decay_t<decltype(m)>;
        if constexpr (std::is_same_v<Type, Upsert>) {
          return m.registration.service;
        } else if constexpr (std::is_same_v<Type, RecordChecks>) {
          return kNone;
        } else {
          return m.service;
        }
      },
      mutation);
}

}  // namespace store
