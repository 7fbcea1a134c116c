// Issue 7, "Reliability": the real daemon under the faults production brings.
//  - SIGKILL at random moments of a mixed load: every acknowledged change
//    survives, nothing is half-applied, the file passes integrity_check.
//  - SIGTERM under load: requests in flight complete, every acknowledged change
//    is kept, the ports are released, exit 0, a restart on the same DB serves.
// Storage faults are in storage_fault_test.cpp, Redis faults in
// redis_fault_test.cpp.
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

struct InstanceState {
  bool present = false;
  int generation = 0;
  std::optional<double> load;
  friend bool operator==(const InstanceState&, const InstanceState&) = default;
};

std::string describe(const InstanceState& state) {
  if (!state.present) return "absent";
  return "gen " + std::to_string(state.generation) + " load " +
         (state.load ? std::to_string(*state.load) : "null");
}

struct OwnedInstance {
  std::string service;
  std::string address;
  InstanceState acknowledged;
  // The request in flight when the daemon died: it may or may not have been
  // applied, but only as a whole.
  std::optional<InstanceState> in_doubt;
};

// One client thread's instances (no other thread touches them, so the order of
// its acknowledged requests is the order the daemon applied them).
struct Worker {
  std::map<std::string, OwnedInstance> instances;
  std::map<std::string, std::uint64_t> changes_acknowledged;  // per service
  int next_instance = 0;
  int heartbeats = 0;
  int unexpected_statuses = 0;
  std::string last_unexpected;
};

constexpr int kServices = 3;
std::string service_name(int index) {
  return "crash" + std::to_string(index);
}

json registration_body(const OwnedInstance& instance, int generation) {
  return {{"address", instance.address},
          {"port", 1000 + generation},
          {"tags", {"gen" + std::to_string(generation)}},
          {"meta", {{"gen", std::to_string(generation)}}},
          {"weight", 1 + generation % 100},
          // A TTL check: the health checker leaves the instances alone during the test.
          {"check", {{"type", "ttl"}, {"ttl", "1h"}}}};
}

// Runs one worker's share of the mixed load until `stop` or the daemon is gone.
void run_writes(Worker& worker, int worker_index, std::uint16_t http_port,
                const std::atomic<bool>& stop, std::uint32_t seed) {
  std::mt19937 random(seed);
  HttpClient http(http_port);
  while (!stop) {
    std::vector<std::string> present;
    for (const auto& [id, instance] : worker.instances) {
      if (instance.acknowledged.present) present.push_back(id);
    }
    const int dice = static_cast<int>(random() % 100);
    std::string id;
    std::string method;
    json body;
    InstanceState after;
    std::string path;
    if (present.size() < 4 || dice < 25) {
      const int k = worker.next_instance++;
      id = "w" + std::to_string(worker_index) + "-" + std::to_string(k);
      auto& instance = worker.instances[id];
      instance.service = service_name(k % kServices);
      instance.address = "127." + std::to_string(worker_index) + "." + std::to_string(k / 250) +
                         "." + std::to_string(k % 250 + 1);
      after = {true, 1, std::nullopt};
      method = "PUT";
      body = registration_body(instance, 1);
    } else {
      id = present[random() % present.size()];
      const auto& acknowledged = worker.instances[id].acknowledged;
      if (dice < 55) {
        // A re-registration keeps the last reported load.
        after = {true, acknowledged.generation + 1, acknowledged.load};
        method = "PUT";
        body = registration_body(worker.instances[id], after.generation);
      } else if (dice < 75) {
        after = {false, 0, std::nullopt};
        method = "DELETE";
      } else {
        // A load that differs from every earlier one: each heartbeat is a change.
        after = acknowledged;
        after.load = 1 + ++worker.heartbeats;
        method = "PUT";
        path = "/heartbeat";
        body = {{"load", *after.load}};
      }
    }
    auto& instance = worker.instances[id];
    instance.in_doubt = after;
    const std::string target = "/v1/services/" + instance.service + "/instances/" + id + path;
    const auto result = http.request(method, target, method == "DELETE" ? "" : body.dump(),
                                     method == "DELETE" ? "" : "application/json");
    if (result.status == 0) return;  // the daemon died with this request in doubt
    instance.in_doubt.reset();
    if (result.status >= 200 && result.status < 300) {
      instance.acknowledged = after;
      ++worker.changes_acknowledged[instance.service];
    } else {
      ++worker.unexpected_statuses;
      worker.last_unexpected =
          method + " " + target + " -> " + std::to_string(result.status) + " " + result.body;
    }
  }
}

