// The health checker inside the real daemon: an instance whose HTTP check starts
// failing disappears from DNS, the HTTP API, the database and Redis after exactly
// `failures` failed probes, and is listed at GET /v1/events.
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

}  // namespace
