// The health checker against real sockets, a real SQLite store and the real
// group-commit writer, with a short interval (200 ms) and a threshold of 3.
#include "health/checker.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <future>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "tests/health/checker_fixture.h"

namespace {

using namespace std::chrono_literals;
using health_test::HealthCheckerTest;
using health_test::instance;
using health_test::ip;
using health_test::kInterval;
using health_test::ListenerFarm;
using health_test::TestHttpServer;
using test_support::wait_until;

TEST_F(HealthCheckerTest, HttpInstanceTurningUnhealthyIsRemovedAfterExactlyThreeFailedProbes) {
  TestHttpServer server;
  add(instance("a1", server.port(), store::CheckType::http));
  start(fast_options());
  ASSERT_TRUE(wait_until([&] { return server.responses(200) >= 2; }));
  ASSERT_TRUE(find("a1").has_value());

  server.set_status(503);
  ASSERT_TRUE(wait_until([&] { return !find("a1").has_value(); }));
  EXPECT_EQ(server.responses(503), 3u);
  EXPECT_EQ(removed_by_listener(), std::vector<std::string>{"a1"});
  ASSERT_TRUE(wait_until([&] { return stats().removals == 1; }));
  const auto events = checker_->recent_removals();
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].id, "a1");
  EXPECT_EQ(events[0].reason, "http 503");
  EXPECT_EQ(events[0].failures, 3u);
  EXPECT_EQ(events[0].address, "127.0.0.1");
  EXPECT_EQ(stats().instances, 0u);

  // A removed instance is not probed any more.
  std::this_thread::sleep_for(3 * kInterval);
  EXPECT_EQ(server.responses(503), 3u);

  // The request names the product and closes the connection.
  const auto request = server.last_request();
  ASSERT_TRUE(request.has_value());
  EXPECT_EQ(request->rfind("GET /health HTTP/1.1\r\n", 0), 0u) << *request;
  EXPECT_NE(request->find("\r\nUser-Agent: discoveryd-health/"), std::string::npos);
  EXPECT_NE(request->find("\r\nHost: 127.0.0.1:" + std::to_string(server.port()) + "\r\n"),
            std::string::npos);
  EXPECT_NE(request->find("\r\nConnection: close\r\n"), std::string::npos);
}

TEST_F(HealthCheckerTest, FlappingInstanceThatFailsTwiceThenPassesStays) {
  TestHttpServer server;
  server.set_script({503, 503});
  add(instance("f1", server.port(), store::CheckType::http));
  start(fast_options());

  // The failures reach the database in a batch, then the pass resets them.
  ASSERT_TRUE(wait_until([&] {
    const auto found = find("f1");
    return found && found->consecutive_failures >= 1;
  }));
  ASSERT_TRUE(wait_until([&] { return server.responses(200) >= 2; }));
  ASSERT_TRUE(wait_until([&] {
    const auto found = find("f1");
    return found && found->consecutive_failures == 0 && found->last_check_at.has_value();
  }));
  EXPECT_EQ(server.responses(503), 2u);
  EXPECT_TRUE(find("f1").has_value());
  EXPECT_EQ(stats().removals, 0u);
  EXPECT_TRUE(removed_by_listener().empty());
  EXPECT_GE(stats().record_batches, 1u);
}

// An identical re-registration between the second and the third failure is proof
// of life: the third failure counts as the first of a new run, so the instance
// goes only after two more. The third probe hangs (script 0) until its timeout,
// which holds the checker there while the re-registration goes through.
TEST_F(HealthCheckerTest, IdenticalReRegistrationBetweenFailuresRestartsTheCount) {
  TestHttpServer server;
  server.set_script({503, 503, 0});
  server.set_status(503);
  const auto registration = instance("again", server.port(), store::CheckType::http);
  add(registration);
  auto options = fast_options();
  // Longer than the interval (the API would refuse it; the checker does not
  // care): the hanging probe leaves a wide window for the re-registration.
  options.default_timeout = 1000ms;
  start(options);
  ASSERT_TRUE(wait_until([&] { return server.requests() == 3; }));
  ASSERT_EQ(stats().probes_failed, 2u);
  EXPECT_EQ(submit(store::Upsert{registration}).outcome, store::Outcome::unchanged);
  ASSERT_TRUE(wait_until([&] { return stats().failing == 0; }));

  ASSERT_TRUE(wait_until([&] { return !find("again").has_value(); }));
  // Removed at the fifth failure: the timeout, then two more 503s.
  EXPECT_EQ(server.responses(503), 4u);
  EXPECT_EQ(stats().probes_failed, 5u);
  ASSERT_TRUE(wait_until([&] { return stats().removals == 1; }));
  EXPECT_EQ(checker_->recent_removals().at(0).failures, 3u);
}

