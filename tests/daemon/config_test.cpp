#include "config.h"

#include <gtest/gtest.h>

#include <fstream>

#include "tests/support/process.h"

namespace {

using namespace std::chrono_literals;
using daemon_config::Config;
using daemon_config::ConfigError;

std::string error_of(const std::string& toml) {
  Config config;
  try {
    daemon_config::apply_toml(config, toml, "test.toml");
  } catch (const ConfigError& error) {
    return error.what();
  }
  return "";
}

TEST(Config, ListenAddressesParseBothFamilies) {
  auto v4 = daemon_config::parse_listen_address("127.0.0.1:8600", "x");
  EXPECT_EQ(v4.host, "127.0.0.1");
  EXPECT_EQ(v4.port, 8600);
  auto v6 = daemon_config::parse_listen_address("[::1]:53", "x");
  EXPECT_EQ(v6.host, "::1");
  EXPECT_EQ(v6.to_string(), "[::1]:53");
  for (const char* bad : {"127.0.0.1", "localhost:53", "127.0.0.1:65536", "127.0.0.1:x", ":53"}) {
    EXPECT_THROW(daemon_config::parse_listen_address(bad, "x"), ConfigError) << bad;
  }
}

// One source per default: a configuration nobody changed hands every component
// exactly the defaults of its own options struct, and registrations the same
// check defaults as the checker.
TEST(Config, UntouchedDefaultsAreTheComponentsOwn) {
  const Config config;
  const dns::Options dns_defaults;
  const auto dns = daemon_config::dns_options(config, dns_defaults.zone_file);
  EXPECT_EQ(dns.listen_address, dns_defaults.listen_address);
  EXPECT_EQ(dns.listen_port, dns_defaults.listen_port);
  EXPECT_EQ(dns.domain, dns_defaults.domain);
  EXPECT_EQ(dns.answer_ttl, dns_defaults.answer_ttl);
  EXPECT_EQ(dns.max_udp_payload, dns_defaults.max_udp_payload);
  EXPECT_EQ(dns.max_tcp_connections, dns_defaults.max_tcp_connections);
  EXPECT_EQ(dns.max_tcp_connections_per_client, dns_defaults.max_tcp_connections_per_client);
  EXPECT_EQ(dns.tcp_idle_timeout, dns_defaults.tcp_idle_timeout);
  EXPECT_EQ(dns.default_lb, dns_defaults.default_lb);
  EXPECT_EQ(dns.rate_limit.responses_per_second, dns_defaults.rate_limit.responses_per_second);
  EXPECT_EQ(dns.rate_limit.slip, dns_defaults.rate_limit.slip);
  EXPECT_EQ(dns.rate_limit.exempt, dns_defaults.rate_limit.exempt);
  EXPECT_EQ(daemon_config::zone_file_path(config), dns_defaults.zone_file);

  const registry::HttpServerOptions http_defaults;
  const auto http = daemon_config::http_options(config);
  EXPECT_EQ(http.address, http_defaults.address);
  EXPECT_EQ(http.port, 8500);
  EXPECT_EQ(http.port, http_defaults.port);
  EXPECT_EQ(http.max_connections, http_defaults.max_connections);
  EXPECT_EQ(http.request_timeout, http_defaults.request_timeout);
  EXPECT_EQ(http.max_body_bytes, http_defaults.max_body_bytes);

  const health::Options health_defaults;
  const auto health = daemon_config::health_options(config);
  EXPECT_EQ(health.default_interval, health_defaults.default_interval);
  EXPECT_EQ(health.default_timeout, health_defaults.default_timeout);
  EXPECT_EQ(health.default_failures, health_defaults.default_failures);
  EXPECT_EQ(health.max_concurrent_probes, health_defaults.max_concurrent_probes);
  EXPECT_EQ(health.resync_period, health_defaults.resync_period);
  const auto checks = daemon_config::check_defaults(config);
  EXPECT_EQ(checks.interval, health.default_interval);
  EXPECT_EQ(checks.timeout, health.default_timeout);
  EXPECT_EQ(checks.failures, health.default_failures);

  const store::CacheOptions cache_defaults;
  const auto cache = daemon_config::cache_options(config);
  EXPECT_EQ(cache.prefix, cache_defaults.prefix);
  EXPECT_EQ(cache.ttl, cache_defaults.ttl);
  EXPECT_EQ(cache.max_lookups_in_flight, cache_defaults.max_lookups_in_flight);
  ASSERT_TRUE(cache.redis);
  EXPECT_EQ(cache.redis->host, store::redis::Options{}.host);
  EXPECT_EQ(cache.redis->port, store::redis::Options{}.port);
  EXPECT_EQ(cache.redis->command_timeout, store::redis::Options{}.command_timeout);

  const store::StoreOptions store_defaults;
  EXPECT_EQ(daemon_config::store_options(config).busy_timeout, store_defaults.busy_timeout);
  EXPECT_EQ(daemon_config::store_options(config).synchronous_full, store_defaults.synchronous_full);
}

TEST(Config, TomlOverridesDefaults) {
  Config config;
  daemon_config::apply_toml(config, R"(
    [store]
    path = "/var/lib/discoveryd/registry.db"
    synchronous = "normal"
    [http]
    listen = "0.0.0.0:9000"
    max_connections = 10
    request_timeout = "3s"
    [dns]
    listen = "[::1]:5300"
    domain = "sd.example."
    answer_ttl = 2
    negative_ttl = 1
    [health]
    interval = "10s"
    timeout = "1s"
    failures = 5
    [log]
    level = "debug"
  )",
                            "test.toml");
  EXPECT_EQ(config.db_path, "/var/lib/discoveryd/registry.db");
  EXPECT_FALSE(config.db_synchronous_full);
  EXPECT_EQ(config.http_listen.to_string(), "0.0.0.0:9000");
  EXPECT_EQ(config.http_max_connections, 10u);
  EXPECT_EQ(config.http_request_timeout, 3s);
  EXPECT_EQ(config.dns_listen.to_string(), "[::1]:5300");
  EXPECT_EQ(config.domain, "sd.example.");
  EXPECT_EQ(config.dns_answer_ttl, 2u);
  EXPECT_EQ(config.dns_negative_ttl, 1u);
  EXPECT_EQ(config.check_interval, 10s);
  EXPECT_EQ(config.check_timeout, 1s);
  EXPECT_EQ(config.check_failures, 5u);
  EXPECT_EQ(config.log_level, "debug");
}

