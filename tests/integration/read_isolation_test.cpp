// Issue 11, part 5: no blocking database read on the HTTP event loop. The
// health checker's periodic resync reads every instance (100,000 here, a few
// hundred milliseconds of SQLite and JSON work); while it runs, GET /v1/status
// and registrations must still answer at once, and so must they while another
// client lists the services (a read that itself takes a while on this table).
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <fstream>
#include <thread>
#include <vector>

#include <SQLiteCpp/SQLiteCpp.h>

#include "store/sqlite/sqlite_store.h"
#include "tests/support/http_client.h"
#include "tests/support/process.h"

namespace {

using namespace std::chrono_literals;
using nlohmann::json;
using test_support::Daemon;
using test_support::HttpClient;
using Clock = std::chrono::steady_clock;

constexpr int kInstances = 100'000;
constexpr int kServices = 100;
constexpr auto kBound = 50ms;

// Fills the database in one transaction before the daemon opens it: the store
// creates the schema, plain SQL inserts the rows (the store's own write path
// takes far longer for 100,000 rows, and this test is about reading them).
// Columns added by later migrations have defaults (SQLite requires one for
// ALTER TABLE ADD COLUMN ... NOT NULL), so this list stays valid. Every instance
// has a TTL check an hour long on a loopback address: nothing is probed or removed.
void populate(const std::string& path) {
  { store::SqliteStore schema({path}); }
  SQLite::Database db(path, SQLite::OPEN_READWRITE);
  SQLite::Transaction transaction(db);
  SQLite::Statement service(db, "INSERT INTO services (name, version) VALUES (?, 1)");
  for (int s = 0; s < kServices; ++s) {
    service.bind(1, "svc-" + std::to_string(s));
    service.exec();
    service.reset();
  }
  SQLite::Statement instance(
      db,
      "INSERT INTO instances (service, id, address, port, tags, meta, weight, check_type, "
      "check_path, check_port, check_interval_ms, check_timeout_ms, check_ttl_ms, "
      "check_failures, registered_at_ms, updated_at_ms) "
      "VALUES (?, ?, ?, ?, '[\"v1\"]', '{\"zone\":\"a\"}', 1, 'ttl', '', 0, 0, 0, 3600000, 0, ?, "
      "?)");
  const auto now =
      std::chrono::duration_cast<std::chrono::milliseconds>(store::Clock::now().time_since_epoch())
          .count();
  for (int i = 0; i < kInstances; ++i) {
    instance.bind(1, "svc-" + std::to_string(i % kServices));
    instance.bind(2, "i" + std::to_string(i));
    instance.bind(3, "127.0." + std::to_string(i / 250 % 250) + "." + std::to_string(i % 250 + 1));
    instance.bind(4, 10'000 + i % 50'000);
    instance.bind(5, static_cast<std::int64_t>(now));
    instance.bind(6, static_cast<std::int64_t>(now));
    instance.exec();
    instance.reset();
  }
  transaction.commit();
}

struct Latencies {
  std::vector<Clock::duration> samples;
  int failures = 0;  // answers with an unexpected status
  Clock::duration max() const {
    return samples.empty() ? Clock::duration::zero()
                           : *std::max_element(samples.begin(), samples.end());
  }
  std::size_t over(Clock::duration bound) const {
    return static_cast<std::size_t>(
        std::count_if(samples.begin(), samples.end(), [&](auto d) { return d > bound; }));
  }
};

long long ms(Clock::duration duration) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(duration).count();
}

std::uint64_t resyncs(HttpClient& http) {
  const auto status = http.get("/v1/status").json();
  return status.is_object() ? status["health"].value("resyncs", std::uint64_t{0}) : 0;
}

// Runs `request` on its own connection every `pause` until `stop`, timing each.
// The pauses leave the two CI cores to the daemon.
template <typename Request>
std::thread timed_loop(std::uint16_t port, std::atomic<bool>& stop, Latencies& out,
                       Clock::duration pause, Request request) {
  return std::thread([port, &stop, &out, pause, request] {
    HttpClient http(port);
    for (int n = 0; !stop.load(); ++n) {
      const auto start = Clock::now();
      const bool ok = request(http, n);
      out.samples.push_back(Clock::now() - start);
      if (!ok) ++out.failures;
      std::this_thread::sleep_for(pause);
    }
  });
}

