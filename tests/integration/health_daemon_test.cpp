// The health checker inside the real daemon: an instance whose HTTP check starts
// failing disappears from DNS, the HTTP API, the database and Redis after exactly
// `failures` failed probes, and is listed at GET /v1/events; identical
// re-registrations and heartbeats are proofs of life that reset the count.
#include <SQLiteCpp/SQLiteCpp.h>
#include <gtest/gtest.h>

#include "tests/dns/test_support.h"
#include "tests/health/test_servers.h"
#include "tests/support/http_client.h"
#include "tests/support/process.h"
#include "tests/support/redis_server.h"

namespace {

using namespace std::chrono_literals;
using nlohmann::json;
using test_support::Daemon;
using test_support::HttpClient;
using test_support::wait_until;

class HealthDaemonTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(redis.start()) << redis.log();
    ASSERT_TRUE(daemon.start()) << daemon.log();
    ASSERT_TRUE(wait_until([&] { return status()["cache"]["status"] == "ok"; }));
  }
  void TearDown() override {
    if (HasFailure()) std::cerr << "---- daemon log ----\n" << daemon.log().substr(0, 20000);
  }
  json status() { return HttpClient(daemon.http_port()).get("/v1/status").json(); }
  std::size_t answers(const std::string& name) {
    const auto reply = dns::testing::udp_exchange(
        daemon.dns_port(), dns::testing::make_query({.name = name, .type = 1}));
    return reply ? dns::testing::Response(*reply).answer_count() : 0;
  }
  int register_http_checked(const std::string& id, std::uint16_t port) {
    return HttpClient(daemon.http_port())
        .put("/v1/services/web/instances/" + id, {{"address", "127.0.0.1"},
                                                  {"port", port},
                                                  {"check",
                                                   {{"type", "http"},
                                                    {"path", "/health"},
                                                    {"interval", "200ms"},
                                                    {"timeout", "100ms"},
                                                    {"failures", 3}}}})
        .status;
  }

  test_support::TempDir dir;
  test_support::RedisServer redis;
  Daemon daemon{
      dir, {.db_path = {}, .extra_args = {"--redis-timeout", "20ms"}, .redis_port = redis.port()}};
};

TEST_F(HealthDaemonTest, AnInstanceFailingThreeProbesVanishesEverywhere) {
  health_test::TestHttpServer healthy;
  health_test::TestHttpServer dying;
  healthy.set_status(200);
  dying.set_status(200);
  ASSERT_EQ(register_http_checked("ok", healthy.port()), 201);
  ASSERT_EQ(register_http_checked("dying", dying.port()), 201);
  ASSERT_TRUE(wait_until([&] { return dying.responses(200) >= 2; }));
  EXPECT_EQ(answers("web.service.discovery."), 2u);
  EXPECT_TRUE(wait_until([&] {
    return redis.run_cli({"EXISTS", "discoveryd:svc:web"}).find('1') != std::string::npos;
  }));

  dying.set_status(503);
  ASSERT_TRUE(wait_until([&] { return answers("web.service.discovery.") == 1; }, 10s));
  // Exactly three failed probes: not removed after two, not probed after three.
  EXPECT_EQ(dying.responses(503), 3u);
  EXPECT_EQ(answers("dying.web.instance.discovery."), 0u);
  const auto service = HttpClient(daemon.http_port()).get("/v1/services/web").json();
  ASSERT_EQ(service["instances"].size(), 1u);
  EXPECT_EQ(service["instances"][0]["id"], "ok");
  // The removal invalidated Redis's entry (a later lookup may have refilled it
  // with the new state, never the old one).
  const auto cached = redis.run_cli({"GET", "discoveryd:svc:web"});
  EXPECT_EQ(cached.find("dying"), std::string::npos) << cached;
  const auto events = HttpClient(daemon.http_port()).get("/v1/events").json()["events"];
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0]["id"], "dying");
  EXPECT_EQ(events[0]["failures"], 3);
  EXPECT_NE(events[0]["reason"].get<std::string>().find("503"), std::string::npos);
  const auto log = daemon.log();
  EXPECT_NE(log.find("id=dying"), std::string::npos);
  std::this_thread::sleep_for(600ms);  // three more intervals: nobody probes a removed instance
  EXPECT_EQ(dying.responses(503), 3u);
  EXPECT_EQ(status()["health"]["removals"], 1);
}