TEST(Config, ErrorsNameFileAndSetting) {
  EXPECT_NE(error_of("[http]\nlisten = 5\n").find("http.listen"), std::string::npos);
  EXPECT_NE(error_of("[http]\nlsten = \"x\"\n").find("http.lsten"), std::string::npos);
  EXPECT_NE(error_of("[bogus]\n").find("[bogus]"), std::string::npos);
  EXPECT_NE(error_of("[health]\ninterval = \"soon\"\n").find("health.interval"), std::string::npos);
  EXPECT_NE(error_of("[health]\nfailures = 0\n").find("health.failures"), std::string::npos);
  EXPECT_NE(error_of("this is not toml").find("test.toml:1"), std::string::npos);
}

TEST(Config, FlagsOverrideTheFile) {
  test_support::TempDir dir;
  const auto file = dir.file("c.toml");
  std::ofstream(file) << "[store]\npath = \"from-file.db\"\n[log]\nlevel = \"warn\"\n";
  std::vector<std::string> args = {"discoveryd",   "--config",         file, "--db",
                                   "from-flag.db", "--check-interval", "5s"};
  std::vector<char*> argv;
  for (auto& arg : args) argv.push_back(arg.data());
  auto loaded = daemon_config::load(static_cast<int>(argv.size()), argv.data());
  ASSERT_TRUE(std::holds_alternative<Config>(loaded));
  const auto& config = std::get<Config>(loaded);
  EXPECT_EQ(config.db_path, "from-flag.db");
  EXPECT_EQ(config.log_level, "warn");
  EXPECT_EQ(config.check_interval, 5s);
}

TEST(Config, InconsistentSettingsAreRejected) {
  std::vector<std::string> args = {"discoveryd", "--check-interval", "1s", "--check-timeout", "2s"};
  std::vector<char*> argv;
  for (auto& arg : args) argv.push_back(arg.data());
  auto loaded = daemon_config::load(static_cast<int>(argv.size()), argv.data());
  ASSERT_TRUE(std::holds_alternative<int>(loaded));
  EXPECT_EQ(std::get<int>(loaded), 2);
}

TEST(Config, TheExampleConfigInTheRepositoryLoads) {
  std::vector<std::string> args = {"discoveryd", "--config",
                                   DISCOVERYD_SOURCE_DIR "/discoveryd.example.toml"};
  std::vector<char*> argv;
  for (auto& arg : args) argv.push_back(arg.data());
  auto loaded = daemon_config::load(static_cast<int>(argv.size()), argv.data());
  ASSERT_TRUE(std::holds_alternative<Config>(loaded));
}

}  // namespace

