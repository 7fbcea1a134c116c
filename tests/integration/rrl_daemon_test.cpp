// DNS abuse limits of the real daemon, configured from a TOML file: response
// rate limiting of UDP per client (with slip), the loopback exemption of the
// default configuration, and the cap on TCP connections per client. Clients on
// 127.0.0.1 and 127.0.0.2 are distinct clients on loopback.

#include <gtest/gtest.h>

#include <fstream>

#include "tests/dns/test_support.h"
#include "tests/support/http_client.h"
#include "tests/support/process.h"

namespace {

using namespace std::chrono_literals;
using dns::testing::Bytes;
using dns::testing::make_query;
using dns::testing::Response;
using dns::testing::tally;
using dns::testing::Tally;
using dns::testing::TcpClient;
using test_support::Daemon;
using test_support::HttpClient;
using test_support::wait_until;

Bytes soa_query(std::uint16_t id = 1) {
  return make_query({.name = "discovery.", .type = 6, .id = id});
}

std::vector<Bytes> soa_queries(int count) {
  std::vector<Bytes> queries;
  for (int i = 0; i < count; ++i) queries.push_back(soa_query(static_cast<std::uint16_t>(i)));
  return queries;
}

// A daemon started with the given [dns] settings in its config file.
class RrlDaemonTest : public ::testing::Test {
 protected:
  void start_with_dns_settings(const std::string& settings) {
    std::ofstream(dir.file("dns.toml")) << "[dns]\n" << settings;
    ASSERT_TRUE(daemon.start()) << daemon.log();
  }
  void TearDown() override {
    if (HasFailure()) std::cerr << "---- daemon log ----\n" << daemon.log().substr(0, 20000);
  }
  nlohmann::json dns_status() {
    return HttpClient(daemon.http_port()).get("/v1/status").json()["dns"];
  }
  std::uint64_t dns_counter(const char* name) {
    const nlohmann::json status = dns_status();
    return status.contains(name) ? status[name].get<std::uint64_t>() : 0;
  }

  test_support::TempDir dir;
  Daemon daemon{
      dir, {.db_path = {}, .extra_args = {"--config", dir.file("dns.toml")}, .redis_port = {}}};
};

TEST_F(RrlDaemonTest, UdpOverTheLimitIsDroppedOrSlippedWhileTcpAndOtherClientsAreAnswered) {
  start_with_dns_settings(
      "rrl_responses_per_second = 10\nrrl_burst = 10\nrrl_slip = 2\nrrl_exempt = []\n");
  const auto burst = dns::testing::udp_burst(daemon.dns_port(), soa_queries(100));
  const Tally counts = tally(burst);
  const double seconds = std::chrono::duration<double>(burst.elapsed).count();
  EXPECT_GE(counts.answered, 10);
  EXPECT_LE(counts.answered, 10 + static_cast<int>(10 * seconds) + 1) << seconds << " s";
  EXPECT_GE(counts.slipped, 1);
  EXPECT_EQ(counts.other, 0);
  EXPECT_LT(counts.answered + counts.slipped, 100) << "the rest is dropped";
  // Operators see it in the status.
  EXPECT_TRUE(wait_until([&] {
    return dns_counter("rate_limited_dropped") + dns_counter("rate_limited_slipped") ==
           static_cast<std::uint64_t>(100 - counts.answered);
  })) << dns_status().dump();
  EXPECT_EQ(dns_counter("rate_limited_slipped"), static_cast<std::uint64_t>(counts.slipped));

  // Another client has its own bucket; TCP is never limited.
  EXPECT_EQ(tally(dns::testing::udp_burst(daemon.dns_port(), soa_queries(5), "127.0.0.2")).answered,
            5);
  for (int i = 0; i < 20; ++i) {
    const auto reply = dns::testing::tcp_exchange(daemon.dns_port(), soa_query());
    ASSERT_TRUE(reply) << i;
    EXPECT_EQ(Response(*reply).answer_count(), 1u);
  }
  // Tokens come back with time.
  EXPECT_TRUE(wait_until(
      [&] {
        return tally(dns::testing::udp_burst(daemon.dns_port(), soa_queries(1), "127.0.0.1", 200ms))
                   .answered == 1;
      },
      10s));
}

TEST_F(RrlDaemonTest, LoopbackIsExemptUnlessConfiguredOtherwise) {
  // A low rate, and rrl_exempt left at its default (127.0.0.0/8 and ::1).
  start_with_dns_settings("rrl_responses_per_second = 10\nrrl_burst = 10\n");
  EXPECT_EQ(tally(dns::testing::udp_burst(daemon.dns_port(), soa_queries(100))).answered, 100);
  EXPECT_EQ(dns_counter("rate_limited_dropped"), 0u);
  EXPECT_EQ(dns_counter("rate_limited_slipped"), 0u);
}

TEST_F(RrlDaemonTest, TcpConnectionsOverThePerClientCapAreClosed) {
  start_with_dns_settings("max_tcp_connections_per_client = 3\n");
  std::vector<std::unique_ptr<TcpClient>> open;
  for (int i = 0; i < 3; ++i) {
    open.push_back(std::make_unique<TcpClient>(daemon.dns_port(), "127.0.0.1"));
    ASSERT_TRUE(open.back()->connected());
    // An answer proves the server accepted it before the next one connects.
    ASSERT_TRUE(open.back()->ask(soa_query())) << i;
  }
  TcpClient over_cap(daemon.dns_port(), "127.0.0.1");
  EXPECT_TRUE(over_cap.closed_by_peer(5s));
  EXPECT_EQ(dns_counter("tcp_refused_per_client"), 1u);

  // Other clients, and UDP from the same one, are still answered.
  TcpClient other(daemon.dns_port(), "127.0.0.2");
  EXPECT_TRUE(other.ask(soa_query()));
  const auto udp = dns::testing::udp_exchange(daemon.dns_port(), soa_query());
  ASSERT_TRUE(udp);
  EXPECT_EQ(Response(*udp).answer_count(), 1u);
  // The open connections keep working; closing one makes room for a new one.
  for (auto& connection : open) EXPECT_TRUE(connection->ask(soa_query()));
  open.pop_back();
  ASSERT_TRUE(wait_until([&] { return dns_counter("tcp_connections_open") == 3; }))
      << dns_status().dump();
  TcpClient again(daemon.dns_port(), "127.0.0.1");
  EXPECT_TRUE(again.ask(soa_query()));
  EXPECT_EQ(dns_counter("tcp_refused_per_client"), 1u);
}

}  // namespace
