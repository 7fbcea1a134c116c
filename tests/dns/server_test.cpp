// The real server on 127.0.0.1 (port 0) with a fake store, queried by real clients:
// dig and kdig over UDP and TCP, c-ares, and raw sockets for pipelining, partial
// frames, idle timeouts and garbage.
#include "dns/server.h"

#include <ares.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <sstream>

#include "test_support.h"

namespace dns {
namespace {

using namespace std::chrono_literals;
using testing::Bytes;
using testing::make_query;
using testing::Response;
using testing::TcpClient;

std::vector<std::string> sorted_lines(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    if (!line.empty()) lines.push_back(line);
  }
  std::ranges::sort(lines);
  return lines;
}

class ServerTest : public ::testing::Test {
 protected:
  ServerTest() {
    lookup_.set(
        testing::make_snapshot("web", {testing::make_instance("web", "a1", "10.0.0.1", 8080, 10),
                                       testing::make_instance("web", "a2", "10.0.0.2", 8081, 20)}));
    lookup_.set(testing::make_ipv4_snapshot("big", 2000));
  }

  void start(Options options = {}) {
    options.listen_address = "127.0.0.1";
    options.listen_port = 0;
    auto zone = Zone::load(testing::source_dir() + "/zones/discovery.zone", "discovery.");
    server_ = std::make_unique<Server>(io_, options, std::move(zone), lookup_);
    server_->start();
    port_ = server_->udp_endpoint().port;
    ASSERT_NE(port_, 0);
    ASSERT_EQ(server_->tcp_endpoint().port, port_);
    thread_ = std::thread([this] { io_.run(); });
  }

  void TearDown() override {
    if (server_) server_->stop();
    work_.reset();
    if (thread_.joinable()) {
      // stop() closed everything; let the loop finish the cancelled handlers.
      io_.stop();
      thread_.join();
    }
    server_.reset();
  }

  std::string dig(const std::string& arguments) {
    const auto output = testing::run_command("dig @127.0.0.1 -p " + std::to_string(port_) +
                                             " +time=2 +tries=1 " + arguments + " 2>&1");
    return output.value_or("");
  }

