// Health-check shard rows in SQLite (store/health_shards.h): read, planned and
// written in one IMMEDIATE transaction on the membership connection, so two
// daemons balancing at once take turns.
#include <SQLiteCpp/SQLiteCpp.h>

#include "store/sqlite/sqlite_schema.h"
#include "store/sqlite/sqlite_store.h"

namespace store {
using namespace sqlite_schema;
namespace {

std::vector<ShardRow> read_rows(SQLite::Database& db) {
  std::vector<ShardRow> rows(kHealthShards);
  SQLite::Statement query(db, "SELECT shard, owner, requested_by FROM health_shards");
  while (query.executeStep()) {
    const auto shard = static_cast<std::size_t>(query.getColumn(0).getInt());
    if (shard < rows.size()) {
      rows[shard] = {query.getColumn(1).getString(), query.getColumn(2).getString()};
    }
  }
  return rows;
}

std::set<std::string, std::less<>> live_members(SQLite::Database& db) {
  SQLite::Statement query(db, "SELECT id FROM members WHERE lease_until_ms > ?");
  query.bind(1, to_ms(Clock::now()));
  std::set<std::string, std::less<>> live;
  while (query.executeStep()) live.insert(query.getColumn(0).getString());
  return live;
}

}  // namespace

ShardView SqliteStore::balance_shards(std::string_view member, const ShardSet& handoff) {
  std::lock_guard lock(member_mutex_);
  try {
    if (!member_db_) {
      member_db_ = open_connection(options_);
      member_db_->exec("PRAGMA synchronous = NORMAL");
    }
    SQLite::Transaction transaction(*member_db_, SQLite::TransactionBehavior::IMMEDIATE);
    const auto rows = read_rows(*member_db_);
    const auto plan = plan_shards(member, live_members(*member_db_), rows, handoff);
    SQLite::Statement update(
        *member_db_, "UPDATE health_shards SET owner = ?, requested_by = ? WHERE shard = ?");
    for (const auto& [shard, row] : plan.updates) {
      update.bind(1, row.owner);
      update.bind(2, row.requested_by);
      update.bind(3, shard);
      update.exec();
      update.reset();
    }
    transaction.commit();
    return plan.view;
  } catch (const std::exception& error) {
    member_db_.reset();
    throw StoreError(std::string("database unavailable: balancing health shards failed: ") +
                     error.what());
  }
}

std::vector<ShardRow> SqliteStore::read_shards() {
  std::lock_guard lock(member_mutex_);
  try {
    if (!member_db_) member_db_ = open_connection(options_);
    return read_rows(*member_db_);
  } catch (const std::exception& error) {
    member_db_.reset();
    throw StoreError(std::string("database unavailable: reading health shards failed: ") +
                     error.what());
  }
}

}  // namespace store
