// Membership rows in SQLite (store/registry_store.h, "Membership"). Daemons
// sharing one file share one host, so "the database's clock" is this host's
// system clock. Writes go through a connection of their own with
// synchronous=NORMAL: a renewal lost to a power cut only shortens a lease, and
// renewals several times a second must not cost an fsync each.
#include <SQLiteCpp/SQLiteCpp.h>

#include "store/sqlite/sqlite_schema.h"
#include "store/sqlite/sqlite_store.h"

namespace store {
using namespace sqlite_schema;

std::uint64_t SqliteStore::renew_member(const MemberReport& report) {
  std::lock_guard lock(member_mutex_);
  try {
    if (!member_db_) {
      member_db_ = open_connection(options_);
      member_db_->exec("PRAGMA synchronous = NORMAL");
    }
    const auto now = to_ms(Clock::now());
    SQLite::Transaction transaction(*member_db_, SQLite::TransactionBehavior::IMMEDIATE);
    SQLite::Statement upsert(*member_db_,
                             "INSERT INTO members (id, endpoints, applied_seq, lease_until_ms, "
                             "renewed_at_ms) VALUES (?, ?, ?, ?, ?) ON CONFLICT(id) DO UPDATE SET "
                             "endpoints = excluded.endpoints, applied_seq = excluded.applied_seq, "
                             "lease_until_ms = excluded.lease_until_ms, "
                             "renewed_at_ms = excluded.renewed_at_ms");
    upsert.bind(1, report.id);
    upsert.bind(2, report.endpoints);
    upsert.bind(3, static_cast<std::int64_t>(report.applied));
    upsert.bind(4, now + report.lease.count());
    upsert.bind(5, now);
    upsert.exec();
    SQLite::Statement clock(*member_db_, "SELECT seq FROM registry_clock");
    const auto newest =
        clock.executeStep() ? static_cast<std::uint64_t>(clock.getColumn(0).getInt64()) : 0;
    transaction.commit();
    return newest;
  } catch (const std::exception& error) {
    member_db_.reset();  // reopened at the next renewal
    throw StoreError(std::string("database unavailable: member renewal failed: ") + error.what());
  }
}

void SqliteStore::remove_member(std::string_view id) {
  std::lock_guard lock(member_mutex_);
  try {
    if (!member_db_) member_db_ = open_connection(options_);
    SQLite::Statement remove(*member_db_, "DELETE FROM members WHERE id = ?");
    remove.bind(1, std::string(id));
    remove.exec();
  } catch (const std::exception& error) {
    member_db_.reset();
    throw StoreError(std::string("database unavailable: member removal failed: ") + error.what());
  }
}

std::vector<Member> SqliteStore::read_members() {
  std::lock_guard lock(member_mutex_);
  try {
    if (!member_db_) member_db_ = open_connection(options_);
    const auto now = to_ms(Clock::now());
    SQLite::Statement query(*member_db_,
                            "SELECT id, endpoints, applied_seq, lease_until_ms FROM members "
                            "ORDER BY id");
    std::vector<Member> members;
    while (query.executeStep()) {
      const auto lease_until = query.getColumn(3).getInt64();
      members.push_back({query.getColumn(0).getString(), query.getColumn(1).getString(),
                         static_cast<std::uint64_t>(query.getColumn(2).getInt64()),
                         lease_until > now, from_ms(lease_until)});
    }
    return members;
  } catch (const std::exception& error) {
    member_db_.reset();
    throw StoreError(std::string("database unavailable: reading members failed: ") + error.what());
  }
}

}  // namespace store
