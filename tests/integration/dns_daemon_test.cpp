// The real daemon answering DNS for instances registered over HTTP: dig over UDP
// and TCP, raw packets, and the never-stale promise under churn and Redis faults.
#include <gtest/gtest.h>

#include <atomic>
#include <mutex>
#include <sstream>
#include <thread>

#include "tests/dns/test_support.h"
#include "tests/support/http_client.h"
#include "tests/support/process.h"
#include "tests/support/redis_server.h"

namespace {

using namespace std::chrono_literals;
using nlohmann::json;
using test_support::Daemon;
using test_support::HttpClient;
using test_support::wait_until;

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    if (!line.empty() && line[0] != ';') lines.push_back(line);
  }
  std::sort(lines.begin(), lines.end());
  return lines;
}

class DnsDaemonTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(daemon.start()) << daemon.log(); }
  void TearDown() override {
    if (HasFailure()) std::cerr << "---- daemon log ----\n" << daemon.log().substr(0, 20000);
  }
  std::string dig(const std::string& arguments) {
    return dns::testing::run_command("dig @127.0.0.1 -p " + std::to_string(daemon.dns_port()) +
                                     " " + arguments + " 2>&1")
        .value_or("");
  }
  int put(const std::string& service, const std::string& id, const json& body) {
    return http.put("/v1/services/" + service + "/instances/" + id, body).status;
  }
  dns::testing::Response query(const std::string& name, std::uint16_t type, bool tcp = false) {
    const auto wire = dns::testing::make_query({.name = name, .type = type});
    auto reply = tcp ? dns::testing::tcp_exchange(daemon.dns_port(), wire)
                     : dns::testing::udp_exchange(daemon.dns_port(), wire);
    return dns::testing::Response(reply.value_or(dns::testing::Bytes{}));
  }

  test_support::TempDir dir;
  Daemon daemon{dir};
  HttpClient http{0};
};

TEST_F(DnsDaemonTest, RegisteredInstancesResolveOverUdpAndTcp) {
  http = HttpClient(daemon.http_port());
  ASSERT_EQ(put("order-service", "a1",
                {{"address", "127.1.2.3"}, {"port", 8080}, {"weight", 10}, {"tags", {"v2"}}}),
            201);
  ASSERT_EQ(put("order-service", "a2", {{"address", "::1"}, {"port", 8081}}), 201);

  EXPECT_EQ(lines_of(dig("+short order-service.service.discovery A")),
            std::vector<std::string>{"127.1.2.3"});
  EXPECT_EQ(lines_of(dig("+tcp +short order-service.service.discovery A")),
            std::vector<std::string>{"127.1.2.3"});
  EXPECT_EQ(lines_of(dig("+short order-service.service.discovery AAAA")),
            std::vector<std::string>{"::1"});
  const std::vector<std::string> srv = {"1 1 8081 a2.order-service.instance.discovery.",
                                        "1 10 8080 a1.order-service.instance.discovery."};
  EXPECT_EQ(lines_of(dig("+short _order-service._tcp.service.discovery SRV")), srv);
  EXPECT_EQ(lines_of(dig("+short order-service.service.discovery SRV")), srv);
  // The SRV targets' addresses come as additional data, and resolve on their own.
  const auto full = dig("+noall +additional _order-service._tcp.service.discovery SRV");
  EXPECT_NE(full.find("a1.order-service.instance.discovery. 5 IN A\t127.1.2.3"), std::string::npos)
      << full;
  EXPECT_EQ(lines_of(dig("+short a2.order-service.instance.discovery AAAA")),
            std::vector<std::string>{"::1"});
  // Tags select instances.
  EXPECT_EQ(lines_of(dig("+short v2.order-service.service.discovery A")),
            std::vector<std::string>{"127.1.2.3"});
  EXPECT_TRUE(lines_of(dig("+short v2.order-service.service.discovery AAAA")).empty());

  auto response = query("Order-Service.Service.Discovery.", 1);
  ASSERT_TRUE(response.parsed());
  EXPECT_TRUE(response.aa());
  EXPECT_FALSE(response.ra());
  EXPECT_EQ(response.question_name(), "Order-Service.Service.Discovery.");
  EXPECT_EQ(response.rcode(), LDNS_RCODE_NOERROR);
}

