// From a validated Config to each component's options struct: the only place
// that knows both shapes.
#include <filesystem>

#include "config.h"
#include "store/cache/redis_client.h"

namespace daemon_config {

store::StoreOptions store_options(const Config& config) {
  store::StoreOptions options;
  options.path = config.db_path;
  options.synchronous_full = config.db_synchronous_full;
  options.busy_timeout = config.busy_timeout();
  return options;
}

store::PostgresOptions postgres_options(const Config& config) {
  store::PostgresOptions options;
  options.url = config.db_url;
  // A write must fail with 503 before the client's request times out.
  options.statement_timeout = config.busy_timeout();
  return options;
}

bool redis_configured(const Config& config) {
  return config.redis != "none" && !config.redis.empty();
}

store::CacheOptions cache_options(const Config& config) {
  store::CacheOptions options;
  if (redis_configured(config)) {
    options.redis = store::redis::parse_address(config.redis);  // validated by config
    options.redis->command_timeout = config.redis_timeout;
  }
  options.prefix = config.redis_prefix;
  options.ttl = config.cache_ttl;
  options.near_cache = config.near_cache;
  options.max_lookups_in_flight = config.max_lookups_in_flight;
  return options;
}

std::string zone_file_path(const Config& config) {
  return (std::filesystem::path(config.zones_dir) / (config.domain + "zone")).string();
}

store::LbStrategy default_lb(const Config& config) {
  return store::parse_lb_strategy(config.dns_default_lb).value_or(store::LbStrategy::round_robin);
}

dns::Options dns_options(const Config& config, const std::string& zone_file) {
  dns::Options options;
  options.domain = config.domain;
  options.zone_file = zone_file;
  options.listen_address = config.dns_listen.host;
  options.listen_port = config.dns_listen.port;
  options.answer_ttl = config.dns_answer_ttl;
  options.negative_ttl = config.dns_negative_ttl;
  options.max_udp_payload = config.dns_max_udp_payload;
  options.version_bind = config.dns_version_bind;
  options.id_server = config.dns_id_server;
  options.tcp_idle_timeout = config.dns_tcp_idle_timeout;
  options.max_tcp_connections = config.dns_max_tcp_connections;
  options.default_lb = default_lb(config);
  options.max_answer_records = config.dns_max_answer_records;
  options.max_tcp_connections_per_client = config.dns_max_tcp_connections_per_client;
  options.rate_limit.responses_per_second = config.dns_rrl_responses_per_second;
  options.rate_limit.burst = config.dns_rrl_burst;
  options.rate_limit.slip = config.dns_rrl_slip;
  options.rate_limit.ipv4_prefix = config.dns_rrl_ipv4_prefix;
  options.rate_limit.ipv6_prefix = config.dns_rrl_ipv6_prefix;
  options.rate_limit.exempt = config.dns_rrl_exempt;
  options.zone_transfers = config.zone_transfers();
  return options;
}

xfr::ZoneTransferOptions zone_transfer_options(const Config& config) {
  xfr::ZoneTransferOptions options;
  options.settings.apex = *dns::Name::from_text(config.domain);
  options.settings.ttl = config.dns_answer_ttl;
  options.allow = config.xfr_allow;
  if (!config.tsig_key_file.empty()) {
    try {
      options.key = xfr::read_tsig_key_file(config.tsig_key_file);
    } catch (const xfr::TsigError& error) {
      throw ConfigError(std::string("xfr.tsig_key_file: ") + error.what());
    }
  }
  for (const ListenAddress& target : config.xfr_notify) {
    options.notify.targets.emplace_back(boost::asio::ip::make_address(target.host), target.port);
  }
  options.notify.interval = config.xfr_notify_interval;
  return options;
}

registry::HttpServerOptions http_options(const Config& config) {
  registry::HttpServerOptions options;
  options.address = config.http_listen.host;
  options.port = config.http_listen.port;
  options.max_connections = config.http_max_connections;
  options.request_timeout = config.http_request_timeout;
  options.max_header_bytes = config.http_max_header_bytes;
  options.max_body_bytes = config.http_max_body_bytes;
  options.tls_certificate_file = config.tls_cert;
  options.tls_private_key_file = config.tls_key;
  return options;
}

store::CheckDefaults check_defaults(const Config& config) {
  return {config.check_interval, config.check_timeout, config.check_failures};
}

health::Options health_options(const Config& config) {
  health::Options options;
  options.default_interval = config.check_interval;
  options.default_timeout = config.check_timeout;
  options.default_failures = config.check_failures;
  options.max_concurrent_probes = config.max_concurrent_probes;
  options.protection_threshold = config.protection_threshold;
  options.resync_period = config.resync_interval;
  return options;
}

}  // namespace daemon_config
