// discoveryd: the composition root. It reads the configuration, builds each
// component, wires them together, runs the event loops and stops them cleanly on
// SIGINT/SIGTERM. No behaviour lives here; every piece is in its component.
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include <thread>

#include "config.h"
#include "dns/server.h"
#include "health/checker.h"
#include "registry/address_policy.h"
#include "registry/api.h"
#include "registry/auth.h"
#include "registry/http_server.h"
#include "store/cache/service_cache.h"
#include "store/duration.h"
#include "store/sqlite/sqlite_store.h"
#include "store/writer.h"

namespace {

void setup_logging(const std::string& level) {
  auto sink = std::make_shared<spdlog::sinks::stderr_color_sink_mt>();
  for (const char* name : {"main", "store", "cache", "registry", "auth", "http", "dns", "health"}) {
    auto logger = std::make_shared<spdlog::logger>(name, sink);
    spdlog::register_logger(logger);
  }
  spdlog::set_default_logger(spdlog::get("main"));
  spdlog::set_pattern("%Y-%m-%dT%H:%M:%S.%e%z %^%l%$ [%n] %v");
  spdlog::set_level(spdlog::level::from_str(level));
}

// Written atomically (temp file + rename) so a reader never sees half a file.
void write_ready_file(const std::string& path, const nlohmann::json& endpoints) {
  const std::string temporary = path + ".tmp";
  {
    std::ofstream file(temporary, std::ios::trunc);
    file << endpoints.dump() << "\n";
    if (!file) throw std::runtime_error("cannot write " + temporary);
  }
  std::filesystem::rename(temporary, path);
}

store::CacheOptions cache_options(const daemon_config::Config& config) {
  store::CacheOptions options;
  if (config.redis != "none" && !config.redis.empty()) {
    options.redis = store::redis::parse_address(config.redis);  // validated by config
    options.redis->command_timeout = config.redis_timeout;
  }
  options.prefix = config.redis_prefix;
  options.ttl = config.cache_ttl;
  options.near_cache = config.near_cache;
  options.max_lookups_in_flight = config.max_lookups_in_flight;
  return options;
}

dns::Options dns_options(const daemon_config::Config& config, const std::string& zone_file) {
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
  options.default_lb =
      store::parse_lb_strategy(config.dns_default_lb).value_or(store::LbStrategy::round_robin);
  options.max_answer_records = config.dns_max_answer_records;
  options.max_tcp_connections_per_client = config.dns_max_tcp_connections_per_client;
  options.rate_limit.responses_per_second = config.dns_rrl_responses_per_second;
  options.rate_limit.burst = config.dns_rrl_burst;
  options.rate_limit.slip = config.dns_rrl_slip;
  options.rate_limit.ipv4_prefix = config.dns_rrl_ipv4_prefix;
  options.rate_limit.ipv6_prefix = config.dns_rrl_ipv6_prefix;
  options.rate_limit.exempt = config.dns_rrl_exempt;
  return options;
}

registry::HttpServerOptions http_options(const daemon_config::Config& config) {
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

// Reads the token file into a complete policy; throws registry::AuthConfigError
// naming the file and line, so a broken file never half-replaces a good one.
std::shared_ptr<const registry::AccessControl> load_access_control(
    const daemon_config::Config& config) {
  auto tokens = registry::TokenStore::load(config.token_file);
  const auto read_access =
      registry::parse_read_access(config.read_access).value_or(registry::ReadAccess::open);
  spdlog::get("main")->info("access control: {} tokens ({} admin) from {}; reads {}", tokens.size(),
                            tokens.admin_count(), config.token_file,
                            registry::to_string(read_access));
  return std::make_shared<const registry::AccessControl>(std::move(tokens), read_access);
}

bool is_loopback(const std::string& host) {
  const auto address = store::IpAddress::parse(host);
  return address && store::is_loopback(*address);
}

nlohmann::json dns_status(const dns::Server& server) {
  const auto& s = server.stats();
  return {{"status", "serving"},
          {"udp", server.udp_endpoint().to_string()},
          {"tcp", server.tcp_endpoint().to_string()},
          {"udp_queries", s.udp_queries.load()},
          {"tcp_queries", s.tcp_queries.load()},
          {"noerror", s.noerror.load()},
          {"nxdomain", s.nxdomain.load()},
          {"servfail", s.servfail.load()},
          {"refused", s.refused.load()},
          {"formerr", s.formerr.load()},
          {"notimp", s.notimp.load()},
          {"truncated", s.truncated.load()},
          {"dropped", s.dropped.load()},
          {"lookups", s.lookups.load()},
          {"lookup_failures", s.lookup_failures.load()},
          {"tcp_connections_open", s.tcp_connections_open.load()},
          {"tcp_connections_rejected", s.tcp_connections_rejected.load()},
          {"tcp_refused_per_client", s.tcp_refused_per_client.load()},
          {"rate_limited_dropped", s.rate_limited_dropped.load()},
          {"rate_limited_slipped", s.rate_limited_slipped.load()}};
}

nlohmann::json cache_status(const store::ServiceCache& cache) {
  const auto s = cache.stats();
  return {{"status", cache.status()},
          {"redis_connected", s.redis_connected},
          {"redis_trusted", s.redis_trusted},
          {"tracking_active", s.tracking_active},
          {"near_entries", s.near_entries},
          {"near_evicted", s.near_evicted},
          {"near_refused", s.near_refused},
          {"known_services", s.known_services},
          {"known_names_active", s.known_names_active},
          {"absent_answers", s.absent_answers},
          {"lookups_in_flight", s.lookups_in_flight},
          {"lookups_shed", s.lookups_shed},
          {"tracked_generations", s.tracked_generations},
          {"near_hits", s.near_hits},
          {"redis_hits", s.redis_hits},
          {"redis_misses", s.redis_misses},
          {"fills", s.fills},
          {"fills_refused", s.fills_refused},
          {"invalidations", s.invalidations},
          {"invalidation_failures", s.invalidation_failures},
          {"fallbacks", s.fallbacks},
          {"redis_errors", s.redis_errors},
          {"db_reads", s.db_reads},
          {"coalesced", s.coalesced},
          {"stale_retries", s.stale_retries},
          {"outbox_replays", s.outbox_replays}};
}

health::Options health_options(const daemon_config::Config& config) {
  health::Options options;
  options.default_interval = config.check_interval;
  options.default_timeout = config.check_timeout;
  options.default_failures = config.check_failures;
  options.max_concurrent_probes = config.max_concurrent_probes;
  options.protection_threshold = config.protection_threshold;
  options.resync_period = config.resync_interval;
  return options;
}

nlohmann::json health_status(const health::Checker& checker) {
  const auto s = checker.stats();
  return {{"instances", s.instances},
          {"failing", s.failing},
          {"probes_started", s.probes_started},
          {"probes_passed", s.probes_passed},
          {"probes_failed", s.probes_failed},
          {"probes_in_flight", s.probes_in_flight},
          {"probes_queued", s.probes_queued},
          {"removals", s.removals},
          {"removals_suppressed", s.removals_suppressed},
          {"removals_kept", s.removals_kept},
          {"protection_active", s.protection_active},
          {"cap_hits", s.cap_hits},
          {"record_batches", s.record_batches},
          {"resyncs", s.resyncs}};
}

nlohmann::json events_json(const std::vector<health::RemovalEvent>& events) {
  nlohmann::json list = nlohmann::json::array();
  for (const auto& event : events) {
    list.push_back({{"type", "removed"},
                    {"service", event.service},
                    {"id", event.id},
                    {"address", event.address},
                    {"port", event.port},
                    {"reason", event.reason},
                    {"failures", event.failures},
                    {"at", store::format_timestamp(event.at)}});
  }
  return list;
}

int run(const daemon_config::Config& config) {
  auto log = spdlog::get("main");
  const auto db_directory = std::filesystem::path(config.db_path).parent_path();
  if (!db_directory.empty()) std::filesystem::create_directories(db_directory);

  store::SqliteStore store({config.db_path, config.db_synchronous_full, config.busy_timeout()});
  log->info("database {} open (schema version {})", config.db_path, store.schema_version());

  // The io_context the checker posts to outlives it: declared first.
  boost::asio::io_context health_io;
  store::Writer writer(store);
  // Commit subscribers, in the order the fan-out calls them (store/writer.h): the
  // cache first, so every batch is invalidated before it is acknowledged.
  store::ServiceCache cache(store, writer, cache_options(config));
  const auto cache_subscription = writer.subscribe(cache);
  cache.start();
  if (config.redis == "none" || config.redis.empty()) {
    log->info("cache: no Redis configured; in-process cache and SQLite only");
  } else {
    log->info("cache: Redis at {} (prefix \"{}\", TTL {} ms, timeout {} ms)", config.redis,
              config.redis_prefix, config.cache_ttl.count(), config.redis_timeout.count());
  }

  // DNS on its own thread, so that queries never queue behind HTTP work.
  const std::string zone_file =
      (std::filesystem::path(config.zones_dir) / (config.domain + "zone")).string();
  auto zone = dns::Zone::load(zone_file, config.domain);
  boost::asio::io_context dns_io;
  dns::Server dns_server(dns_io, dns_options(config, zone_file), zone, cache);
  dns_server.start();
  log->info("DNS serving {} from {} on {} (UDP and TCP)", config.domain, zone_file,
            dns_server.udp_endpoint().to_string());

  // The health checker on its own thread: probes never delay HTTP or DNS.
  auto checker_options = health_options(config);
  // An X-Load header of a passing probe feeds least_loaded ordering; it records
  // the load only (no heartbeat: a probe is not the instance's proof of life).
  checker_options.on_reported_load = [&writer](const std::string& service, const std::string& id,
                                               double load) {
    writer.submit(store::ReportLoad{service, id, load}, [](const store::MutationResult&) {});
  };
  health::Checker checker(health_io, store, writer, checker_options);
  const auto checker_subscription = writer.subscribe(checker);
  checker.start();
  log->info(
      "health checker started ({} instances; defaults: every {} ms, timeout {} ms, {} failures)",
      checker.stats().instances, config.check_interval.count(), config.check_timeout.count(),
      config.check_failures);

  boost::asio::io_context io;
  registry::HttpServer* http_server = nullptr;
  const auto report_status = [&](nlohmann::json& status) {
    const auto stats = http_server->stats();
    status["http"] = {{"open_connections", stats.open_connections},
                      {"accepted", stats.accepted},
                      {"rejected_over_limit", stats.rejected_over_limit},
                      {"requests", stats.requests},
                      {"tls", !config.tls_cert.empty()},
                      {"tls_handshake_failures", stats.tls_handshake_failures}};
    status["dns"] = dns_status(dns_server);
    status["cache"] = cache_status(cache);
    status["health"] = health_status(checker);
  };
  const auto report_events = [&] { return events_json(checker.recent_removals()); };
  registry::Api api(store, writer, cache,
                    {config.check_interval, config.check_timeout, config.check_failures},
                    report_status, report_events);
  api.set_default_strategy(
      store::parse_lb_strategy(config.dns_default_lb).value_or(store::LbStrategy::round_robin));
  if (!config.token_file.empty()) {
    api.set_access_control(load_access_control(config));
  } else if (!is_loopback(config.http_listen.host)) {
    log->warn(
        "HTTP API on {} without authentication: anyone who can reach it can register and "
        "deregister any service; set http.token_file (docs/security.md)",
        config.http_listen.to_string());
  }
  registry::HttpServer http(io, http_options(config), api);
  http_server = &http;
  http.start();
  const daemon_config::ListenAddress http_bound{config.http_listen.host, http.port()};
  log->info("HTTP API listening on {} ({})", http_bound.to_string(),
            config.tls_cert.empty() ? "plain HTTP" : "HTTPS");

  // Registrations may not point at multicast, link-local, ... nor at ourselves;
  // built once the ports are bound, since port 0 means "any free port".
  const auto own_address = [](const std::string& host, std::uint16_t port) {
    return registry::ListenEndpoint{*store::IpAddress::parse(host), port};
  };
  auto address_policy = std::make_shared<const registry::AddressPolicy>(
      config.deny_ranges.value_or(registry::AddressPolicy::default_deny_ranges()),
      std::vector<registry::ListenEndpoint>{
          own_address(config.http_listen.host, http.port()),
          own_address(config.dns_listen.host, dns_server.udp_endpoint().port),
          own_address(config.dns_listen.host, dns_server.tcp_endpoint().port)});
  api.set_registration_filter([address_policy](const store::Registration& registration) {
    return address_policy->check(registration);
  });

  if (!config.ready_file.empty()) {
    write_ready_file(config.ready_file, {{"http", http_bound.to_string()},
                                         {"dns", dns_server.udp_endpoint().to_string()},
                                         {"pid", ::getpid()}});
  }

  // Every step that can fail (zone, binds, reading the registry) is done: only now
  // start the threads, so that a start-up error unwinds cleanly (exit 1) instead
  // of meeting a running std::thread (std::terminate).
  auto dns_work = boost::asio::make_work_guard(dns_io);
  std::thread dns_thread([&] { dns_io.run(); });
  auto health_work = boost::asio::make_work_guard(health_io);
  std::thread health_thread([&] { health_io.run(); });

  // Stop on SIGINT/SIGTERM: no new connections; requests in flight complete; then
  // the writer drains and the database closes. A second signal, or clients still
  // busy after the grace period, end the loop at once.
  boost::asio::signal_set signals(io, SIGINT, SIGTERM);
  // SIGHUP re-reads the token file and the TLS certificate. A file that cannot be
  // used is refused as a whole: what is in force stays, and the log says why.
  boost::asio::signal_set reload_signals(io, SIGHUP);
  std::function<void()> wait_for_reload = [&] {
    reload_signals.async_wait([&](const boost::system::error_code& ec, int) {
      if (ec) return;
      if (config.token_file.empty()) {
        log->info("SIGHUP: no token file configured; nothing to reload");
      } else {
        try {
          api.set_access_control(load_access_control(config));
        } catch (const std::exception& error) {
          log->error("SIGHUP: token file not reloaded, previous tokens stay in force: {}",
                     error.what());
        }
      }
      try {
        if (http.reload_tls()) log->info("SIGHUP: TLS certificate and key reloaded");
      } catch (const std::exception& error) {
        log->error("SIGHUP: TLS certificate not reloaded, the previous one stays in force: {}",
                   error.what());
      }
      wait_for_reload();
    });
  };
  wait_for_reload();
  boost::asio::steady_timer drain_poll(io);
  const auto shutdown_deadline = std::make_shared<std::chrono::steady_clock::time_point>();
  std::function<void()> wait_for_drain = [&] {
    if (http.stats().open_connections == 0 ||
        std::chrono::steady_clock::now() >= *shutdown_deadline) {
      signals.cancel();
      reload_signals.cancel();
      io.stop();
      return;
    }
    drain_poll.expires_after(std::chrono::milliseconds(20));
    drain_poll.async_wait([&](const boost::system::error_code& ec) {
      if (!ec) wait_for_drain();
    });
  };
  signals.async_wait([&](const boost::system::error_code& ec, int signal) {
    if (ec) return;
    log->info("signal {} received: shutting down", signal);
    http.stop();
    *shutdown_deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    signals.async_wait([&](const boost::system::error_code& ec, int) {
      if (!ec) io.stop();
    });
    wait_for_drain();
  });

  io.run();
  // HTTP is done. Close the DNS listeners, then let the writer commit what is
  // queued (its listener still needs the cache), then stop the cache.
  dns_server.stop();
  dns_work.reset();
  dns_thread.join();
  checker.stop();  // flushes its pending check records through the writer
  health_work.reset();
  health_thread.join();
  writer.stop();
  cache.stop();
  log->info("stopped");
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  auto loaded = daemon_config::load(argc, argv);
  if (auto* exit_code = std::get_if<int>(&loaded)) return *exit_code;
  const auto& config = std::get<daemon_config::Config>(loaded);
  setup_logging(config.log_level);
  // A file-size limit (ulimit -f) must turn a too-large write into an error the
  // store reports (503), not SIGXFSZ killing the daemon with writes in flight.
  std::signal(SIGXFSZ, SIG_IGN);
  // A client that closes its socket mid-response must not kill the process.
  std::signal(SIGPIPE, SIG_IGN);
  try {
    return run(config);
  } catch (const std::exception& error) {
    spdlog::get("main")->critical("{}", error.what());
    return 1;
  }
}
