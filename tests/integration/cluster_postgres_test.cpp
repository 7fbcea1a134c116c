// PostgreSQL's own failures under daemons sharing it (real server, real
// daemons): a daemon's database sessions terminated, the server restarted, the
// server unreachable when a daemon starts.
#include <gtest/gtest.h>

#include <thread>

#include "tests/dns/test_support.h"
#include "tests/support/http_client.h"
#include "tests/support/postgres_server.h"
#include "tests/support/process.h"

namespace {

using namespace std::chrono_literals;
using test_support::Daemon;
using test_support::HttpClient;
using test_support::wait_until;

nlohmann::json ttl_instance(const std::string& address) {
  return {{"address", address}, {"port", 80}, {"check", {{"type", "ttl"}, {"ttl", "60s"}}}};
}

std::vector<std::string> addresses(std::uint16_t dns_port, const std::string& service) {
  auto answer = dns::testing::a_record_addresses(dns_port, service + ".service.discovery.", 1000ms);
  auto result = answer.value_or(std::vector<std::string>{"(no answer)"});
  std::sort(result.begin(), result.end());
  return result;
}

class PostgresClusterTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(postgres.start()) << postgres.log(); }
  std::unique_ptr<Daemon> start_daemon(test_support::TempDir& dir,
                                       std::vector<std::string> extra = {}) {
    auto daemon = std::make_unique<Daemon>(
        dir, Daemon::Options{.db_path = postgres.url(), .extra_args = extra, .redis_port = {}});
    EXPECT_TRUE(daemon->start()) << daemon->log();
    return daemon;
  }
  test_support::PostgresServer postgres;
  test_support::TempDir dir_a, dir_b;
};

// Their sessions gone (pg_terminate_backend of every discoveryd session:
// writer, readers, LISTEN, membership), the daemons reconnect by themselves;
// the first acknowledgement after it is answered fresh by both.
TEST_F(PostgresClusterTest, DaemonsWhoseSessionsAreTerminatedRecoverAndAnswerNothingStale) {
  auto a = start_daemon(dir_a);
  auto b = start_daemon(dir_b);
  HttpClient http_a(a->http_port()), http_b(b->http_port());
  ASSERT_EQ(http_a.put("/v1/services/web/instances/w1", ttl_instance("127.9.0.1")).status, 201);
  ASSERT_EQ(addresses(b->dns_port(), "web"), std::vector<std::string>{"127.9.0.1"});
  const auto terminated = postgres.psql(
      "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
      "WHERE application_name LIKE 'discoveryd%' AND pid <> pg_backend_pid()");
  ASSERT_GE(std::stoi(terminated), 2) << "no session was terminated";
  // A write may meet a dead connection once (503); the next one goes through.
  ASSERT_TRUE(wait_until([&] {
    return http_a.put("/v1/services/web/instances/w2", ttl_instance("127.9.0.2")).status / 100 == 2;
  })) << a->log();
  ASSERT_TRUE(
      wait_until([&] { return http_a.del("/v1/services/web/instances/w1").status / 100 == 2; }));
  // Right after the acknowledgement, on both: w1 gone, w2 there.
  EXPECT_EQ(addresses(a->dns_port(), "web"), std::vector<std::string>{"127.9.0.2"});
  EXPECT_EQ(addresses(b->dns_port(), "web"), std::vector<std::string>{"127.9.0.2"}) << b->log();
  ASSERT_TRUE(wait_until([&] {
    return http_b.put("/v1/services/web/instances/w3", ttl_instance("127.9.0.3")).status == 201;
  })) << b->log();
  EXPECT_EQ(addresses(a->dns_port(), "web"), (std::vector<std::string>{"127.9.0.2", "127.9.0.3"}));
}

// Down: writes answer 503 with Retry-After and nothing is half-applied; back:
// everything resumes by itself, and what was acknowledged before is there.
TEST_F(PostgresClusterTest, ARestartedServerMeans503WhileDownAndEverythingResumesByItself) {
  auto a = start_daemon(dir_a);
  auto b = start_daemon(dir_b);
  HttpClient http_a(a->http_port());
  ASSERT_EQ(http_a.put("/v1/services/db/instances/d1", ttl_instance("127.9.1.1")).status, 201);
  postgres.kill();
  const auto down = http_a.put("/v1/services/db/instances/d2", ttl_instance("127.9.1.2"));
  EXPECT_EQ(down.status, 503) << down.body;
  EXPECT_EQ(down.headers.count("retry-after"), 1u);
  ASSERT_TRUE(postgres.restart()) << postgres.log();
  ASSERT_TRUE(wait_until(
      [&] {
        return http_a.put("/v1/services/db/instances/d3", ttl_instance("127.9.1.3")).status == 201;
      },
      20s))
      << a->log();
  // d2 was refused as a whole: it is not there; d1 and d3 are, on both daemons.
  for (auto* daemon : {a.get(), b.get()}) {
    EXPECT_TRUE(wait_until([&] {
      return addresses(daemon->dns_port(), "db") ==
             std::vector<std::string>{"127.9.1.1", "127.9.1.3"};
    })) << daemon->log();
  }
}

TEST_F(PostgresClusterTest, AnUnreachableDatabaseAtStartIsRetriedThenExitsNamingItWithoutPassword) {
  const auto port = test_support::free_port();  // nothing listens there
  const std::string url =
      "postgresql://discoveryd:s3cret@127.0.0.1:" + std::to_string(port) + "/discoveryd";
  Daemon daemon(
      dir_a, Daemon::Options{
                 .db_path = url, .extra_args = {"--db-connect-wait", "1500ms"}, .redis_port = {}});
  const auto started = std::chrono::steady_clock::now();
  EXPECT_FALSE(daemon.start());
  EXPECT_NE(daemon.wait_exit(10s), 0);
  EXPECT_GE(std::chrono::steady_clock::now() - started, 1s) << "it did not retry";
  const auto log = daemon.log();
  EXPECT_NE(log.find("127.0.0.1:" + std::to_string(port)), std::string::npos) << log;
  EXPECT_NE(log.find("retrying"), std::string::npos) << log;
  EXPECT_EQ(log.find("s3cret"), std::string::npos) << "the password was logged:\n" << log;
}

}  // namespace
