#include "config.h"

#include <toml++/toml.h>
#include <CLI/CLI.hpp>
#include <charconv>
#include <fstream>
#include <iostream>
#include <sstream>

#include "store/cache/redis_client.h"
#include "store/duration.h"
#include "store/model.h"

namespace daemon_config {
namespace {

std::chrono::milliseconds parse_duration_setting(const std::string& text,
                                                 const std::string& setting) {
  auto duration = store::parse_duration(text);
  if (!duration || duration->count() <= 0) {
    throw ConfigError(setting + ": \"" + text + "\" is not a duration such as 250ms, 30s, 2m, 1h");
  }
  return *duration;
}

template <typename Integer>
Integer integer_setting(std::int64_t value, std::int64_t min, std::int64_t max,
                        const std::string& setting) {
  if (value < min || value > max) {
    throw ConfigError(setting + ": " + std::to_string(value) + " is not between " +
                      std::to_string(min) + " and " + std::to_string(max));
  }
  return static_cast<Integer>(value);
}

// Reads one TOML table strictly: unknown keys are errors, as a typo in a
// production config must not silently fall back to a default.
class TableReader {
 public:
  TableReader(const toml::table& root, std::string name) : name_(std::move(name)) {
    if (const auto* node = root.get(name_)) {
      table_ = node->as_table();
      if (!table_) throw ConfigError("[" + name_ + "] must be a table");
    }
  }
  void known(std::initializer_list<std::string_view> keys) const {
    if (!table_) return;
    for (const auto& [key, value] : *table_) {
      if (std::find(keys.begin(), keys.end(), key.str()) == keys.end()) {
        throw ConfigError("unknown setting " + name_ + "." + std::string(key.str()));
      }
    }
  }
  std::optional<std::string> string(std::string_view key) const {
    const auto* node = find(key);
    if (!node) return std::nullopt;
    if (!node->is_string()) throw ConfigError(setting(key) + " must be a string");
    return node->as_string()->get();
  }
  std::optional<std::int64_t> integer(std::string_view key) const {
    const auto* node = find(key);
    if (!node) return std::nullopt;
    if (!node->is_integer()) throw ConfigError(setting(key) + " must be an integer");
    return node->as_integer()->get();
  }
  std::optional<double> number(std::string_view key) const {
    const auto* node = find(key);
    if (!node) return std::nullopt;
    if (node->is_integer()) return static_cast<double>(node->as_integer()->get());
    if (!node->is_floating_point()) throw ConfigError(setting(key) + " must be a number");
    return node->as_floating_point()->get();
  }
  std::optional<bool> boolean(std::string_view key) const {
    const auto* node = find(key);
    if (!node) return std::nullopt;
    if (!node->is_boolean()) throw ConfigError(setting(key) + " must be true or false");
    return node->as_boolean()->get();
  }
  std::optional<std::vector<std::string>> string_array(std::string_view key) const {
    const auto* node = find(key);
    if (!node) return std::nullopt;
    const auto* array = node->as_array();
    if (!array) throw ConfigError(setting(key) + " must be an array of strings");
    std::vector<std::string> values;
    for (const auto& element : *array) {
      if (!element.is_string()) throw ConfigError(setting(key) + " must be an array of strings");
      values.push_back(element.as_string()->get());
    }
    return values;
  }
  std::string setting(std::string_view key) const { return name_ + "." + std::string(key); }