// Lookups alongside the writes (DNS over UDP and the HTTP read route): the
// daemon is killed in the middle of serving them too.
void run_lookups(std::uint16_t http_port, std::uint16_t dns_port, const std::atomic<bool>& stop,
                 std::uint32_t seed) {
  std::mt19937 random(seed);
  HttpClient http(http_port);
  while (!stop) {
    const auto service = service_name(static_cast<int>(random() % kServices));
    a_record_addresses(dns_port, service + ".service.discovery.", 200ms);
    if (http.get("/v1/services/" + service).status == 0) return;
  }
}

// The row of one instance as the database holds it, in InstanceState terms; a
// row whose columns disagree about their generation yields generation -1.
std::map<std::string, InstanceState> read_instance_rows(
    SQLite::Database& db, std::map<std::string, std::string>& service_of) {
  std::map<std::string, InstanceState> rows;
  SQLite::Statement query(db, "SELECT service, id, port, tags, meta, weight, load FROM instances");
  while (query.executeStep()) {
    const std::string id = query.getColumn(1).getString();
    service_of[id] = query.getColumn(0).getString();
    const int generation = query.getColumn(2).getInt() - 1000;
    const bool consistent =
        query.getColumn(3).getString() == json({"gen" + std::to_string(generation)}).dump() &&
        query.getColumn(4).getString() == json({{"gen", std::to_string(generation)}}).dump() &&
        query.getColumn(5).getInt() == 1 + generation % 100;
    InstanceState state{true, consistent ? generation : -1, std::nullopt};
    if (!query.getColumn(6).isNull()) state.load = query.getColumn(6).getDouble();
    rows[id] = state;
  }
  return rows;
}

// What the SIGKILL test accumulates across kills.
struct KillTally {
  std::map<std::string, std::uint64_t> expected_versions;  // changes applied, per service
  int resolved_applied = 0;                                // in doubt at a kill, committed
  int resolved_not_applied = 0;                            // in doubt at a kill, not committed
};

// The file a killed daemon left is sound: integrity_check, no orphan rows.
void expect_sound_file(SQLite::Database& db, int iteration) {
  ASSERT_EQ(integrity_check(db), "ok") << "iteration " << iteration;
  SQLite::Statement foreign_keys(db, "PRAGMA foreign_key_check");
  EXPECT_FALSE(foreign_keys.executeStep()) << "an instance row without its service row";
}

// Every instance row is what its worker had acknowledged, or what its request
// in flight at the kill would have made it (then that request is resolved as
// committed, whole); no row was never registered.
void reconcile_rows(SQLite::Database& db, std::vector<Worker>& workers, KillTally& tally,
                    int iteration) {
  std::map<std::string, std::string> service_of;
  auto rows = read_instance_rows(db, service_of);
  for (auto& worker : workers) {
    EXPECT_EQ(worker.unexpected_statuses, 0) << worker.last_unexpected;
    for (auto& [id, instance] : worker.instances) {
      const auto row = rows.find(id);
      const InstanceState stored = row == rows.end() ? InstanceState{} : row->second;
      if (row != rows.end()) {
        EXPECT_EQ(service_of[id], instance.service) << id;
        rows.erase(row);
      }
      if (stored == instance.acknowledged) {
        if (instance.in_doubt && !(*instance.in_doubt == stored)) ++tally.resolved_not_applied;
      } else if (instance.in_doubt && stored == *instance.in_doubt) {
        // The request in flight was committed: its whole effect, version included.
        instance.acknowledged = stored;
        ++tally.expected_versions[instance.service];
        ++tally.resolved_applied;
      } else {
        ADD_FAILURE() << "iteration " << iteration << ": " << id << " holds " << describe(stored)
                      << ", acknowledged " << describe(instance.acknowledged)
                      << (instance.in_doubt ? ", in doubt " : "")
                      << (instance.in_doubt ? describe(*instance.in_doubt) : "");
      }
      instance.in_doubt.reset();
    }
    for (const auto& [service, count] : worker.changes_acknowledged) {
      tally.expected_versions[service] += count;
    }
    worker.changes_acknowledged.clear();
  }
  for (const auto& [id, state] : rows) {
    ADD_FAILURE() << "iteration " << iteration << ": row " << id << " (" << describe(state)
                  << ") was never registered";
  }
}

