// An acknowledged registration is durable: SIGKILL the daemon in the middle of a
// burst of concurrent registrations, restart it, and find every acknowledged one.
#include <gtest/gtest.h>

#include <SQLiteCpp/SQLiteCpp.h>
#include <atomic>
#include <mutex>
#include <set>
#include <thread>

#include "tests/support/http_client.h"
#include "tests/support/process.h"

namespace {

using namespace std::chrono_literals;

TEST(Durability, SigkillDuringARegistrationBurstLosesNoAcknowledgedWrite) {
  test_support::TempDir dir;
  test_support::Daemon daemon(dir);
  constexpr int kIterations = 3;
  constexpr int kClients = 8;
  std::set<std::string> acknowledged;
  for (int iteration = 0; iteration < kIterations; ++iteration) {
    ASSERT_TRUE(daemon.start()) << daemon.log();
    std::mutex mutex;
    std::atomic<int> acked_this_round{0};
    std::atomic<bool> stop{false};
    std::vector<std::thread> clients;
    for (int c = 0; c < kClients; ++c) {
      clients.emplace_back([&, c] {
        test_support::HttpClient http(daemon.http_port());
        for (int n = 0; !stop; ++n) {
          const std::string id =
              "r" + std::to_string(iteration) + "-c" + std::to_string(c) + "-n" + std::to_string(n);
          const nlohmann::json body = {{"address", "127.0.0." + std::to_string(c + 1)},
                                       {"port", 1000 + n % 60000}};
          const auto result = http.put("/v1/services/burst/instances/" + id, body);
          if (result.status == 0) return;  // the daemon is gone
          if (result.status == 201) {
            std::lock_guard lock(mutex);
            acknowledged.insert(id);
            ++acked_this_round;
          }
        }
      });
    }
    // Kill it mid-burst, after a good number of writes were acknowledged.
    ASSERT_TRUE(test_support::wait_until([&] { return acked_this_round >= 150; }, 30s));
    daemon.kill();
    stop = true;
    for (auto& client : clients) client.join();
  }

  // The database on disk, read directly, holds every acknowledged registration...
  {
    SQLite::Database raw(dir.file("discoveryd.db"), SQLite::OPEN_READWRITE);
    SQLite::Statement check(raw, "PRAGMA integrity_check");
    ASSERT_TRUE(check.executeStep());
    EXPECT_EQ(check.getColumn(0).getString(), "ok");
    std::set<std::string> stored;
    SQLite::Statement ids(raw, "SELECT id FROM instances WHERE service = 'burst'");
    while (ids.executeStep()) stored.insert(ids.getColumn(0).getString());
    std::vector<std::string> lost;
    std::set_difference(acknowledged.begin(), acknowledged.end(), stored.begin(), stored.end(),
                        std::back_inserter(lost));
    EXPECT_TRUE(lost.empty()) << lost.size() << " acknowledged registrations lost, e.g. "
                              << lost.front();
    EXPECT_GE(acknowledged.size(), static_cast<std::size_t>(150 * kIterations));
  }
  // ...and so does the restarted daemon's API.
  ASSERT_TRUE(daemon.start()) << daemon.log();
  const auto service = test_support::HttpClient(daemon.http_port()).get("/v1/services/burst");
  ASSERT_EQ(service.status, 200);
  std::set<std::string> served;
  const auto document = service.json();
  for (const auto& instance : document["instances"]) served.insert(instance["id"]);
  EXPECT_TRUE(std::includes(served.begin(), served.end(), acknowledged.begin(), acknowledged.end()))
      << "served " << served.size() << " of " << acknowledged.size() << " acknowledged";
}

}  // namespace