TEST_F(DnsDaemonTest, ADeregisteredInstanceVanishesAtOnce) {
  http = HttpClient(daemon.http_port());
  ASSERT_EQ(put("orders", "a1", {{"address", "127.0.0.1"}, {"port", 80}}), 201);
  ASSERT_EQ(put("orders", "a2", {{"address", "127.0.0.2"}, {"port", 80}}), 201);
  EXPECT_EQ(query("orders.service.discovery.", 1).answer_count(), 2u);
  ASSERT_EQ(http.del("/v1/services/orders/instances/a1").status, 200);
  EXPECT_EQ(lines_of(dig("+short orders.service.discovery A")),
            std::vector<std::string>{"127.0.0.2"});
  ASSERT_EQ(http.del("/v1/services/orders/instances/a2").status, 200);
  auto gone = query("orders.service.discovery.", 1);
  EXPECT_EQ(gone.rcode(), LDNS_RCODE_NXDOMAIN);
  EXPECT_EQ(gone.authority().size(), 1u);  // the SOA, for negative caching
  // And a service registered just after a miss is visible at once.
  ASSERT_EQ(put("orders", "a3", {{"address", "127.0.0.3"}, {"port", 80}}), 201);
  EXPECT_EQ(lines_of(dig("+short orders.service.discovery A")),
            std::vector<std::string>{"127.0.0.3"});
}

TEST_F(DnsDaemonTest, TwoThousandInstancesTruncateOverUdpAndArriveWholeOverTcp) {
  constexpr int kInstances = 2000;
  std::atomic<int> created{0};
  std::vector<std::thread> clients;
  for (int c = 0; c < 8; ++c) {
    clients.emplace_back([&, c] {
      HttpClient client(daemon.http_port());
      for (int i = c; i < kInstances; i += 8) {
        const std::string address =
            "127.2." + std::to_string(i / 250) + "." + std::to_string(i % 250 + 1);
        if (client
                .put("/v1/services/big/instances/i" + std::to_string(i),
                     {{"address", address}, {"port", 9000}})
                .status == 201) {
          ++created;
        }
      }
    });
  }
  for (auto& client : clients) client.join();
  ASSERT_EQ(created, kInstances);

  auto udp = query("big.service.discovery.", 1);
  ASSERT_TRUE(udp.parsed());
  EXPECT_TRUE(udp.tc());
  EXPECT_LT(udp.answer_count(), static_cast<std::size_t>(kInstances));
  auto tcp = query("big.service.discovery.", 1, /*tcp=*/true);
  ASSERT_TRUE(tcp.parsed());
  EXPECT_FALSE(tcp.tc());
  EXPECT_EQ(tcp.answer_count(), static_cast<std::size_t>(kInstances));
  // dig retries over TCP by itself when it sees TC.
  EXPECT_EQ(lines_of(dig("+short big.service.discovery A")).size(),
            static_cast<std::size_t>(kInstances));
}

TEST_F(DnsDaemonTest, GarbageIsSurvivedAndTheNextQueryAnswered) {
  http = HttpClient(daemon.http_port());
  ASSERT_EQ(put("orders", "a1", {{"address", "127.0.0.1"}, {"port", 80}}), 201);
  for (const dns::testing::Bytes& garbage :
       {dns::testing::Bytes{}, dns::testing::Bytes{0x00}, dns::testing::Bytes(12, 0xff),
        dns::testing::Bytes(512, 0x41),
        dns::testing::Bytes{0x12, 0x34, 0x01, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
                            0xc0, 0x0c, 0x00, 0x01}}) {
    dns::testing::udp_exchange(daemon.dns_port(), garbage, 200ms);
  }
  auto response = query("orders.service.discovery.", 1);
  ASSERT_TRUE(response.parsed());
  EXPECT_EQ(response.answer_count(), 1u);
  EXPECT_EQ(lines_of(dig("+short orders.service.discovery A")),
            std::vector<std::string>{"127.0.0.1"});
}

TEST_F(DnsDaemonTest, OutOfZoneIsRefusedAndTheZoneApexAnswers) {
  EXPECT_EQ(query("example.com.", 1).rcode(), LDNS_RCODE_REFUSED);
  auto soa = query("discovery.", LDNS_RR_TYPE_SOA);
  EXPECT_EQ(soa.rcode(), LDNS_RCODE_NOERROR);
  EXPECT_EQ(soa.answer_count(), 1u);
  EXPECT_TRUE(soa.aa());
  auto ent = query("service.discovery.", 1);
  EXPECT_EQ(ent.rcode(), LDNS_RCODE_NOERROR);
  EXPECT_EQ(ent.answer_count(), 0u);
}