// Each change bumps its service's version in the same transaction: a change
// committed without its bump, or a bump without its change, shows here. An
// outbox entry never names a version its service has not reached.
void expect_versions_and_outbox(SQLite::Database& db, const KillTally& tally, int iteration) {
  SQLite::Statement versions(db, "SELECT name, version FROM services");
  std::map<std::string, std::uint64_t> stored_versions;
  while (versions.executeStep()) {
    stored_versions[versions.getColumn(0).getString()] =
        static_cast<std::uint64_t>(versions.getColumn(1).getInt64());
  }
  EXPECT_EQ(stored_versions, tally.expected_versions) << "iteration " << iteration;
  SQLite::Statement outbox(
      db,
      "SELECT count(*) FROM cache_outbox o LEFT JOIN services s ON s.name = o.service "
      "WHERE s.version IS NULL OR o.version > s.version");
  ASSERT_TRUE(outbox.executeStep());
  EXPECT_EQ(outbox.getColumn(0).getInt(), 0);
}

// The restarted daemon serves exactly the acknowledged state.
void expect_serves_acknowledged(Daemon& daemon, const std::vector<Worker>& workers) {
  ASSERT_TRUE(daemon.start()) << daemon.log();
  HttpClient http(daemon.http_port());
  for (int s = 0; s < kServices; ++s) {
    std::set<std::string> expected;
    for (const auto& worker : workers) {
      for (const auto& [id, instance] : worker.instances) {
        if (instance.service == service_name(s) && instance.acknowledged.present) {
          expected.insert(id);
        }
      }
    }
    const auto result = http.get("/v1/services/" + service_name(s));
    std::set<std::string> served;
    const auto document = result.json();
    for (const auto& instance : document.value("instances", json::array()))
      served.insert(instance["id"]);
    EXPECT_EQ(served, expected) << service_name(s);
  }
}

TEST(Reliability, SigkillAtRandomMomentsOfAMixedLoadKeepsEveryAcknowledgedChangeWhole) {
  test_support::TempDir dir;
  Daemon daemon(dir);
  // At least kMinKills kills; then more until kMinChanges changes were
  // committed, so a slow build (ASan, a busy CI) still proves as much work.
  constexpr int kMinKills = 20;
  constexpr int kMaxKills = 100;
  constexpr std::uint64_t kMinChanges = 200;
  constexpr int kWriters = 4;
  constexpr int kReaders = 2;
  std::vector<Worker> workers(kWriters);
  KillTally tally;
  std::mt19937 random(std::random_device{}());

  const auto committed = [&tally] {
    std::uint64_t total = 0;
    for (const auto& [service, version] : tally.expected_versions) total += version;
    return total;
  };
  int kills = 0;
  for (; kills < kMaxKills && (kills < kMinKills || committed() < kMinChanges); ++kills) {
    const int iteration = kills;
    ASSERT_TRUE(daemon.start()) << daemon.log();
    std::atomic<bool> stop{false};
    std::vector<std::thread> threads;
    for (int w = 0; w < kWriters; ++w) {
      threads.emplace_back(run_writes, std::ref(workers[w]), w, daemon.http_port(), std::cref(stop),
                           static_cast<std::uint32_t>(random()));
    }
    for (int r = 0; r < kReaders; ++r) {
      threads.emplace_back(run_lookups, daemon.http_port(), daemon.dns_port(), std::cref(stop),
                           static_cast<std::uint32_t>(random()));
    }
    // A random moment: anywhere from the first requests to well into the load.
    std::this_thread::sleep_for(std::chrono::milliseconds(20 + random() % 600));
    daemon.kill();
    stop = true;
    for (auto& thread : threads) thread.join();

    // The daemon is dead: read the file it left, as the next start will.
    SQLite::Database db(daemon.db_path(), SQLite::OPEN_READWRITE);
    ASSERT_NO_FATAL_FAILURE(expect_sound_file(db, iteration));
    reconcile_rows(db, workers, tally, iteration);
    ASSERT_NO_FATAL_FAILURE(expect_versions_and_outbox(db, tally, iteration));
    if (HasFailure()) break;
  }

  const std::uint64_t total_changes = committed();
  std::cout << "[ reliability ] " << kills << " kills, " << total_changes
            << " changes committed, in doubt at the kill: " << tally.resolved_applied
            << " applied, " << tally.resolved_not_applied << " not applied\n";
  // Meaningful only if a good amount of work was acknowledged.
  EXPECT_GE(total_changes, kMinChanges);
  expect_serves_acknowledged(daemon, workers);
}

