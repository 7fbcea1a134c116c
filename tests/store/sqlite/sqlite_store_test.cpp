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

TEST_F(SqliteStoreTest, RegisterThenReadBackEveryField) {
  store::SqliteStore db({path});
  auto registration = make_registration("orders", "a1", "2001:db8::7", 9090);
  registration.tags = {"canary", "v2"};
  registration.meta = {{"zone", "a"}, {"rack", "7"}};
  registration.weight = 10;
  registration.check = {store::CheckType::http, "/health", 9091, 5s, 1s, 0ms, 4};

  EXPECT_EQ(apply(db, store::Upsert{registration}).outcome, Outcome::created);
  const auto snapshot = db.read_service("orders");
  ASSERT_EQ(snapshot.instances.size(), 1u);
  const auto& instance = snapshot.instances[0];
  EXPECT_EQ(instance.registration, registration);
  EXPECT_EQ(instance.registered_at, kNow);
  EXPECT_FALSE(instance.last_check_at);
  EXPECT_EQ(instance.consecutive_failures, 0u);
  EXPECT_FALSE(instance.load);
}

TEST_F(SqliteStoreTest, StrategyIsServiceWideAndTheLastWriterWins) {
  store::SqliteStore db({path});
  auto a = make_registration("orders", "a1");
  EXPECT_EQ(apply(db, store::Upsert{a}).outcome, Outcome::created);
  EXPECT_FALSE(db.read_service("orders").lb);  // unset: the daemon's default
  a.lb = store::LbStrategy::weighted;
  const auto set = apply(db, store::Upsert{a});  // only the strategy changed
  EXPECT_EQ(set.outcome, Outcome::updated);
  EXPECT_EQ(set.previous_lb, "");
  EXPECT_EQ(db.read_service("orders").lb, store::LbStrategy::weighted);
  EXPECT_EQ(apply(db, store::Upsert{a}).outcome, Outcome::unchanged);
  auto b = make_registration("orders", "b1", "127.0.0.2");
  b.lb = store::LbStrategy::least_loaded;
  const auto changed = apply(db, store::Upsert{b});
  EXPECT_EQ(changed.outcome, Outcome::created);
  EXPECT_EQ(changed.previous_lb, "weighted");
  const auto snapshot = db.read_service("orders");
  EXPECT_EQ(snapshot.lb, store::LbStrategy::least_loaded);
  EXPECT_FALSE(snapshot.instances[0].registration.lb);  // rows do not carry it
  // A registration that names no strategy leaves it alone.
  auto c = make_registration("orders", "c1", "127.0.0.3");
  EXPECT_FALSE(apply(db, store::Upsert{c}).previous_lb);
  EXPECT_EQ(db.read_service("orders").lb, store::LbStrategy::least_loaded);
}

TEST_F(SqliteStoreTest, ReportLoadRecordsTheLoadOnlyAndBumpsOnChange) {
  store::SqliteStore db({path});
  apply(db, store::Upsert{make_registration("orders", "a1")});
  const auto first = apply(db, store::ReportLoad{"orders", "a1", 2.5});
  EXPECT_EQ(first.outcome, Outcome::updated);
  EXPECT_EQ(first.service_version, 2u);
  EXPECT_EQ(apply(db, store::ReportLoad{"orders", "a1", 2.5}).outcome, Outcome::unchanged);
  const auto instance = db.read_service("orders").instances.at(0);
  EXPECT_EQ(instance.load, 2.5);
  EXPECT_FALSE(instance.last_heartbeat_at);  // a probe's load is no heartbeat
  EXPECT_EQ(apply(db, store::ReportLoad{"orders", "zz", 1}).outcome, Outcome::not_found);
}

