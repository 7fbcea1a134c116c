// Who may transfer the zone, and transfers of a large one: only from allowed
// addresses, only TSIG-signed with the configured key, AXFR never over UDP,
// IXFR over UDP the SOA alone; a 100,000-instance zone loads in Knot while the
// daemon keeps answering queries. Loopback only (all of 127/8 is local, so
// kdig -b 127.0.0.2 is "another client").
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <fstream>
#include <sstream>
#include <thread>

#include "store/sqlite/sqlite_store.h"
#include "tests/dns/test_support.h"
#include "tests/integration/secondaries.h"
#include "tests/store/store_test_support.h"
#include "tests/support/http_client.h"
#include "tests/support/postgres_server.h"
#include "tests/support/process.h"

namespace {

using namespace std::chrono_literals;
using test_support::wait_until;

// A 32-byte secret, base64.
const std::string kKey = "hmac-sha256:transfer-key:MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";
const std::string kWrongKey =
    "hmac-sha256:transfer-key:ZmVkY2JhOTg3NjU0MzIxMGZlZGNiYTk4NzY1NDMyMTA=";

std::string kdig(std::uint16_t port, const std::string& arguments) {
  return dns::testing::run_command("kdig @127.0.0.1 -p " + std::to_string(port) +
                                   " +timeout=2 +retry=0 " + arguments + " 2>&1")
      .value_or("");
}

std::unique_ptr<test_support::Daemon> start_daemon(const test_support::TempDir& dir,
                                                   std::vector<std::string> args) {
  auto daemon = std::make_unique<test_support::Daemon>(
      dir, test_support::Daemon::Options{
               .db_path = "", .extra_args = std::move(args), .redis_port = std::nullopt});
  if (!daemon->start()) ADD_FAILURE() << daemon->log();
  return daemon;
}

TEST(ZoneTransferAccess, OnlyAllowedAddressesWithTheKeyMayTransfer) {
  test_support::TempDir dir;
  std::ofstream(dir.file("transfer.key")) << kKey << "\n";
  auto daemon = start_daemon(
      dir, {"--xfr-allow", "127.0.0.1,127.0.0.2/32", "--tsig-key-file", dir.file("transfer.key")});
  const std::uint16_t port = daemon->dns_port();
  const auto signed_axfr = kdig(port, "-b 127.0.0.2 -y " + kKey + " discovery. AXFR");
  EXPECT_NE(signed_axfr.find("IN\tSOA"), std::string::npos) << signed_axfr;
  EXPECT_EQ(signed_axfr.find(";; ERROR"), std::string::npos) << signed_axfr;  // TSIG verified
  EXPECT_NE(kdig(port, "-b 127.0.0.3 -y " + kKey + " discovery. AXFR").find("REFUSED"),
            std::string::npos);
  EXPECT_NE(kdig(port, "-b 127.0.0.2 discovery. AXFR").find("REFUSED"), std::string::npos);
  // RFC 8945: the error comes back in a TSIG record.
  EXPECT_NE(kdig(port, "-b 127.0.0.2 -y " + kWrongKey + " discovery. AXFR").find("BADSIG"),
            std::string::npos);
  const std::string other_key =
      "hmac-sha256:other-key:ZmVkY2JhOTg3NjU0MzIxMGZlZGNiYTk4NzY1NDMyMTA=";
  EXPECT_NE(kdig(port, "-b 127.0.0.2 -y " + other_key + " discovery. AXFR").find("BADKEY"),
            std::string::npos);
  // The key never reaches the log.
  EXPECT_EQ(daemon->log().find("MDEyMzQ1Njc4OWFi"), std::string::npos);
  // Other zones are not ours to transfer.
  EXPECT_NE(kdig(port, "-y " + kKey + " example.com. AXFR").find("NOTAUTH"), std::string::npos);
}

TEST(ZoneTransferAccess, OverUdpAxfrIsFormerrAndIxfrTheSoaAlone) {
  test_support::TempDir dir;
  auto daemon = start_daemon(dir, {"--xfr-allow", "127.0.0.1"});
  const std::uint16_t port = daemon->dns_port();
  EXPECT_NE(kdig(port, "+notcp discovery. AXFR").find("FORMERR"), std::string::npos);
  const auto ixfr = kdig(port, "+notcp +noall +answer discovery. IXFR=1");
  EXPECT_NE(ixfr.find("IN\tSOA"), std::string::npos) << ixfr;
  EXPECT_EQ(std::count(ixfr.begin(), ixfr.end(), '\n'), 1) << ixfr;
  // Without [xfr] configured, transfers are refused as before.
  test_support::TempDir plain_dir;
  auto plain = start_daemon(plain_dir, {});
  EXPECT_NE(kdig(plain->dns_port(), "discovery. AXFR").find("REFUSED"), std::string::npos);
}

// 100,000 instances written straight into the database (fast), then served.
void fill_registry(const std::string& path, int instances) {
  store::SqliteStore db({.path = path});
  std::vector<store::Mutation> batch;
  for (int i = 0; i < instances; ++i) {
    auto registration = store_test::make_registration(
        "svc" + std::to_string(i % 1000), "i" + std::to_string(i),
        "127.20." + std::to_string(i / 250 % 250) + "." + std::to_string(1 + i % 250));
    registration.check.type = store::CheckType::ttl;
    registration.check.ttl = std::chrono::hours(1);
    batch.push_back(store::Upsert{registration});
    if (batch.size() == 1000) {
      db.apply(batch, std::chrono::system_clock::now());
      batch.clear();
    }
  }
}

TEST(ZoneTransferAccess, AHundredThousandInstancesLoadInKnotWhileQueriesAreAnswered) {
  if (!dns::testing::command_exists("knotd")) GTEST_SKIP() << "knotd not installed";
  test_support::TempDir dir;
  fill_registry(dir.file("discoveryd.db"), 100'000);
  const std::uint16_t knot_port = test_support::free_port();
  auto daemon = start_daemon(
      dir, {"--xfr-allow", "127.0.0.1", "--notify", "127.0.0.1:" + std::to_string(knot_port)});
  const std::uint16_t port = daemon->dns_port();
  std::atomic<bool> done{false};
  std::atomic<int> asked{0}, unanswered{0};
  std::thread flood([&] {
    const auto query = dns::testing::make_query({.name = "svc7.service.discovery.", .type = 1});
    while (!done) {
      ++asked;
      if (!dns::testing::udp_exchange(port, query, 1s)) ++unanswered;
    }
  });
  auto knot = xfr_test::make_knot(dir, {knot_port, port, std::nullopt, {}});
  ASSERT_TRUE(knot->start()) << knot->log();
  EXPECT_TRUE(wait_until(
      [&] { return knot->answer("i99999.svc999.instance.discovery.", "A") == "127.20.149.250\n"; },
      120s, 100ms))
      << knot->log();
  done = true;
  flood.join();
  EXPECT_GT(asked.load(), 10);
  EXPECT_EQ(unanswered.load(), 0);
  EXPECT_NE(knot->log().find("AXFR, incoming"), std::string::npos);
}

std::optional<std::uint32_t> serial_at(std::uint16_t port) {
  std::istringstream fields(xfr_test::sorted_answer(port, "discovery.", "SOA"));
  std::string mname, rname;
  std::uint32_t serial = 0;
  if (!(fields >> mname >> rname >> serial)) return std::nullopt;
  return serial;
}

// Daemons sharing PostgreSQL compute the same serial for the same registry, so
// a secondary may transfer from any of them: here Knot, listing two daemons,
// goes on following the registry through the second after the first is gone,
// and the serial never moves backwards.
TEST(ZoneTransferAccess, OverPostgresASecondaryFollowsWhicheverDaemonAnswers) {
  if (!dns::testing::command_exists("knotd")) GTEST_SKIP() << "knotd not installed";
  test_support::PostgresServer postgres;
  ASSERT_TRUE(postgres.start()) << postgres.log();
  test_support::TempDir dir_a, dir_b;
  const std::uint16_t knot_port = test_support::free_port();
  const std::vector<std::string> args = {
      "--xfr-allow",       "127.0.0.1", "--notify", "127.0.0.1:" + std::to_string(knot_port),
      "--notify-interval", "100ms"};
  const auto start = [&](test_support::TempDir& dir) {
    auto daemon = std::make_unique<test_support::Daemon>(
        dir, test_support::Daemon::Options{
                 .db_path = postgres.url(), .extra_args = args, .redis_port = std::nullopt});
    EXPECT_TRUE(daemon->start()) << daemon->log();
    return daemon;
  };
  auto a = start(dir_a);
  auto b = start(dir_b);
  test_support::HttpClient http_a(a->http_port()), http_b(b->http_port());
  ASSERT_EQ(http_a
                .put("/v1/services/web/instances/w1",
                     nlohmann::json{{"address", "127.3.4.1"},
                                    {"port", 80},
                                    {"check", {{"type", "ttl"}, {"ttl", "1h"}}}})
                .status,
            201);
  ASSERT_TRUE(wait_until(
      [&] {
        return serial_at(a->dns_port()) && serial_at(a->dns_port()) == serial_at(b->dns_port());
      },
      5s));
  auto knot = xfr_test::make_knot(dir_a, {knot_port, a->dns_port(), std::nullopt, {b->dns_port()}});
  ASSERT_TRUE(knot->start()) << knot->log();
  ASSERT_TRUE(
      wait_until([&] { return knot->answer("web.service.discovery.", "A") == "127.3.4.1\n"; }, 10s))
      << knot->log();
  const auto before = serial_at(b->dns_port());
  a->kill();
  ASSERT_EQ(http_b
                .put("/v1/services/web/instances/w2",
                     nlohmann::json{{"address", "127.3.4.2"},
                                    {"port", 80},
                                    {"check", {{"type", "ttl"}, {"ttl", "1h"}}}})
                .status,
            201);
  EXPECT_TRUE(wait_until(
      [&] { return knot->answer("web.service.discovery.", "A") == "127.3.4.1\n127.3.4.2\n"; }, 10s))
      << knot->log();
  EXPECT_GT(*knot->serial(), *before);
  ASSERT_TRUE(a->start()) << a->log();  // back, with an empty journal: the same serial
  EXPECT_TRUE(wait_until([&] { return serial_at(a->dns_port()) == serial_at(b->dns_port()); }, 5s));
}

}  // namespace
