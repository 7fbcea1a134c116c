// The source of truth: service instances in a SQLite database (WAL mode).
//
// Contract (in the spirit of PowerDNS's DNSBackend):
//  - read_service() of a service with no instances returns a snapshot with an
//    empty instance list: "nothing registered" is not an error.
//  - StoreError is thrown when the database cannot be read or written (I/O error,
//    disk full, locked beyond the busy timeout). Callers answer 503 / SERVFAIL.
//    A failed write's error starts with what failed: "database full: ",
//    "database busy: ", "database I/O error: " or "database read-only: ".
//  - A failed write leaves nothing behind and the store usable: the next write
//    succeeds as soon as the space or the lock is back, without a restart.
//  - A mutation reported as applied has been committed durably (synchronous=FULL
//    by default): a crash of the process or the machine afterwards keeps it.
#pragma once

#include <mutex>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "store/model.h"

namespace SQLite {
class Database;
}

namespace store {

class ReadPool;

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

struct StoreOptions {
  std::string path;
  // FULL makes every acknowledged write survive power loss; NORMAL only process
  // crashes. Group commit (store::Writer) keeps FULL affordable.
  bool synchronous_full = true;
  // How long a write waits for another connection's lock before failing with
  // "database busy" (503). Keep it well under the HTTP request timeout.
  std::chrono::milliseconds busy_timeout{2000};
};

class SqliteStore {
 public:
  static constexpr int kLatestSchemaVersion = 4;

  // Opens (creating if needed) and migrates the database up to
  // target_schema_version. Throws StoreError if the file holds a newer schema
  // than this build knows, or cannot be opened. The target is a test hook for
  // producing databases of older versions.
  explicit SqliteStore(StoreOptions options, int target_schema_version = kLatestSchemaVersion);
  ~SqliteStore();
  SqliteStore(const SqliteStore&) = delete;
  SqliteStore& operator=(const SqliteStore&) = delete;

  // Applies the mutations in one transaction, each under its own savepoint so that
  // one failing mutation does not undo the others. One result per mutation. If the
  // commit itself fails, every result is `failed`. Every change also records an
  // outbox entry for its service in the same transaction; `confirmed` entries
  // (invalidations Redis acknowledged since) are deleted in it. Thread-safe.
  std::vector<MutationResult> apply(std::span<const Mutation> mutations, TimePoint now,
                                    std::span<const OutboxEntry> confirmed = {});
  // Invalidations not yet confirmed by the cache (start-up and Redis recovery).
  std::vector<OutboxEntry> read_outbox();

  // Reads are thread-safe and run concurrently with each other and with writes
  // (each on a read connection of its own, up to kMaxReadConnections at once;
  // more wait for one to be free). None of them waits for a write to commit.
  static constexpr std::size_t kMaxReadConnections = 4;

  // One service's instances in one consistent read.
  ServiceSnapshot read_service(std::string_view service);
  // Every service that has at least one instance.
  std::vector<ServiceSummary> list_services();
  // Every instance of every service, ordered by service then id (the health
  // checker's start-up and periodic resynchronisation).
  std::vector<Instance> read_all_instances();
  int schema_version();
  // Runs PRAGMA integrity_check; returns "ok" when the file is sound.
  std::string integrity_check();
  const std::string& path() const { return options_.path; }

 private:
  MutationResult apply_one(const Upsert& upsert, TimePoint now);
  MutationResult apply_one(const Deregister& deregister, TimePoint now);
  MutationResult apply_one(const Heartbeat& heartbeat, TimePoint now);
  MutationResult apply_one(const RemoveUnhealthy& removal, TimePoint now);
  MutationResult apply_one(const RecordChecks& checks, TimePoint now);
  MutationResult apply_one(const ReportLoad& report, TimePoint now);
  std::uint64_t bump_version(const std::string& service);
  // After a failed batch: leaves the write connection outside any transaction
  // (reopening it if need be), so that the next batch can succeed.
  void recover_write_connection();

  StoreOptions options_;
  std::mutex write_mutex_;
  std::unique_ptr<SQLite::Database> write_db_;
  // Read connections, one per concurrent read (store/read_pool.h).
  std::unique_ptr<ReadPool> readers_;
};

}  // namespace store
