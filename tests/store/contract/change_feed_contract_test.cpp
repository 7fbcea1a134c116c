// The change feed's contract (store/registry_store.h, Change), written once and
// run against both backends: every committed change gets the next sequence
// number in its own transaction, with no gaps (a refused mutation takes none),
// readable from any point; old changes are pruned beyond the retention. These
// tests used to exist twice (tests/store/sqlite/change_feed_test.cpp and its
// PostgreSQL port); what only one backend has stays in those files.
#include <gtest/gtest.h>

#include <vector>

#include "tests/store/contract/registry_store_contract.h"

namespace contract_test {
namespace {

using store::Outcome;

// The same fixture as the store's contract, its own suite name.
class ChangeFeedContract : public RegistryStoreContract {};

std::vector<std::uint64_t> sequences(const std::vector<store::Change>& changes) {
  std::vector<std::uint64_t> result;
  for (const auto& change : changes) result.push_back(change.sequence);
  return result;
}

TEST_P(ChangeFeedContract, EveryChangeGetsTheNextSequenceInItsTransaction) {
  const auto db = open();
  EXPECT_EQ(db->last_sequence(), 0u);
  const std::vector<store::Mutation> batch = {
      store::Upsert{make_registration("orders", "a1")},
      store::Upsert{make_registration("orders", "a1")},  // identical: no change
      store::Upsert{make_registration("payments", "p1")},
      store::Deregister{"orders", "missing"},  // not_found: no change
      store::Deregister{"orders", "a1"},
  };
  const auto results = db->apply(batch, kNow);
  ASSERT_EQ(results.size(), batch.size());
  EXPECT_EQ(results[0].sequence, 1u);
  EXPECT_EQ(results[1].outcome, Outcome::unchanged);
  EXPECT_EQ(results[1].sequence, 0u);
  EXPECT_EQ(results[2].sequence, 2u);
  EXPECT_EQ(results[3].sequence, 0u);
  EXPECT_EQ(results[4].sequence, 3u);
  EXPECT_EQ(db->last_sequence(), 3u);
  const auto changes = db->read_changes(0, 100);
  ASSERT_EQ(changes.size(), 3u);
  EXPECT_EQ(changes[0], (store::Change{1, "orders", 1, kNow}));
  EXPECT_EQ(changes[1], (store::Change{2, "payments", 1, kNow}));
  EXPECT_EQ(changes[2], (store::Change{3, "orders", 2, kNow}));
  // From any point, at most `limit`.
  EXPECT_EQ(sequences(db->read_changes(1, 1)), (std::vector<std::uint64_t>{2}));
  EXPECT_TRUE(db->read_changes(3, 100).empty());
  // The next batch continues the sequence.
  EXPECT_EQ(apply(*db, store::Upsert{make_registration("orders", "a2")}).sequence, 4u);
}

TEST_P(ChangeFeedContract, ARefusedMutationTakesNoSequenceNumber) {
  const auto db = open();
  apply(*db, store::Upsert{make_registration("orders", "a1")});
  // A trigger makes one registration fail inside its savepoint.
  database().refuse_instance("bad", "refused");
  const std::vector<store::Mutation> batch = {
      store::Upsert{make_registration("orders", "bad")},
      store::Upsert{make_registration("orders", "good")},
  };
  const auto results = db->apply(batch, kNow);
  ASSERT_EQ(results.size(), batch.size());
  EXPECT_EQ(results[0].outcome, Outcome::failed);
  EXPECT_EQ(results[0].sequence, 0u);
  EXPECT_EQ(results[1].outcome, Outcome::created);
  EXPECT_EQ(results[1].sequence, 2u);
  EXPECT_EQ(sequences(db->read_changes(0, 100)), (std::vector<std::uint64_t>{1, 2}));
  EXPECT_EQ(db->last_sequence(), 2u);
}

TEST_P(ChangeFeedContract, OldChangesArePrunedBeyondTheRetention) {
  const auto db = open({.change_retention = 100});
  for (int i = 0; i < 1100; ++i) {
    apply(*db,
          store::Upsert{make_registration("svc" + std::to_string(i % 7), "i" + std::to_string(i))});
  }
  EXPECT_EQ(db->last_sequence(), 1100u);
  // Pruned at sequence 1024 down to its last 100: the first kept is 925.
  const auto kept = db->read_changes(0, 10);
  ASSERT_FALSE(kept.empty());
  EXPECT_EQ(kept.front().sequence, 925u);
  EXPECT_EQ(db->read_changes(1099, 10).size(), 1u);
}

INSTANTIATE_TEST_SUITE_P(Backends, ChangeFeedContract,
                         ::testing::Values(Backend::sqlite, Backend::postgres),
                         [](const auto& info) { return backend_name(info.param); });

}  // namespace
}  // namespace contract_test
