#include "dns/rate_limiter.h"

#include <algorithm>
#include <random>

#include "dns/message_builder.h"
#include "dns/query_parser.h"
#include "dns/wire.h"

namespace dns {

namespace {

constexpr std::int64_t kNanosPerSecond = 1'000'000'000;
// ::ffff:0:0/96, the IPv4-mapped range, in the low half of a key.
constexpr std::uint64_t kV4MappedTag = 0x0000'ffff'0000'0000ULL;

std::uint64_t load_u64(const std::uint8_t* bytes) {
  std::uint64_t value = 0;
  for (int i = 0; i < 8; ++i) value = (value << 8) | bytes[i];
  return value;
}

// The top `bits` bits set (0..64).
std::uint64_t top_bits(unsigned bits) {
  return bits == 0 ? 0 : ~std::uint64_t{0} << (64 - bits);
}

struct ClientAddress {
  std::uint64_t high;
  std::uint64_t low;
  bool v4;
};

// IPv4 and IPv4-mapped IPv6 both become ::ffff:a.b.c.d, so that a dual-stack
// socket's view of an IPv4 client shares the client's bucket.
ClientAddress client_address(const store::IpAddress& address) {
  if (address.is_v4()) {
    return {0, kV4MappedTag | load_u32(address.bytes.data()), true};
  }
  const std::uint64_t high = load_u64(address.bytes.data());
  const std::uint64_t low = load_u64(address.bytes.data() + 8);
  return {high, low, high == 0 && (low & ~0xffff'ffffULL) == kV4MappedTag};
}

std::uint64_t random_seed() {
  std::random_device device;
  return (std::uint64_t{device()} << 32) | device();
}

}  // namespace

RateLimiter::RateLimiter(const RateLimitOptions& options, std::uint64_t seed)
    : interval_ns_(kNanosPerSecond / std::max<std::int64_t>(options.responses_per_second, 1)),
      tolerance_ns_(interval_ns_ *
                    (std::max<std::int64_t>(
                         options.burst == 0 ? options.responses_per_second : options.burst, 1) -
                     1)),
      slip_(options.slip),
      seed_(seed == 0 ? random_seed() : seed),
      sets_((std::max<std::size_t>(options.max_tracked_clients, 1) + kWays - 1) / kWays) {
  const unsigned v4_bits = std::min<unsigned>(options.ipv4_prefix, 32);
  const unsigned v6_bits = std::min<unsigned>(options.ipv6_prefix, 128);
  v4_mask_ = {~std::uint64_t{0}, top_bits(32 + v4_bits)};
  v6_mask_ = {top_bits(std::min(v6_bits, 64U)), top_bits(v6_bits > 64 ? v6_bits - 64 : 0)};
  for (const store::IpPrefix& prefix : options.exempt) {
    const ClientAddress network = client_address(prefix.network);
    const unsigned bits = prefix.network.is_v4() ? 96U + prefix.length : prefix.length;
    const Key mask{top_bits(std::min(bits, 64U)), top_bits(bits > 64 ? bits - 64 : 0)};
    exemptions_.push_back(
        {{network.high & mask.high, network.low & mask.low}, mask, prefix.network.is_v4()});
  }
}

bool RateLimiter::exempt(const Key& address, bool v4) const {
  // As store::IpPrefix::contains: IPv4 prefixes match IPv4 and IPv4-mapped
  // clients, IPv6 prefixes match IPv6 clients.
  return std::ranges::any_of(exemptions_, [&](const Exemption& exemption) {
    return exemption.v4 == v4 && (address.high & exemption.mask.high) == exemption.network.high &&
           (address.low & exemption.mask.low) == exemption.network.low;
  });
}

std::uint64_t RateLimiter::hash(const Key& key) const {
  // Seeded, so that an attacker cannot aim spoofed sources at the set of a client
  // he wants to evict.
  std::uint64_t hash = (key.low ^ seed_) * 0x9e37'79b9'7f4a'7c15ULL;
  hash ^= (key.high + (seed_ >> 17)) * 0xc2b2'ae3d'27d4'eb4fULL;
  hash ^= hash >> 31;
  hash *= 0xbf58'476d'1ce4'e5b9ULL;
  hash ^= hash >> 29;
  return hash;
}

RateLimiter::Verdict RateLimiter::check(const store::IpAddress& client, Clock::time_point now) {
  const ClientAddress address = client_address(client);
  const Key full{address.high, address.low};
  if (!exemptions_.empty() && exempt(full, address.v4)) return Verdict::respond;
  const Key& mask = address.v4 ? v4_mask_ : v6_mask_;
  const Key key{address.high & mask.high, address.low & mask.low};
  const std::int64_t now_ns =
      std::chrono::duration_cast<std::chrono::nanoseconds>(now.time_since_epoch()).count();

  const std::uint64_t key_hash = hash(key);
  const std::uint64_t tag = key_hash | 1;
  // Multiply-shift of the high bits onto [0, sets): the tag's low bits stay
  // independent of the set.
  Set& set = sets_[static_cast<std::size_t>(((key_hash >> 32) * sets_.size()) >> 32)];
  std::size_t way = 0;
  while (way < kWays && set.tags[way] != tag) ++way;
  if (way == kWays) {
    // Unused entries first (their time is 0), then the earliest arrival time.
    way = 0;
    for (std::size_t other = 1; other < kWays; ++other) {
      const bool emptier = set.tags[way] != 0 &&
                           (set.tags[other] == 0 || set.arrival_ns[other] < set.arrival_ns[way]);
      if (emptier) way = other;
    }
    set.tags[way] = tag;
    set.arrival_ns[way] = now_ns;
    set.limited[way] = 0;
  }

  const std::int64_t arrival = std::max(set.arrival_ns[way], now_ns);
  if (arrival - now_ns <= tolerance_ns_) {
    set.arrival_ns[way] = arrival + interval_ns_;
    return Verdict::respond;
  }
  // Wraps at 65536: a slip off its cadence then is harmless.
  const std::uint16_t limited = ++set.limited[way];
  return slip_ != 0 && limited % slip_ == 0 ? Verdict::slip : Verdict::drop;
}

std::size_t RateLimiter::tracked_clients() const {
  std::size_t count = 0;
  for (const Set& set : sets_) {
    count +=
        static_cast<std::size_t>(std::ranges::count_if(set.tags, [](auto t) { return t != 0; }));
  }
  return count;
}

std::size_t encode_slip_response(std::span<const std::uint8_t> query,
                                 std::span<std::uint8_t> response) {
  Query parsed;
  if (parse_query(query, parsed) != ParseStatus::ok) return 0;
  const auto kept =
      static_cast<std::uint16_t>(parsed.header.flags & (0x7800 /* opcode */ | flag::rd));
  MessageBuilder builder(response, response.size());
  if (!builder.start(parsed.header.id, static_cast<std::uint16_t>(flag::qr | flag::tc | kept),
                     parsed.question)) {
    return 0;
  }
  return builder.finish(nullptr);  // no records, no OPT: never larger than the query
}

}  // namespace dns
