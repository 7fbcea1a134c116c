// The change feed as the cache's source of coherence: the follower hands over
// every change of another connection in order and none twice; a gap is
// reported; memory stops answering when the feed is not current; two "daemons"
// on one database stay coherent with no Redis at all, and with Redis an entry
// older than a version the feed announced is never served.
#include "store/cache/feed_follower.h"

#include <gtest/gtest.h>

#include <mutex>

#include "store/cache/snapshot_codec.h"
#include "tests/store/cache/cache_test_support.h"

namespace {

using namespace std::chrono_literals;
using namespace cache_test;
using test_support::wait_until;

store::MutationResult apply(store::SqliteStore& db, store::Mutation mutation) {
  return db.apply(std::span(&mutation, 1), store::Clock::now())[0];
}

// What a follower was handed, in order.
struct Received {
  std::mutex mutex;
  std::vector<store::Change> changes;
  int gaps = 0;
  store::FeedFollower::Handlers handlers() {
    return {[this](const std::vector<store::Change>& batch) {
              std::lock_guard lock(mutex);
              changes.insert(changes.end(), batch.begin(), batch.end());
            },
            [this] {
              std::lock_guard lock(mutex);
              ++gaps;
            },
            {}};
  }
  std::size_t count() {
    std::lock_guard lock(mutex);
    return changes.size();
  }
};

class FeedFollowerTest : public ::testing::Test {
 protected:
  test_support::TempDir dir;
  store::SqliteStore writer_db{{dir.file("registry.db")}};
  store::SqliteStore reader_db{{dir.file("registry.db")}};
};

TEST_F(FeedFollowerTest, HandsOverEveryChangeOfAnotherConnectionInOrderAndSkipsOwnOnes) {
  apply(writer_db, store::Upsert{registration("before")});  // before start: not handed over
  Received received;
  store::FeedFollower follower(reader_db, {}, received.handlers());
  follower.start();
  EXPECT_TRUE(follower.current());
  follower.pause_for_test(true);  // so that the skip below comes before the poll
  const auto a1 = apply(writer_db, store::Upsert{registration("a1")});
  const auto own = apply(writer_db, store::Upsert{registration("a2")});
  follower.skip(own.sequence);
  const auto gone = apply(writer_db, store::Deregister{"orders", "a1"});
  apply(writer_db, store::Deregister{"orders", "nobody"});  // not a change: no number
  follower.pause_for_test(false);
  ASSERT_TRUE(wait_until([&] { return follower.stats().applied == gone.sequence; }));
  std::lock_guard lock(received.mutex);
  ASSERT_EQ(received.changes.size(), 2u);
  EXPECT_EQ(received.changes[0].sequence, a1.sequence);
  EXPECT_EQ(received.changes[0].version, a1.service_version);
  EXPECT_EQ(received.changes[1].sequence, gone.sequence);
  EXPECT_EQ(received.changes[1].service, "orders");
  EXPECT_EQ(received.changes[1].version, gone.service_version);
  EXPECT_EQ(follower.stats().skipped, 1u);
  EXPECT_EQ(received.gaps, 0);
}

TEST_F(FeedFollowerTest, StopsBeingCurrentWithinTheLagWhenTheFeedCannotBeReadAndRecovers) {
  Received received;
  store::FeedOptions options;
  options.max_lag = 200ms;
  store::FeedFollower follower(reader_db, options, received.handlers());
  follower.start();
  ASSERT_TRUE(follower.current());
  follower.pause_for_test(true);
  const auto paused_at = std::chrono::steady_clock::now();
  ASSERT_TRUE(wait_until([&] { return !follower.current(); }, 2s));
  EXPECT_LE(std::chrono::steady_clock::now() - paused_at, 200ms + 400ms);
  apply(writer_db, store::Upsert{registration("a1")});
  EXPECT_FALSE(follower.current());
  follower.pause_for_test(false);
  ASSERT_TRUE(wait_until([&] { return follower.current(); }));
  // Current again only once the change made meanwhile was handed over.
  EXPECT_EQ(received.count(), 1u);
}

TEST_F(FeedFollowerTest, FallingBehindTheRetentionIsReportedAsAGap) {
  store::SqliteStore pruning_db{{dir.file("registry.db"), true, 2000ms, /*retention=*/10}};
  Received received;
  store::FeedFollower follower(reader_db, {}, received.handlers());
  follower.start();
  follower.pause_for_test(true);
  std::vector<store::Mutation> batch;
  for (int i = 0; i < 1100; ++i) batch.push_back(store::Upsert{registration(std::to_string(i))});
  const auto results = pruning_db.apply(batch, store::Clock::now());  // prunes at 1024
  follower.pause_for_test(false);
  ASSERT_TRUE(wait_until([&] { return follower.stats().applied == results.back().sequence; }));
  EXPECT_EQ(follower.stats().gaps, 1u);
  std::lock_guard lock(received.mutex);
  EXPECT_EQ(received.gaps, 1);
  EXPECT_TRUE(received.changes.empty());
}

// Two "daemons" on one database and no Redis: before the feed, the near cache
// of one could not learn of the other's changes.
TEST(FeedCoherence, WithoutRedisTwoDaemonsNearCachesFollowEachOthersChanges) {
  test_support::TempDir dir;
  store::CacheOptions options;
  Node reader(dir.file("registry.db"), options);
  Node writer(dir.file("registry.db"), options);
  writer.commit(store::Upsert{registration("a1")});
  ASSERT_TRUE(wait_until([&] { return reader.ids() == std::vector<std::string>{"a1"}; }));
  ASSERT_NE(reader.cache->find_cached("orders"), nullptr);
  writer.commit(store::Upsert{registration("a2")});
  ASSERT_TRUE(wait_until([&] { return reader.cache->find_cached("orders") == nullptr; }));
  EXPECT_EQ(reader.ids(), (std::vector<std::string>{"a1", "a2"}));
  EXPECT_GE(reader.cache->stats().feed.changes, 2u);
}

// A daemon that cannot confirm the feed is current answers from the database,
// never from memory, so another daemon's change is seen at once.
TEST(FeedCoherence, MemoryDoesNotAnswerWhileTheFeedIsBehind) {
  test_support::TempDir dir;
  store::CacheOptions options;
  options.feed.max_lag = 200ms;
  Node reader(dir.file("registry.db"), options);
  Node writer(dir.file("registry.db"), {});
  writer.commit(store::Upsert{registration("a1")});
  ASSERT_TRUE(wait_until([&] { return reader.ids() == std::vector<std::string>{"a1"}; }));
  ASSERT_NE(reader.cache->find_cached("orders"), nullptr);
  reader.cache->pause_feed_for_test(true);
  ASSERT_TRUE(wait_until([&] { return reader.cache->find_cached("orders") == nullptr; }, 2s));
  EXPECT_FALSE(reader.cache->stats().known_names_active);
  writer.commit(store::Deregister{"orders", "a1"});
  EXPECT_TRUE(reader.ids().empty());  // read from the database: the feed is not heard
  reader.cache->pause_feed_for_test(false);
  ASSERT_TRUE(wait_until([&] { return reader.cache->stats().feed.current; }));
  writer.commit(store::Upsert{registration("a3")});
  EXPECT_TRUE(wait_until([&] { return reader.ids() == std::vector<std::string>{"a3"}; }));
}

// Redis holds an entry older than the service's newest change and no fence (it
// was evicted, or the invalidation never reached Redis): a daemon that heard of
// the change through the feed does not serve it.
TEST_F(ServiceCacheTest, ARedisEntryOlderThanTheFeedsVersionIsNeverServed) {
  auto reader = make_node(options(/*near_cache=*/true));
  auto writer = make_node(options());
  const auto first = writer->commit(store::Upsert{registration("a1")});
  ASSERT_TRUE(wait_until([&] { return reader->ids() == std::vector<std::string>{"a1"}; }));
  ASSERT_TRUE(wait_until([&] { return redis_has("t:svc:orders"); }));
  const auto stale = redis_get("t:svc:orders");
  ASSERT_EQ(stale.rfind("s1", 0), 0u) << "the reader filled Redis";
  const auto second = writer->commit(store::Upsert{registration("a2")});
  ASSERT_GT(second.service_version, first.service_version);
  ASSERT_TRUE(wait_until([&] { return reader->cache->stats().feed.applied >= second.sequence; }));
  // The old entry comes back, its fence gone.
  std::string value = stale;
  while (!value.empty() && value.back() == '\n') value.pop_back();
  redis.run_cli({"DEL", "t:fence:orders"});
  redis.run_cli({"SET", "t:svc:orders", value});
  EXPECT_EQ(reader->ids(), (std::vector<std::string>{"a1", "a2"}));
  EXPECT_EQ(reader->cache->stats().redis_stale, 1u);
}

}  // namespace