TEST_F(HealthDaemonTest, ARemovalWhileRedisIsDownLeavesNoStaleAnswerWhenItReturns) {
  health_test::TestHttpServer dying;
  dying.set_status(200);
  ASSERT_EQ(register_http_checked("dying", dying.port()), 201);
  ASSERT_TRUE(wait_until([&] { return dying.responses(200) >= 1; }));
  EXPECT_EQ(answers("web.service.discovery."), 1u);
  ASSERT_TRUE(wait_until([&] {
    return redis.run_cli({"EXISTS", "discoveryd:svc:web"}).find('1') != std::string::npos;
  }));
  redis.pause();  // keeps its data, answers nothing
  dying.set_status(500);
  ASSERT_TRUE(wait_until([&] { return answers("web.service.discovery.") == 0; }, 10s));
  EXPECT_EQ(HttpClient(daemon.http_port()).get("/v1/services/web").status, 404);
  redis.resume();
  ASSERT_TRUE(wait_until([&] { return status()["cache"]["status"] == "ok"; }, 10s));
  for (int i = 0; i < 20; ++i) EXPECT_EQ(answers("web.service.discovery."), 0u);
  EXPECT_EQ(redis.run_cli({"GET", "discoveryd:svc:web"}).find("dying"), std::string::npos);
}

// A client that keeps re-registering identically proves it is alive: its instance
// stays while its check fails (nothing listens on the port), each re-registration
// answered 200 (a 201 would mean it had been removed in between), and it goes
// three failures after the client stops.
TEST_F(HealthDaemonTest, IdenticalReRegistrationsKeepAFailingInstanceUntilTheyStop) {
  const json body = {{"address", "127.0.0.1"},
                     {"port", test_support::free_port()},  // nothing listens there
                     {"check", {{"type", "tcp"}, {"interval", "300ms"}, {"timeout", "100ms"}}}};
  HttpClient client(daemon.http_port());
  ASSERT_EQ(client.put("/v1/services/web/instances/renewing", body).status, 201);
  const auto failed_before = status()["health"]["probes_failed"].get<int>();
  // About ten intervals of re-registrations, one every 50 ms: at most one failure
  // can land between two of them.
  const auto until = std::chrono::steady_clock::now() + 3s;
  while (std::chrono::steady_clock::now() < until) {
    ASSERT_EQ(client.put("/v1/services/web/instances/renewing", body).status, 200);
    std::this_thread::sleep_for(50ms);  // the client's pace, not a wait for a state
  }
  const auto health = status()["health"];
  EXPECT_GE(health["probes_failed"].get<int>() - failed_before, 6);
  EXPECT_EQ(health["removals"], 0);
  EXPECT_EQ(client.get("/v1/services/web").status, 200);

  // The client stops: three failures later the instance is gone.
  const auto stopped = std::chrono::steady_clock::now();
  ASSERT_TRUE(wait_until([&] { return client.get("/v1/services/web").status == 404; }, 5s));
  // Three failures after the last re-registration take at least two intervals
  // (less jitter), minus the ~60 ms since it.
  EXPECT_GE(std::chrono::steady_clock::now() - stopped, 400ms);
  const auto events = client.get("/v1/events").json()["events"];
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0]["id"], "renewing");
  EXPECT_EQ(events[0]["failures"], 3);
}

// A heartbeat after failed checks clears the count for good: the record of the
// failure before it (pending for its one-second batch, then flushed at shutdown)
// does not write it back, so the restarted daemon does not start from it.
TEST_F(HealthDaemonTest, AHeartbeatAfterFailuresLeavesNoFailuresForTheRestartedDaemon) {
  const std::uint16_t port = test_support::free_port();  // nothing listens yet
  const json body = {
      {"address", "127.0.0.1"},
      {"port", port},
      {"check", {{"type", "tcp"}, {"interval", "1500ms"}, {"timeout", "100ms"}, {"failures", 10}}}};
  HttpClient client(daemon.http_port());
  ASSERT_EQ(client.put("/v1/services/web/instances/beating", body).status, 201);
  // The heartbeat follows the second failure by a few milliseconds: its record is
  // almost always still waiting for the batch (which the fix makes irrelevant).
  ASSERT_TRUE(wait_until([&] { return status()["health"]["probes_failed"] >= 2; }));
  ASSERT_EQ(client.put("/v1/services/web/instances/beating/heartbeat", json::object()).status, 200);
  daemon.stop();  // flushes the checker's pending records before the writer stops
  {
    SQLite::Database raw(daemon.db_path());
    SQLite::Statement row(raw, "SELECT consecutive_failures FROM instances WHERE id = 'beating'");
    ASSERT_TRUE(row.executeStep());
    EXPECT_EQ(row.getColumn(0).getInt(), 0);
  }
  // From now on the check passes: any count the API shows came from the file.
  health_test::TestHttpServer alive("127.0.0.1", port);
  ASSERT_TRUE(daemon.start()) << daemon.log();
  const auto service = HttpClient(daemon.http_port()).get("/v1/services/web").json();
  ASSERT_EQ(service["instances"].size(), 1u);
  EXPECT_EQ(service["instances"][0]["consecutive_failures"], 0);
  EXPECT_EQ(status()["health"]["failing"], 0);
}

}  // namespace
