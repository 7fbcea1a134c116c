// The SQLite schema (its migrations) and the mapping between its rows and the
// model, shared by the store's write side (sqlite_store.cpp) and read side
// (sqlite_store_read.cpp). Internal to store/sqlite_*.cpp.
#pragma once

#include <SQLiteCpp/SQLiteCpp.h>

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "store/sqlite/sqlite_store.h"

namespace store::sqlite_schema {

// Opens a connection with the store's pragmas (WAL, synchronous, busy timeout).
std::unique_ptr<SQLite::Database> open_connection(const StoreOptions& options);
// The schema_version table's value; 0 for a new file.
int read_schema_version(SQLite::Database& db);
// Runs the missing migrations up to `target` in one IMMEDIATE transaction;
// throws StoreError if the file is newer than this build.
void migrate(SQLite::Database& db, const std::string& path, int target);

std::int64_t to_ms(TimePoint time);
TimePoint from_ms(std::int64_t ms);
std::string tags_to_json(const std::vector<std::string>& tags);
std::string meta_to_json(const std::map<std::string, std::string>& meta);

// The columns read_instance_row expects, in its order.
inline constexpr const char* kInstanceColumns =
    "service, id, address, port, tags, meta, weight, check_type, check_path, check_port, "
    "check_interval_ms, check_timeout_ms, check_ttl_ms, check_failures, registered_at_ms, "
    "updated_at_ms, last_check_at_ms, last_heartbeat_at_ms, consecutive_failures, load, "
    "renewals";
Instance read_instance_row(SQLite::Statement& row);
// The service row's version (0 when the service was never used) and its
// load-balancing strategy ("" when unset).
std::uint64_t current_version(SQLite::Database& db, const std::string& service);
std::string current_strategy(SQLite::Database& db, const std::string& service);

}  // namespace store::sqlite_schema
