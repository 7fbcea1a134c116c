// Sharded health checks across three real daemons sharing one database,
// SQLite file or PostgreSQL server (each test runs on both): every instance is
// probed by exactly one daemon; when a daemon is SIGKILLed its instances are
// probed by the others within one check interval plus the lease; and a target
// that starts failing just before its prober dies is removed after exactly
// three failures, counted across the two owners.
#include <SQLiteCpp/SQLiteCpp.h>
#include <gtest/gtest.h>

#include <map>
#include <thread>

#include "store/health_shards.h"
#include "tests/health/test_servers.h"
#include "tests/support/http_client.h"
#include "tests/support/postgres_server.h"
#include "tests/support/process.h"

namespace {

using namespace std::chrono_literals;
using test_support::Daemon;
using test_support::HttpClient;
using test_support::wait_until;
using Clock = std::chrono::steady_clock;

constexpr auto kInterval = 1s;
constexpr auto kLease = 2s;  // store::MembershipOptions::lease

enum class Backend { sqlite, postgres };

class ClusterHealthTest : public ::testing::TestWithParam<Backend> {
 protected:
  void SetUp() override {
    db = shared.file("registry.db");
    if (GetParam() == Backend::postgres) {
      postgres = std::make_unique<test_support::PostgresServer>();
      ASSERT_TRUE(postgres->start()) << postgres->log();
      db = postgres->url();
    }
    for (int i = 0; i < 3; ++i) {
      dirs.push_back(std::make_unique<test_support::TempDir>());
      daemons.push_back(std::make_unique<Daemon>(
          *dirs.back(),
          Daemon::Options{.db_path = db, .extra_args = {}, .redis_port = std::nullopt}));
      ASSERT_TRUE(daemons.back()->start()) << daemons.back()->log();
    }
    ASSERT_TRUE(wait_until([&] { return balanced({0, 1, 2}); }, 20s)) << shard_report();
  }

  nlohmann::json status(std::size_t daemon) const {
    return HttpClient(daemons[daemon]->http_port()).get("/v1/status").json();
  }

  // The 256 shards are shared out among `alive`, each probing a fair part and
  // nothing waiting to be handed over.
  bool balanced(const std::vector<std::size_t>& alive) const {
    std::size_t probing = 0;
    for (const auto d : alive) {
      const auto shards = status(d)["cluster"]["health_shards"];
      if (shards["requested"] != 0 || shards["participants"] != alive.size()) return false;
      const std::size_t mine = shards["probing"];
      if (mine < store::kHealthShards / alive.size()) return false;
      probing += mine;
    }
    return probing == store::kHealthShards;
  }

  std::string shard_report() const {
    std::string report;
    for (std::size_t d = 0; d < daemons.size(); ++d) {
      if (!daemons[d]->process() || !daemons[d]->process()->running()) continue;
      const auto s = status(d);
      report += s["cluster"]["health_shards"].dump() + " health " + s["health"].dump() + "\n";
    }
    return report;
  }

  // One value from the shared database, whichever backend.
  std::string query(const std::string& sql) const {
    if (postgres) return postgres->psql(sql);
    SQLite::Database file(db, SQLite::OPEN_READONLY);
    SQLite::Statement statement(file, sql);
    return statement.executeStep() ? statement.getColumn(0).getString() : "";
  }

  // The daemon whose member id owns the shard of service/id.
  std::size_t owner_of(const std::string& service, const std::string& id) const {
    const auto shard = store::health_shard_of(service, id);
    const auto owner =
        query("SELECT owner FROM health_shards WHERE shard = " + std::to_string(shard));
    for (std::size_t d = 0; d < daemons.size(); ++d) {
      if (status(d)["cluster"]["member_id"] == owner) return d;
    }
    ADD_FAILURE() << "shard " << shard << " owned by unknown member '" << owner << "'";
    return 0;
  }

  static bool all_probed(const health_test::ListenerFarm& farm) {
    for (std::size_t i = 0; i < farm.size(); ++i) {
      if (farm.accepts(i) == 0) return false;
    }
    return true;
  }

  std::size_t tracked_instances(const std::vector<std::size_t>& alive) const {
    std::size_t total = 0;
    for (const auto d : alive) total += status(d)["health"]["instances"].get<std::size_t>();
    return total;
  }

  // Registers one tcp-checked instance per listener of the farm through daemon 0:
  // the other daemons learn of them from the change feed.
  void register_farm(const health_test::ListenerFarm& farm) {
    HttpClient http(daemons[0]->http_port());
    for (std::size_t i = 0; i < farm.size(); ++i) {
      const auto reply =
          http.put("/v1/services/probed/instances/i" + std::to_string(i),
                   {{"address", "127.0.0.1"},
                    {"port", farm.port(i)},
                    {"check", {{"type", "tcp"}, {"interval", "1s"}, {"timeout", "300ms"}}}});
      ASSERT_EQ(reply.status, 201) << reply.body;
    }
  }

