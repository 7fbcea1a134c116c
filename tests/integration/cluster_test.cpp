// Three real daemons sharing one database, SQLite file or PostgreSQL server
// (each test runs on both): registrations and removals through one of them
// while DNS clients ask all three. No answer to a query sent after an
// acknowledgement shows the state before it, on any daemon: with all three
// running, with one SIGSTOPped for 2 s (acknowledgements wait at most its
// lease, and after SIGCONT it answers nothing stale), and after one is
// SIGKILLed. PostgreSQL adds its own failures (cluster_postgres_test.cpp).
#include <gtest/gtest.h>
#include <signal.h>

#include <atomic>
#include <map>
#include <mutex>
#include <thread>

#include "tests/dns/test_support.h"
#include "tests/support/http_client.h"
#include "tests/support/postgres_server.h"
#include "tests/support/process.h"
#include "tests/support/redis_server.h"

namespace {

using namespace std::chrono_literals;
using test_support::Daemon;
using test_support::HttpClient;
using test_support::wait_until;
using Clock = std::chrono::steady_clock;

// One DNS answer as a client saw it.
struct Observation {
  std::size_t daemon;
  Clock::time_point sent;
  std::vector<std::string> addresses;
};

// DNS clients asking every daemon for one name in a loop until stopped.
class LookupLoad {
 public:
  LookupLoad(std::vector<std::uint16_t> ports, std::string name) {
    for (std::size_t d = 0; d < ports.size(); ++d) {
      threads_.emplace_back([this, d, port = ports[d], name] { run(d, port, name); });
    }
  }
  ~LookupLoad() { stop(); }
  void stop() {
    stop_ = true;
    for (auto& thread : threads_) thread.join();
    threads_.clear();
  }
  std::vector<Observation> observations() {
    std::lock_guard lock(mutex_);
    return observations_;
  }

 private:
  void run(std::size_t daemon, std::uint16_t port, const std::string& name) {
    std::vector<Observation> mine;
    while (!stop_) {
      const auto sent = Clock::now();
      // A frozen daemon answers nothing; the timeout keeps the client moving.
      auto answer = dns::testing::a_record_addresses(port, name, 500ms);
      if (answer) mine.push_back({daemon, sent, std::move(*answer)});
      // Thousands of queries a second per daemon, not a flood that starves the
      // database and the daemons of the 2 CPUs a CI machine has.
      std::this_thread::sleep_for(300us);
    }
    std::lock_guard lock(mutex_);
    observations_.insert(observations_.end(), mine.begin(), mine.end());
  }
  std::mutex mutex_;
  std::vector<Observation> observations_;
  std::atomic<bool> stop_{false};
  std::vector<std::thread> threads_;
};

// Registers and removes instances one after another through one daemon,
// recording each acknowledgement.
class Churn {
 public:
  explicit Churn(std::uint16_t http_port) : http_(http_port) {}
  void rounds(int count) {
    for (int i = 0; i < count; ++i, ++round_) {
      const std::string id = "c" + std::to_string(round_);
      const std::string address =
          "127.9." + std::to_string(1 + round_ / 250) + "." + std::to_string(1 + round_ % 250);
      ASSERT_EQ(http_
                    .put("/v1/services/shared/instances/" + id,
                         {{"address", address},
                          {"port", 80},
                          {"check", {{"type", "ttl"}, {"ttl", "60s"}}}})
                    .status,
                201);
      std::this_thread::sleep_for(5ms);  // let some queries see it
      const auto removing = Clock::now();
      ASSERT_EQ(http_.del("/v1/services/shared/instances/" + id).status, 200);
      removed_at[address] = Clock::now();
      slowest = std::max(slowest, removed_at[address] - removing);
    }
  }
  std::map<std::string, Clock::time_point> removed_at;  // address -> acknowledgement
  Clock::duration slowest{};                            // of the removals