 private:
  const toml::node* find(std::string_view key) const { return table_ ? table_->get(key) : nullptr; }
  std::string name_;
  const toml::table* table_ = nullptr;
};

std::vector<store::IpPrefix> prefix_list(const std::vector<std::string>& texts,
                                         const std::string& setting) {
  std::vector<store::IpPrefix> prefixes;
  for (const auto& text : texts) {
    auto prefix = store::IpPrefix::parse(text);
    if (!prefix) {
      throw ConfigError(setting + ": \"" + text +
                        "\" is not an address range such as 10.0.0.0/8 or fe80::/10 (host bits "
                        "must be zero)");
    }
    prefixes.push_back(*prefix);
  }
  return prefixes;
}

void check_log_level(const std::string& level) {
  static constexpr std::string_view kLevels[] = {"trace", "debug",    "info", "warn",
                                                 "error", "critical", "off"};
  if (std::find(std::begin(kLevels), std::end(kLevels), level) == std::end(kLevels)) {
    throw ConfigError("log level \"" + level +
                      "\" is not one of trace, debug, info, warn, error, critical, off");
  }
}

void validate(const Config& config) {
  if (config.check_timeout >= config.check_interval) {
    throw ConfigError("health.timeout must be shorter than health.interval");
  }
  if (config.domain.empty() || config.domain.back() != '.') {
    throw ConfigError("dns.domain must be an absolute name ending in '.', such as \"discovery.\"");
  }
  if (config.db_path.empty()) throw ConfigError("store.path must not be empty");
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

void apply_toml(Config& config, const std::string& toml_text, const std::string& source_name) {
  toml::table root;
  try {
    root = toml::parse(toml_text, source_name);
  } catch (const toml::parse_error& error) {
    std::ostringstream message;
    message << source_name << ":" << error.source().begin.line << ": " << error.description();
    throw ConfigError(message.str());
  }
  for (const auto& [key, value] : root) {
    static constexpr std::string_view kTables[] = {"store", "http",   "dns",
                                                   "cache", "health", "log"};
    if (std::find(std::begin(kTables), std::end(kTables), key.str()) == std::end(kTables)) {
      throw ConfigError(source_name + ": unknown section [" + std::string(key.str()) + "]");
    }
  }
  try {
    TableReader store(root, "store");
    store.known({"path", "synchronous", "busy_timeout"});
    if (auto timeout = store.string("busy_timeout")) {
      config.db_busy_timeout = parse_duration_setting(*timeout, "store.busy_timeout");
    }
    if (auto path = store.string("path")) config.db_path = *path;
    if (auto sync = store.string("synchronous")) {
      if (*sync != "full" && *sync != "normal") {
        throw ConfigError("store.synchronous must be \"full\" or \"normal\"");
      }
      config.db_synchronous_full = *sync == "full";
    }

    TableReader http(root, "http");
    http.known({"listen", "max_connections", "request_timeout", "max_header_bytes",
                "max_body_bytes", "token_file", "read_access", "tls_cert", "tls_key",
                "deny_ranges"});
    if (auto max = http.integer("max_header_bytes")) {
      config.http_max_header_bytes =
          integer_setting<std::size_t>(*max, 1024, 1024 * 1024, "http.max_header_bytes");
    }
    if (auto max = http.integer("max_body_bytes")) {
      config.http_max_body_bytes =
          integer_setting<std::size_t>(*max, 1024, 16 * 1024 * 1024, "http.max_body_bytes");
    }
    if (auto file = http.string("token_file")) config.token_file = *file;
    if (auto access = http.string("read_access")) config.read_access = *access;
    if (auto cert = http.string("tls_cert")) config.tls_cert = *cert;
    if (auto key = http.string("tls_key")) config.tls_key = *key;
    if (auto ranges = http.string_array("deny_ranges")) {
      config.deny_ranges = prefix_list(*ranges, "http.deny_ranges");
    }
    if (auto listen = http.string("listen")) {
      config.http_listen = parse_listen_address(*listen, "http.listen");
    }
    if (auto max = http.integer("max_connections")) {
      config.http_max_connections =
          integer_setting<std::size_t>(*max, 1, 1'000'000, "http.max_connections");
    }
    if (auto timeout = http.string("request_timeout")) {
      config.http_request_timeout = parse_duration_setting(*timeout, "http.request_timeout");
    }

    TableReader dns(root, "dns");
    dns.known({"listen", "zones", "domain", "answer_ttl", "negative_ttl", "max_udp_payload",
               "max_tcp_connections", "tcp_idle_timeout", "version_bind", "id_server", "default_lb",
               "max_answer_records", "rrl_responses_per_second", "rrl_burst", "rrl_slip",
               "rrl_ipv4_prefix", "rrl_ipv6_prefix", "rrl_exempt",
               "max_tcp_connections_per_client"});
    if (auto rate = dns.integer("rrl_responses_per_second")) {
      config.dns_rrl_responses_per_second =
          integer_setting<std::uint32_t>(*rate, 0, 10'000'000, "dns.rrl_responses_per_second");
    }
    if (auto burst = dns.integer("rrl_burst")) {
      config.dns_rrl_burst = integer_setting<std::uint32_t>(*burst, 0, 10'000'000, "dns.rrl_burst");
    }
    if (auto slip = dns.integer("rrl_slip")) {
      config.dns_rrl_slip = integer_setting<std::uint32_t>(*slip, 0, 100, "dns.rrl_slip");
    }
    if (auto length = dns.integer("rrl_ipv4_prefix")) {
      config.dns_rrl_ipv4_prefix =
          integer_setting<std::uint8_t>(*length, 8, 32, "dns.rrl_ipv4_prefix");
    }
    if (auto length = dns.integer("rrl_ipv6_prefix")) {
      config.dns_rrl_ipv6_prefix =
          integer_setting<std::uint8_t>(*length, 16, 128, "dns.rrl_ipv6_prefix");
    }
    if (auto exempt = dns.string_array("rrl_exempt")) {
      config.dns_rrl_exempt = prefix_list(*exempt, "dns.rrl_exempt");
    }
    if (auto max = dns.integer("max_tcp_connections_per_client")) {
      config.dns_max_tcp_connections_per_client =
          integer_setting<std::size_t>(*max, 0, 1'000'000, "dns.max_tcp_connections_per_client");
    }
    if (auto lb = dns.string("default_lb")) {
      if (!store::parse_lb_strategy(*lb)) {
        throw ConfigError("dns.default_lb: \"" + *lb +
                          "\" is not one of round_robin, weighted, least_loaded, random");
      }
      config.dns_default_lb = *lb;
    }
    if (auto max = dns.integer("max_answer_records")) {
      config.dns_max_answer_records =
          integer_setting<std::size_t>(*max, 0, 65535, "dns.max_answer_records");
    }
    if (auto listen = dns.string("listen")) {
      config.dns_listen = parse_listen_address(*listen, "dns.listen");
    }
    if (auto zones = dns.string("zones")) config.zones_dir = *zones;
    if (auto domain = dns.string("domain")) config.domain = *domain;
    if (auto ttl = dns.integer("answer_ttl")) {
      config.dns_answer_ttl = integer_setting<std::uint32_t>(*ttl, 0, 86400, "dns.answer_ttl");
    }
    if (auto ttl = dns.integer("negative_ttl")) {
      config.dns_negative_ttl = integer_setting<std::uint32_t>(*ttl, 0, 86400, "dns.negative_ttl");
    }
    if (auto size = dns.integer("max_udp_payload")) {
      config.dns_max_udp_payload =
          integer_setting<std::uint16_t>(*size, 512, 65535, "dns.max_udp_payload");
    }
    if (auto max = dns.integer("max_tcp_connections")) {
      config.dns_max_tcp_connections =
          integer_setting<std::size_t>(*max, 1, 1'000'000, "dns.max_tcp_connections");
    }
    if (auto timeout = dns.string("tcp_idle_timeout")) {
      config.dns_tcp_idle_timeout = parse_duration_setting(*timeout, "dns.tcp_idle_timeout");
    }
    if (auto version = dns.string("version_bind")) config.dns_version_bind = *version;
    if (auto id = dns.string("id_server")) config.dns_id_server = *id;

    TableReader cache(root, "cache");
    cache.known({"redis", "prefix", "ttl", "redis_timeout", "near_cache", "max_lookups_in_flight"});
    if (auto redis = cache.string("redis")) config.redis = *redis;
    if (auto prefix = cache.string("prefix")) config.redis_prefix = *prefix;
    if (auto ttl = cache.string("ttl"))
      config.cache_ttl = parse_duration_setting(*ttl, "cache.ttl");
    if (auto timeout = cache.string("redis_timeout")) {
      config.redis_timeout = parse_duration_setting(*timeout, "cache.redis_timeout");
    }
    if (auto near = cache.boolean("near_cache")) config.near_cache = *near;
    if (auto max = cache.integer("max_lookups_in_flight")) {
      config.max_lookups_in_flight =
          integer_setting<std::size_t>(*max, 1, 10'000'000, "cache.max_lookups_in_flight");
    }

    TableReader health(root, "health");
    health.known({"interval", "timeout", "failures", "max_concurrent_probes",
                  "protection_threshold", "resync_interval"});
    if (auto max = health.integer("max_concurrent_probes")) {
      config.max_concurrent_probes =
          integer_setting<std::size_t>(*max, 1, 1'000'000, "health.max_concurrent_probes");
    }
    if (auto threshold = health.number("protection_threshold")) {
      if (!(*threshold > 0 && *threshold < 1)) {
        throw ConfigError("health.protection_threshold must be between 0 and 1 (exclusive)");
      }
      config.protection_threshold = *threshold;
    }
    if (auto interval = health.string("interval")) {
      config.check_interval = parse_duration_setting(*interval, "health.interval");
    }
    if (auto resync = health.string("resync_interval")) {
      config.resync_interval = parse_duration_setting(*resync, "health.resync_interval");
      // Each resync reads the whole table: more often than every second is load
      // for nothing.
      if (config.resync_interval < std::chrono::seconds(1) ||
          config.resync_interval > std::chrono::hours(24)) {
        throw ConfigError("health.resync_interval must be between 1s and 24h");
      }
    }
    if (auto timeout = health.string("timeout")) {
      config.check_timeout = parse_duration_setting(*timeout, "health.timeout");
    }
    if (auto failures = health.integer("failures")) {
      config.check_failures = integer_setting<std::uint32_t>(*failures, 1, 100, "health.failures");
    }

    TableReader log(root, "log");
    log.known({"level"});
    if (auto level = log.string("level")) config.log_level = *level;
  } catch (const ConfigError& error) {
    throw ConfigError(source_name + ": " + error.what());
  }
}

std::variant<Config, int> load(int argc, char** argv) {
  CLI::App app{"discoveryd: DNS-compatible service discovery server"};
  app.set_version_flag("--version", std::string("discoveryd ") + DISCOVERYD_VERSION);
  std::string config_file;
  std::optional<std::string> db, http_listen, dns_listen, zones, log_level, check_interval,
      check_timeout, ready_file, redis, redis_prefix, cache_ttl, redis_timeout, token_file,
      read_access, tls_cert, tls_key;
  std::optional<std::uint32_t> check_failures;
  app.add_option("--config", config_file, "TOML configuration file")->check(CLI::ExistingFile);
  app.add_option("--db", db, "SQLite database file (created if missing)");
  app.add_option("--http-listen", http_listen, "HTTP API address, ADDR:PORT");
  app.add_option("--dns-listen", dns_listen, "DNS address (UDP and TCP), ADDR:PORT");
  app.add_option("--zones", zones, "directory of RFC 1035 zone files");
  app.add_option("--log-level", log_level, "trace, debug, info, warn, error, critical, off");
  std::optional<std::string> default_lb;
  std::optional<std::size_t> max_answer_records;
  app.add_option("--default-lb", default_lb,
                 "load-balancing strategy of services that set none: round_robin, weighted, "
                 "least_loaded, random");
  app.add_option("--max-answer-records", max_answer_records,
                 "at most this many A/AAAA records per DNS answer (0: no cap)");
  app.add_option("--check-interval", check_interval, "default health check interval, e.g. 30s");
  app.add_option("--check-timeout", check_timeout, "default health check timeout, e.g. 2s");
  app.add_option("--check-failures", check_failures,
                 "consecutive failed checks before an instance is removed");
  app.add_option("--redis", redis,
                 "Redis for the cache: HOST:PORT or redis://HOST:PORT[/DB]; \"none\" disables it");
  app.add_option("--redis-prefix", redis_prefix, "prefix of every Redis key");
  app.add_option("--cache-ttl", cache_ttl, "TTL of cache entries, e.g. 30s");
  app.add_option("--redis-timeout", redis_timeout,
                 "Redis command timeout before falling back to SQLite, e.g. 5ms");
  app.add_option("--token-file", token_file,
                 "bearer tokens for the HTTP API: lines of \"TOKEN PATTERN[,PATTERN...]\"");
  app.add_option("--read-access", read_access,
                 "read routes: \"open\" or \"token\" (any valid token may read)");
  app.add_option("--tls-cert", tls_cert, "PEM certificate chain: serve the HTTP API over TLS");
  app.add_option("--tls-key", tls_key, "PEM private key of --tls-cert");
  app.add_option("--ready-file", ready_file,
                 "write the bound endpoints as JSON to this file once serving");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& error) {
    return app.exit(error);
  }

  Config config;
  try {
    if (!config_file.empty()) {
      std::ifstream file(config_file);
      std::stringstream text;
      text << file.rdbuf();
      if (!file) throw ConfigError(config_file + ": cannot read");
      apply_toml(config, text.str(), config_file);
    }
    if (db) config.db_path = *db;
    if (http_listen) config.http_listen = parse_listen_address(*http_listen, "--http-listen");
    if (dns_listen) config.dns_listen = parse_listen_address(*dns_listen, "--dns-listen");
    if (zones) config.zones_dir = *zones;
    if (log_level) config.log_level = *log_level;
    if (default_lb) config.dns_default_lb = *default_lb;
    if (max_answer_records) config.dns_max_answer_records = *max_answer_records;
    if (check_interval) {
      config.check_interval = parse_duration_setting(*check_interval, "--check-interval");
    }
    if (check_timeout) {
      config.check_timeout = parse_duration_setting(*check_timeout, "--check-timeout");
    }
    if (check_failures) {
      config.check_failures =
          integer_setting<std::uint32_t>(*check_failures, 1, 100, "--check-failures");
    }
    if (ready_file) config.ready_file = *ready_file;
    if (token_file) config.token_file = *token_file;
    if (read_access) config.read_access = *read_access;
    if (tls_cert) config.tls_cert = *tls_cert;
    if (tls_key) config.tls_key = *tls_key;
    if (redis) config.redis = *redis;
    if (redis_prefix) config.redis_prefix = *redis_prefix;
    if (cache_ttl) config.cache_ttl = parse_duration_setting(*cache_ttl, "--cache-ttl");
    if (redis_timeout) {
      config.redis_timeout = parse_duration_setting(*redis_timeout, "--redis-timeout");
    }
    validate(config);
  } catch (const ConfigError& error) {
    std::cerr << "discoveryd: configuration error: " << error.what() << "\n";
    return 2;
  }
  return config;
}

}  // namespace daemon_config
