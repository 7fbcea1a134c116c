// Bearer-token access control of the real daemon over real HTTP: started with
// --token-file (and a TOML config for read_access), refused requests change
// nothing (neither the API nor DNS shows them), scoped and admin tokens work, and
// SIGHUP re-reads the token file.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "tests/dns/test_support.h"
#include "tests/support/http_client.h"
#include "tests/support/process.h"

namespace {

using namespace std::chrono_literals;
using nlohmann::json;
using test_support::Daemon;
using test_support::HttpResult;

const std::string kOrdersToken = "orders-Zq3v9XkP2mLr8sTt";
const std::string kAdminToken = "admin-Hy7cN4bW1eQd6uJo";
const std::string kNewToken = "new-payments-Rb5xK0fG3hVa";
const json kInstance = {{"address", "127.7.7.7"}, {"port", 8080}};

std::string lower(std::string text) {
  for (auto& c : text) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return text;
}

// One request on a fresh connection with an Authorization header, which
// test_support::HttpClient has no way to send; the daemon closes the
// connection after answering ("Connection: close"), which ends the response.
HttpResult send(std::uint16_t port, const std::string& method, const std::string& target,
                const std::string& token, const std::string& body = {}) {
  const int fd = test_support::connect_tcp(port);
  if (fd < 0) return {};
  std::string request = method + " " + target + " HTTP/1.1\r\nHost: 127.0.0.1\r\n";
  if (!token.empty()) request += "Authorization: Bearer " + token + "\r\n";
  if (!body.empty()) request += "Content-Type: application/json\r\n";
  request += "Content-Length: " + std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n";
  request += body;
  HttpResult result;
  if (test_support::send_all(fd, request)) {
    const std::string raw = test_support::read_until_close(fd, 10s);
    const auto head_end = raw.find("\r\n\r\n");
    if (raw.rfind("HTTP/1.1 ", 0) == 0 && head_end != std::string::npos) {
      result.status = std::stoi(raw.substr(9, 3));
      result.body = raw.substr(head_end + 4);
      std::size_t line = raw.find("\r\n") + 2;
      while (line < head_end) {
        const auto end = raw.find("\r\n", line);
        const auto colon = raw.find(':', line);
        if (colon < end) {
          auto value = raw.substr(colon + 1, end - colon - 1);
          value.erase(0, value.find_first_not_of(' '));
          result.headers[lower(raw.substr(line, colon - line))] = value;
        }
        line = end + 2;
      }
    }
  }
  ::close(fd);
  return result;
}

void write_token_file(const std::string& path, const std::string& text) {
  // Written beside and renamed over, as an operator's deployment tool would, so
  // the daemon never reads half a file.
  const std::string temporary = path + ".tmp";
  std::ofstream(temporary) << text;
  ASSERT_EQ(::chmod(temporary.c_str(), 0600), 0);
  std::filesystem::rename(temporary, path);
}

class AuthDaemonTest : public ::testing::Test {
 protected:
  void TearDown() override {
    if (HasFailure() && daemon)
      std::cerr << "---- daemon log ----\n" << daemon->log().substr(0, 20000);
  }
  void start(const std::vector<std::string>& extra_args = {}) {
    write_token_file(token_path,
                     "# test tokens\n" + kOrdersToken + " order-*\n" + kAdminToken + " *\n");
    std::vector<std::string> args = {"--token-file", token_path};
    args.insert(args.end(), extra_args.begin(), extra_args.end());
    daemon = std::make_unique<Daemon>(dir, Daemon::Options{{}, args, {}});
    ASSERT_TRUE(daemon->start()) << daemon->log();
  }
  HttpResult call(const std::string& token, const std::string& method, const std::string& target,
                  const json& body = nullptr) {
    return send(daemon->http_port(), method, target, token, body.is_null() ? "" : body.dump());
  }
  std::size_t dns_answers(const std::string& service) {
    const auto reply = dns::testing::udp_exchange(
        daemon->dns_port(),
        dns::testing::make_query({.name = service + ".service.discovery.", .type = 1}));
    if (!reply) return 0;
    return dns::testing::Response(*reply).answer_count();
  }
  static void expect_denied(const HttpResult& result, int status, const std::string& field) {
    EXPECT_EQ(result.status, status) << result.body;
    const auto body = result.json();
    ASSERT_TRUE(body.is_object()) << result.body;
    EXPECT_TRUE(body["error"].is_string()) << result.body;
    EXPECT_EQ(body["field"], field) << result.body;
    EXPECT_EQ(result.headers.count("content-type") ? result.headers.at("content-type") : "",
              "application/json");
    // RFC 6750's challenge; a 401 for an unknown token adds error="invalid_token".
    const auto challenge = result.headers.find("www-authenticate");
    ASSERT_NE(challenge, result.headers.end());
    EXPECT_EQ(challenge->second.rfind("Bearer realm=\"discoveryd\"", 0), 0u) << challenge->second;
    if (status == 403) {
      EXPECT_NE(challenge->second.find("insufficient_scope"), std::string::npos);
    }
  }

