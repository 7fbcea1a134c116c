// Membership rows in PostgreSQL (store/registry_store.h, "Membership"). Every
// daemon's lease is measured by the server's clock, so daemons on hosts whose
// clocks disagree still agree on who is live.
#include "store/postgres/pg_connection.h"
#include "store/postgres/pg_schema.h"
#include "store/postgres/postgres_store.h"

namespace store {
using namespace postgres;
namespace {

// Milliseconds since the epoch by the server's clock (clock_timestamp(), not
// now(): the transaction's start could be older).
constexpr const char* kServerNowMs = "(extract(epoch FROM clock_timestamp()) * 1000)::bigint";

// Runs `call` on the member connection, opening it if need be; a failure drops
// the connection (reopened next time) and becomes a StoreError naming `what`.
template <typename Call>
auto with_member_connection(std::unique_ptr<Connection>& connection, const PostgresOptions& options,
                            const char* what, Call&& call) {
  try {
    if (!connection || !connection->usable()) {
      connection.reset();
      connection = std::make_unique<Connection>(options);
    }
    return call(*connection);
  } catch (const PgError& error) {
    if (connection && !connection->usable()) connection.reset();
    const std::string reason = describe_failure(error);
    if (reason.rfind("database ", 0) == 0) throw StoreError(reason + " (" + what + ")");
    throw StoreError(std::string(what) + " failed: " + reason);
  }
}

}  // namespace

std::uint64_t PostgresStore::renew_member(const MemberReport& report) {
  std::lock_guard lock(member_mutex_);
  return with_member_connection(member_conn_, options_, "member renewal", [&](Connection& db) {
    // One statement: the row is written and the newest committed sequence read
    // from the same snapshot, without waiting for the clock row's lock.
    const auto result =
        db.exec(std::string("WITH now AS (SELECT ") + kServerNowMs +
                    " AS ms) INSERT INTO members (id, endpoints, applied_seq, lease_until_ms, "
                    "renewed_at_ms) SELECT $1, $2, $3, now.ms + $4, now.ms FROM now "
                    "ON CONFLICT (id) DO UPDATE SET endpoints = excluded.endpoints, "
                    "applied_seq = excluded.applied_seq, lease_until_ms = excluded.lease_until_ms, "
                    "renewed_at_ms = excluded.renewed_at_ms "
                    "RETURNING (SELECT seq FROM registry_clock)",
                {param(std::string_view(report.id)), param(std::string_view(report.endpoints)),
                 param(static_cast<std::int64_t>(report.applied)),
                 param(static_cast<std::int64_t>(report.lease.count()))});
    return static_cast<std::uint64_t>(result.int64(0, 0));
  });
}

void PostgresStore::remove_member(std::string_view id) {
  std::lock_guard lock(member_mutex_);
  with_member_connection(member_conn_, options_, "member removal", [&](Connection& db) {
    db.exec("DELETE FROM members WHERE id = $1", {param(id)});
    return 0;
  });
}

std::vector<Member> PostgresStore::read_members() {
  std::lock_guard lock(member_mutex_);
  return with_member_connection(member_conn_, options_, "reading members", [](Connection& db) {
    const auto result = db.exec(
        std::string("SELECT id, endpoints, applied_seq, lease_until_ms, lease_until_ms > ") +
        kServerNowMs + " FROM members ORDER BY id COLLATE \"C\"");
    std::vector<Member> members;
    for (int row = 0; row < result.rows(); ++row) {
      members.push_back({result.string(row, 0), result.string(row, 1),
                         static_cast<std::uint64_t>(result.int64(row, 2)),
                         result.text(row, 4) == "t", from_ms(result.int64(row, 3))});
    }
    return members;
  });
}

namespace {

std::vector<ShardRow> shard_rows(const Result& result) {
  std::vector<ShardRow> rows(kHealthShards);
  for (int row = 0; row < result.rows(); ++row) {
    const auto shard = static_cast<std::size_t>(result.int64(row, 0));
    if (shard < rows.size()) rows[shard] = {result.string(row, 1), result.string(row, 2)};
  }
  return rows;
}

ShardView balance_in_transaction(Connection& db, std::string_view member, const ShardSet& handoff) {
  // The rows locked first: two members balancing at once take turns.
  const auto rows = shard_rows(
      db.exec("SELECT shard, owner, requested_by FROM health_shards ORDER BY shard FOR UPDATE"));
  const auto members =
      db.exec(std::string("SELECT id FROM members WHERE lease_until_ms > ") + kServerNowMs);
  std::set<std::string, std::less<>> live;
  for (int row = 0; row < members.rows(); ++row) live.insert(members.string(row, 0));
  const auto plan = plan_shards(member, live, rows, handoff);
  if (!plan.updates.empty()) {
    std::vector<std::int64_t> shards;
    std::vector<std::string_view> owners, requesters;
    for (const auto& [shard, row] : plan.updates) {
      shards.push_back(shard);
      owners.push_back(row.owner);
      requesters.push_back(row.requested_by);
    }
    db.exec(
        "UPDATE health_shards AS h SET owner = u.owner, requested_by = u.requested_by "
        "FROM unnest($1::integer[], $2::text[], $3::text[]) AS u(shard, owner, requested_by) "
        "WHERE h.shard = u.shard",
        {bigint_array(shards), text_array(owners), text_array(requesters)});
  }
  return plan.view;
}

}  // namespace

ShardView PostgresStore::balance_shards(std::string_view member, const ShardSet& handoff) {
  std::lock_guard lock(member_mutex_);
  return with_member_connection(member_conn_, options_, "balancing health shards",
                                [&](Connection& db) {
                                  db.exec("BEGIN");
                                  try {
                                    const auto view = balance_in_transaction(db, member, handoff);
                                    db.exec("COMMIT");
                                    return view;
                                  } catch (...) {
                                    if (db.usable()) {
                                      try {
                                        db.exec("ROLLBACK");
                                      } catch (...) {
                                      }
                                    }
                                    throw;
                                  }
                                });
}

std::vector<ShardRow> PostgresStore::read_shards() {
  std::lock_guard lock(member_mutex_);
  return with_member_connection(
      member_conn_, options_, "reading health shards", [](Connection& db) {
        return shard_rows(db.exec("SELECT shard, owner, requested_by FROM health_shards"));
      });
}

}  // namespace store
