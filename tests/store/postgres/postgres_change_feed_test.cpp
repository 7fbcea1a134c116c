// The PostgreSQL store's own change-feed test: several writers on one database
// share one gap-free, ordered sequence. The feed's contract (sequences, refused
// mutations, pruning) is tested once, against both stores, in
// tests/store/contract/change_feed_contract_test.cpp.
#include <gtest/gtest.h>

#include <algorithm>
#include <future>
#include <vector>

#include "store/postgres/postgres_store.h"
#include "tests/store/postgres/postgres_test_support.h"

namespace {

using namespace postgres_test;
using store::Outcome;

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
