// Load balancing over real DNS and HTTP against the real daemon: which replica
// comes first in A answers (raw UDP queries), the A-record cap, and
// GET /v1/resolve for every strategy.
#include <gtest/gtest.h>
#include <ldns/ldns.h>

#include <map>

#include "tests/dns/test_support.h"
#include "tests/health/test_servers.h"
#include "tests/support/http_client.h"
#include "tests/support/process.h"

namespace {

using nlohmann::json;
using test_support::Daemon;
using test_support::HttpClient;
using test_support::wait_until;

class LbDaemonTest : public ::testing::Test {
 protected:
  void start(std::vector<std::string> extra_args = {}) {
    Daemon::Options options;
    options.extra_args = std::move(extra_args);
    daemon = std::make_unique<Daemon>(dir, std::move(options));
    ASSERT_TRUE(daemon->start()) << daemon->log();
    http = HttpClient(daemon->http_port());
  }
  void TearDown() override {
    if (HasFailure() && daemon) {
      std::cerr << "---- daemon log ----\n" << daemon->log().substr(0, 20000);
    }
  }
  // A replica with a TTL check of an hour: never probed, never removed by the test.
  int put(const std::string& service, const std::string& id, const std::string& address,
          json extra = json::object()) {
    json body = {{"address", address}, {"port", 8080}, {"check", {{"type", "ttl"}, {"ttl", "1h"}}}};
    body.update(extra);
    return http.put("/v1/services/" + service + "/instances/" + id, body).status;
  }
  int heartbeat(const std::string& service, const std::string& id, double load) {
    return http.put("/v1/services/" + service + "/instances/" + id + "/heartbeat", {{"load", load}})
        .status;
  }
  // The A records of one UDP answer, in answer order. Always the same query ID:
  // the order must not depend on it (it used to rotate with the ID).
  std::vector<std::string> addresses(const std::string& service) {
    const auto wire = dns::testing::make_query(
        {.name = service + ".service.discovery.", .type = LDNS_RR_TYPE_A, .id = 0x4242});
    const dns::testing::Response response(
        dns::testing::udp_exchange(daemon->dns_port(), wire).value_or(dns::testing::Bytes{}));
    std::vector<std::string> result;
    if (!response.parsed()) return result;
    const ldns_rr_list* answer = ldns_pkt_answer(response.packet());
    for (std::size_t i = 0; i < ldns_rr_list_rr_count(answer); ++i) {
      char* text = ldns_rdf2str(ldns_rr_rdf(ldns_rr_list_rr(answer, i), 0));
      result.emplace_back(text);
      free(text);
    }
    return result;
  }
  // The target of the first SRV record (names the instance even when all
  // replicas share one address), "" when there is none.
  std::string first_srv_target(const std::string& service) {
    const auto wire = dns::testing::make_query(
        {.name = service + ".service.discovery.", .type = LDNS_RR_TYPE_SRV, .id = 0x4242});
    const dns::testing::Response response(
        dns::testing::udp_exchange(daemon->dns_port(), wire).value_or(dns::testing::Bytes{}));
    if (!response.parsed() || response.answer_count() == 0) return "";
    char* text =
        ldns_rdf2str(ldns_rr_rdf(ldns_rr_list_rr(ldns_pkt_answer(response.packet()), 0), 3));
    std::string target(text);
    free(text);
    return target;
  }
  // How often each address came first over `queries` queries.
  std::map<std::string, int> first_positions(const std::string& service, int queries) {
    std::map<std::string, int> counts;
    for (int i = 0; i < queries; ++i) {
      const auto answer = addresses(service);
      counts[answer.empty() ? "" : answer.front()]++;
    }
    return counts;
  }
  std::string resolve(const std::string& target) {
    const auto result = http.get("/v1/resolve/" + target);
    if (result.status != 200) return "status " + std::to_string(result.status);
    return result.json().value("id", std::string());
  }