// A heartbeat clears the failure count in the database; the check record of the
// failure before it, still waiting for its batch, must not write the old count
// back (a restart would then start from failures the instance never had).
TEST_F(HealthCheckerTest, AQueuedCheckRecordDoesNotUndoAHeartbeat) {
  TestHttpServer server;
  server.set_script({503, 503, 0});  // two failures, then a probe that hangs
  auto options = fast_options();
  options.default_timeout = 5000ms;
  options.record_flush_period = std::chrono::hours(1);  // records wait for stop()
  add(instance("beat", server.port(), store::CheckType::http));
  start(options);
  ASSERT_TRUE(wait_until([&] { return server.requests() == 3; }));
  ASSERT_EQ(stats().probes_failed, 2u);
  EXPECT_EQ(submit(store::Heartbeat{"orders", "beat", std::nullopt}).outcome,
            store::Outcome::unchanged);
  ASSERT_TRUE(wait_until([&] { return stats().failing == 0; }));
  shutdown();  // the checker flushes its pending records, the writer applies them

  store::SqliteStore reopened({dir_.file("discoveryd.db"), /*synchronous_full=*/false});
  const auto stored = reopened.read_service("orders").instances.at(0);
  EXPECT_EQ(stored.consecutive_failures, 0u);
  EXPECT_TRUE(stored.last_check_at.has_value());  // the check time is still recorded
}

TEST_F(HealthCheckerTest, TcpCheckAgainstClosedPortRemovesTheInstance) {
  add(instance("closed", test_support::free_port()));
  start(fast_options());
  ASSERT_TRUE(wait_until([&] { return !find("closed").has_value(); }));
  ASSERT_TRUE(wait_until([&] { return stats().removals == 1; }));
  const auto events = checker_->recent_removals();
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].failures, 3u);
  EXPECT_NE(events[0].reason.find("connect"), std::string::npos) << events[0].reason;
  EXPECT_EQ(stats().probes_failed, 3u);
}

TEST_F(HealthCheckerTest, TcpCheckAgainstOpenPortKeepsTheInstance) {
  ListenerFarm listener(1);
  add(instance("open", listener.port(0)));
  start(fast_options());
  ASSERT_TRUE(wait_until([&] { return listener.accepts(0) >= 5; }));
  EXPECT_TRUE(find("open").has_value());
  EXPECT_EQ(stats().probes_failed, 0u);
  EXPECT_GE(stats().probes_passed, 5u);
  ASSERT_TRUE(wait_until([&] {
    const auto found = find("open");
    return found && found->last_check_at.has_value();
  }));
}

TEST_F(HealthCheckerTest, TtlCheckWithHeartbeatsStaysAndWithoutIsRemovedAfterThreeDeadlines) {
  start(fast_options());
  const auto registered = std::chrono::steady_clock::now();
  add(instance("beating", 8080, store::CheckType::ttl));
  add(instance("silent", 8081, store::CheckType::ttl));

  // Heartbeats through the writer, whose commits reach the checker (as in main.cpp).
  struct Heartbeats {
    std::atomic<bool> beating{true};
    std::thread thread;
    void stop() {
      beating = false;
      if (thread.joinable()) thread.join();
    }
    ~Heartbeats() { stop(); }
  } heartbeats;
  heartbeats.thread = std::thread([&] {
    while (heartbeats.beating) {
      EXPECT_NE(submit(store::Heartbeat{"orders", "beating", std::nullopt}).outcome,
                store::Outcome::failed);
      std::this_thread::sleep_for(50ms);
    }
  });
  ASSERT_TRUE(wait_until([&] { return !find("silent").has_value(); }));
  // One ttl of grace, then three missed deadlines (each an interval ± 10 % apart).
  EXPECT_GE(std::chrono::steady_clock::now() - registered, 2 * kInterval + 100ms);
  ASSERT_TRUE(wait_until([&] { return stats().removals == 1; }));
  const auto events = checker_->recent_removals();
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].id, "silent");
  EXPECT_EQ(events[0].failures, 3u);
  EXPECT_EQ(events[0].reason, "no heartbeat within 200ms");

  // Ten more deadlines with heartbeats: still there.
  const auto probes = stats().probes_started;
  ASSERT_TRUE(wait_until([&] { return stats().probes_started >= probes + 10; }));
  EXPECT_TRUE(find("beating").has_value());
  EXPECT_EQ(stats().removals, 1u);

  // Heartbeats stop: removed after three missed deadlines (through a reread of
  // its stamps, which the heartbeats moved).
  heartbeats.stop();
  ASSERT_TRUE(wait_until([&] { return !find("beating").has_value(); }));
  ASSERT_TRUE(wait_until([&] { return stats().removals == 2; }));
  EXPECT_EQ(checker_->recent_removals()[0].id, "beating");
  EXPECT_EQ(removed_by_listener(), (std::vector<std::string>{"silent", "beating"}));
}

