// Counters of the DNS front end, updated by the server and read by the HTTP status
// route from another thread (hence atomics; relaxed order is enough for counters).
#pragma once

#include <atomic>
#include <cstdint>

namespace dns {

struct Stats {
  using Counter = std::atomic<std::uint64_t>;

  Counter udp_queries{0};
  Counter tcp_queries{0};

  // Responses by RCODE; NOERROR includes NODATA.
  Counter noerror{0};
  Counter formerr{0};
  Counter servfail{0};
  Counter nxdomain{0};
  Counter notimp{0};
  Counter refused{0};
  Counter badvers{0};
  Counter other_rcode{0};

  Counter truncated{0};  // responses with TC set
  // Queries that got no response: too short, QR set, or the socket would block.
  Counter dropped{0};
  Counter lookups{0};          // services fetched from the store (cache misses)
  Counter lookup_failures{0};  // fetches that failed (answered SERVFAIL)

  // UDP queries over their client's rate limit (RateLimitOptions), answered with
  // nothing, or with an empty TC=1 reply; neither is counted by RCODE above.
  Counter rate_limited_dropped{0};
  Counter rate_limited_slipped{0};

  Counter tcp_connections_accepted{0};
  Counter tcp_connections_rejected{0};  // over max_tcp_connections
  Counter tcp_refused_per_client{0};    // over max_tcp_connections_per_client
  Counter tcp_connections_idle_closed{0};
  std::atomic<std::int64_t> tcp_connections_open{0};

  void count_response(std::uint16_t rcode, bool was_truncated) {
    Counter* counter = &other_rcode;
    switch (rcode) {
      case 0:
        counter = &noerror;
        break;
      case 1:
        counter = &formerr;
        break;
      case 2:
        counter = &servfail;
        break;
      case 3:
        counter = &nxdomain;
        break;
      case 4:
        counter = &notimp;
        break;
      case 5:
        counter = &refused;
        break;
      case 16:
        counter = &badvers;
        break;
      default:
        break;
    }
    counter->fetch_add(1, std::memory_order_relaxed);
    if (was_truncated) truncated.fetch_add(1, std::memory_order_relaxed);
  }
  static void bump(Counter& counter) { counter.fetch_add(1, std::memory_order_relaxed); }
};

}  // namespace dns
