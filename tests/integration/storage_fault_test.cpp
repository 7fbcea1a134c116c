// A full disk (a file-size limit on the running daemon) and a database locked by
// another process: writes answer 503 naming the cause, lookups go on, and the
// daemon recovers by itself once the space or the lock is back.
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

std::uintmax_t file_size_or_zero(const std::string& path) {
  std::error_code ignored;
  const auto size = std::filesystem::file_size(path, ignored);
  return ignored ? 0 : size;
}

// prlimit(1) on the running daemon: RLIMIT_FSIZE makes its writes past `limit`
// bytes fail with EFBIG (the daemon ignores SIGXFSZ), which is how a full disk
// looks to SQLite without needing a mount. Only the soft limit moves, so that
// raising it again needs no privilege.
bool set_file_size_limit(pid_t pid, const std::string& limit) {
  const std::string command = "prlimit --pid " + std::to_string(pid) + " --fsize=" + limit +
                              ":unlimited 2>&1 && echo prlimit-ok";
  const auto output = dns::testing::run_command(command);
  return output && output->find("prlimit-ok") != std::string::npos;
}

// ---------------------------------------------------------------------------
// Crash safety: SIGKILL at random moments of a mixed load.
// ---------------------------------------------------------------------------

// What the database must hold for one instance after the acknowledged requests.
// Every field a registration writes carries its generation, so a torn row (some
// columns from one write, some from another) cannot match.
// ---------------------------------------------------------------------------
// A full disk and a locked database.
// ---------------------------------------------------------------------------

class StorageFaultTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(daemon.start()) << daemon.log();
    http = HttpClient(daemon.http_port());
    ASSERT_EQ(put("orders", "a1", "127.0.0.1"), 201);
    ASSERT_EQ(put("inventory", "i1", "127.0.1.1"), 201);
    // "orders" is now in the daemon's cache; "inventory" is only in the database.
    ASSERT_EQ(a_record_addresses(daemon.dns_port(), "orders.service.discovery."),
              std::vector<std::string>{"127.0.0.1"});
  }
  void TearDown() override {
    if (HasFailure()) std::cerr << "---- daemon log ----\n" << daemon.log().substr(0, 20000);
  }
  int put(const std::string& service, const std::string& id, const std::string& address) {
    return http
        .put("/v1/services/" + service + "/instances/" + id, {{"address", address}, {"port", 80}})
        .status;
  }
  std::set<std::string> ids_served(const std::string& service) {
    std::set<std::string> ids;
    const auto result = http.get("/v1/services/" + service);
    EXPECT_EQ(result.status, 200) << result.body;
    const auto document = result.json();
    for (const auto& i : document.value("instances", json::array())) {
      ids.insert(i["id"]);
    }
    return ids;
  }
  // Lookups go on while writes fail: DNS from the cache, the HTTP read route
  // from the database.
  void expect_lookups_work(const std::vector<std::string>& orders, const std::string& when) {
    const auto start = Clock::now();
    EXPECT_EQ(a_record_addresses(daemon.dns_port(), "orders.service.discovery."), orders) << when;
    const auto inventory = http.get("/v1/services/inventory");
    EXPECT_EQ(inventory.status, 200) << when << ": " << inventory.body;
    const auto uncached = a_record_addresses(daemon.dns_port(), "inventory.service.discovery.");
    EXPECT_EQ(uncached, std::vector<std::string>{"127.0.1.1"}) << when;
    EXPECT_LT(Clock::now() - start, 3s) << when;
  }
  // After a SIGKILL and restart, what the database kept.
  std::set<std::string> ids_after_crash(const std::string& service) {
    daemon.kill();
    {
      SQLite::Database db(daemon.db_path(), SQLite::OPEN_READWRITE);
      EXPECT_EQ(integrity_check(db), "ok");
    }
    EXPECT_TRUE(daemon.start()) << daemon.log();
    http = HttpClient(daemon.http_port());
    return ids_served(service);
  }

  test_support::TempDir dir;
  Daemon daemon{dir};
  HttpClient http{0};
};

