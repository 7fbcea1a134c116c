// The HTTP API over TLS, on the real daemon started with --tls-cert/--tls-key and a
// self-signed certificate for 127.0.0.1 made by the openssl CLI, driven by curl:
// registrations over HTTPS reach DNS, clients that cannot or will not speak TLS
// are refused quickly without disturbing others, the HTTP limits hold over TLS,
// and an unusable certificate or key stops the daemon at start-up naming the file.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "tests/dns/test_support.h"
#include "tests/support/http_client.h"
#include "tests/support/process.h"

namespace {

using namespace std::chrono_literals;
using nlohmann::json;
using test_support::Daemon;
using test_support::wait_until;

struct CommandResult {
  int exit_code = -1;
  std::string output;  // stdout and stderr
};

CommandResult run(const std::string& command) {
  CommandResult result;
  std::FILE* pipe = ::popen((command + " 2>&1").c_str(), "r");
  if (pipe == nullptr) return result;
  std::array<char, 4096> chunk{};
  std::size_t got = 0;
  while ((got = std::fread(chunk.data(), 1, chunk.size(), pipe)) > 0)
    result.output.append(chunk.data(), got);
  const int status = ::pclose(pipe);
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return result;
}

struct CurlResult {
  int exit_code = -1;  // curl's: 0 ok, 35 TLS handshake, 52 empty reply, 60 untrusted
  int status = 0;      // HTTP status, 0 when none arrived
  std::string body;
  std::string error;  // curl's message
  json json_body() const { return json::parse(body, nullptr, false); }
};

// A self-signed EC certificate valid for IP 127.0.0.1, as an operator might make one.
void make_certificate(const test_support::TempDir& dir, const std::string& name) {
  const auto made =
      run("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 "
          "-nodes -days 1 -subj /CN=localhost -addext subjectAltName=IP:127.0.0.1 "
          "-keyout " +
          dir.file(name + ".key") + " -out " + dir.file(name + ".crt"));
  ASSERT_EQ(made.exit_code, 0) << made.output;
}

class TlsDaemonTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(run("command -v curl").exit_code, 0) << "curl is needed (apt-get install curl)";
    make_certificate(dir, "server");
  }
  void TearDown() override {
    if (HasFailure()) std::cerr << "---- daemon log ----\n" << daemon.log().substr(0, 20000);
  }
  // Starts the daemon serving HTTPS with the given [http] settings.
  void start(const std::string& http_settings = "") {
    std::ofstream(dir.file("tls.toml")) << "[http]\n" << http_settings;
    ASSERT_TRUE(daemon.start()) << daemon.log();
  }
  std::string url(const std::string& target, const std::string& scheme = "https") const {
    return scheme + "://127.0.0.1:" + std::to_string(daemon.http_port()) + target;
  }
  // curl with the given arguments; trusts our certificate unless told otherwise.
  CurlResult curl(const std::string& arguments, bool trust_certificate = true) {
    const std::string body_file = dir.file("curl-body");
    std::remove(body_file.c_str());
    const auto ran =
        run("curl -sS --max-time 10 -o " + body_file + " -w '%{http_code}' " +
            (trust_certificate ? "--cacert " + dir.file("server.crt") + " " : "") + arguments);
    CurlResult result;
    result.exit_code = ran.exit_code;
    // -w prints the status last, after any error message on stderr.
    const auto status_at = ran.output.find_last_not_of("0123456789");
    const auto status_text =
        status_at == std::string::npos ? ran.output : ran.output.substr(status_at + 1);
    result.status = status_text.empty() ? 0 : std::stoi(status_text);
    result.error = ran.output;
    result.body = test_support::read_file(body_file);
    return result;
  }
  CurlResult put_json(const std::string& target, const json& body) {
    std::ofstream(dir.file("request.json")) << body.dump();
    return curl("-X PUT -H 'Content-Type: application/json' --data-binary @" +
                dir.file("request.json") + " " + url(target));
  }
  json status() { return curl(url("/v1/status")).json_body(); }

  test_support::TempDir dir;
  Daemon daemon{dir,
                {.db_path = {},
                 .extra_args = {"--config", dir.file("tls.toml"), "--tls-cert",
                                dir.file("server.crt"), "--tls-key", dir.file("server.key")},
                 .redis_port = {}}};
};

