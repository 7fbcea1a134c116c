// The checker's decisions without sockets or waiting: scheduling and jitter (with
// a fake random source), heartbeat deadlines, protection, failure counting, and
// the HTTP response head.
#include "health/policy.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "health/checker.h"
#include "health/http_response.h"

namespace {

using namespace std::chrono_literals;
using health::HeadParse;

TEST(HealthPolicyTest, ResolvesDefaultsPerCheckType) {
  health::Options options;
  options.default_interval = 30s;
  options.default_timeout = 2s;
  options.default_failures = 3;
  store::HealthCheck tcp;
  auto settings = health::resolve(tcp, options);
  EXPECT_EQ(settings.interval, 30s);
  EXPECT_EQ(settings.timeout, 2s);
  EXPECT_EQ(settings.failures, 3u);

  store::HealthCheck own;
  own.interval = 5s;
  own.timeout = 1s;
  own.failures = 7;
  settings = health::resolve(own, options);
  EXPECT_EQ(settings.interval, 5s);
  EXPECT_EQ(settings.timeout, 1s);
  EXPECT_EQ(settings.failures, 7u);

  store::HealthCheck ttl;
  ttl.type = store::CheckType::ttl;
  ttl.ttl = 10s;
  settings = health::resolve(ttl, options);
  EXPECT_EQ(settings.ttl, 10s);
  EXPECT_EQ(settings.interval, 10s);  // one deadline per ttl
  ttl.interval = 4s;
  EXPECT_EQ(health::resolve(ttl, options).interval, 4s);
}

TEST(HealthPolicyTest, FirstProbesAreSpreadOverTheInterval) {
  EXPECT_EQ(health::first_probe_delay(30s, 0.0), 0ms);
  EXPECT_EQ(health::first_probe_delay(30s, 0.5), 15s);
  EXPECT_EQ(health::first_probe_delay(30s, 0.99999), 29999ms);
  // A fake random source walking [0, 1): the delays cover the interval evenly.
  std::vector<int> buckets(10, 0);
  for (int i = 0; i < 1000; ++i) {
    const auto delay = health::first_probe_delay(1000ms, (i + 0.5) / 1000.0);
    ++buckets[static_cast<std::size_t>(delay.count() / 100)];
  }
  for (const int count : buckets) EXPECT_EQ(count, 100);
}

TEST(HealthPolicyTest, NextProbeComesEveryIntervalPlusOrMinusJitter) {
  EXPECT_EQ(health::next_probe_delay(1000ms, 0.1, 0.0), 900ms);
  EXPECT_EQ(health::next_probe_delay(1000ms, 0.1, 0.5), 1000ms);
  EXPECT_EQ(health::next_probe_delay(1000ms, 0.1, 1.0), 1100ms);
  EXPECT_EQ(health::next_probe_delay(1000ms, 0.0, 0.9), 1000ms);
  EXPECT_EQ(health::next_probe_delay(1ms, 1.0, 0.0), 1ms);  // never zero
  for (double u = 0; u < 1; u += 0.01) {
    const auto delay = health::next_probe_delay(30s, 0.1, u);
    EXPECT_GE(delay, 27s);
    EXPECT_LE(delay, 33s);
  }
}

TEST(HealthPolicyTest, HeartbeatDeadline) {
  const store::TimePoint t0{std::chrono::seconds(1000)};
  // Never sent one: one ttl of grace from when it was first tracked.
  EXPECT_TRUE(health::heartbeat_within(t0 + 200ms, std::nullopt, t0, 200ms));
  EXPECT_FALSE(health::heartbeat_within(t0 + 201ms, std::nullopt, t0, 200ms));
  EXPECT_TRUE(health::heartbeat_within(t0 + 500ms, t0 + 400ms, t0, 200ms));
  EXPECT_FALSE(health::heartbeat_within(t0 + 700ms, t0 + 400ms, t0, 200ms));
  // A heartbeat older than the tracking (the daemon restarted) gets the grace too.
  EXPECT_TRUE(health::heartbeat_within(t0 + 100ms, t0 - 1h, t0, 200ms));
}

TEST(HealthPolicyTest, ProtectionTripsAboveTheShareOfFailingInstances) {
  EXPECT_FALSE(health::protection_tripped(8, 10, std::nullopt));  // off by default
  EXPECT_FALSE(health::protection_tripped(5, 10, 0.5));
  EXPECT_TRUE(health::protection_tripped(6, 10, 0.5));
  EXPECT_FALSE(health::protection_tripped(0, 0, 0.5));
  EXPECT_TRUE(health::protection_tripped(1, 1, 0.5));
}

TEST(HealthPolicyTest, FailureCountRemovesOnTheThresholdthConsecutiveFailure) {
  health::FailureCount count;
  EXPECT_EQ(count.record(false, 3), health::FailureCount::Verdict::keep);
  EXPECT_EQ(count.record(false, 3), health::FailureCount::Verdict::keep);
  EXPECT_EQ(count.record(true, 3), health::FailureCount::Verdict::keep);  // resets
  EXPECT_EQ(count.failures(), 0u);
  EXPECT_EQ(count.record(false, 3), health::FailureCount::Verdict::keep);
  EXPECT_EQ(count.record(false, 3), health::FailureCount::Verdict::keep);
  EXPECT_EQ(count.record(false, 3), health::FailureCount::Verdict::remove);
  EXPECT_EQ(count.failures(), 3u);
  EXPECT_EQ(health::FailureCount(5).record(false, 3), health::FailureCount::Verdict::remove);
}

TEST(HttpResponseTest, ParsesStatusAndLoad) {
  auto parsed = health::parse_response_head(
      "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nx-load:  3.25 \r\n\r\nbody");
  ASSERT_EQ(parsed.state, HeadParse::State::complete);
  EXPECT_EQ(parsed.head.status, 200);
  ASSERT_TRUE(parsed.head.load.has_value());
  EXPECT_EQ(*parsed.head.load, 3.25);

  parsed = health::parse_response_head("HTTP/1.0 503\r\n\r\n");
  ASSERT_EQ(parsed.state, HeadParse::State::complete);
  EXPECT_EQ(parsed.head.status, 503);
  EXPECT_FALSE(parsed.head.load.has_value());
}

TEST(HttpResponseTest, IgnoresLoadThatIsNotAFiniteNonNegativeNumber) {
  for (const char* value : {"-1", "abc", "inf", "nan", "1e999", "2x", ""}) {
    const auto parsed = health::parse_response_head(std::string("HTTP/1.1 200 OK\r\nX-Load: ") +
                                                    value + "\r\n\r\n");
    ASSERT_EQ(parsed.state, HeadParse::State::complete) << value;
    EXPECT_FALSE(parsed.head.load.has_value()) << value;
  }
}

TEST(HttpResponseTest, IncompleteAndMalformedHeads) {
  EXPECT_EQ(health::parse_response_head("").state, HeadParse::State::incomplete);
  EXPECT_EQ(health::parse_response_head("HTT").state, HeadParse::State::incomplete);
  EXPECT_EQ(health::parse_response_head("HTTP/1.1 200 OK\r\nA: b\r\n").state,
            HeadParse::State::incomplete);
  EXPECT_EQ(health::parse_response_head("SSH-2.0-OpenSSH\r\n").state, HeadParse::State::malformed);
  EXPECT_EQ(health::parse_response_head("HTTP/1.1 2000 OK\r\n\r\n").state,
            HeadParse::State::malformed);
  EXPECT_EQ(health::parse_response_head("HTTP/1.1 OK\r\n\r\n").state, HeadParse::State::malformed);
  EXPECT_EQ(health::parse_response_head("HTTP/1.1 099 Low\r\n\r\n").state,
            HeadParse::State::malformed);
  EXPECT_EQ(health::parse_response_head("HTTP/1.1 200 OK\r\nno colon\r\n\r\n").state,
            HeadParse::State::malformed);
  EXPECT_EQ(health::parse_response_head("HTTP/1.1 200 OK\r\nBad Name: x\r\n\r\n").state,
            HeadParse::State::malformed);
}

TEST(HttpResponseTest, OnlyTwoHundredsPass) {
  EXPECT_TRUE(health::status_passes(200));
  EXPECT_TRUE(health::status_passes(204));
  EXPECT_TRUE(health::status_passes(299));
  EXPECT_FALSE(health::status_passes(199));
  EXPECT_FALSE(health::status_passes(301));
  EXPECT_FALSE(health::status_passes(302));
  EXPECT_FALSE(health::status_passes(404));
  EXPECT_FALSE(health::status_passes(503));
}

TEST(HttpResponseTest, RequestNamesTheInstanceAndTheProduct) {
  EXPECT_EQ(health::build_request("[::1]", 8080, "/health?x=1", "discoveryd-health/0.1.0"),
            "GET /health?x=1 HTTP/1.1\r\nHost: [::1]:8080\r\n"
            "User-Agent: discoveryd-health/0.1.0\r\nAccept: */*\r\nConnection: close\r\n\r\n");
  EXPECT_TRUE(health::safe_request_path("/health"));
  EXPECT_FALSE(health::safe_request_path("health"));
  EXPECT_FALSE(health::safe_request_path("/a b"));
  EXPECT_FALSE(health::safe_request_path("/a\r\nHost: evil"));
  EXPECT_FALSE(health::safe_request_path(""));
}

}  // namespace