struct Round {
  Latencies status, registrations, listings;
  bool within_bound() const { return status.over(kBound) == 0 && registrations.over(kBound) == 0; }
  std::string summary() const {
    return "status: " + std::to_string(status.samples.size()) + " requests, max " +
           std::to_string(ms(status.max())) + " ms, " + std::to_string(status.over(kBound)) +
           " over the bound; registrations: " + std::to_string(registrations.samples.size()) +
           " requests, max " + std::to_string(ms(registrations.max())) + " ms, " +
           std::to_string(registrations.over(kBound)) +
           " over; listings: " + std::to_string(listings.samples.size()) + ", max " +
           std::to_string(ms(listings.max())) + " ms";
  }
};

// Clients send status requests and registrations back to back (and a few
// listings) until two more resyncs have completed, so that at least one whole
// resync ran while they did.
Round measure_round(std::uint16_t port, HttpClient& control, int first_id) {
  Round round;
  const std::uint64_t resyncs_before = resyncs(control);
  std::atomic<bool> stop{false};
  std::vector<std::thread> clients;
  clients.push_back(timed_loop(port, stop, round.status, 5ms, [](HttpClient& http, int) {
    return http.get("/v1/status").status == 200;
  }));
  clients.push_back(
      timed_loop(port, stop, round.registrations, 5ms, [first_id](HttpClient& http, int n) {
        const json body = {{"address", "127.9.0.1"},
                           {"port", 1000 + n % 60'000},
                           {"check", {{"type", "ttl"}, {"ttl", "1h"}}}};
        const auto id = "w" + std::to_string(first_id + n);
        const int code = http.put("/v1/services/writes/instances/" + id, body).status;
        return code == 201;
      }));
  // The list groups all 100,000 rows (tens of milliseconds of SQLite work): a
  // few a second, which must not hold up the others either.
  clients.push_back(timed_loop(port, stop, round.listings, 250ms, [](HttpClient& http, int) {
    return http.get("/v1/services").status == 200;
  }));
  const bool resynced =
      test_support::wait_until([&] { return resyncs(control) >= resyncs_before + 2; }, 30s, 50ms);
  stop = true;
  for (auto& client : clients) client.join();
  EXPECT_TRUE(resynced);
  EXPECT_EQ(round.status.failures, 0);
  EXPECT_EQ(round.registrations.failures, 0);
  EXPECT_EQ(round.listings.failures, 0);
  EXPECT_GT(round.status.samples.size(), 20u);
  EXPECT_GT(round.registrations.samples.size(), 20u);
  return round;
}

TEST(ReadIsolation, StatusAndRegistrationsAnswerWithin50msDuringAResyncOf100kInstances) {
#if defined(__SANITIZE_ADDRESS__)
  // A latency bound: judged in the optimised build (make test); under ASan every
  // read is several times slower and the 100,000-row resync alone takes seconds.
  GTEST_SKIP() << "latency bound not judged under AddressSanitizer";
#endif
  test_support::TempDir dir;
  const auto started = Clock::now();
  populate(dir.file("discoveryd.db"));
  const auto read_started = Clock::now();
  {
    // What one resync reads: it takes well over the bound, which is what makes
    // this test fail when a read blocks the event loop.
    store::SqliteStore store({dir.file("discoveryd.db")});
    EXPECT_EQ(store.read_all_instances().size(), static_cast<std::size_t>(kInstances));
  }
  std::cerr << "populated " << kInstances << " instances in " << ms(read_started - started)
            << " ms; reading them all takes " << ms(Clock::now() - read_started) << " ms\n";
  // synchronous = normal: commits skip fsync, so that registrations measure the
  // event loop rather than the disk (other work on the machine can stall an
  // fsync for longer than the bound).
  std::ofstream(dir.file("resync.toml"))
      << "[health]\nresync_interval = \"1s\"\n[store]\nsynchronous = \"normal\"\n";
  Daemon daemon(
      dir, {.db_path = {}, .extra_args = {"--config", dir.file("resync.toml")}, .redis_port = {}});
  ASSERT_TRUE(daemon.start()) << daemon.log();
  HttpClient control(daemon.http_port());

  // A read on the event loop stalls requests in every round (each round spans a
  // whole resync); a stray scheduling delay on a busy machine rarely does. So up
  // to three rounds, and one within the bound passes.
  std::vector<Round> rounds;
  while (rounds.size() < 3 && (rounds.empty() || !rounds.back().within_bound())) {
    rounds.push_back(measure_round(daemon.http_port(), control, 10'000 * int(rounds.size())));
    std::cerr << "round " << rounds.size() << ": " << rounds.back().summary() << "\n";
    if (HasFailure()) break;
  }
  EXPECT_TRUE(rounds.back().within_bound())
      << "in every round a request took longer than " << ms(kBound)
      << " ms; last round: " << rounds.back().summary();
}

}  // namespace
