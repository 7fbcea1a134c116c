// The store's read side: one consistent read per call (one statement, so one
// snapshot), each on a connection of its own from the pool, so that a long
// read (a full resync) never holds up another. Ordering uses the "C" collation:
// byte order, as SQLite sorts, whatever locale the database was created with.
#include "store/postgres/pg_connection.h"
#include "store/postgres/pg_schema.h"
#include "store/postgres/postgres_store.h"

namespace store {
using namespace postgres;
namespace {

// Runs `read` on a connection of the pool. Any failure, opening the connection
// included, becomes a StoreError: "database unavailable: ..." when the server
// does not answer (the pool then replaces the connection).
template <typename Read>
auto with_reader(ConnectionPool& pool, const char* what, Read&& read) {
  try {
    auto connection = pool.acquire();
    return read(*connection);
  } catch (const StoreError&) {
    throw;
  } catch (const PgError& error) {
    const std::string reason = describe_failure(error);
    if (reason.rfind("database ", 0) == 0) throw StoreError(reason + " (" + what + ")");
    throw StoreError(std::string(what) + " failed: " + reason);
  } catch (const std::exception& error) {
    throw StoreError(std::string(what) + " failed: " + error.what());
  }
}

std::uint64_t unsigned_at(const Result& result, int row, int column) {
  return static_cast<std::uint64_t>(result.int64(row, column));
}

}  // namespace

ServiceSnapshot PostgresStore::read_service(std::string_view service) {
  return with_reader(*readers_, "read_service", [&](Connection& db) {
    // The service row and its instances in one statement: the version and the
    // rows come from the same commit. Always one row at least (the LEFT JOINs).
    const auto result =
        db.exec(std::string("SELECT s.version, s.lb_strategy, i.* FROM (SELECT $1::text AS name) n "
                            "LEFT JOIN services s ON s.name = n.name "
                            "LEFT JOIN LATERAL (SELECT ") +
                    kInstanceColumns +
                    " FROM instances WHERE instances.service = n.name) i ON true "
                    "ORDER BY i.id COLLATE \"C\"",
                {param(service)});
    ServiceSnapshot snapshot;
    snapshot.service = std::string(service);
    if (result.rows() == 0 || result.is_null(0, 0)) return snapshot;  // never used
    snapshot.version = unsigned_at(result, 0, 0);
    snapshot.lb = parse_lb_strategy(result.text(0, 1));
    for (int row = 0; row < result.rows(); ++row) {
      if (result.is_null(row, 2)) break;  // no instances
      snapshot.instances.push_back(read_instance_row(result, row, 2));
    }
    return snapshot;
  });
}

std::vector<ServiceSummary> PostgresStore::list_services() {
  return with_reader(*readers_, "list_services", [](Connection& db) {
    const auto result = db.exec(
        "SELECT s.name, s.version, count(i.id) FROM services s "
        "JOIN instances i ON i.service = s.name GROUP BY s.name, s.version "
        "ORDER BY s.name COLLATE \"C\"");
    std::vector<ServiceSummary> services;
    for (int row = 0; row < result.rows(); ++row) {
      services.push_back({result.string(row, 0), unsigned_at(result, row, 1),
                          static_cast<std::size_t>(result.int64(row, 2))});
    }
    return services;
  });
}

std::vector<Instance> PostgresStore::read_all_instances() {
  return with_reader(*readers_, "read_all_instances", [](Connection& db) {
    const auto result = db.exec(std::string("SELECT ") + kInstanceColumns +
                                " FROM instances ORDER BY service COLLATE \"C\", id COLLATE \"C\"");
    std::vector<Instance> instances;
    instances.reserve(static_cast<std::size_t>(result.rows()));
    for (int row = 0; row < result.rows(); ++row) {
      instances.push_back(read_instance_row(result, row));
    }
    return instances;
  });
}

std::vector<OutboxEntry> PostgresStore::read_outbox() {
  return with_reader(*readers_, "read_outbox", [](Connection& db) {
    const auto result =
        db.exec("SELECT service, version FROM cache_outbox ORDER BY service COLLATE \"C\"");
    std::vector<OutboxEntry> entries;
    for (int row = 0; row < result.rows(); ++row) {
      entries.push_back({result.string(row, 0), unsigned_at(result, row, 1)});
    }
    return entries;
  });
}

int PostgresStore::schema_version() {
  return with_reader(*readers_, "schema_version",
                     [](Connection& db) { return read_schema_version(db); });
}

std::vector<Change> PostgresStore::read_changes(std::uint64_t after, std::size_t limit) {
  return with_reader(*readers_, "read_changes", [&](Connection& db) {
    const auto result = db.exec(
        "SELECT seq, service, version, committed_at_ms FROM changes "
        "WHERE seq > $1 ORDER BY seq LIMIT $2",
        {param(static_cast<std::int64_t>(after)), param(static_cast<std::int64_t>(limit))});
    std::vector<Change> changes;
    for (int row = 0; row < result.rows(); ++row) {
      changes.push_back({unsigned_at(result, row, 0), result.string(row, 1),
                         unsigned_at(result, row, 2), from_ms(result.int64(row, 3))});
    }
    return changes;
  });
}

std::uint64_t PostgresStore::last_sequence() {
  return with_reader(*readers_, "last_sequence", [](Connection& db) {
    const auto result = db.exec("SELECT seq FROM registry_clock");
    return result.rows() > 0 ? unsigned_at(result, 0, 0) : std::uint64_t{0};
  });
}

namespace {

// The changed services with their rows (a LATERAL lookup per service: see
// batch_reads.cpp on generic plans). A service without instances has one row
// of NULLs.
const std::string kChangedServices =
    std::string(
        "SELECT s.name, s.version, s.lb_strategy, i.* FROM "
        "(SELECT DISTINCT service FROM changes WHERE seq > $1) c "
        "JOIN services s ON s.name = c.service LEFT JOIN LATERAL (SELECT ") +
    kInstanceColumns +
    " FROM instances WHERE instances.service = s.name) i ON true "
    "ORDER BY s.name COLLATE \"C\", i.id COLLATE \"C\"";
constexpr const char* kEveryService =
    "SELECT name, version, lb_strategy FROM services s WHERE EXISTS "
    "(SELECT 1 FROM instances i WHERE i.service = s.name) ORDER BY name COLLATE \"C\"";
const std::string kEveryInstance =
    std::string("SELECT ") + kInstanceColumns +
    " FROM instances ORDER BY service COLLATE \"C\", id COLLATE \"C\"";

// Rows of (name, version, lb[, instance columns]) in name order into snapshots.
std::vector<ServiceSnapshot> group_services(const Result& services, const Result* instances) {
  std::vector<ServiceSnapshot> snapshots;
  for (int row = 0; row < services.rows(); ++row) {
    if (snapshots.empty() || snapshots.back().service != services.text(row, 0)) {
      ServiceSnapshot& snapshot = snapshots.emplace_back();
      snapshot.service = services.string(row, 0);
      snapshot.version = unsigned_at(services, row, 1);
      snapshot.lb = parse_lb_strategy(services.text(row, 2));
    }
    if (!instances && !services.is_null(row, 3)) {
      snapshots.back().instances.push_back(read_instance_row(services, row, 3));
    }
  }
  if (!instances) return snapshots;
  auto into = snapshots.begin();
  for (int row = 0; row < instances->rows(); ++row) {
    Instance instance = read_instance_row(*instances, row);
    while (into != snapshots.end() && into->service < instance.service()) ++into;
    if (into == snapshots.end() || into->service != instance.service()) continue;
    into->instances.push_back(std::move(instance));
  }
  return snapshots;
}

}  // namespace

RegistryRead PostgresStore::read_registry_since(std::uint64_t after) {
  return with_reader(*readers_, "read_registry_since", [&](Connection& db) {
    // One snapshot for every statement: the sequence and every row agree.
    try {
      const auto head = db.exec_pipeline(
          std::vector<Statement>{{"BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", {}},
                                 {"SELECT seq FROM registry_clock", {}},
                                 {"SELECT coalesce(min(seq), 0) FROM changes", {}}});
      RegistryRead read;
      read.sequence = head[1].rows() > 0 ? unsigned_at(head[1], 0, 0) : 0;
      const std::uint64_t first_kept = unsigned_at(head[2], 0, 0);
      const bool reaches_back =
          after == read.sequence || (first_kept != 0 && first_kept <= after + 1);
      read.complete = after == 0 || after > read.sequence || !reaches_back;
      if (read.complete) {
        const auto rows = db.exec_pipeline(
            std::vector<Statement>{{kEveryService, {}}, {kEveryInstance, {}}, {"COMMIT", {}}});
        read.services = group_services(rows[0], &rows[1]);
      } else {
        const auto rows = db.exec_pipeline(std::vector<Statement>{
            {kChangedServices, {param(static_cast<std::int64_t>(after))}}, {"COMMIT", {}}});
        read.services = group_services(rows[0], nullptr);
      }
      return read;
    } catch (...) {
      // Never hand the connection back inside the transaction.
      if (db.usable()) {
        try {
          db.exec("ROLLBACK");
        } catch (const PgError&) {
        }
      }
      throw;
    }
  });
}

StoreStatus PostgresStore::status() {
  return {"postgresql", location_, schema_version()};
}

}  // namespace store
