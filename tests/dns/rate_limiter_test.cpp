// The response rate limiter alone, on an injected clock: bucket size, refill,
// slip, prefix aggregation, exemptions, and the memory bound under a flood of
// distinct sources. Ends with a microbenchmark of check() on the hot path.
#include "dns/rate_limiter.h"

#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <ctime>
#include <random>

#include "test_support.h"

namespace dns {
namespace {

using namespace std::chrono_literals;
using Verdict = RateLimiter::Verdict;
using Clock = RateLimiter::Clock;

store::IpAddress ip(const char* text) {
  const auto address = store::IpAddress::parse(text);
  EXPECT_TRUE(address) << text;
  return address.value_or(store::IpAddress{});
}

store::IpPrefix prefix(const char* text) {
  const auto parsed = store::IpPrefix::parse(text);
  EXPECT_TRUE(parsed) << text;
  return parsed.value_or(store::IpPrefix{});
}

RateLimitOptions limit(std::uint32_t rate, std::uint32_t burst = 0, std::uint32_t slip = 0) {
  RateLimitOptions options;
  options.responses_per_second = rate;
  options.burst = burst;
  options.slip = slip;
  options.exempt = {};  // every client is limited unless a test says otherwise
  return options;
}

// How many of `count` checks at `now` were answered normally.
int responded(RateLimiter& limiter, const store::IpAddress& client, Clock::time_point now,
              int count) {
  int answered = 0;
  for (int i = 0; i < count; ++i) answered += limiter.check(client, now) == Verdict::respond;
  return answered;
}

const Clock::time_point kStart = Clock::time_point{} + 1000h;

TEST(RateLimiterTest, OnByDefaultWithLoopbackExemptAndOffAtRateZero) {
  // The daemon's defaults are these (config.h reads them from RateLimitOptions).
  const RateLimitOptions defaults;
  EXPECT_TRUE(RateLimiter::enabled(defaults));
  EXPECT_EQ(defaults.responses_per_second, 1000u);
  EXPECT_EQ(defaults.exempt, store::loopback_prefixes());
  EXPECT_FALSE(RateLimiter::enabled(limit(0)));
  EXPECT_TRUE(RateLimiter::enabled(limit(1)));
}

TEST(RateLimiterTest, ABurstIsAnsweredThenTheRestIsLimited) {
  RateLimiter limiter(limit(10, 5));
  EXPECT_EQ(responded(limiter, ip("192.0.2.1"), kStart, 100), 5);
  // Another client has its own bucket.
  EXPECT_EQ(responded(limiter, ip("192.0.2.2"), kStart, 100), 5);
}

TEST(RateLimiterTest, BurstDefaultsToOneSecondOfResponses) {
  RateLimiter limiter(limit(20));
  EXPECT_EQ(responded(limiter, ip("192.0.2.1"), kStart, 100), 20);
}

TEST(RateLimiterTest, TokensComeBackAtTheConfiguredRate) {
  RateLimiter limiter(limit(10, 10));
  const auto client = ip("192.0.2.1");
  ASSERT_EQ(responded(limiter, client, kStart, 50), 10);
  EXPECT_EQ(responded(limiter, client, kStart + 50ms, 5), 0) << "half a token";
  EXPECT_EQ(responded(limiter, client, kStart + 100ms, 5), 1);
  EXPECT_EQ(responded(limiter, client, kStart + 450ms, 10), 3);
  // Steady state: once empty, ten a second, whatever the client sends.
  responded(limiter, client, kStart + 1000ms, 100);
  int answered = 0;
  for (int ms = 1010; ms <= 3000; ms += 10) {
    answered += responded(limiter, client, kStart + std::chrono::milliseconds(ms), 3);
  }
  EXPECT_EQ(answered, 20);
  // A long pause refills to the burst, not beyond.
  EXPECT_EQ(responded(limiter, client, kStart + 1h, 100), 10);
}

TEST(RateLimiterTest, EveryNthLimitedResponseSlips) {
  RateLimiter every_third(limit(1, 1, 3));
  const auto client = ip("192.0.2.1");
  ASSERT_EQ(every_third.check(client, kStart), Verdict::respond);
  std::vector<Verdict> verdicts;
  for (int i = 0; i < 6; ++i) verdicts.push_back(every_third.check(client, kStart));
  EXPECT_EQ(verdicts, (std::vector<Verdict>{Verdict::drop, Verdict::drop, Verdict::slip,
                                            Verdict::drop, Verdict::drop, Verdict::slip}));

  RateLimiter always(limit(1, 1, 1));
  ASSERT_EQ(always.check(client, kStart), Verdict::respond);
  for (int i = 0; i < 5; ++i) EXPECT_EQ(always.check(client, kStart), Verdict::slip);

  RateLimiter never(limit(1, 1, 0));
  ASSERT_EQ(never.check(client, kStart), Verdict::respond);
  for (int i = 0; i < 5; ++i) EXPECT_EQ(never.check(client, kStart), Verdict::drop);
}

TEST(RateLimiterTest, ClientsInOnePrefixShareABucket) {
  RateLimitOptions options = limit(10, 4);
  options.ipv4_prefix = 24;
  options.ipv6_prefix = 56;
  RateLimiter limiter(options);
  EXPECT_EQ(responded(limiter, ip("192.0.2.1"), kStart, 2), 2);
  EXPECT_EQ(responded(limiter, ip("192.0.2.200"), kStart, 10), 2) << "same /24";
  EXPECT_EQ(responded(limiter, ip("::ffff:192.0.2.7"), kStart, 10), 0) << "IPv4-mapped: same /24";
  EXPECT_EQ(responded(limiter, ip("192.0.3.1"), kStart, 10), 4) << "next /24";

  EXPECT_EQ(responded(limiter, ip("2001:db8:0:1::1"), kStart, 3), 3);
  EXPECT_EQ(responded(limiter, ip("2001:db8:0:ff::2"), kStart, 10), 1) << "same /56";
  EXPECT_EQ(responded(limiter, ip("2001:db8:0:100::1"), kStart, 10), 4) << "next /56";
}

TEST(RateLimiterTest, HostPrefixesKeepAddressesApart) {
  RateLimitOptions options = limit(10, 2);
  options.ipv4_prefix = 32;
  options.ipv6_prefix = 128;
  RateLimiter limiter(options);
  EXPECT_EQ(responded(limiter, ip("192.0.2.1"), kStart, 10), 2);
  EXPECT_EQ(responded(limiter, ip("192.0.2.2"), kStart, 10), 2);
  EXPECT_EQ(responded(limiter, ip("2001:db8::1"), kStart, 10), 2);
  EXPECT_EQ(responded(limiter, ip("2001:db8::2"), kStart, 10), 2);
}

TEST(RateLimiterTest, ExemptPrefixesAreNeverLimited) {
  RateLimitOptions options = limit(1, 1, 1);
  options.ipv4_prefix = 8;  // exemptions match the exact address, not the client prefix
  options.exempt = {prefix("127.0.0.0/8"), prefix("::1"), prefix("10.1.0.0/16")};
  RateLimiter limiter(options);
  for (const char* exempt : {"127.0.0.1", "127.255.0.3", "::ffff:127.0.0.1", "::1", "10.1.2.3"}) {
    EXPECT_EQ(responded(limiter, ip(exempt), kStart, 100), 100) << exempt;
  }
  for (const char* limited : {"128.0.0.1", "::2", "10.2.0.1"}) {
    EXPECT_EQ(responded(limiter, ip(limited), kStart, 100), 1) << limited;
  }
  EXPECT_EQ(responded(limiter, ip("::ffff:10.3.0.1"), kStart, 100), 0) << "10.2.0.1's /8";
}

TEST(RateLimiterTest, AFloodOfSpoofedSourcesStaysWithinTheTableAndEvictsFullBucketsFirst) {
  RateLimitOptions options = limit(10, 5, 2);
  options.max_tracked_clients = 1000;
  RateLimiter limiter(options, 42);
  EXPECT_EQ(limiter.capacity(), 1000u);

  // A client being limited (a victim whose address is spoofed at us).
  const auto victim = ip("198.51.100.7");
  ASSERT_EQ(responded(limiter, victim, kStart, 50), 5);

  // Ten times the table in distinct sources, v4 and v6, each asking once.
  for (std::uint32_t i = 0; i < 10'000; ++i) {
    store::IpAddress source;
    if (i % 2 == 0) {
      source.bytes = {10, static_cast<std::uint8_t>(i >> 16), static_cast<std::uint8_t>(i >> 8),
                      static_cast<std::uint8_t>(i)};
    } else {
      source.family = store::IpAddress::Family::v6;
      source.bytes = {0x20,
                      0x01,
                      0x0d,
                      0xb8,
                      static_cast<std::uint8_t>(i >> 16),
                      static_cast<std::uint8_t>(i >> 8),
                      static_cast<std::uint8_t>(i)};
    }
    ASSERT_EQ(limiter.check(source, kStart + 1ms), Verdict::respond) << i;
    ASSERT_LE(limiter.tracked_clients(), 1000u);
  }
  EXPECT_EQ(limiter.tracked_clients(), 1000u);
  // New clients still get their burst; the victim's nearly empty bucket survived
  // the flood (a full one would have been evicted first).
  EXPECT_EQ(responded(limiter, ip("203.0.113.9"), kStart + 2ms, 10), 5);
  EXPECT_EQ(responded(limiter, victim, kStart + 2ms, 10), 0);
}

TEST(RateLimiterTest, TableSizeIsRoundedUpToWholeSets) {
  RateLimitOptions options = limit(10);
  options.max_tracked_clients = 1001;
  EXPECT_EQ(RateLimiter(options).capacity(), 1008u);
  options.max_tracked_clients = 0;
  EXPECT_EQ(RateLimiter(options).capacity(), 8u);
}

TEST(SlipResponseTest, IsTheHeaderAndQuestionWithTcAndNoLargerThanTheQuery) {
  const testing::Bytes query = testing::make_query(
      {.name = "web.service.discovery.", .type = 33, .id = 0xBEEF, .edns_payload = 4096});
  testing::Bytes response(512);
  const std::size_t size = encode_slip_response(query, response);
  ASSERT_GT(size, 12u);
  EXPECT_LE(size, query.size());
  response.resize(size);
  const testing::Response reply(response);
  ASSERT_TRUE(reply.parsed());
  EXPECT_EQ(reply.id(), 0xBEEF);
  EXPECT_TRUE(reply.tc());
  EXPECT_TRUE(reply.rd());
  EXPECT_FALSE(reply.aa());
  EXPECT_EQ(reply.rcode(), LDNS_RCODE_NOERROR);
  EXPECT_EQ(reply.question_name(), "web.service.discovery.");
  EXPECT_EQ(ldns_rr_get_type(ldns_rr_list_rr(ldns_pkt_question(reply.packet()), 0)), 33);
  EXPECT_EQ(reply.answer_count(), 0u);
  EXPECT_EQ(reply.additional_count(), 0u);
  EXPECT_NE(response[2] & 0x80, 0) << "QR";
}

TEST(SlipResponseTest, NothingForWhatIsNotAQuery) {
  testing::Bytes response(512);
  EXPECT_EQ(encode_slip_response(testing::Bytes{1, 2, 3}, response), 0u);
  testing::Bytes reply = testing::make_query({.name = "discovery."});
  reply[2] |= 0x80;  // QR: a response
  EXPECT_EQ(encode_slip_response(reply, response), 0u);
  testing::Bytes truncated = testing::make_query({.name = "discovery."});
  truncated.resize(truncated.size() - 3);
  EXPECT_EQ(encode_slip_response(truncated, response), 0u);
}

// Not a pass/fail test: prints what check() costs per query, the number that
// matters next to the server's ~7 µs per UDP query. Thread CPU time, so that other
// processes on a shared machine do not count.
double nanoseconds_per_check(RateLimiter& limiter, const std::vector<store::IpAddress>& clients) {
  const auto cpu_now = [] {
    timespec time{};
    ::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &time);
    return static_cast<double>(time.tv_sec) * 1e9 + static_cast<double>(time.tv_nsec);
  };
  constexpr std::size_t kChecks = 4'000'000;
  int answered = 0;
  auto now = kStart;
  const double started = cpu_now();
  for (std::size_t i = 0; i < kChecks; ++i) {
    if (i % 32 == 0) now += 10us;  // one clock reading per batch, as the server does
    answered += limiter.check(clients[i & (clients.size() - 1)], now) == Verdict::respond;
  }
  const double elapsed = cpu_now() - started;
  EXPECT_GT(answered, 0);
  return elapsed / kChecks;
}

std::vector<store::IpAddress> random_ipv4_clients(std::size_t count) {
  std::mt19937 random(7);
  std::vector<store::IpAddress> clients(count);
  for (store::IpAddress& client : clients) {
    const std::uint32_t bits = random();
    client.bytes = {static_cast<std::uint8_t>(bits >> 24), static_cast<std::uint8_t>(bits >> 16),
                    static_cast<std::uint8_t>(bits >> 8), static_cast<std::uint8_t>(bits)};
  }
  return clients;
}

TEST(RateLimiterBenchmark, CostOfACheck) {
  RateLimitOptions options = limit(1000);
  options.exempt = {prefix("127.0.0.0/8"), prefix("::1")};  // the daemon's default
  RateLimiter limiter(options);
  // A thousand regular clients (their sets stay in cache), then a spoofed flood:
  // a million sources over a 65,536-entry table, nearly every check a miss.
  const double regular = nanoseconds_per_check(limiter, random_ipv4_clients(1024));
  const double flood = nanoseconds_per_check(limiter, random_ipv4_clients(1 << 20));
  std::printf("RateLimiter::check: %.1f ns (1,024 clients), %.1f ns (flood of 2^20 sources)\n",
              regular, flood);
}

}  // namespace
}  // namespace dns