  boost::asio::io_context io_;
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> work_ =
      boost::asio::make_work_guard(io_);
  testing::FakeLookup lookup_;  // after io_: joins its fetch threads while io_ exists
  std::unique_ptr<Server> server_;
  std::thread thread_;
  std::uint16_t port_ = 0;
};

TEST_F(ServerTest, DigGetsServiceAddressesOverUdpAndTcp) {
  if (!testing::command_exists("dig")) GTEST_SKIP() << "dig not installed";
  start();
  const std::vector<std::string> expected = {"10.0.0.1", "10.0.0.2"};
  EXPECT_EQ(sorted_lines(dig("+short web.service.discovery. A")), expected);
  EXPECT_EQ(sorted_lines(dig("+tcp +short web.service.discovery. A")), expected);
  const std::string full = dig("nope.service.discovery. A");
  EXPECT_NE(full.find("status: NXDOMAIN"), std::string::npos) << full;
  EXPECT_NE(full.find("flags: qr aa rd;"), std::string::npos) << full;
  EXPECT_GE(server_->stats().udp_queries.load(), 2u);
  EXPECT_GE(server_->stats().tcp_queries.load(), 1u);
  EXPECT_GE(server_->stats().nxdomain.load(), 1u);
}

TEST_F(ServerTest, KdigGetsRfc2782SrvWithTargets) {
  if (!testing::command_exists("kdig")) GTEST_SKIP() << "kdig not installed";
  start();
  const auto output = testing::run_command("kdig @127.0.0.1 -p " + std::to_string(port_) +
                                           " +tcp +short _web._tcp.service.discovery. SRV");
  ASSERT_TRUE(output);
  EXPECT_EQ(sorted_lines(*output),
            (std::vector<std::string>{"1 10 8080 a1.web.instance.discovery.",
                                      "1 20 8081 a2.web.instance.discovery."}));
}

TEST_F(ServerTest, LargeAnswerIsTruncatedOverUdpAndCompleteOverTcp) {
  start();
  const auto udp = testing::udp_exchange(
      port_, make_query({.name = "big.service.discovery.", .edns_payload = 1232}));
  ASSERT_TRUE(udp);
  EXPECT_LE(udp->size(), 1232u);
  const Response truncated(*udp);
  EXPECT_TRUE(truncated.tc());
  EXPECT_TRUE(truncated.has_opt());

  const auto tcp = testing::tcp_exchange(port_, make_query({.name = "big.service.discovery."}));
  ASSERT_TRUE(tcp);
  const Response full(*tcp);
  EXPECT_FALSE(full.tc());
  EXPECT_EQ(full.answer_count(), 2000u);
  EXPECT_GE(server_->stats().truncated.load(), 1u);

  if (testing::command_exists("dig")) {
    // dig retries over TCP on TC and gets every address.
    EXPECT_EQ(sorted_lines(dig("+short big.service.discovery. A")).size(), 2000u);
  }
}

TEST_F(ServerTest, PipelinedTcpQueriesAreAnsweredInOrderIncludingOnesThatNeedAFetch) {
  lookup_.cached = false;  // every service query goes through fetch() on another thread
  start();
  TcpClient client(port_);
  ASSERT_TRUE(client.connected());
  Bytes burst;
  const std::vector<std::pair<std::uint16_t, std::string>> queries = {
      {1, "web.service.discovery."},
      {2, "discovery."},
      {3, "nope.service.discovery."},
      {4, "a2.web.instance.discovery."}};
  for (const auto& [id, name] : queries) {
    const Bytes framed = testing::frame(make_query({.name = name, .id = id}));
    burst.insert(burst.end(), framed.begin(), framed.end());
  }
  ASSERT_TRUE(client.send(burst));  // one write: the server must split the frames
  std::vector<std::uint16_t> ids;
  std::vector<int> rcodes;
  for (std::size_t i = 0; i < queries.size(); ++i) {
    const auto message = client.receive();
    ASSERT_TRUE(message) << "response " << i;
    const Response response(*message);
    ids.push_back(response.id());
    rcodes.push_back(response.rcode());
  }
  EXPECT_EQ(ids, (std::vector<std::uint16_t>{1, 2, 3, 4}));
  EXPECT_EQ(rcodes, (std::vector<int>{LDNS_RCODE_NOERROR, LDNS_RCODE_NOERROR, LDNS_RCODE_NXDOMAIN,
                                      LDNS_RCODE_NOERROR}));
  EXPECT_EQ(lookup_.fetch_count(), 3);
}

TEST_F(ServerTest, FramesSplitAcrossReadsAreReassembled) {
  start();
  TcpClient client(port_);
  ASSERT_TRUE(client.connected());
  const Bytes framed = testing::frame(make_query({.name = "web.service.discovery.", .id = 9}));
  // Three writes with pauses so that they arrive as separate segments.
  ASSERT_TRUE(client.send(Bytes(framed.begin(), framed.begin() + 1)));
  std::this_thread::sleep_for(20ms);
  ASSERT_TRUE(client.send(Bytes(framed.begin() + 1, framed.begin() + 10)));
  std::this_thread::sleep_for(20ms);
  ASSERT_TRUE(client.send(Bytes(framed.begin() + 10, framed.end())));
  const auto message = client.receive();
  ASSERT_TRUE(message);
  EXPECT_EQ(Response(*message).answer_count(), 2u);
}

TEST_F(ServerTest, IdleConnectionsAreClosed) {
  Options options;
  options.tcp_idle_timeout = 300ms;
  start(options);
  TcpClient client(port_);
  ASSERT_TRUE(client.connected());
  const auto started = std::chrono::steady_clock::now();
  EXPECT_TRUE(client.closed_by_peer(5s));
  EXPECT_GE(std::chrono::steady_clock::now() - started, 250ms);
  EXPECT_TRUE(testing::wait_until(
      [this] { return server_->stats().tcp_connections_idle_closed.load() == 1; }));
  EXPECT_TRUE(
      testing::wait_until([this] { return server_->stats().tcp_connections_open.load() == 0; }));
}

TEST_F(ServerTest, ConnectionsBeyondTheCapAreClosed) {
  Options options;
  options.max_tcp_connections = 2;
  start(options);
  TcpClient first(port_);
  TcpClient second(port_);
  ASSERT_TRUE(
      testing::wait_until([this] { return server_->stats().tcp_connections_open.load() == 2; }));
  TcpClient third(port_);
  EXPECT_TRUE(third.closed_by_peer(5s));
  EXPECT_EQ(server_->stats().tcp_connections_rejected.load(), 1u);
  // The first two still work.
  ASSERT_TRUE(first.send(testing::frame(make_query({.name = "discovery.", .type = 6}))));
  EXPECT_TRUE(first.receive());
}

TEST_F(ServerTest, GarbageIsFollowedByCorrectAnswers) {
  start();
  // UDP: a runt datagram, random bytes with a query header, then a real query.
  EXPECT_FALSE(testing::udp_exchange(port_, Bytes{1, 2, 3}, 200ms)) << "runts get no reply";
  Bytes garbage = {0xAB, 0xCD, 0x01, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00,
                   0x00, 0x00, 0x00, 0xC0, 0x0C, 0xFF, 0xFF, 0xFF};
  const auto formerr = testing::udp_exchange(port_, garbage);
  ASSERT_TRUE(formerr);
  EXPECT_EQ((*formerr)[3] & 0x0F, LDNS_RCODE_FORMERR);
  const auto good = testing::udp_exchange(port_, make_query({.name = "web.service.discovery."}));
  ASSERT_TRUE(good);
  EXPECT_EQ(Response(*good).answer_count(), 2u);

  // TCP: a garbage frame gets its FORMERR and the connection closes (see
  // TcpGarbageClosesTheConnection); a fresh connection is served.
  {
    TcpClient client(port_);
    const auto first = client.ask(garbage);
    ASSERT_TRUE(first);
    EXPECT_EQ((*first)[3] & 0x0F, LDNS_RCODE_FORMERR);
    EXPECT_TRUE(client.closed_by_peer(2s));
  }
  TcpClient client(port_);
  const auto good_tcp = client.ask(make_query({.name = "web.service.discovery.", .id = 5}));
  ASSERT_TRUE(good_tcp);
  EXPECT_EQ(Response(*good_tcp).id(), 5);
  EXPECT_GE(server_->stats().dropped.load(), 1u);
  EXPECT_GE(server_->stats().formerr.load(), 2u);
}

// Knot and NSD close a TCP connection that sends what is not DNS, rather than
// keep it until the idle timeout (10 s here): after the FORMERR when a header
// could be read, at once and without an answer when not even that. Queries
// before the garbage are answered first; what follows it is not read.
TEST_F(ServerTest, TcpGarbageClosesTheConnection) {
  start();
  const Bytes bad_question = {0xAB, 0xCD, 0x01, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00,
                              0x00, 0x00, 0x00, 0xC0, 0x0C, 0xFF, 0xFF, 0xFF};
  const auto good = [](std::uint16_t id) {
    return testing::frame(make_query({.name = "web.service.discovery.", .id = id}));
  };
  const auto started = std::chrono::steady_clock::now();
  {
    TcpClient client(port_);
    Bytes bytes = good(1);
    for (const Bytes& more : {testing::frame(bad_question), good(2)}) {
      bytes.insert(bytes.end(), more.begin(), more.end());
    }
    ASSERT_TRUE(client.send(bytes));  // one write: all three arrive together
    const auto answer = client.receive(2s);
    ASSERT_TRUE(answer);
    EXPECT_EQ(Response(*answer).id(), 1);
    EXPECT_EQ(Response(*answer).answer_count(), 2u);
    const auto formerr = client.receive(2s);
    ASSERT_TRUE(formerr);
    EXPECT_EQ((*formerr)[0], 0xAB);  // the garbage's id
    EXPECT_EQ((*formerr)[3] & 0x0F, LDNS_RCODE_FORMERR);
    EXPECT_TRUE(client.closed_by_peer(2s)) << "query 2, after the garbage, was answered";
  }
  for (const Bytes& runt : {Bytes{0, 3, 1, 2, 3}, Bytes{0, 0}}) {
    TcpClient client(port_);
    ASSERT_TRUE(client.send(runt));  // framed, but shorter than a DNS header
    EXPECT_TRUE(client.closed_by_peer(2s)) << runt.size();
  }
  EXPECT_LT(std::chrono::steady_clock::now() - started, 5s) << "closed by the idle timeout?";
  // A well-formed query of a type we refuse is not garbage: the connection stays.
  TcpClient client(port_);
  const auto opt_question = client.ask(make_query({.name = "discovery.", .type = 41}));
  ASSERT_TRUE(opt_question);
  EXPECT_EQ((*opt_question)[3] & 0x0F, LDNS_RCODE_FORMERR);
  const auto next = client.ask(make_query({.name = "web.service.discovery.", .id = 7}));
  ASSERT_TRUE(next);
  EXPECT_EQ(Response(*next).id(), 7);
  EXPECT_TRUE(
      testing::wait_until([this] { return server_->stats().tcp_connections_open.load() == 1; }));
}

TEST_F(ServerTest, LookupMissesAreFetchedAndFailuresAreServfail) {
  lookup_.cached = false;
  start();
  const auto answered =
      testing::udp_exchange(port_, make_query({.name = "web.service.discovery."}));
  ASSERT_TRUE(answered);
  EXPECT_EQ(Response(*answered).answer_count(), 2u);
  EXPECT_EQ(lookup_.fetch_count(), 1);

  lookup_.fail_fetches = true;
  const auto failed = testing::udp_exchange(port_, make_query({.name = "web.service.discovery."}));
  ASSERT_TRUE(failed);
  EXPECT_EQ(Response(*failed).rcode(), LDNS_RCODE_SERVFAIL);
  EXPECT_EQ(server_->stats().lookup_failures.load(), 1u);
  EXPECT_EQ(server_->stats().servfail.load(), 1u);
}

struct CaresResult {
  bool done = false;
  int status = ARES_ENODATA;
  std::vector<std::string> addresses;
  std::vector<int> ttls;
};

void on_cares_answer(void* arg, int status, int, unsigned char* answer, int length) {
  auto* result = static_cast<CaresResult*>(arg);
  result->done = true;
  result->status = status;
  if (status != ARES_SUCCESS) return;
  hostent* host = nullptr;
  ares_addrttl addresses[16];
  int count = 16;
  result->status = ares_parse_a_reply(answer, length, &host, addresses, &count);
  if (host != nullptr) ares_free_hostent(host);
  for (int i = 0; i < count; ++i) {
    char text[INET_ADDRSTRLEN];
    inet_ntop(AF_INET, &addresses[i].ipaddr, text, sizeof text);
    result->addresses.emplace_back(text);
    result->ttls.push_back(addresses[i].ttl);
  }
}

TEST_F(ServerTest, CaresResolvesAServiceAddress) {
  start();
  ASSERT_EQ(ares_library_init(ARES_LIB_INIT_ALL), ARES_SUCCESS);
  ares_channel channel = nullptr;
  ares_options settings{};
  settings.timeout = 2000;
  settings.tries = 2;
  ASSERT_EQ(ares_init_options(&channel, &settings, ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES),
            ARES_SUCCESS);
  const std::string server = "127.0.0.1:" + std::to_string(port_);
  ASSERT_EQ(ares_set_servers_ports_csv(channel, server.c_str()), ARES_SUCCESS);
  CaresResult result;
  ares_query(channel, "web.service.discovery.", 1 /* IN */, 1 /* A */, on_cares_answer, &result);
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (!result.done && std::chrono::steady_clock::now() < deadline) {
    fd_set readers;
    fd_set writers;
    FD_ZERO(&readers);
    FD_ZERO(&writers);
    const int nfds = ares_fds(channel, &readers, &writers);
    if (nfds == 0) break;
    timeval max_wait{1, 0};
    timeval wait{};
    ::select(nfds, &readers, &writers, nullptr, ares_timeout(channel, &max_wait, &wait));
    ares_process(channel, &readers, &writers);
  }
  ares_destroy(channel);
  ares_library_cleanup();
  ASSERT_TRUE(result.done);
  ASSERT_EQ(result.status, ARES_SUCCESS) << ares_strerror(result.status);
  std::ranges::sort(result.addresses);
  EXPECT_EQ(result.addresses, (std::vector<std::string>{"10.0.0.1", "10.0.0.2"}));
  EXPECT_EQ(result.ttls, (std::vector<int>{5, 5}));
}

TEST_F(ServerTest, StopClosesTheListeners) {
  start();
  ASSERT_TRUE(testing::udp_exchange(port_, make_query({.name = "discovery.", .type = 6})));
  server_->stop();
  EXPECT_TRUE(testing::wait_until([this] {
    TcpClient client(port_);
    return !client.connected();
  }));
  EXPECT_FALSE(testing::udp_exchange(port_, make_query({.name = "discovery.", .type = 6}), 300ms));
  EXPECT_EQ(server_->udp_endpoint().port, port_) << "endpoints stay readable";
}

}  // namespace
}  // namespace dns

