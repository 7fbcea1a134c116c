// The TOML file: one reader per table, strict about unknown keys and types.
#include <toml++/toml.h>

#include <algorithm>
#include <sstream>

#include "config.h"
#include "config_settings.h"
#include "store/model.h"

namespace daemon_config {
namespace {

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

void apply_store_table(Config& config, const toml::table& root) {
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
}

void apply_db_table(Config& config, const toml::table& root) {
  TableReader db(root, "db");
  db.known({"url", "connect_wait"});
  if (auto url = db.string("url")) apply_database_setting(config, *url);
  if (auto wait = db.string("connect_wait")) {
    config.db_connect_wait = parse_duration_setting(*wait, "db.connect_wait");
  }
}

void apply_http_table(Config& config, const toml::table& root) {
  TableReader http(root, "http");
  http.known({"listen", "max_connections", "request_timeout", "max_header_bytes", "max_body_bytes",
              "token_file", "read_access", "tls_cert", "tls_key", "deny_ranges"});
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
}

void apply_dns_table(Config& config, const toml::table& root) {
  TableReader dns(root, "dns");
  dns.known({"listen", "zones", "domain", "answer_ttl", "negative_ttl", "max_udp_payload",
             "max_tcp_connections", "tcp_idle_timeout", "version_bind", "id_server", "default_lb",
             "max_answer_records", "rrl_responses_per_second", "rrl_burst", "rrl_slip",
             "rrl_ipv4_prefix", "rrl_ipv6_prefix", "rrl_exempt", "max_tcp_connections_per_client"});
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
}

void apply_cache_table(Config& config, const toml::table& root) {
  TableReader cache(root, "cache");
  cache.known({"redis", "prefix", "ttl", "redis_timeout", "near_cache", "max_lookups_in_flight"});
  if (auto redis = cache.string("redis")) config.redis = *redis;
  if (auto prefix = cache.string("prefix")) config.redis_prefix = *prefix;
  if (auto ttl = cache.string("ttl")) config.cache_ttl = parse_duration_setting(*ttl, "cache.ttl");
  if (auto timeout = cache.string("redis_timeout")) {
    config.redis_timeout = parse_duration_setting(*timeout, "cache.redis_timeout");
  }
  if (auto near = cache.boolean("near_cache")) config.near_cache = *near;
  if (auto max = cache.integer("max_lookups_in_flight")) {
    config.max_lookups_in_flight =
        integer_setting<std::size_t>(*max, 1, 10'000'000, "cache.max_lookups_in_flight");
  }
}

void apply_health_table(Config& config, const toml::table& root) {
  TableReader health(root, "health");
  health.known({"interval", "timeout", "failures", "max_concurrent_probes", "protection_threshold",
                "resync_interval"});
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
    config.check_failures =
        integer_setting<std::uint32_t>(*failures, 1, store::kMaxCheckFailures, "health.failures");
  }
}

void apply_cluster_table(Config& config, const toml::table& root) {
  TableReader cluster(root, "cluster");
  cluster.known({"member_id", "lease"});
  if (auto id = cluster.string("member_id")) config.member_id = *id;
  if (auto lease = cluster.string("lease")) {
    config.member_lease = parse_duration_setting(*lease, "cluster.lease");
  }
}

void apply_xfr_table(Config& config, const toml::table& root) {
  TableReader xfr(root, "xfr");
  xfr.known({"allow", "notify", "notify_interval", "tsig_key_file"});
  if (auto allow = xfr.string_array("allow")) {
    config.xfr_allow = transfer_allow_list(*allow, "xfr.allow");
  }
  if (auto notify = xfr.string_array("notify")) {
    config.xfr_notify.clear();
    for (const auto& target : *notify) {
      config.xfr_notify.push_back(parse_listen_address(target, "xfr.notify"));
    }
  }
  if (auto interval = xfr.string("notify_interval")) {
    config.xfr_notify_interval = parse_duration_setting(*interval, "xfr.notify_interval");
  }
  if (auto file = xfr.string("tsig_key_file")) config.tsig_key_file = *file;
}

void apply_log_table(Config& config, const toml::table& root) {
  TableReader log(root, "log");
  log.known({"level"});
  if (auto level = log.string("level")) config.log_level = *level;
}

}  // namespace

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
    static constexpr std::string_view kTables[] = {"db",     "store",   "http", "dns", "cache",
                                                   "health", "cluster", "xfr",  "log"};
    if (std::find(std::begin(kTables), std::end(kTables), key.str()) == std::end(kTables)) {
      throw ConfigError(source_name + ": unknown section [" + std::string(key.str()) + "]");
    }
  }
  try {
    apply_store_table(config, root);
    apply_db_table(config, root);
    apply_http_table(config, root);
    apply_dns_table(config, root);
    apply_cache_table(config, root);
    apply_health_table(config, root);
    apply_cluster_table(config, root);
    apply_xfr_table(config, root);
    apply_log_table(config, root);
  } catch (const ConfigError& error) {
    throw ConfigError(source_name + ": " + error.what());
  }
}

}  // namespace daemon_config
