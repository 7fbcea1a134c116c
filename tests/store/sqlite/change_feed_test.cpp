// The SQLite store's change feed: every committed change gets the next
// sequence number in its own transaction, with no gaps (a refused mutation
// takes none), readable from any point; old changes are pruned.
#include <SQLiteCpp/SQLiteCpp.h>
#include <gtest/gtest.h>

#include <vector>

#include "store/sqlite/sqlite_store.h"
#include "tests/store/store_test_support.h"

namespace {

using namespace store_test;
using store::Outcome;

std::vector<std::uint64_t> sequences(const std::vector<store::Change>& changes) {
  std::vector<std::uint64_t> result;
  for (const auto& change : changes) result.push_back(change.sequence);
  return result;
}

TEST_F(SqliteStoreTest, EveryChangeGetsTheNextSequenceInItsTransaction) {
  store::SqliteStore db({path});
  EXPECT_EQ(db.last_sequence(), 0u);
  const std::vector<store::Mutation> batch = {
      store::Upsert{make_registration("orders", "a1")},
      store::Upsert{make_registration("orders", "a1")},  // identical: no change
      store::Upsert{make_registration("payments", "p1")},
      store::Deregister{"orders", "missing"},  // not_found: no change
      store::Deregister{"orders", "a1"},
  };
  const auto results = db.apply(batch, kNow);
  EXPECT_EQ(results[0].sequence, 1u);
  EXPECT_EQ(results[1].outcome, Outcome::unchanged);
  EXPECT_EQ(results[1].sequence, 0u);
  EXPECT_EQ(results[2].sequence, 2u);
  EXPECT_EQ(results[3].sequence, 0u);
  EXPECT_EQ(results[4].sequence, 3u);
  EXPECT_EQ(db.last_sequence(), 3u);
  const auto changes = db.read_changes(0, 100);
  ASSERT_EQ(changes.size(), 3u);
  EXPECT_EQ(changes[0], (store::Change{1, "orders", 1, kNow}));
  EXPECT_EQ(changes[1], (store::Change{2, "payments", 1, kNow}));
  EXPECT_EQ(changes[2], (store::Change{3, "orders", 2, kNow}));
  // From any point, at most `limit`.
  EXPECT_EQ(sequences(db.read_changes(1, 1)), (std::vector<std::uint64_t>{2}));
  EXPECT_TRUE(db.read_changes(3, 100).empty());
  // The next batch continues the sequence.
  EXPECT_EQ(apply(db, store::Upsert{make_registration("orders", "a2")}).sequence, 4u);
}

TEST_F(SqliteStoreTest, ARefusedMutationTakesNoSequenceNumber) {
  store::SqliteStore db({path});
  apply(db, store::Upsert{make_registration("orders", "a1")});
  {
    // A trigger makes one registration fail inside its savepoint.
    SQLite::Database raw(path, SQLite::OPEN_READWRITE);
    raw.exec(
        "CREATE TRIGGER refuse BEFORE INSERT ON instances WHEN NEW.id = 'bad' "
        "BEGIN SELECT RAISE(ABORT, 'refused'); END");
  }
  const std::vector<store::Mutation> batch = {
      store::Upsert{make_registration("orders", "bad")},
      store::Upsert{make_registration("orders", "good")},
  };
  const auto results = db.apply(batch, kNow);
  EXPECT_EQ(results[0].outcome, Outcome::failed);
  EXPECT_EQ(results[1].outcome, Outcome::created);
  EXPECT_EQ(results[1].sequence, 2u);
  EXPECT_EQ(sequences(db.read_changes(0, 100)), (std::vector<std::uint64_t>{1, 2}));
}

TEST_F(SqliteStoreTest, OldChangesArePrunedBeyondTheRetention) {
  store::SqliteStore db({.path = path, .change_retention = 100});
  for (int i = 0; i < 1100; ++i) {
    apply(db,
          store::Upsert{make_registration("svc" + std::to_string(i % 7), "i" + std::to_string(i))});
  }
  EXPECT_EQ(db.last_sequence(), 1100u);
  // Pruned at sequence 1024 down to its last 100: the first kept is 925.
  const auto kept = db.read_changes(0, 10);
  ASSERT_FALSE(kept.empty());
  EXPECT_EQ(kept.front().sequence, 925u);
  EXPECT_EQ(db.read_changes(1099, 10).size(), 1u);
}

TEST_F(SqliteStoreTest, ADatabaseFromBeforeTheFeedStartsItAtZero) {
  {
    store::SqliteStore old_db({path}, 4);
    apply(old_db, store::Upsert{make_registration("orders", "a1")});
    EXPECT_EQ(old_db.schema_version(), 4);
  }
  store::SqliteStore db({path});
  EXPECT_EQ(db.schema_version(), store::SqliteStore::kLatestSchemaVersion);
  EXPECT_EQ(db.last_sequence(), 0u);
  EXPECT_TRUE(db.read_changes(0, 10).empty());
  EXPECT_EQ(apply(db, store::Upsert{make_registration("orders", "a2")}).sequence, 1u);
}

}  // namespace
