#include "store/ip_prefix.h"

#include <algorithm>
#include <charconv>

namespace store {
namespace {

constexpr std::array<std::uint8_t, 12> kV4MappedPrefix = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

// Zeroes every bit of `bytes` after the first `length`.
void clear_host_bits(IpAddress& address, std::uint8_t length) {
  const std::size_t size = address.size();
  for (std::size_t i = 0; i < size; ++i) {
    const int bits_kept = std::clamp(static_cast<int>(length) - static_cast<int>(i) * 8, 0, 8);
    const auto mask = static_cast<std::uint8_t>(bits_kept == 0 ? 0 : 0xff << (8 - bits_kept));
    address.bytes[i] &= mask;
  }
}

}  // namespace

IpAddress unmap_v4(const IpAddress& address) {
  if (address.is_v4() ||
      !std::equal(kV4MappedPrefix.begin(), kV4MappedPrefix.end(), address.bytes.begin())) {
    return address;
  }
  IpAddress v4;
  v4.family = IpAddress::Family::v4;
  std::copy_n(address.bytes.begin() + 12, 4, v4.bytes.begin());
  return v4;
}

std::optional<IpPrefix> IpPrefix::parse(std::string_view text) {
  const auto slash = text.find('/');
  auto address = IpAddress::parse(text.substr(0, slash));
  if (!address) return std::nullopt;
  const unsigned max_length = address->is_v4() ? 32 : 128;
  unsigned length = max_length;
  if (slash != std::string_view::npos) {
    const std::string_view digits = text.substr(slash + 1);
    if (digits.empty() || digits.size() > 3) return std::nullopt;
    const auto [end, error] = std::from_chars(digits.data(), digits.data() + digits.size(), length);
    if (error != std::errc() || end != digits.data() + digits.size() || length > max_length) {
      return std::nullopt;
    }
  }
  IpPrefix prefix{*address, static_cast<std::uint8_t>(length)};
  clear_host_bits(prefix.network, prefix.length);
  if (!(prefix.network == *address)) return std::nullopt;
  return prefix;
}

IpPrefix IpPrefix::of(const IpAddress& address, std::uint8_t length) {
  IpPrefix prefix{address, std::min<std::uint8_t>(length, address.is_v4() ? 32 : 128)};
  clear_host_bits(prefix.network, prefix.length);
  return prefix;
}

bool IpPrefix::contains(const IpAddress& address) const {
  const IpAddress candidate = network.is_v4() ? unmap_v4(address) : address;
  if (candidate.family != network.family) return false;
  return IpPrefix::of(candidate, length).network == network;
}

std::string IpPrefix::to_string() const {
  return network.to_string() + "/" + std::to_string(length);
}

bool any_contains(const std::vector<IpPrefix>& prefixes, const IpAddress& address) {
  return std::ranges::any_of(prefixes,
                             [&](const IpPrefix& prefix) { return prefix.contains(address); });
}

const std::vector<IpPrefix>& loopback_prefixes() {
  static const std::vector<IpPrefix> prefixes = {*IpPrefix::parse("127.0.0.0/8"),
                                                 *IpPrefix::parse("::1/128")};
  return prefixes;
}

bool is_loopback(const IpAddress& address) {
  return any_contains(loopback_prefixes(), address);
}

}  // namespace store