  test_support::TempDir dir;
  const std::string token_path = dir.file("tokens");
  std::unique_ptr<Daemon> daemon;
};

TEST_F(AuthDaemonTest, RefusedWritesAre401Or403AndChangeNothing) {
  start();
  const std::string payments = "/v1/services/payments/instances/p1";
  const auto missing = call("", "PUT", payments, kInstance);
  expect_denied(missing, 401, "Authorization");
  EXPECT_EQ(missing.headers.at("www-authenticate"), "Bearer realm=\"discoveryd\"");
  expect_denied(call("", "POST", "/v1/services/payments/instances", kInstance), 401,
                "Authorization");
  auto unknown = call("not-a-token-of-this-daemon", "PUT", payments, kInstance);
  EXPECT_EQ(unknown.status, 401);
  EXPECT_EQ(unknown.headers["www-authenticate"],
            "Bearer realm=\"discoveryd\", error=\"invalid_token\"");
  const auto scoped = call(kOrdersToken, "PUT", payments, kInstance);
  expect_denied(scoped, 403, "service");
  EXPECT_EQ(scoped.json()["error"], "token not allowed to change service payments");

  // Nothing was registered: neither the API nor DNS knows payments.
  const auto listed = call("", "GET", "/v1/services");
  ASSERT_EQ(listed.status, 200) << listed.body;
  EXPECT_EQ(listed.json()["services"], json::array());
  EXPECT_EQ(dns_answers("payments"), 0u);

  // The admin registers payments; the scoped token can neither move, beat for,
  // nor remove it.
  ASSERT_EQ(call(kAdminToken, "PUT", payments, kInstance).status, 201);
  expect_denied(call(kOrdersToken, "PUT", payments, {{"address", "127.6.6.6"}, {"port", 1}}), 403,
                "service");
  expect_denied(call(kOrdersToken, "PUT", payments + "/heartbeat", {{"load", 9}}), 403, "service");
  expect_denied(call(kOrdersToken, "DELETE", payments), 403, "service");
  expect_denied(call("", "DELETE", payments), 401, "Authorization");
  const auto instance = call("", "GET", "/v1/services/payments").json()["instances"][0];
  EXPECT_EQ(instance["address"], "127.7.7.7");
  EXPECT_EQ(instance["load"], nullptr);
  EXPECT_EQ(instance["last_heartbeat_at"], nullptr);
  EXPECT_EQ(dns_answers("payments"), 1u);

  // Denials are logged with the client and the service, never the token.
  const std::string log = daemon->log();
  EXPECT_NE(log.find("service=payments peer=127.0.0.1:"), std::string::npos) << log;
  EXPECT_EQ(log.find(kOrdersToken), std::string::npos);
  EXPECT_EQ(log.find(kAdminToken), std::string::npos);
}

TEST_F(AuthDaemonTest, ScopedAndAdminTokensChangeWhatTheyMay) {
  start();
  const std::string orders = "/v1/services/order-service/instances/o1";
  ASSERT_EQ(call(kOrdersToken, "PUT", orders, kInstance).status, 201);
  EXPECT_EQ(call(kOrdersToken, "PUT", orders + "/heartbeat", {{"load", 1.5}}).status, 200);
  EXPECT_EQ(dns_answers("order-service"), 1u);
  EXPECT_EQ(call(kOrdersToken, "DELETE", orders).status, 200);
  EXPECT_EQ(dns_answers("order-service"), 0u);

  for (const std::string service : {"order-service", "payments", "orders"}) {
    const std::string target = "/v1/services/" + service + "/instances/a1";
    EXPECT_EQ(call(kAdminToken, "PUT", target, kInstance).status, 201) << service;
    EXPECT_EQ(call(kAdminToken, "PUT", target + "/heartbeat").status, 200) << service;
  }
  EXPECT_EQ(call(kAdminToken, "DELETE", "/v1/services/orders/instances/a1").status, 200);
  EXPECT_EQ(call("", "GET", "/v1/services").json()["services"].size(), 2u);
}

TEST_F(AuthDaemonTest, ReadAccessTokenFromTheConfigFileProtectsReads) {
  const std::string config = dir.file("discoveryd.toml");
  std::ofstream(config) << "[http]\nread_access = \"token\"\n";
  start({"--config", config});
  ASSERT_EQ(call(kAdminToken, "PUT", "/v1/services/payments/instances/p1", kInstance).status, 201);
  for (const std::string target : {"/v1/services", "/v1/services/payments", "/v1/resolve/payments",
                                   "/v1/status", "/v1/events"}) {
    const auto refused = call("", "GET", target);
    expect_denied(refused, 401, "Authorization");
    EXPECT_EQ(refused.body.find("127.7.7.7"), std::string::npos) << refused.body;
    EXPECT_EQ(call("wrong-token-0123456789", "GET", target).status, 401) << target;
    EXPECT_EQ(call(kOrdersToken, "GET", target).status, 200) << target;
  }
  EXPECT_EQ(call(kOrdersToken, "GET", "/v1/resolve/payments").json()["address"], "127.7.7.7");
}

TEST_F(AuthDaemonTest, SighupReloadsTheTokenFile) {
  start();
  const std::string target = "/v1/services/payments/instances/p1";
  ASSERT_EQ(call(kOrdersToken, "PUT", "/v1/services/order-a/instances/a1", kInstance).status, 201);
  EXPECT_EQ(call(kNewToken, "PUT", target, kInstance).status, 401);

  // The orders token is removed, a payments token added.
  write_token_file(token_path, kAdminToken + " *\n" + kNewToken + " payments\n");
  daemon->process()->signal(SIGHUP);
  ASSERT_TRUE(test_support::wait_until(
      [&] { return call(kNewToken, "PUT", target, kInstance).status == 201; }, 15s))
      << "the new token never started working";
  const auto removed = call(kOrdersToken, "PUT", "/v1/services/order-a/instances/a2", kInstance);
  expect_denied(removed, 401, "Authorization");
  EXPECT_NE(removed.headers.at("www-authenticate").find("invalid_token"), std::string::npos);
  expect_denied(call(kNewToken, "PUT", "/v1/services/order-a/instances/a2", kInstance), 403,
                "service");

  // A file that does not parse is refused as a whole: the tokens in force stay.
  write_token_file(token_path, kAdminToken + " pay_ments\n");
  daemon->process()->signal(SIGHUP);
  ASSERT_TRUE(test_support::wait_until(
      [&] { return daemon->log().find(token_path + ":1: bad pattern") != std::string::npos; }, 15s))
      << "the bad token file was not reported";
  EXPECT_EQ(call(kNewToken, "PUT", "/v1/services/payments/instances/p2", kInstance).status, 201);
  EXPECT_TRUE(daemon->process()->running());
}

// An API open to the network without tokens is legal (a private network may be
// trusted) but must not go unnoticed; on loopback (make run) it is the default.
TEST_F(AuthDaemonTest, AnOpenApiOnANonLoopbackAddressIsWarnedAbout) {
  const std::string warning = "without authentication";
  {
    test_support::TempDir other;
    Daemon loopback(other, Daemon::Options{});
    ASSERT_TRUE(loopback.start()) << loopback.log();
    loopback.stop();
    EXPECT_EQ(loopback.log().find(warning), std::string::npos) << loopback.log();
  }
  {
    test_support::TempDir other;
    Daemon::Options options;
    options.http_host = "0.0.0.0";
    Daemon exposed(other, options);
    ASSERT_TRUE(exposed.start()) << exposed.log();
    exposed.stop();
    EXPECT_NE(exposed.log().find(warning), std::string::npos) << exposed.log();
  }
  {
    write_token_file(token_path, kAdminToken + " *\n");
    test_support::TempDir other;
    Daemon::Options options;
    options.http_host = "0.0.0.0";
    options.extra_args = {"--token-file", token_path};
    Daemon protected_api(other, options);
    ASSERT_TRUE(protected_api.start()) << protected_api.log();
    protected_api.stop();
    EXPECT_EQ(protected_api.log().find(warning), std::string::npos) << protected_api.log();
  }
}

TEST_F(AuthDaemonTest, ABadTokenFileStopsTheDaemonFromStarting) {
  write_token_file(token_path, kAdminToken + " *\nshort payments\n");
  Daemon refused(dir, Daemon::Options{{}, {"--token-file", token_path}, {}});
  EXPECT_FALSE(refused.start());
  EXPECT_NE(refused.wait_exit(), 0);
  EXPECT_NE(refused.log().find(token_path + ":2: token is shorter than 16"), std::string::npos)
      << refused.log();
  EXPECT_EQ(refused.log().find(kAdminToken), std::string::npos);
}

}  // namespace
