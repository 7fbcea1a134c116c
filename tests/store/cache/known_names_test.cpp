// Names that are not registered cost nothing: no Redis, no SQLite, nothing
// cached; the set of known names follows every change, the daemon's own and
// another daemon's (through the change feed, with or without Redis); lookups in flight are bounded;
// cold entries never push hot ones out of the near cache.
#include <gtest/gtest.h>

#include "store/cache/near_cache.h"
#include "tests/store/cache/cache_test_support.h"

namespace {

using namespace std::chrono_literals;
using namespace cache_test;
using test_support::wait_until;

store::Registration registration_of(std::string service, std::string id) {
  auto r = registration(std::move(id), "127.0.0.1");
  r.service = std::move(service);
  return r;
}

std::size_t redis_key_count(const test_support::RedisServer& redis) {
  return static_cast<std::size_t>(std::stoul(redis.run_cli({"DBSIZE"})));
}

class KnownNamesTest : public ServiceCacheTest {
 protected:
  store::CacheOptions near_options() { return options(/*near_cache=*/true); }
  std::unique_ptr<Node> make_tracking_node() { return make_tracking_node_with(near_options()); }
  std::unique_ptr<Node> make_tracking_node_with(store::CacheOptions options) {
    auto node = make_node(std::move(options));
    EXPECT_TRUE(wait_until([&] { return node->cache->stats().known_names_active; }));
    return node;
  }
};

TEST_F(KnownNamesTest, AnAbsentNameIsAnsweredWithoutIoAndLeavesNothingBehind) {
  auto node = make_tracking_node();
  node->commit(store::Upsert{registration_of("orders", "a1")});
  const auto keys_before = redis_key_count(redis);
  const auto before = node->cache->stats();
  for (int i = 0; i < 1000; ++i) {
    const auto snapshot = node->cache->find_cached("x" + std::to_string(i) + "random");
    ASSERT_TRUE(snapshot) << "an absent name must be answered from memory";
    EXPECT_TRUE(snapshot->instances.empty());
  }
  const auto after = node->cache->stats();
  EXPECT_EQ(after.absent_answers - before.absent_answers, 1000u);
  EXPECT_EQ(after.db_reads, before.db_reads);
  EXPECT_EQ(after.redis_misses, before.redis_misses);
  EXPECT_EQ(after.near_entries, before.near_entries);
  EXPECT_EQ(redis_key_count(redis), keys_before);
  EXPECT_EQ(node->ids("orders"), std::vector<std::string>{"a1"});
}

TEST_F(KnownNamesTest, ANewServiceIsKnownBeforeItsRegistrationIsAcknowledged) {
  auto node = make_tracking_node();
  ASSERT_TRUE(node->cache->find_cached("payments"));  // absent: answered empty
  node->commit(store::Upsert{registration_of("payments", "p1")});
  EXPECT_EQ(node->ids("payments"), std::vector<std::string>{"p1"});
}

TEST_F(KnownNamesTest, TheLastDeregistrationMakesTheNameAbsentAfterOneRead) {
  auto node = make_tracking_node();
  node->commit(store::Upsert{registration_of("payments", "p1")});
  EXPECT_EQ(node->ids("payments"), std::vector<std::string>{"p1"});
  node->commit(store::Deregister{"payments", "p1"});
  EXPECT_TRUE(node->ids("payments").empty());  // one read proves it empty
  const auto reads = node->cache->stats().db_reads;
  EXPECT_TRUE(node->ids("payments").empty());
  EXPECT_EQ(node->cache->stats().db_reads, reads);
  EXPECT_EQ(node->cache->stats().near_entries, 0u);
}

// The read that finds a service empty races with its first registration: the
// name must stay known, or the registration would be answered NXDOMAIN.
TEST_F(KnownNamesTest, AnEmptyReadRacingARegistrationKeepsTheName) {
  auto node = make_tracking_node();
  node->commit(store::Upsert{registration_of("payments", "p1")});
  node->commit(store::Deregister{"payments", "p1"});
  node->gate.block_next();
  auto racing = node->fetch_async("payments");
  ASSERT_TRUE(node->gate.wait_entered());  // read done (empty), result not used yet
  node->commit(store::Upsert{registration_of("payments", "p2")});
  node->gate.open();
  ASSERT_EQ(racing.wait_for(10s), std::future_status::ready);
  EXPECT_EQ(node->ids("payments"), std::vector<std::string>{"p2"});
}

TEST_F(KnownNamesTest, AServiceCreatedByAnotherDaemonBecomesKnown) {
  auto a = make_tracking_node();
  auto b = make_tracking_node();
  ASSERT_TRUE(b->cache->find_cached("payments"));  // absent on b
  a->commit(store::Upsert{registration_of("payments", "p1")});
  // The change feed announces the change; until b has polled it b may still
  // say absent (the same window as for any change made by another daemon).
  ASSERT_TRUE(wait_until([&] { return b->cache->find_cached("payments") == nullptr; }));
  EXPECT_EQ(b->ids("payments"), std::vector<std::string>{"p1"});
}

// The names follow the change feed, not Redis: with Redis dead they still
// answer, and still learn of another daemon's new service.
TEST_F(KnownNamesTest, WithRedisKilledAbsentNamesAreStillAnsweredFromMemory) {
  auto node = make_tracking_node();
  auto other = make_tracking_node();
  redis.kill();
  ASSERT_TRUE(wait_until([&] { return node->cache->status() == "degraded"; }));
  EXPECT_TRUE(node->cache->stats().known_names_active);
  const auto reads = node->cache->stats().db_reads;
  EXPECT_TRUE(node->cache->find_cached("payments"));
  EXPECT_EQ(node->cache->stats().db_reads, reads);
  other->commit(store::Upsert{registration_of("payments", "p1")});
  ASSERT_TRUE(wait_until([&] { return node->cache->find_cached("payments") == nullptr; }));
  EXPECT_EQ(node->ids("payments"), std::vector<std::string>{"p1"});
}

// Our own change is handled at commit; the feed hands it over to no one, so the
// entry filled after it is not dropped a second time.
TEST_F(KnownNamesTest, OwnChangesComeBackThroughTheFeedWithoutASecondInvalidation) {
  auto node = make_tracking_node();
  const auto sequence = node->commit(store::Upsert{registration_of("orders", "a1")}).sequence;
  ASSERT_GT(sequence, 0u);
  EXPECT_EQ(node->ids("orders"), std::vector<std::string>{"a1"});
  ASSERT_TRUE(node->cache->find_cached("orders"));
  ASSERT_TRUE(wait_until([&] { return node->cache->stats().feed.applied >= sequence; }));
  EXPECT_GE(node->cache->stats().feed.skipped, 1u);
  EXPECT_EQ(node->cache->stats().feed.changes, 0u);
  const auto reads = node->cache->stats().db_reads;
  const auto hits = node->cache->stats().near_hits;
  EXPECT_EQ(node->ids("orders"), std::vector<std::string>{"a1"});
  EXPECT_EQ(node->cache->stats().near_hits, hits + 1);
  EXPECT_EQ(node->cache->stats().db_reads, reads);
}

TEST_F(KnownNamesTest, LookupsInFlightAreBounded) {
  auto opts = near_options();
  opts.max_lookups_in_flight = 2;
  auto node = make_node(opts);
  node->commit(store::Upsert{registration_of("a", "1")});
  node->commit(store::Upsert{registration_of("b", "1")});
  node->commit(store::Upsert{registration_of("c", "1")});
  node->gate.block_next();
  auto first = node->fetch_async("a");
  ASSERT_TRUE(node->gate.wait_entered());
  auto second = node->fetch_async("b");
  auto third = node->fetch_async("c");
  ASSERT_EQ(third.wait_for(1s), std::future_status::ready) << "over the cap: refused at once";
  const auto refused = third.get();
  EXPECT_FALSE(refused.ok);
  EXPECT_EQ(refused.error, "too many lookups in flight");
  EXPECT_EQ(node->cache->stats().lookups_shed, 1u);
  node->gate.open();
  EXPECT_TRUE(first.get().ok);
  EXPECT_TRUE(second.get().ok);
  EXPECT_EQ(node->cache->stats().lookups_in_flight, 0u);
}

TEST_F(KnownNamesTest, ColdFillsNeverEvictHotEntries) {
  auto opts = near_options();
  opts.near_cache_max_entries = 4;
  opts.near_cache_sweep_interval = 1h;  // no sweep during the test: nothing may be evicted
  auto node = make_tracking_node_with(opts);
  const std::vector<std::string> hot = {"h1", "h2", "h3", "h4"};
  std::vector<std::string> cold;
  for (int i = 0; i < 20; ++i) cold.push_back("cold" + std::to_string(i));
  for (const auto& name : hot) node->commit(store::Upsert{registration_of(name, "1")});
  for (const auto& name : cold) node->commit(store::Upsert{registration_of(name, "1")});
  // Our own changes come back through the feed (skipped); after that nothing
  // erases entries.
  ASSERT_TRUE(wait_until([&] { return node->cache->stats().feed.applied >= 24; }));
  for (const auto& name : hot) ASSERT_EQ(node->ids(name).size(), 1u);
  for (const auto& name : cold) ASSERT_EQ(node->ids(name).size(), 1u);
  for (const auto& name : hot) {
    EXPECT_TRUE(node->cache->find_cached(name)) << name << " was evicted by a cold entry";
  }
  EXPECT_EQ(node->cache->stats().near_refused, 20u);
}

// The sweep, with a clock the test moves: entries read since the last sweep
// stay, the others make room.
TEST(NearCache, ASweepDropsOnlyEntriesNotReadForAWholeInterval) {
  auto now = std::chrono::steady_clock::time_point{} + 1h;
  store::NearCache near(2, 1h, 1s, [&] { return now; });
  auto snapshot = std::make_shared<const store::ServiceSnapshot>();
  const auto always = [] { return true; };
  ASSERT_TRUE(near.insert_if("hot", snapshot, always));
  ASSERT_TRUE(near.insert_if("cold", snapshot, always));
  EXPECT_FALSE(near.insert_if("new", snapshot, always));  // full, no sweep due
  now += 2s;
  EXPECT_TRUE(near.find("hot"));
  EXPECT_FALSE(near.insert_if("new", snapshot, always)) << "cold had less than an interval";
  now += 2s;
  EXPECT_TRUE(near.find("hot"));
  EXPECT_TRUE(near.insert_if("new", snapshot, always)) << "cold was never read: it goes";
  EXPECT_TRUE(near.find("hot"));
  EXPECT_FALSE(near.find("cold"));
  EXPECT_FALSE(near.insert_if("stale", snapshot, [] { return false; }));
  EXPECT_EQ(near.stats().evicted, 1u);
}

}  // namespace
