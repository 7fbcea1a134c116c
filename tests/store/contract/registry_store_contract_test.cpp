// The RegistryStore contract (store/registry_store.h), written once and run
// against both backends: registration and read-back, strategies, loads,
// versions, heartbeats, health removals and check records, the outbox, batches,
// persistence across a reopen and refusing a newer schema. These tests used to
// exist twice, in tests/store/sqlite/sqlite_store_test.cpp and its PostgreSQL
// port, and could drift apart; what only one backend has stays in those files.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "tests/store/contract/registry_store_contract.h"

namespace contract_test {
namespace {

using namespace std::chrono_literals;
using store::Outcome;

TEST_P(RegistryStoreContract, RegisterThenReadBackEveryField) {
  const auto db = open();
  auto registration = make_registration("orders", "a1", "2001:db8::7", 9090);
  registration.tags = {"canary", "v2"};
  registration.meta = {{"zone", "a"}, {"rack", "7"}};
  registration.weight = 10;
  registration.check = {store::CheckType::http, "/health", 9091, 5s, 1s, 0ms, 4};

  EXPECT_EQ(apply(*db, store::Upsert{registration}).outcome, Outcome::created);
  const auto snapshot = db->read_service("orders");
  ASSERT_EQ(snapshot.instances.size(), 1u);
  const auto& instance = snapshot.instances[0];
  EXPECT_EQ(instance.registration, registration);
  EXPECT_EQ(instance.registered_at, kNow);
  EXPECT_FALSE(instance.last_check_at);
  EXPECT_EQ(instance.consecutive_failures, 0u);
  EXPECT_FALSE(instance.load);
}

TEST_P(RegistryStoreContract, StrategyIsServiceWideAndTheLastWriterWins) {
  const auto db = open();
  auto a = make_registration("orders", "a1");
  EXPECT_EQ(apply(*db, store::Upsert{a}).outcome, Outcome::created);
  EXPECT_FALSE(db->read_service("orders").lb);  // unset: the daemon's default
  a.lb = store::LbStrategy::weighted;
  const auto set = apply(*db, store::Upsert{a});  // only the strategy changed
  EXPECT_EQ(set.outcome, Outcome::updated);
  EXPECT_EQ(set.previous_lb, "");
  EXPECT_EQ(db->read_service("orders").lb, store::LbStrategy::weighted);
  EXPECT_EQ(apply(*db, store::Upsert{a}).outcome, Outcome::unchanged);
  auto b = make_registration("orders", "b1", "127.0.0.2");
  b.lb = store::LbStrategy::least_loaded;
  const auto changed = apply(*db, store::Upsert{b});
  EXPECT_EQ(changed.outcome, Outcome::created);
  EXPECT_EQ(changed.previous_lb, "weighted");
  const auto snapshot = db->read_service("orders");
  EXPECT_EQ(snapshot.lb, store::LbStrategy::least_loaded);
  EXPECT_FALSE(snapshot.instances[0].registration.lb);  // rows do not carry it
  // A registration that names no strategy leaves it alone.
  auto c = make_registration("orders", "c1", "127.0.0.3");
  EXPECT_FALSE(apply(*db, store::Upsert{c}).previous_lb);
  EXPECT_EQ(db->read_service("orders").lb, store::LbStrategy::least_loaded);
}

TEST_P(RegistryStoreContract, ReportLoadRecordsTheLoadOnlyAndBumpsOnChange) {
  const auto db = open();
  apply(*db, store::Upsert{make_registration("orders", "a1")});
  const auto first = apply(*db, store::ReportLoad{"orders", "a1", 2.5});
  EXPECT_EQ(first.outcome, Outcome::updated);
  EXPECT_EQ(first.service_version, 2u);
  EXPECT_EQ(apply(*db, store::ReportLoad{"orders", "a1", 2.5}).outcome, Outcome::unchanged);
  const auto instance = db->read_service("orders").instances.at(0);
  EXPECT_EQ(instance.load, 2.5);
  EXPECT_FALSE(instance.last_heartbeat_at);  // a probe's load is no heartbeat
  EXPECT_EQ(apply(*db, store::ReportLoad{"orders", "zz", 1}).outcome, Outcome::not_found);
}

TEST_P(RegistryStoreContract, VersionIncreasesOnEveryChangeAndNeverMovesBack) {
  const auto db = open();
  auto registration = make_registration("orders", "a1");
  EXPECT_EQ(apply(*db, store::Upsert{registration}).service_version, 1u);
  // Identical re-registration: idempotent, no new version.
  auto same = apply(*db, store::Upsert{registration});
  EXPECT_EQ(same.outcome, Outcome::unchanged);
  EXPECT_EQ(same.service_version, 1u);
  registration.port = 8081;
  auto updated = apply(*db, store::Upsert{registration});
  EXPECT_EQ(updated.outcome, Outcome::updated);
  EXPECT_EQ(updated.service_version, 2u);
  EXPECT_EQ(apply(*db, store::Deregister{"orders", "a1"}).service_version, 3u);
  EXPECT_EQ(db->read_service("orders").version, 3u);
  EXPECT_TRUE(db->read_service("orders").instances.empty());
  // Re-creating the service continues from the old version.
  EXPECT_EQ(apply(*db, store::Upsert{registration}).service_version, 4u);
}

TEST_P(RegistryStoreContract, DeregisterAndHeartbeatOfUnknownInstanceAreNotFound) {
  const auto db = open();
  EXPECT_EQ(apply(*db, store::Deregister{"orders", "nope"}).outcome, Outcome::not_found);
  EXPECT_EQ(apply(*db, store::Heartbeat{"orders", "nope", 1.0}).outcome, Outcome::not_found);
}

TEST_P(RegistryStoreContract, HeartbeatRecordsTimeAndLoadAndOnlyLoadChangesVersion) {
  const auto db = open();
  apply(*db, store::Upsert{make_registration("orders", "a1")});
  auto plain = apply(*db, store::Heartbeat{"orders", "a1", std::nullopt});
  EXPECT_EQ(plain.outcome, Outcome::unchanged);
  EXPECT_EQ(plain.service_version, 1u);
  auto with_load = apply(*db, store::Heartbeat{"orders", "a1", 12.5});
  EXPECT_EQ(with_load.outcome, Outcome::updated);
  EXPECT_EQ(with_load.service_version, 2u);
  const auto instance = db->read_service("orders").instances.at(0);
  EXPECT_EQ(instance.load, 12.5);
  EXPECT_EQ(instance.last_heartbeat_at, kNow);
  // The same load again is not a change.
  EXPECT_EQ(apply(*db, store::Heartbeat{"orders", "a1", 12.5}).outcome, Outcome::unchanged);
}

TEST_P(RegistryStoreContract, ListsOnlyServicesWithInstances) {
  const auto db = open();
  apply(*db, store::Upsert{make_registration("orders", "a1")});
  apply(*db, store::Upsert{make_registration("orders", "a2")});
  apply(*db, store::Upsert{make_registration("payments", "p1")});
  apply(*db, store::Deregister{"payments", "p1"});
  const auto services = db->list_services();
  ASSERT_EQ(services.size(), 1u);
  EXPECT_EQ(services[0].service, "orders");
  EXPECT_EQ(services[0].instance_count, 2u);
}

TEST_P(RegistryStoreContract, RemoveUnhealthyRemovesOnlyTheInstanceThatWasProbed) {
  const auto db = open();
  apply(*db, store::Upsert{make_registration("orders", "a1")});
  apply(*db, store::Upsert{make_registration("orders", "a2")});
  const auto probed = db->read_service("orders").instances;
  // a2 sends a heartbeat after the probe started: it is alive and must stay.
  apply(*db, store::Heartbeat{"orders", "a2", std::nullopt});
  auto removed = apply(*db, store::RemoveUnhealthy{"orders", "a1", probed[0].updated_at,
                                                   probed[0].last_heartbeat_at});
  EXPECT_EQ(removed.outcome, Outcome::removed);
  auto kept = apply(*db, store::RemoveUnhealthy{"orders", "a2", probed[1].updated_at,
                                                probed[1].last_heartbeat_at});
  EXPECT_EQ(kept.outcome, Outcome::unchanged);
  EXPECT_EQ(apply(*db, store::RemoveUnhealthy{"orders", "a1", probed[0].updated_at, {}}).outcome,
            Outcome::not_found);
  const auto left = db->read_service("orders").instances;
  ASSERT_EQ(left.size(), 1u);
  EXPECT_EQ(left[0].id(), "a2");
}

TEST_P(RegistryStoreContract, RemoveUnhealthyKeepsAReRegisteredInstance) {
  const auto db = open();
  apply(*db, store::Upsert{make_registration("orders", "a1")});
  const auto probed = db->read_service("orders").instances.at(0);
  // Re-registered at a new address (later clock) after the probe.
  apply(*db, store::Upsert{make_registration("orders", "a1", "127.0.0.2")}, kNow + 1s);
  EXPECT_EQ(apply(*db, store::RemoveUnhealthy{"orders", "a1", probed.updated_at, {}}).outcome,
            Outcome::unchanged);
  EXPECT_EQ(db->read_service("orders").instances.size(), 1u);
}

// The checker built its removal from the probed row; the client's identical
// re-registration was acknowledged (200) before the removal reached the store.
// The removal must not delete what the client was just told is registered.
TEST_P(RegistryStoreContract, RemoveUnhealthyKeepsAnInstanceReRegisteredIdentically) {
  const auto db = open();
  const auto registration = make_registration("orders", "a1");
  apply(*db, store::Upsert{registration});
  apply(*db, store::RecordChecks{{{"orders", "a1", kNow, 2, 0}}});
  const auto probed = db->read_service("orders").instances.at(0);
  ASSERT_EQ(probed.consecutive_failures, 2u);
  const auto again = apply(*db, store::Upsert{registration});  // same clock, same row
  EXPECT_EQ(again.outcome, Outcome::unchanged);
  EXPECT_EQ(again.service_version, 1u);  // no answer changed: no cache churn
  EXPECT_EQ(again.renewals, probed.renewals + 1);
  const store::RemoveUnhealthy removal{"orders", "a1", probed.updated_at, probed.last_heartbeat_at,
                                       probed.renewals};
  EXPECT_EQ(apply(*db, removal).outcome, Outcome::unchanged);
  const auto kept = db->read_service("orders");
  ASSERT_EQ(kept.instances.size(), 1u);
  EXPECT_EQ(kept.version, 1u);
  EXPECT_EQ(kept.instances[0].consecutive_failures, 0u);  // proof of life
  EXPECT_EQ(kept.instances[0].updated_at, probed.updated_at);
  // A removal based on the renewed row goes through.
  const store::RemoveUnhealthy current{"orders", "a1", probed.updated_at, probed.last_heartbeat_at,
                                       again.renewals};
  EXPECT_EQ(apply(*db, current).outcome, Outcome::removed);
}

// A heartbeat (or identical re-registration) clears the failure count; a check
// record of an earlier probe, applied after it, must not write the old count back,
// also not for the next start (which reads the count from the database).
TEST_P(RegistryStoreContract, ACheckRecordOlderThanAProofOfLifeKeepsItsCountCleared) {
  const auto registration = make_registration("orders", "a1");
  {
    const auto db = open();
    apply(*db, store::Upsert{registration});
    apply(*db, store::RecordChecks{{{"orders", "a1", kNow + 1s, 2, 0}}});
    const auto probed = db->read_service("orders").instances.at(0);
    const auto beat = apply(*db, store::Heartbeat{"orders", "a1", std::nullopt});
    EXPECT_EQ(beat.renewals, probed.renewals + 1);
    apply(*db, store::RecordChecks{{{"orders", "a1", kNow + 2s, 3, probed.renewals}}});
    auto stored = db->read_service("orders").instances.at(0);
    EXPECT_EQ(stored.consecutive_failures, 0u);
    EXPECT_EQ(stored.last_check_at, kNow + 2s);  // the check time is recorded all the same
    // The same after an identical re-registration.
    apply(*db, store::RecordChecks{{{"orders", "a1", kNow + 3s, 1, beat.renewals}}});
    const auto again = apply(*db, store::Upsert{registration});
    apply(*db, store::RecordChecks{{{"orders", "a1", kNow + 4s, 2, beat.renewals}}});
    EXPECT_EQ(db->read_service("orders").instances.at(0).consecutive_failures, 0u);
    // A count based on the current renewals is written.
    apply(*db, store::RecordChecks{{{"orders", "a1", kNow + 5s, 1, again.renewals}}});
    apply(*db, store::RecordChecks{{{"orders", "a1", kNow + 6s, 2, again.renewals}}});
    EXPECT_EQ(db->read_service("orders").instances.at(0).consecutive_failures, 2u);
    apply(*db, store::Heartbeat{"orders", "a1", std::nullopt});
    apply(*db, store::RecordChecks{{{"orders", "a1", kNow + 7s, 3, again.renewals}}});
  }
  const auto reopened = open();
  EXPECT_EQ(reopened->read_all_instances().at(0).consecutive_failures, 0u);
}

TEST_P(RegistryStoreContract, RecordChecksStoresHealthDataWithoutChangingVersions) {
  const auto db = open();
  apply(*db, store::Upsert{make_registration("orders", "a1")});
  apply(*db, store::Upsert{make_registration("payments", "p1")});
  const auto result = apply(*db, store::RecordChecks{{{"orders", "a1", kNow + 5s, 2},
                                                      {"payments", "p1", kNow + 6s, 0},
                                                      {"orders", "gone", kNow, 1}}});
  EXPECT_EQ(result.outcome, Outcome::unchanged);
  const auto all = db->read_all_instances();
  ASSERT_EQ(all.size(), 2u);
  EXPECT_EQ(all[0].id(), "a1");
  EXPECT_EQ(all[0].consecutive_failures, 2u);
  EXPECT_EQ(all[0].last_check_at, kNow + 5s);
  EXPECT_EQ(all[1].id(), "p1");
  EXPECT_EQ(all[1].last_check_at, kNow + 6s);
  EXPECT_EQ(db->read_service("orders").version, 1u);
}

TEST_P(RegistryStoreContract, EveryChangeLeavesAnOutboxEntryUntilConfirmed) {
  const auto db = open();
  apply(*db, store::Upsert{make_registration("orders", "a1")});
  apply(*db, store::Upsert{make_registration("orders", "a2")});
  apply(*db, store::Upsert{make_registration("payments", "p1")});
  apply(*db, store::Deregister{"orders", "missing"});  // no change, no entry
  EXPECT_EQ(db->read_outbox(), (std::vector<store::OutboxEntry>{{"orders", 2}, {"payments", 1}}));
  // Confirming an older version than the latest change keeps the entry.
  const std::vector<store::OutboxEntry> stale = {{"orders", 1}, {"payments", 1}};
  db->apply({}, kNow, stale);
  EXPECT_EQ(db->read_outbox(), (std::vector<store::OutboxEntry>{{"orders", 2}}));
  const std::vector<store::OutboxEntry> current = {{"orders", 2}};
  db->apply({}, kNow, current);
  EXPECT_TRUE(db->read_outbox().empty());
}

TEST_P(RegistryStoreContract, BatchAppliesEachMutationIndependently) {
  const auto db = open();
  std::vector<store::Mutation> batch = {
      store::Upsert{make_registration("orders", "a1")},
      store::Deregister{"orders", "missing"},
      store::Upsert{make_registration("orders", "a2")},
  };
  const auto results = db->apply(batch, kNow);
  ASSERT_EQ(results.size(), 3u);
  EXPECT_EQ(results[0].outcome, Outcome::created);
  EXPECT_EQ(results[1].outcome, Outcome::not_found);
  EXPECT_EQ(results[2].outcome, Outcome::created);
  EXPECT_EQ(db->read_service("orders").instances.size(), 2u);
}

// A new store on the same database (the next start) reads what the last one
// wrote, version included.
TEST_P(RegistryStoreContract, DataSurvivesReopen) {
  {
    const auto db = open();
    apply(*db, store::Upsert{make_registration("orders", "a1")});
  }
  const auto db = open();
  const auto snapshot = db->read_service("orders");
  EXPECT_EQ(snapshot.version, 1u);
  ASSERT_EQ(snapshot.instances.size(), 1u);
  EXPECT_EQ(snapshot.instances[0].registration, make_registration("orders", "a1"));
}

TEST_P(RegistryStoreContract, RefusesANewerSchemaWithAClearError) {
  { const auto db = open(); }
  database().set_schema_version(99);
  try {
    const auto db = open();
    FAIL() << "opened a database from the future";
  } catch (const store::StoreError& error) {
    EXPECT_NE(std::string(error.what()).find("schema version 99"), std::string::npos)
        << error.what();
    EXPECT_NE(std::string(error.what()).find("newer"), std::string::npos) << error.what();
  }
}

INSTANTIATE_TEST_SUITE_P(Backends, RegistryStoreContract,
                         ::testing::Values(Backend::sqlite, Backend::postgres),
                         [](const auto& info) { return backend_name(info.param); });

}  // namespace
}  // namespace contract_test
