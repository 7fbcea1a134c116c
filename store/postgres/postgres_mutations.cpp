// The mutations, each run inside its savepoint on the writer's connection
// (postgres_store.cpp). Same semantics as the SQLite store's (sqlite_store.cpp):
// versions, renewals and the health-write guards read the same.
#include <optional>

#include "store/postgres/pg_connection.h"
#include "store/postgres/pg_schema.h"
#include "store/postgres/postgres_store.h"

namespace store {
using namespace postgres;
namespace {

Param param(const std::string& text) {
  return postgres::param(std::string_view(text));
}
using postgres::param;

std::optional<Instance> find_instance(Connection& db, const std::string& service,
                                      const std::string& id) {
  // FOR UPDATE: the row cannot change between this read and the write below,
  // also not by another daemon.
  const auto result = db.exec(std::string("SELECT ") + kInstanceColumns +
                                  " FROM instances WHERE service = $1 AND id = $2 FOR UPDATE",
                              {param(service), param(id)});
  if (result.rows() == 0) return std::nullopt;
  return read_instance_row(result, 0);
}

std::uint64_t bump_version(Connection& db, const std::string& service) {
  const auto result = db.exec(
      "INSERT INTO services (name, version) VALUES ($1, 1) "
      "ON CONFLICT (name) DO UPDATE SET version = services.version + 1 RETURNING version",
      {param(service)});
  return static_cast<std::uint64_t>(result.int64(0, 0));
}

// A mutation that changed nothing (not_found, unchanged), reported at the
// service's current version.
MutationResult no_change(Connection& db, Outcome outcome, const std::string& service) {
  return {outcome, current_version(db, service), {}, {}};
}

void set_strategy(Connection& db, const std::string& service, LbStrategy strategy) {
  db.exec("UPDATE services SET lb_strategy = $1 WHERE name = $2",
          {param(to_string(strategy)), param(service)});
}

// An identical re-registration: no answer changes, but the instance proved it is
// alive, which clears its failures and outdates health writes based on the old
// renewal count. Returns the new count.
std::uint64_t renew(Connection& db, const Instance& existing) {
  db.exec(
      "UPDATE instances SET consecutive_failures = 0, renewals = renewals + 1 "
      "WHERE service = $1 AND id = $2",
      {param(existing.service()), param(existing.id())});
  return existing.renewals + 1;
}

// Bumps the service's version and inserts or rewrites the row, in one
// statement (one round trip; the service row's insert is visible to the
// instance's foreign key, checked at the end of the statement). A changed
// registration starts its health history afresh (the failures counted against
// an old address or check say nothing about the new one); it is a renewal too
// (a new row starts at 0). Returns the version.
std::uint64_t write_registration(Connection& db, const Registration& reg, TimePoint now) {
  const auto result = db.exec(
      std::string("WITH bump AS (INSERT INTO services (name, version) VALUES ($1, 1) "
                  "ON CONFLICT (name) DO UPDATE SET version = services.version + 1 "
                  "RETURNING version), row AS (INSERT INTO instances (") +
          kInstanceColumns +
          ") VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15,$16,NULL,NULL,0,NULL,0) "
          "ON CONFLICT (service, id) DO UPDATE SET address = excluded.address, "
          "port = excluded.port, tags = excluded.tags, meta = excluded.meta, "
          "weight = excluded.weight, check_type = excluded.check_type, "
          "check_path = excluded.check_path, check_port = excluded.check_port, "
          "check_interval_ms = excluded.check_interval_ms, "
          "check_timeout_ms = excluded.check_timeout_ms, "
          "check_ttl_ms = excluded.check_ttl_ms, check_failures = excluded.check_failures, "
          "updated_at_ms = excluded.updated_at_ms, consecutive_failures = 0, "
          "renewals = instances.renewals + 1) SELECT version FROM bump",
      {param(reg.service), param(reg.id), param(reg.address.to_string()),
       param(std::int64_t{reg.port}), param(tags_to_json(reg.tags)), param(meta_to_json(reg.meta)),
       param(std::int64_t{reg.weight}), param(to_string(reg.check.type)), param(reg.check.path),
       param(std::int64_t{reg.check.port}),
       param(static_cast<std::int64_t>(reg.check.interval.count())),
       param(static_cast<std::int64_t>(reg.check.timeout.count())),
       param(static_cast<std::int64_t>(reg.check.ttl.count())),
       param(std::int64_t{reg.check.failures}), param(to_ms(now)), param(to_ms(now))});
  return static_cast<std::uint64_t>(result.int64(0, 0));
}

}  // namespace

MutationResult PostgresStore::apply_one(const Upsert& upsert, TimePoint now) {
  Connection& db = *writer_;
  const Registration& reg = upsert.registration;
  auto existing = find_instance(db, reg.service, reg.id);
  // The strategy is service-wide (services.lb_strategy); last writer wins.
  std::optional<std::string> previous_lb;
  if (reg.lb) {
    const std::string stored = current_strategy(db, reg.service);
    if (stored != to_string(*reg.lb)) previous_lb = stored;
  }
  if (existing) existing->registration.lb = reg.lb;  // rows do not carry it
  if (existing && existing->registration == reg) {
    const std::uint64_t renewals = renew(db, *existing);
    if (!previous_lb) {
      auto result = no_change(db, Outcome::unchanged, reg.service);
      result.renewals = renewals;
      return result;
    }
    const std::uint64_t version = bump_version(db, reg.service);
    set_strategy(db, reg.service, *reg.lb);
    return {Outcome::updated, version, {}, previous_lb, renewals};
  }
  const std::uint64_t version = write_registration(db, reg, now);
  if (previous_lb) set_strategy(db, reg.service, *reg.lb);
  const Outcome outcome = existing ? Outcome::updated : Outcome::created;
  return {outcome, version, {}, previous_lb, existing ? existing->renewals + 1 : 0};
}

MutationResult PostgresStore::apply_one(const Deregister& deregister, TimePoint) {
  Connection& db = *writer_;
  // The delete and the version bump in one statement: the bump happens only if
  // a row went.
  const auto removed = db.exec(
      "WITH gone AS (DELETE FROM instances WHERE service = $1 AND id = $2 RETURNING id) "
      "INSERT INTO services (name, version) SELECT $1, 1 FROM gone "
      "ON CONFLICT (name) DO UPDATE SET version = services.version + 1 RETURNING version",
      {param(deregister.service), param(deregister.id)});
  if (removed.rows() == 0) return no_change(db, Outcome::not_found, deregister.service);
  return {Outcome::removed, static_cast<std::uint64_t>(removed.int64(0, 0)), {}, {}};
}

MutationResult PostgresStore::apply_one(const Heartbeat& heartbeat, TimePoint now) {
  Connection& db = *writer_;
  auto existing = find_instance(db, heartbeat.service, heartbeat.id);
  if (!existing) return no_change(db, Outcome::not_found, heartbeat.service);
  // A heartbeat is proof of life: it also clears the failure count, and counts as
  // a renewal so that a check record of an earlier probe cannot write it back.
  db.exec(
      "UPDATE instances SET last_heartbeat_at_ms = $1, consecutive_failures = 0, "
      "renewals = renewals + 1, load = coalesce($2::double precision, load) "
      "WHERE service = $3 AND id = $4",
      {param(to_ms(now)), param(heartbeat.load), param(heartbeat.service), param(heartbeat.id)});
  // Only the reported load can change answers (least-loaded ordering); a plain
  // heartbeat leaves the version, and so every cache, alone.
  const std::uint64_t renewals = existing->renewals + 1;
  if (heartbeat.load && existing->load != heartbeat.load) {
    return {Outcome::updated, bump_version(db, heartbeat.service), {}, {}, renewals};
  }
  auto result = no_change(db, Outcome::unchanged, heartbeat.service);
  result.renewals = renewals;
  return result;
}

MutationResult PostgresStore::apply_one(const RemoveUnhealthy& removal, TimePoint) {
  Connection& db = *writer_;
  auto existing = find_instance(db, removal.service, removal.id);
  if (!existing) return no_change(db, Outcome::not_found, removal.service);
  // Renewed (re-registered or heartbeat) since the probe: alive, it stays.
  if (existing->updated_at != removal.probed_updated_at ||
      existing->last_heartbeat_at != removal.probed_last_heartbeat_at ||
      existing->renewals != removal.probed_renewals) {
    return no_change(db, Outcome::unchanged, removal.service);
  }
  return apply_one(Deregister{removal.service, removal.id}, {});
}

MutationResult PostgresStore::apply_one(const RecordChecks& checks, TimePoint) {
  Connection& db = *writer_;
  // A count based on older renewals is stale: the renewal since cleared it (the
  // checker learns of it from the commit and counts afresh). The check time is
  // written regardless; an instance removed meanwhile simply matches no row.
  // One statement for the whole batch (the checker sends one record per
  // instance at most).
  if (checks.records.empty()) return {Outcome::unchanged, 0, {}, {}};
  std::vector<std::string_view> services, ids;
  std::vector<std::int64_t> checked_at, renewals, failures;
  for (const CheckRecord& record : checks.records) {
    services.push_back(record.service);
    ids.push_back(record.id);
    checked_at.push_back(to_ms(record.checked_at));
    renewals.push_back(static_cast<std::int64_t>(record.renewals));
    failures.push_back(record.consecutive_failures);
  }
  db.exec(
      "UPDATE instances AS i SET last_check_at_ms = r.checked_at, consecutive_failures = "
      "CASE WHEN i.renewals = r.renewals THEN r.failures ELSE i.consecutive_failures END "
      "FROM unnest($1::text[], $2::text[], $3::bigint[], $4::bigint[], $5::bigint[]) "
      "AS r(service, id, checked_at, renewals, failures) "
      "WHERE i.service = r.service AND i.id = r.id",
      {text_array(services), text_array(ids), bigint_array(checked_at), bigint_array(renewals),
       bigint_array(failures)});
  return {Outcome::unchanged, 0, {}, {}};
}

MutationResult PostgresStore::apply_one(const ReportLoad& report, TimePoint) {
  Connection& db = *writer_;
  auto existing = find_instance(db, report.service, report.id);
  if (!existing) return no_change(db, Outcome::not_found, report.service);
  if (existing->load == report.load) return no_change(db, Outcome::unchanged, report.service);
  db.exec("UPDATE instances SET load = $1 WHERE service = $2 AND id = $3",
          {param(report.load), param(report.service), param(report.id)});
  return {Outcome::updated, bump_version(db, report.service), {}, {}};
}

}  // namespace store
