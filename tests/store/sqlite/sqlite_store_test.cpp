// The SQLite store's own tests (the WAL journal, the file's integrity, its schema
// migrations, a locked file and a full disk) and the model's duration and address
// parsing. The RegistryStore contract that the
// SQLite and PostgreSQL stores share is tested once, against both, in
// tests/store/contract/.
#include <SQLiteCpp/SQLiteCpp.h>
#include <gtest/gtest.h>
#include <sys/resource.h>

#include <atomic>
#include <csignal>
#include <future>
#include <thread>

#include "store/duration.h"
#include "store/sqlite/sqlite_store.h"
#include "store/writer.h"
#include "tests/store/store_test_support.h"
#include "tests/support/process.h"

namespace {

using namespace std::chrono_literals;
using store::Outcome;
using namespace store_test;

TEST(Duration, ParsesEveryUnit) {
  EXPECT_EQ(store::parse_duration("100ms"), 100ms);
  EXPECT_EQ(store::parse_duration("30s"), 30s);
  EXPECT_EQ(store::parse_duration("2m"), 2min);
  EXPECT_EQ(store::parse_duration("1h"), 1h);
}

TEST(Duration, RejectsMalformedText) {
  for (const char* text :
       {"", "30", "s", "-1s", "1.5s", "30 s", "30sec", "1d", "99999999999999h"}) {
    EXPECT_FALSE(store::parse_duration(text)) << text;
  }
}

TEST(Duration, FormatsShortestExactForm) {
  EXPECT_EQ(store::format_duration(1500ms), "1500ms");
  EXPECT_EQ(store::format_duration(30s), "30s");
  EXPECT_EQ(store::format_duration(120s), "2m");
  EXPECT_EQ(store::format_duration(1h), "1h");
}

TEST(IpAddress, ParsesLiteralsOnly) {
  auto v4 = store::IpAddress::parse("10.1.2.3");
  ASSERT_TRUE(v4);
  EXPECT_TRUE(v4->is_v4());
  EXPECT_EQ(v4->to_string(), "10.1.2.3");
  auto v6 = store::IpAddress::parse("2001:DB8:0:0::1");
  ASSERT_TRUE(v6);
  EXPECT_FALSE(v6->is_v4());
  EXPECT_EQ(v6->to_string(), "2001:db8::1");
  for (const char* text : {"", "localhost", "10.1.2", "10.1.2.256", "fe80::1%eth0", " 10.1.2.3"}) {
    EXPECT_FALSE(store::IpAddress::parse(text)) << text;
  }
}

// Persistence itself is the contract's (tests/store/contract/, DataSurvivesReopen);
// what is the file's own: after a close and a reopen it is sound.
TEST_F(SqliteStoreTest, AReopenedFilePassesTheIntegrityCheck) {
  {
    store::SqliteStore db({path});
    apply(db, store::Upsert{make_registration("orders", "a1")});
  }
  store::SqliteStore db({path});
  EXPECT_EQ(db.integrity_check(), "ok");
}

TEST_F(SqliteStoreTest, UsesWalJournal) {
  store::SqliteStore db({path});
  SQLite::Database raw(path);
  SQLite::Statement mode(raw, "PRAGMA journal_mode");
  ASSERT_TRUE(mode.executeStep());
  EXPECT_EQ(mode.getColumn(0).getString(), "wal");
}

TEST_F(SqliteStoreTest, MigratesAnOlderSchemaKeepingItsRows) {
  {
    store::SqliteStore old_db({path}, /*target_schema_version=*/1);
    EXPECT_EQ(old_db.schema_version(), 1);
    // Write through SQL: a version-1 database has no lb_strategy column yet.
    SQLite::Database raw(path, SQLite::OPEN_READWRITE);
    EXPECT_THROW(raw.exec("SELECT lb_strategy FROM services"), SQLite::Exception);
    raw.exec("INSERT INTO services (name, version) VALUES ('orders', 7)");
    raw.exec(
        "INSERT INTO instances (service, id, address, port, tags, meta, weight, check_type, "
        "check_path, check_port, check_interval_ms, check_timeout_ms, check_ttl_ms, "
        "check_failures, registered_at_ms, updated_at_ms) VALUES ('orders', 'a1', '127.0.0.9', "
        "80, '[\"v1\"]', '{}', 3, 'tcp', '', 0, 0, 0, 0, 0, 1, 1)");
  }
  store::SqliteStore db({path});
  EXPECT_EQ(db.schema_version(), store::SqliteStore::kLatestSchemaVersion);
  const auto snapshot = db.read_service("orders");
  EXPECT_EQ(snapshot.version, 7u);
  ASSERT_EQ(snapshot.instances.size(), 1u);
  EXPECT_EQ(snapshot.instances[0].registration.address.to_string(), "127.0.0.9");
  EXPECT_EQ(snapshot.instances[0].registration.tags, std::vector<std::string>{"v1"});
  SQLite::Database raw(path);
  EXPECT_NO_THROW(raw.exec("SELECT lb_strategy FROM services"));
}

// Version 4 counts renewals; a version-3 database keeps its rows and their
// failure counts, starts every instance at 0 renewals and guards from then on.
TEST_F(SqliteStoreTest, MigratesAVersion3DatabaseToCountRenewals) {
  {
    store::SqliteStore old_db({path}, /*target_schema_version=*/3);
    EXPECT_EQ(old_db.schema_version(), 3);
    SQLite::Database raw(path, SQLite::OPEN_READWRITE);
    EXPECT_THROW(raw.exec("SELECT renewals FROM instances"), SQLite::Exception);
    raw.exec("INSERT INTO services (name, version) VALUES ('orders', 4)");
    raw.exec(
        "INSERT INTO instances (service, id, address, port, tags, meta, weight, check_type, "
        "check_path, check_port, check_interval_ms, check_timeout_ms, check_ttl_ms, "
        "check_failures, registered_at_ms, updated_at_ms, consecutive_failures) VALUES "
        "('orders', 'a1', '127.0.0.1', 8080, '[]', '{}', 1, 'tcp', '', 0, 0, 0, 0, 0, 1, 1, 2)");
  }
  store::SqliteStore db({path});
  EXPECT_EQ(db.schema_version(), store::SqliteStore::kLatestSchemaVersion);
  const auto migrated = db.read_service("orders").instances.at(0);
  EXPECT_EQ(migrated.consecutive_failures, 2u);
  EXPECT_EQ(migrated.renewals, 0u);
  EXPECT_EQ(apply(db, store::Heartbeat{"orders", "a1", std::nullopt}).renewals, 1u);
  apply(db, store::RecordChecks{{{"orders", "a1", kNow, 3, migrated.renewals}}});
  EXPECT_EQ(db.read_service("orders").instances.at(0).consecutive_failures, 0u);
  EXPECT_EQ(db.read_service("orders").version, 4u);
}

TEST_F(SqliteStoreTest, WritesFailCleanlyWhenTheDatabaseIsLocked) {
  store::SqliteStore db({path, true, 50ms});
  SQLite::Database locker(path, SQLite::OPEN_READWRITE);
  locker.exec("BEGIN IMMEDIATE");
  const auto result = apply(db, store::Upsert{make_registration("orders", "a1")});
  EXPECT_EQ(result.outcome, Outcome::failed);
  EXPECT_EQ(result.error.rfind("database busy: ", 0), 0u) << result.error;
  locker.exec("ROLLBACK");
  EXPECT_EQ(apply(db, store::Upsert{make_registration("orders", "a1")}).outcome, Outcome::created);
}

// A full disk, made with a file-size limit (what `ulimit -f` sets): the whole
// batch fails with a "database full" error and changes nothing, and the same store
// writes again as soon as space returns.
TEST_F(SqliteStoreTest, AFullDiskFailsTheWholeBatchAndTheStoreRecoversWhenSpaceReturns) {
  store::SqliteStore db({path});
  ASSERT_EQ(apply(db, store::Upsert{make_registration("orders", "a1")}).outcome, Outcome::created);
  const auto before = db.read_service("orders");

  auto big = make_registration("orders", "a3", "127.0.0.3");
  // Larger than SQLite's page cache: it spills to the WAL in the middle of the
  // statement, so the failure also hits a mutation, not only the COMMIT.
  big.meta["blob"] = std::string(4 << 20, 'x');
  const std::vector<store::Mutation> batch = {store::Upsert{make_registration("orders", "a2")},
                                              store::Upsert{big},
                                              store::Deregister{"orders", "a1"}};
  rlimit original{};
  ASSERT_EQ(::getrlimit(RLIMIT_FSIZE, &original), 0);
  rlimit full = original;
  full.rlim_cur = 1;  // no write past the first byte of any file
  const auto previous_handler = std::signal(SIGXFSZ, SIG_IGN);  // as the daemon does
  ASSERT_EQ(::setrlimit(RLIMIT_FSIZE, &full), 0);
  const auto results = db.apply(batch, kNow);
  ::setrlimit(RLIMIT_FSIZE, &original);
  std::signal(SIGXFSZ, previous_handler);

  ASSERT_EQ(results.size(), batch.size());
  for (const auto& result : results) {
    EXPECT_EQ(result.outcome, Outcome::failed);
    EXPECT_EQ(result.error.rfind("database full: ", 0), 0u) << result.error;
  }
  const auto after = db.read_service("orders");
  EXPECT_EQ(after.version, before.version);
  ASSERT_EQ(after.instances.size(), 1u);
  EXPECT_EQ(after.instances[0].id(), "a1");

  // Space is back: the same store (no reopen) writes again.
  EXPECT_EQ(apply(db, store::Upsert{make_registration("orders", "a2")}).outcome, Outcome::created);
  EXPECT_EQ(db.integrity_check(), "ok");
  store::SqliteStore reopened({path});
  EXPECT_EQ(reopened.read_service("orders").instances.size(), 2u);
}

}  // namespace
