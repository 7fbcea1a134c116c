#include "registry/validation.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <vector>

#include "store/duration.h"

namespace registry {
namespace {

using nlohmann::json;
using Result = std::variant<store::Registration, ValidationError>;

// Thrown inside the parser and caught at its boundary: keeps each check one line.
struct Invalid {
  ValidationError error;
};
[[noreturn]] void fail(std::string field, std::string message) {
  throw Invalid{{std::move(message), std::move(field)}};
}

void reject_unknown_fields(const json& object, std::initializer_list<std::string_view> known,
                           const std::string& prefix) {
  for (const auto& [key, value] : object.items()) {
    if (std::find(known.begin(), known.end(), key) == known.end()) {
      fail(prefix + key, "unknown field");
    }
  }
}

std::int64_t integer_in_range(const json& value, const std::string& field, std::int64_t min,
                              std::int64_t max) {
  if (!value.is_number_integer()) fail(field, "must be an integer");
  // Unsigned values above INT64_MAX are out of every range we accept.
  if (value.is_number_unsigned() && value.get<std::uint64_t>() > static_cast<std::uint64_t>(max)) {
    fail(field, "must be between " + std::to_string(min) + " and " + std::to_string(max));
  }
  const auto number = value.get<std::int64_t>();
  if (number < min || number > max) {
    fail(field, "must be between " + std::to_string(min) + " and " + std::to_string(max));
  }
  return number;
}

std::chrono::milliseconds duration_field(const json& value, const std::string& field) {
  if (!value.is_string()) fail(field, "must be a duration string such as \"30s\"");
  auto duration = store::parse_duration(value.get<std::string>());
  if (!duration) fail(field, "must be a duration such as \"250ms\", \"30s\", \"2m\" or \"1h\"");
  if (*duration < kMinDuration || *duration > kMaxDuration) {
    fail(field, "must be between 100ms and 1h");
  }
  return *duration;
}

store::HealthCheck parse_check(const json& check, const store::Registration& registration,
                               const CheckDefaults& defaults) {
  if (!check.is_object()) fail("check", "must be an object");
  reject_unknown_fields(check, {"type", "path", "port", "interval", "timeout", "ttl", "failures"},
                        "check.");
  store::HealthCheck result;
  if (check.contains("type")) {
    if (!check["type"].is_string()) fail("check.type", "must be a string");
    auto type = store::parse_check_type(check["type"].get<std::string>());
    if (!type) fail("check.type", "must be \"http\", \"tcp\" or \"ttl\"");
    result.type = *type;
  }
  if (check.contains("path")) {
    if (result.type != store::CheckType::http) fail("check.path", "only http checks have a path");
    if (!check["path"].is_string()) fail("check.path", "must be a string");
    result.path = check["path"].get<std::string>();
    // The path goes verbatim into a request line: no spaces, controls or a
    // second line, and it must be a path (the host is always the instance's).
    if (result.path.empty() || result.path.front() != '/' || result.path.size() > 1024 ||
        std::any_of(result.path.begin(), result.path.end(),
                    [](unsigned char c) { return c <= 0x20 || c == 0x7f; })) {
      fail("check.path",
           "must be a URL path starting with '/' (at most 1024 printable characters)");
    }
  } else if (result.type == store::CheckType::http) {
    result.path = "/";
  }
  if (check.contains("port")) {
    if (result.type == store::CheckType::ttl) fail("check.port", "ttl checks have no port");
    result.port =
        static_cast<std::uint16_t>(integer_in_range(check["port"], "check.port", 1, 65535));
  }
  if (check.contains("interval"))
    result.interval = duration_field(check["interval"], "check.interval");
  if (check.contains("timeout")) {
    if (result.type == store::CheckType::ttl) {
      fail("check.timeout", "ttl checks have no timeout: the instance sends heartbeats");
    }
    result.timeout = duration_field(check["timeout"], "check.timeout");
  }
  if (check.contains("ttl")) {
    if (result.type != store::CheckType::ttl) fail("check.ttl", "only ttl checks have a ttl");
    result.ttl = duration_field(check["ttl"], "check.ttl");
  } else if (result.type == store::CheckType::ttl) {
    fail("check.ttl", "required for ttl checks (the heartbeat deadline)");
  }
  if (check.contains("failures")) {
    result.failures = static_cast<std::uint32_t>(
        integer_in_range(check["failures"], "check.failures", 1, kMaxCheckFailures));
  }
  if (result.type != store::CheckType::ttl) {
    const auto interval = result.interval.count() ? result.interval : defaults.interval;
    const auto timeout = result.timeout.count() ? result.timeout : defaults.timeout;
    if (timeout >= interval) {
      fail(check.contains("timeout") ? "check.timeout" : "check.interval",
           "the check's timeout (" + store::format_duration(timeout) +
               ") must be shorter than its interval (" + store::format_duration(interval) + ")");
    }
  }
  (void)registration;
  return result;
}

store::Registration parse_object(const json& body, const std::string& service,
                                 const std::string& id, const CheckDefaults& defaults) {
  if (!body.is_object()) fail("body", "must be a JSON object");
  reject_unknown_fields(body, {"address", "port", "tags", "meta", "weight", "check", "lb"}, "");
  store::Registration registration;
  registration.service = service;
  registration.id = id;

  if (!body.contains("address")) fail("address", "required");
  if (!body["address"].is_string()) fail("address", "must be a string");
  auto address = store::IpAddress::parse(body["address"].get<std::string>());
  if (!address) fail("address", "must be an IPv4 or IPv6 literal");
  static constexpr std::array<std::uint8_t, 16> kZero{};
  if (std::equal(address->bytes.begin(), address->bytes.begin() + address->size(), kZero.begin())) {
    fail("address", "the unspecified address cannot be reached");
  }
  registration.address = *address;

  if (!body.contains("port")) fail("port", "required");
  registration.port = static_cast<std::uint16_t>(integer_in_range(body["port"], "port", 1, 65535));

  if (body.contains("weight")) {
    registration.weight =
        static_cast<std::uint16_t>(integer_in_range(body["weight"], "weight", 1, 65535));
  }

  if (body.contains("tags")) {
    const json& tags = body["tags"];
    if (!tags.is_array()) fail("tags", "must be an array of strings");
    if (tags.size() > kMaxTags) fail("tags", "at most " + std::to_string(kMaxTags) + " tags");
    for (std::size_t i = 0; i < tags.size(); ++i) {
      const std::string field = "tags[" + std::to_string(i) + "]";
      if (!tags[i].is_string()) fail(field, "must be a string");
      auto tag = normalize_label(tags[i].get<std::string>());
      if (!tag) fail(field, "must be a DNS label: 1 to 63 letters, digits or '-'");
      registration.tags.push_back(*tag);
    }
    std::sort(registration.tags.begin(), registration.tags.end());
    registration.tags.erase(std::unique(registration.tags.begin(), registration.tags.end()),
                            registration.tags.end());
  }

  if (body.contains("meta")) {
    const json& meta = body["meta"];
    if (!meta.is_object()) fail("meta", "must be an object of strings");
    if (meta.size() > kMaxMetaEntries) {
      fail("meta", "at most " + std::to_string(kMaxMetaEntries) + " entries");
    }
    for (const auto& [key, value] : meta.items()) {
      const std::string field = "meta." + key;
      if (key.empty() || key.size() > kMaxMetaKeyLength) {
        fail(field, "keys are 1 to " + std::to_string(kMaxMetaKeyLength) + " characters");
      }
      if (!value.is_string()) fail(field, "must be a string");
      auto text = value.get<std::string>();
      if (text.size() > kMaxMetaValueLength) {
        fail(field, "at most " + std::to_string(kMaxMetaValueLength) + " characters");
      }
      registration.meta.emplace(key, std::move(text));
    }
  }

  if (body.contains("check")) {
    registration.check = parse_check(body["check"], registration, defaults);
  }

  if (body.contains("lb")) {
    const json& lb = body["lb"];
    std::optional<store::LbStrategy> strategy;
    if (lb.is_string()) strategy = store::parse_lb_strategy(lb.get<std::string>());
    if (!strategy) {
      fail("lb", "must be \"round_robin\", \"weighted\", \"least_loaded\" or \"random\"");
    }
    registration.lb = strategy;
  }
  return registration;
}

// nlohmann keeps the last of two equal keys without a word, but a body that
// says "port" twice is ambiguous (the client may mean either), so it is refused.
// The parser callback sees every key in document order (after unescaping, so
// "p\u006frt" is "port"); this keeps the keys of each open object, and for the
// path each open container's place, to name the first repeat the way the other
// errors name fields: "port", "check.interval", "meta.zone", "tags[2].x".
class DuplicateKeyFinder {
 public:
  bool operator()(int /*depth*/, json::parse_event_t event, const json& parsed) {
    using Event = json::parse_event_t;
    switch (event) {
      case Event::object_start:
      case Event::array_start:
        open_.push_back({event == Event::array_start, child_path(), 0, {}, {}});
        break;
      case Event::key: {
        Container& object = open_.back();
        object.last_key = parsed.get<std::string>();
        if (!object.keys.insert(object.last_key).second && !duplicate_) {
          duplicate_ = ValidationError{"duplicate key \"" + object.last_key + "\"", child_path()};
        }
        break;
      }
      case Event::object_end:
      case Event::array_end:
        open_.pop_back();
        [[fallthrough]];
      case Event::value:
        if (!open_.empty() && open_.back().array) ++open_.back().index;
        break;
    }
    return true;  // keep everything: the document is validated afterwards
  }
  const std::optional<ValidationError>& duplicate() const { return duplicate_; }

