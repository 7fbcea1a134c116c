// The SQLite implementation of store::RegistryStore (store/registry_store.h):
// one file in WAL mode, a single write connection (the group-commit writer's)
// and a small pool of read connections, so reads never wait for a write.
// Failed writes name their cause ("database full: ", "database busy: ", ...);
// synchronous=FULL by default, so an acknowledged write survives power loss.
#pragma once

#include <chrono>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "store/registry_store.h"

namespace SQLite {
class Database;
}

namespace store {

class ReadPool;

struct StoreOptions {
  std::string path;
  // FULL makes every acknowledged write survive power loss; NORMAL only process
  // crashes. Group commit (store::Writer) keeps FULL affordable.
  bool synchronous_full = true;
  // How long a write waits for another connection's lock before failing with
  // "database busy" (503). Keep it well under the HTTP request timeout.
  std::chrono::milliseconds busy_timeout{2000};
  // Changes kept in the feed table; older ones are pruned as new ones commit.
  std::uint64_t change_retention = 100'000;
};

class SqliteStore final : public RegistryStore {
 public:
  static constexpr int kLatestSchemaVersion = 7;

  // Opens (creating if needed) and migrates the database up to
  // target_schema_version. Throws StoreError if the file holds a newer schema
  // than this build knows, or cannot be opened. The target is a test hook for
  // producing databases of older versions.
  explicit SqliteStore(StoreOptions options, int target_schema_version = kLatestSchemaVersion);
  ~SqliteStore();
  SqliteStore(const SqliteStore&) = delete;
  SqliteStore& operator=(const SqliteStore&) = delete;

  std::vector<OutboxEntry> read_outbox() override;

  // Reads are thread-safe and run concurrently with each other and with writes
  // (each on a read connection of its own, up to kMaxReadConnections at once;
  // more wait for one to be free). None of them waits for a write to commit.
  static constexpr std::size_t kMaxReadConnections = 4;

  ServiceSnapshot read_service(std::string_view service) override;
  std::vector<ServiceSummary> list_services() override;
  std::vector<Instance> read_all_instances() override;
  StoreStatus status() override;  // backend "sqlite", the file, its schema version
  std::vector<Change> read_changes(std::uint64_t after, std::size_t limit) override;
  std::uint64_t last_sequence() override;
  RegistryRead read_registry_since(std::uint64_t after) override;
  // sqlite_members.cpp: on a connection of their own with synchronous=NORMAL
  // (a lost renewal after a power cut only shortens a lease).
  std::uint64_t renew_member(const MemberReport& report) override;
  void remove_member(std::string_view id) override;
  std::vector<Member> read_members() override;
  ShardView balance_shards(std::string_view member, const ShardSet& handoff) override;
  std::vector<ShardRow> read_shards() override;
  int schema_version();
  // Runs PRAGMA integrity_check; returns "ok" when the file is sound.
  std::string integrity_check();
  const std::string& path() const { return options_.path; }

 private:
  std::vector<MutationResult> apply_batch(std::span<const Mutation> mutations, TimePoint now,
                                          std::span<const OutboxEntry> confirmed) override;
  MutationResult apply_one(const Upsert& upsert, TimePoint now);
  MutationResult apply_one(const Deregister& deregister, TimePoint now);
  MutationResult apply_one(const Heartbeat& heartbeat, TimePoint now);
  MutationResult apply_one(const RemoveUnhealthy& removal, TimePoint now);
  MutationResult apply_one(const RecordChecks& checks, TimePoint now);
  MutationResult apply_one(const ReportLoad& report, TimePoint now);
  std::uint64_t bump_version(const std::string& service);
  // Records a committed change in the feed (in the caller's transaction) and
  // returns its sequence number.
  std::uint64_t record_change(const std::string& service, std::uint64_t version, TimePoint now);
  // After a failed batch: leaves the write connection outside any transaction
  // (reopening it if need be), so that the next batch can succeed.
  void recover_write_connection();

  StoreOptions options_;
  std::mutex write_mutex_;
  std::unique_ptr<SQLite::Database> write_db_;
  // Read connections, one per concurrent read (store/read_pool.h).
  std::unique_ptr<ReadPool> readers_;
  std::mutex member_mutex_;
  std::unique_ptr<SQLite::Database> member_db_;  // opened at the first renewal
};

}  // namespace store
