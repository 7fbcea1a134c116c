// plan_mutation: each mutation's decision and statements (batch_plan.h). The
// batch's reads, its change records and the checks are in batch_reads.cpp.
#include <stdexcept>

#include "store/postgres/batch_plan.h"
#include "store/postgres/pg_schema.h"

namespace store::postgres {
namespace {

Param param(const std::string& text) {
  return postgres::param(std::string_view(text));
}
using postgres::param;

// A database time is stored in whole milliseconds: the state holds what a read
// would give back.
TimePoint stored(TimePoint time) {
  return from_ms(to_ms(time));
}

// Bumps the service's version and inserts or rewrites the row, in one statement
// (the service row's insert is visible to the instance's foreign key, checked at
// the end of the statement). A changed registration starts its health history
// afresh (the failures counted against an old address or check say nothing
// about the new one); it is a renewal too (a new row starts at 0).
const std::string kWriteRegistration =
    std::string(
        "WITH bump AS (INSERT INTO services (name, version) VALUES ($1, 1) "
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
    "renewals = instances.renewals + 1) SELECT version FROM bump";
constexpr const char* kBumpVersion =
    "INSERT INTO services (name, version) VALUES ($1, 1) "
    "ON CONFLICT (name) DO UPDATE SET version = services.version + 1 RETURNING version";
constexpr const char* kSetStrategy = "UPDATE services SET lb_strategy = $1 WHERE name = $2";
constexpr const char* kRenew =
    "UPDATE instances SET consecutive_failures = 0, renewals = renewals + 1 "
    "WHERE service = $1 AND id = $2";
// The delete and the version bump in one statement: the bump happens only if a
// row went.
constexpr const char* kDelete =
    "WITH gone AS (DELETE FROM instances WHERE service = $1 AND id = $2 RETURNING id) "
    "INSERT INTO services (name, version) SELECT $1, 1 FROM gone "
    "ON CONFLICT (name) DO UPDATE SET version = services.version + 1 RETURNING version";
constexpr const char* kHeartbeat =
    "UPDATE instances SET last_heartbeat_at_ms = $1, consecutive_failures = 0, "
    "renewals = renewals + 1, load = coalesce($2::double precision, load) "
    "WHERE service = $3 AND id = $4";
constexpr const char* kSetLoad = "UPDATE instances SET load = $1 WHERE service = $2 AND id = $3";
// Each record finds its row by key, then the row is updated by its ctid: the
// form whose generic plan stays an index lookup per record however small the
// table was when it was planned (see kReadInstances in batch_reads.cpp).
constexpr const char* kRecordChecks =
    "UPDATE instances AS i SET last_check_at_ms = r.checked_at, consecutive_failures = "
    "CASE WHEN i.renewals = r.renewals THEN r.failures ELSE i.consecutive_failures END "
    "FROM (SELECT k.checked_at, k.renewals, k.failures, found.ctid AS row_id "
    "FROM unnest($1::text[], $2::text[], $3::bigint[], $4::bigint[], $5::bigint[]) "
    "AS k(service, id, checked_at, renewals, failures) CROSS JOIN LATERAL "
    "(SELECT ctid FROM instances WHERE service = k.service AND id = k.id LIMIT 1) AS found) AS r "
    "WHERE i.ctid = r.row_id";

// One mutation's planning: the rows it reads and the statements it adds.
class Planner {
 public:
  Planner(BatchState& state, TimePoint now) : state_(state), now_(now) {}

  PlannedMutation operator()(const Upsert& upsert);
  PlannedMutation operator()(const Deregister& deregister);
  PlannedMutation operator()(const Heartbeat& heartbeat);
  PlannedMutation operator()(const RemoveUnhealthy& removal);
  PlannedMutation operator()(const RecordChecks& checks);
  PlannedMutation operator()(const ReportLoad& report);

 private:
  // The instance's row as planned so far; throws for an unreadable one.
  std::optional<Instance>& row(const std::string& service, const std::string& id) {
    const InstanceKey key{service, id};
    if (const auto bad = state_.unreadable.find(key); bad != state_.unreadable.end()) {
      throw std::runtime_error(bad->second);
    }
    const auto found = state_.instances.find(key);
    if (found == state_.instances.end()) {
      throw std::logic_error("the batch did not read " + service + "/" + id);
    }
    return found->second;
  }
  ServiceRow& service_row(const std::string& service) { return state_.services[service]; }
  // A mutation that changed nothing, at the service's current version.
  PlannedMutation no_change(Outcome outcome, const std::string& service) {
    return {{outcome, service_row(service).version, {}, {}}, {}};
  }
  // Adds the version bump (alone or as part of `sql`) and the change it records.
  std::uint64_t bump(PlannedMutation& plan, const std::string& service, std::string_view sql,
                     std::vector<Param> params) {
    ServiceRow& row = service_row(service);
    row.version += 1;
    plan.statements.push_back({{sql, std::move(params)}, row.version, {}});
    state_.sequence += 1;
    state_.changes.push_back({state_.sequence, service, row.version, now_});
    plan.result.sequence = state_.sequence;
    return row.version;
  }
  void add(PlannedMutation& plan, std::string_view sql, std::vector<Param> params) {
    plan.statements.push_back({{sql, std::move(params)}, {}, 1});
  }
  PlannedMutation write_registration(const Registration& reg, const std::optional<Instance>& old);

  BatchState& state_;
  TimePoint now_;
};

PlannedMutation Planner::operator()(const Upsert& upsert) {
  const Registration& reg = upsert.registration;
  std::optional<Instance>& existing = row(reg.service, reg.id);
  // The strategy is service-wide (services.lb_strategy); last writer wins.
  std::optional<std::string> previous_lb;
  const std::string stored_lb = service_row(reg.service).lb;
  if (reg.lb && stored_lb != to_string(*reg.lb)) previous_lb = stored_lb;
  if (existing) existing->registration.lb = reg.lb;  // rows do not carry it
  PlannedMutation plan;
  if (existing && existing->registration == reg) {
    // An identical re-registration: no answer changes, but the instance proved it
    // is alive, which clears its failures and outdates health writes based on the
    // old renewal count.
    add(plan, kRenew, {param(reg.service), param(reg.id)});
    existing->consecutive_failures = 0;
    plan.result.renewals = ++existing->renewals;
    if (!previous_lb) {
      plan.result.outcome = Outcome::unchanged;
      plan.result.service_version = service_row(reg.service).version;
      return plan;
    }
    plan.result.outcome = Outcome::updated;
    plan.result.service_version = bump(plan, reg.service, kBumpVersion, {param(reg.service)});
  } else {
    plan = write_registration(reg, existing);
    existing = Instance{reg,
                        existing ? existing->registered_at : stored(now_),
                        stored(now_),
                        existing ? existing->last_check_at : std::nullopt,
                        existing ? existing->last_heartbeat_at : std::nullopt,
                        0,
                        existing ? existing->load : std::nullopt,
                        plan.result.renewals};
  }
  if (previous_lb) {
    add(plan, kSetStrategy, {param(to_string(*reg.lb)), param(reg.service)});
    service_row(reg.service).lb = std::string(to_string(*reg.lb));
    plan.result.previous_lb = previous_lb;
  }
  return plan;
}

PlannedMutation Planner::write_registration(const Registration& reg,
                                            const std::optional<Instance>& old) {
  PlannedMutation plan;
  plan.result.outcome = old ? Outcome::updated : Outcome::created;
  plan.result.renewals = old ? old->renewals + 1 : 0;
  plan.result.service_version = bump(
      plan, reg.service, kWriteRegistration,
      {param(reg.service), param(reg.id), param(reg.address.to_string()),
       param(std::int64_t{reg.port}), param(tags_to_json(reg.tags)), param(meta_to_json(reg.meta)),
       param(std::int64_t{reg.weight}), param(to_string(reg.check.type)), param(reg.check.path),
       param(std::int64_t{reg.check.port}),
       param(static_cast<std::int64_t>(reg.check.interval.count())),
       param(static_cast<std::int64_t>(reg.check.timeout.count())),
       param(static_cast<std::int64_t>(reg.check.ttl.count())),
       param(std::int64_t{reg.check.failures}), param(to_ms(now_)), param(to_ms(now_))});
  return plan;
}

PlannedMutation Planner::operator()(const Deregister& deregister) {
  std::optional<Instance>& existing = row(deregister.service, deregister.id);
  if (!existing) return no_change(Outcome::not_found, deregister.service);
  PlannedMutation plan{{Outcome::removed, 0, {}, {}}, {}};
  plan.result.service_version =
      bump(plan, deregister.service, kDelete, {param(deregister.service), param(deregister.id)});
  plan.statements.back().affects_rows = 1;
  existing.reset();
  return plan;
}

PlannedMutation Planner::operator()(const Heartbeat& heartbeat) {
  std::optional<Instance>& existing = row(heartbeat.service, heartbeat.id);
  if (!existing) return no_change(Outcome::not_found, heartbeat.service);
  // A heartbeat is proof of life: it also clears the failure count, and counts as
  // a renewal so that a check record of an earlier probe cannot write it back.
  PlannedMutation plan = no_change(Outcome::unchanged, heartbeat.service);
  add(plan, kHeartbeat,
      {param(to_ms(now_)), param(heartbeat.load), param(heartbeat.service), param(heartbeat.id)});
  const bool load_changed = heartbeat.load && existing->load != heartbeat.load;
  existing->last_heartbeat_at = stored(now_);
  existing->consecutive_failures = 0;
  if (heartbeat.load) existing->load = heartbeat.load;
  plan.result.renewals = ++existing->renewals;
  // Only the reported load can change answers (least-loaded ordering); a plain
  // heartbeat leaves the version, and so every cache, alone.
  if (load_changed) {
    plan.result.outcome = Outcome::updated;
    plan.result.service_version =
        bump(plan, heartbeat.service, kBumpVersion, {param(heartbeat.service)});
  }
  return plan;
}

PlannedMutation Planner::operator()(const RemoveUnhealthy& removal) {
  const std::optional<Instance>& existing = row(removal.service, removal.id);
  if (!existing) return no_change(Outcome::not_found, removal.service);
  // Renewed (re-registered or heartbeat) since the probe: alive, it stays.
  if (existing->updated_at != removal.probed_updated_at ||
      existing->last_heartbeat_at != removal.probed_last_heartbeat_at ||
      existing->renewals != removal.probed_renewals) {
    return no_change(Outcome::unchanged, removal.service);
  }
  return (*this)(Deregister{removal.service, removal.id});
}

PlannedMutation Planner::operator()(const RecordChecks& checks) {
  // A count based on older renewals is stale: the renewal since cleared it (the
  // checker learns of it from the commit and counts afresh). The check time is
  // written regardless; an instance removed meanwhile simply matches no row.
  // One statement for the whole batch (the checker sends one record per
  // instance at most).
  PlannedMutation plan{{Outcome::unchanged, 0, {}, {}}, {}};
  if (checks.records.empty()) return plan;
  std::vector<std::string_view> services, ids;
  std::vector<std::int64_t> checked_at, renewals, failures;
  for (const CheckRecord& record : checks.records) {
    services.push_back(record.service);
    ids.push_back(record.id);
    checked_at.push_back(to_ms(record.checked_at));
    renewals.push_back(static_cast<std::int64_t>(record.renewals));
    failures.push_back(record.consecutive_failures);
    // Keep the state true for later mutations of the batch.
    const auto found = state_.instances.find({record.service, record.id});
    if (found == state_.instances.end() || !found->second) continue;
    found->second->last_check_at = stored(record.checked_at);
    if (found->second->renewals == record.renewals) {
      found->second->consecutive_failures = record.consecutive_failures;
    }
  }
  plan.statements.push_back({{kRecordChecks,
                              {text_array(services), text_array(ids), bigint_array(checked_at),
                               bigint_array(renewals), bigint_array(failures)}},
                             {},
                             {}});
  return plan;
}

PlannedMutation Planner::operator()(const ReportLoad& report) {
  std::optional<Instance>& existing = row(report.service, report.id);
  if (!existing) return no_change(Outcome::not_found, report.service);
  if (existing->load == report.load) return no_change(Outcome::unchanged, report.service);
  PlannedMutation plan{{Outcome::updated, 0, {}, {}}, {}};
  add(plan, kSetLoad, {param(report.load), param(report.service), param(report.id)});
  existing->load = report.load;
  plan.result.service_version = bump(plan, report.service, kBumpVersion, {param(report.service)});
  return plan;
}

}  // namespace

PlannedMutation plan_mutation(const Mutation& mutation, BatchState& state, TimePoint now) {
  // Each plan reads its row (row(), which throws for an unreadable one) before
  // it changes anything: a mutation that fails leaves the state as it was.
  try {
    Planner planner(state, now);
    return std::visit(planner, mutation);
  } catch (const std::logic_error&) {
    throw;
  } catch (const std::exception& error) {
    return {{Outcome::failed, 0, error.what(), {}}, {}};
  }
}

}  // namespace store::postgres
