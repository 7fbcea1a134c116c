#include "store/postgres/pg_schema.h"

#include <nlohmann/json.hpp>

namespace store::postgres {
namespace {

// Held (for the migrating transaction only) by whoever migrates: a second daemon
// starting at the same moment waits, then finds the schema current. An arbitrary
// constant: "discoveryd" in ASCII, truncated to 8 bytes.
constexpr std::int64_t kMigrationLockKey = 0x646973636f766572;

// Each entry migrates the schema from version (index) to version (index + 1).
// Never edit a released entry: append a new one. Version 1 has the tables and
// columns of SQLite's schema 5, in PostgreSQL types (store/sqlite/sqlite_schema.cpp
// explains each step of how they came to be); version 2 those of SQLite's 6.
constexpr const char* kMigrations[] = {
    // 0 -> 1: services, instances, the outbox and the change feed.
    R"sql(
      CREATE TABLE services (
        name        text PRIMARY KEY,
        -- Bumped on every committed change; rows are kept when the last instance
        -- goes so that the version never moves backwards for a cache.
        version     bigint NOT NULL,
        lb_strategy text NOT NULL DEFAULT ''  -- '' = the daemon's default
      );
      CREATE TABLE instances (
        service              text NOT NULL REFERENCES services(name),
        id                   text NOT NULL,
        address              text NOT NULL,
        port                 bigint NOT NULL,
        tags                 text NOT NULL,  -- JSON array of strings
        meta                 text NOT NULL,  -- JSON object of strings
        weight               bigint NOT NULL,
        check_type           text NOT NULL,
        check_path           text NOT NULL,
        check_port           bigint NOT NULL,
        check_interval_ms    bigint NOT NULL,
        check_timeout_ms     bigint NOT NULL,
        check_ttl_ms         bigint NOT NULL,
        check_failures       bigint NOT NULL,
        registered_at_ms     bigint NOT NULL,
        updated_at_ms        bigint NOT NULL,
        last_check_at_ms     bigint,
        last_heartbeat_at_ms bigint,
        consecutive_failures bigint NOT NULL DEFAULT 0,
        load                 double precision,
        -- Proofs of life, so that a health write based on an older count cannot
        -- undo one.
        renewals             bigint NOT NULL DEFAULT 0,
        PRIMARY KEY (service, id)
      );
      CREATE TABLE cache_outbox (
        service text PRIMARY KEY,
        version bigint NOT NULL  -- the service version the cache must not predate
      );
      -- One row; its row lock orders writers (of every daemon), so sequences
      -- commit in order with no gaps.
      CREATE TABLE registry_clock (seq bigint NOT NULL);
      INSERT INTO registry_clock (seq) VALUES (0);
      CREATE TABLE changes (
        seq             bigint PRIMARY KEY,
        service         text NOT NULL,
        version         bigint NOT NULL,
        committed_at_ms bigint NOT NULL
      );
    )sql",
    // 1 -> 2: members, each with a lease and the newest sequence it applied
    // (store/registry_store.h, "Membership"). Times by the server's clock.
    R"sql(
      CREATE TABLE members (
        id             text PRIMARY KEY,
        endpoints      text NOT NULL,
        applied_seq    bigint NOT NULL,
        lease_until_ms bigint NOT NULL,
        renewed_at_ms  bigint NOT NULL
      );
    )sql",
    // 2 -> 3: health-check shards, each owned by at most one member
    // (store/health_shards.h). All rows exist from the start.
    R"sql(
      CREATE TABLE health_shards (
        shard        integer PRIMARY KEY,
        owner        text NOT NULL DEFAULT '',
        requested_by text NOT NULL DEFAULT ''
      );
      INSERT INTO health_shards (shard) SELECT generate_series(0, 255);
    )sql",
};
static_assert(std::size(kMigrations) == PostgresStore::kLatestSchemaVersion);

std::int64_t column_int(const Result& result, int row, int column) {
  return result.int64(row, column);
}

}  // namespace

std::int64_t to_ms(TimePoint time) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(time.time_since_epoch()).count();
}
TimePoint from_ms(std::int64_t ms) {
  return TimePoint(std::chrono::milliseconds(ms));
}
std::string tags_to_json(const std::vector<std::string>& tags) {
  return nlohmann::json(tags).dump();
}
std::string meta_to_json(const std::map<std::string, std::string>& meta) {
  return nlohmann::json(meta).dump();
}

