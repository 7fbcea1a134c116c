// Settings of the DNS front end, filled from the daemon's configuration.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "store/ip_prefix.h"
#include "store/model.h"

namespace dns {

// Response rate limiting of UDP answers per client prefix (dns/rate_limiter.h).
// UDP only: a spoofed source can make us send UDP answers to a victim, but cannot
// complete a TCP handshake, so TCP answers amplify nothing.
struct RateLimitOptions {
  // Per client prefix; 0: off. 1000 is far above what one resolver sends for
  // service discovery, and low enough to make the server a poor amplifier.
  std::uint32_t responses_per_second = 1000;
  std::uint32_t burst = 0;  // bucket size; 0: equal to responses_per_second
  // Every Nth limited response is sent as an empty TC=1 reply (0: never; 1: always),
  // so that a real client behind the limit retries over TCP, while a spoofed
  // victim gets a reply no larger than the query (BIND and Knot call it "slip").
  std::uint32_t slip = 2;
  // Clients are counted per prefix: one host with many addresses (an IPv6 /64, a
  // NAT pool) must not get many buckets.
  std::uint8_t ipv4_prefix = 32;
  std::uint8_t ipv6_prefix = 56;
  // Never limited: loopback by default, so local tools and benchmarks are not.
  std::vector<store::IpPrefix> exempt = store::loopback_prefixes();
  // Memory bound of the table of buckets (rounded up to a multiple of 8): spoofed
  // sources evict the fullest buckets instead of growing it.
  std::size_t max_tracked_clients = 65536;
};

struct Options {
  // AXFR and IXFR go to the server's TransferHandler (xfr/); without one they
  // are REFUSED.
  bool zone_transfers = false;
  // The zone apex; every dynamic name lives below it. Must match the SOA owner of
  // the zone file.
  std::string domain = "discovery.";
  // RFC 1035 master file with the apex SOA and NS and any static records.
  std::string zone_file = "zones/discovery.zone";

  std::string listen_address = "127.0.0.1";
  std::uint16_t listen_port = 8600;  // 0: let the kernel pick (see Server endpoints)

  // TTL of dynamic answers (A/AAAA/SRV built from the registry). Short on purpose:
  // instances come and go (health checks remove dead ones within seconds) and
  // resolvers must not keep routing clients to an instance that is gone. Five
  // seconds still lets a busy client's resolver absorb most repeated lookups.
  std::uint32_t answer_ttl = 5;
  // TTL of the SOA in negative answers; unset: min(SOA TTL, SOA MINIMUM) per
  // RFC 2308 section 5.
  std::optional<std::uint32_t> negative_ttl;

  // Our EDNS UDP payload size: the cap on the client's advertised size and the size
  // we advertise. 1232 avoids IP fragmentation on any path (DNS flag day 2020).
  std::uint16_t max_udp_payload = 1232;

  // CHAOS TXT answers; empty means REFUSED for that name.
  std::string version_bind;  // version.bind, version.server
  std::string id_server;     // id.server, hostname.bind

  std::chrono::milliseconds tcp_idle_timeout{10000};
  std::size_t max_tcp_connections = 256;
  // Open TCP connections per client address (exact, IPv4-mapped counted as IPv4),
  // so that one client cannot take all of max_tcp_connections; 0: no per-client cap.
  std::size_t max_tcp_connections_per_client = 16;

  RateLimitOptions rate_limit;

  // SRV priority of every instance: all instances are equal, weight spreads load.
  std::uint16_t srv_priority = 1;
  // RFC 2782 forbids compressing the SRV target; every client library we know
  // decompresses it anyway. Compression roughly halves an SRV answer, letting
  // about twice as many instances fit a TCP message (65535 bytes).
  bool compress_srv_targets = false;

  // Load balancing (docs/dns.md): the strategy of services that registered none.
  store::LbStrategy default_lb = store::LbStrategy::round_robin;
  // At most this many A/AAAA records per answer, after ordering (0: no cap).
  std::size_t max_answer_records = 0;
  // Seed of the random source of weighted/random ordering; 0: from the OS.
  std::uint64_t lb_seed = 0;
};

}  // namespace dns