TEST_F(TlsDaemonTest, RegistrationOverHttpsReachesDns) {
  start();
  const auto created =
      put_json("/v1/services/orders/instances/a1", {{"address", "127.1.2.3"}, {"port", 8080}});
  ASSERT_EQ(created.exit_code, 0) << created.error;
  EXPECT_EQ(created.status, 201) << created.body;

  const auto read_back = curl(url("/v1/services/orders"));
  ASSERT_EQ(read_back.status, 200) << read_back.error;
  EXPECT_EQ(read_back.json_body()["instances"][0]["address"], "127.1.2.3") << read_back.body;

  const auto dig =
      dns::testing::run_command("dig @127.0.0.1 -p " + std::to_string(daemon.dns_port()) +
                                " +short orders.service.discovery A 2>&1");
  EXPECT_EQ(dig.value_or(""), "127.1.2.3\n");

  const auto http = status()["http"];
  EXPECT_EQ(http["tls"], true) << http.dump();
  EXPECT_EQ(http["tls_handshake_failures"], 0) << http.dump();
  // Plain HTTP is not served at all.
  const auto plain = test_support::HttpClient(daemon.http_port()).get("/v1/services/orders");
  EXPECT_NE(plain.status, 200);
}

// Certificates are renewed while the daemon runs (ACME, cert-manager): SIGHUP
// must switch new connections to the new pair, and a broken pair must not take
// the working one away.
TEST_F(TlsDaemonTest, SighupReloadsTheCertificateAndKeepsItWhenTheNewOneIsBroken) {
  start();
  const std::string old_ca = dir.file("old.crt");
  std::filesystem::copy_file(dir.file("server.crt"), old_ca);
  make_certificate(dir, "server");  // the renewal, written over the files in use
  const auto trusting = [&](const std::string& ca) {
    return curl("--cacert " + ca + " " + url("/v1/services"), /*trust_certificate=*/false);
  };
  ASSERT_EQ(trusting(old_ca).status, 200);
  EXPECT_EQ(trusting(dir.file("server.crt")).exit_code, 60) << "served the new one unasked";

  daemon.process()->signal(SIGHUP);
  EXPECT_TRUE(wait_until([&] { return trusting(dir.file("server.crt")).status == 200; }, 15s))
      << "the renewed certificate was not served after SIGHUP";
  EXPECT_EQ(trusting(old_ca).exit_code, 60);

  std::ofstream(dir.file("server.key"), std::ios::trunc) << "not a key\n";
  daemon.process()->signal(SIGHUP);
  EXPECT_TRUE(wait_until(
      [&] { return daemon.log().find("TLS certificate not reloaded") != std::string::npos; }, 15s));
  EXPECT_EQ(trusting(dir.file("server.crt")).status, 200);
  EXPECT_TRUE(daemon.process()->running());
}

TEST_F(TlsDaemonTest, AClientThatDoesNotTrustTheCertificateGetsNoAnswer) {
  start();
  const auto untrusted = curl(url("/v1/services"), /*trust_certificate=*/false);
  EXPECT_EQ(untrusted.exit_code, 60) << untrusted.error;  // peer certificate not trusted
  EXPECT_EQ(untrusted.status, 0);
  // A certificate for another name is refused too: the certificate is checked, not
  // just the encryption.
  const auto wrong_name = curl(
      "--resolve other.example:" + std::to_string(daemon.http_port()) +
      ":127.0.0.1 https://other.example:" + std::to_string(daemon.http_port()) + "/v1/services");
  EXPECT_EQ(wrong_name.exit_code, 60) << wrong_name.error;
  EXPECT_EQ(curl(url("/v1/services")).status, 200);
  EXPECT_GE(status()["http"]["tls_handshake_failures"], 1);
  // Scanners fail handshakes all day: that is debug, never a warning.
  std::istringstream log(daemon.log());
  for (std::string line; std::getline(log, line);) {
    const bool http_warning = line.find("[http]") != std::string::npos &&
                              line.find(" debug ") == std::string::npos &&
                              line.find(" info ") == std::string::npos;
    EXPECT_FALSE(http_warning) << line;
  }
}

