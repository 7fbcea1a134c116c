// The store's write side: one transaction per batch on the writer's connection,
// each mutation under its own savepoint; connection handling and the errors a
// batch can end with. The mutations themselves are in postgres_mutations.cpp.
#include "store/postgres/postgres_store.h"

#include <type_traits>

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

std::uint64_t PostgresStore::record_change(const std::string& service, std::uint64_t version,
                                           TimePoint now) {
  // The clock row's lock (taken at BEGIN, see run_transaction) serialises the
  // writers of every daemon, so sequences commit in order; a rolled-back
  // savepoint rolls its number back too, so there are no gaps. One statement
  // (one round trip): the outbox entry, the tick and the feed row.
  const auto tick = writer_->exec(
      "WITH tick AS (UPDATE registry_clock SET seq = seq + 1 RETURNING seq), "
      "outbox AS (INSERT INTO cache_outbox (service, version) VALUES ($1, $2) "
      "ON CONFLICT (service) DO UPDATE SET version = greatest(cache_outbox.version, "
      "excluded.version)), "
      "feed AS (INSERT INTO changes (seq, service, version, committed_at_ms) "
      "SELECT seq, $1, $2, $3 FROM tick) "
      "SELECT seq FROM tick",
      {param(std::string_view(service)), param(static_cast<std::int64_t>(version)),
       param(to_ms(now))});
  const auto sequence = static_cast<std::uint64_t>(tick.int64(0, 0));
  if (sequence > options_.change_retention && sequence % 1024 == 0) {
    // Pruned in steps, not per change: one range delete on the primary key (the
    // same points as SQLite, so both keep the same feed for the same history).
    writer_->exec("DELETE FROM changes WHERE seq <= $1",
                  {param(static_cast<std::int64_t>(sequence - options_.change_retention))});
  }
  return sequence;
}

// When isolated, the mutation's savepoint is set by the caller (run_transaction:
// the previous one released and the next set in one round trip; COMMIT releases
// the last). When not, a failure ends the attempt (MutationFailed).
MutationResult PostgresStore::apply_mutation(const Mutation& mutation, TimePoint now,
                                             bool isolated) {
  try {
    MutationResult result = std::visit([&](const auto& m) { return apply_one(m, now); }, mutation);
    if (result.changed()) {
      result.sequence = record_change(service_of(mutation), result.service_version, now);
    }
    return result;
  } catch (const PgError& error) {
    // A lost connection takes the whole transaction with it.
    if (error.connection_lost()) throw;
    const std::string reason = describe_failure(error);
    if (!isolated) throw MutationFailed{reason};
    // Undoes this mutation only (its row locks and sequence number too); the
    // savepoint stays and is released before the next mutation.
    writer_->exec("ROLLBACK TO SAVEPOINT mutation");
    return {Outcome::failed, 0, reason, {}};
  } catch (const std::exception& error) {
    // A row that cannot be read back (a corrupt address or JSON): this mutation
    // fails, the others stand.
    if (!isolated) throw MutationFailed{error.what()};
    writer_->exec("ROLLBACK TO SAVEPOINT mutation");
    return {Outcome::failed, 0, error.what(), {}};
  }
}

std::vector<MutationResult> PostgresStore::run_transaction(std::span<const Mutation> mutations,
                                                           TimePoint now, bool isolated,
                                                           std::span<const OutboxEntry> confirmed) {
  std::vector<MutationResult> results;
  results.reserve(mutations.size());
  try {
    writer_->exec("BEGIN");
    // Take the clock's row lock first: every writer (of every daemon) then
    // acquires its row locks in the same order, so two batches cannot deadlock.
    const auto clock = writer_->exec("SELECT seq FROM registry_clock FOR UPDATE");
    // Held until COMMIT, so this plus our own changes is the newest sequence at
    // commit: what every result reflects (MutationResult::observed_sequence).
    std::uint64_t observed = static_cast<std::uint64_t>(clock.int64(0, 0));
    for (const OutboxEntry& entry : confirmed) {
      // Only entries at or below the confirmed version: a newer change recorded
      // meanwhile still needs its own invalidation.
      writer_->exec("DELETE FROM cache_outbox WHERE service = $1 AND version <= $2",
                    {param(std::string_view(entry.service)),
                     param(static_cast<std::int64_t>(entry.version))});
    }
    bool changed = false;
    for (const Mutation& mutation : mutations) {
      if (isolated) {
        writer_->exec_script(results.empty() ? "SAVEPOINT mutation"
                                             : "RELEASE SAVEPOINT mutation; SAVEPOINT mutation");
      }
      results.push_back(apply_mutation(mutation, now, isolated));
      if (results.back().changed()) {
        changed = true;
        observed = results.back().sequence;
      }
    }
    for (auto& result : results) {
      if (result.outcome != Outcome::failed) result.observed_sequence = observed;
    }
    if (changed) {
      // Queued with the transaction and delivered at its commit, in commit
      // order; listeners read the feed up to this sequence.
      writer_->exec("SELECT pg_notify('discoveryd_changes', $1)",
                    {param(static_cast<std::int64_t>(observed))});
    }
  } catch (const PgError& error) {
    rollback_quietly(*writer_);
    // Nothing was committed, COMMIT was not even sent: safe to run again.
    throw BatchFailure{describe_failure(error), error.connection_lost() || error.retryable()};
  } catch (const MutationFailed& failure) {
    rollback_quietly(*writer_);
    throw BatchFailure{failure.reason, true, true};
  }
  try {
    writer_->exec("COMMIT");
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
