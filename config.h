// The daemon's configuration: built-in defaults, overridden by a TOML file
// (--config), overridden by command-line flags. Each component keeps its own
// options struct, and its defaults are the only ones: every field below starts
// from a default-constructed component struct (namespace component_defaults),
// and config_options.cpp maps the result back onto those structs.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <variant>
#include <vector>

#include "dns/options.h"
#include "health/checker.h"
#include "registry/http_server.h"
#include "store/cache/service_cache.h"
#include "store/ip_prefix.h"
#include "store/model.h"
#include "store/postgres/postgres_store.h"
#include "store/sqlite/sqlite_store.h"
#include "xfr/zone_transfers.h"

namespace daemon_config {

struct ListenAddress {
  std::string host;  // an IP literal
  std::uint16_t port = 0;
  std::string to_string() const;
};

// "127.0.0.1:8600", "[::1]:8600". Throws ConfigError.
ListenAddress parse_listen_address(const std::string& text, const std::string& setting);

class ConfigError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

namespace component_defaults {
inline const store::StoreOptions store;
inline const registry::HttpServerOptions http;
inline const dns::Options dns;
inline const store::CacheOptions cache;
inline const store::redis::Options redis;
inline const health::Options health;
inline const store::CheckDefaults check;
}  // namespace component_defaults

struct Config {
  // [db]: which database. Empty: SQLite at db_path. A postgresql:// (or
  // postgres://) URL selects PostgreSQL, several daemons sharing it; the
  // password may be in it, in PGPASSWORD or in ~/.pgpass, and is never logged.
  std::string db_url;
  // How long start-up keeps retrying a database that does not answer.
  std::chrono::milliseconds db_connect_wait{30'000};
  bool postgres() const { return !db_url.empty(); }
  // [store]
  std::string db_path = "data/discoveryd.db";
  bool db_synchronous_full = component_defaults::store.synchronous_full;
  // How long a write waits for another process's lock before answering 503;
  // unset: 2 s, or half the HTTP request timeout when that is shorter, so the
  // client receives the 503 rather than its own timeout. See busy_timeout().
  std::optional<std::chrono::milliseconds> db_busy_timeout;
  std::chrono::milliseconds busy_timeout() const {
    return db_busy_timeout.value_or(std::min<std::chrono::milliseconds>(
        component_defaults::store.busy_timeout, http_request_timeout / 2));
  }
  // [http]
  ListenAddress http_listen{component_defaults::http.address, component_defaults::http.port};
  std::size_t http_max_connections = component_defaults::http.max_connections;
  std::chrono::milliseconds http_request_timeout = component_defaults::http.request_timeout;
  std::size_t http_max_header_bytes = component_defaults::http.max_header_bytes;
  std::size_t http_max_body_bytes = component_defaults::http.max_body_bytes;
  // Access control (docs/security.md): bearer tokens scoped to service patterns.
  // No token file: writes are open (a warning is logged unless HTTP listens on
  // loopback only).
  std::string token_file;
  std::string read_access = "open";  // "open" or "token"
  // TLS for the HTTP API: both or neither.
  std::string tls_cert;
  std::string tls_key;
  // Registrations with an address in one of these ranges are refused; unset: the
  // built-in list (registry::AddressPolicy::default_deny_ranges).
  std::optional<std::vector<store::IpPrefix>> deny_ranges;
  // [dns]
  ListenAddress dns_listen{component_defaults::dns.listen_address,
                           component_defaults::dns.listen_port};
  std::string zones_dir = "zones";  // the zone file is <zones_dir>/<domain>zone
  std::string domain = component_defaults::dns.domain;
  std::uint32_t dns_answer_ttl = component_defaults::dns.answer_ttl;
  std::optional<std::uint32_t> dns_negative_ttl = component_defaults::dns.negative_ttl;
  std::uint16_t dns_max_udp_payload = component_defaults::dns.max_udp_payload;
  std::size_t dns_max_tcp_connections = component_defaults::dns.max_tcp_connections;
  std::chrono::milliseconds dns_tcp_idle_timeout = component_defaults::dns.tcp_idle_timeout;
  std::string dns_version_bind;  // CHAOS version.bind answer; empty: REFUSED
  std::string dns_id_server;     // CHAOS id.server answer; empty: REFUSED
  // Load balancing: strategy of services that registered none, and the cap on
  // A/AAAA records per answer (0: none).
  std::string dns_default_lb{store::to_string(component_defaults::dns.default_lb)};
  std::size_t dns_max_answer_records = component_defaults::dns.max_answer_records;
  // Response rate limiting per client prefix over UDP (docs/security.md).
  // Loopback is exempt by default so local tools and benchmarks are not limited.
  std::uint32_t dns_rrl_responses_per_second =
      component_defaults::dns.rate_limit.responses_per_second;             // 0: off
  std::uint32_t dns_rrl_burst = component_defaults::dns.rate_limit.burst;  // 0: a second's worth
  std::uint32_t dns_rrl_slip = component_defaults::dns.rate_limit.slip;
  std::uint8_t dns_rrl_ipv4_prefix = component_defaults::dns.rate_limit.ipv4_prefix;
  std::uint8_t dns_rrl_ipv6_prefix = component_defaults::dns.rate_limit.ipv6_prefix;
  std::vector<store::IpPrefix> dns_rrl_exempt = component_defaults::dns.rate_limit.exempt;
  std::size_t dns_max_tcp_connections_per_client =
      component_defaults::dns.max_tcp_connections_per_client;
  // [cache]
  // "none" or "": no Redis.
  std::string redis =
      component_defaults::redis.host + ":" + std::to_string(component_defaults::redis.port);
  std::string redis_prefix = component_defaults::cache.prefix;
  std::chrono::milliseconds cache_ttl = component_defaults::cache.ttl;
  std::chrono::milliseconds redis_timeout = component_defaults::redis.command_timeout;
  bool near_cache = component_defaults::cache.near_cache;
  // Lookups waiting on Redis or the database at once; beyond it DNS answers
  // SERVFAIL (counted as cache.lookups_shed in /v1/status).
  std::size_t max_lookups_in_flight = component_defaults::cache.max_lookups_in_flight;
  // [health]
  std::chrono::milliseconds check_interval = component_defaults::check.interval;
  std::chrono::milliseconds check_timeout = component_defaults::check.timeout;
  std::uint32_t check_failures = component_defaults::check.failures;
  std::size_t max_concurrent_probes = component_defaults::health.max_concurrent_probes;
  std::optional<double> protection_threshold =
      component_defaults::health.protection_threshold;  // off unless set
  // How often the checker re-reads every instance (another daemon may share the
  // database).
  std::chrono::milliseconds resync_interval = component_defaults::health.resync_period;
  // [cluster]: membership among daemons sharing the database
  // (store/cluster/membership.h). Empty id: host name, pid and a random suffix.
  std::string member_id;
  std::chrono::milliseconds member_lease{2000};
  // [xfr]: zone transfers to secondaries (xfr/). Empty allow: nobody may
  // transfer; transfers (and the registry-derived SOA serial) are on when
  // anyone may, or someone is to be notified.
  std::vector<store::IpPrefix> xfr_allow;
  std::vector<ListenAddress> xfr_notify;
  std::chrono::milliseconds xfr_notify_interval{1000};
  std::string tsig_key_file;  // empty: no TSIG
  bool zone_transfers() const { return !xfr_allow.empty() || !xfr_notify.empty(); }
  // [log]
  std::string log_level = "info";
  // Not in the file: where to write the bound endpoints once serving (for
  // scripts and tests that start the daemon on port 0).
  std::string ready_file;
};

// Parses argv (and the TOML file it names). Returns the exit code instead of a
// Config when the process should exit at once (--help, --version, bad usage),
// having printed what to print.
std::variant<Config, int> load(int argc, char** argv);

// Loads a TOML document into `config` (exposed for tests). Throws ConfigError
// naming the file, the key and what is wrong. In config_toml.cpp.
void apply_toml(Config& config, const std::string& toml_text, const std::string& source_name);

// The components' options from a validated configuration (config_options.cpp).
store::StoreOptions store_options(const Config& config);
store::PostgresOptions postgres_options(const Config& config);
// `--db` and `db.url`: "postgresql://..." or "postgres://..." selects
// PostgreSQL; "sqlite:PATH" or a plain path selects SQLite at PATH.
void apply_database_setting(Config& config, const std::string& value);
// Opens the configured database, retrying with backoff for db_connect_wait
// while it does not answer; throws StoreError (naming it without password)
// after that.
std::unique_ptr<store::RegistryStore> open_registry_store(const Config& config);
store::CacheOptions cache_options(const Config& config);
// `zone_file`: zone_file_path(config), once it is known to load.
dns::Options dns_options(const Config& config, const std::string& zone_file);
std::string zone_file_path(const Config& config);
// Throws ConfigError when the TSIG key file cannot be read.
xfr::ZoneTransferOptions zone_transfer_options(const Config& config);
registry::HttpServerOptions http_options(const Config& config);
health::Options health_options(const Config& config);
store::CheckDefaults check_defaults(const Config& config);
store::LbStrategy default_lb(const Config& config);
bool redis_configured(const Config& config);

}  // namespace daemon_config