TEST_F(TlsDaemonTest, PlainHttpAndGarbageOnTheHttpsPortAreClosedQuickly) {
  start();
  // An HTTP client is told in plain text to use https://, then closed.
  const auto plain = curl(url("/v1/services", "http"));
  EXPECT_EQ(plain.status, 400) << plain.error;
  EXPECT_NE(plain.body.find("https://"), std::string::npos) << plain.body;

  // Bytes that are neither HTTP nor TLS: the handshake fails at once.
  const int fd = test_support::connect_tcp(daemon.http_port());
  ASSERT_GE(fd, 0);
  ASSERT_TRUE(test_support::send_all(fd, std::string("\x01\x02\x03 not tls\r\n\r\n")));
  const auto started = std::chrono::steady_clock::now();
  const auto reply = test_support::read_until_close(fd, 10s);
  ::close(fd);
  EXPECT_LT(std::chrono::steady_clock::now() - started, 5s);  // request timeout is 10 s
  EXPECT_EQ(reply.find("HTTP/1.1 200"), std::string::npos) << reply;

  EXPECT_EQ(curl(url("/v1/services")).status, 200);
  EXPECT_GE(status()["http"]["tls_handshake_failures"], 2);
}

TEST_F(TlsDaemonTest, ClientsThatNeverHandshakeAreDroppedAndFreeTheirSlots) {
  start("request_timeout = \"1s\"\nmax_connections = 3\n");
  // Two silent clients, with the checking client's connection, fill the cap.
  std::vector<int> silent;
  for (int i = 0; i < 2; ++i) {
    silent.push_back(test_support::connect_tcp(daemon.http_port()));
    ASSERT_GE(silent.back(), 0);
  }
  const auto started = std::chrono::steady_clock::now();
  for (int fd : silent) {
    // Returns when the server closes: nothing is ever sent back.
    EXPECT_EQ(test_support::read_until_close(fd, 10s), "");
    ::close(fd);
  }
  const auto waited = std::chrono::steady_clock::now() - started;
  EXPECT_LT(waited, 5s);
  EXPECT_GE(waited, 800ms);  // not at once: the timeout, not a refusal
  // Their slots are free again: nothing stays counted against max_connections.
  EXPECT_TRUE(wait_until([&] { return curl(url("/v1/services")).status == 200; }));
  const auto http = status()["http"];
  EXPECT_EQ(http["open_connections"], 1) << http.dump();
  EXPECT_EQ(http["rejected_over_limit"], 0) << http.dump();
  EXPECT_GE(http["tls_handshake_failures"], 2) << http.dump();
}

TEST_F(TlsDaemonTest, ConnectionsOverTheCapAreClosedWithoutAHandshake) {
  start("request_timeout = \"30s\"\nmax_connections = 2\n");
  std::vector<int> idle;
  for (int i = 0; i < 2; ++i) {
    idle.push_back(test_support::connect_tcp(daemon.http_port()));
    ASSERT_GE(idle.back(), 0);
  }
  // The server may see the idle connections after connect() returns: poll.
  EXPECT_TRUE(wait_until([&] { return curl(url("/v1/services")).exit_code != 0; }));
  for (int fd : idle) ::close(fd);
  EXPECT_TRUE(wait_until([&] { return curl(url("/v1/services")).status == 200; }));
  EXPECT_GE(status()["http"]["rejected_over_limit"], 1);
}

