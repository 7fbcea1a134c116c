// The real discoveryd, started on free ports with a temp database, driven over
// real HTTP. These tests read as the API's specification (docs/api.md).
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <SQLiteCpp/SQLiteCpp.h>
#include <fstream>

#include "tests/support/http_client.h"
#include "tests/support/process.h"

namespace {

using namespace std::chrono_literals;
using nlohmann::json;
using test_support::Daemon;
using test_support::HttpClient;

const json kExample = json::parse(R"({"address":"127.1.2.3","port":8080,"tags":["v2"],
  "meta":{"zone":"a"},"weight":10,"check":{"type":"http","path":"/health","interval":"30s",
  "timeout":"2s","failures":3}})");

class DaemonTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(daemon.start()) << daemon.log(); }
  void TearDown() override {
    if (HasFailure()) std::cerr << "---- daemon log ----\n" << daemon.log();
  }
  HttpClient client() { return HttpClient(daemon.http_port()); }

  test_support::TempDir dir;
  Daemon daemon{dir};
};

void expect_error_body(const test_support::HttpResult& result, int status, const json& field) {
  EXPECT_EQ(result.status, status) << result.body;
  const auto body = result.json();
  ASSERT_TRUE(body.is_object()) << result.body;
  EXPECT_TRUE(body["error"].is_string()) << result.body;
  EXPECT_EQ(body["field"], field) << result.body;
  EXPECT_EQ(result.headers.at("content-type"), "application/json");
}

TEST_F(DaemonTest, RegisterListUpdateHeartbeatDeregister) {
  auto http = client();
  auto created = http.put("/v1/services/order-service/instances/a1", kExample);
  EXPECT_EQ(created.status, 201) << created.body;

  auto services = http.get("/v1/services");
  ASSERT_EQ(services.status, 200);
  EXPECT_EQ(services.json()["services"][0]["name"], "order-service");
  EXPECT_EQ(services.json()["services"][0]["instances"], 1);

  auto updated_body = kExample;
  updated_body["port"] = 9090;
  EXPECT_EQ(http.put("/v1/services/order-service/instances/a1", updated_body).status, 200);

  auto heartbeat =
      http.request("PUT", "/v1/services/order-service/instances/a1/heartbeat", R"({"load":3.5})");
  EXPECT_EQ(heartbeat.status, 200) << heartbeat.body;

  auto service = http.get("/v1/services/order-service");
  ASSERT_EQ(service.status, 200);
  const auto instance = service.json()["instances"][0];
  EXPECT_EQ(instance["id"], "a1");
  EXPECT_EQ(instance["address"], "127.1.2.3");
  EXPECT_EQ(instance["port"], 9090);
  EXPECT_EQ(instance["tags"], json({"v2"}));
  EXPECT_EQ(instance["meta"]["zone"], "a");
  EXPECT_EQ(instance["weight"], 10);
  EXPECT_EQ(instance["check"]["type"], "http");
  EXPECT_EQ(instance["check"]["path"], "/health");
  EXPECT_EQ(instance["load"], 3.5);
  EXPECT_EQ(instance["consecutive_failures"], 0);
  EXPECT_TRUE(instance["registered_at"].is_string());
  EXPECT_TRUE(instance["last_heartbeat_at"].is_string());
  EXPECT_TRUE(instance.contains("last_check_at"));
  EXPECT_TRUE(instance["status"].is_string());

  auto posted = http.post("/v1/services/order-service/instances", kExample);
  EXPECT_EQ(posted.status, 201);
  EXPECT_TRUE(posted.json()["id"].is_string());

  EXPECT_EQ(http.del("/v1/services/order-service/instances/a1").status, 200);
  expect_error_body(http.del("/v1/services/order-service/instances/a1"), 404, "id");
  expect_error_body(
      http.request("PUT", "/v1/services/order-service/instances/a1/heartbeat", "", ""), 404, "id");
  EXPECT_EQ(http.get("/v1/services/order-service").json()["instances"].size(), 1u);
  expect_error_body(http.get("/v1/services/unknown-service"), 404, "service");
  // One log line per registration change.
  const auto log = daemon.log();
  EXPECT_NE(log.find("registered service=order-service id=a1"), std::string::npos) << log;
  EXPECT_NE(log.find("deregistered service=order-service id=a1"), std::string::npos) << log;
}

