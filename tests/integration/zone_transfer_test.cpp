// Zone transfers with real secondaries (xfr/): Knot DNS and NSD transfer the
// live registry from the daemon, are told of changes by NOTIFY, follow them by
// IXFR within 2 s, and answer every name as the daemon does. Plus the access
// rules (allowed addresses, TSIG), the UDP forms, and serials across restarts.
// Loopback only: every instance is a 127/8 address with a ttl check, except
// the health-removal target, a closed port on 127.0.0.1.
#include <gtest/gtest.h>

#include <fstream>
#include <set>
#include <sstream>

#include "tests/dns/test_support.h"
#include "tests/integration/secondaries.h"
#include "tests/support/http_client.h"
#include "tests/support/process.h"

namespace {

using namespace std::chrono_literals;
using nlohmann::json;
using test_support::wait_until;
using xfr_test::Secondary;

enum class Kind { knot, nsd };

json ttl_instance(const std::string& address) {
  return {{"address", address}, {"port", 8080}, {"check", {{"type", "ttl"}, {"ttl", "1h"}}}};
}

std::string kdig(std::uint16_t port, const std::string& arguments) {
  return dns::testing::run_command("kdig @127.0.0.1 -p " + std::to_string(port) +
                                   " +timeout=2 +retry=0 " + arguments + " 2>&1")
      .value_or("");
}

// Every (owner, type) the daemon's own AXFR holds, the SOA left out.
std::set<std::pair<std::string, std::string>> names_and_types(const std::string& axfr) {
  std::set<std::pair<std::string, std::string>> result;
  std::istringstream in(axfr);
  for (std::string line; std::getline(in, line);) {
    if (line.empty() || line[0] == ';') continue;
    std::istringstream fields(line);
    std::string owner, ttl, klass, type;
    if (fields >> owner >> ttl >> klass >> type && type != "SOA") result.insert({owner, type});
  }
  return result;
}

class ZoneTransferTest : public ::testing::TestWithParam<Kind> {
 protected:
  void SetUp() override {
    const char* program = GetParam() == Kind::knot ? "knotd" : "nsd";
    if (!dns::testing::command_exists(program)) GTEST_SKIP() << program << " not installed";
    secondary_port_ = test_support::free_port();
  }
  void TearDown() override {
    if (!HasFailure()) return;
    if (daemon_) std::cerr << "---- daemon log ----\n" << daemon_->log().substr(0, 20000);
    if (secondary_) std::cerr << "---- secondary log ----\n" << secondary_->log();
  }

  void start_daemon(std::vector<std::string> extra = {}) {
    std::vector<std::string> args = {
        "--xfr-allow",       "127.0.0.1",
        "--notify",          "127.0.0.1:" + std::to_string(secondary_port_),
        "--notify-interval", "100ms"};
    args.insert(args.end(), extra.begin(), extra.end());
    daemon_ = std::make_unique<test_support::Daemon>(
        dir_, test_support::Daemon::Options{
                  .db_path = "", .extra_args = args, .redis_port = std::nullopt});
    ASSERT_TRUE(daemon_->start()) << daemon_->log();
    http_ = test_support::HttpClient(daemon_->http_port());
  }
  void start_secondary(std::optional<std::string> tsig = std::nullopt) {
    xfr_test::SecondaryOptions options{secondary_port_, daemon_->dns_port(), std::move(tsig), {}};
    secondary_ = GetParam() == Kind::knot ? xfr_test::make_knot(dir_, options)
                                          : xfr_test::make_nsd(dir_, options);
    ASSERT_TRUE(secondary_->start()) << secondary_->log();
    ASSERT_TRUE(wait_until([&] { return secondary_->serial() == daemon_serial(); }, 15s))
        << "the secondary never loaded the zone";
  }
  std::optional<std::uint32_t> daemon_serial() {
    std::istringstream fields(xfr_test::sorted_answer(daemon_->dns_port(), "discovery.", "SOA"));
    std::string mname, rname;
    std::uint32_t serial = 0;
    if (!(fields >> mname >> rname >> serial)) return std::nullopt;
    return serial;
  }
  json xfr_status() { return json::parse(http_.get("/v1/status").body).at("xfr"); }
  bool secondary_answers(const std::string& name, const std::string& expected,
                         std::chrono::milliseconds within = 2s) {
    return wait_until([&] { return secondary_->answer(name, "A") == expected; }, within, 20ms);
  }

