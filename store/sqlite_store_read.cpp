// The store's read side: one consistent read per call, each on a connection of
// its own from the read pool, so that a long read (a full resync) never holds up
// another.
#include <SQLiteCpp/SQLiteCpp.h>

#include "store/read_pool.h"
#include "store/sqlite_schema.h"
#include "store/sqlite_store.h"

namespace store {
using namespace sqlite_schema;

ServiceSnapshot SqliteStore::read_service(std::string_view service) {
  try {
    const auto db = readers_->acquire();
    ServiceSnapshot snapshot;
    snapshot.service = std::string(service);
    // One read transaction: the version and the rows come from the same commit.
    SQLite::Transaction transaction(*db);
    snapshot.version = current_version(*db, snapshot.service);
    snapshot.lb = parse_lb_strategy(current_strategy(*db, snapshot.service));
    SQLite::Statement query(*db, std::string("SELECT ") + kInstanceColumns +
                                     " FROM instances WHERE service = ? ORDER BY id");
    query.bind(1, snapshot.service);
    while (query.executeStep()) snapshot.instances.push_back(read_instance_row(query));
    transaction.commit();
    return snapshot;
  } catch (const StoreError&) {
    throw;
  } catch (const std::exception& error) {
    throw StoreError(std::string("read_service failed: ") + error.what());
  }
}

std::vector<ServiceSummary> SqliteStore::list_services() {
  try {
    const auto db = readers_->acquire();
    std::vector<ServiceSummary> services;
    SQLite::Statement query(
        *db,
        "SELECT s.name, s.version, count(i.id) FROM services s "
        "JOIN instances i ON i.service = s.name GROUP BY s.name ORDER BY s.name");
    while (query.executeStep()) {
      services.push_back({query.getColumn(0).getString(),
                          static_cast<std::uint64_t>(query.getColumn(1).getInt64()),
                          static_cast<std::size_t>(query.getColumn(2).getInt64())});
    }
    return services;
  } catch (const std::exception& error) {
    throw StoreError(std::string("list_services failed: ") + error.what());
  }
}

std::vector<Instance> SqliteStore::read_all_instances() {
  try {
    const auto db = readers_->acquire();
    std::vector<Instance> instances;
    SQLite::Statement query(
        *db, std::string("SELECT ") + kInstanceColumns + " FROM instances ORDER BY service, id");
    while (query.executeStep()) instances.push_back(read_instance_row(query));
    return instances;
  } catch (const StoreError&) {
    throw;
  } catch (const std::exception& error) {
    throw StoreError(std::string("read_all_instances failed: ") + error.what());
  }
}

std::vector<OutboxEntry> SqliteStore::read_outbox() {
  try {
    const auto db = readers_->acquire();
    std::vector<OutboxEntry> entries;
    SQLite::Statement query(*db, "SELECT service, version FROM cache_outbox ORDER BY service");
    while (query.executeStep()) {
      entries.push_back({query.getColumn(0).getString(),
                         static_cast<std::uint64_t>(query.getColumn(1).getInt64())});
    }
    return entries;
  } catch (const std::exception& error) {
    throw StoreError(std::string("read_outbox failed: ") + error.what());
  }
}

int SqliteStore::schema_version() {
  try {
    return read_schema_version(*readers_->acquire());
  } catch (const std::exception& error) {
    throw StoreError(std::string("schema_version failed: ") + error.what());
  }
}

std::string SqliteStore::integrity_check() {
  const auto db = readers_->acquire();
  SQLite::Statement query(*db, "PRAGMA integrity_check");
  std::string result;
  while (query.executeStep()) {
    if (!result.empty()) result += "; ";
    result += query.getColumn(0).getString();
  }
  return result;
}

}  // namespace store
