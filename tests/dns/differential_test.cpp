// Differential test: Knot DNS and our server load the same zone file and must
// agree on the static part (RCODE, AA, answer, authority, additional), which pins
// down the RFC 1034 details (NXDOMAIN vs NODATA, empty non-terminals, SOA in the
// authority section with its negative TTL, glue) against a reference server.
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <fstream>
#include <sstream>

#include "dns/server.h"
#include "test_support.h"

extern char** environ;

namespace dns {
namespace {

using namespace std::chrono_literals;
using testing::make_query;
using testing::QuerySpec;
using testing::Response;

// The repository's example zone plus records that exercise more of RFC 1034.
std::string zone_text() {
  std::ifstream example(testing::source_dir() + "/zones/discovery.zone");
  std::stringstream text;
  text << example.rdbuf();
  text << "ns1        300 IN AAAA ::1\n"
          "@          300 IN MX   10 mail\n"
          "mail       300 IN A    192.0.2.25\n"
          "www        120 IN A    192.0.2.80\n"
          "www        120 IN A    192.0.2.81\n"
          "www        120 IN TXT  \"two\" \"strings\"\n"
          "a.b.deep   300 IN A    192.0.2.99\n"
          "_http._tcp 300 IN SRV  0 5 80 www\n";
  return text.str();
}

std::uint16_t free_port() {
  // Both transports must be free; ask the kernel for a UDP port and check TCP.
  for (int attempt = 0; attempt < 20; ++attempt) {
    const int udp = ::socket(AF_INET, SOCK_DGRAM, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t length = sizeof address;
    ::bind(udp, reinterpret_cast<sockaddr*>(&address), sizeof address);
    ::getsockname(udp, reinterpret_cast<sockaddr*>(&address), &length);
    const int tcp = ::socket(AF_INET, SOCK_STREAM, 0);
    const bool tcp_free = ::bind(tcp, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0;
    ::close(tcp);
    ::close(udp);
    if (tcp_free) return ntohs(address.sin_port);
  }
  return 0;
}

class KnotProcess {
 public:
  KnotProcess(const testing::TempDir& dir, const std::filesystem::path& zone, std::uint16_t port) {
    const std::string conf =
        "server:\n"
        "    listen: 127.0.0.1@" +
        std::to_string(port) +
        "\n"
        "    rundir: " +
        dir.path().string() +
        "\n"
        "database:\n"
        "    storage: " +
        dir.path().string() +
        "\n"
        "log:\n"
        "  - target: stderr\n"
        "    any: error\n"
        "zone:\n"
        "  - domain: discovery.\n"
        "    file: " +
        zone.string() +
        "\n"
        "    zonefile-sync: -1\n"
        "    journal-content: none\n";
    const std::string conf_path = dir.write("knot.conf", conf).string();
    std::string program = "knotd";
    std::string flag = "-c";
    std::vector<char*> argv = {program.data(), flag.data(), const_cast<char*>(conf_path.c_str()),
                               nullptr};
    if (::posix_spawnp(&pid_, "knotd", nullptr, nullptr, argv.data(), environ) != 0) pid_ = -1;
  }
  ~KnotProcess() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGTERM);
    int status = 0;
    ::waitpid(pid_, &status, 0);
  }
  bool started() const { return pid_ > 0; }

 private:
  pid_t pid_ = -1;
};

class DifferentialTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!testing::command_exists("knotd")) GTEST_SKIP() << "knotd not installed";
    zone_path_ = dir_.write("discovery.zone", zone_text());

    knot_port_ = free_port();
    ASSERT_NE(knot_port_, 0);
    knot_ = std::make_unique<KnotProcess>(dir_, zone_path_, knot_port_);
    ASSERT_TRUE(knot_->started());
    ASSERT_TRUE(testing::wait_until(
        [this] {
          return testing::udp_exchange(knot_port_, make_query({.name = "discovery.", .type = 6}),
                                       100ms)
              .has_value();
        },
        10s))
        << "knotd did not answer";