TEST_F(HealthCheckerTest, ProbeAgainstServerThatNeverAnswersTimesOut) {
  TestHttpServer server;
  server.set_mode(TestHttpServer::Mode::silent);
  add(instance("mute", server.port(), store::CheckType::http));
  auto options = fast_options();
  options.default_failures = 1;
  start(options);
  const auto started = std::chrono::steady_clock::now();
  ASSERT_TRUE(wait_until([&] { return stats().removals == 1; }));
  // First probe within one interval, then the 150 ms timeout (plus slack).
  EXPECT_LT(std::chrono::steady_clock::now() - started, kInterval + 150ms + 500ms);
  EXPECT_EQ(checker_->recent_removals()[0].reason, "timeout after 150ms");
  EXPECT_GE(server.connections(), 1u);
  EXPECT_EQ(stats().probes_in_flight, 0u);
}

TEST_F(HealthCheckerTest, RedirectIsNotFollowedAndFails) {
  TestHttpServer server;
  server.set_status(302);
  add(instance("moved", server.port(), store::CheckType::http));
  start(fast_options());
  ASSERT_TRUE(wait_until([&] { return stats().removals == 1; }));
  EXPECT_EQ(checker_->recent_removals()[0].reason, "http 302 (redirects are not followed)");
  EXPECT_EQ(server.requests(), 3u);  // the Location was never requested
}

TEST_F(HealthCheckerTest, LargeBodyIsNotReadAndHugeHeadersFail) {
  TestHttpServer big_body;
  big_body.set_body_bytes(16 * 1024 * 1024);
  TestHttpServer big_headers;
  big_headers.set_header_bytes(64 * 1024);
  add(instance("body", big_body.port(), store::CheckType::http));
  add(instance("headers", big_headers.port(), store::CheckType::http));
  start(fast_options());
  ASSERT_TRUE(wait_until([&] { return stats().removals == 1; }));
  const auto events = checker_->recent_removals();
  EXPECT_EQ(events[0].id, "headers");
  EXPECT_EQ(events[0].reason, "response headers exceed 4096 bytes");
  ASSERT_TRUE(wait_until([&] { return big_body.requests() >= 4; }));
  EXPECT_TRUE(find("body").has_value());
  EXPECT_EQ(stats().removals, 1u);
}

TEST_F(HealthCheckerTest, ReportedLoadOfAPassingProbeReachesTheCallback) {
  TestHttpServer server;
  server.set_extra_headers("X-Load: 12.5\r\n");
  TestHttpServer bogus;
  bogus.set_extra_headers("X-Load: -3\r\n");
  add(instance("loaded", server.port(), store::CheckType::http));
  add(instance("bogus", bogus.port(), store::CheckType::http));
  std::mutex mutex;
  std::map<std::string, double> loads;
  auto options = fast_options();
  options.on_reported_load = [&](const std::string& service, const std::string& id, double load) {
    std::lock_guard lock(mutex);
    EXPECT_EQ(service, "orders");
    loads[id] = load;
  };
  start(options);
  ASSERT_TRUE(wait_until([&] {
    std::lock_guard lock(mutex);
    return loads.count("loaded") == 1;
  }));
  ASSERT_TRUE(wait_until([&] { return bogus.requests() >= 2; }));
  std::lock_guard lock(mutex);
  EXPECT_EQ(loads["loaded"], 12.5);
  EXPECT_EQ(loads.count("bogus"), 0u);
}

TEST_F(HealthCheckerTest, ProbesOnlyTheRegisteredAddressWhateverTheCheckPort) {
  // Two servers on one port, different loopback addresses: the instance lives on
  // 127.0.0.2; its check names a port only.
  TestHttpServer target("127.0.0.2");
  TestHttpServer other("127.0.0.1", target.port());
  auto registration = instance("pinned", 9, store::CheckType::http, "127.0.0.2");
  registration.check.port = target.port();
  add(registration);
  start(fast_options());
  ASSERT_TRUE(wait_until([&] { return target.requests() >= 3; }));
  EXPECT_EQ(other.connections(), 0u);
  for (const auto& local : target.local_addresses()) EXPECT_EQ(local, "127.0.0.2");
  const auto request = target.last_request();
  ASSERT_TRUE(request.has_value());
  EXPECT_NE(request->find("\r\nHost: 127.0.0.2:" + std::to_string(target.port()) + "\r\n"),
            std::string::npos);
  EXPECT_TRUE(find("pinned").has_value());
}