 private:
  HttpClient http_;
  int round_ = 0;
};

// No answer to a query sent after a removal's acknowledgement names the removed
// instance, on any daemon. Returns how many answers named a churned instance
// (the check has teeth only if some did).
std::size_t expect_nothing_stale(const std::vector<Observation>& observations, const Churn& churn) {
  std::cout << "[ cluster ] " << observations.size() << " answers, slowest removal "
            << std::chrono::duration_cast<std::chrono::milliseconds>(churn.slowest).count()
            << " ms\n";
  std::size_t saw_churned = 0;
  for (const auto& observation : observations) {
    for (const auto& address : observation.addresses) {
      const auto removed = churn.removed_at.find(address);
      if (removed == churn.removed_at.end()) continue;
      ++saw_churned;
      EXPECT_LT(observation.sent, removed->second)
          << "daemon " << observation.daemon << " answered " << address
          << " to a query sent after its removal was acknowledged";
    }
  }
  return saw_churned;
}

enum class Backend { sqlite, postgres };

class ClusterTest : public ::testing::TestWithParam<Backend> {
 protected:
  void SetUp() override {
    // One Redis shared by the three, as in production (a second-level cache).
    ASSERT_TRUE(redis.start()) << redis.log();
    std::string db = shared.file("registry.db");
    if (GetParam() == Backend::postgres) {
      postgres = std::make_unique<test_support::PostgresServer>();
      ASSERT_TRUE(postgres->start()) << postgres->log();
      db = postgres->url();
    }
    for (int i = 0; i < 3; ++i) {
      daemons.push_back(std::make_unique<Daemon>(
          *dirs[i], Daemon::Options{.db_path = db, .extra_args = {}, .redis_port = redis.port()}));
      ASSERT_TRUE(daemons.back()->start()) << daemons.back()->log();
    }
    // Every daemon sees the two others before the test begins.
    for (auto& daemon : daemons) {
      ASSERT_TRUE(wait_until([&] {
        return HttpClient(daemon->http_port()).get("/v1/status").json()["cluster"]["live_others"] ==
               2;
      })) << daemon->log();
    }
  }
  std::vector<std::uint16_t> dns_ports() const {
    std::vector<std::uint16_t> ports;
    for (const auto& daemon : daemons) ports.push_back(daemon->dns_port());
    return ports;
  }
  void dump_logs_on_failure() {
    for (auto& daemon : daemons) {
      if (!daemon->process() || !daemon->process()->running()) continue;
      const auto status = HttpClient(daemon->http_port()).get("/v1/status").json();
      std::cout << "[ cluster ] " << status["cluster"].dump() << "\n";
    }
    if (!HasFailure()) return;
    for (auto& daemon : daemons) std::cerr << "---- daemon ----\n" << daemon->log().substr(0, 8000);
  }

