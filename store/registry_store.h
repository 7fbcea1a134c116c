// The registry's source of truth, as an interface: what a mutation batch is,
// what its outcomes mean, how versions advance and which reads exist. The
// SQLite store (store/sqlite/) is one implementation; a networked database is
// meant to be another, so the contract allows for slow and failing reads and
// for a transaction that the implementation retries.
//
// Contract (in the spirit of PowerDNS's DNSBackend):
//  - A batch is applied in one transaction, each mutation under its own
//    savepoint: one mutation that fails does not undo the others. One result per
//    mutation, in order. If the commit itself fails, every result is `failed`
//    and nothing of the batch is visible to any reader, here or elsewhere.
//  - `unchanged` and `not_found` are successes that changed nothing: no version
//    moves, so no cache is invalidated.
//  - A mutation reported as applied is durable: a crash of the process (or the
//    machine, with the SQLite default synchronous=FULL) afterwards keeps it.
//  - Versions: every service has a version that moves up by at least one in
//    each committed batch that changes its answers (created, updated, removed)
//    and never moves backwards, even when its last instance goes and it comes
//    back; MutationResult::service_version is the version after the batch. The
//    caches fence on it (docs/architecture.md), so a version must never be
//    reused for different contents.
//  - Change feed: every change (created, updated, removed) gets a gap-free
//    sequence number in its own transaction (MutationResult::sequence, Change);
//    every daemon follows the feed to learn of the changes others made.
//  - Retries: an implementation may run a batch's transaction more than once
//    (a serialisation failure, a lost connection before COMMIT was sent); only
//    the attempt that committed produces the results, and every mutation is
//    written so that re-running it against the state it reads is correct.
//  - Reads may be slow (a network round trip) and may fail: they throw
//    StoreError. Nothing calls them on a latency-critical thread: DNS goes
//    through store::ServiceLookup (store/lookup.h), HTTP through read workers.
//    Reads are thread-safe, run concurrently with each other and with writes,
//    and never wait for a write to commit.
//  - read_service() of a service with no instances returns a snapshot with an
//    empty instance list: "nothing registered" is not an error.
//  - A failed write's error starts with what failed: "database full: ",
//    "database busy: ", "database I/O error: ", "database read-only: " or
//    "database unavailable: ". It leaves the store usable: the next write
//    succeeds as soon as the cause is gone, without a restart.
#pragma once

#include <chrono>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "store/health_shards.h"
#include "store/model.h"

