// The PostgreSQL store's own tests: a server restart, a refused mutation undone
// by its savepoint, concurrent migration, several stores on one database, the
// status without the password and concurrent reads. The RegistryStore contract
// that the SQLite and PostgreSQL stores share is tested once, against both, in
// tests/store/contract/.
#include <gtest/gtest.h>

#include <atomic>
#include <future>
#include <thread>
#include <vector>

#include "store/postgres/postgres_store.h"
#include "tests/store/postgres/postgres_test_support.h"

namespace {

using namespace std::chrono_literals;
using store::Outcome;
using namespace postgres_test;

// A new store after the server stopped and started again (a new store alone is
// the contract's DataSurvivesReopen) reads what was committed before.
TEST_F(PostgresStoreTest, DataSurvivesAServerRestart) {
  {
    store::PostgresStore db(options());
    apply(db, store::Upsert{make_registration("orders", "a1")});
  }
  server_->stop();
  ASSERT_TRUE(server_->start()) << server_->log();
  store::PostgresStore db(options());
  const auto snapshot = db.read_service("orders");
  EXPECT_EQ(snapshot.version, 1u);
  ASSERT_EQ(snapshot.instances.size(), 1u);
  EXPECT_EQ(snapshot.instances[0].registration, make_registration("orders", "a1"));
}

// A mutation the database refuses (here a trigger) is rolled back to its own
// savepoint: its version bump goes with it, the others of the batch commit.
TEST_F(PostgresStoreTest, AFailingMutationIsUndoneByItsSavepointAlone) {
  store::PostgresStore db(options());
  apply(db, store::Upsert{make_registration("orders", "a1")});
  sql("CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
      "IF NEW.id = 'bad' THEN RAISE EXCEPTION 'refused by the test'; END IF; RETURN NEW; END $$; "
      "CREATE TRIGGER refuse BEFORE INSERT ON instances FOR EACH ROW EXECUTE FUNCTION refuse()");
  const std::vector<store::Mutation> batch = {
      store::Upsert{make_registration("orders", "bad")},
      store::Upsert{make_registration("orders", "good")},
      store::Heartbeat{"orders", "a1", 3.0},
  };
  const auto results = db.apply(batch, kNow);
  ASSERT_EQ(results.size(), 3u);
  EXPECT_EQ(results[0].outcome, Outcome::failed);
  EXPECT_NE(results[0].error.find("refused by the test"), std::string::npos) << results[0].error;
  EXPECT_EQ(results[1].outcome, Outcome::created);
  EXPECT_EQ(results[1].service_version, 2u);  // the failed one's bump was undone
  EXPECT_EQ(results[2].outcome, Outcome::updated);
  EXPECT_EQ(results[2].service_version, 3u);
  const auto snapshot = db.read_service("orders");
  EXPECT_EQ(snapshot.version, 3u);
  ASSERT_EQ(snapshot.instances.size(), 2u);
  EXPECT_EQ(snapshot.instances[0].id(), "a1");
  EXPECT_EQ(snapshot.instances[0].load, 3.0);
  EXPECT_EQ(snapshot.instances[1].id(), "good");
  EXPECT_EQ(db.read_outbox(), (std::vector<store::OutboxEntry>{{"orders", 3}}));
}

// Daemons started together on an empty database: one migrates (under the
// advisory lock), the others wait and find the schema current.
TEST_F(PostgresStoreTest, StoresStartedTogetherOnAnEmptyDatabaseMigrateOnce) {
  constexpr int kStores = 4;
  std::vector<std::future<int>> starts;
  for (int i = 0; i < kStores; ++i) {
    starts.push_back(std::async(std::launch::async, [&] {
      store::PostgresStore db(options());
      return db.schema_version();
    }));
  }
  for (auto& start : starts) EXPECT_EQ(start.get(), store::PostgresStore::kLatestSchemaVersion);
  EXPECT_EQ(sql("SELECT count(*), min(version) FROM schema_version"),
            "1|" + std::to_string(store::PostgresStore::kLatestSchemaVersion));
  EXPECT_EQ(sql("SELECT count(*), min(seq) FROM registry_clock"), "1|0");
}

TEST_F(PostgresStoreTest, TwoStoresOnOneDatabaseSeeEachOthersChanges) {
  store::PostgresStore first(options());
  store::PostgresStore second(options());
  EXPECT_EQ(apply(first, store::Upsert{make_registration("orders", "a1")}).service_version, 1u);
  EXPECT_EQ(second.read_service("orders").instances.size(), 1u);
  // The second continues the first's version and sequence.
  const auto moved = apply(second, store::Upsert{make_registration("orders", "a1", "127.0.0.2")});
  EXPECT_EQ(moved.outcome, Outcome::updated);
  EXPECT_EQ(moved.service_version, 2u);
  EXPECT_EQ(moved.sequence, 2u);
  const auto seen = first.read_service("orders");
  EXPECT_EQ(seen.version, 2u);
  EXPECT_EQ(seen.instances.at(0).registration.address.to_string(), "127.0.0.2");
  EXPECT_EQ(apply(first, store::Deregister{"orders", "a1"}).service_version, 3u);
  EXPECT_TRUE(second.read_service("orders").instances.empty());
  EXPECT_EQ(second.last_sequence(), 3u);
}

TEST_F(PostgresStoreTest, StatusNamesTheServerWithoutThePassword) {
  auto with_password = options();
  // Trust authentication ignores the password; the status must not show it.
  with_password.url =
      "postgresql://discoveryd:hunter2@127.0.0.1:" + std::to_string(server_->port()) + "/" +
      database_;
  store::PostgresStore db(with_password);
  const auto status = db.status();
  EXPECT_EQ(status.backend, "postgresql");
  EXPECT_EQ(status.location, url_);
  EXPECT_EQ(status.location.find("hunter2"), std::string::npos);
  EXPECT_EQ(status.schema_version, store::PostgresStore::kLatestSchemaVersion);
}

// Reads on the pool's connections run side by side and alongside the writer,
// and each sees one committed version (never one that goes back).
TEST_F(PostgresStoreTest, ReadsRunConcurrentlyWithEachOtherAndWithWrites) {
  store::PostgresStore db(options());
  apply(db, store::Upsert{make_registration("orders", "a0")});
  std::atomic<bool> writing{true};
  std::vector<std::future<int>> readers;
  for (int i = 0; i < 6; ++i) {
    readers.push_back(std::async(std::launch::async, [&] {
      std::uint64_t last = 0;
      int reads = 0;
      while (writing || reads == 0) {
        const auto snapshot = db.read_service("orders");
        // Version n has exactly n instances here: one consistent read.
        if (snapshot.version < last || snapshot.instances.size() != snapshot.version) return -1;
        last = snapshot.version;
        ++reads;
      }
      return reads;
    }));
  }
  for (int i = 1; i < 40; ++i) {
    apply(db, store::Upsert{make_registration("orders", "a" + std::to_string(i))});
  }
  writing = false;
  for (auto& reader : readers) EXPECT_GT(reader.get(), 0);
  EXPECT_EQ(db.read_service("orders").version, 40u);
}

}  // namespace