    Options options;
    options.listen_address = "127.0.0.1";
    options.listen_port = 0;
    server_ = std::make_unique<Server>(io_, options, Zone::load(zone_path_.string(), "discovery."),
                                       lookup_);
    server_->start();
    thread_ = std::thread([this] { io_.run(); });
  }

  void TearDown() override {
    if (server_) server_->stop();
    io_.stop();
    if (thread_.joinable()) thread_.join();
    server_.reset();
    knot_.reset();
  }

  void expect_same_answer(const QuerySpec& spec) {
    SCOPED_TRACE(spec.name + " type " + std::to_string(spec.type));
    const auto query = make_query(spec);
    const auto knot_bytes = testing::udp_exchange(knot_port_, query);
    const auto ours_bytes = testing::udp_exchange(server_->udp_endpoint().port, query);
    ASSERT_TRUE(knot_bytes);
    ASSERT_TRUE(ours_bytes);
    const Response knot(*knot_bytes);
    const Response ours(*ours_bytes);
    ASSERT_TRUE(knot.parsed());
    ASSERT_TRUE(ours.parsed());
    EXPECT_EQ(ours.rcode(), knot.rcode());
    EXPECT_EQ(ours.aa(), knot.aa());
    EXPECT_EQ(ours.tc(), knot.tc());
    EXPECT_EQ(ours.answer(), knot.answer());
    EXPECT_EQ(ours.authority(), knot.authority());
    EXPECT_EQ(ours.additional(), knot.additional());
    EXPECT_EQ(ours.question_name(), knot.question_name());
  }

  testing::TempDir dir_;
  std::filesystem::path zone_path_;
  std::uint16_t knot_port_ = 0;
  std::unique_ptr<KnotProcess> knot_;
  boost::asio::io_context io_;
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> work_ =
      boost::asio::make_work_guard(io_);
  testing::FakeLookup lookup_;  // empty: only the static zone is compared
  std::unique_ptr<Server> server_;
  std::thread thread_;
};

TEST_F(DifferentialTest, StaticAnswersMatchKnot) {
  constexpr std::uint16_t kA = 1, kNs = 2, kSoa = 6, kMx = 15, kTxt = 16, kAaaa = 28, kSrv = 33;
  expect_same_answer({.name = "discovery.", .type = kSoa, .edns_payload = 1232});
  expect_same_answer({.name = "discovery.", .type = kNs, .edns_payload = 1232});
  expect_same_answer({.name = "discovery.", .type = kMx, .edns_payload = 1232});
  expect_same_answer({.name = "ns1.discovery.", .type = kA, .edns_payload = 1232});
  expect_same_answer({.name = "ns1.discovery.", .type = kAaaa, .edns_payload = 1232});
  expect_same_answer({.name = "registry.discovery.", .type = kA, .edns_payload = 1232});
  expect_same_answer({.name = "registry.discovery.", .type = kTxt, .edns_payload = 1232});
  expect_same_answer({.name = "www.discovery.", .type = kA, .edns_payload = 1232});
  expect_same_answer({.name = "www.discovery.", .type = kTxt});
  expect_same_answer({.name = "_http._tcp.discovery.", .type = kSrv, .edns_payload = 1232});
  expect_same_answer({.name = "ReGiStRy.DISCOVERY.", .type = kA, .edns_payload = 1232});
}

TEST_F(DifferentialTest, NegativeAnswersMatchKnot) {
  constexpr std::uint16_t kA = 1, kMx = 15, kAaaa = 28;
  expect_same_answer({.name = "nope.discovery.", .type = kA, .edns_payload = 1232});
  expect_same_answer({.name = "x.registry.discovery.", .type = kA, .edns_payload = 1232});
  expect_same_answer({.name = "registry.discovery.", .type = kAaaa, .edns_payload = 1232});
  expect_same_answer({.name = "registry.discovery.", .type = kMx});
  expect_same_answer({.name = "deep.discovery.", .type = kA, .edns_payload = 1232});
  expect_same_answer({.name = "b.deep.discovery.", .type = kA, .edns_payload = 1232});
  expect_same_answer({.name = "_tcp.discovery.", .type = kA, .edns_payload = 1232});
  expect_same_answer({.name = "x.a.b.deep.discovery.", .type = kA, .edns_payload = 1232});
  expect_same_answer({.name = "example.com.", .type = kA, .edns_payload = 1232});
}

}  // namespace
}  // namespace dns