int read_schema_version(Connection& connection) {
  const auto exists = connection.exec("SELECT to_regclass('schema_version') IS NOT NULL");
  if (exists.text(0, 0) != "t") return 0;
  const auto version = connection.exec("SELECT version FROM schema_version");
  return version.rows() > 0 ? static_cast<int>(version.int64(0, 0)) : 0;
}

void migrate(Connection& connection, const std::string& location) {
  connection.exec("BEGIN");
  try {
    connection.exec("SELECT pg_advisory_xact_lock($1)", {param(kMigrationLockKey)});
    int version = read_schema_version(connection);
    if (version > PostgresStore::kLatestSchemaVersion) {
      throw StoreError("database " + location + " has schema version " + std::to_string(version) +
                       ", newer than this discoveryd supports (" +
                       std::to_string(PostgresStore::kLatestSchemaVersion) +
                       "); upgrade discoveryd or restore an older backup");
    }
    if (version == 0) {
      connection.exec("CREATE TABLE IF NOT EXISTS schema_version (version integer NOT NULL)");
      connection.exec("DELETE FROM schema_version");
      connection.exec("INSERT INTO schema_version (version) VALUES (0)");
    }
    for (; version < PostgresStore::kLatestSchemaVersion; ++version) {
      connection.exec_script(kMigrations[version]);
      connection.exec("UPDATE schema_version SET version = $1", {param(std::int64_t{version + 1})});
    }
    connection.exec("COMMIT");
  } catch (...) {
    // The connection is dropped by the caller if it broke; otherwise leave it
    // outside any transaction.
    if (connection.usable()) {
      try {
        connection.exec("ROLLBACK");
      } catch (const PgError&) {
      }
    }
    throw;
  }
}

Instance read_instance_row(const Result& result, int row, int first) {
  const auto at = [&](int column) { return first + column; };
  Instance instance;
  Registration& reg = instance.registration;
  reg.service = result.string(row, at(0));
  reg.id = result.string(row, at(1));
  auto address = IpAddress::parse(result.text(row, at(2)));
  if (!address) throw StoreError("corrupt address in row " + reg.service + "/" + reg.id);
  reg.address = *address;
  reg.port = static_cast<std::uint16_t>(column_int(result, row, at(3)));
  reg.tags = nlohmann::json::parse(result.text(row, at(4))).get<std::vector<std::string>>();
  reg.meta =
      nlohmann::json::parse(result.text(row, at(5))).get<std::map<std::string, std::string>>();
  reg.weight = static_cast<std::uint16_t>(column_int(result, row, at(6)));
  reg.check.type = parse_check_type(result.text(row, at(7))).value_or(CheckType::tcp);
  reg.check.path = result.string(row, at(8));
  reg.check.port = static_cast<std::uint16_t>(column_int(result, row, at(9)));
  reg.check.interval = Milliseconds(column_int(result, row, at(10)));
  reg.check.timeout = Milliseconds(column_int(result, row, at(11)));
  reg.check.ttl = Milliseconds(column_int(result, row, at(12)));
  reg.check.failures = static_cast<std::uint32_t>(column_int(result, row, at(13)));
  instance.registered_at = from_ms(column_int(result, row, at(14)));
  instance.updated_at = from_ms(column_int(result, row, at(15)));
  if (auto ms = result.optional_int64(row, at(16))) instance.last_check_at = from_ms(*ms);
  if (auto ms = result.optional_int64(row, at(17))) instance.last_heartbeat_at = from_ms(*ms);
  instance.consecutive_failures = static_cast<std::uint32_t>(column_int(result, row, at(18)));
  if (!result.is_null(row, at(19))) instance.load = result.real(row, at(19));
  instance.renewals = static_cast<std::uint64_t>(column_int(result, row, at(20)));
  return instance;
}

std::uint64_t current_version(Connection& connection, const std::string& service) {
  const auto result = connection.exec("SELECT version FROM services WHERE name = $1",
                                      {param(std::string_view(service))});
  return result.rows() > 0 ? static_cast<std::uint64_t>(result.int64(0, 0)) : 0;
}

std::string current_strategy(Connection& connection, const std::string& service) {
  const auto result = connection.exec("SELECT lb_strategy FROM services WHERE name = $1",
                                      {param(std::string_view(service))});
  return result.rows() > 0 ? result.string(0, 0) : std::string();
}

}  // namespace store::postgres
