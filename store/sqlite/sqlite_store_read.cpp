// The store's read side: one consistent read per call, each on a connection of
// its own from the read pool, so that a long read (a full resync) never holds up
// another.
#include <SQLiteCpp/SQLiteCpp.h>

#include "store/sqlite/read_pool.h"
#include "store/sqlite/sqlite_schema.h"
#include "store/sqlite/sqlite_store.h"

namespace store {
using namespace sqlite_schema;
namespace {

// Runs `read` on a connection of the pool. Any failure, opening the connection
// included, becomes a StoreError naming the read (the store's contract).
template <typename Read>
auto with_reader(ReadPool& pool, const char* what, Read&& read) {
  try {
    const auto db = pool.acquire();
    return read(*db);
  } catch (const StoreError&) {
    throw;
  } catch (const std::exception& error) {
    throw StoreError(std::string(what) + " failed: " + error.what());
  }
}

}  // namespace

ServiceSnapshot SqliteStore::read_service(std::string_view service) {
  return with_reader(*readers_, "read_service", [&](SQLite::Database& db) {
    ServiceSnapshot snapshot;
    snapshot.service = std::string(service);
    // One read transaction: the version and the rows come from the same commit.
    SQLite::Transaction transaction(db);
    snapshot.version = current_version(db, snapshot.service);
    snapshot.lb = parse_lb_strategy(current_strategy(db, snapshot.service));
    SQLite::Statement query(db, std::string("SELECT ") + kInstanceColumns +
                                    " FROM instances WHERE service = ? ORDER BY id");
    query.bind(1, snapshot.service);
    while (query.executeStep()) snapshot.instances.push_back(read_instance_row(query));
    transaction.commit();
    return snapshot;
  });
}

std::vector<ServiceSummary> SqliteStore::list_services() {
  return with_reader(*readers_, "list_services", [](SQLite::Database& db) {
    std::vector<ServiceSummary> services;
    SQLite::Statement query(
        db,
        "SELECT s.name, s.version, count(i.id) FROM services s "
        "JOIN instances i ON i.service = s.name GROUP BY s.name ORDER BY s.name");
    while (query.executeStep()) {
      services.push_back({query.getColumn(0).getString(),
                          static_cast<std::uint64_t>(query.getColumn(1).getInt64()),
                          static_cast<std::size_t>(query.getColumn(2).getInt64())});
    }
    return services;
  });
}

std::vector<Instance> SqliteStore::read_all_instances() {
  return with_reader(*readers_, "read_all_instances", [](SQLite::Database& db) {
    std::vector<Instance> instances;
    SQLite::Statement query(
        db, std::string("SELECT ") + kInstanceColumns + " FROM instances ORDER BY service, id");
    while (query.executeStep()) instances.push_back(read_instance_row(query));
    return instances;
  });
}

std::vector<OutboxEntry> SqliteStore::read_outbox() {
  return with_reader(*readers_, "read_outbox", [](SQLite::Database& db) {
    std::vector<OutboxEntry> entries;
    SQLite::Statement query(db, "SELECT service, version FROM cache_outbox ORDER BY service");
    while (query.executeStep()) {
      entries.push_back({query.getColumn(0).getString(),
                         static_cast<std::uint64_t>(query.getColumn(1).getInt64())});
    }
    return entries;
  });
}

int SqliteStore::schema_version() {
  return with_reader(*readers_, "schema_version",
                     [](SQLite::Database& db) { return read_schema_version(db); });
}

std::vector<Change> SqliteStore::read_changes(std::uint64_t after, std::size_t limit) {
  return with_reader(*readers_, "read_changes", [&](SQLite::Database& db) {
    SQLite::Statement query(db,
                            "SELECT seq, service, version, committed_at_ms FROM changes "
                            "WHERE seq > ? ORDER BY seq LIMIT ?");
    query.bind(1, static_cast<std::int64_t>(after));
    query.bind(2, static_cast<std::int64_t>(limit));
    std::vector<Change> changes;
    while (query.executeStep()) {
      changes.push_back({static_cast<std::uint64_t>(query.getColumn(0).getInt64()),
                         query.getColumn(1).getString(),
                         static_cast<std::uint64_t>(query.getColumn(2).getInt64()),
                         from_ms(query.getColumn(3).getInt64())});
    }
    return changes;
  });
}

std::uint64_t SqliteStore::last_sequence() {
  return with_reader(*readers_, "last_sequence", [](SQLite::Database& db) {
    SQLite::Statement query(db, "SELECT seq FROM registry_clock");
    return query.executeStep() ? static_cast<std::uint64_t>(query.getColumn(0).getInt64())
                               : std::uint64_t{0};
  });
}

namespace {

// Every service with instances and all their rows (RegistryRead::complete),
// inside the caller's read transaction.
std::vector<ServiceSnapshot> read_every_service(SQLite::Database& db) {
  std::vector<ServiceSnapshot> services;
  SQLite::Statement names(db,
                          "SELECT name, version, lb_strategy FROM services s WHERE EXISTS "
                          "(SELECT 1 FROM instances i WHERE i.service = s.name) ORDER BY name");
  while (names.executeStep()) {
    ServiceSnapshot& snapshot = services.emplace_back();
    snapshot.service = names.getColumn(0).getString();
    snapshot.version = static_cast<std::uint64_t>(names.getColumn(1).getInt64());
    snapshot.lb = parse_lb_strategy(names.getColumn(2).getString());
  }
  SQLite::Statement rows(
      db, std::string("SELECT ") + kInstanceColumns + " FROM instances ORDER BY service, id");
  auto into = services.begin();
  while (rows.executeStep()) {
    Instance instance = read_instance_row(rows);
    while (into != services.end() && into->service < instance.service()) ++into;
    if (into == services.end() || into->service != instance.service()) continue;
    into->instances.push_back(std::move(instance));
  }
  return services;
}

}  // namespace

RegistryRead SqliteStore::read_registry_since(std::uint64_t after) {
  return with_reader(*readers_, "read_registry_since", [&](SQLite::Database& db) {
    RegistryRead read;
    // One read transaction: the sequence and every row from the same commit.
    SQLite::Transaction transaction(db);
    SQLite::Statement clock(db, "SELECT seq FROM registry_clock");
    read.sequence =
        clock.executeStep() ? static_cast<std::uint64_t>(clock.getColumn(0).getInt64()) : 0;
    SQLite::Statement oldest(db, "SELECT coalesce(min(seq), 0) FROM changes");
    oldest.executeStep();
    const auto first_kept = static_cast<std::uint64_t>(oldest.getColumn(0).getInt64());
    const bool reaches_back =
        after == read.sequence || (first_kept != 0 && first_kept <= after + 1);
    read.complete = after == 0 || after > read.sequence || !reaches_back;
    if (read.complete) {
      read.services = read_every_service(db);
    } else {
      SQLite::Statement changed(
          db, "SELECT DISTINCT service FROM changes WHERE seq > ? ORDER BY service");
      changed.bind(1, static_cast<std::int64_t>(after));
      while (changed.executeStep()) {
        ServiceSnapshot& snapshot = read.services.emplace_back();
        snapshot.service = changed.getColumn(0).getString();
        snapshot.version = current_version(db, snapshot.service);
        snapshot.lb = parse_lb_strategy(current_strategy(db, snapshot.service));
        SQLite::Statement rows(db, std::string("SELECT ") + kInstanceColumns +
                                       " FROM instances WHERE service = ? ORDER BY id");
        rows.bind(1, snapshot.service);
        while (rows.executeStep()) snapshot.instances.push_back(read_instance_row(rows));
      }
    }
    transaction.commit();
    return read;
  });
}

StoreStatus SqliteStore::status() {
  return {"sqlite", options_.path, schema_version()};
}

std::string SqliteStore::integrity_check() {
  return with_reader(*readers_, "integrity_check", [](SQLite::Database& db) {
    SQLite::Statement query(db, "PRAGMA integrity_check");
    std::string result;
    while (query.executeStep()) {
      if (!result.empty()) result += "; ";
      result += query.getColumn(0).getString();
    }
    return result;
  });
}

}  // namespace store
