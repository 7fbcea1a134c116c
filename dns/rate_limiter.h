// Response rate limiting (RRL) of UDP answers per client prefix, against
// reflection and amplification: an attacker who spoofs a victim's address gets
// at most `responses_per_second` answers sent there, and most of the rest become
// nothing or a reply no larger than the query.
//
// A token bucket per client prefix, kept as its "theoretical arrival time" (the
// GCRA form of a token bucket): the bucket is full when that time is not after
// now, each answer moves it one interval (1 s / rate) later, and an answer is
// limited when it would move it more than burst - 1 intervals ahead of now. One
// integer per client, no division on the path.
//
// The table is fixed-size and set-associative: a seeded 64-bit hash of the client
// prefix picks a set of 8 entries and is the entry's tag (two prefixes sharing a
// bucket would need equal hashes). A new client takes the entry of its set whose
// bucket is the fullest (empty entries first): a full bucket holds no state worth
// keeping, so a flood of spoofed sources recycles entries among themselves, while
// a client that is being limited keeps its bucket. A lookup reads the set's tags
// (one cache line) and then its times (another).
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "dns/options.h"
#include "store/model.h"

namespace dns {

class RateLimiter {
 public:
  using Clock = std::chrono::steady_clock;
  enum class Verdict : std::uint8_t {
    respond,  // within the limit
    drop,     // limited: send nothing
    slip,     // limited: send the minimal TC=1 reply (encode_slip_response)
  };

  // `seed` randomises which clients share a set; 0: from the OS.
  explicit RateLimiter(const RateLimitOptions& options, std::uint64_t seed = 0);

  static bool enabled(const RateLimitOptions& options) { return options.responses_per_second > 0; }

  // The verdict on one response to `client` at `now`. `now` is the caller's: the
  // UDP server takes it once per batch of datagrams. Not thread-safe.
  Verdict check(const store::IpAddress& client, Clock::time_point now);

  std::size_t capacity() const { return sets_.size() * kWays; }
  std::size_t tracked_clients() const;  // walks the table: for tests and diagnostics

 private:
  // A client prefix as 128 bits; IPv4 as its IPv4-mapped IPv6 form.
  struct Key {
    std::uint64_t high = 0;
    std::uint64_t low = 0;
    friend bool operator==(const Key&, const Key&) = default;
  };
  struct Exemption {
    Key network;
    Key mask;
    bool v4 = false;
  };
  static constexpr std::size_t kWays = 8;
  struct alignas(64) Set {
    std::uint64_t tags[kWays] = {};       // 0: unused; else the prefix's hash with bit 0 set
    std::int64_t arrival_ns[kWays] = {};  // theoretical arrival time: full when <= now
    std::uint16_t limited[kWays] = {};    // limited responses so far, for slip
  };

  bool exempt(const Key& address, bool v4) const;
  std::uint64_t hash(const Key& key) const;

  std::int64_t interval_ns_;   // time to earn one token
  std::int64_t tolerance_ns_;  // (burst - 1) intervals
  std::uint32_t slip_;
  Key v4_mask_;
  Key v6_mask_;
  std::vector<Exemption> exemptions_;
  std::uint64_t seed_;
  std::vector<Set> sets_;
};

// The reply that a limited client gets every `slip` times instead of nothing: the
// query's header (same ID, opcode and RD; QR and TC set; NOERROR; only the
// question counted) and its question, so never larger than the query. A real
// client retries over TCP, which is not limited. Returns the size, or 0 when the
// query is not a well-formed QUERY (then nothing is sent).
std::size_t encode_slip_response(std::span<const std::uint8_t> query,
                                 std::span<std::uint8_t> response);

}  // namespace dns
