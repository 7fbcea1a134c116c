// libFuzzer target: arbitrary bytes as a registration body and as a heartbeat body.
// Beyond "no crash, no exception, no sanitizer report", whatever the parser accepts
// must satisfy every rule the rest of the daemon relies on (docs/api.md): labels,
// ranges, durations, and an address that survives its own text form.
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>
#include <variant>

#include "registry/validation.h"

namespace {

void check(bool condition) {
  if (!condition) std::abort();
}

bool is_label(const std::string& text) {
  const auto normalized = registry::normalize_label(text);
  return normalized && *normalized == text;
}

bool duration_in_range(std::chrono::milliseconds duration) {
  return duration.count() == 0 ||
         (duration >= registry::kMinDuration && duration <= registry::kMaxDuration);
}

void check_registration(const store::Registration& registration,
                        const registry::CheckDefaults& defaults) {
  check(registration.service == "svc" && registration.id == "id");

  const store::IpAddress& address = registration.address;
  check(std::any_of(address.bytes.begin(), address.bytes.begin() + address.size(),
                    [](std::uint8_t byte) { return byte != 0; }));
  const auto reparsed = store::IpAddress::parse(address.to_string());
  check(reparsed && *reparsed == address);

  check(registration.port != 0);
  check(registration.weight != 0);

  check(registration.tags.size() <= registry::kMaxTags);
  check(std::is_sorted(registration.tags.begin(), registration.tags.end()));
  check(std::adjacent_find(registration.tags.begin(), registration.tags.end()) ==
        registration.tags.end());
  for (const auto& tag : registration.tags) check(is_label(tag));

  check(registration.meta.size() <= registry::kMaxMetaEntries);
  for (const auto& [key, value] : registration.meta) {
    check(!key.empty() && key.size() <= registry::kMaxMetaKeyLength);
    check(value.size() <= registry::kMaxMetaValueLength);
  }

  const store::HealthCheck& health = registration.check;
  check(duration_in_range(health.interval));
  check(duration_in_range(health.timeout));
  check(duration_in_range(health.ttl));
  check(health.failures <= registry::kMaxCheckFailures);
  switch (health.type) {
    case store::CheckType::ttl:
      check(health.ttl.count() != 0 && health.port == 0 && health.timeout.count() == 0 &&
            health.path.empty());
      break;
    case store::CheckType::http:
      // The path goes verbatim into the checker's request line.
      check(!health.path.empty() && health.path.front() == '/' && health.path.size() <= 1024);
      check(std::none_of(health.path.begin(), health.path.end(),
                         [](unsigned char c) { return c <= 0x20 || c == 0x7f; }));
      [[fallthrough]];
    case store::CheckType::tcp: {
      check(health.ttl.count() == 0);
      check(health.type == store::CheckType::http || health.path.empty());
      const auto interval = health.interval.count() ? health.interval : defaults.interval;
      const auto timeout = health.timeout.count() ? health.timeout : defaults.timeout;
      check(timeout < interval);
      break;
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view body(reinterpret_cast<const char*>(data), size);
  static const registry::CheckDefaults defaults{std::chrono::seconds(30), std::chrono::seconds(2),
                                                3};

  const auto registration = registry::parse_registration(body, "svc", "id", defaults);
  if (const auto* accepted = std::get_if<store::Registration>(&registration)) {
    check_registration(*accepted, defaults);
  } else {
    check(!std::get<registry::ValidationError>(registration).message.empty());
  }

  const auto heartbeat = registry::parse_heartbeat(body);
  if (const auto* load = std::get_if<std::optional<double>>(&heartbeat)) {
    if (*load) check(std::isfinite(**load) && **load >= 0);
  } else {
    check(!std::get<registry::ValidationError>(heartbeat).message.empty());
  }
  return 0;
}
