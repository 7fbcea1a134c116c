#include "store/sqlite/sqlite_schema.h"

#include <nlohmann/json.hpp>

#include "store/duration.h"

namespace store::sqlite_schema {
namespace {

// Each entry migrates the schema from version (index) to version (index + 1).
// Never edit a released entry: append a new one.
constexpr const char* kMigrations[] = {
    // 0 -> 1: services and their instances.
    R"sql(
      CREATE TABLE services (
        name    TEXT PRIMARY KEY,
        -- Bumped on every committed change; rows are kept when the last instance
        -- goes so that the version never moves backwards for a cache.
        version INTEGER NOT NULL
      ) WITHOUT ROWID;
      CREATE TABLE instances (
        service              TEXT NOT NULL REFERENCES services(name),
        id                   TEXT NOT NULL,
        address              TEXT NOT NULL,
        port                 INTEGER NOT NULL,
        tags                 TEXT NOT NULL,  -- JSON array of strings
        meta                 TEXT NOT NULL,  -- JSON object of strings
        weight               INTEGER NOT NULL,
        check_type           TEXT NOT NULL,
        check_path           TEXT NOT NULL,
        check_port           INTEGER NOT NULL,
        check_interval_ms    INTEGER NOT NULL,
        check_timeout_ms     INTEGER NOT NULL,
        check_ttl_ms         INTEGER NOT NULL,
        check_failures       INTEGER NOT NULL,
        registered_at_ms     INTEGER NOT NULL,
        updated_at_ms        INTEGER NOT NULL,
        last_check_at_ms     INTEGER,
        last_heartbeat_at_ms INTEGER,
        consecutive_failures INTEGER NOT NULL DEFAULT 0,
        load                 REAL,
        PRIMARY KEY (service, id)
      ) WITHOUT ROWID;
    )sql",
    // 1 -> 2: per-service load-balancing strategy ('' = the daemon's default).
    R"sql(
      ALTER TABLE services ADD COLUMN lb_strategy TEXT NOT NULL DEFAULT '';
    )sql",
    // 2 -> 3: cache invalidations not yet confirmed by Redis (the outbox).
    R"sql(
      CREATE TABLE cache_outbox (
        service TEXT PRIMARY KEY,
        version INTEGER NOT NULL  -- the service version the cache must not predate
      ) WITHOUT ROWID;
    )sql",
    // 3 -> 4: proofs of life (heartbeats, re-registrations) counted per instance, so
    // that a health write based on an older count cannot undo one.
    R"sql(
      ALTER TABLE instances ADD COLUMN renewals INTEGER NOT NULL DEFAULT 0;
    )sql",
    // 4 -> 5: the change feed. One clock row whose update orders writers, and one
    // row per committed change with its gap-free sequence number, written in the
    // change's transaction (store/registry_store.h, "Change feed").
    R"sql(
      CREATE TABLE registry_clock (seq INTEGER NOT NULL);
      INSERT INTO registry_clock (seq) VALUES (0);
      CREATE TABLE changes (
        seq             INTEGER PRIMARY KEY,
        service         TEXT NOT NULL,
        version         INTEGER NOT NULL,
        committed_at_ms INTEGER NOT NULL
      );
    )sql",
    // 5 -> 6: members, each with a lease and the newest sequence it applied
    // (store/registry_store.h, "Membership"; docs/architecture.md).
    R"sql(
      CREATE TABLE members (
        id             TEXT PRIMARY KEY,
        endpoints      TEXT NOT NULL,
        applied_seq    INTEGER NOT NULL,
        lease_until_ms INTEGER NOT NULL,
        renewed_at_ms  INTEGER NOT NULL
      );
    )sql",
    // 6 -> 7: health-check shards, each owned by at most one member
    // (store/health_shards.h). All rows exist from the start: a balance only
    // updates them.
    R"sql(
      CREATE TABLE health_shards (
        shard        INTEGER PRIMARY KEY,
        owner        TEXT NOT NULL DEFAULT '',
        requested_by TEXT NOT NULL DEFAULT ''
      );
      WITH RECURSIVE numbers(n) AS (SELECT 0 UNION ALL SELECT n + 1 FROM numbers WHERE n < 255)
      INSERT INTO health_shards (shard) SELECT n FROM numbers;
    )sql",
};
static_assert(std::size(kMigrations) == SqliteStore::kLatestSchemaVersion);

}  // namespace

std::int64_t to_ms(TimePoint time) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(time.time_since_epoch()).count();
}
TimePoint from_ms(std::int64_t ms) {
  return TimePoint(std::chrono::milliseconds(ms));
}

