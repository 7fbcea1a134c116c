// Human-friendly durations ("250ms", "30s", "2m", "1h") used in the API and config.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

namespace store {

// Parses "<integer><unit>" with unit ms, s, m or h. Returns nullopt for anything
// else (no bare numbers: the unit is never implied).
std::optional<std::chrono::milliseconds> parse_duration(std::string_view text);

// The shortest exact text form: 1500ms, 30s, 2m, 1h.
std::string format_duration(std::chrono::milliseconds duration);

// RFC 3339 UTC with milliseconds, e.g. 2026-11-29T18:03:33.329Z (API timestamps).
std::string format_timestamp(std::chrono::system_clock::time_point time);

}  // namespace store
