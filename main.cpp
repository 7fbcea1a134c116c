// discoveryd: the composition root. It reads the configuration, builds each
// component, wires them together, runs the event loops and stops them cleanly on
// SIGINT/SIGTERM. No behaviour lives here; every piece is in its component.
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "config.h"
#include "registry/api.h"
#include "registry/http_server.h"
#include "store/sqlite_store.h"
#include "store/writer.h"

namespace {

void setup_logging(const std::string& level) {
  auto sink = std::make_shared<spdlog::sinks::stderr_color_sink_mt>();
  for (const char* name : {"main", "store", "registry", "http", "dns", "health"}) {
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

int run(const daemon_config::Config& config) {
  auto log = spdlog::get("main");
  const auto db_directory = std::filesystem::path(config.db_path).parent_path();
  if (!db_directory.empty()) std::filesystem::create_directories(db_directory);

  store::SqliteStore store({config.db_path, config.db_synchronous_full});
  log->info("database {} open (schema version {})", config.db_path, store.schema_version());
  store::Writer writer(store, /*on_commit=*/{});

  boost::asio::io_context io;
  registry::HttpServer* http_server = nullptr;
  const auto report_status = [&](nlohmann::json& status) {
    const auto stats = http_server->stats();
    status["http"] = {{"open_connections", stats.open_connections},
                      {"accepted", stats.accepted},
                      {"rejected_over_limit", stats.rejected_over_limit},
                      {"requests", stats.requests}};
  };
  registry::Api api(store, writer,
                    {config.check_interval, config.check_timeout, config.check_failures},
                    report_status);
  registry::HttpServer http(io,
                            {config.http_listen.host, config.http_listen.port,
                             config.http_max_connections, config.http_request_timeout},
                            api);
  http_server = &http;
  http.start();
  const daemon_config::ListenAddress http_bound{config.http_listen.host, http.port()};
  log->info("HTTP API listening on {}", http_bound.to_string());

  if (!config.ready_file.empty()) {
    write_ready_file(config.ready_file, {{"http", http_bound.to_string()}, {"pid", ::getpid()}});
  }

  // Stop on SIGINT/SIGTERM: no new connections; requests in flight complete; then
  // the writer drains and the database closes. A second signal, or clients still
  // busy after the grace period, end the loop at once.
  boost::asio::signal_set signals(io, SIGINT, SIGTERM);
  boost::asio::steady_timer drain_poll(io);
  const auto shutdown_deadline = std::make_shared<std::chrono::steady_clock::time_point>();
  std::function<void()> wait_for_drain = [&] {
    if (http.stats().open_connections == 0 ||
        std::chrono::steady_clock::now() >= *shutdown_deadline) {
      signals.cancel();
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
  writer.stop();
  log->info("stopped");
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  auto loaded = daemon_config::load(argc, argv);
  if (auto* exit_code = std::get_if<int>(&loaded)) return *exit_code;
  const auto& config = std::get<daemon_config::Config>(loaded);
  setup_logging(config.log_level);
  try {
    return run(config);
  } catch (const std::exception& error) {
    spdlog::get("main")->critical("{}", error.what());
    return 1;
  }
}