TEST_F(DaemonTest, EveryErrorClassIsJsonAndChangesNothing) {
  auto http = client();
  expect_error_body(http.put("/v1/services/orders/instances/a1", {{"address", "127.0.0.1"}}), 400,
                    "port");
  expect_error_body(http.request("PUT", "/v1/services/orders/instances/a1", "{\"address\""), 400,
                    "body");
  expect_error_body(
      http.request("PUT", "/v1/services/orders/instances/a1", kExample.dump(), "text/plain"), 415,
      "Content-Type");
  expect_error_body(http.put("/v1/services/no_underscores/instances/a1", kExample), 400, "service");
  expect_error_body(http.get("/v2/anything"), 404, nullptr);
  auto wrong = http.request("POST", "/v1/services", "{}");
  expect_error_body(wrong, 405, nullptr);
  EXPECT_EQ(wrong.headers["allow"], "GET");
  // 64 KiB is the most a body may be.
  json huge = kExample;
  huge["meta"] = {{"padding", std::string(70 * 1024, 'x')}};
  expect_error_body(http.put("/v1/services/orders/instances/a1", huge), 413, "body");
  auto services = HttpClient(daemon.http_port()).get("/v1/services");
  EXPECT_EQ(services.json()["services"].size(), 0u) << services.body;
}

TEST_F(DaemonTest, MalformedHttpGetsA400AndTheServerKeepsServing) {
  const int fd = test_support::connect_tcp(daemon.http_port());
  ASSERT_GE(fd, 0);
  test_support::send_all(fd, "NOT HTTP AT ALL\r\n\r\n");
  const auto reply = test_support::read_until_close(fd, 5s);
  ::close(fd);
  EXPECT_EQ(reply.rfind("HTTP/1.1 400", 0), 0u) << reply;
  EXPECT_EQ(client().get("/v1/status").status, 200);
}

TEST_F(DaemonTest, OversizedHeadersGetA431) {
  const int fd = test_support::connect_tcp(daemon.http_port());
  ASSERT_GE(fd, 0);
  test_support::send_all(fd, "GET /v1/services HTTP/1.1\r\nHost: x\r\nX-Big: " +
                                 std::string(16 * 1024, 'a') + "\r\n\r\n");
  const auto reply = test_support::read_until_close(fd, 5s);
  ::close(fd);
  EXPECT_EQ(reply.rfind("HTTP/1.1 431", 0), 0u) << reply.substr(0, 200);
  EXPECT_EQ(client().get("/v1/status").status, 200);
}

TEST_F(DaemonTest, KeepAliveServesManyRequestsOnOneConnection) {
  auto http = client();
  for (int i = 0; i < 20; ++i) ASSERT_EQ(http.get("/v1/services").status, 200);
  const auto status = http.get("/v1/status").json();
  EXPECT_EQ(status["http"]["accepted"], 1) << status.dump();
  EXPECT_EQ(status["http"]["requests"], 21) << status.dump();
}

TEST_F(DaemonTest, StatusReportsServingAndTheDatabase) {
  auto status = client().get("/v1/status");
  ASSERT_EQ(status.status, 200);
  EXPECT_EQ(status.json()["status"], "serving");
  EXPECT_EQ(status.json()["database"]["status"], "ok");
}