// ---- the cache in the path: Redis started per fixture ----

class CachedDaemonTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(redis.start()) << redis.log();
    ASSERT_TRUE(daemon.start()) << daemon.log();
    ASSERT_TRUE(wait_until([&] { return cache_status() == "ok"; })) << daemon.log();
  }
  void TearDown() override {
    if (HasFailure()) std::cerr << "---- daemon log ----\n" << daemon.log().substr(0, 20000);
  }
  std::string cache_status() {
    return HttpClient(daemon.http_port())
        .get("/v1/status")
        .json()["cache"]["status"]
        .get<std::string>();
  }
  // The addresses in the A answer, or nullopt when no answer arrived in time.
  std::optional<std::vector<std::string>> addresses(const std::string& name,
                                                    std::chrono::milliseconds timeout = 2s) {
    return dns::testing::a_record_addresses(daemon.dns_port(), name, timeout);
  }

  test_support::TempDir dir;
  test_support::RedisServer redis;
  Daemon daemon{
      dir, {.db_path = {}, .extra_args = {"--redis-timeout", "20ms"}, .redis_port = redis.port()}};
};

TEST_F(CachedDaemonTest, LookupsGoThroughRedisAndRegistrationsInvalidate) {
  HttpClient http(daemon.http_port());
  ASSERT_EQ(
      http.put("/v1/services/orders/instances/a1", {{"address", "127.0.0.1"}, {"port", 80}}).status,
      201);
  EXPECT_EQ(addresses("orders.service.discovery."), std::vector<std::string>{"127.0.0.1"});
  EXPECT_TRUE(wait_until([&] {
    return redis.run_cli({"EXISTS", "discoveryd:svc:orders"}).find('1') != std::string::npos;
  }));
  ASSERT_EQ(
      http.put("/v1/services/orders/instances/a2", {{"address", "127.0.0.2"}, {"port", 80}}).status,
      201);
  EXPECT_EQ(redis.run_cli({"EXISTS", "discoveryd:svc:orders"}).find('1'), std::string::npos);
  auto both = addresses("orders.service.discovery.");
  ASSERT_TRUE(both);
  EXPECT_EQ(*both, (std::vector<std::string>{"127.0.0.1", "127.0.0.2"}));
  // The HTTP read route uses the same cache.
  EXPECT_EQ(http.get("/v1/services/orders").json()["instances"].size(), 2u);
}

// Many DNS clients query while instances are registered and removed. Every
// removal's acknowledgement time is recorded; no query sent after it may see the
// removed instance.
TEST_F(CachedDaemonTest, NoAnswerAfterARemovalsAcknowledgementContainsTheInstance) {
  using Clock = std::chrono::steady_clock;
  HttpClient http(daemon.http_port());
  ASSERT_EQ(
      http.put("/v1/services/churn/instances/anchor", {{"address", "127.9.0.1"}, {"port", 80}})
          .status,
      201);
  std::mutex mutex;
  std::map<std::string, Clock::time_point> removed_at;  // address -> ack time
  struct Observation {
    Clock::time_point sent;
    std::vector<std::string> addresses;
  };
  std::vector<Observation> observations;
  std::atomic<bool> stop{false};
  std::atomic<int> unanswered{0};
  std::vector<std::thread> clients;
  for (int c = 0; c < 6; ++c) {
    clients.emplace_back([&] {
      std::vector<Observation> mine;
      while (!stop) {
        const auto sent = Clock::now();
        auto answer = addresses("churn.service.discovery.", 1s);
        if (!answer) {
          ++unanswered;
          continue;
        }
        mine.push_back({sent, std::move(*answer)});
      }
      std::lock_guard lock(mutex);
      observations.insert(observations.end(), mine.begin(), mine.end());
    });
  }
  constexpr int kRounds = 60;
  for (int round = 0; round < kRounds; ++round) {
    const std::string id = "c" + std::to_string(round);
    const std::string address = "127.9.1." + std::to_string(round + 1);
    ASSERT_EQ(
        http.put("/v1/services/churn/instances/" + id, {{"address", address}, {"port", 80}}).status,
        201);
    std::this_thread::sleep_for(5ms);  // let queries see it (pacing, not synchronisation)
    ASSERT_EQ(http.del("/v1/services/churn/instances/" + id).status, 200);
    const auto acknowledged = Clock::now();
    std::lock_guard lock(mutex);
    removed_at[address] = acknowledged;
  }
  stop = true;
  for (auto& client : clients) client.join();

  EXPECT_EQ(unanswered, 0);
  ASSERT_GT(observations.size(), 300u);
  std::size_t saw_churned = 0;
  for (const auto& observation : observations) {
    for (const auto& address : observation.addresses) {
      auto removal = removed_at.find(address);
      if (removal == removed_at.end()) continue;
      ++saw_churned;
      EXPECT_LT(observation.sent, removal->second)
          << address << " answered to a query sent after its removal was acknowledged";
    }
  }
  // The test is only meaningful if queries did see churned instances.
  EXPECT_GT(saw_churned, 0u);
  const auto cache = HttpClient(daemon.http_port()).get("/v1/status").json()["cache"];
  EXPECT_GT(cache["invalidations"].get<int>(), 0) << cache.dump();
}

