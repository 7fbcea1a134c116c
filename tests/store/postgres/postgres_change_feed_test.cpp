// The change feed on PostgreSQL: the SQLite store's feed tests
// (tests/store/sqlite/change_feed_test.cpp) ported, plus several writers on one
// database sharing one gap-free, ordered sequence.
#include <gtest/gtest.h>

#include <algorithm>
#include <future>
#include <vector>

#include "store/postgres/postgres_store.h"
#include "tests/store/postgres/postgres_test_support.h"

namespace {

using namespace postgres_test;
using store::Outcome;

std::vector<std::uint64_t> sequences(const std::vector<store::Change>& changes) {
  std::vector<std::uint64_t> result;
  for (const auto& change : changes) result.push_back(change.sequence);
  return result;
}

TEST_F(PostgresStoreTest, EveryChangeGetsTheNextSequenceInItsTransaction) {
  store::PostgresStore db(options());
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

TEST_F(PostgresStoreTest, ARefusedMutationTakesNoSequenceNumber) {
  store::PostgresStore db(options());
  apply(db, store::Upsert{make_registration("orders", "a1")});
  // A trigger makes one registration fail inside its savepoint.
  sql("CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
      "IF NEW.id = 'bad' THEN RAISE EXCEPTION 'refused'; END IF; RETURN NEW; END $$; "
      "CREATE TRIGGER refuse BEFORE INSERT ON instances FOR EACH ROW EXECUTE FUNCTION refuse()");
  const std::vector<store::Mutation> batch = {
      store::Upsert{make_registration("orders", "bad")},
      store::Upsert{make_registration("orders", "good")},
  };
  const auto results = db.apply(batch, kNow);
  EXPECT_EQ(results[0].outcome, Outcome::failed);
  EXPECT_EQ(results[0].sequence, 0u);
  EXPECT_EQ(results[1].outcome, Outcome::created);
  EXPECT_EQ(results[1].sequence, 2u);
  EXPECT_EQ(sequences(db.read_changes(0, 100)), (std::vector<std::uint64_t>{1, 2}));
  EXPECT_EQ(db.last_sequence(), 2u);
}

TEST_F(PostgresStoreTest, OldChangesArePrunedBeyondTheRetention) {
  auto pruning = options();
  pruning.change_retention = 100;
  store::PostgresStore db(pruning);
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

// Two daemons writing at the same time: the clock row orders them, so the feed
// is 1..N with no gap and no number twice, and every result's sequence is the
// entry of its own change.
TEST_F(PostgresStoreTest, SequencesFromTwoWritersInterleaveGapFree) {
  constexpr int kBatches = 60;
  store::PostgresStore first(options());
  store::PostgresStore second(options());
  const auto write = [&](store::PostgresStore& db, const std::string& service) {
    std::vector<std::pair<std::uint64_t, std::uint64_t>> seen;  // sequence, version
    for (int i = 0; i < kBatches; ++i) {
      const std::vector<store::Mutation> batch = {
          store::Upsert{make_registration(service, "i" + std::to_string(i))},
          store::Upsert{make_registration("shared", service + std::to_string(i))}};
      for (const auto& result : db.apply(batch, kNow)) {
        if (result.outcome != Outcome::created) return decltype(seen){};
        seen.emplace_back(result.sequence, result.service_version);
      }
    }
    return seen;
  };
  auto a = std::async(std::launch::async, write, std::ref(first), "alpha");
  auto b = std::async(std::launch::async, write, std::ref(second), "beta");
  auto results = a.get();
  const auto from_b = b.get();
  ASSERT_EQ(results.size(), 2u * kBatches);
  ASSERT_EQ(from_b.size(), 2u * kBatches);
  results.insert(results.end(), from_b.begin(), from_b.end());
  std::sort(results.begin(), results.end());
  const auto feed = first.read_changes(0, 1000);
  ASSERT_EQ(feed.size(), 4u * kBatches);
  std::uint64_t shared_version = 0;
  for (std::size_t i = 0; i < feed.size(); ++i) {
    EXPECT_EQ(feed[i].sequence, i + 1);
    EXPECT_EQ(results[i].first, i + 1);
    EXPECT_EQ(results[i].second, feed[i].version);
    // One service written by both: its versions follow the feed's order.
    if (feed[i].service == "shared") {
      EXPECT_EQ(feed[i].version, ++shared_version);
    }
  }
  EXPECT_EQ(second.last_sequence(), 4u * kBatches);
}

}  // namespace