TEST_F(DaemonTest, RegistrationsSurviveARestart) {
  auto http = client();
  ASSERT_EQ(http.put("/v1/services/orders/instances/a1", kExample).status, 201);
  daemon.stop();
  EXPECT_EQ(daemon.wait_exit(), 0);
  ASSERT_TRUE(daemon.start()) << daemon.log();
  auto service = client().get("/v1/services/orders");
  ASSERT_EQ(service.status, 200);
  EXPECT_EQ(service.json()["instances"][0]["address"], "127.1.2.3");
}

TEST_F(DaemonTest, SigtermLetsARequestInFlightFinish) {
  const int fd = test_support::connect_tcp(daemon.http_port());
  ASSERT_GE(fd, 0);
  const std::string body = kExample.dump();
  const std::string head =
      "PUT /v1/services/orders/instances/late HTTP/1.1\r\nHost: x\r\n"
      "Content-Type: application/json\r\nContent-Length: " +
      std::to_string(body.size()) + "\r\n\r\n";
  // Half the request, then the signal, then the rest.
  ASSERT_TRUE(test_support::send_all(fd, head + body.substr(0, 10)));
  ASSERT_TRUE(test_support::wait_until([&] {
    return HttpClient(daemon.http_port()).get("/v1/status").json()["http"]["open_connections"] == 2;
  }));
  daemon.process()->signal(SIGTERM);
  ASSERT_TRUE(test_support::wait_until(
      [&] { return daemon.log().find("shutting down") != std::string::npos; }));
  // New connections are refused once shutdown began.
  EXPECT_TRUE(test_support::wait_until([&] {
    const int other = test_support::connect_tcp(daemon.http_port());
    if (other >= 0) ::close(other);
    return other < 0;
  }));
  ASSERT_TRUE(test_support::send_all(fd, body.substr(10)));
  const auto reply = test_support::read_until_close(fd, 10s);
  ::close(fd);
  EXPECT_EQ(reply.rfind("HTTP/1.1 201", 0), 0u) << reply;
  EXPECT_EQ(daemon.wait_exit(), 0);
  ASSERT_TRUE(daemon.start()) << daemon.log();
  EXPECT_EQ(client().get("/v1/services/orders").status, 200);
}

TEST(DaemonStartup, RefusesADatabaseFromANewerVersion) {
  test_support::TempDir dir;
  {
    Daemon daemon(dir);
    ASSERT_TRUE(daemon.start()) << daemon.log();
    daemon.stop();
  }
  {
    SQLite::Database raw(dir.file("discoveryd.db"), SQLite::OPEN_READWRITE);
    raw.exec("UPDATE schema_version SET version = 1000");
  }
  Daemon daemon(dir);
  EXPECT_FALSE(daemon.start());
  EXPECT_EQ(daemon.wait_exit(), 1);
  EXPECT_NE(daemon.log().find("schema version 1000"), std::string::npos) << daemon.log();
}

TEST(DaemonStartup, AnHttpPortInUseIsAClearErrorNotACrash) {
  test_support::TempDir dir;
  const int listener = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(listener, reinterpret_cast<sockaddr*>(&address), sizeof address), 0);
  ASSERT_EQ(::listen(listener, 1), 0);
  socklen_t length = sizeof address;
  ::getsockname(listener, reinterpret_cast<sockaddr*>(&address), &length);
  const auto port = ntohs(address.sin_port);
  Daemon daemon(dir);
  daemon.set_http_port(port);
  EXPECT_FALSE(daemon.start());
  EXPECT_EQ(daemon.wait_exit(), 1);  // not an abort
  EXPECT_NE(daemon.log().find("HTTP listen on 127.0.0.1:" + std::to_string(port)),
            std::string::npos)
      << daemon.log();
  ::close(listener);
}