  test_support::TempDir dir;
  std::unique_ptr<Daemon> daemon;
  HttpClient http{0};
};

TEST_F(LbDaemonTest, RoundRobinPutsEachOfThreeReplicasFirstEquallyOften) {
  start();
  ASSERT_EQ(put("web", "a", "127.0.0.1"), 201);  // no "lb": the default, round_robin
  ASSERT_EQ(put("web", "b", "127.0.0.2"), 201);
  ASSERT_EQ(put("web", "c", "127.0.0.3"), 201);
  const auto counts = first_positions("web", 3000);
  ASSERT_EQ(counts.size(), 3u) << "an empty answer or a fourth address";
  for (const auto& [address, count] : counts) {
    EXPECT_NEAR(count, 1000, 50) << address;  // within +-5% of an equal share
  }
}

TEST_F(LbDaemonTest, WeightedOneToThreeGivesAboutAQuarterAndThreeQuarters) {
  start();
  ASSERT_EQ(put("pay", "light", "127.0.1.1", {{"weight", 1}, {"lb", "weighted"}}), 201);
  ASSERT_EQ(put("pay", "heavy", "127.0.1.2", {{"weight", 3}, {"lb", "weighted"}}), 201);
  const auto counts = first_positions("pay", 3000);
  // Binomial(3000, 0.25): standard deviation 0.79 percentage points, so +-4
  // points is about 5 standard deviations (a false failure about once in 2
  // million runs), while a round-robin or unweighted order (50%) fails clearly.
  EXPECT_NEAR(counts.at("127.0.1.1") / 3000.0, 0.25, 0.04);
  EXPECT_NEAR(counts.at("127.0.1.2") / 3000.0, 0.75, 0.04);
}

TEST_F(LbDaemonTest, LeastLoadedComesFirstAndFollowsANewHeartbeatAtOnce) {
  start();
  const json lb = {{"lb", "least_loaded"}};
  ASSERT_EQ(put("api", "a", "127.0.2.1", lb), 201);
  ASSERT_EQ(put("api", "b", "127.0.2.2", lb), 201);
  ASSERT_EQ(put("api", "c", "127.0.2.3", lb), 201);  // never reports: counts as average
  ASSERT_EQ(heartbeat("api", "a", 5.0), 200);
  ASSERT_EQ(heartbeat("api", "b", 1.0), 200);
  for (int i = 0; i < 100; ++i) {
    ASSERT_EQ(addresses("api"), (std::vector<std::string>{"127.0.2.2", "127.0.2.3", "127.0.2.1"}));
  }
  ASSERT_EQ(heartbeat("api", "a", 0.5), 200);
  // The write is acknowledged after the cache invalidation: the very next query
  // sees the new load.
  for (int i = 0; i < 100; ++i) {
    ASSERT_EQ(addresses("api").front(), "127.0.2.1");
  }
  EXPECT_EQ(resolve("api"), "a");
}

TEST_F(LbDaemonTest, TheCapKeepsFewRecordsButEveryReplicaStillComesFirst) {
  start({"--max-answer-records", "2"});
  for (int i = 1; i <= 5; ++i) {
    ASSERT_EQ(put("many", "i" + std::to_string(i), "127.0.3." + std::to_string(i)), 201);
  }
  std::map<std::string, int> first;
  for (int i = 0; i < 500; ++i) {
    const auto answer = addresses("many");
    ASSERT_EQ(answer.size(), 2u);
    ++first[answer.front()];
  }
  ASSERT_EQ(first.size(), 5u);
  for (const auto& [address, count] : first) EXPECT_EQ(count, 100) << address;
}

TEST_F(LbDaemonTest, ResolvePicksByEveryStrategy) {
  start();
  ASSERT_EQ(put("svc", "a", "127.0.4.1", {{"weight", 1}, {"tags", {"blue"}}}), 201);
  ASSERT_EQ(put("svc", "b", "127.0.4.2", {{"weight", 3}}), 201);
  ASSERT_EQ(put("svc", "c", "127.0.4.3", {{"weight", 1}}), 201);
  const auto picked = http.get("/v1/resolve/svc").json();
  EXPECT_TRUE(picked.contains("address") && picked.contains("port") && picked.contains("id"))
      << picked.dump();
  EXPECT_EQ(picked["port"], 8080);

  std::map<std::string, int> round_robin;
  for (int i = 0; i < 30; ++i) ++round_robin[resolve("svc")];
  EXPECT_EQ(round_robin, (std::map<std::string, int>{{"a", 10}, {"b", 10}, {"c", 10}}));

  std::map<std::string, int> weighted;
  for (int i = 0; i < 600; ++i) ++weighted[resolve("svc?strategy=weighted")];
  // Expected 60% for b (3 of 5); sd 2 points at 600 picks.
  EXPECT_NEAR(weighted["b"] / 600.0, 0.6, 0.1);

  std::map<std::string, int> random;
  for (int i = 0; i < 600; ++i) ++random[resolve("svc?strategy=random")];
  for (const auto& id : {"a", "b", "c"}) EXPECT_NEAR(random[id] / 600.0, 1.0 / 3, 0.1) << id;

  ASSERT_EQ(heartbeat("svc", "c", 0.1), 200);
  ASSERT_EQ(heartbeat("svc", "a", 0.7), 200);
  for (int i = 0; i < 20; ++i) EXPECT_EQ(resolve("svc?strategy=least_loaded"), "c");

  for (int i = 0; i < 5; ++i) EXPECT_EQ(resolve("svc?tag=blue&strategy=random"), "a");
  EXPECT_EQ(resolve("svc?tag=green"), "status 404");

  const auto bad = http.get("/v1/resolve/svc?strategy=fastest");
  EXPECT_EQ(bad.status, 400);
  EXPECT_EQ(bad.json()["field"], "strategy");
  EXPECT_EQ(http.get("/v1/resolve/svc?tag=no_label!").json()["field"], "tag");
  const auto invalid = http.put("/v1/services/svc/instances/d",
                                {{"address", "127.0.4.4"}, {"port", 80}, {"lb", "fastest"}});
  EXPECT_EQ(invalid.status, 400);
  EXPECT_EQ(invalid.json()["field"], "lb");

  // Replicas that disagree: the last registration wins, with a warning.
  ASSERT_EQ(put("svc", "d", "127.0.4.4", {{"lb", "least_loaded"}}), 201);
  EXPECT_EQ(http.get("/v1/services/svc").json()["lb"], "least_loaded");
  ASSERT_EQ(put("svc", "e", "127.0.4.5", {{"lb", "random"}}), 201);
  EXPECT_EQ(http.get("/v1/services/svc").json()["lb"], "random");
  EXPECT_TRUE(wait_until([&] {
    return daemon->log().find("strategy changed service=svc from=least_loaded to=random") !=
           std::string::npos;
  }));
}

TEST_F(LbDaemonTest, ARemovedReplicaNeverComesFirstAndNoneLeftIs404) {
  start();
  ASSERT_EQ(put("gone", "a", "127.0.5.1", {{"lb", "least_loaded"}}), 201);
  ASSERT_EQ(put("gone", "b", "127.0.5.2"), 201);
  ASSERT_EQ(put("gone", "c", "127.0.5.3"), 201);
  ASSERT_EQ(heartbeat("gone", "a", 0.0), 200);  // the favourite of least_loaded
  ASSERT_EQ(heartbeat("gone", "b", 2.0), 200);  // c counts as the average, 1
  EXPECT_EQ(resolve("gone"), "a");
  ASSERT_EQ(http.del("/v1/services/gone/instances/a").status, 200);
  for (int i = 0; i < 300; ++i) {
    const auto answer = addresses("gone");
    ASSERT_EQ(answer.size(), 2u);
    ASSERT_NE(answer.front(), "127.0.5.1");
  }
  for (const auto& strategy : {"round_robin", "weighted", "least_loaded", "random"}) {
    for (int i = 0; i < 20; ++i) {
      ASSERT_NE(resolve(std::string("gone?strategy=") + strategy), "a") << strategy;
    }
  }
  ASSERT_EQ(http.del("/v1/services/gone/instances/b").status, 200);
  ASSERT_EQ(http.del("/v1/services/gone/instances/c").status, 200);
  const auto none = http.get("/v1/resolve/gone");
  EXPECT_EQ(none.status, 404);
  EXPECT_EQ(none.json()["field"], "service");
}

TEST_F(LbDaemonTest, HealthChecksFeedLeastLoadedAndARemovedReplicaNeverComesFirst) {
  start();
  health_test::TestHttpServer a_server;
  health_test::TestHttpServer b_server;
  a_server.set_status(200);
  b_server.set_status(200);
  a_server.set_extra_headers("X-Load: 9\r\n");
  b_server.set_extra_headers("X-Load: 1\r\n");
  const auto checked = [](std::uint16_t port) {
    return json{{"address", "127.0.0.1"},
                {"port", port},
                {"lb", "least_loaded"},
                {"check",
                 {{"type", "http"},
                  {"path", "/health"},
                  {"interval", "200ms"},
                  {"timeout", "100ms"},
                  {"failures", 2}}}};
  };
  ASSERT_EQ(http.put("/v1/services/hc/instances/a", checked(a_server.port())).status, 201);
  ASSERT_EQ(http.put("/v1/services/hc/instances/b", checked(b_server.port())).status, 201);
  // The X-Load header of a passing probe is the reported load (main.cpp wires
  // the checker's callback to a ReportLoad write).
  const auto loads_are = [&](double a, double b) {
    const auto instances = http.get("/v1/services/hc").json()["instances"];
    return instances.size() == 2 && instances[0]["load"] == a && instances[1]["load"] == b;
  };
  ASSERT_TRUE(wait_until([&] { return loads_are(9, 1); }));
  for (int i = 0; i < 20; ++i) {
    ASSERT_EQ(resolve("hc"), "b");
    ASSERT_EQ(first_srv_target("hc"), "b.hc.instance.discovery.");
  }
  a_server.set_extra_headers("X-Load: 0.5\r\n");
  ASSERT_TRUE(wait_until([&] { return loads_are(0.5, 1); }));
  for (int i = 0; i < 20; ++i) {
    ASSERT_EQ(resolve("hc"), "a");
    ASSERT_EQ(first_srv_target("hc"), "a.hc.instance.discovery.");
  }
  // a fails its checks and is removed: it never comes first again.
  a_server.set_status(503);
  ASSERT_TRUE(
      wait_until([&] { return http.get("/v1/services/hc").json()["instances"].size() == 1; }));
  for (int i = 0; i < 300; ++i) ASSERT_EQ(first_srv_target("hc"), "b.hc.instance.discovery.");
  for (const auto& strategy : {"round_robin", "weighted", "least_loaded", "random"}) {
    ASSERT_EQ(resolve(std::string("hc?strategy=") + strategy), "b") << strategy;
  }
}

}  // namespace