std::unique_ptr<SQLite::Database> open_connection(const StoreOptions& options) {
  auto db = std::make_unique<SQLite::Database>(
      options.path, SQLite::OPEN_READWRITE | SQLite::OPEN_CREATE | SQLite::OPEN_FULLMUTEX);
  db->setBusyTimeout(static_cast<int>(options.busy_timeout.count()));
  db->exec("PRAGMA journal_mode=WAL");
  db->exec(options.synchronous_full ? "PRAGMA synchronous=FULL" : "PRAGMA synchronous=NORMAL");
  db->exec("PRAGMA foreign_keys=ON");
  return db;
}

int read_schema_version(SQLite::Database& db) {
  if (!db.tableExists("schema_version")) return 0;
  SQLite::Statement query(db, "SELECT version FROM schema_version");
  return query.executeStep() ? query.getColumn(0).getInt() : 0;
}

void migrate(SQLite::Database& db, const std::string& path, int target) {
  // IMMEDIATE takes the write lock first, so two daemons opening one file at once
  // cannot both run the same migration.
  SQLite::Transaction transaction(db, SQLite::TransactionBehavior::IMMEDIATE);
  int version = read_schema_version(db);
  if (version > SqliteStore::kLatestSchemaVersion) {
    throw StoreError("database " + path + " has schema version " + std::to_string(version) +
                     ", newer than this discoveryd supports (" +
                     std::to_string(SqliteStore::kLatestSchemaVersion) +
                     "); upgrade discoveryd or restore an older backup");
  }
  if (version == 0) {
    db.exec("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)");
    db.exec("DELETE FROM schema_version");
    db.exec("INSERT INTO schema_version (version) VALUES (0)");
  }
  for (; version < target; ++version) {
    db.exec(kMigrations[version]);
    db.exec("UPDATE schema_version SET version = " + std::to_string(version + 1));
  }
  transaction.commit();
}

std::string tags_to_json(const std::vector<std::string>& tags) {
  return nlohmann::json(tags).dump();
}
std::string meta_to_json(const std::map<std::string, std::string>& meta) {
  return nlohmann::json(meta).dump();
}

Instance read_instance_row(SQLite::Statement& row) {
  Instance instance;
  Registration& reg = instance.registration;
  reg.service = row.getColumn(0).getString();
  reg.id = row.getColumn(1).getString();
  // The address was validated on the way in; a row that no longer parses means
  // the file was edited by hand, which read_service reports as corruption.
  auto address = IpAddress::parse(row.getColumn(2).getString());
  if (!address) throw StoreError("corrupt address in row " + reg.service + "/" + reg.id);
  reg.address = *address;
  reg.port = static_cast<std::uint16_t>(row.getColumn(3).getInt());
  reg.tags = nlohmann::json::parse(row.getColumn(4).getString()).get<std::vector<std::string>>();
  reg.meta =
      nlohmann::json::parse(row.getColumn(5).getString()).get<std::map<std::string, std::string>>();
  reg.weight = static_cast<std::uint16_t>(row.getColumn(6).getInt());
  reg.check.type = parse_check_type(row.getColumn(7).getString()).value_or(CheckType::tcp);
  reg.check.path = row.getColumn(8).getString();
  reg.check.port = static_cast<std::uint16_t>(row.getColumn(9).getInt());
  reg.check.interval = Milliseconds(row.getColumn(10).getInt64());
  reg.check.timeout = Milliseconds(row.getColumn(11).getInt64());
  reg.check.ttl = Milliseconds(row.getColumn(12).getInt64());
  reg.check.failures = static_cast<std::uint32_t>(row.getColumn(13).getInt());
  instance.registered_at = from_ms(row.getColumn(14).getInt64());
  instance.updated_at = from_ms(row.getColumn(15).getInt64());
  if (!row.getColumn(16).isNull()) instance.last_check_at = from_ms(row.getColumn(16).getInt64());
  if (!row.getColumn(17).isNull()) {
    instance.last_heartbeat_at = from_ms(row.getColumn(17).getInt64());
  }
  instance.consecutive_failures = static_cast<std::uint32_t>(row.getColumn(18).getInt());
  if (!row.getColumn(19).isNull()) instance.load = row.getColumn(19).getDouble();
  instance.renewals = static_cast<std::uint64_t>(row.getColumn(20).getInt64());
  return instance;
}

std::uint64_t current_version(SQLite::Database& db, const std::string& service) {
  SQLite::Statement query(db, "SELECT version FROM services WHERE name = ?");
  query.bind(1, service);
  return query.executeStep() ? static_cast<std::uint64_t>(query.getColumn(0).getInt64()) : 0;
}

std::string current_strategy(SQLite::Database& db, const std::string& service) {
  SQLite::Statement query(db, "SELECT lb_strategy FROM services WHERE name = ?");
  query.bind(1, service);
  return query.executeStep() ? query.getColumn(0).getString() : std::string();
}

}  // namespace store::sqlite_schema