namespace dns {
namespace {

using testing::tally;
using testing::Tally;

std::vector<Bytes> web_queries(int count) {
  std::vector<Bytes> queries;
  for (int i = 0; i < count; ++i) {
    queries.push_back(
        make_query({.name = "web.service.discovery.", .id = static_cast<std::uint16_t>(i)}));
  }
  return queries;
}

Options rate_limited(std::vector<store::IpPrefix> exempt = {}) {
  Options options;
  options.rate_limit.responses_per_second = 10;
  options.rate_limit.burst = 10;
  options.rate_limit.slip = 2;
  options.rate_limit.exempt = std::move(exempt);
  return options;
}

TEST_F(ServerTest, UdpAnswersOverTheRateLimitAreDroppedOrSlippedAndTcpIsNotLimited) {
  start(rate_limited());
  const testing::UdpBurst burst = testing::udp_burst(port_, web_queries(100));
  const Tally counts = tally(burst);
  const double seconds = std::chrono::duration<double>(burst.elapsed).count();
  EXPECT_GE(counts.answered, 10);
  // The burst, plus what refilled while the server worked through the queries.
  EXPECT_LE(counts.answered, 10 + static_cast<int>(10 * seconds) + 1) << seconds << " s";
  EXPECT_GE(counts.slipped, 1);
  EXPECT_EQ(counts.other, 0);
  EXPECT_LT(counts.answered + counts.slipped, 100) << "the rest is dropped";
  ASSERT_TRUE(testing::wait_until([this] { return server_->stats().udp_queries.load() == 100; }));
  EXPECT_EQ(server_->stats().rate_limited_slipped.load(),
            static_cast<std::uint64_t>(counts.slipped));
  EXPECT_EQ(server_->stats().rate_limited_dropped.load(),
            static_cast<std::uint64_t>(100 - counts.answered - counts.slipped));

  // Another client is not limited by this one's bucket.
  EXPECT_EQ(tally(testing::udp_burst(port_, web_queries(5), "127.0.0.2")).answered, 5);
  // TCP needs a handshake, so it cannot reflect: never limited.
  for (int i = 0; i < 20; ++i) {
    const auto reply = testing::tcp_exchange(port_, make_query({.name = "web.service.discovery."}));
    ASSERT_TRUE(reply) << i;
    EXPECT_EQ(Response(*reply).answer_count(), 2u);
  }
  // The bucket refills: a tenth of a second earns one answer.
  EXPECT_TRUE(testing::wait_until(
      [this] {
        return tally(testing::udp_burst(port_, web_queries(1), "127.0.0.1", 200ms)).answered == 1;
      },
      5s));
}

TEST_F(ServerTest, ExemptClientsAreNeverRateLimited) {
  start(rate_limited({*store::IpPrefix::parse("127.0.0.0/8")}));
  const Tally counts = tally(testing::udp_burst(port_, web_queries(100)));
  EXPECT_EQ(counts.answered, 100);
  EXPECT_EQ(server_->stats().rate_limited_dropped.load(), 0u);
  EXPECT_EQ(server_->stats().rate_limited_slipped.load(), 0u);
}

TEST_F(ServerTest, RateLimitingIsOffByDefault) {
  start();
  EXPECT_EQ(tally(testing::udp_burst(port_, web_queries(100))).answered, 100);
}

TEST_F(ServerTest, ConnectionsBeyondThePerClientCapAreClosed) {
  Options options;
  options.max_tcp_connections_per_client = 2;
  start(options);
  auto first = std::make_unique<TcpClient>(port_, "127.0.0.1");
  TcpClient second(port_, "127.0.0.1");
  ASSERT_TRUE(
      testing::wait_until([this] { return server_->stats().tcp_connections_open.load() == 2; }));
  TcpClient third(port_, "127.0.0.1");
  EXPECT_TRUE(third.closed_by_peer(5s));
  EXPECT_EQ(server_->stats().tcp_refused_per_client.load(), 1u);
  EXPECT_EQ(server_->stats().tcp_connections_rejected.load(), 0u);

  // Another client has its own allowance.
  TcpClient other(port_, "127.0.0.2");
  ASSERT_TRUE(other.send(testing::frame(make_query({.name = "discovery.", .type = 6}))));
  EXPECT_TRUE(other.receive());
  // The open ones still work, and closing one lets a new one in.
  ASSERT_TRUE(second.send(testing::frame(make_query({.name = "discovery.", .type = 6}))));
  EXPECT_TRUE(second.receive());
  first.reset();
  ASSERT_TRUE(
      testing::wait_until([this] { return server_->stats().tcp_connections_open.load() == 2; }));
  TcpClient fourth(port_, "127.0.0.1");
  ASSERT_TRUE(fourth.send(testing::frame(make_query({.name = "discovery.", .type = 6}))));
  EXPECT_TRUE(fourth.receive());
  EXPECT_EQ(server_->stats().tcp_refused_per_client.load(), 1u);
}

TEST_F(ServerTest, UdpAnswersNeverExceedTheClientsSizeAndOutOfZoneIsRefused) {
  start();
  // (advertised EDNS size, the limit it means); none: no EDNS, 512 bytes.
  const std::vector<std::pair<std::optional<std::uint16_t>, std::size_t>> cases = {
      {std::nullopt, 512}, {100, 512}, {700, 700}, {1232, 1232}, {4096, 1232}};
  for (const auto& [payload, limit] : cases) {
    const auto reply = testing::udp_exchange(
        port_, make_query({.name = "big.service.discovery.", .edns_payload = payload}));
    ASSERT_TRUE(reply);
    EXPECT_LE(reply->size(), limit);
    EXPECT_GT(reply->size(), limit - 40) << "filled, not just emptied";
    EXPECT_TRUE(Response(*reply).tc());
  }
  for (const char* name : {"example.com.", "discovery.com.", ".", "version.bind."}) {
    for (const bool tcp : {false, true}) {
      const Bytes query = make_query({.name = name});
      const auto reply =
          tcp ? testing::tcp_exchange(port_, query) : testing::udp_exchange(port_, query);
      ASSERT_TRUE(reply) << name;
      const Response response(*reply);
      EXPECT_EQ(response.rcode(), LDNS_RCODE_REFUSED) << name;
      EXPECT_EQ(response.answer_count(), 0u) << name;
      EXPECT_TRUE(response.authority().empty()) << name;
    }
  }
}

}  // namespace
}  // namespace dns
