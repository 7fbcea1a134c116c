#include "store/sqlite/sqlite_store.h"

#include <SQLiteCpp/SQLiteCpp.h>
#include <sqlite3.h>

#include <sys/resource.h>
#include <sys/statvfs.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "store/duration.h"
#include "store/sqlite/read_pool.h"
#include "store/sqlite/sqlite_schema.h"

namespace store {
using namespace sqlite_schema;
namespace {

// Below this much free space a failed write is put down to a full file system.
constexpr std::uintmax_t kNearlyFullBytes = 1 << 20;

// Why a write to `path` (or its WAL) failed for lack of space, if it did. SQLite
// maps only ENOSPC to SQLITE_FULL: a file-size limit (EFBIG) or a quota (EDQUOT)
// arrive as a plain I/O error whose OS error is not always kept, so look.
std::optional<std::string> space_exhausted(const std::string& path) {
  rlimit limit{};
  if (::getrlimit(RLIMIT_FSIZE, &limit) == 0 && limit.rlim_cur != RLIM_INFINITY) {
    for (const char* suffix : {"", "-wal"}) {
      std::error_code ignored;
      const auto size = std::filesystem::file_size(path + suffix, ignored);
      // A write refused by the limit leaves its file at or beyond the limit.
      if (!ignored && size >= limit.rlim_cur) {
        return "file size limit (ulimit -f) of " + std::to_string(limit.rlim_cur) +
               " bytes reached";
      }
    }
  }
  struct statvfs file_system {};
  const auto directory = std::filesystem::path(path).parent_path();
  if (::statvfs(directory.empty() ? "." : directory.c_str(), &file_system) == 0 &&
      static_cast<std::uintmax_t>(file_system.f_bavail) * file_system.f_frsize < kNearlyFullBytes) {
    return "no space left on " + (directory.empty() ? std::string(".") : directory.string());
  }
  return std::nullopt;
}

// Names a failed write by what an operator does about it: free space ("database
// full"), find who holds the lock ("database busy"), check the disk ("database
// I/O error"). Call it right after the failure: the OS error is the connection's
// last one.
std::string describe_failure(SQLite::Database& db, const std::string& path,
                             const std::exception& error) {
  const auto* sqlite_error = dynamic_cast<const SQLite::Exception*>(&error);
  if (!sqlite_error) return error.what();
  const std::string message = error.what();
  const int system_errno = sqlite3_system_errno(db.getHandle());
  const auto with_cause = [&](const std::string& prefix, const std::string& cause) {
    if (!cause.empty()) return prefix + message + " (" + cause + ")";
    if (system_errno == 0) return prefix + message;
    return prefix + message + " (" + std::strerror(system_errno) + ")";
  };
  switch (sqlite_error->getErrorCode() & 0xff) {
    case SQLITE_FULL:
      return with_cause("database full: ", space_exhausted(path).value_or(""));
    case SQLITE_IOERR:
      if (system_errno == ENOSPC || system_errno == EFBIG || system_errno == EDQUOT) {
        return with_cause("database full: ", "");
      }
      if (auto cause = space_exhausted(path)) return with_cause("database full: ", *cause);
      return with_cause("database I/O error: ", "");
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
      return "database busy: " + message + " (another connection held the write lock " +
             "for longer than the busy timeout)";
    case SQLITE_READONLY:
      return with_cause("database read-only: ", "");
    default:
      return message;
  }
}

// Inside a transaction still? SQLite rolls a whole transaction back by itself
// after some I/O and disk-full errors, not only the failing statement.
bool in_transaction(SQLite::Database& db) {
  return sqlite3_get_autocommit(db.getHandle()) == 0;
}

std::optional<Instance> find_instance(SQLite::Database& db, const std::string& service,
                                      const std::string& id) {
  SQLite::Statement query(db, std::string("SELECT ") + kInstanceColumns +
                                  " FROM instances WHERE service = ? AND id = ?");
  query.bind(1, service);
  query.bind(2, id);
  if (!query.executeStep()) return std::nullopt;
  return read_instance_row(query);
}

}  // namespace

SqliteStore::SqliteStore(StoreOptions options, int target_schema_version)
    : options_(std::move(options)) {
  try {
    write_db_ = open_connection(options_);
    migrate(*write_db_, options_.path, target_schema_version);
    readers_ = std::make_unique<ReadPool>(kMaxReadConnections,
                                          [this] { return open_connection(options_); });
  } catch (const SQLite::Exception& error) {
    throw StoreError("cannot open database " + options_.path + ": " + error.what());
  }
}

SqliteStore::~SqliteStore() = default;

std::uint64_t SqliteStore::bump_version(const std::string& service) {
  SQLite::Statement bump(*write_db_,
                         "INSERT INTO services (name, version) VALUES (?, 1) "
                         "ON CONFLICT(name) DO UPDATE SET version = version + 1 "
                         "RETURNING version");
  bump.bind(1, service);
  bump.executeStep();
  return static_cast<std::uint64_t>(bump.getColumn(0).getInt64());
}

std::uint64_t SqliteStore::record_change(const std::string& service, std::uint64_t version,
                                         TimePoint now) {
  // The clock row's update serialises writers, so sequences commit in order;
  // a rolled-back change rolls its number back too, so there are no gaps.
  SQLite::Statement tick(*write_db_, "UPDATE registry_clock SET seq = seq + 1 RETURNING seq");
  tick.executeStep();
  const auto sequence = static_cast<std::uint64_t>(tick.getColumn(0).getInt64());
  tick.reset();
  SQLite::Statement insert(
      *write_db_,
      "INSERT INTO changes (seq, service, version, committed_at_ms) VALUES (?, ?, ?, ?)");
  insert.bind(1, static_cast<std::int64_t>(sequence));
  insert.bind(2, service);
  insert.bind(3, static_cast<std::int64_t>(version));
  insert.bind(4, to_ms(now));
  insert.exec();
  if (sequence > options_.change_retention && sequence % 1024 == 0) {
    // Pruned in steps, not per change: one range delete on the primary key.
    SQLite::Statement prune(*write_db_, "DELETE FROM changes WHERE seq <= ?");
    prune.bind(1, static_cast<std::int64_t>(sequence - options_.change_retention));
    prune.exec();
  }
  return sequence;
}

namespace {
// A mutation that changed nothing (not_found, unchanged), reported at the
// service's current version.
MutationResult no_change(SQLite::Database& db, Outcome outcome, const std::string& service) {
  return {outcome, current_version(db, service), {}, {}};
}
void set_strategy(SQLite::Database& db, const std::string& service, LbStrategy strategy) {
  SQLite::Statement update(db, "UPDATE services SET lb_strategy = ? WHERE name = ?");
  update.bind(1, std::string(to_string(strategy)));
  update.bind(2, service);
  update.exec();
}
// An identical re-registration: no answer changes, but the instance proved it is
// alive, which clears its failures and outdates health writes based on the old
// renewal count. Returns the new count.
std::uint64_t renew(SQLite::Database& db, const Instance& existing) {
  SQLite::Statement update(db,
                           "UPDATE instances SET consecutive_failures = 0, renewals = renewals + 1 "
                           "WHERE service = ? AND id = ?");
  update.bind(1, existing.service());
  update.bind(2, existing.id());
  update.exec();
  return existing.renewals + 1;
}
}  // namespace

MutationResult SqliteStore::apply_one(const Upsert& upsert, TimePoint now) {
  const Registration& reg = upsert.registration;
  auto existing = find_instance(*write_db_, reg.service, reg.id);
  // The strategy is service-wide (services.lb_strategy); last writer wins.
  std::optional<std::string> previous_lb;
  if (reg.lb) {
    const std::string stored = current_strategy(*write_db_, reg.service);
    if (stored != to_string(*reg.lb)) previous_lb = stored;
  }
  if (existing) existing->registration.lb = reg.lb;  // rows do not carry it
  if (existing && existing->registration == reg) {
    const std::uint64_t renewals = renew(*write_db_, *existing);
    if (!previous_lb) {
      auto result = no_change(*write_db_, Outcome::unchanged, reg.service);
      result.renewals = renewals;
      return result;
    }
    const std::uint64_t version = bump_version(reg.service);
    set_strategy(*write_db_, reg.service, *reg.lb);
    return {Outcome::updated, version, {}, previous_lb, renewals};
  }
  // A changed registration starts its health history afresh: the failures counted
  // against an old address or check say nothing about the new one. It is a renewal
  // too (a new row starts at 0).
  SQLite::Statement write(
      *write_db_,
      std::string("INSERT INTO instances (") + kInstanceColumns +
          ") VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,NULL,NULL,0,NULL,0) "
          "ON CONFLICT(service, id) DO UPDATE SET address = excluded.address, "
          "port = excluded.port, tags = excluded.tags, meta = excluded.meta, "
          "weight = excluded.weight, check_type = excluded.check_type, "
          "check_path = excluded.check_path, check_port = excluded.check_port, "
          "check_interval_ms = excluded.check_interval_ms, "
          "check_timeout_ms = excluded.check_timeout_ms, check_ttl_ms = excluded.check_ttl_ms, "
          "check_failures = excluded.check_failures, updated_at_ms = excluded.updated_at_ms, "
          "consecutive_failures = 0, renewals = renewals + 1");
  const std::uint64_t version = bump_version(reg.service);
  int column = 1;
  write.bind(column++, reg.service);
  write.bind(column++, reg.id);
  write.bind(column++, reg.address.to_string());
  write.bind(column++, reg.port);
  write.bind(column++, tags_to_json(reg.tags));
  write.bind(column++, meta_to_json(reg.meta));
  write.bind(column++, reg.weight);
  write.bind(column++, std::string(to_string(reg.check.type)));
  write.bind(column++, reg.check.path);
  write.bind(column++, reg.check.port);
  write.bind(column++, static_cast<std::int64_t>(reg.check.interval.count()));
  write.bind(column++, static_cast<std::int64_t>(reg.check.timeout.count()));
  write.bind(column++, static_cast<std::int64_t>(reg.check.ttl.count()));
  write.bind(column++, static_cast<std::int64_t>(reg.check.failures));
  write.bind(column++, to_ms(now));
  write.bind(column++, to_ms(now));
  write.exec();
  if (previous_lb) set_strategy(*write_db_, reg.service, *reg.lb);
  const Outcome outcome = existing ? Outcome::updated : Outcome::created;
  return {outcome, version, {}, previous_lb, existing ? existing->renewals + 1 : 0};
}

MutationResult SqliteStore::apply_one(const Deregister& deregister, TimePoint) {
  SQLite::Statement remove(*write_db_, "DELETE FROM instances WHERE service = ? AND id = ?");
  remove.bind(1, deregister.service);
  remove.bind(2, deregister.id);
  if (remove.exec() == 0) {
    return no_change(*write_db_, Outcome::not_found, deregister.service);
  }
  return {Outcome::removed, bump_version(deregister.service), {}, {}};
}

MutationResult SqliteStore::apply_one(const Heartbeat& heartbeat, TimePoint now) {
  auto existing = find_instance(*write_db_, heartbeat.service, heartbeat.id);
  if (!existing) {
    return no_change(*write_db_, Outcome::not_found, heartbeat.service);
  }
  // A heartbeat is proof of life: it also clears the failure count, and counts as
  // a renewal so that a check record of an earlier probe cannot write it back.
  SQLite::Statement beat(*write_db_,
                         "UPDATE instances SET last_heartbeat_at_ms = ?, consecutive_failures = 0, "
                         "renewals = renewals + 1, load = coalesce(?, load) "
                         "WHERE service = ? AND id = ?");
  beat.bind(1, to_ms(now));
  if (heartbeat.load) {
    beat.bind(2, *heartbeat.load);
  } else {
    beat.bind(2);
  }
  beat.bind(3, heartbeat.service);
  beat.bind(4, heartbeat.id);
  beat.exec();
  // Only the reported load can change answers (least-loaded ordering); a plain
  // heartbeat leaves the version, and so every cache, alone.
  const std::uint64_t renewals = existing->renewals + 1;
  if (heartbeat.load && existing->load != heartbeat.load) {
    return {Outcome::updated, bump_version(heartbeat.service), {}, {}, renewals};
  }
  auto result = no_change(*write_db_, Outcome::unchanged, heartbeat.service);
  result.renewals = renewals;
  return result;
}

MutationResult SqliteStore::apply_one(const RemoveUnhealthy& removal, TimePoint) {
  auto existing = find_instance(*write_db_, removal.service, removal.id);
  if (!existing) return no_change(*write_db_, Outcome::not_found, removal.service);
  if (existing->updated_at != removal.probed_updated_at ||
      existing->last_heartbeat_at != removal.probed_last_heartbeat_at ||
      existing->renewals != removal.probed_renewals) {
    return no_change(*write_db_, Outcome::unchanged, removal.service);
  }
  return apply_one(Deregister{removal.service, removal.id}, {});
}

MutationResult SqliteStore::apply_one(const RecordChecks& checks, TimePoint) {
  // A count based on older renewals is stale: the renewal since cleared it (the
  // checker learns of it from the commit and counts afresh).
  SQLite::Statement update(*write_db_,
                           "UPDATE instances SET last_check_at_ms = ?, consecutive_failures = "
                           "CASE WHEN renewals = ? THEN ? ELSE consecutive_failures END "
                           "WHERE service = ? AND id = ?");
  for (const CheckRecord& record : checks.records) {
    update.bind(1, to_ms(record.checked_at));
    update.bind(2, static_cast<std::int64_t>(record.renewals));
    update.bind(3, static_cast<std::int64_t>(record.consecutive_failures));
    update.bind(4, record.service);
    update.bind(5, record.id);
    update.exec();  // an instance removed meanwhile simply matches no row
    update.reset();
  }
  return {Outcome::unchanged, 0, {}, {}};
}

MutationResult SqliteStore::apply_one(const ReportLoad& report, TimePoint) {
  auto existing = find_instance(*write_db_, report.service, report.id);
  if (!existing) return no_change(*write_db_, Outcome::not_found, report.service);
  if (existing->load == report.load) {
    return no_change(*write_db_, Outcome::unchanged, report.service);
  }
  SQLite::Statement update(*write_db_,
                           "UPDATE instances SET load = ? WHERE service = ? AND id = ?");
  update.bind(1, report.load);
  update.bind(2, report.service);
  update.bind(3, report.id);
  update.exec();
  return {Outcome::updated, bump_version(report.service), {}, {}};
}

std::vector<MutationResult> SqliteStore::apply_batch(std::span<const Mutation> mutations,
                                                     TimePoint now,
                                                     std::span<const OutboxEntry> confirmed) {
  std::vector<MutationResult> results;
  results.reserve(mutations.size());
  std::lock_guard lock(write_mutex_);
  try {
    SQLite::Transaction transaction(*write_db_, SQLite::TransactionBehavior::IMMEDIATE);
    if (!confirmed.empty()) {
      // Only entries at or below the confirmed version: a newer change recorded
      // meanwhile still needs its own invalidation.
      SQLite::Statement clear(*write_db_,
                              "DELETE FROM cache_outbox WHERE service = ? AND version <= ?");
      for (const OutboxEntry& entry : confirmed) {
        clear.bind(1, entry.service);
        clear.bind(2, static_cast<std::int64_t>(entry.version));
        clear.exec();
        clear.reset();
      }
    }
    SQLite::Statement record_outbox(
        *write_db_,
        "INSERT INTO cache_outbox (service, version) VALUES (?, ?) ON CONFLICT(service) "
        "DO UPDATE SET version = max(version, excluded.version)");
    for (const Mutation& mutation : mutations) {
      write_db_->exec("SAVEPOINT mutation");
      try {
        results.push_back(std::visit([&](const auto& m) { return apply_one(m, now); }, mutation));
        if (MutationResult& result = results.back(); result.changed()) {
          record_outbox.bind(1, service_of(mutation));
          record_outbox.bind(2, static_cast<std::int64_t>(result.service_version));
          record_outbox.exec();
          record_outbox.reset();
          result.sequence = record_change(service_of(mutation), result.service_version, now);
        }
        write_db_->exec("RELEASE mutation");
      } catch (const std::exception& error) {
        const std::string reason = describe_failure(*write_db_, options_.path, error);
        // The savepoint went with the transaction: nothing of the batch can be
        // committed any more, so it fails as a whole.
        if (!in_transaction(*write_db_)) throw StoreError(reason);
        write_db_->exec("ROLLBACK TO mutation");
        write_db_->exec("RELEASE mutation");
        results.push_back({Outcome::failed, 0, reason, {}});
      }
    }
    // What every result reflects (MutationResult::observed_sequence).
    SQLite::Statement clock(*write_db_, "SELECT seq FROM registry_clock");
    const auto observed =
        clock.executeStep() ? static_cast<std::uint64_t>(clock.getColumn(0).getInt64()) : 0;
    for (auto& result : results) {
      if (result.outcome != Outcome::failed) result.observed_sequence = observed;
    }
    transaction.commit();
  } catch (const std::exception& error) {
    // Nothing of this batch was committed (SQLite rolls back a failed COMMIT, and
    // the Transaction destructor rolls back otherwise).
    const std::string reason = describe_failure(*write_db_, options_.path, error);
    results.assign(mutations.size(), MutationResult{Outcome::failed, 0, reason, {}});
    recover_write_connection();
  }
  return results;
}

void SqliteStore::recover_write_connection() {
  if (!in_transaction(*write_db_)) return;
  // The destructor's ROLLBACK failed (it swallows the error): without this, every
  // later BEGIN would fail and writes would stay refused until a restart.
  try {
    write_db_->exec("ROLLBACK");
    return;
  } catch (const std::exception&) {
  }
  try {
    write_db_ = open_connection(options_);
  } catch (const std::exception&) {
    // Still unusable: the next apply() fails (503) and tries again.
  }
}
}  // namespace store