namespace {

TEST(Config, LoadBalancingSettings) {
  Config config;
  EXPECT_EQ(config.dns_default_lb, "round_robin");
  EXPECT_EQ(config.dns_max_answer_records, 0u);
  daemon_config::apply_toml(
      config, "[dns]\ndefault_lb = \"least_loaded\"\nmax_answer_records = 3\n", "test.toml");
  EXPECT_EQ(config.dns_default_lb, "least_loaded");
  EXPECT_EQ(config.dns_max_answer_records, 3u);
  EXPECT_NE(error_of("[dns]\ndefault_lb = \"fastest\"\n").find("dns.default_lb"),
            std::string::npos);
  EXPECT_NE(error_of("[dns]\nmax_answer_records = -1\n").find("dns.max_answer_records"),
            std::string::npos);
}

}  // namespace

namespace {

std::variant<Config, int> load_args(std::vector<std::string> args) {
  args.insert(args.begin(), "discoveryd");
  std::vector<char*> argv;
  for (auto& arg : args) argv.push_back(arg.data());
  return daemon_config::load(static_cast<int>(argv.size()), argv.data());
}

TEST(Config, SecuritySettings) {
  Config config;
  EXPECT_TRUE(config.token_file.empty());
  EXPECT_EQ(config.read_access, "open");
  EXPECT_FALSE(config.deny_ranges);
  EXPECT_EQ(config.dns_rrl_exempt.size(), 2u);
  daemon_config::apply_toml(config, R"(
    [http]
    token_file = "/etc/discoveryd/tokens"
    read_access = "token"
    tls_cert = "cert.pem"
    tls_key = "key.pem"
    max_header_bytes = 4096
    max_body_bytes = 2048
    deny_ranges = ["10.0.0.0/8", "fd00::/8"]
    [dns]
    rrl_responses_per_second = 50
    rrl_burst = 100
    rrl_slip = 3
    rrl_ipv4_prefix = 24
    rrl_ipv6_prefix = 48
    rrl_exempt = []
    max_tcp_connections_per_client = 4
  )",
                            "test.toml");
  EXPECT_EQ(config.token_file, "/etc/discoveryd/tokens");
  EXPECT_EQ(config.read_access, "token");
  EXPECT_EQ(config.tls_cert, "cert.pem");
  EXPECT_EQ(config.tls_key, "key.pem");
  EXPECT_EQ(config.http_max_header_bytes, 4096u);
  EXPECT_EQ(config.http_max_body_bytes, 2048u);
  ASSERT_TRUE(config.deny_ranges);
  ASSERT_EQ(config.deny_ranges->size(), 2u);
  EXPECT_EQ((*config.deny_ranges)[1].to_string(), "fd00::/8");
  EXPECT_EQ(config.dns_rrl_responses_per_second, 50u);
  EXPECT_EQ(config.dns_rrl_burst, 100u);
  EXPECT_EQ(config.dns_rrl_slip, 3u);
  EXPECT_EQ(config.dns_rrl_ipv4_prefix, 24);
  EXPECT_EQ(config.dns_rrl_ipv6_prefix, 48);
  EXPECT_TRUE(config.dns_rrl_exempt.empty());
  EXPECT_EQ(config.dns_max_tcp_connections_per_client, 4u);
}