// ---------------------------------------------------------------------------
// Graceful shutdown and restart under load.
// ---------------------------------------------------------------------------

// True when `port` can be bound on 127.0.0.1 for `type` (SOCK_STREAM/SOCK_DGRAM).
bool can_bind(std::uint16_t port, int type) {
  const int fd = ::socket(AF_INET, type | SOCK_CLOEXEC, 0);
  const int on = 1;
  // TIME_WAIT of closed connections must not count as "still listening".
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(port);
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  const bool bound = ::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0;
  ::close(fd);
  return bound;
}

// Slow clients for the SIGTERM test: headers and half a body sent before the
// signal, the rest after.
struct SlowRequests {
  std::vector<int> fds;
  std::vector<std::string> rest;
};

SlowRequests start_slow_requests(std::uint16_t http_port, int count) {
  SlowRequests slow;
  for (int s = 0; s < count; ++s) {
    const std::string body =
        json({{"address", "127.7.1." + std::to_string(s + 1)}, {"port", 80}}).dump();
    const std::string head = "PUT /v1/services/slow/instances/s" + std::to_string(s) +
                             " HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
                             "Content-Length: " +
                             std::to_string(body.size()) + "\r\n\r\n";
    const int fd = test_support::connect_tcp(http_port);
    EXPECT_GE(fd, 0);
    EXPECT_TRUE(test_support::send_all(fd, head + body.substr(0, body.size() / 2)));
    slow.fds.push_back(fd);
    slow.rest.push_back(body.substr(body.size() / 2));
  }
  return slow;
}

// Finishes the slow requests; each must be answered 201 although the signal
// came while it was half received.
void finish_slow_requests(SlowRequests& slow, std::set<std::string>& acknowledged) {
  for (std::size_t s = 0; s < slow.fds.size(); ++s) {
    ASSERT_TRUE(test_support::send_all(slow.fds[s], slow.rest[s]));
    const auto response = test_support::read_until_close(slow.fds[s], 10s);
    ::close(slow.fds[s]);
    EXPECT_EQ(response.rfind("HTTP/1.1 201", 0), 0u) << "slow request " << s << ": " << response;
    if (response.rfind("HTTP/1.1 201", 0) == 0) acknowledged.insert("s" + std::to_string(s));
  }
}

// A burst of registrations from several clients, running until `stop` or until
// the listener is closed; every 201 is recorded.
class RegistrationBurst {
 public:
  RegistrationBurst(std::uint16_t http_port, int clients) {
    for (int c = 0; c < clients; ++c) {
      threads_.emplace_back([this, http_port, c] { run(http_port, c); });
    }
  }
  int acked() const { return acked_; }
  // Stops the clients and returns what they saw acknowledged.
  std::set<std::string> stop() {
    stop_ = true;
    for (auto& thread : threads_) thread.join();
    threads_.clear();
    return acknowledged_;
  }
  ~RegistrationBurst() { stop(); }

