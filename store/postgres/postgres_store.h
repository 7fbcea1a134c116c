// The PostgreSQL implementation of store::RegistryStore (store/registry_store.h):
// several daemons share one database. One write connection (the group-commit
// writer's) and a small pool of read connections; every committed change takes
// the next number of the shared change feed and wakes the other daemons with
// NOTIFY (change_notifications.h). See README.md.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "store/registry_store.h"

namespace store {

namespace postgres {
class Connection;
class ConnectionPool;
struct BatchState;
}  // namespace postgres

struct PostgresOptions {
  // A libpq URI, postgresql://user[:password]@host:port/dbname?..., handed to
  // libpq unchanged (its own parameters win over the defaults below).
  std::string url;
  // Bounds connecting (libpq counts whole seconds, at least 2).
  std::chrono::milliseconds connect_timeout{3000};
  // Per session on the server; the client also gives up on an answer this much
  // later (plus a margin), so a hung server never blocks a caller for ever.
  std::chrono::milliseconds statement_timeout{2000};
  // The kernel drops a connection whose sent data stays unacknowledged this long.
  std::chrono::milliseconds tcp_user_timeout{5000};
  std::size_t read_connections = 4;
  // Changes kept in the feed table; older ones are pruned as new ones commit.
  std::uint64_t change_retention = 100'000;
};

// The URL without its password (userinfo or `password=` parameter), for logs and
// StoreStatus::location.
std::string redact_database_url(std::string_view url);

class PostgresStore final : public RegistryStore {
 public:
  // PostgreSQL's own numbering, independent of SQLite's: version 1 is the shape
  // of SQLite's schema 5 (services, instances, cache_outbox, registry_clock,
  // changes), version 2 adds SQLite 6's members, version 3 SQLite 7's
  // health_shards. Never edit a released
  // migration: append one (pg_schema.cpp).
  static constexpr int kLatestSchemaVersion = 3;

  // Connects and migrates the database to kLatestSchemaVersion (once, even when
  // several daemons start at the same time). Throws StoreError if the server
  // cannot be reached or its schema is newer than this build knows.
  explicit PostgresStore(PostgresOptions options);
  ~PostgresStore() override;
  PostgresStore(const PostgresStore&) = delete;
  PostgresStore& operator=(const PostgresStore&) = delete;

  // Reads are thread-safe: each borrows a connection of the pool (at most
  // read_connections at once; more wait). They block on the network, which is
  // fine on the worker threads that call them (never an event loop).
  std::vector<OutboxEntry> read_outbox() override;
  ServiceSnapshot read_service(std::string_view service) override;
  std::vector<ServiceSummary> list_services() override;
  std::vector<Instance> read_all_instances() override;
  StoreStatus status() override;  // backend "postgresql", the redacted URL
  std::vector<Change> read_changes(std::uint64_t after, std::size_t limit) override;
  std::uint64_t last_sequence() override;
  RegistryRead read_registry_since(std::uint64_t after) override;
  // postgres_members.cpp: on a connection of their own, so that a renewal never
  // waits behind a batch or for a free read connection. "The database's clock"
  // is the server's (clock_timestamp()), the same for every daemon.
  std::uint64_t renew_member(const MemberReport& report) override;
  void remove_member(std::string_view id) override;
  std::vector<Member> read_members() override;
  ShardView balance_shards(std::string_view member, const ShardSet& handoff) override;
  std::vector<ShardRow> read_shards() override;
  int schema_version();

 private:
  std::vector<MutationResult> apply_batch(std::span<const Mutation> mutations, TimePoint now,
                                          std::span<const OutboxEntry> confirmed) override;
  // One attempt at the batch's transaction; throws BatchFailure (postgres_store.cpp).
  // The mutations are planned in memory from the rows read at BEGIN
  // (batch_plan.h) and their statements sent in one pipeline (run_together).
  // `isolated`: each mutation in its own pipeline under its own savepoint
  // (run_isolated), so that one the database refuses fails alone; only after a
  // refusal, since a savepoint is a round trip and a subtransaction, and more
  // than 64 subtransactions in one transaction make PostgreSQL's visibility
  // checks slow (the subtransaction cache overflows).
  std::vector<MutationResult> run_transaction(std::span<const Mutation> mutations, TimePoint now,
                                              bool isolated,
                                              std::span<const OutboxEntry> confirmed);
  std::vector<MutationResult> run_together(std::span<const Mutation> mutations,
                                           postgres::BatchState& state,
                                           std::uint64_t first_sequence, TimePoint now);
  std::vector<MutationResult> run_isolated(std::span<const Mutation> mutations,
                                           postgres::BatchState& state,
                                           std::uint64_t first_sequence, TimePoint now);

  PostgresOptions options_;
  std::string location_;  // the redacted URL
  std::mutex write_mutex_;
  std::unique_ptr<postgres::Connection> writer_;  // guarded by write_mutex_; null: reconnect
  std::unique_ptr<postgres::ConnectionPool> readers_;
  std::mutex member_mutex_;
  std::unique_ptr<postgres::Connection> member_conn_;  // guarded; null: reconnect
};

}  // namespace store