  test_support::TempDir dir_;
  std::uint16_t secondary_port_ = 0;
  std::unique_ptr<test_support::Daemon> daemon_;
  std::unique_ptr<Secondary> secondary_;
  test_support::HttpClient http_{0};
};

TEST_P(ZoneTransferTest, TheSecondaryFollowsEveryChangeByIxfrWithinTwoSeconds) {
  start_daemon();
  ASSERT_EQ(http_.put("/v1/services/web/instances/w1", ttl_instance("127.3.0.1")).status, 201);
  start_secondary();
  EXPECT_EQ(secondary_->answer("web.service.discovery.", "A"), "127.3.0.1\n");
  const auto full_transfers = xfr_status().at("axfr").get<int>();

  ASSERT_EQ(http_.put("/v1/services/api/instances/a1", ttl_instance("127.3.0.2")).status, 201);
  EXPECT_TRUE(secondary_answers("api.service.discovery.", "127.3.0.2\n"));
  ASSERT_EQ(http_.del("/v1/services/web/instances/w1").status, 200);
  EXPECT_TRUE(secondary_answers("web.service.discovery.", ""));

  // A health removal: three failed probes of a closed port, then gone there too.
  const std::uint16_t closed = test_support::free_port();
  ASSERT_EQ(http_
                .put("/v1/services/flaky/instances/f1",
                     {{"address", "127.0.0.1"},
                      {"port", closed},
                      {"check", {{"type", "tcp"}, {"interval", "200ms"}, {"timeout", "100ms"}}}})
                .status,
            201);
  ASSERT_TRUE(secondary_answers("flaky.service.discovery.", "127.0.0.1\n"));
  ASSERT_TRUE(wait_until(
      [&] {
        return xfr_test::sorted_answer(daemon_->dns_port(), "flaky.service.discovery.", "A")
            .empty();
      },
      10s));
  EXPECT_TRUE(secondary_answers("flaky.service.discovery.", ""));

  // Small changes went incrementally: no other full transfer.
  const json status = xfr_status();
  EXPECT_EQ(status.at("axfr").get<int>(), full_transfers) << status;
  EXPECT_GE(status.at("ixfr").get<int>(), 4) << status;
  EXPECT_EQ(status.at("ixfr_as_axfr").get<int>(), 0) << status;
  if (GetParam() == Kind::knot) {
    EXPECT_NE(secondary_->log().find("IXFR, incoming"), std::string::npos) << secondary_->log();
  }
}

TEST_P(ZoneTransferTest, TheSecondaryAnswersEveryNameAsTheDaemonDoes) {
  start_daemon();
  for (int i = 1; i <= 5; ++i) {
    json body = ttl_instance("127.3.1." + std::to_string(i));
    body["tags"] = {i % 2 ? "odd" : "even"};
    body["weight"] = i;
    ASSERT_EQ(http_.put("/v1/services/shop/instances/s" + std::to_string(i), body).status, 201);
  }
  ASSERT_EQ(http_.put("/v1/services/six/instances/v6", ttl_instance("::1")).status, 201);
  start_secondary();
  const auto names = names_and_types(kdig(daemon_->dns_port(), "discovery. AXFR"));
  ASSERT_GT(names.size(), 10u);
  for (const auto& [owner, type] : names) {
    EXPECT_EQ(secondary_->answer(owner, type),
              xfr_test::sorted_answer(daemon_->dns_port(), owner, type))
        << owner << " " << type;
  }
}

TEST_P(ZoneTransferTest, SerialsNeverGoBackwardsAcrossARestart) {
  start_daemon();
  ASSERT_EQ(http_.put("/v1/services/web/instances/w1", ttl_instance("127.3.2.1")).status, 201);
  start_secondary();
  const auto before = daemon_serial();
  ASSERT_TRUE(before);
  daemon_->stop();
  ASSERT_TRUE(daemon_->start()) << daemon_->log();
  http_ = test_support::HttpClient(daemon_->http_port());
  EXPECT_EQ(daemon_serial(), before);  // the same registry, the same serial
  ASSERT_EQ(http_.put("/v1/services/web/instances/w2", ttl_instance("127.3.2.2")).status, 201);
  // The serial follows the commit within moments (the zone model follows the feed).
  EXPECT_TRUE(wait_until([&] { return daemon_serial() > before; }, 2s));
  // The new daemon has no journal yet: the secondary still catches up.
  EXPECT_TRUE(secondary_answers("web.service.discovery.", "127.3.2.1\n127.3.2.2\n", 5s));
}

TEST_P(ZoneTransferTest, ASecondaryWithTheTsigKeyFollowsChanges) {
  const std::string key = "hmac-sha256:transfer-key:MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";
  std::ofstream(dir_.file("transfer.key")) << key << "\n";
  start_daemon({"--tsig-key-file", dir_.file("transfer.key")});
  start_secondary(key);
  ASSERT_EQ(http_.put("/v1/services/web/instances/w1", ttl_instance("127.3.3.1")).status, 201);
  EXPECT_TRUE(secondary_answers("web.service.discovery.", "127.3.3.1\n"));
  EXPECT_EQ(xfr_status().at("refused").get<int>(), 0) << xfr_status();
}

INSTANTIATE_TEST_SUITE_P(Secondaries, ZoneTransferTest, ::testing::Values(Kind::knot, Kind::nsd),
                         [](const auto& info) {
                           return info.param == Kind::knot ? "Knot" : "Nsd";
                         });

}  // namespace
