// The store's write side: one transaction per batch on the writer's connection,
// in three round trips (the reads, every mutation's statements, COMMIT);
// connection handling and the errors a batch can end with. What each mutation
// does is planned in batch_plan.cpp.
#include "store/postgres/postgres_store.h"

#include <iterator>
#include <type_traits>

#include "store/postgres/batch_plan.h"
#include "store/postgres/pg_connection.h"
#include "store/postgres/pg_schema.h"

namespace store {
using namespace postgres;
namespace {

// A batch that failed as a whole. `retry`: nothing can have committed and
// running the transaction again may succeed (the connection was found dead
// before COMMIT was sent, or a serialisation failure).
struct BatchFailure {
  std::string reason;
  bool retry = false;
  bool isolate = false;  // a mutation failed: run the batch again, each under a savepoint
};

// A mutation of a batch run without savepoints failed (run_transaction).
struct MutationFailed {
  std::string reason;
};

// How often a batch runs again after a serialisation failure or deadlock; a
// connection found dead is retried once (then the server is likely down).
constexpr int kMaxSerialisationRetries = 3;
constexpr int kMaxConnectionRetries = 1;

void rollback_quietly(Connection& db) {
  if (!db.usable()) return;
  try {
    db.exec("ROLLBACK");
  } catch (const PgError&) {
  }
}

}  // namespace

PostgresStore::PostgresStore(PostgresOptions options)
    : options_(std::move(options)), location_(redact_database_url(options_.url)) {
  try {
    writer_ = std::make_unique<Connection>(options_);
    migrate(*writer_, location_);
    readers_ = std::make_unique<ConnectionPool>(options_, options_.read_connections);
  } catch (const PgError& error) {
    throw StoreError("cannot open database " + location_ + ": " + describe_failure(error));
  }
}

PostgresStore::~PostgresStore() = default;

namespace {

// The statements of `planned`, moved out (their checks stay behind).
std::vector<Statement> take_statements(std::vector<PlannedStatement>& planned) {
  std::vector<Statement> statements;
  statements.reserve(planned.size());
  for (PlannedStatement& entry : planned) statements.push_back(std::move(entry.statement));
  return statements;
}

}  // namespace

std::vector<MutationResult> PostgresStore::run_together(std::span<const Mutation> mutations,
                                                        BatchState& state,
                                                        std::uint64_t first_sequence,
                                                        TimePoint now) {
  std::vector<MutationResult> results;
  results.reserve(mutations.size());
  std::vector<PlannedStatement> planned;
  for (const Mutation& mutation : mutations) {
    PlannedMutation plan = plan_mutation(mutation, state, now);
    results.push_back(std::move(plan.result));
    std::move(plan.statements.begin(), plan.statements.end(), std::back_inserter(planned));
  }
  auto changes = change_statements(state, first_sequence, now, options_.change_retention);
  std::move(changes.begin(), changes.end(), std::back_inserter(planned));
  if (planned.empty()) return results;
  const auto statements = take_statements(planned);
  try {
    check_results(planned, writer_->exec_pipeline(statements), 0);
  } catch (const PgError& error) {
    // A lost connection takes the whole transaction with it.
    if (error.connection_lost()) throw;
    throw MutationFailed{describe_failure(error)};
  }
  return results;
}

std::vector<MutationResult> PostgresStore::run_isolated(std::span<const Mutation> mutations,
                                                        BatchState& state,
                                                        std::uint64_t first_sequence,
                                                        TimePoint now) {
  Connection& db = *writer_;
  std::vector<MutationResult> results;
  results.reserve(mutations.size());
  for (const Mutation& mutation : mutations) {
    BatchState before = state;  // this path is rare: the copy is affordable
    PlannedMutation plan = plan_mutation(mutation, state, now);
    if (plan.statements.empty()) {
      results.push_back(std::move(plan.result));
      continue;
    }
    std::vector<PlannedStatement> planned;
    planned.push_back({{"SAVEPOINT mutation", {}}, {}, {}});
    std::move(plan.statements.begin(), plan.statements.end(), std::back_inserter(planned));
    planned.push_back({{"RELEASE SAVEPOINT mutation", {}}, {}, {}});
    const auto statements = take_statements(planned);
    try {
      check_results(planned, db.exec_pipeline(statements), 0);
      results.push_back(std::move(plan.result));
    } catch (const PgError& error) {
      if (error.connection_lost()) throw;
      // Undoes this mutation only (its row locks and sequence number too).
      db.exec_script("ROLLBACK TO SAVEPOINT mutation; RELEASE SAVEPOINT mutation");
      state = std::move(before);
      results.push_back({Outcome::failed, 0, describe_failure(error), {}});
    }
  }
  auto changes = change_statements(state, first_sequence, now, options_.change_retention);
  if (!changes.empty()) {
    const auto statements = take_statements(changes);
    check_results(changes, db.exec_pipeline(statements), 0);
  }
  return results;
}

std::vector<MutationResult> PostgresStore::run_transaction(std::span<const Mutation> mutations,
                                                           TimePoint now, bool isolated,
                                                           std::span<const OutboxEntry> confirmed) {
  Connection& db = *writer_;
  std::vector<MutationResult> results;
  try {
    // One round trip opens the transaction, takes the clock's lock and reads
    // every row the batch decides on; one more runs all its statements.
    BatchState state =
        read_state(mutations, confirmed, db.exec_pipeline(read_statements(mutations, confirmed)));
    const std::uint64_t first_sequence = state.sequence;
    results = isolated ? run_isolated(mutations, state, first_sequence, now)
                       : run_together(mutations, state, first_sequence, now);
    for (auto& result : results) {
      if (result.outcome != Outcome::failed) result.observed_sequence = state.sequence;
    }
  } catch (const PgError& error) {
    rollback_quietly(db);
    // Nothing was committed, COMMIT was not even sent: safe to run again.
    throw BatchFailure{describe_failure(error), error.connection_lost() || error.retryable()};
  } catch (const MutationFailed& failure) {
    rollback_quietly(db);
    throw BatchFailure{failure.reason, true, true};
  } catch (const PlanMismatch& mismatch) {
    // Never expected (every writer holds the clock's lock): committing would
    // report what the database did not do. Read afresh and plan again.
    rollback_quietly(db);
    throw BatchFailure{mismatch.reason, true};
  }
  try {
    db.exec("COMMIT");
  } catch (const PgError& error) {
    if (error.connection_lost()) {
      // COMMIT was sent and its answer lost: it may or may not have committed,
      // so no retry (it could apply the batch twice).
      throw BatchFailure{
          "database unavailable: the connection was lost during COMMIT, the "
          "batch may or may not have been committed: " +
              std::string(error.what()),
          false};
    }
    // The server refused the commit and rolled it back.
    throw BatchFailure{describe_failure(error), error.retryable()};
  }
  return results;
}

std::vector<MutationResult> PostgresStore::apply_batch(std::span<const Mutation> mutations,
                                                       TimePoint now,
                                                       std::span<const OutboxEntry> confirmed) {
  if (mutations.empty() && confirmed.empty()) return {};
  std::lock_guard lock(write_mutex_);
  int connection_retries = 0;
  int serialisation_retries = 0;
  bool isolated = false;
  while (true) {
    std::string reason;
    bool lost = false;
    try {
      // A connection lost by an earlier batch (or found dead now) is replaced
      // here: writes recover by themselves once the server is back.
      if (!writer_ || !writer_->usable()) {
        writer_.reset();
        writer_ = std::make_unique<Connection>(options_);
      }
      return run_transaction(mutations, now, isolated, confirmed);
    } catch (const PgError& error) {  // reconnecting failed
      return std::vector<MutationResult>(
          mutations.size(), MutationResult{Outcome::failed, 0, describe_failure(error), {}});
    } catch (BatchFailure& failure) {
      reason = std::move(failure.reason);
      if (failure.isolate && !isolated) {
        isolated = true;  // once: the failing mutation then fails alone
        continue;
      }
      lost = !writer_->usable();
      const bool again =
          failure.retry && (lost ? connection_retries++ < kMaxConnectionRetries
                                 : serialisation_retries++ < kMaxSerialisationRetries);
      if (lost) writer_.reset();
      if (again) continue;
    }
    return std::vector<MutationResult>(mutations.size(),
                                       MutationResult{Outcome::failed, 0, reason, {}});
  }
}

}  // namespace store