TEST_F(HealthCheckerTest, ThousandListeningSocketsAreAllProbedWithinOneInterval) {
  constexpr std::size_t kCount = 1000;
  constexpr auto kLongInterval = 1000ms;
  ListenerFarm farm(kCount);
  std::vector<store::Mutation> batch;
  for (std::size_t i = 0; i < kCount; ++i) {
    auto registration = instance("i" + std::to_string(i), farm.port(i),
                                 i % 2 ? store::CheckType::http : store::CheckType::tcp);
    batch.push_back(store::Upsert{registration});
  }
  for (const auto& result : store_->apply(batch, store::Clock::now())) {
    ASSERT_EQ(result.outcome, store::Outcome::created);
  }
  auto options = fast_options();
  options.default_interval = kLongInterval;
  const auto started = std::chrono::steady_clock::now();
  start(options);
  const bool all = wait_until(
      [&] {
        for (std::size_t i = 0; i < kCount; ++i) {
          if (farm.accepts(i) == 0) return false;
        }
        return true;
      },
      kLongInterval + 500ms);
  ASSERT_TRUE(all) << "probed within one interval: " << stats().probes_started;
  // Spread over the interval, never all at once.
  auto first = std::chrono::steady_clock::time_point::max();
  auto last = std::chrono::steady_clock::time_point::min();
  for (std::size_t i = 0; i < kCount; ++i) {
    first = std::min(first, *farm.first_accept(i));
    last = std::max(last, *farm.first_accept(i));
  }
  EXPECT_GT(last - first, kLongInterval / 2);
  // The first probes come right after the load, not an interval later. A
  // quarter of the interval leaves room for loading 1000 rows under ASan.
  EXPECT_LT(first - started, kLongInterval / 4);
  EXPECT_EQ(stats().probes_failed, 0u);
  EXPECT_EQ(stats().instances, kCount);
}

TEST_F(HealthCheckerTest, ProtectionThresholdStopsRemovalsWhenMostInstancesFail) {
  ListenerFarm farm(10);
  for (std::size_t i = 0; i < 10; ++i) add(instance("p" + std::to_string(i), farm.port(i)));
  auto options = fast_options();
  options.protection_threshold = 0.5;
  start(options);
  ASSERT_TRUE(wait_until([&] { return stats().probes_passed >= 10; }));
  for (std::size_t i = 0; i < 8; ++i) farm.close(i);
  ASSERT_TRUE(wait_until([&] { return stats().protection_active; }));
  // Every down instance reaches its threshold and is held back.
  ASSERT_TRUE(wait_until([&] { return stats().removals_suppressed == 8; }));
  EXPECT_EQ(stats().removals, 0u);
  EXPECT_EQ(store_->read_service("orders").instances.size(), 10u);
  EXPECT_EQ(stats().failing, 8u);
  EXPECT_TRUE(removed_by_listener().empty());
}

TEST_F(HealthCheckerTest, WithoutProtectionFailingInstancesAreRemoved) {
  ListenerFarm farm(10);
  for (std::size_t i = 0; i < 10; ++i) add(instance("p" + std::to_string(i), farm.port(i)));
  start(fast_options());
  ASSERT_TRUE(wait_until([&] { return stats().probes_passed >= 10; }));
  for (std::size_t i = 0; i < 8; ++i) farm.close(i);
  ASSERT_TRUE(wait_until([&] { return stats().removals == 8; }));
  EXPECT_FALSE(stats().protection_active);
  EXPECT_EQ(stats().removals_suppressed, 0u);
  const auto left = store_->read_service("orders").instances;
  ASSERT_EQ(left.size(), 2u);
  EXPECT_EQ(left[0].id(), "p8");
  EXPECT_EQ(left[1].id(), "p9");
}

TEST_F(HealthCheckerTest, RemovalHistoryIsBoundedAndNewestFirst) {
  for (int i = 0; i < 5; ++i) add(instance("gone" + std::to_string(i), test_support::free_port()));
  auto options = fast_options();
  options.max_events = 3;
  start(options);
  ASSERT_TRUE(wait_until([&] { return stats().removals == 5; }));
  const auto events = checker_->recent_removals();
  ASSERT_EQ(events.size(), 3u);
  const auto order = removed_by_listener();  // commit order
  ASSERT_EQ(order.size(), 5u);
  EXPECT_EQ(events[0].id, order[4]);
  EXPECT_EQ(events[1].id, order[3]);
  EXPECT_EQ(events[2].id, order[2]);
  EXPECT_GE(events[0].at, events[1].at);
  EXPECT_GE(events[1].at, events[2].at);
}

