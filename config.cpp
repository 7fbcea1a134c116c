#include "config.h"

#include <CLI/CLI.hpp>
#include <charconv>
#include <fstream>
#include <iostream>
#include <sstream>

#include "config_settings.h"
#include "store/cache/redis_client.h"
#include "store/duration.h"
#include "store/model.h"

namespace daemon_config {
namespace {

void check_log_level(const std::string& level) {
  static constexpr std::string_view kLevels[] = {"trace", "debug",    "info", "warn",
                                                 "error", "critical", "off"};
  if (std::find(std::begin(kLevels), std::end(kLevels), level) == std::end(kLevels)) {
    throw ConfigError("log level \"" + level +
                      "\" is not one of trace, debug, info, warn, error, critical, off");
  }
}

void validate(const Config& config) {
  // Renewals every 250 ms: a lease must leave room for several of them.
  if (config.member_lease < std::chrono::milliseconds(1000)) {
    throw ConfigError("cluster.lease must be at least 1s");
  }
  if (config.check_timeout >= config.check_interval) {
    throw ConfigError("health.timeout must be shorter than health.interval");
  }
  if (config.domain.empty() || config.domain.back() != '.') {
    throw ConfigError("dns.domain must be an absolute name ending in '.', such as \"discovery.\"");
  }
  if (!config.postgres() && config.db_path.empty()) {
    throw ConfigError("store.path must not be empty");
  }
  if (config.db_busy_timeout && *config.db_busy_timeout >= config.http_request_timeout) {
    // A client must get the 503, not its own timeout.
    throw ConfigError("store.busy_timeout must be shorter than http.request_timeout");
  }
  if (config.redis != "none" && !config.redis.empty() &&
      !store::redis::parse_address(config.redis)) {
    throw ConfigError("cache.redis: \"" + config.redis +
                      "\" is not HOST:PORT, redis://HOST:PORT[/DB] or \"none\"");
  }
  if (config.redis_prefix.empty()) throw ConfigError("cache.prefix must not be empty");
  check_log_level(config.log_level);
  if (config.read_access != "open" && config.read_access != "token") {
    throw ConfigError("http.read_access must be \"open\" or \"token\"");
  }
  if (config.read_access == "token" && config.token_file.empty()) {
    throw ConfigError("http.read_access = \"token\" needs http.token_file (--token-file)");
  }
  if (config.tls_cert.empty() != config.tls_key.empty()) {
    throw ConfigError("http.tls_cert and http.tls_key must be set together");
  }
  if (!store::parse_lb_strategy(config.dns_default_lb)) {
    throw ConfigError("dns.default_lb: \"" + config.dns_default_lb +
                      "\" is not one of round_robin, weighted, least_loaded, random");
  }
}

}  // namespace

std::string ListenAddress::to_string() const {
  return (host.find(':') != std::string::npos ? "[" + host + "]" : host) + ":" +
         std::to_string(port);
}

ListenAddress parse_listen_address(const std::string& text, const std::string& setting) {
  const auto colon = text.rfind(':');
  if (colon == std::string::npos || colon + 1 == text.size()) {
    throw ConfigError(setting + ": \"" + text + "\" is not ADDRESS:PORT");
  }
  std::string host = text.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  if (!store::IpAddress::parse(host)) {
    throw ConfigError(setting + ": \"" + host + "\" is not an IP address");
  }
  const std::string port_text = text.substr(colon + 1);
  unsigned port = 0;
  auto [end, ec] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
  if (ec != std::errc{} || end != port_text.data() + port_text.size() || port > 65535) {
    throw ConfigError(setting + ": \"" + port_text + "\" is not a port (0 to 65535)");
  }
  return {host, static_cast<std::uint16_t>(port)};
}

namespace {

// The command-line flags; each overrides its setting in the file when given.
struct Flags {
  std::string config_file;
  std::optional<std::string> db, db_connect_wait, http_listen, dns_listen, zones, log_level,
      check_interval, check_timeout, ready_file, redis, redis_prefix, cache_ttl, redis_timeout,
      token_file, read_access, tls_cert, tls_key, default_lb, xfr_allow, notify, notify_interval,
      tsig_key_file;
  std::optional<std::uint32_t> check_failures;
  std::optional<std::size_t> max_answer_records;
};

void add_flags(CLI::App& app, Flags& flags) {
  app.add_option("--config", flags.config_file, "TOML configuration file")
      ->check(CLI::ExistingFile);
  app.add_option("--db", flags.db,
                 "the database: a SQLite file (created if missing; or sqlite:PATH) or a "
                 "postgresql://user@host:port/dbname URL shared by several daemons");
  app.add_option("--db-connect-wait", flags.db_connect_wait,
                 "how long start-up retries a database that does not answer, e.g. 30s");
  app.add_option("--http-listen", flags.http_listen, "HTTP API address, ADDR:PORT");
  app.add_option("--dns-listen", flags.dns_listen, "DNS address (UDP and TCP), ADDR:PORT");
  app.add_option("--zones", flags.zones, "directory of RFC 1035 zone files");
  app.add_option("--log-level", flags.log_level, "trace, debug, info, warn, error, critical, off");
  app.add_option("--default-lb", flags.default_lb,
                 "load-balancing strategy of services that set none: round_robin, weighted, "
                 "least_loaded, random");
  app.add_option("--max-answer-records", flags.max_answer_records,
                 "at most this many A/AAAA records per DNS answer (0: no cap)");
  app.add_option("--check-interval", flags.check_interval,
                 "default health check interval, e.g. 30s");
  app.add_option("--check-timeout", flags.check_timeout, "default health check timeout, e.g. 2s");
  app.add_option("--check-failures", flags.check_failures,
                 "consecutive failed checks before an instance is removed");
  app.add_option("--redis", flags.redis,
                 "Redis for the cache: HOST:PORT or redis://HOST:PORT[/DB]; \"none\" disables it");
  app.add_option("--redis-prefix", flags.redis_prefix, "prefix of every Redis key");
  app.add_option("--cache-ttl", flags.cache_ttl, "TTL of cache entries, e.g. 30s");
  app.add_option("--redis-timeout", flags.redis_timeout,
                 "Redis command timeout before falling back to SQLite, e.g. 5ms");
  app.add_option("--token-file", flags.token_file,
                 "bearer tokens for the HTTP API: lines of \"TOKEN PATTERN[,PATTERN...]\"");
  app.add_option("--read-access", flags.read_access,
                 "read routes: \"open\" or \"token\" (any valid token may read)");
  app.add_option("--tls-cert", flags.tls_cert,
                 "PEM certificate chain: serve the HTTP API over TLS");
  app.add_option("--tls-key", flags.tls_key, "PEM private key of --tls-cert");
  app.add_option("--xfr-allow", flags.xfr_allow,
                 "who may transfer the zone (AXFR/IXFR): PREFIX[,PREFIX...]; default nobody");
  app.add_option("--notify", flags.notify,
                 "secondaries to send NOTIFY to after changes: HOST:PORT[,HOST:PORT...]");
  app.add_option("--notify-interval", flags.notify_interval,
                 "at most one NOTIFY round per interval, e.g. 1s");
  app.add_option("--tsig-key-file", flags.tsig_key_file,
                 "transfers must be TSIG-signed with this key: one line ALGORITHM:NAME:SECRET");
  app.add_option("--ready-file", flags.ready_file,
                 "write the bound endpoints as JSON to this file once serving");
}

void apply_transfer_flags(const Flags& flags, Config& config) {
  if (flags.xfr_allow)
    config.xfr_allow = transfer_allow_list(comma_list(*flags.xfr_allow), "--xfr-allow");
  if (flags.notify) {
    config.xfr_notify.clear();
    for (const auto& target : comma_list(*flags.notify)) {
      config.xfr_notify.push_back(parse_listen_address(target, "--notify"));
    }
  }
  if (flags.notify_interval) {
    config.xfr_notify_interval =
        parse_duration_setting(*flags.notify_interval, "--notify-interval");
  }
  if (flags.tsig_key_file) config.tsig_key_file = *flags.tsig_key_file;
}

void apply_flags(const Flags& flags, Config& config) {
  if (flags.db) apply_database_setting(config, *flags.db);
  if (flags.db_connect_wait) {
    config.db_connect_wait = parse_duration_setting(*flags.db_connect_wait, "--db-connect-wait");
  }
  if (flags.http_listen) {
    config.http_listen = parse_listen_address(*flags.http_listen, "--http-listen");
  }
  if (flags.dns_listen) config.dns_listen = parse_listen_address(*flags.dns_listen, "--dns-listen");
  if (flags.zones) config.zones_dir = *flags.zones;
  if (flags.log_level) config.log_level = *flags.log_level;
  if (flags.default_lb) config.dns_default_lb = *flags.default_lb;
  if (flags.max_answer_records) config.dns_max_answer_records = *flags.max_answer_records;
  if (flags.check_interval) {
    config.check_interval = parse_duration_setting(*flags.check_interval, "--check-interval");
  }
  if (flags.check_timeout) {
    config.check_timeout = parse_duration_setting(*flags.check_timeout, "--check-timeout");
  }
  if (flags.check_failures) {
    config.check_failures = integer_setting<std::uint32_t>(
        *flags.check_failures, 1, store::kMaxCheckFailures, "--check-failures");
  }
  apply_transfer_flags(flags, config);
  if (flags.ready_file) config.ready_file = *flags.ready_file;
  if (flags.token_file) config.token_file = *flags.token_file;
  if (flags.read_access) config.read_access = *flags.read_access;
  if (flags.tls_cert) config.tls_cert = *flags.tls_cert;
  if (flags.tls_key) config.tls_key = *flags.tls_key;
  if (flags.redis) config.redis = *flags.redis;
  if (flags.redis_prefix) config.redis_prefix = *flags.redis_prefix;
  if (flags.cache_ttl) config.cache_ttl = parse_duration_setting(*flags.cache_ttl, "--cache-ttl");
  if (flags.redis_timeout) {
    config.redis_timeout = parse_duration_setting(*flags.redis_timeout, "--redis-timeout");
  }
}

}  // namespace

std::variant<Config, int> load(int argc, char** argv) {
  CLI::App app{"discoveryd: DNS-compatible service discovery server"};
  app.set_version_flag("--version", std::string("discoveryd ") + DISCOVERYD_VERSION);
  Flags flags;
  add_flags(app, flags);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& error) {
    return app.exit(error);
  }

  Config config;
  try {
    if (!flags.config_file.empty()) {
      std::ifstream file(flags.config_file);
      std::stringstream text;
      text << file.rdbuf();
      if (!file) throw ConfigError(flags.config_file + ": cannot read");
      apply_toml(config, text.str(), flags.config_file);
    }
    apply_flags(flags, config);
    validate(config);
  } catch (const ConfigError& error) {
    std::cerr << "discoveryd: configuration error: " << error.what() << "\n";
    return 2;
  }
  return config;
}

}  // namespace daemon_config
