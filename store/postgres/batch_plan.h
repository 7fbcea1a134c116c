// The writer's plan for one batch (postgres_store.cpp): which statements each
// mutation needs and what it results in, decided in memory from the rows the
// batch touches, read once at its start (read_statements). Same semantics as
// the SQLite store's mutations (sqlite_store.cpp): versions, renewals and the
// health-write guards read the same.
//
// Planning in memory is exact because every writer of every daemon takes the
// registry_clock row lock at BEGIN and holds it to COMMIT: nothing else writes
// these rows in between, so the versions and sequence numbers are known before
// the statements run, and the batch's statements can be sent in one pipeline
// instead of a round trip per decision. The statements still return what they
// did, and the writer checks it against the plan before it commits
// (check_results), so a plan that disagrees with the database never commits.
// Internal to store/postgres/.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "store/postgres/pg_connection.h"

namespace store::postgres {

struct ServiceRow {
  std::uint64_t version = 0;  // 0: no row yet
  std::string lb;             // "": unset
};

using InstanceKey = std::pair<std::string, std::string>;  // service, id

// What the batch knows: the rows it read at its start, as the mutations planned
// so far leave them.
struct BatchState {
  // Every instance the batch names: nullopt when there is no such row.
  std::map<InstanceKey, std::optional<Instance>> instances;
  // Rows that could not be read (a corrupt address or JSON): the reason. A
  // mutation of one fails alone.
  std::map<InstanceKey, std::string> unreadable;
  std::map<std::string, ServiceRow, std::less<>> services;
  std::uint64_t sequence = 0;   // the feed's newest sequence, as planned
  std::vector<Change> changes;  // the batch's changes, in order
};

// A statement and what it must report, checked before COMMIT.
struct PlannedStatement {
  Statement statement;
  std::optional<std::uint64_t> returns_version;  // its one row's first column
  std::optional<std::uint64_t> affects_rows;
};

struct PlannedMutation {
  MutationResult result;
  std::vector<PlannedStatement> statements;
};

// The statements that open the batch's transaction and read what it needs:
// BEGIN, the clock row's lock, the confirmed outbox entries' deletes, and the
// rows of every instance and service the mutations name (read_state takes
// their results). Empty reads are left out.
std::vector<Statement> read_statements(std::span<const Mutation> mutations,
                                       std::span<const OutboxEntry> confirmed);
// The state from read_statements' results (same order, same mutations).
BatchState read_state(std::span<const Mutation> mutations, std::span<const OutboxEntry> confirmed,
                      const std::vector<Result>& results);

// Plans `mutation` against `state` and updates the state as if it had run (its
// change and sequence number too). An unreadable row fails the mutation alone.
PlannedMutation plan_mutation(const Mutation& mutation, BatchState& state, TimePoint now);

// The statements that record state.changes: the feed rows, the clock, the
// outbox (newest version per service), the feed's pruning (at the same points
// as SQLite's: when a sequence that is a multiple of 1024 passes the retention)
// and the NOTIFY that wakes the other daemons at COMMIT. Empty without changes.
std::vector<PlannedStatement> change_statements(const BatchState& state,
                                                std::uint64_t first_sequence, TimePoint now,
                                                std::uint64_t retention);

// Throws PlanMismatch when a result is not what its statement planned.
struct PlanMismatch {
  std::string reason;
};
void check_results(std::span<const PlannedStatement> planned, const std::vector<Result>& results,
                   std::size_t first_result);

}  // namespace store::postgres
