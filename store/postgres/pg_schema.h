// The PostgreSQL schema (its migrations) and the mapping between its rows and
// the model, shared by the store's write and read sides. Internal to
// store/postgres/.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "store/postgres/pg_connection.h"

namespace store::postgres {

// Migrates to PostgresStore::kLatestSchemaVersion in one transaction under an
// advisory lock, so that daemons starting together migrate exactly once.
// Throws StoreError for a schema newer than this build, PgError otherwise.
void migrate(Connection& connection, const std::string& location);
// The schema_version table's value; 0 when there is none yet.
int read_schema_version(Connection& connection);

std::int64_t to_ms(TimePoint time);
TimePoint from_ms(std::int64_t ms);
std::string tags_to_json(const std::vector<std::string>& tags);
std::string meta_to_json(const std::map<std::string, std::string>& meta);

// The columns read_instance_row expects, in its order (the same as SQLite's).
inline constexpr const char* kInstanceColumns =
    "service, id, address, port, tags, meta, weight, check_type, check_path, check_port, "
    "check_interval_ms, check_timeout_ms, check_ttl_ms, check_failures, registered_at_ms, "
    "updated_at_ms, last_check_at_ms, last_heartbeat_at_ms, consecutive_failures, load, "
    "renewals";
inline constexpr int kInstanceColumnCount = 21;
// The instance in `row`, its columns starting at `first`.
Instance read_instance_row(const Result& result, int row, int first = 0);

// The service row's version (0 when the service was never used) and its
// load-balancing strategy ("" when unset).
std::uint64_t current_version(Connection& connection, const std::string& service);
std::string current_strategy(Connection& connection, const std::string& service);

}  // namespace store::postgres