TEST_F(SqliteStoreTest, VersionIncreasesOnEveryChangeAndNeverMovesBack) {
  store::SqliteStore db({path});
  auto registration = make_registration("orders", "a1");
  EXPECT_EQ(apply(db, store::Upsert{registration}).service_version, 1u);
  // Identical re-registration: idempotent, no new version.
  auto same = apply(db, store::Upsert{registration});
  EXPECT_EQ(same.outcome, Outcome::unchanged);
  EXPECT_EQ(same.service_version, 1u);
  registration.port = 8081;
  auto updated = apply(db, store::Upsert{registration});
  EXPECT_EQ(updated.outcome, Outcome::updated);
  EXPECT_EQ(updated.service_version, 2u);
  EXPECT_EQ(apply(db, store::Deregister{"orders", "a1"}).service_version, 3u);
  EXPECT_EQ(db.read_service("orders").version, 3u);
  EXPECT_TRUE(db.read_service("orders").instances.empty());
  // Re-creating the service continues from the old version.
  EXPECT_EQ(apply(db, store::Upsert{registration}).service_version, 4u);
}

TEST_F(SqliteStoreTest, DeregisterAndHeartbeatOfUnknownInstanceAreNotFound) {
  store::SqliteStore db({path});
  EXPECT_EQ(apply(db, store::Deregister{"orders", "nope"}).outcome, Outcome::not_found);
  EXPECT_EQ(apply(db, store::Heartbeat{"orders", "nope", 1.0}).outcome, Outcome::not_found);
}

TEST_F(SqliteStoreTest, HeartbeatRecordsTimeAndLoadAndOnlyLoadChangesVersion) {
  store::SqliteStore db({path});
  apply(db, store::Upsert{make_registration("orders", "a1")});
  auto plain = apply(db, store::Heartbeat{"orders", "a1", std::nullopt});
  EXPECT_EQ(plain.outcome, Outcome::unchanged);
  EXPECT_EQ(plain.service_version, 1u);
  auto with_load = apply(db, store::Heartbeat{"orders", "a1", 12.5});
  EXPECT_EQ(with_load.outcome, Outcome::updated);
  EXPECT_EQ(with_load.service_version, 2u);
  const auto instance = db.read_service("orders").instances.at(0);
  EXPECT_EQ(instance.load, 12.5);
  EXPECT_EQ(instance.last_heartbeat_at, kNow);
  // The same load again is not a change.
  EXPECT_EQ(apply(db, store::Heartbeat{"orders", "a1", 12.5}).outcome, Outcome::unchanged);
}

TEST_F(SqliteStoreTest, ListsOnlyServicesWithInstances) {
  store::SqliteStore db({path});
  apply(db, store::Upsert{make_registration("orders", "a1")});
  apply(db, store::Upsert{make_registration("orders", "a2")});
  apply(db, store::Upsert{make_registration("payments", "p1")});
  apply(db, store::Deregister{"payments", "p1"});
  const auto services = db.list_services();
  ASSERT_EQ(services.size(), 1u);
  EXPECT_EQ(services[0].service, "orders");
  EXPECT_EQ(services[0].instance_count, 2u);
}

TEST_F(SqliteStoreTest, RemoveUnhealthyRemovesOnlyTheInstanceThatWasProbed) {
  store::SqliteStore db({path});
  apply(db, store::Upsert{make_registration("orders", "a1")});
  apply(db, store::Upsert{make_registration("orders", "a2")});
  const auto probed = db.read_service("orders").instances;
  // a2 sends a heartbeat after the probe started: it is alive and must stay.
  apply(db, store::Heartbeat{"orders", "a2", std::nullopt});
  auto removed = apply(db, store::RemoveUnhealthy{"orders", "a1", probed[0].updated_at,
                                                  probed[0].last_heartbeat_at});
  EXPECT_EQ(removed.outcome, Outcome::removed);
  auto kept = apply(db, store::RemoveUnhealthy{"orders", "a2", probed[1].updated_at,
                                               probed[1].last_heartbeat_at});
  EXPECT_EQ(kept.outcome, Outcome::unchanged);
  EXPECT_EQ(apply(db, store::RemoveUnhealthy{"orders", "a1", probed[0].updated_at, {}}).outcome,
            Outcome::not_found);
  const auto left = db.read_service("orders").instances;
  ASSERT_EQ(left.size(), 1u);
  EXPECT_EQ(left[0].id(), "a2");
}

