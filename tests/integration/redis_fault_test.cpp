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
  const auto cache_status = [&] {
    return HttpClient(daemon.http_port()).get("/v1/status").json()["cache"]["status"];
  };
  ASSERT_TRUE(wait_until([&] { return cache_status() == "ok"; })) << daemon.log();
  ASSERT_EQ(
      http.put("/v1/services/faulty/instances/anchor", {{"address", "127.8.0.1"}, {"port", 80}})
          .status,
      201);

  struct Observation {
    Clock::time_point sent;
    Clock::duration took;
    std::vector<std::string> addresses;
  };
  std::mutex mutex;
  std::vector<Observation> observations;
  std::atomic<bool> stop{false};
  std::atomic<int> unanswered{0};
  std::vector<std::thread> clients;
  for (int c = 0; c < 4; ++c) {
    clients.emplace_back([&] {
      std::vector<Observation> mine;
      while (!stop) {
        const auto sent = Clock::now();
        auto answer = a_record_addresses(daemon.dns_port(), "faulty.service.discovery.", 2s);
        if (!answer) {
          ++unanswered;
          continue;
        }
        mine.push_back({sent, Clock::now() - sent, std::move(*answer)});
      }
      std::lock_guard lock(mutex);
      observations.insert(observations.end(), mine.begin(), mine.end());
    });
  }

  std::map<std::string, Clock::time_point> removed_at;  // address -> acknowledgement
  int round = 0;
  const auto churn = [&](int rounds) {
    for (int i = 0; i < rounds; ++i, ++round) {
      const std::string id = "c" + std::to_string(round);
      const std::string address =
          "127.8." + std::to_string(1 + round / 250) + "." + std::to_string(1 + round % 250);
      ASSERT_EQ(
          http.put("/v1/services/faulty/instances/" + id, {{"address", address}, {"port", 80}})
              .status,
          201);
      std::this_thread::sleep_for(5ms);  // pacing: let some queries see it
      ASSERT_EQ(http.del("/v1/services/faulty/instances/" + id).status, 200);
      removed_at[address] = Clock::now();
    }
  };
  const auto wait_healthy = [&] {
    ASSERT_TRUE(wait_until([&] { return cache_status() == "ok"; }, 15s)) << daemon.log();
  };

  churn(10);
  redis.pause();  // SIGSTOP: connections stay open, nothing is answered
  churn(15);
  redis.resume();
  wait_healthy();
  churn(10);
  redis.kill();
  churn(15);
  ASSERT_TRUE(redis.restart());
  wait_healthy();
  churn(10);
  // Redis alive but not answering its clients for a second.
  redis.run_cli({"CLIENT", "PAUSE", "1000", "ALL"});
  churn(15);
  wait_healthy();
  redis.kill();  // and once more, then back: the cache it had is gone
  churn(10);
  ASSERT_TRUE(redis.restart());
  wait_healthy();
  churn(10);
  stop = true;
  for (auto& client : clients) client.join();

  EXPECT_EQ(unanswered, 0);
  ASSERT_GT(observations.size(), 200u);
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
  EXPECT_LT(slowest, kLookupBound);
  std::cout << "[ reliability ] " << observations.size()
            << " lookups through Redis faults, slowest "
            << std::chrono::duration_cast<std::chrono::milliseconds>(slowest).count() << " ms\n";
  EXPECT_GT(saw_churned, 0u);  // the churned instances were seen: the check had teeth
  // Afterwards only the anchor is left, in DNS and Redis alike.
  EXPECT_EQ(a_record_addresses(daemon.dns_port(), "faulty.service.discovery."),
            std::vector<std::string>{"127.8.0.1"});
  if (HasFailure()) std::cerr << "---- daemon log ----\n" << daemon.log().substr(0, 20000);
}

}  // namespace
