#include "store/cache/snapshot_codec.h"

#include <nlohmann/json.hpp>

namespace store {
namespace {

using nlohmann::json;
constexpr std::string_view kFormat = "s1\n";

std::int64_t to_ms(TimePoint time) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(time.time_since_epoch()).count();
}
TimePoint from_ms(std::int64_t ms) {
  return TimePoint(std::chrono::milliseconds(ms));
}
json optional_ms(const std::optional<TimePoint>& time) {
  return time ? json(to_ms(*time)) : json(nullptr);
}
std::optional<TimePoint> read_optional_ms(const json& value) {
  if (value.is_null()) return std::nullopt;
  return from_ms(value.get<std::int64_t>());
}

}  // namespace

std::string encode_snapshot(const ServiceSnapshot& snapshot) {
  json instances = json::array();
  for (const Instance& instance : snapshot.instances) {
    const Registration& r = instance.registration;
    instances.push_back({
        {"i", r.id},
        {"a", r.address.to_string()},
        {"p", r.port},
        {"t", r.tags},
        {"m", r.meta},
        {"w", r.weight},
        {"c",
         {std::string(to_string(r.check.type)), r.check.path, r.check.port,
          r.check.interval.count(), r.check.timeout.count(), r.check.ttl.count(),
          r.check.failures}},
        {"ra", to_ms(instance.registered_at)},
        {"ua", to_ms(instance.updated_at)},
        {"lc", optional_ms(instance.last_check_at)},
        {"lh", optional_ms(instance.last_heartbeat_at)},
        {"f", instance.consecutive_failures},
        {"l", instance.load ? json(*instance.load) : json(nullptr)},
        {"r", instance.renewals},
    });
  }
  json document = {{"s", snapshot.service}, {"v", snapshot.version}, {"n", std::move(instances)}};
  if (snapshot.lb) document["lb"] = to_string(*snapshot.lb);
  return std::string(kFormat) + document.dump();
}

std::optional<ServiceSnapshot> decode_snapshot(std::string_view encoded) {
  if (encoded.substr(0, kFormat.size()) != kFormat) return std::nullopt;
  const json document =
      json::parse(encoded.substr(kFormat.size()), nullptr, /*allow_exceptions=*/false);
  if (document.is_discarded()) return std::nullopt;
  try {
    ServiceSnapshot snapshot;
    snapshot.service = document.at("s").get<std::string>();
    snapshot.version = document.at("v").get<std::uint64_t>();
    if (document.contains("lb")) {
      snapshot.lb = parse_lb_strategy(document.at("lb").get<std::string>());
      if (!snapshot.lb) return std::nullopt;
    }
    for (const json& item : document.at("n")) {
      Instance instance;
      Registration& r = instance.registration;
      r.service = snapshot.service;
      r.id = item.at("i").get<std::string>();
      auto address = IpAddress::parse(item.at("a").get<std::string>());
      if (!address) return std::nullopt;
      r.address = *address;
      r.port = item.at("p").get<std::uint16_t>();
      r.tags = item.at("t").get<std::vector<std::string>>();
      r.meta = item.at("m").get<std::map<std::string, std::string>>();
      r.weight = item.at("w").get<std::uint16_t>();
      const json& check = item.at("c");
      auto type = parse_check_type(check.at(0).get<std::string>());
      if (!type) return std::nullopt;
      r.check.type = *type;
      r.check.path = check.at(1).get<std::string>();
      r.check.port = check.at(2).get<std::uint16_t>();
      r.check.interval = Milliseconds(check.at(3).get<std::int64_t>());
      r.check.timeout = Milliseconds(check.at(4).get<std::int64_t>());
      r.check.ttl = Milliseconds(check.at(5).get<std::int64_t>());
      r.check.failures = check.at(6).get<std::uint32_t>();
      instance.registered_at = from_ms(item.at("ra").get<std::int64_t>());
      instance.updated_at = from_ms(item.at("ua").get<std::int64_t>());
      instance.last_check_at = read_optional_ms(item.at("lc"));
      instance.last_heartbeat_at = read_optional_ms(item.at("lh"));
      instance.consecutive_failures = item.at("f").get<std::uint32_t>();
      if (!item.at("l").is_null()) instance.load = item.at("l").get<double>();
      // Entries written before renewals existed lack the key.
      instance.renewals = item.value("r", std::uint64_t{0});
      snapshot.instances.push_back(std::move(instance));
    }
    return snapshot;
  } catch (const json::exception&) {
    return std::nullopt;  // another writer's garbage is a miss, never a crash
  }
}

}  // namespace store
