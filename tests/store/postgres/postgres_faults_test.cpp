// The PostgreSQL store when the server goes away, hangs, or another session
// holds a lock: failures name their cause, nothing is half-applied, and the
// same store object works again once the cause is gone.
#include <gtest/gtest.h>

#include <future>
#include <thread>

#include "store/postgres/postgres_store.h"
#include "tests/store/postgres/postgres_test_support.h"
#include "tests/support/process.h"

namespace {

using namespace std::chrono_literals;
using namespace postgres_test;
using store::Outcome;

bool starts_with(const std::string& text, const std::string& prefix) {
  return text.rfind(prefix, 0) == 0;
}

TEST_F(PostgresStoreTest, AStoreOnAServerThatIsNotThereFailsToOpenWithoutShowingThePassword) {
  auto nowhere = options();
  nowhere.url =
      "postgresql://discoveryd:hunter2@127.0.0.1:" + std::to_string(test_support::free_port()) +
      "/" + database_;
  try {
    store::PostgresStore db(nowhere);
    FAIL() << "opened a store on a closed port";
  } catch (const store::StoreError& error) {
    const std::string message = error.what();
    EXPECT_NE(message.find("database unavailable: "), std::string::npos) << message;
    EXPECT_EQ(message.find("hunter2"), std::string::npos) << message;
  }
}

TEST_F(PostgresStoreTest, WritesFailAsUnavailableWhileTheServerIsDownAndRecoverAfterARestart) {
  store::PostgresStore db(options());
  ASSERT_EQ(apply(db, store::Upsert{make_registration("orders", "a1")}).outcome, Outcome::created);
  server_->kill();
  const std::vector<store::Mutation> batch = {store::Upsert{make_registration("orders", "a2")},
                                              store::Deregister{"orders", "a1"}};
  const auto results = db.apply(batch, kNow);
  ASSERT_EQ(results.size(), 2u);
  for (const auto& result : results) {
    EXPECT_EQ(result.outcome, Outcome::failed);
    EXPECT_TRUE(starts_with(result.error, "database unavailable: ")) << result.error;
  }
  // Still down: the next write tries to reconnect and fails the same way.
  const auto again = apply(db, store::Upsert{make_registration("orders", "a2")});
  EXPECT_TRUE(starts_with(again.error, "database unavailable: ")) << again.error;
  try {
    db.read_service("orders");
    FAIL() << "a read succeeded with the server down";
  } catch (const store::StoreError& error) {
    EXPECT_TRUE(starts_with(error.what(), "database unavailable: ")) << error.what();
  }
  EXPECT_THROW(db.status(), store::StoreError);

  ASSERT_TRUE(server_->restart()) << server_->log();
  // The same store object: no restart of ours needed.
  const auto created = apply(db, store::Upsert{make_registration("orders", "a2")});
  EXPECT_EQ(created.outcome, Outcome::created) << created.error;
  EXPECT_EQ(created.service_version, 2u);  // nothing of the failed batch was applied
  EXPECT_EQ(created.sequence, 2u);
  const auto snapshot = db.read_service("orders");
  EXPECT_EQ(snapshot.instances.size(), 2u);
  EXPECT_EQ(db.status().schema_version, store::PostgresStore::kLatestSchemaVersion);
}

// The writer's session was terminated while idle (a failover, an operator's
// pg_terminate_backend): the batch finds it dead before COMMIT was sent, so it
// reconnects and runs the transaction once more, and the caller sees no error.
TEST_F(PostgresStoreTest, AWriteWhoseIdleConnectionWasTerminatedIsRetriedOnce) {
  store::PostgresStore db(options());
  ASSERT_EQ(apply(db, store::Upsert{make_registration("orders", "a1")}).outcome, Outcome::created);
  ASSERT_NO_THROW(db.read_service("orders"));
  const auto terminated =
      sql("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
          "WHERE application_name = 'discoveryd' AND datname = current_database() "
          "AND pid <> pg_backend_pid()");
  ASSERT_EQ(terminated, "2");  // the writer and one reader
  ASSERT_TRUE(test_support::wait_until([&] {
    return sql("SELECT count(*) FROM pg_stat_activity WHERE application_name = 'discoveryd' "
               "AND datname = current_database()") == "0";
  }));
  const auto result = apply(db, store::Upsert{make_registration("orders", "a2")});
  EXPECT_EQ(result.outcome, Outcome::created) << result.error;
  EXPECT_EQ(result.sequence, 2u);
  // The read pool replaces its dead connection: at most one read fails.
  bool read_ok = false;
  for (int attempt = 0; attempt < 2 && !read_ok; ++attempt) {
    try {
      read_ok = db.read_service("orders").instances.size() == 2;
    } catch (const store::StoreError& error) {
      EXPECT_TRUE(starts_with(error.what(), "database unavailable: ")) << error.what();
    }
  }
  EXPECT_TRUE(read_ok);
}

// Another session holds the clock row (another daemon's long transaction): the
// write waits at most lock_timeout, fails as "busy", and succeeds once the lock
// is released.
TEST_F(PostgresStoreTest, AWriteBlockedByAnotherSessionsLockFailsAsBusy) {
  auto impatient = options();
  impatient.statement_timeout = 300ms;
  store::PostgresStore db(impatient);
  auto holder = std::async(std::launch::async, [&] {
    return sql("BEGIN; SELECT seq FROM registry_clock FOR UPDATE; SELECT pg_sleep(2); COMMIT");
  });
  ASSERT_TRUE(test_support::wait_until([&] {
    return sql("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
               "AND query LIKE '%pg_sleep(2)%' AND state = 'active' "
               "AND pid <> pg_backend_pid()") == "1";
  }));
  const auto blocked = apply(db, store::Upsert{make_registration("orders", "a1")});
  EXPECT_EQ(blocked.outcome, Outcome::failed);
  EXPECT_TRUE(starts_with(blocked.error, "database busy: ")) << blocked.error;
  holder.get();
  const auto result = apply(db, store::Upsert{make_registration("orders", "a1")});
  EXPECT_EQ(result.outcome, Outcome::created) << result.error;
  EXPECT_EQ(result.service_version, 1u);
  EXPECT_EQ(result.sequence, 1u);
}

// A server that stops answering without closing its sockets (SIGSTOP: the
// kernel still acknowledges) must not block a caller for ever.
TEST_F(PostgresStoreTest, AHungServerFailsWritesAndReadsWithinTheTimeout) {
  auto impatient = options();
  impatient.statement_timeout = 300ms;
  store::PostgresStore db(impatient);
  ASSERT_EQ(apply(db, store::Upsert{make_registration("orders", "a1")}).outcome, Outcome::created);
  server_->pause();
  const auto started = std::chrono::steady_clock::now();
  const auto result = apply(db, store::Upsert{make_registration("orders", "a2")});
  EXPECT_EQ(result.outcome, Outcome::failed);
  EXPECT_TRUE(starts_with(result.error, "database unavailable: ")) << result.error;
  EXPECT_THROW(db.read_service("orders"), store::StoreError);
  // The answer timeout (300 ms + 1 s), then reconnecting (connect_timeout).
  EXPECT_LT(std::chrono::steady_clock::now() - started, 15s);
  server_->resume();
  EXPECT_TRUE(test_support::wait_until([&] {
    return apply(db, store::Upsert{make_registration("orders", "a2")}).outcome == Outcome::created;
  }));
}

}  // namespace
