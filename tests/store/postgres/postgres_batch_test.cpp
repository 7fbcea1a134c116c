// The writer's batches against a real server: one batch that touches an
// instance many times commits exactly what its results say (the in-memory plan
// agrees with the database), writes look rows up by key however the tables
// grew, and the pipeline reports the statement that failed.
#include <gtest/gtest.h>

#include "store/postgres/pg_connection.h"
#include "store/postgres/postgres_store.h"
#include "tests/store/postgres/postgres_test_support.h"

namespace {

using namespace std::chrono_literals;
using store::Outcome;
using namespace postgres_test;

TEST_F(PostgresStoreTest, ABatchTouchingOneInstanceManyTimesCommitsWhatItsResultsSay) {
  store::PostgresStore db(options());
  const auto reg = make_registration("orders", "a1");
  auto moved = reg;
  moved.port = 9090;
  const std::vector<store::Mutation> batch = {
      store::Upsert{reg},
      store::Upsert{reg},  // identical: a renewal
      store::Heartbeat{"orders", "a1", 1.5},
      store::ReportLoad{"orders", "a1", 2.0},
      store::RecordChecks{{{"orders", "a1", kNow, 3, 2}}},  // at renewals 2: counts
      store::Deregister{"orders", "a1"},
      store::Upsert{moved},
      store::Deregister{"orders", "missing"},
  };
  const auto results = db.apply(batch, kNow);
  ASSERT_EQ(results.size(), batch.size());
  const std::vector<Outcome> outcomes = {Outcome::created, Outcome::unchanged, Outcome::updated,
                                         Outcome::updated, Outcome::unchanged, Outcome::removed,
                                         Outcome::created, Outcome::not_found};
  for (std::size_t i = 0; i < batch.size(); ++i) {
    EXPECT_EQ(results[i].outcome, outcomes[i]) << i << ": " << results[i].error;
    EXPECT_EQ(results[i].observed_sequence, 5u) << i;
  }
  EXPECT_EQ(results[1].renewals, 1u);
  EXPECT_EQ(results[2].renewals, 2u);
  EXPECT_EQ(results[5].service_version, 4u);
  EXPECT_EQ(results[6].service_version, 5u);
  EXPECT_EQ(results[7].service_version, 5u);

  const auto snapshot = db.read_service("orders");
  EXPECT_EQ(snapshot.version, 5u);
  ASSERT_EQ(snapshot.instances.size(), 1u);
  EXPECT_EQ(snapshot.instances[0].registration, moved);
  EXPECT_EQ(snapshot.instances[0].renewals, 0u);  // a new row
  const auto changes = db.read_changes(0, 100);
  ASSERT_EQ(changes.size(), 5u);
  for (std::size_t i = 0; i < changes.size(); ++i) {
    EXPECT_EQ(changes[i].sequence, i + 1);
    EXPECT_EQ(changes[i].version, i + 1);
  }
  EXPECT_EQ(db.read_outbox(), (std::vector<store::OutboxEntry>{{"orders", 5}}));
}

// Statements are prepared once and run a generic plan: one planned while the
// table was empty must still find rows by key once it holds thousands, not
// scan it on every batch (a hash join over the whole table did, at 3x the
// server's CPU per registration).
TEST_F(PostgresStoreTest, WritesAndReadsFindRowsByKeyAfterTheTablesGrewFromEmpty) {
  store::PostgresStore db(options());
  const auto table_stat = [&](const std::string& column, const std::string& table = "instances") {
    return std::stoll(sql("SELECT coalesce(sum(" + column +
                          "), 0) FROM pg_stat_user_tables WHERE relname = '" + table + "'"));
  };
  // A backend flushes its table statistics when it goes idle, at most once a
  // second: keep the writer's busy with empty batches until they show.
  const auto wait_for_inserts = [&](long long inserts) {
    return test_support::wait_until(
        [&] {
          apply(db, store::Deregister{"orders", "missing"});
          return table_stat("n_tup_ins") >= inserts;
        },
        10s, 100ms);
  };
  for (int i = 0; i < 10; ++i) {  // plans made on an empty table, then cached
    apply(db, store::Upsert{make_registration("orders", "first" + std::to_string(i))});
    db.read_service("orders");
    db.read_changes(0, 10);
  }
  ASSERT_TRUE(wait_for_inserts(10));
  const long long scans_before = table_stat("seq_scan");
  int next = 0;
  for (int round = 0; round < 40; ++round) {
    std::vector<store::Mutation> batch;
    std::vector<store::CheckRecord> checks;
    for (int i = 0; i < 50; ++i, ++next) {
      const std::string id = "i" + std::to_string(next);
      batch.push_back(store::Upsert{make_registration("svc" + std::to_string(next % 7), id)});
      checks.push_back({"svc" + std::to_string(next % 7), id, kNow, 0, 0});
    }
    batch.push_back(store::Heartbeat{"orders", "first1", std::nullopt});
    batch.push_back(store::RecordChecks{checks});
    for (const auto& result : db.apply(batch, kNow)) {
      ASSERT_NE(result.outcome, Outcome::failed) << result.error;
    }
  }
  ASSERT_TRUE(wait_for_inserts(10 + 2000));
  EXPECT_EQ(table_stat("seq_scan"), scans_before);

  // The reads with parameters (prepared too): a service's rows, the feed.
  const long long instance_scans = table_stat("seq_scan");
  const long long feed_scans = table_stat("seq_scan", "changes");
  const long long lookups = table_stat("idx_scan");
  for (int i = 0; i < 20; ++i) {
    EXPECT_EQ(db.read_service("svc" + std::to_string(i % 7)).instances.size(),
              i % 7 < 5 ? 286u : 285u);
    EXPECT_EQ(db.read_changes(1990, 5).size(), 5u);
  }
  // Each reader backend flushes its statistics when idle, at most once a second.
  ASSERT_TRUE(test_support::wait_until(
      [&] {
        db.read_service("svc0");
        db.read_changes(1990, 5);
        return table_stat("idx_scan") >= lookups + 20;
      },
      10s, 100ms));
  EXPECT_EQ(table_stat("seq_scan"), instance_scans);
  EXPECT_EQ(table_stat("seq_scan", "changes"), feed_scans);
}

TEST_F(PostgresStoreTest, APipelineReportsTheStatementThatFailedAndSkipsTheRest) {
  store::PostgresOptions settings = options();
  store::postgres::Connection connection(settings);
  using store::postgres::param;
  const std::vector<store::postgres::Statement> statements = {
      {"SELECT $1::bigint + 1", {param(std::int64_t{41})}},
      {"SELECT 1 / $1::bigint", {param(std::int64_t{0})}},
      {"SELECT $1::text", {param("never runs")}},
  };
  try {
    connection.exec_pipeline(statements);
    FAIL() << "no error";
  } catch (const store::postgres::PgError& error) {
    EXPECT_NE(std::string(error.what()).find("division by zero"), std::string::npos)
        << error.what();
    EXPECT_FALSE(error.connection_lost());
  }
  ASSERT_TRUE(connection.usable());
  // Each prepared once: the statements prepared in the failed pipeline (also
  // the one that never ran) work from here on.
  const auto results = connection.exec_pipeline(std::vector<store::postgres::Statement>{
      statements[0], {"SELECT 1 / $1::bigint", {param(std::int64_t{1})}}, statements[2]});
  ASSERT_EQ(results.size(), 3u);
  EXPECT_EQ(results[0].int64(0, 0), 42);
  EXPECT_EQ(results[1].int64(0, 0), 1);
  EXPECT_EQ(results[2].string(0, 0), "never runs");
  // A statement that does not parse is not remembered as prepared either.
  EXPECT_THROW(connection.exec_pipeline(std::vector<store::postgres::Statement>{{"SELEC 1", {}}}),
               store::postgres::PgError);
  EXPECT_THROW(connection.exec_pipeline(std::vector<store::postgres::Statement>{{"SELEC 1", {}}}),
               store::postgres::PgError);
  EXPECT_EQ(connection.exec("SELECT 7").int64(0, 0), 7);
}

}  // namespace