TEST(DaemonStartup, RejectsABadConfigFileNamingTheSetting) {
  test_support::TempDir dir;
  std::ofstream(dir.file("bad.toml"))
      << "[http]\nlisten = \"127.0.0.1:8500\"\nmax_conections = 3\n";
  Daemon daemon(
      dir, {.db_path = {}, .extra_args = {"--config", dir.file("bad.toml")}, .redis_port = {}});
  EXPECT_FALSE(daemon.start());
  EXPECT_EQ(daemon.wait_exit(), 2);
  EXPECT_NE(daemon.log().find("http.max_conections"), std::string::npos) << daemon.log();
}

// A daemon started with a config file holding the given [http] settings.
class LimitedDaemonTest : public ::testing::Test {
 protected:
  void start_with_http_settings(const std::string& settings) {
    std::ofstream(dir.file("limits.toml")) << "[http]\n" << settings;
    ASSERT_TRUE(daemon.start()) << daemon.log();
  }
  test_support::TempDir dir;
  Daemon daemon{
      dir, {.db_path = {}, .extra_args = {"--config", dir.file("limits.toml")}, .redis_port = {}}};
};

TEST_F(LimitedDaemonTest, SlowClientIsCutOffWhileOthersAreServed) {
  start_with_http_settings("request_timeout = \"500ms\"\n");
  const int slow = test_support::connect_tcp(daemon.http_port());
  ASSERT_GE(slow, 0);
  // Part of a request line, then nothing: the request timeout ends it.
  test_support::send_all(slow, "GET /v1/servi");
  EXPECT_EQ(HttpClient(daemon.http_port()).get("/v1/services").status, 200);
  const auto start = std::chrono::steady_clock::now();
  test_support::read_until_close(slow, 5s);  // returns when the server closes
  ::close(slow);
  const auto waited = std::chrono::steady_clock::now() - start;
  EXPECT_LT(waited, 3s);
  EXPECT_EQ(HttpClient(daemon.http_port()).get("/v1/services").status, 200);
}

TEST_F(LimitedDaemonTest, ConnectionsOverTheCapGetA503) {
  start_with_http_settings("max_connections = 4\nrequest_timeout = \"30s\"\n");
  std::vector<int> idle;
  for (int i = 0; i < 4; ++i) {
    idle.push_back(test_support::connect_tcp(daemon.http_port()));
    ASSERT_GE(idle.back(), 0);
  }
  // The server may see the connections after connect() returns: poll.
  ASSERT_TRUE(test_support::wait_until([&] {
    const int extra = test_support::connect_tcp(daemon.http_port());
    const auto reply = test_support::read_until_close(extra, 1s);
    ::close(extra);
    return reply.rfind("HTTP/1.1 503", 0) == 0;
  }));
  for (int fd : idle) ::close(fd);
  EXPECT_TRUE(test_support::wait_until(
      [&] { return HttpClient(daemon.http_port()).get("/v1/services").status == 200; }));
}

// Slowloris: a client that trickles its headers a byte at a time, each byte well
// within any idle timeout, is still cut off once the whole-request deadline passes.
TEST_F(LimitedDaemonTest, TricklingHeadersAreCutOffAtTheRequestTimeout) {
  start_with_http_settings("request_timeout = \"1s\"\n");
  const int fd = test_support::connect_tcp(daemon.http_port());
  ASSERT_GE(fd, 0);
  const std::string endless =
      "GET /v1/services HTTP/1.1\r\nHost: x\r\nX-Slow: " + std::string(1000, 'a');
  const auto start = std::chrono::steady_clock::now();
  bool closed = false;
  for (std::size_t i = 0; i < endless.size() && !closed; ++i) {
    if (::send(fd, &endless[i], 1, MSG_NOSIGNAL) != 1) break;  // reset by the server
    // One byte per 200 ms; a close (EOF) or reset shows up as readable.
    pollfd readable{fd, POLLIN, 0};
    if (::poll(&readable, 1, 200) == 1) {
      char byte = 0;
      closed = ::recv(fd, &byte, 1, MSG_DONTWAIT) <= 0;
    }
    if (std::chrono::steady_clock::now() - start > 10s) break;
  }
  const auto waited = std::chrono::steady_clock::now() - start;
  ::close(fd);
  EXPECT_LT(waited, 5s);
  EXPECT_EQ(HttpClient(daemon.http_port()).get("/v1/services").status, 200);
}