TEST_F(SqliteStoreTest, RemoveUnhealthyKeepsAReRegisteredInstance) {
  store::SqliteStore db({path});
  apply(db, store::Upsert{make_registration("orders", "a1")});
  const auto probed = db.read_service("orders").instances.at(0);
  // Re-registered at a new address (later clock) after the probe.
  store::Mutation moved = store::Upsert{make_registration("orders", "a1", "127.0.0.2")};
  db.apply(std::span(&moved, 1), kNow + 1s);
  EXPECT_EQ(apply(db, store::RemoveUnhealthy{"orders", "a1", probed.updated_at, {}}).outcome,
            Outcome::unchanged);
  EXPECT_EQ(db.read_service("orders").instances.size(), 1u);
}

// The checker built its removal from the probed row; the client's identical
// re-registration was acknowledged (200) before the removal reached the store.
// The removal must not delete what the client was just told is registered.
TEST_F(SqliteStoreTest, RemoveUnhealthyKeepsAnInstanceReRegisteredIdentically) {
  store::SqliteStore db({path});
  const auto registration = make_registration("orders", "a1");
  apply(db, store::Upsert{registration});
  apply(db, store::RecordChecks{{{"orders", "a1", kNow, 2, 0}}});
  const auto probed = db.read_service("orders").instances.at(0);
  ASSERT_EQ(probed.consecutive_failures, 2u);
  const auto again = apply(db, store::Upsert{registration});  // same clock, same row
  EXPECT_EQ(again.outcome, Outcome::unchanged);
  EXPECT_EQ(again.service_version, 1u);  // no answer changed: no cache churn
  EXPECT_EQ(again.renewals, probed.renewals + 1);
  const store::RemoveUnhealthy removal{"orders", "a1", probed.updated_at, probed.last_heartbeat_at,
                                       probed.renewals};
  EXPECT_EQ(apply(db, removal).outcome, Outcome::unchanged);
  const auto kept = db.read_service("orders");
  ASSERT_EQ(kept.instances.size(), 1u);
  EXPECT_EQ(kept.version, 1u);
  EXPECT_EQ(kept.instances[0].consecutive_failures, 0u);  // proof of life
  EXPECT_EQ(kept.instances[0].updated_at, probed.updated_at);
  // A removal based on the renewed row goes through.
  const store::RemoveUnhealthy current{"orders", "a1", probed.updated_at, probed.last_heartbeat_at,
                                       again.renewals};
  EXPECT_EQ(apply(db, current).outcome, Outcome::removed);
}

// A heartbeat (or identical re-registration) clears the failure count; a check
// record of an earlier probe, applied after it, must not write the old count back,
// also not for the next start (which reads the count from the file).
TEST_F(SqliteStoreTest, ACheckRecordOlderThanAProofOfLifeKeepsItsCountCleared) {
  const auto registration = make_registration("orders", "a1");
  {
    store::SqliteStore db({path});
    apply(db, store::Upsert{registration});
    apply(db, store::RecordChecks{{{"orders", "a1", kNow + 1s, 2, 0}}});
    const auto probed = db.read_service("orders").instances.at(0);
    const auto beat = apply(db, store::Heartbeat{"orders", "a1", std::nullopt});
    EXPECT_EQ(beat.renewals, probed.renewals + 1);
    apply(db, store::RecordChecks{{{"orders", "a1", kNow + 2s, 3, probed.renewals}}});
    auto stored = db.read_service("orders").instances.at(0);
    EXPECT_EQ(stored.consecutive_failures, 0u);
    EXPECT_EQ(stored.last_check_at, kNow + 2s);  // the check time is recorded all the same
    // The same after an identical re-registration.
    apply(db, store::RecordChecks{{{"orders", "a1", kNow + 3s, 1, beat.renewals}}});
    const auto again = apply(db, store::Upsert{registration});
    apply(db, store::RecordChecks{{{"orders", "a1", kNow + 4s, 2, beat.renewals}}});
    EXPECT_EQ(db.read_service("orders").instances.at(0).consecutive_failures, 0u);
    // A count based on the current renewals is written.
    apply(db, store::RecordChecks{{{"orders", "a1", kNow + 5s, 1, again.renewals}}});
    apply(db, store::RecordChecks{{{"orders", "a1", kNow + 6s, 2, again.renewals}}});
    EXPECT_EQ(db.read_service("orders").instances.at(0).consecutive_failures, 2u);
    apply(db, store::Heartbeat{"orders", "a1", std::nullopt});
    apply(db, store::RecordChecks{{{"orders", "a1", kNow + 7s, 3, again.renewals}}});
  }
  store::SqliteStore reopened({path});
  EXPECT_EQ(reopened.read_all_instances().at(0).consecutive_failures, 0u);
}

