// The SQLite store's own change-feed test: a database from before the feed
// (schema 4) starts it at zero. The feed's contract (sequences, refused
// mutations, pruning) is tested once, against both stores, in
// tests/store/contract/change_feed_contract_test.cpp.
#include <gtest/gtest.h>

#include "store/sqlite/sqlite_store.h"
#include "tests/store/store_test_support.h"

namespace {

using namespace store_test;

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
