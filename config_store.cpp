// Choosing and opening the database: SQLite (the embedded default) or
// PostgreSQL (several daemons), with retries while a server does not answer.
#include <spdlog/spdlog.h>

#include <filesystem>
#include <thread>

#include "config.h"

namespace daemon_config {

void apply_database_setting(Config& config, const std::string& value) {
  if (value.starts_with("postgresql://") || value.starts_with("postgres://")) {
    config.db_url = value;
  } else if (value.starts_with("sqlite:")) {
    config.db_url.clear();
    config.db_path = value.substr(7);
  } else {
    config.db_url.clear();
    config.db_path = value;
  }
}

namespace {

std::unique_ptr<store::RegistryStore> open_sqlite(const Config& config) {
  const auto directory = std::filesystem::path(config.db_path).parent_path();
  if (!directory.empty()) std::filesystem::create_directories(directory);
  return std::make_unique<store::SqliteStore>(store_options(config));
}

}  // namespace

std::unique_ptr<store::RegistryStore> open_registry_store(const Config& config) {
  if (!config.postgres()) return open_sqlite(config);
  const auto log = spdlog::get("main");
  const auto shown = store::redact_database_url(config.db_url);
  const auto give_up_at = std::chrono::steady_clock::now() + config.db_connect_wait;
  std::chrono::milliseconds backoff{100};
  for (int attempt = 1;; ++attempt) {
    try {
      return std::make_unique<store::PostgresStore>(postgres_options(config));
    } catch (const store::StoreError& error) {
      // The error names the server without its password (PostgresStore).
      const auto now = std::chrono::steady_clock::now();
      if (now >= give_up_at) {
        throw store::StoreError("database " + shown + " did not answer within " +
                                std::to_string(config.db_connect_wait.count()) +
                                " ms (db.connect_wait): " + error.what());
      }
      if (log) {
        log->warn("database {} not usable (attempt {}): {}; retrying in {} ms", shown, attempt,
                  error.what(), backoff.count());
      }
      std::this_thread::sleep_for(
          std::min<std::chrono::steady_clock::duration>(backoff, give_up_at - now));
      backoff = std::min<std::chrono::milliseconds>(backoff * 2, std::chrono::seconds(2));
    }
  }
}

}  // namespace daemon_config