TEST_F(SqliteStoreTest, RecordChecksStoresHealthDataWithoutChangingVersions) {
  store::SqliteStore db({path});
  apply(db, store::Upsert{make_registration("orders", "a1")});
  apply(db, store::Upsert{make_registration("payments", "p1")});
  const auto result = apply(db, store::RecordChecks{{{"orders", "a1", kNow + 5s, 2},
                                                     {"payments", "p1", kNow + 6s, 0},
                                                     {"orders", "gone", kNow, 1}}});
  EXPECT_EQ(result.outcome, Outcome::unchanged);
  const auto all = db.read_all_instances();
  ASSERT_EQ(all.size(), 2u);
  EXPECT_EQ(all[0].id(), "a1");
  EXPECT_EQ(all[0].consecutive_failures, 2u);
  EXPECT_EQ(all[0].last_check_at, kNow + 5s);
  EXPECT_EQ(all[1].id(), "p1");
  EXPECT_EQ(all[1].last_check_at, kNow + 6s);
  EXPECT_EQ(db.read_service("orders").version, 1u);
}

TEST_F(SqliteStoreTest, EveryChangeLeavesAnOutboxEntryUntilConfirmed) {
  store::SqliteStore db({path});
  apply(db, store::Upsert{make_registration("orders", "a1")});
  apply(db, store::Upsert{make_registration("orders", "a2")});
  apply(db, store::Upsert{make_registration("payments", "p1")});
  apply(db, store::Deregister{"orders", "missing"});  // no change, no entry
  EXPECT_EQ(db.read_outbox(), (std::vector<store::OutboxEntry>{{"orders", 2}, {"payments", 1}}));
  // Confirming an older version than the latest change keeps the entry.
  const std::vector<store::OutboxEntry> stale = {{"orders", 1}, {"payments", 1}};
  db.apply({}, kNow, stale);
  EXPECT_EQ(db.read_outbox(), (std::vector<store::OutboxEntry>{{"orders", 2}}));
  const std::vector<store::OutboxEntry> current = {{"orders", 2}};
  db.apply({}, kNow, current);
  EXPECT_TRUE(db.read_outbox().empty());
}

TEST_F(SqliteStoreTest, BatchAppliesEachMutationIndependently) {
  store::SqliteStore db({path});
  std::vector<store::Mutation> batch = {
      store::Upsert{make_registration("orders", "a1")},
      store::Deregister{"orders", "missing"},
      store::Upsert{make_registration("orders", "a2")},
  };
  const auto results = db.apply(batch, kNow);
  ASSERT_EQ(results.size(), 3u);
  EXPECT_EQ(results[0].outcome, Outcome::created);
  EXPECT_EQ(results[1].outcome, Outcome::not_found);
  EXPECT_EQ(results[2].outcome, Outcome::created);
  EXPECT_EQ(db.read_service("orders").instances.size(), 2u);
}

TEST_F(SqliteStoreTest, DataSurvivesReopen) {
  {
    store::SqliteStore db({path});
    apply(db, store::Upsert{make_registration("orders", "a1")});
  }
  store::SqliteStore db({path});
  EXPECT_EQ(db.read_service("orders").instances.size(), 1u);
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

TEST_F(SqliteStoreTest, RefusesANewerSchemaWithAClearError) {
  { store::SqliteStore db({path}); }
  {
    SQLite::Database raw(path, SQLite::OPEN_READWRITE);
    raw.exec("UPDATE schema_version SET version = 99");
  }
  try {
    store::SqliteStore db({path});
    FAIL() << "opened a database from the future";
  } catch (const store::StoreError& error) {
    EXPECT_NE(std::string(error.what()).find("schema version 99"), std::string::npos)
        << error.what();
    EXPECT_NE(std::string(error.what()).find("newer"), std::string::npos) << error.what();
  }
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
