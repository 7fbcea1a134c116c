// The real daemon (with a real Redis) under queries for random names that were
// never registered: every one NXDOMAIN, and none of them reaches Redis or
// SQLite or leaves anything behind; registered names keep resolving, including
// a service registered in the middle of the flood.
#include <gtest/gtest.h>

#include <random>

#include "tests/dns/test_support.h"
#include "tests/support/http_client.h"
#include "tests/support/process.h"
#include "tests/support/redis_server.h"

namespace {

using nlohmann::json;
using test_support::Daemon;
using test_support::HttpClient;
using test_support::wait_until;

class RandomNamesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(redis.start()) << redis.log();
    ASSERT_TRUE(daemon.start()) << daemon.log();
    http = HttpClient(daemon.http_port());
    ASSERT_TRUE(wait_until([&] { return cache_status().value("known_names_active", false); }))
        << daemon.log();
  }
  void TearDown() override {
    if (HasFailure()) std::cerr << "---- daemon log ----\n" << daemon.log().substr(0, 20000);
  }
  json cache_status() {
    const auto response = http.get("/v1/status");
    if (response.status != 200) return json::object();
    return json::parse(response.body).value("cache", json::object());
  }
  int register_instance(const std::string& service) {
    return http
        .put(
            "/v1/services/" + service + "/instances/i1",
            {{"address", "127.1.2.3"}, {"port", 8080}, {"check", {{"type", "ttl"}, {"ttl", "1h"}}}})
        .status;
  }
  ldns_pkt_rcode rcode_of(const std::string& name) {
    const auto wire = dns::testing::make_query({.name = name, .type = LDNS_RR_TYPE_A});
    dns::testing::Response response(
        dns::testing::udp_exchange(daemon.dns_port(), wire).value_or(dns::testing::Bytes{}));
    return response.parsed() ? response.rcode() : static_cast<ldns_pkt_rcode>(255);
  }
  std::size_t redis_keys() { return std::stoul(redis.run_cli({"DBSIZE"})); }

  test_support::TempDir dir;
  test_support::RedisServer redis;
  Daemon daemon{
      dir, {.db_path = {}, .extra_args = {"--redis-timeout", "50ms"}, .redis_port = redis.port()}};
  HttpClient http{0};
};

TEST_F(RandomNamesTest, AbsentNamesCostNoIoAndLeaveNothingBehind) {
  ASSERT_EQ(register_instance("orders"), 201);
  ASSERT_EQ(rcode_of("orders.service.discovery."), LDNS_RCODE_NOERROR);
  ASSERT_TRUE(wait_until([&] { return cache_status().value("fills", 0) == 1; }));
  const auto keys_before = redis_keys();
  const auto before = cache_status();

  std::mt19937 random(42);
  for (int i = 0; i < 2000; ++i) {
    const auto name = "x" + std::to_string(random()) + ".service.discovery.";
    ASSERT_EQ(rcode_of(name), LDNS_RCODE_NXDOMAIN) << name;
    if (i == 1000) {
      // A registration in the middle of the flood is answered at once.
      ASSERT_EQ(register_instance("payments"), 201);
      ASSERT_EQ(rcode_of("payments.service.discovery."), LDNS_RCODE_NOERROR);
    }
  }
  EXPECT_EQ(rcode_of("orders.service.discovery."), LDNS_RCODE_NOERROR);

  const auto after = cache_status();
  EXPECT_GE(after.value("absent_answers", 0) - before.value("absent_answers", 0), 2000);
  // Only "payments" was read (one database read, one Redis miss, one fill).
  EXPECT_LE(after.value("db_reads", 0) - before.value("db_reads", 0), 1);
  EXPECT_LE(after.value("redis_misses", 0) - before.value("redis_misses", 0), 1);
  EXPECT_LE(after.value("near_entries", 0), 2);
  EXPECT_LE(redis_keys(), keys_before + 2);  // payments' entry and its fence
}

}  // namespace