 private:
  void run(std::uint16_t http_port, int client) {
    HttpClient http(http_port);
    for (int n = 0; !stop_; ++n) {
      const std::string id = "b" + std::to_string(client) + "-" + std::to_string(n);
      const auto result =
          http.put("/v1/services/web/instances/" + id,
                   {{"address", "127.7.2." + std::to_string(client + 1)}, {"port", 1000 + n}});
      if (result.status == 0) return;  // the listener is closed
      if (result.status == 201) {
        std::lock_guard lock(mutex_);
        acknowledged_.insert(id);
        ++acked_;
      }
    }
  }
  std::mutex mutex_;
  std::set<std::string> acknowledged_;
  std::atomic<int> acked_{0};
  std::atomic<bool> stop_{false};
  std::vector<std::thread> threads_;
};

// After a clean exit: the listeners are closed, the ports free for the next start.
void expect_ports_released(const Daemon& daemon, std::uint16_t http_port, std::uint16_t dns_port) {
  EXPECT_TRUE(can_bind(dns_port, SOCK_DGRAM));
  EXPECT_TRUE(can_bind(dns_port, SOCK_STREAM));
  EXPECT_TRUE(can_bind(http_port, SOCK_STREAM));
  const auto log = daemon.log();
  EXPECT_NE(log.find("stopped"), std::string::npos) << log.substr(0, 20000);
}

// A graceful restart on the same database and ports serves every acknowledged
// registration.
void expect_restart_serves(Daemon& daemon, std::uint16_t http_port, std::uint16_t dns_port,
                           const std::set<std::string>& acknowledged, std::size_t slow_count) {
  daemon.set_http_port(http_port);
  ASSERT_TRUE(daemon.start()) << daemon.log();
  EXPECT_EQ(daemon.http_port(), http_port);
  HttpClient http(http_port);
  std::set<std::string> served;
  for (const std::string service : {"web", "slow"}) {
    const auto document = http.get("/v1/services/" + service).json();
    for (const auto& instance : document.value("instances", json::array())) {
      served.insert(instance["id"]);
    }
  }
  std::vector<std::string> lost;
  std::set_difference(acknowledged.begin(), acknowledged.end(), served.begin(), served.end(),
                      std::back_inserter(lost));
  EXPECT_TRUE(lost.empty()) << lost.size() << " acknowledged registrations lost, e.g. "
                            << lost.front();
  const auto slow = a_record_addresses(dns_port, "slow.service.discovery.");
  ASSERT_TRUE(slow.has_value());
  EXPECT_EQ(slow->size(), slow_count);
}

TEST(Reliability, SigtermUnderLoadCompletesRequestsInFlightLosesNothingAndRestarts) {
  test_support::TempDir dir;
  Daemon daemon(dir);
  ASSERT_TRUE(daemon.start()) << daemon.log();
  const auto http_port = daemon.http_port();
  const auto dns_port = daemon.dns_port();
  ASSERT_EQ(HttpClient(http_port)
                .put("/v1/services/web/instances/w0", {{"address", "127.7.0.1"}, {"port", 80}})
                .status,
            201);
  constexpr int kSlow = 3;
  SlowRequests slow = start_slow_requests(http_port, kSlow);
  ASSERT_FALSE(HasFailure());
  RegistrationBurst burst(http_port, 4);
  ASSERT_TRUE(wait_until([&] { return burst.acked() >= 50; }, 20s));
  daemon.process()->signal(SIGTERM);
  // The daemon stopped accepting: the signal was handled while the slow requests
  // were half received.
  ASSERT_TRUE(wait_until(
      [&] {
        const int fd = test_support::connect_tcp(http_port);
        if (fd >= 0) ::close(fd);
        return fd < 0;
      },
      10s))
      << daemon.log();
  // While requests are still draining, DNS keeps answering.
  const auto while_draining = a_record_addresses(dns_port, "web.service.discovery.");
  EXPECT_TRUE(while_draining && !while_draining->empty());

  std::set<std::string> acknowledged = {"w0"};
  ASSERT_NO_FATAL_FAILURE(finish_slow_requests(slow, acknowledged));
  acknowledged.merge(burst.stop());

  EXPECT_EQ(daemon.wait_exit(15s), 0) << daemon.log();
  expect_ports_released(daemon, http_port, dns_port);
  expect_restart_serves(daemon, http_port, dns_port, acknowledged, kSlow);
}

}  // namespace