TEST(Config, SecuritySettingsAreValidated) {
  EXPECT_NE(error_of("[http]\ndeny_ranges = [\"10.0.0.1/8\"]\n").find("http.deny_ranges"),
            std::string::npos);
  EXPECT_NE(error_of("[http]\ndeny_ranges = \"10.0.0.0/8\"\n").find("http.deny_ranges"),
            std::string::npos);
  EXPECT_NE(error_of("[dns]\nrrl_exempt = [\"nonsense\"]\n").find("dns.rrl_exempt"),
            std::string::npos);
  EXPECT_NE(error_of("[dns]\nrrl_ipv4_prefix = 33\n").find("dns.rrl_ipv4_prefix"),
            std::string::npos);
  EXPECT_NE(error_of("[store]\nbusy_timeout = \"never\"\n").find("store.busy_timeout"),
            std::string::npos);
  // The busy timeout must leave the client time to receive the 503.
  test_support::TempDir dir;
  std::ofstream(dir.file("slow.toml")) << "[store]\nbusy_timeout = \"20s\"\n";
  EXPECT_EQ(std::get<int>(load_args({"--config", dir.file("slow.toml")})), 2);
  std::ofstream(dir.file("ok.toml")) << "[store]\nbusy_timeout = \"500ms\"\n";
  auto loaded_ok = load_args({"--config", dir.file("ok.toml")});
  ASSERT_TRUE(std::holds_alternative<Config>(loaded_ok));
  EXPECT_EQ(std::get<Config>(loaded_ok).busy_timeout(), 500ms);
  // Unset, it follows a short request timeout instead of refusing it.
  std::ofstream(dir.file("quick.toml")) << "[http]\nrequest_timeout = \"1s\"\n";
  auto quick = load_args({"--config", dir.file("quick.toml")});
  ASSERT_TRUE(std::holds_alternative<Config>(quick));
  EXPECT_EQ(std::get<Config>(quick).busy_timeout(), 500ms);
  // A named Config, not a temporary: GCC 12 at -O3 raises a false
  // -Wmaybe-uninitialized when a temporary Config's strings are destroyed.
  const Config defaults;
  EXPECT_EQ(defaults.busy_timeout(), 2s);
  // Read protection without tokens, and half a TLS configuration, are refused.
  EXPECT_EQ(std::get<int>(load_args({"--read-access", "token"})), 2);
  EXPECT_EQ(std::get<int>(load_args({"--read-access", "sometimes", "--token-file", "t"})), 2);
  EXPECT_EQ(std::get<int>(load_args({"--tls-cert", "cert.pem"})), 2);
  auto loaded = load_args(
      {"--token-file", "t", "--read-access", "token", "--tls-cert", "c", "--tls-key", "k"});
  ASSERT_TRUE(std::holds_alternative<Config>(loaded));
  EXPECT_EQ(std::get<Config>(loaded).token_file, "t");
  EXPECT_EQ(std::get<Config>(loaded).tls_key, "k");
}

TEST(Config, ResyncIntervalIsBounded) {
  Config config;  // named, not Config{}: see SecuritySettingsAreValidated (GCC 12 -O3)
  EXPECT_EQ(config.resync_interval, 60s);
  daemon_config::apply_toml(config, "[health]\nresync_interval = \"5s\"\n", "test.toml");
  EXPECT_EQ(config.resync_interval, 5s);
  for (const char* bad : {"500ms", "25h", "often"}) {
    EXPECT_NE(error_of(std::string("[health]\nresync_interval = \"") + bad + "\"\n")
                  .find("health.resync_interval"),
              std::string::npos)
        << bad;
  }
}

}  // namespace

namespace {

// --db and db.url choose the backend by the value's shape.
TEST(Config, TheDatabaseSettingChoosesSqliteOrPostgres) {
  auto postgres = load_args({"--db", "postgresql://d:secret@127.0.0.1:5432/reg"});
  ASSERT_TRUE(std::holds_alternative<Config>(postgres));
  EXPECT_TRUE(std::get<Config>(postgres).postgres());
  EXPECT_EQ(std::get<Config>(postgres).db_url, "postgresql://d:secret@127.0.0.1:5432/reg");
  auto sqlite = load_args({"--db", "sqlite:/tmp/x.db", "--db-connect-wait", "5s"});
  ASSERT_TRUE(std::holds_alternative<Config>(sqlite));
  EXPECT_FALSE(std::get<Config>(sqlite).postgres());
  EXPECT_EQ(std::get<Config>(sqlite).db_path, "/tmp/x.db");
  EXPECT_EQ(std::get<Config>(sqlite).db_connect_wait, 5s);
  Config config;
  daemon_config::apply_toml(config, R"(
    [db]
    url = "postgres://d@db.example/reg"
    connect_wait = "2s"
  )",
                            "db.toml");
  EXPECT_TRUE(config.postgres());
  EXPECT_EQ(config.db_connect_wait, 2s);
  EXPECT_THROW(daemon_config::apply_toml(config, "[db]\nuri = \"x\"\n", "typo.toml"),
               daemon_config::ConfigError);
}

TEST(Config, ClusterSettings) {
  Config config;
  daemon_config::apply_toml(config, "[cluster]\nmember_id = \"dc1-a\"\nlease = \"5s\"\n",
                            "cluster.toml");
  EXPECT_EQ(config.member_id, "dc1-a");
  EXPECT_EQ(config.member_lease, 5s);
  test_support::TempDir dir;
  std::ofstream(dir.file("short.toml")) << "[cluster]\nlease = \"100ms\"\n";
  EXPECT_EQ(std::get<int>(load_args({"--config", dir.file("short.toml")})), 2);
}

}  // namespace