TEST_F(TlsDaemonTest, BodyAndHeaderLimitsHoldOverTls) {
  start();
  // 64 KiB is the most a body may be. curl sends all of a body before it reads the
  // answer: the 413 must survive the server refusing (and closing) early.
  const auto huge = put_json(
      "/v1/services/orders/instances/a1",
      {{"address", "127.1.2.3"}, {"port", 8080}, {"meta", {{"pad", std::string(900'000, 'x')}}}});
  EXPECT_EQ(huge.status, 413) << huge.error;
  EXPECT_EQ(huge.json_body()["field"], "body") << huge.body;

  const auto big_header =
      curl("-H 'X-Big: " + std::string(16 * 1024, 'a') + "' " + url("/v1/services"));
  EXPECT_EQ(big_header.status, 431) << big_header.error;

  EXPECT_EQ(curl(url("/v1/services/orders")).status, 404);  // nothing was registered
  EXPECT_EQ(curl(url("/v1/services")).status, 200);
}

TEST_F(TlsDaemonTest, ConnectionsAreKeptAliveAndClosedAfterTheExchange) {
  start();
  // Three requests on one connection: curl reuses it for URLs of the same host and
  // prints the bodies one after the other.
  const auto three = run("curl -sS --max-time 10 --cacert " + dir.file("server.crt") + " " +
                         url("/v1/services") + " " + url("/v1/services") + " " + url("/v1/status"));
  ASSERT_EQ(three.exit_code, 0) << three.output;
  const auto last =
      json::parse(three.output.substr(three.output.rfind("{\"cache\"")), nullptr, false);
  EXPECT_EQ(last["http"]["accepted"], 1) << three.output;
  EXPECT_EQ(last["http"]["requests"], 3) << three.output;
  // Every session ends (TLS close included) once its client leaves.
  EXPECT_TRUE(wait_until([&] { return status()["http"]["open_connections"] == 1; }));
}

// Start-up with an unusable certificate or key: exit 1 with a message naming it.
class TlsStartupTest : public ::testing::Test {
 protected:
  void SetUp() override { make_certificate(dir, "server"); }
  // Starts with the files; returns the daemon's log after it exited.
  std::string start_expecting_failure(const std::string& certificate, const std::string& key) {
    Daemon daemon(dir, {.db_path = {},
                        .extra_args = {"--tls-cert", certificate, "--tls-key", key},
                        .redis_port = {}});
    EXPECT_FALSE(daemon.start());
    EXPECT_EQ(daemon.wait_exit(), 1);  // a clear error, not an abort
    return daemon.log();
  }
  test_support::TempDir dir;
};

TEST_F(TlsStartupTest, AMissingKeyFileIsNamed) {
  const auto log = start_expecting_failure(dir.file("server.crt"), dir.file("missing.key"));
  EXPECT_NE(
      log.find("TLS private key file " + dir.file("missing.key") + ": No such file or directory"),
      std::string::npos)
      << log;
}

TEST_F(TlsStartupTest, AGarbageKeyFileIsNamed) {
  std::ofstream(dir.file("garbage.key")) << "not a key\n";
  const auto log = start_expecting_failure(dir.file("server.crt"), dir.file("garbage.key"));
  EXPECT_NE(log.find("TLS private key file " + dir.file("garbage.key")), std::string::npos) << log;
  EXPECT_NE(log.find("not an unencrypted PEM private key"), std::string::npos) << log;
}

TEST_F(TlsStartupTest, AKeyOfAnotherCertificateIsNamed) {
  make_certificate(dir, "other");
  const auto log = start_expecting_failure(dir.file("server.crt"), dir.file("other.key"));
  EXPECT_NE(log.find("TLS private key file " + dir.file("other.key")), std::string::npos) << log;
  EXPECT_NE(log.find("key values mismatch"), std::string::npos) << log;
}

TEST_F(TlsStartupTest, AGarbageCertificateFileIsNamed) {
  const auto log = start_expecting_failure(dir.file("server.key"), dir.file("server.key"));
  EXPECT_NE(log.find("TLS certificate file " + dir.file("server.key")), std::string::npos) << log;
}

TEST_F(TlsStartupTest, AnEncryptedKeyIsRefusedWithoutPrompting) {
  const auto encrypted = run("openssl pkey -in " + dir.file("server.key") +
                             " -aes256 -passout pass:secret -out " + dir.file("encrypted.key"));
  ASSERT_EQ(encrypted.exit_code, 0) << encrypted.output;
  // Process gives the daemon no terminal; a prompt would hang until the start timeout.
  const auto started = std::chrono::steady_clock::now();
  const auto log = start_expecting_failure(dir.file("server.crt"), dir.file("encrypted.key"));
  EXPECT_LT(std::chrono::steady_clock::now() - started, 10s);
  EXPECT_NE(log.find("TLS private key file " + dir.file("encrypted.key")), std::string::npos)
      << log;
}

}  // namespace