  test_support::TempDir shared;
  test_support::RedisServer redis;
  std::unique_ptr<test_support::PostgresServer> postgres;
  std::vector<std::unique_ptr<test_support::TempDir>> dirs = [] {
    std::vector<std::unique_ptr<test_support::TempDir>> v;
    for (int i = 0; i < 3; ++i) v.push_back(std::make_unique<test_support::TempDir>());
    return v;
  }();
  std::vector<std::unique_ptr<Daemon>> daemons;
};

TEST_P(ClusterTest, ChurnThroughOneDaemonIsNeverAnsweredStaleByAnyAfterItsAcknowledgement) {
  LookupLoad load(dns_ports(), "shared.service.discovery.");
  Churn churn(daemons[0]->http_port());
  churn.rounds(60);
  load.stop();
  const auto observations = load.observations();
  ASSERT_GT(observations.size(), 300u);
  EXPECT_GT(expect_nothing_stale(observations, churn), 0u) << "the check had no teeth";
  dump_logs_on_failure();
}

TEST_P(ClusterTest, ADaemonFrozenFor2sDelaysAcknowledgementsAtMostItsLeaseAndAnswersNothingStale) {
  LookupLoad load(dns_ports(), "shared.service.discovery.");
  Churn churn(daemons[0]->http_port());
  churn.rounds(10);
  daemons[2]->process()->signal(SIGSTOP);
  const auto frozen_at = Clock::now();
  churn.rounds(20);  // the first waits for its lease to run out, the rest not
  const auto frozen_for = Clock::now() - frozen_at;
  if (frozen_for < 2s) std::this_thread::sleep_for(2s - frozen_for);
  daemons[2]->process()->signal(SIGCONT);
  churn.rounds(20);
  load.stop();
  EXPECT_LT(Clock::now() - frozen_at, 2s + 10s) << "acknowledgements waited past the lease";
  EXPECT_GT(expect_nothing_stale(load.observations(), churn), 0u);
  // The frozen daemon answers again, and answers fresh.
  EXPECT_TRUE(wait_until([&] {
    return dns::testing::a_record_addresses(daemons[2]->dns_port(), "shared.service.discovery.",
                                            500ms)
        .has_value();
  }));
  dump_logs_on_failure();
}

// Redis dies mid-churn: nothing stale on any daemon, and their near caches stay
// on (they rest on the change feed): repeated queries need no database read.
TEST_P(ClusterTest, RedisKilledUnderChurnServesNothingStaleAndKeepsTheNearCaches) {
  LookupLoad load(dns_ports(), "shared.service.discovery.");
  Churn churn(daemons[0]->http_port());
  churn.rounds(20);
  redis.kill();
  churn.rounds(20);
  load.stop();
  EXPECT_GT(expect_nothing_stale(load.observations(), churn), 0u);
  HttpClient http(daemons[1]->http_port());
  ASSERT_TRUE(
      wait_until([&] { return http.get("/v1/status").json()["cache"]["status"] == "degraded"; }));
  dns::testing::a_record_addresses(daemons[1]->dns_port(), "shared.service.discovery.");
  const auto reads = http.get("/v1/status").json()["cache"]["db_reads"];
  for (int i = 0; i < 50; ++i) {
    dns::testing::a_record_addresses(daemons[1]->dns_port(), "shared.service.discovery.");
  }
  EXPECT_EQ(http.get("/v1/status").json()["cache"]["db_reads"], reads);
  dump_logs_on_failure();
}

TEST_P(ClusterTest, AfterADaemonIsKilledAcknowledgementsGoOnAndNothingIsLost) {
  Churn churn(daemons[0]->http_port());
  HttpClient http(daemons[0]->http_port());
  daemons[1]->kill();
  const auto killed_at = Clock::now();
  ASSERT_EQ(
      http.put("/v1/services/kept/instances/k1", {{"address", "127.9.200.1"},
                                                  {"port", 80},
                                                  {"check", {{"type", "ttl"}, {"ttl", "60s"}}}})
          .status,
      201);
  EXPECT_LT(Clock::now() - killed_at, 5s) << "waited past the killed daemon's lease";
  churn.rounds(10);
  for (auto index : {std::size_t{0}, std::size_t{2}}) {
    EXPECT_EQ(
        dns::testing::a_record_addresses(daemons[index]->dns_port(), "kept.service.discovery."),
        std::vector<std::string>{"127.9.200.1"});
  }
  // The killed daemon comes back and serves the registry as it is now.
  ASSERT_TRUE(daemons[1]->start()) << daemons[1]->log();
  EXPECT_EQ(dns::testing::a_record_addresses(daemons[1]->dns_port(), "kept.service.discovery."),
            std::vector<std::string>{"127.9.200.1"});
  dump_logs_on_failure();
}

INSTANTIATE_TEST_SUITE_P(Backends, ClusterTest,
                         ::testing::Values(Backend::sqlite, Backend::postgres),
                         [](const auto& info) {
                           return info.param == Backend::sqlite ? "Sqlite" : "Postgres";
                         });

}  // namespace