  test_support::TempDir shared;
  std::string db;
  std::unique_ptr<test_support::PostgresServer> postgres;
  std::vector<std::unique_ptr<test_support::TempDir>> dirs;
  std::vector<std::unique_ptr<Daemon>> daemons;
};

TEST_P(ClusterHealthTest, EachInstanceIsProbedOncePerIntervalAcrossThreeDaemons) {
  health_test::ListenerFarm farm(30);
  register_farm(farm);
  ASSERT_TRUE(wait_until(
      [&] {
        for (std::size_t i = 0; i < farm.size(); ++i)
          if (farm.accepts(i) == 0) return false;
        return true;
      },
      10s))
      << shard_report();
  EXPECT_TRUE(wait_until([&] {
    return tracked_instances({0, 1, 2}) == farm.size();
  })) << shard_report();

  std::vector<std::size_t> before;
  for (std::size_t i = 0; i < farm.size(); ++i) before.push_back(farm.accepts(i));
  const auto window = 6s;
  std::this_thread::sleep_for(window);  // a measurement window, not a wait for a condition
  std::size_t probes = 0;
  for (std::size_t i = 0; i < farm.size(); ++i) {
    const auto seen = farm.accepts(i) - before[i];
    probes += seen;
    // 6 intervals of 1 s, each stretched or shrunk by up to 10 %: 5 to 7
    // probes; three daemons all probing it would make 15 or more.
    EXPECT_GE(seen, 4u) << "instance " << i;
    EXPECT_LE(seen, 8u) << "instance " << i << " probed by more than one daemon";
  }
  std::cout << "[ cluster health ] probes per instance per interval: "
            << static_cast<double>(probes) / static_cast<double>(farm.size()) /
                   std::chrono::duration<double>(window / kInterval).count()
            << "\n";
}

TEST_P(ClusterHealthTest, AKilledDaemonsInstancesAreProbedByOthersWithinIntervalPlusLease) {
  health_test::ListenerFarm farm(30);
  register_farm(farm);
  ASSERT_TRUE(wait_until(
      [&] {
        return tracked_instances({0, 1, 2}) == farm.size();
      },
      10s))
      << shard_report();
  const std::size_t victim = 2;
  const auto killed_tracked = status(victim)["health"]["instances"].get<std::size_t>();
  ASSERT_GT(killed_tracked, 0u) << "the killed daemon must have probed some instances";

  // Every instance's probes as seen by polling the listeners' counters.
  std::vector<std::size_t> count(farm.size());
  for (std::size_t i = 0; i < farm.size(); ++i) count[i] = farm.accepts(i);
  std::vector<Clock::time_point> last(farm.size(), Clock::now());
  Clock::duration widest{};
  daemons[victim]->kill();
  const auto killed_at = Clock::now();
  while (Clock::now() - killed_at < kInterval + kLease + 4s) {
    const auto now = Clock::now();
    for (std::size_t i = 0; i < farm.size(); ++i) {
      const auto accepts = farm.accepts(i);
      if (accepts != count[i]) {
        widest = std::max(widest, now - last[i]);
        count[i] = accepts;
        last[i] = now;
      }
    }
    std::this_thread::sleep_for(20ms);
  }
  for (std::size_t i = 0; i < farm.size(); ++i) {
    widest = std::max(widest, Clock::now() - last[i]);  // an instance never probed again
  }
  std::cout << "[ cluster health ] widest gap between probes across the kill: "
            << std::chrono::duration_cast<std::chrono::milliseconds>(widest).count() << " ms\n";
  // The bound, plus the balance period (250 ms), the spread of overdue probes
  // (a tenth of the interval) and slack for a loaded CI machine.
  EXPECT_LE(widest, kInterval + kLease + 1500ms) << shard_report();
  EXPECT_TRUE(wait_until([&] { return balanced({0, 1}); }, 10s)) << shard_report();
  EXPECT_EQ(tracked_instances({0, 1}), farm.size()) << shard_report();
}

TEST_P(ClusterHealthTest, ATargetFailingWhileItsProberDiesIsRemovedAfterExactlyThreeFailures) {
  health_test::TestHttpServer target;
  target.set_status(200);
  HttpClient http(daemons[0]->http_port());
  ASSERT_EQ(
      http.put("/v1/services/dying/instances/x",
               {{"address", "127.0.0.1"},
                {"port", target.port()},
                {"check",
                 {{"type", "http"}, {"interval", "1s"}, {"timeout", "300ms"}, {"failures", 3}}}})
          .status,
      201);
  ASSERT_TRUE(wait_until([&] { return target.responses(200) > 0; }, 10s)) << shard_report();
  const std::size_t prober = owner_of("dying", "x");
  const std::string count_sql =
      "SELECT consecutive_failures FROM instances WHERE service = 'dying' AND id = 'x'";

  // One failure, counted and written by its prober; then the prober dies.
  target.set_status(503);
  ASSERT_TRUE(
      wait_until([&] { return target.responses(503) == 1 && query(count_sql) == "1"; }, 5s, 5ms))
      << shard_report();
  daemons[prober]->kill();

  ASSERT_TRUE(wait_until([&] { return query(count_sql).empty(); }, kLease + 5 * kInterval + 5s))
      << "failures seen by the target: " << target.responses(503) << "\n"
      << shard_report();
  EXPECT_EQ(target.responses(503), 3u) << "removed after the wrong number of failures";
  // The new owner removed it, after three failures counted across the two (its
  // event is recorded once the removal is acknowledged: the dead daemon's
  // lease may hold that for up to the lease).
  nlohmann::json removal;
  wait_until(
      [&] {
        for (std::size_t d = 0; d < daemons.size(); ++d) {
          if (d == prober) continue;
          const auto events =
              HttpClient(daemons[d]->http_port()).get("/v1/events").json()["events"];
          for (const auto& event : events) {
            if (event["id"] == "x") removal = event;
          }
        }
        return !removal.is_null();
      },
      kLease + 3s);
  ASSERT_FALSE(removal.is_null()) << shard_report();
  EXPECT_EQ(removal["failures"], 3);
}

INSTANTIATE_TEST_SUITE_P(Backends, ClusterHealthTest,
                         ::testing::Values(Backend::sqlite, Backend::postgres),
                         [](const auto& info) {
                           return info.param == Backend::sqlite ? "Sqlite" : "Postgres";
                         });

}  // namespace
