// Turns untrusted HTTP input into store types, or says exactly what is wrong and
// where. Nothing here touches the database.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>
#include <variant>

#include "store/model.h"

namespace registry {

struct ValidationError {
  std::string message;
  std::string field;  // JSON path of the offending field, e.g. "check.interval"
};

// The daemon-wide defaults a registration falls back to; needed here because a
// check's timeout must be shorter than its (possibly defaulted) interval.
using CheckDefaults = store::CheckDefaults;

inline constexpr std::chrono::milliseconds kMinDuration{100};
inline constexpr std::chrono::milliseconds kMaxDuration{3'600'000};
inline constexpr std::size_t kMaxTags = 64;
inline constexpr std::size_t kMaxMetaEntries = 64;
inline constexpr std::size_t kMaxMetaKeyLength = 128;
inline constexpr std::size_t kMaxMetaValueLength = 512;
using store::kMaxCheckFailures;

// A DNS label as services, ids and tags must be: 1 to 63 of [A-Za-z0-9-], not
// starting or ending with '-'. Returns the lower-cased label, or nullopt.
std::optional<std::string> normalize_label(std::string_view text);

// Parses a registration body (JSON text) for `service`/`id`, which the caller has
// already normalised. Unknown fields are rejected so that a typo ("wieght") is an
// error instead of a silently ignored setting.
std::variant<store::Registration, ValidationError> parse_registration(
    std::string_view body, const std::string& service, const std::string& id,
    const CheckDefaults& defaults);

// Parses an optional heartbeat body: empty, or {"load": <finite number >= 0>}.
std::variant<std::optional<double>, ValidationError> parse_heartbeat(std::string_view body);

}  // namespace registry
