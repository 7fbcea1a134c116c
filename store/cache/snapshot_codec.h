// The cache's value format: one service snapshot as a string for Redis. Versioned
// ("s1" first) so that a daemon never misreads an entry written by another
// release sharing the same Redis; anything it cannot read is a cache miss.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "store/model.h"

namespace store {

std::string encode_snapshot(const ServiceSnapshot& snapshot);
std::optional<ServiceSnapshot> decode_snapshot(std::string_view encoded);

}  // namespace store
