// discoveryd: the composition root. It reads the configuration, builds each
// component, wires them together, runs the event loops and stops them cleanly on
// SIGINT/SIGTERM. No behaviour lives here; every piece is in its component
// (config_options.cpp maps the configuration onto each component's options,
// each component renders its own part of /v1/status).
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <atomic>
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
#include "dns/status.h"
#include "health/checker.h"
#include "health/status.h"
#include "registry/address_policy.h"
#include "registry/api.h"
#include "registry/auth.h"
#include "registry/http_server.h"
#include "store/cache/cache_status.h"
#include "store/cache/service_cache.h"
#include "store/cluster/cluster_status.h"
#include "store/cluster/membership.h"
#include "store/cluster/shard_ownership.h"
#include "store/postgres/change_notifications.h"
#include "store/sqlite/sqlite_store.h"
#include "store/writer.h"

namespace {

using daemon_config::Config;

void setup_logging(const std::string& level) {
  auto sink = std::make_shared<spdlog::sinks::stderr_color_sink_mt>();
  for (const char* name :
       {"main", "store", "cache", "cluster", "registry", "auth", "http", "dns", "health"}) {
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

// Reads the token file into a complete policy; throws registry::AuthConfigError
// naming the file and line, so a broken file never half-replaces a good one.
std::shared_ptr<const registry::AccessControl> load_access_control(const Config& config) {
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

// The components in the order they are built (members are constructed in
// declaration order and destroyed in reverse): the store, the writer and its
// commit subscribers in fan-out order (the cache first, so every batch is
// invalidated before it is acknowledged, then the checker), DNS, HTTP. Each
// component with a thread of its own gets its own io_context, so that probes
// never delay DNS or HTTP and DNS never queues behind HTTP work.
class Daemon {
 public:
  explicit Daemon(const Config& config);
  // Runs until SIGINT/SIGTERM, then stops everything in order. Returns the exit
  // code.
  int run();

 private:
  health::Options checker_options();
  store::CacheOptions cache_options();
  store::MembershipOptions membership_options() const;
  void report_status(nlohmann::json& status) const;
  void restrict_registered_addresses();
  void reload_on_sighup();
  void stop_on_signal();
  void stop_when_drained();

  const Config& config_;
  std::shared_ptr<spdlog::logger> log_ = spdlog::get("main");
  std::unique_ptr<store::RegistryStore> store_owner_;
  store::RegistryStore& store_;
  boost::asio::io_context health_io_;  // the checker posts to it: declared first
  store::Writer writer_;
  // Memory answers only before it (store/cluster/membership.h); the cache reads it.
  store::ServingDeadline serving_deadline_;
  store::ServiceCache cache_;
  store::Writer::Subscription cache_subscription_;
  const std::string zone_file_;
  // Shared with zone transfers, which publish its live SOA serial.
  std::shared_ptr<const dns::Zone> zone_;
  boost::asio::io_context dns_io_;
  dns::Server dns_server_;
  // Only when configured ([xfr]): AXFR/IXFR and NOTIFY for secondaries.
  std::unique_ptr<xfr::ZoneTransfers> transfers_;
  // What the feed's thread wakes: set once transfers_ runs, cleared before it stops.
  std::atomic<xfr::ZoneTransfers*> transfers_to_wake_{nullptr};
  health::Checker checker_;
  store::Writer::Subscription checker_subscription_;
  boost::asio::io_context io_;  // HTTP and signals, on the main thread
  registry::Api api_;
  registry::HttpServer http_;
  // Built last: its lease is taken once everything else is ready to serve.
  store::Membership membership_;
  // Which health-check shards this daemon probes (store/health_shards.h).
  store::ShardOwnership shard_ownership_;
  // PostgreSQL only: other daemons' commits wake the change feed at once (the
  // feed's own polling is the safety net for a lost notification).
  std::unique_ptr<store::ChangeNotifications> notifications_;
  boost::asio::signal_set stop_signals_{io_, SIGINT, SIGTERM};
  boost::asio::signal_set reload_signals_{io_, SIGHUP};
  boost::asio::steady_timer drain_poll_{io_};
  std::chrono::steady_clock::time_point drain_deadline_{};
};

Daemon::Daemon(const Config& config)
    : config_(config),
      store_owner_(daemon_config::open_registry_store(config)),
      store_(*store_owner_),
      writer_(store_),
      cache_(store_, writer_, cache_options()),
      cache_subscription_(writer_.subscribe(cache_)),
      zone_file_(daemon_config::zone_file_path(config)),
      zone_(dns::Zone::load(zone_file_, config.domain)),
      dns_server_(dns_io_, daemon_config::dns_options(config, zone_file_), zone_, cache_),
      checker_(health_io_, store_, writer_, checker_options()),
      checker_subscription_(writer_.subscribe(checker_)),
      api_(
          store_, writer_, cache_, daemon_config::check_defaults(config),
          [this](nlohmann::json& status) { report_status(status); },
          [this] { return health::events_json(checker_.recent_removals()); }),
      http_(io_, daemon_config::http_options(config), api_),
      membership_(
          store_, membership_options(), [this] { return cache_.feed_applied(); },
          serving_deadline_),
      shard_ownership_(store_, membership_,
                       [this](const store::ShardSet& shards, bool lapsed,
                              store::ShardOwnership::Released released) {
                         checker_.assign_shards(shards, lapsed, std::move(released));
                       }) {
  const auto database = store_.status();
  log_->info("database {} {} open (schema version {})", database.backend, database.location,
             database.schema_version);
  cache_.start();
  if (config.postgres()) {
    notifications_ = std::make_unique<store::ChangeNotifications>(
        io_, config.db_url, [this](std::uint64_t) { cache_.wake_feed(); },
        [this] { cache_.wake_feed(); });
    notifications_->start();
  }
  // Before the first acknowledgement: from now on each waits for every live
  // daemon sharing the database to have applied it.
  membership_.start();
  writer_.set_acknowledgement_gate(&membership_);
  shard_ownership_.start();  // before the checker starts: it probes only its shards
  if (!daemon_config::redis_configured(config)) {
    log_->info("cache: no Redis configured; in-process cache and SQLite only");
  } else {
    log_->info("cache: Redis at {} (prefix \"{}\", TTL {} ms, timeout {} ms)", config.redis,
               config.redis_prefix, config.cache_ttl.count(), config.redis_timeout.count());
  }
  if (config.zone_transfers()) {
    transfers_ = std::make_unique<xfr::ZoneTransfers>(store_, zone_, dns_io_,
                                                      daemon_config::zone_transfer_options(config));
    transfers_->start(dns_server_);
    transfers_to_wake_ = transfers_.get();
    log_->info("zone transfers on: serial {} (allowed from {} range(s), {} to notify{})",
               zone_->serial(), config.xfr_allow.size(), config.xfr_notify.size(),
               config.tsig_key_file.empty() ? "" : ", TSIG required");
  }
  dns_server_.start();
  log_->info("DNS serving {} from {} on {} (UDP and TCP)", config.domain, zone_file_,
             dns_server_.udp_endpoint().to_string());
  checker_.start();
  log_->info(
      "health checker started ({} instances; defaults: every {} ms, timeout {} ms, {} failures)",
      checker_.stats().instances, config.check_interval.count(), config.check_timeout.count(),
      config.check_failures);

  api_.set_default_strategy(daemon_config::default_lb(config));
  if (!config.token_file.empty()) {
    api_.set_access_control(load_access_control(config));
  } else if (!is_loopback(config.http_listen.host)) {
    log_->warn(
        "HTTP API on {} without authentication: anyone who can reach it can register and "
        "deregister any service; set http.token_file (docs/security.md)",
        config.http_listen.to_string());
  }
  http_.start();
  const daemon_config::ListenAddress http_bound{config.http_listen.host, http_.port()};
  log_->info("HTTP API listening on {} ({})", http_bound.to_string(),
             http_.tls() ? "HTTPS" : "plain HTTP");
  restrict_registered_addresses();
  if (!config.ready_file.empty()) {
    write_ready_file(config.ready_file, {{"http", http_bound.to_string()},
                                         {"dns", dns_server_.udp_endpoint().to_string()},
                                         {"pid", ::getpid()}});
  }
}

store::CacheOptions Daemon::cache_options() {
  auto options = daemon_config::cache_options(config_);
  // Notifications wake the feed; polling only catches a lost one.
  if (config_.postgres()) options.feed.poll_interval = std::chrono::milliseconds(50);
  options.serving_deadline = &serving_deadline_;
  options.feed_advanced = [this] {
    membership_.feed_advanced();
    if (auto* transfers = transfers_to_wake_.load()) transfers->wake();
  };
  // The checker follows the instances other daemons register and remove.
  options.feed_changes = [this](const std::vector<store::Change>& changes) {
    checker_.on_feed_changes(changes);
  };
  options.feed_gap = [this] { checker_.on_feed_gap(); };
  return options;
}

store::MembershipOptions Daemon::membership_options() const {
  store::MembershipOptions options;
  options.id = config_.member_id;
  options.lease = config_.member_lease;
  // As configured (port 0 means "any"): for operators reading /v1/status.
  options.endpoints =
      "dns=" + config_.dns_listen.to_string() + " http=" + config_.http_listen.to_string();
  return options;
}

health::Options Daemon::checker_options() {
  auto options = daemon_config::health_options(config_);
  // Each instance is probed by one daemon: the owner of its shard, while its
  // membership lease holds (store/cluster/shard_ownership.h).
  options.sharded = true;
  options.may_probe = [this] { return membership_.lease_valid(); };
  // An X-Load header of a passing probe feeds least_loaded ordering; it records
  // the load only (no heartbeat: a probe is not the instance's proof of life).
  options.on_reported_load = [this](const std::string& service, const std::string& id,
                                    double load) {
    writer_.submit(store::ReportLoad{service, id, load}, [](const store::MutationResult&) {});
  };
  return options;
}

// On the HTTP thread; each component renders its own part.
void Daemon::report_status(nlohmann::json& status) const {
  status["http"] = registry::status_json(http_.stats(), http_.tls());
  status["dns"] = dns::status_json(dns_server_);
  if (transfers_) status["xfr"] = transfers_->status();
  status["cache"] = store::status_json(cache_);
  status["health"] = health::status_json(checker_);
  status["cluster"] = store::status_json(membership_);
  status["cluster"]["health_shards"] = store::status_json(shard_ownership_);
}

// Registrations may not point at multicast, link-local, ... nor at ourselves;
// built once the ports are bound, since port 0 means "any free port".
void Daemon::restrict_registered_addresses() {
  const auto own_address = [](const std::string& host, std::uint16_t port) {
    return registry::ListenEndpoint{*store::IpAddress::parse(host), port};
  };
  auto policy = std::make_shared<const registry::AddressPolicy>(
      config_.deny_ranges.value_or(registry::AddressPolicy::default_deny_ranges()),
      std::vector<registry::ListenEndpoint>{
          own_address(config_.http_listen.host, http_.port()),
          own_address(config_.dns_listen.host, dns_server_.udp_endpoint().port),
          own_address(config_.dns_listen.host, dns_server_.tcp_endpoint().port)});
  api_.set_registration_filter(
      [policy](const store::Registration& registration) { return policy->check(registration); });
}

int Daemon::run() {
  // Every step that can fail (zone, binds, reading the registry) is done: only now
  // start the threads, so that a start-up error unwinds cleanly (exit 1) instead
  // of meeting a running std::thread (std::terminate).
  auto dns_work = boost::asio::make_work_guard(dns_io_);
  std::thread dns_thread([this] { dns_io_.run(); });
  auto health_work = boost::asio::make_work_guard(health_io_);
  std::thread health_thread([this] { health_io_.run(); });
  reload_on_sighup();
  stop_on_signal();
  io_.run();
  // HTTP is done. Close the DNS listeners, then let the checker flush its check
  // records and the writer commit what is queued (its subscribers still need the
  // cache), then stop the cache.
  transfers_to_wake_ = nullptr;
  if (transfers_) transfers_->stop();
  dns_server_.stop();
  dns_work.reset();
  dns_thread.join();
  shard_ownership_.stop();
  checker_.stop();
  health_work.reset();
  health_thread.join();
  if (notifications_) notifications_->stop();
  writer_.stop();      // what it committed last may still wait at the gate...
  membership_.stop();  // ...which acknowledges it, then leaves the members
  writer_.set_acknowledgement_gate(nullptr);
  cache_.stop();
  log_->info("stopped");
  return 0;
}

// SIGHUP re-reads the token file and the TLS certificate. A file that cannot be
// used is refused as a whole: what is in force stays, and the log says why.
void Daemon::reload_on_sighup() {
  reload_signals_.async_wait([this](const boost::system::error_code& ec, int) {
    if (ec) return;
    if (config_.token_file.empty()) {
      log_->info("SIGHUP: no token file configured; nothing to reload");
    } else {
      try {
        api_.set_access_control(load_access_control(config_));
      } catch (const std::exception& error) {
        log_->error("SIGHUP: token file not reloaded, previous tokens stay in force: {}",
                    error.what());
      }
    }
    try {
      if (http_.reload_tls()) log_->info("SIGHUP: TLS certificate and key reloaded");
    } catch (const std::exception& error) {
      log_->error("SIGHUP: TLS certificate not reloaded, the previous one stays in force: {}",
                  error.what());
    }
    reload_on_sighup();
  });
}

// SIGINT/SIGTERM: no new connections; requests in flight complete; then the
// loop ends. A second signal, or clients still busy after the grace period, end
// it at once.
void Daemon::stop_on_signal() {
  stop_signals_.async_wait([this](const boost::system::error_code& ec, int signal) {
    if (ec) return;
    log_->info("signal {} received: shutting down", signal);
    http_.stop();
    drain_deadline_ = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    stop_signals_.async_wait([this](const boost::system::error_code& ec, int) {
      if (!ec) io_.stop();
    });
    stop_when_drained();
  });
}

void Daemon::stop_when_drained() {
  if (http_.stats().open_connections == 0 || std::chrono::steady_clock::now() >= drain_deadline_) {
    stop_signals_.cancel();
    reload_signals_.cancel();
    io_.stop();
    return;
  }
  drain_poll_.expires_after(std::chrono::milliseconds(20));
  drain_poll_.async_wait([this](const boost::system::error_code& ec) {
    if (!ec) stop_when_drained();
  });
}

}  // namespace

int main(int argc, char** argv) {
  auto loaded = daemon_config::load(argc, argv);
  if (auto* exit_code = std::get_if<int>(&loaded)) return *exit_code;
  const auto& config = std::get<Config>(loaded);
  setup_logging(config.log_level);
  // A file-size limit (ulimit -f) must turn a too-large write into an error the
  // store reports (503), not SIGXFSZ killing the daemon with writes in flight.
  std::signal(SIGXFSZ, SIG_IGN);
  // A client that closes its socket mid-response must not kill the process.
  std::signal(SIGPIPE, SIG_IGN);
  try {
    Daemon daemon(config);
    return daemon.run();
  } catch (const std::exception& error) {
    spdlog::get("main")->critical("{}", error.what());
    return 1;
  }
}
