// The daemon's configuration: built-in defaults, overridden by a TOML file
// (--config), overridden by command-line flags. Each component keeps its own
// options struct; this file only gathers and validates them.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <variant>
#include <vector>

#include "store/ip_prefix.h"

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

struct Config {
  // [store]
  std::string db_path = "data/discoveryd.db";
  bool db_synchronous_full = true;
  // How long a write waits for another process's lock before answering 503;
  // unset: 2 s, or half the HTTP request timeout when that is shorter, so the
  // client receives the 503 rather than its own timeout. See busy_timeout().
  std::optional<std::chrono::milliseconds> db_busy_timeout;
  std::chrono::milliseconds busy_timeout() const {
    return db_busy_timeout.value_or(std::min<std::chrono::milliseconds>(
        std::chrono::milliseconds(2'000), http_request_timeout / 2));
  }
  // [http]
  ListenAddress http_listen{"127.0.0.1", 8500};
  std::size_t http_max_connections = 1024;
  std::chrono::milliseconds http_request_timeout{10'000};
  std::size_t http_max_header_bytes = 8 * 1024;
  std::size_t http_max_body_bytes = 64 * 1024;
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
  ListenAddress dns_listen{"127.0.0.1", 8600};
  std::string zones_dir = "zones";
  std::string domain = "discovery.";
  std::uint32_t dns_answer_ttl = 5;
  std::optional<std::uint32_t> dns_negative_ttl;
  std::uint16_t dns_max_udp_payload = 1232;
  std::size_t dns_max_tcp_connections = 256;
  std::chrono::milliseconds dns_tcp_idle_timeout{10'000};
  std::string dns_version_bind;  // CHAOS version.bind answer; empty: REFUSED
  std::string dns_id_server;     // CHAOS id.server answer; empty: REFUSED
  // Load balancing: strategy of services that registered none, and the cap on
  // A/AAAA records per answer (0: none).
  std::string dns_default_lb = "round_robin";
  std::size_t dns_max_answer_records = 0;
  // Response rate limiting per client prefix over UDP (docs/security.md).
  // Loopback is exempt by default so local tools and benchmarks are not limited.
  std::uint32_t dns_rrl_responses_per_second = 1000;  // 0: off
  std::uint32_t dns_rrl_burst = 0;                    // 0: one second's worth
  std::uint32_t dns_rrl_slip = 2;
  std::uint8_t dns_rrl_ipv4_prefix = 32;
  std::uint8_t dns_rrl_ipv6_prefix = 56;
  std::vector<store::IpPrefix> dns_rrl_exempt = store::loopback_prefixes();
  std::size_t dns_max_tcp_connections_per_client = 16;
  // [cache]
  std::string redis = "127.0.0.1:6379";  // "none" or "": no Redis
  std::string redis_prefix = "discoveryd:";
  std::chrono::milliseconds cache_ttl{30'000};
  std::chrono::milliseconds redis_timeout{5};
  bool near_cache = true;
  // Lookups waiting on Redis or the database at once; beyond it DNS answers
  // SERVFAIL (counted as cache.lookups_shed in /v1/status).
  std::size_t max_lookups_in_flight = 4096;
  // [health]
  std::chrono::milliseconds check_interval{30'000};
  std::chrono::milliseconds check_timeout{2'000};
  std::uint32_t check_failures = 3;
  std::size_t max_concurrent_probes = 1024;
  std::optional<double> protection_threshold;  // off unless set
  // How often the checker re-reads every instance (another daemon may share the
  // database).
  std::chrono::milliseconds resync_interval{60'000};
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
// naming the file, the key and what is wrong.
void apply_toml(Config& config, const std::string& toml_text, const std::string& source_name);

}  // namespace daemon_config
