// Hash maps and sets keyed by std::string that can be looked up with a
// std::string_view (C++20 heterogeneous lookup), so that a DNS query's service
// name finds its entry without building a std::string first.
#pragma once

#include <functional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>

namespace store {

struct TransparentStringHash {
  using is_transparent = void;
  std::size_t operator()(std::string_view text) const {
    return std::hash<std::string_view>{}(text);
  }
};

template <typename Value>
using StringMap = std::unordered_map<std::string, Value, TransparentStringHash, std::equal_to<>>;
using StringSet = std::unordered_set<std::string, TransparentStringHash, std::equal_to<>>;

}  // namespace store
