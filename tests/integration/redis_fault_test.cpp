// Redis killed, paused and restarted under a steady lookup load: every lookup is
// answered within a bound, and none is stale after a removal.
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <SQLiteCpp/SQLiteCpp.h>
#include <atomic>
#include <filesystem>
#include <map>
#include <mutex>
#include <optional>
#include <random>
#include <set>
#include <sstream>
#include <thread>

#include "tests/dns/test_support.h"
#include "tests/integration/reliability_support.h"
#include "tests/support/http_client.h"
#include "tests/support/process.h"
#include "tests/support/redis_server.h"

namespace {

using namespace std::chrono_literals;
using nlohmann::json;
using test_support::Daemon;
using test_support::HttpClient;
using test_support::wait_until;
using Clock = std::chrono::steady_clock;

using dns::testing::a_record_addresses;

using reliability::integrity_check;

// ---------------------------------------------------------------------------
// Redis faults under a steady lookup load.
// ---------------------------------------------------------------------------

// One DNS lookup as a client saw it.
struct Observation {
  Clock::time_point sent;
  Clock::duration took;
  std::vector<std::string> addresses;
};

// DNS clients asking for one name in a loop until stopped.
class LookupLoad {
 public:
  LookupLoad(std::uint16_t dns_port, std::string name, int clients) {
    for (int c = 0; c < clients; ++c) {
      threads_.emplace_back([this, dns_port, name] { run(dns_port, name); });
    }
  }
  ~LookupLoad() { stop(); }
  void stop() {
    stop_ = true;
    for (auto& thread : threads_) thread.join();
    threads_.clear();
  }
  int unanswered() const { return unanswered_; }
  const std::vector<Observation>& observations() const { return observations_; }

 private:
  void run(std::uint16_t dns_port, const std::string& name) {
    std::vector<Observation> mine;
    while (!stop_) {
      const auto sent = Clock::now();
      auto answer = a_record_addresses(dns_port, name, 2s);
      if (!answer) {
        ++unanswered_;
        continue;
      }
      mine.push_back({sent, Clock::now() - sent, std::move(*answer)});
    }
    std::lock_guard lock(mutex_);
    observations_.insert(observations_.end(), mine.begin(), mine.end());
  }
  std::mutex mutex_;
  std::vector<Observation> observations_;
  std::atomic<bool> stop_{false};
  std::atomic<int> unanswered_{0};
  std::vector<std::thread> threads_;
};

// Registers and deregisters instances of "faulty" one after another, recording
// when each removal was acknowledged.
class Churn {
 public:
  explicit Churn(HttpClient& http) : http_(http) {}
  void rounds(int count) {
    for (int i = 0; i < count; ++i, ++round_) {
      const std::string id = "c" + std::to_string(round_);
      const std::string address =
          "127.8." + std::to_string(1 + round_ / 250) + "." + std::to_string(1 + round_ % 250);
      ASSERT_EQ(
          http_.put("/v1/services/faulty/instances/" + id, {{"address", address}, {"port", 80}})
              .status,
          201);
      std::this_thread::sleep_for(5ms);  // pacing: let some queries see it
      ASSERT_EQ(http_.del("/v1/services/faulty/instances/" + id).status, 200);
      removed_at_[address] = Clock::now();
    }
  }
  const std::map<std::string, Clock::time_point>& removed_at() const { return removed_at_; }