 private:
  struct Container {
    bool array = false;
    std::string path;            // "" for the document itself
    std::size_t index = 0;       // arrays: the element being parsed
    std::string last_key;        // objects: the member being parsed
    std::set<std::string> keys;  // objects: every key so far
  };
  // The path of the value being parsed inside the innermost open container.
  std::string child_path() const {
    if (open_.empty()) return {};
    const Container& parent = open_.back();
    if (parent.array) return parent.path + "[" + std::to_string(parent.index) + "]";
    return parent.path.empty() ? parent.last_key : parent.path + "." + parent.last_key;
  }

  std::vector<Container> open_;
  std::optional<ValidationError> duplicate_;
};

// Parses `body` as JSON; a malformed document or a duplicated key is the error.
std::variant<json, ValidationError> parse_document(std::string_view body) {
  DuplicateKeyFinder finder;
  json document = json::parse(
      body,
      [&finder](int depth, json::parse_event_t event, json& parsed) {
        return finder(depth, event, parsed);
      },
      /*allow_exceptions=*/false);
  if (document.is_discarded()) return ValidationError{"malformed JSON", "body"};
  if (finder.duplicate()) return *finder.duplicate();
  return document;
}

}  // namespace

std::optional<std::string> normalize_label(std::string_view text) {
  if (text.empty() || text.size() > 63 || text.front() == '-' || text.back() == '-') {
    return std::nullopt;
  }
  std::string label;
  label.reserve(text.size());
  for (char c : text) {
    const auto u = static_cast<unsigned char>(c);
    if (std::isalnum(u) == 0 && c != '-') return std::nullopt;
    if (u >= 0x80) return std::nullopt;
    label.push_back(static_cast<char>(std::tolower(u)));
  }
  return label;
}

std::variant<store::Registration, ValidationError> parse_registration(
    std::string_view body, const std::string& service, const std::string& id,
    const CheckDefaults& defaults) {
  auto parsed = parse_document(body);
  if (auto* error = std::get_if<ValidationError>(&parsed)) return *error;
  try {
    return parse_object(std::get<json>(parsed), service, id, defaults);
  } catch (const Invalid& invalid) {
    return invalid.error;
  }
}

std::variant<std::optional<double>, ValidationError> parse_heartbeat(std::string_view body) {
  if (body.find_first_not_of(" \t\r\n") == std::string_view::npos) {
    return std::optional<double>{};
  }
  auto parsed = parse_document(body);
  if (auto* error = std::get_if<ValidationError>(&parsed)) return *error;
  const json& document = std::get<json>(parsed);
  if (!document.is_object()) return ValidationError{"must be a JSON object", "body"};
  for (const auto& [key, value] : document.items()) {
    if (key != "load") return ValidationError{"unknown field", key};
  }
  if (!document.contains("load")) return std::optional<double>{};
  const json& load = document["load"];
  if (!load.is_number()) return ValidationError{"must be a number", "load"};
  const double value = load.get<double>();
  if (!std::isfinite(value) || value < 0) {
    return ValidationError{"must be a finite number >= 0", "load"};
  }
  return std::optional<double>{value};
}

}  // namespace registry