namespace store {

class StoreError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Register or update. An identical registration changes no answer (outcome
// `unchanged`, no version bump, so no cache churn) but is a proof of life: it
// clears the failure count and counts as a renewal (Instance::renewals).
struct Upsert {
  Registration registration;
};
struct Deregister {
  std::string service;
  std::string id;
};
struct Heartbeat {
  std::string service;
  std::string id;
  std::optional<double> load;
};
// A load reported by a health probe (the X-Load header): records the load only,
// leaving last_heartbeat_at and the failure count alone. Bumps the version only
// when the load changes (least_loaded answers depend on it).
struct ReportLoad {
  std::string service;
  std::string id;
  double load = 0;
};
// The health checker's verdict: remove an instance that failed its checks. It is
// conditional on the instance being the one that was probed: if it re-registered
// (updated_at moved, or an identical registration), or sent a heartbeat
// (last_heartbeat_at moved) since, its renewals moved: it is alive again and
// stays (outcome `unchanged`).
struct RemoveUnhealthy {
  std::string service;
  std::string id;
  TimePoint probed_updated_at;
  std::optional<TimePoint> probed_last_heartbeat_at;
  std::uint64_t probed_renewals = 0;
};
// Health bookkeeping, written in batches (one per second, say) so that probing
// 100k instances does not mean thousands of transactions a second. It does not
// change answers, so it does not bump versions.
// The failure count is written only if the instance's renewals are still
// `renewals` (those the count was based on): a heartbeat or re-registration
// committed since cleared it, and a record of an older probe, still queued, must
// not write the old count back. The check time is always written.
struct CheckRecord {
  std::string service;
  std::string id;
  TimePoint checked_at;
  std::uint32_t consecutive_failures = 0;
  std::uint64_t renewals = 0;
};
struct RecordChecks {
  std::vector<CheckRecord> records;
};
using Mutation =
    std::variant<Upsert, Deregister, Heartbeat, RemoveUnhealthy, RecordChecks, ReportLoad>;
// The service a mutation changes (empty for RecordChecks, which spans services
// and changes no answer).
const std::string& service_of(const Mutation& mutation);

enum class Outcome {
  created,    // a new instance was inserted
  updated,    // an existing instance changed
  unchanged,  // the mutation matched the stored state (still a success)
  removed,    // the instance was deleted
  not_found,  // the instance did not exist; nothing changed
  failed,     // the database refused the write; nothing changed (see error)
};
std::string_view to_string(Outcome outcome);

struct MutationResult {
  Outcome outcome = Outcome::failed;
  std::uint64_t service_version = 0;  // the service's version after the mutation
  std::string error;                  // only for failed
  // Upsert only: the service's strategy before this registration changed it
  // ("" = it was unset); nullopt when the strategy did not change.
  std::optional<std::string> previous_lb;
  // Upsert and Heartbeat that found or made the instance: its renewals after this
  // mutation (the health checker bases its next writes on it).
  std::uint64_t renewals = 0;
  // When changed(): the change's sequence number in the change feed.
  std::uint64_t sequence = 0;
  // Unless failed: the newest sequence committed when the batch committed (its
  // own changes included), i.e. the state this result reflects. The writer
  // acknowledges only once every live daemon applied it (store/writer.h), so
  // even an `unchanged` answer is never ahead of what other daemons serve.
  std::uint64_t observed_sequence = 0;
  bool changed() const {
    return outcome == Outcome::created || outcome == Outcome::updated ||
           outcome == Outcome::removed;
  }
};

// A cache invalidation that must reach Redis: written in the same transaction as
// the change it belongs to, deleted once Redis confirmed it. See
// docs/architecture.md, "No lost invalidation".
struct OutboxEntry {
  std::string service;
  std::uint64_t version = 0;
  friend bool operator==(const OutboxEntry&, const OutboxEntry&) = default;
};

// One entry of the change feed: the service whose answers changed and its
// version after the change. Sequence numbers start at 1, are gap-free, and
// commit in order: a reader that has applied every change up to N and then
// reads the changes after N misses none.
struct Change {
  std::uint64_t sequence = 0;
  std::string service;
  std::uint64_t version = 0;
  TimePoint committed_at{};
  friend bool operator==(const Change&, const Change&) = default;
};

// A daemon's membership row (docs/architecture.md, "Fresh after every
// acknowledgement"): its lease and the newest sequence its memory reflects.
struct MemberReport {
  std::string id;
  std::string endpoints;  // for operators: where its DNS and HTTP listen
  std::uint64_t applied = 0;
  std::chrono::milliseconds lease{0};
};
struct Member {
  std::string id;
  std::string endpoints;
  std::uint64_t applied = 0;
  // Its lease has not run out, by the database's clock (SQLite: this host's).
  bool live = false;
  TimePoint lease_until{};
};

// What /v1/status reports about the database.
struct StoreStatus {
  std::string backend;   // "sqlite"
  std::string location;  // the file, or the server, without credentials
  int schema_version = 0;
};

// The registry as of one sequence of the change feed, read in one transaction:
// a zone transfer's serial and its contents must agree (xfr/).
struct RegistryRead {
  std::uint64_t sequence = 0;  // every service below is as of this change
  // Every service with instances is below, not only the changed ones.
  bool complete = false;
  // Ordered by name. A changed service that has no instances left has none.
  std::vector<ServiceSnapshot> services;
};

class RegistryStore {
 public:
  virtual ~RegistryStore() = default;

  // Applies the mutations in one transaction (see the contract above). Every
  // change also records an outbox entry for its service in the same
  // transaction; `confirmed` entries (invalidations the cache acknowledged
  // since) are deleted in it. Thread-safe; the group-commit writer
  // (store/writer.h) is the only caller in the daemon.
  std::vector<MutationResult> apply(std::span<const Mutation> mutations, TimePoint now,
                                    std::span<const OutboxEntry> confirmed = {}) {
    return apply_batch(mutations, now, confirmed);
  }
  // Invalidations not yet confirmed by the cache (start-up and Redis recovery).
  virtual std::vector<OutboxEntry> read_outbox() = 0;

  // One service's instances in one consistent read.
  virtual ServiceSnapshot read_service(std::string_view service) = 0;
  // Every service that has at least one instance.
  virtual std::vector<ServiceSummary> list_services() = 0;
  // Every instance of every service, ordered by service then id (the health
  // checker's start-up and periodic resynchronisation).
  virtual std::vector<Instance> read_all_instances() = 0;
  // A round trip to the database: throws StoreError when it does not answer.
  virtual StoreStatus status() = 0;

  // The change feed (see Change): at most `limit` changes after `after`, in
  // order. Older changes are pruned (StoreOptions::change_retention for
  // SQLite): a reader that finds the first change it gets is not after + 1 has
  // fallen behind the retention and must reread everything.
  virtual std::vector<Change> read_changes(std::uint64_t after, std::size_t limit) = 0;
  // The sequence number of the newest committed change (0: none yet).
  virtual std::uint64_t last_sequence() = 0;
  // The services changed after `after`, as of the newest sequence, in one
  // transaction; every service (complete) when `after` is 0, ahead of the
  // feed, or older than what the feed still holds.
  virtual RegistryRead read_registry_since(std::uint64_t after) = 0;

  // Membership: creates or renews the member's row (lease until the database's
  // now + lease, its applied sequence) and returns the newest committed
  // sequence as of that write. Thread-safe; not on the writer's transaction, so
  // it never waits behind a batch for long. Throws StoreError.
  virtual std::uint64_t renew_member(const MemberReport& report) = 0;
  // A clean shutdown: writers stop waiting for this member at once.
  virtual void remove_member(std::string_view id) = 0;
  // Every member row, with `live` computed by the database's clock.
  virtual std::vector<Member> read_members() = 0;

  // Sharded health checks (store/health_shards.h): in one transaction, reads
  // every shard row and the live members (by the database's clock), applies
  // plan_shards for `member` and writes its updates; returns what it left
  // `member` with. Thread-safe, on the membership connection. Throws StoreError.
  virtual ShardView balance_shards(std::string_view member, const ShardSet& handoff) = 0;
  // Every shard row, by shard number (status and tests).
  virtual std::vector<ShardRow> read_shards() = 0;

 protected:
  virtual std::vector<MutationResult> apply_batch(std::span<const Mutation> mutations,
                                                  TimePoint now,
                                                  std::span<const OutboxEntry> confirmed) = 0;
};

}  // namespace store