 private:
  HttpClient& http_;
  int round_ = 0;
  std::map<std::string, Clock::time_point> removed_at_;  // address -> acknowledgement
};

// No answer to a query sent after a removal's acknowledgement names the removed
// instance, and every lookup met the bound. Returns how many answers named a
// churned instance (the check has teeth only if some did).
std::size_t expect_nothing_stale(const std::vector<Observation>& observations,
                                 const std::map<std::string, Clock::time_point>& removed_at,
                                 Clock::duration bound) {
  Clock::duration slowest{};
  std::size_t saw_churned = 0;
  for (const auto& observation : observations) {
    slowest = std::max(slowest, observation.took);
    for (const auto& address : observation.addresses) {
      const auto removal = removed_at.find(address);
      if (removal == removed_at.end()) continue;
      ++saw_churned;
      EXPECT_LT(observation.sent, removal->second)
          << address << " answered to a query sent after its removal was acknowledged";
    }
  }
  EXPECT_LT(slowest, bound);
  std::cout << "[ reliability ] " << observations.size()
            << " lookups through Redis faults, slowest "
            << std::chrono::duration_cast<std::chrono::milliseconds>(slowest).count() << " ms\n";
  return saw_churned;
}

TEST(Reliability, RedisKilledPausedAndRestartedUnderLoadDelaysNoLookupAndServesNothingStale) {
  test_support::TempDir dir;
  test_support::RedisServer redis;
  ASSERT_TRUE(redis.start()) << redis.log();
  // The bound every lookup must meet: the Redis timeout the daemon is given, plus
  // a margin for a loaded 2-core CI machine (the daemon gives up on Redis after
  // its timeout and answers from memory or SQLite).
  constexpr auto kRedisTimeout = 20ms;
  constexpr auto kLookupBound = kRedisTimeout + 980ms;
  Daemon daemon(dir,
                {.db_path = {},
                 .extra_args = {"--redis-timeout", std::to_string(kRedisTimeout.count()) + "ms"},
                 .redis_port = redis.port()});
  ASSERT_TRUE(daemon.start()) << daemon.log();
  HttpClient http(daemon.http_port());
  const auto cache_ok = [&] {
    return HttpClient(daemon.http_port()).get("/v1/status").json()["cache"]["status"] == "ok";
  };
  ASSERT_TRUE(wait_until(cache_ok)) << daemon.log();
  ASSERT_EQ(
      http.put("/v1/services/faulty/instances/anchor", {{"address", "127.8.0.1"}, {"port", 80}})
          .status,
      201);

  LookupLoad load(daemon.dns_port(), "faulty.service.discovery.", 4);
  Churn churn(http);
  const auto wait_healthy = [&] { ASSERT_TRUE(wait_until(cache_ok, 15s)) << daemon.log(); };
  churn.rounds(10);
  redis.pause();  // SIGSTOP: connections stay open, nothing is answered
  churn.rounds(15);
  redis.resume();
  wait_healthy();
  churn.rounds(10);
  redis.kill();
  churn.rounds(15);
  ASSERT_TRUE(redis.restart());
  wait_healthy();
  churn.rounds(10);
  // Redis alive but not answering its clients for a second.
  redis.run_cli({"CLIENT", "PAUSE", "1000", "ALL"});
  churn.rounds(15);
  wait_healthy();
  redis.kill();  // and once more, then back: the cache it had is gone
  churn.rounds(10);
  ASSERT_TRUE(redis.restart());
  wait_healthy();
  churn.rounds(10);
  load.stop();

  EXPECT_EQ(load.unanswered(), 0);
  ASSERT_GT(load.observations().size(), 200u);
  // The churned instances were seen: the check had teeth.
  EXPECT_GT(expect_nothing_stale(load.observations(), churn.removed_at(), kLookupBound), 0u);
  // Afterwards only the anchor is left, in DNS and Redis alike.
  EXPECT_EQ(a_record_addresses(daemon.dns_port(), "faulty.service.discovery."),
            std::vector<std::string>{"127.8.0.1"});
  if (HasFailure()) std::cerr << "---- daemon log ----\n" << daemon.log().substr(0, 20000);
}

}  // namespace

namespace {

// The near cache rests on the change feed, not on Redis: with Redis killed,
// repeated DNS queries for a live service are answered from memory (no
// database read each), and a change is still answered fresh at once.
TEST(Reliability, WithRedisKilledDnsStillAnswersFromMemory) {
  test_support::TempDir dir;
  test_support::RedisServer redis;
  ASSERT_TRUE(redis.start()) << redis.log();
  Daemon daemon(dir, {.db_path = {}, .extra_args = {}, .redis_port = redis.port()});
  ASSERT_TRUE(daemon.start()) << daemon.log();
  HttpClient http(daemon.http_port());
  const auto cache = [&] { return http.get("/v1/status").json()["cache"]; };
  ASSERT_TRUE(wait_until([&] { return cache()["status"] == "ok"; })) << daemon.log();
  ASSERT_EQ(
      http.put("/v1/services/steady/instances/a", {{"address", "127.8.0.2"}, {"port", 80}}).status,
      201);
  redis.kill();
  ASSERT_TRUE(wait_until([&] { return cache()["status"] == "degraded"; })) << daemon.log();
  const std::string name = "steady.service.discovery.";
  ASSERT_EQ(a_record_addresses(daemon.dns_port(), name), std::vector<std::string>{"127.8.0.2"});
  const auto before = cache();
  for (int i = 0; i < 200; ++i) {
    ASSERT_EQ(a_record_addresses(daemon.dns_port(), name), std::vector<std::string>{"127.8.0.2"});
  }
  const auto after = cache();
  EXPECT_EQ(after["db_reads"], before["db_reads"]) << "every query read the database";
  EXPECT_GE(after["near_hits"].get<int>() - before["near_hits"].get<int>(), 200);
  EXPECT_TRUE(after["feed"]["current"].get<bool>());
  ASSERT_EQ(
      http.put("/v1/services/steady/instances/b", {{"address", "127.8.0.3"}, {"port", 80}}).status,
      201);
  auto addresses = a_record_addresses(daemon.dns_port(), name);
  ASSERT_TRUE(addresses);
  std::sort(addresses->begin(), addresses->end());
  EXPECT_EQ(*addresses, (std::vector<std::string>{"127.8.0.2", "127.8.0.3"}));
}

}  // namespace