TEST_F(CachedDaemonTest, LookupsAnswerThroughRedisKillPauseAndRestartAndNothingStaleAfter) {
  HttpClient http(daemon.http_port());
  ASSERT_EQ(
      http.put("/v1/services/orders/instances/a1", {{"address", "127.0.0.1"}, {"port", 80}}).status,
      201);
  EXPECT_EQ(addresses("orders.service.discovery."), std::vector<std::string>{"127.0.0.1"});

  const auto expect_fast_answer = [&](const std::vector<std::string>& expected) {
    const auto start = std::chrono::steady_clock::now();
    auto answer = addresses("orders.service.discovery.", 1s);
    EXPECT_LT(std::chrono::steady_clock::now() - start, 500ms);
    ASSERT_TRUE(answer);
    std::sort(answer->begin(), answer->end());
    EXPECT_EQ(*answer, expected);
  };

  redis.pause();
  for (int i = 0; i < 10; ++i) expect_fast_answer({"127.0.0.1"});
  // Writes go on (SQLite is the source of truth) and are visible at once.
  ASSERT_EQ(
      http.put("/v1/services/orders/instances/a2", {{"address", "127.0.0.2"}, {"port", 80}}).status,
      201);
  expect_fast_answer({"127.0.0.1", "127.0.0.2"});
  EXPECT_EQ(cache_status(), "degraded");
  redis.resume();
  ASSERT_TRUE(wait_until([&] { return cache_status() == "ok"; }, 10s));
  expect_fast_answer({"127.0.0.1", "127.0.0.2"});

  redis.kill();
  ASSERT_EQ(http.del("/v1/services/orders/instances/a1").status, 200);
  for (int i = 0; i < 10; ++i) expect_fast_answer({"127.0.0.2"});
  EXPECT_EQ(cache_status(), "degraded");
  ASSERT_TRUE(redis.restart());
  ASSERT_TRUE(wait_until([&] { return cache_status() == "ok"; }, 10s));
  expect_fast_answer({"127.0.0.2"});
  EXPECT_EQ(http.get("/v1/services/orders").json()["instances"].size(), 1u);
}

TEST(CacheStartup, WithoutAReachableRedisTheDaemonStartsServesAndReportsDegraded) {
  test_support::TempDir dir;
  const auto closed_port = test_support::free_port();  // nothing listens there
  Daemon daemon(dir, {.db_path = {}, .extra_args = {}, .redis_port = closed_port});
  ASSERT_TRUE(daemon.start()) << daemon.log();
  HttpClient http(daemon.http_port());
  EXPECT_EQ(http.get("/v1/status").json()["cache"]["status"], "degraded");
  ASSERT_EQ(
      http.put("/v1/services/orders/instances/a1", {{"address", "127.0.0.1"}, {"port", 80}}).status,
      201);
  const auto reply = dns::testing::udp_exchange(
      daemon.dns_port(),
      dns::testing::make_query({.name = "orders.service.discovery.", .type = 1}));
  ASSERT_TRUE(reply);
  EXPECT_EQ(dns::testing::Response(*reply).answer_count(), 1u);
  EXPECT_EQ(http.get("/v1/services/orders").status, 200);
}

}  // namespace
