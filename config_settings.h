// How the TOML file and the command line read one setting: durations, bounded
// integers, address ranges. Each throws ConfigError naming the setting. Internal
// to config.cpp and config_toml.cpp.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "config.h"
#include "store/duration.h"
#include "store/ip_prefix.h"

namespace daemon_config {

inline std::chrono::milliseconds parse_duration_setting(const std::string& text,
                                                        const std::string& setting) {
  auto duration = store::parse_duration(text);
  if (!duration || duration->count() <= 0) {
    throw ConfigError(setting + ": \"" + text + "\" is not a duration such as 250ms, 30s, 2m, 1h");
  }
  return *duration;
}

template <typename Integer>
Integer integer_setting(std::int64_t value, std::int64_t min, std::int64_t max,
                        const std::string& setting) {
  if (value < min || value > max) {
    throw ConfigError(setting + ": " + std::to_string(value) + " is not between " +
                      std::to_string(min) + " and " + std::to_string(max));
  }
  return static_cast<Integer>(value);
}

inline std::vector<store::IpPrefix> prefix_list(const std::vector<std::string>& texts,
                                                const std::string& setting) {
  std::vector<store::IpPrefix> prefixes;
  for (const auto& text : texts) {
    auto prefix = store::IpPrefix::parse(text);
    if (!prefix) {
      throw ConfigError(setting + ": \"" + text +
                        "\" is not an address range such as 10.0.0.0/8 or fe80::/10 (host bits "
                        "must be zero)");
    }
    prefixes.push_back(*prefix);
  }
  return prefixes;
}

// Who may transfer: address ranges, where a lone address means itself.
inline std::vector<store::IpPrefix> transfer_allow_list(const std::vector<std::string>& texts,
                                                        const std::string& setting) {
  std::vector<std::string> ranges;
  for (const auto& text : texts) {
    const bool lone = text.find('/') == std::string::npos;
    ranges.push_back(lone ? text + (text.find(':') == std::string::npos ? "/32" : "/128") : text);
  }
  return prefix_list(ranges, setting);
}

// "a,b,c" (a flag's list) split at the commas, blanks dropped.
inline std::vector<std::string> comma_list(const std::string& text) {
  std::vector<std::string> items;
  std::size_t start = 0;
  while (start <= text.size()) {
    const std::size_t comma = std::min(text.find(',', start), text.size());
    std::string item = text.substr(start, comma - start);
    item.erase(0, item.find_first_not_of(' '));
    item.erase(item.find_last_not_of(' ') + 1);
    if (!item.empty()) items.push_back(item);
    start = comma + 1;
  }
  return items;
}

}  // namespace daemon_config