// The same for a body: complete headers, then the body a byte at a time.
TEST_F(LimitedDaemonTest, TricklingBodyIsCutOffAtTheRequestTimeout) {
  start_with_http_settings("request_timeout = \"1s\"\n");
  const int fd = test_support::connect_tcp(daemon.http_port());
  ASSERT_GE(fd, 0);
  ASSERT_TRUE(
      test_support::send_all(fd,
                             "PUT /v1/services/orders/instances/a1 HTTP/1.1\r\nHost: x\r\n"
                             "Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n"));
  const auto start = std::chrono::steady_clock::now();
  std::string reply;
  while (std::chrono::steady_clock::now() - start < 10s) {
    if (::send(fd, " ", 1, MSG_NOSIGNAL) != 1) break;
    pollfd readable{fd, POLLIN, 0};
    if (::poll(&readable, 1, 200) == 1) {
      char byte = 0;
      if (::recv(fd, &byte, 1, MSG_DONTWAIT) <= 0) break;
      reply += byte;  // nothing is expected: a timeout is not answered
    }
  }
  const auto waited = std::chrono::steady_clock::now() - start;
  ::close(fd);
  EXPECT_LT(waited, 5s);
  EXPECT_EQ(reply, "");
  EXPECT_EQ(HttpClient(daemon.http_port()).get("/v1/services/orders").status, 404);
}

// A body declared too large is refused from its headers: the server neither waits
// for it nor keeps it. A client that keeps uploading before it reads (as curl
// does) still gets the 413, not a connection reset.
TEST_F(DaemonTest, ADeclaredOversizedBodyIsRefusedBeforeItArrives) {
  const int fd = test_support::connect_tcp(daemon.http_port());
  ASSERT_GE(fd, 0);
  ASSERT_TRUE(test_support::send_all(fd,
                                     "PUT /v1/services/orders/instances/a1 HTTP/1.1\r\nHost: x\r\n"
                                     "Content-Type: application/json\r\n"
                                     "Content-Length: 1000000\r\n\r\n{"));
  pollfd readable{fd, POLLIN, 0};
  EXPECT_EQ(::poll(&readable, 1, 5000), 1);  // the answer comes before the body; timeout 10 s
  // More of the body arrives after the refusal, before the client reads it.
  test_support::send_all(fd, std::string(256 * 1024, ' '));
  const auto reply = test_support::read_until_close(fd, 10s);
  ::close(fd);
  EXPECT_EQ(reply.rfind("HTTP/1.1 413", 0), 0u) << reply;
  EXPECT_EQ(client().get("/v1/services/orders").status, 404);
}

// A chunked body has no declared size: it is cut off where it passes the limit, and
// the client, still sending, reads the 413 rather than a connection reset.
TEST_F(DaemonTest, AChunkedBodyOverTheLimitGetsA413) {
  const int fd = test_support::connect_tcp(daemon.http_port());
  ASSERT_GE(fd, 0);
  std::string request =
      "PUT /v1/services/orders/instances/a1 HTTP/1.1\r\nHost: x\r\n"
      "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n";
  for (int i = 0; i < 100; ++i) request += "400\r\n" + std::string(1024, ' ') + "\r\n";
  request += "0\r\n\r\n";
  test_support::send_all(fd, request);  // may fail part-way once the server has refused
  const auto reply = test_support::read_until_close(fd, 10s);
  ::close(fd);
  EXPECT_EQ(reply.rfind("HTTP/1.1 413", 0), 0u) << reply.substr(0, 200);
  EXPECT_EQ(client().get("/v1/status").status, 200);
}

}  // namespace
