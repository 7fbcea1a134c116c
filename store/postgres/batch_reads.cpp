// The batch's reads at its start, its change records at its end and the check
// of what the statements did against the plan (batch_plan.h).
#include <set>
#include <variant>

#include "store/postgres/batch_plan.h"
#include "store/postgres/pg_schema.h"

namespace store::postgres {
namespace {

Param param_u64(std::uint64_t value) {
  return param(static_cast<std::int64_t>(value));
}

// Every key is looked up on its own (a LATERAL subquery with LIMIT 1 cannot be
// flattened into a join): prepared statements run a generic plan, and one
// planned while a table was small (a fresh registry, before autoanalyze) would
// otherwise hash-join the whole table on every batch from then on.
const std::string kReadInstances =
    std::string(
        "SELECT r.* FROM unnest($1::text[], $2::text[]) AS k(service, id) "
        "CROSS JOIN LATERAL (SELECT ") +
    kInstanceColumns + " FROM instances WHERE service = k.service AND id = k.id LIMIT 1) AS r";
constexpr const char* kReadServices =
    "SELECT r.* FROM unnest($1::text[]) AS k(name) CROSS JOIN LATERAL "
    "(SELECT name, version, lb_strategy FROM services WHERE name = k.name LIMIT 1) AS r";
// Only entries at or below the confirmed version: a newer change recorded
// meanwhile still needs its own invalidation.
constexpr const char* kDeleteConfirmed =
    "DELETE FROM cache_outbox AS o USING unnest($1::text[], $2::bigint[]) AS c(service, version) "
    "WHERE o.service = c.service AND o.version <= c.version";
constexpr const char* kInsertChanges =
    "INSERT INTO changes (seq, service, version, committed_at_ms) "
    "SELECT c.seq, c.service, c.version, $4 "
    "FROM unnest($1::bigint[], $2::text[], $3::bigint[]) AS c(seq, service, version)";
constexpr const char* kAdvanceClock = "UPDATE registry_clock SET seq = $1";
constexpr const char* kRecordOutbox =
    "INSERT INTO cache_outbox (service, version) "
    "SELECT c.service, max(c.version) FROM unnest($1::text[], $2::bigint[]) AS c(service, version) "
    "GROUP BY c.service ON CONFLICT (service) DO UPDATE SET "
    "version = greatest(cache_outbox.version, excluded.version)";
constexpr const char* kPruneChanges = "DELETE FROM changes WHERE seq <= $1";
constexpr const char* kNotify = "SELECT pg_notify('discoveryd_changes', $1)";

// The instances and services the mutations name (RecordChecks names none: it
// decides nothing and its rows may be many).
struct Names {
  std::set<InstanceKey> instances;
  std::set<std::string> services;
};

Names names_of(std::span<const Mutation> mutations) {
  Names names;
  for (const Mutation& mutation : mutations) {
    std::visit(
        [&](const auto& m) {
          using T = std::decay_t<decltype(m)>;
          if constexpr (std::is_same_v<T, Upsert>) {
            names.instances.insert({m.registration.service, m.registration.id});
            names.services.insert(m.registration.service);
          } else if constexpr (!std::is_same_v<T, RecordChecks>) {
            names.instances.insert({m.service, m.id});
            names.services.insert(m.service);
          }
        },
        mutation);
  }
  return names;
}

}  // namespace

std::vector<Statement> read_statements(std::span<const Mutation> mutations,
                                       std::span<const OutboxEntry> confirmed) {
  // Take the clock's row lock first: every writer (of every daemon) then
  // acquires its row locks in the same order, so two batches cannot deadlock,
  // and nothing else writes the rows read here until COMMIT.
  std::vector<Statement> statements = {{"BEGIN", {}},
                                       {"SELECT seq FROM registry_clock FOR UPDATE", {}}};
  if (!confirmed.empty()) {
    std::vector<std::string_view> services;
    std::vector<std::int64_t> versions;
    for (const OutboxEntry& entry : confirmed) {
      services.push_back(entry.service);
      versions.push_back(static_cast<std::int64_t>(entry.version));
    }
    statements.push_back({kDeleteConfirmed, {text_array(services), bigint_array(versions)}});
  }
  const Names names = names_of(mutations);
  if (!names.instances.empty()) {
    std::vector<std::string_view> services, ids, service_names;
    for (const auto& [service, id] : names.instances) {
      services.push_back(service);
      ids.push_back(id);
    }
    for (const auto& service : names.services) service_names.push_back(service);
    statements.push_back({kReadInstances, {text_array(services), text_array(ids)}});
    statements.push_back({kReadServices, {text_array(service_names)}});
  }
  return statements;
}

BatchState read_state(std::span<const Mutation> mutations, std::span<const OutboxEntry> confirmed,
                      const std::vector<Result>& results) {
  BatchState state;
  // Held until COMMIT, so this plus the batch's own changes is the newest
  // sequence at commit (MutationResult::observed_sequence).
  state.sequence = static_cast<std::uint64_t>(results.at(1).int64(0, 0));
  const Names names = names_of(mutations);
  if (names.instances.empty()) return state;
  for (const auto& key : names.instances) state.instances.emplace(key, std::nullopt);
  const std::size_t first = confirmed.empty() ? 2 : 3;
  const Result& instances = results.at(first);
  for (int row = 0; row < instances.rows(); ++row) {
    const InstanceKey key{instances.string(row, 0), instances.string(row, 1)};
    try {
      state.instances[key] = read_instance_row(instances, row);
    } catch (const std::exception& error) {
      // A corrupt address or JSON: this instance's mutations fail, the others stand.
      state.unreadable[key] = error.what();
    }
  }
  const Result& services = results.at(first + 1);
  for (int row = 0; row < services.rows(); ++row) {
    state.services[services.string(row, 0)] = {static_cast<std::uint64_t>(services.int64(row, 1)),
                                               services.string(row, 2)};
  }
  return state;
}

std::vector<PlannedStatement> change_statements(const BatchState& state,
                                                std::uint64_t first_sequence, TimePoint now,
                                                std::uint64_t retention) {
  if (state.changes.empty()) return {};
  std::vector<std::int64_t> sequences, versions;
  std::vector<std::string_view> services;
  for (const Change& change : state.changes) {
    sequences.push_back(static_cast<std::int64_t>(change.sequence));
    services.push_back(change.service);
    versions.push_back(static_cast<std::int64_t>(change.version));
  }
  const auto count = static_cast<std::uint64_t>(state.changes.size());
  std::vector<PlannedStatement> statements = {
      {{kInsertChanges,
        {bigint_array(sequences), text_array(services), bigint_array(versions), param(to_ms(now))}},
       {},
       count},
      {{kAdvanceClock, {param_u64(state.sequence)}}, {}, 1},
      {{kRecordOutbox, {text_array(services), bigint_array(versions)}}, {}, {}},
  };
  // Pruned in steps, not per change: one range delete on the primary key at the
  // newest multiple of 1024 this batch passed (what pruning at each would leave).
  const std::uint64_t step = state.sequence - state.sequence % 1024;
  if (step > first_sequence && step > retention) {
    statements.push_back({{kPruneChanges, {param_u64(step - retention)}}, {}, {}});
  }
  // Queued with the transaction and delivered at its commit, in commit order;
  // listeners read the feed up to this sequence.
  statements.push_back({{kNotify, {param_u64(state.sequence)}}, {}, {}});
  return statements;
}

void check_results(std::span<const PlannedStatement> planned, const std::vector<Result>& results,
                   std::size_t first_result) {
  for (std::size_t i = 0; i < planned.size(); ++i) {
    const Result& result = results.at(first_result + i);
    const PlannedStatement& plan = planned[i];
    const auto disagree = [&](const std::string& what) {
      throw PlanMismatch{"the batch's plan disagrees with the database (" + what + " of \"" +
                         std::string(plan.statement.sql.substr(0, 60)) + "\")"};
    };
    if (plan.affects_rows && result.affected_rows() != *plan.affects_rows) {
      disagree(std::to_string(result.affected_rows()) + " rows instead of " +
               std::to_string(*plan.affects_rows));
    }
    if (plan.returns_version && (result.rows() != 1 || static_cast<std::uint64_t>(result.int64(
                                                           0, 0)) != *plan.returns_version)) {
      disagree("another version than " + std::to_string(*plan.returns_version));
    }
  }
}

}  // namespace store::postgres