TEST_F(StorageFaultTest, AFullDiskAnswers503KeepsLookupsAndRecoversWhenSpaceReturns) {
  if (!dns::testing::command_exists("prlimit")) GTEST_SKIP() << "prlimit (util-linux) not found";
  // Room for a few more transactions beyond the current files, then the "disk"
  // is full: like a real one, writes within the space already used still work
  // (a checkpoint can recycle the WAL), so registrations fail once they need more.
  const auto used =
      std::max(file_size_or_zero(daemon.db_path()), file_size_or_zero(daemon.db_path() + "-wal"));
  ASSERT_TRUE(set_file_size_limit(daemon.process()->pid(), std::to_string(used + 64 * 1024)));

  std::map<std::string, std::string> acknowledged = {{"a1", "127.0.0.1"}};  // id -> address
  std::set<std::string> refused;
  json refusal;
  json padding;  // 4 KB per registration: fills pages faster
  for (int k = 0; k < 8; ++k) padding["pad" + std::to_string(k)] = std::string(500, 'x');
  for (int n = 0; n < 400 && refused.size() < 5; ++n) {
    const std::string id = "f" + std::to_string(n);
    const std::string address = "127.0.2." + std::to_string(n % 250 + 1);
    const auto start = Clock::now();
    const auto result = http.put("/v1/services/orders/instances/" + id,
                                 {{"address", address}, {"port", 80}, {"meta", padding}});
    EXPECT_LT(Clock::now() - start, 5s);
    if (result.status == 201) {
      acknowledged[id] = address;
    } else {
      ASSERT_EQ(result.status, 503) << result.body;
      refused.insert(id);
      refusal = result.json();
    }
  }
  ASSERT_FALSE(refused.empty()) << "the file-size limit never made a write fail";
  std::cout << "[ reliability ] disk full after " << acknowledged.size() - 1
            << " registrations; refused: " << refusal.dump() << "\n";
  EXPECT_NE(refusal["error"].get<std::string>().find("database full"), std::string::npos)
      << refusal.dump();
  EXPECT_TRUE(refusal["field"].is_null()) << refusal.dump();
  const auto addresses = [&] {
    std::vector<std::string> list;
    for (const auto& [id, address] : acknowledged) list.push_back(address);
    std::sort(list.begin(), list.end());
    return list;
  };
  const auto ids = [&] {
    std::set<std::string> list;
    for (const auto& [id, address] : acknowledged) list.insert(id);
    return list;
  };
  // Lookups go on, and show exactly the acknowledged registrations.
  expect_lookups_work(addresses(), "while the disk is full");
  EXPECT_EQ(ids_served("orders"), ids());

  // Space returns: the very next write succeeds, without a restart.
  ASSERT_TRUE(set_file_size_limit(daemon.process()->pid(), "unlimited"));
  const auto retried = *refused.begin();
  EXPECT_EQ(put("orders", retried, "127.0.3.1"), 201);
  acknowledged[retried] = "127.0.3.1";
  EXPECT_EQ(put("orders", "after", "127.0.3.2"), 201);
  EXPECT_EQ(http.del("/v1/services/orders/instances/after").status, 200);
  EXPECT_EQ(http.del("/v1/services/orders/instances/a1").status, 200);
  acknowledged.erase("a1");
  expect_lookups_work(addresses(), "after the disk recovered");
  EXPECT_EQ(ids_served("orders"), ids());

  // What the database kept across a crash is exactly what was acknowledged.
  EXPECT_EQ(ids_after_crash("orders"), ids());
}

TEST_F(StorageFaultTest, ALockedDatabaseAnswers503KeepsLookupsAndRecoversWhenReleased) {
  // Another process (a backup script, an operator's sqlite3 shell) holds the
  // write lock.
  SQLite::Database blocker(daemon.db_path(), SQLite::OPEN_READWRITE);
  blocker.exec("BEGIN IMMEDIATE");

  const auto start = Clock::now();
  const auto refused =
      http.put("/v1/services/orders/instances/b1", {{"address", "127.0.0.9"}, {"port", 80}});
  const auto waited = Clock::now() - start;
  ASSERT_EQ(refused.status, 503) << refused.body;
  EXPECT_NE(refused.json()["error"].get<std::string>().find("database busy"), std::string::npos)
      << refused.body;
  EXPECT_TRUE(refused.json()["field"].is_null());
  // Bounded by the busy timeout (2 s by default) plus scheduling on a loaded
  // machine: well inside the HTTP request timeout, so clients get a real answer.
  EXPECT_LT(waited, 8s);
  expect_lookups_work({"127.0.0.1"}, "while the database is locked");

  blocker.exec("ROLLBACK");
  EXPECT_EQ(put("orders", "a2", "127.0.0.2"), 201);
  EXPECT_EQ(a_record_addresses(daemon.dns_port(), "orders.service.discovery."),
            (std::vector<std::string>{"127.0.0.1", "127.0.0.2"}));
  EXPECT_EQ(ids_after_crash("orders"), (std::set<std::string>{"a1", "a2"}));
}

}  // namespace