TEST_F(HealthCheckerTest, StopDuringInFlightProbesRemovesNothing) {
  TestHttpServer server;
  server.set_mode(TestHttpServer::Mode::silent);
  for (int i = 0; i < 20; ++i) {
    add(instance("s" + std::to_string(i), server.port(), store::CheckType::http));
  }
  auto options = fast_options();
  options.default_failures = 1;  // any completion counted as a failure would remove
  options.default_interval = 2000ms;
  options.default_timeout = 1500ms;
  start(options);
  ASSERT_TRUE(wait_until([&] { return stats().probes_in_flight >= 3; }));
  checker_->stop();
  ASSERT_TRUE(wait_until([&] { return stats().probes_in_flight == 0; }, 1000ms));
  EXPECT_EQ(stats().probes_failed, 0u);
  // Past every timeout: still nothing removed and nothing probed.
  const auto started = stats().probes_started;
  std::this_thread::sleep_for(1700ms);
  EXPECT_EQ(stats().removals, 0u);
  EXPECT_EQ(stats().probes_started, started);
  EXPECT_EQ(store_->read_service("orders").instances.size(), 20u);
  EXPECT_TRUE(removed_by_listener().empty());
}

TEST_F(HealthCheckerTest, ConcurrencyCapQueuesProbesWithoutDroppingThem) {
  TestHttpServer server;
  server.set_mode(TestHttpServer::Mode::silent);
  for (int i = 0; i < 12; ++i) {
    add(instance("q" + std::to_string(i), server.port(), store::CheckType::http));
  }
  auto options = fast_options();
  options.max_concurrent_probes = 2;
  options.default_timeout = 100ms;
  options.default_failures = 100;  // keep them all
  start(options);
  std::size_t most_in_flight = 0;
  bool saw_queue = false;
  ASSERT_TRUE(wait_until([&] {
    const auto now = stats();
    most_in_flight = std::max(most_in_flight, now.probes_in_flight);
    saw_queue = saw_queue || now.probes_queued > 0;
    // Every instance probed at least once: its check time reached the database.
    for (const auto& found : store_->read_service("orders").instances) {
      if (!found.last_check_at) return false;
    }
    return true;
  }));
  EXPECT_LE(most_in_flight, 2u);
  EXPECT_TRUE(saw_queue);
  EXPECT_GT(stats().cap_hits, 0u);
}

TEST_F(HealthCheckerTest, DeregisteredInstanceIsNeverProbedAgain) {
  ListenerFarm farm(1);
  start(fast_options());
  add(instance("leaving", farm.port(0)));  // followed through the commit listener
  ASSERT_TRUE(wait_until([&] { return farm.accepts(0) >= 2; }));
  ASSERT_EQ(submit(store::Deregister{"orders", "leaving"}).outcome, store::Outcome::removed);
  ASSERT_TRUE(wait_until([&] { return stats().instances == 0; }));
  const auto accepts = farm.accepts(0);
  std::this_thread::sleep_for(3 * kInterval);
  EXPECT_LE(farm.accepts(0), accepts + 1);  // at most a probe already in flight
  EXPECT_EQ(stats().removals, 0u);
}

TEST_F(HealthCheckerTest, ResyncFollowsAnotherDaemonSharingTheDatabase) {
  ListenerFarm farm(2);
  add(instance("mine", farm.port(0)));
  auto options = fast_options();
  options.resync_period = 200ms;
  start(options);
  ASSERT_TRUE(wait_until([&] { return stats().instances == 1; }));
  // Another daemon writes to the same file: no commit reaches this checker.
  store::SqliteStore other({dir_.file("discoveryd.db"), false});
  std::vector<store::Mutation> changes{store::Upsert{instance("theirs", farm.port(1))},
                                       store::Deregister{"orders", "mine"}};
  other.apply(changes, store::Clock::now());
  ASSERT_TRUE(wait_until([&] { return farm.accepts(1) >= 1; }));
  ASSERT_TRUE(wait_until([&] { return stats().instances == 1 && stats().resyncs >= 1; }));
  const auto accepts = farm.accepts(0);
  std::this_thread::sleep_for(3 * kInterval);
  EXPECT_LE(farm.accepts(0), accepts + 1);
}

}  // namespace
