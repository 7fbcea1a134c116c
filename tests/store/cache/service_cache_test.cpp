// The cache against a real redis-server and a real SQLite file: hits, misses,
// fills, TTL, invalidation on every kind of change, the stale-fill interleaving,
// herd collapse, and Redis failing in every way we can make it fail.
#include "store/cache/service_cache.h"

#include <gtest/gtest.h>

#include <condition_variable>
#include <future>

#include "store/cache/snapshot_codec.h"
#include "tests/store/cache/cache_test_support.h"

namespace {

using namespace std::chrono_literals;
using namespace cache_test;
using test_support::wait_until;

TEST(SnapshotCodec, RoundTripsEveryField) {
  store::ServiceSnapshot snapshot;
  snapshot.service = "orders";
  snapshot.version = 42;
  store::Instance instance;
  instance.registration = registration("a1", "2001:db8::1", 9000);
  instance.registration.tags = {"v2"};
  instance.registration.meta = {{"zone", "a"}};
  instance.registration.weight = 7;
  instance.registration.check = {store::CheckType::http, "/h", 81, 5s, 1s, 0ms, 4};
  instance.registered_at = store::TimePoint(1000ms);
  instance.updated_at = store::TimePoint(2000ms);
  instance.last_check_at = store::TimePoint(3000ms);
  instance.consecutive_failures = 2;
  instance.load = 0.5;
  snapshot.instances.push_back(instance);
  const auto decoded = store::decode_snapshot(store::encode_snapshot(snapshot));
  ASSERT_TRUE(decoded);
  EXPECT_EQ(decoded->version, 42u);
  ASSERT_EQ(decoded->instances.size(), 1u);
  const auto& got = decoded->instances[0];
  EXPECT_EQ(got.registration, instance.registration);
  EXPECT_EQ(got.last_check_at, instance.last_check_at);
  EXPECT_FALSE(got.last_heartbeat_at);
  EXPECT_EQ(got.load, 0.5);
  EXPECT_FALSE(store::decode_snapshot("garbage"));
  EXPECT_FALSE(store::decode_snapshot("s1\n{\"s\":1}"));
}

TEST_F(ServiceCacheTest, MissReadsTheDatabaseAndFillsThenHits) {
  auto node = make_node(options());
  node->commit(store::Upsert{registration("a1")});
  EXPECT_EQ(node->ids(), std::vector<std::string>{"a1"});
  auto stats = node->cache->stats();
  EXPECT_EQ(stats.redis_misses, 1u);
  EXPECT_EQ(stats.db_reads, 1u);
  ASSERT_TRUE(wait_until([&] { return node->cache->stats().fills == 1; }));
  EXPECT_EQ(redis_get("t:svc:orders").rfind("s1", 0), 0u);

  EXPECT_EQ(node->ids(), std::vector<std::string>{"a1"});
  stats = node->cache->stats();
  EXPECT_EQ(stats.redis_hits, 1u);
  EXPECT_EQ(stats.db_reads, 1u);  // the hit did not touch SQLite
}

TEST_F(ServiceCacheTest, EntriesExpireAfterTheTtl) {
  auto opts = options();
  opts.ttl = 300ms;
  auto node = make_node(opts);
  node->commit(store::Upsert{registration("a1")});
  node->ids();
  ASSERT_TRUE(wait_until([&] { return redis_has("t:svc:orders"); }));
  const auto ttl_ms = std::stoi(redis.run_cli({"PTTL", "t:svc:orders"}));
  EXPECT_GT(ttl_ms, 0);
  EXPECT_LE(ttl_ms, 300);
  ASSERT_TRUE(wait_until([&] { return !redis_has("t:svc:orders"); }, 5s));
  node->ids();
  EXPECT_EQ(node->cache->stats().db_reads, 2u);
}

TEST_F(ServiceCacheTest, EveryKindOfChangeInvalidatesBeforeItIsAcknowledged) {
  auto node = make_node(options());
  const auto fill = [&] {
    node->ids();
    ASSERT_TRUE(wait_until([&] { return redis_has("t:svc:orders"); }));
  };
  node->commit(store::Upsert{registration("a1")});
  fill();
  // Registration of a new instance.
  node->commit(store::Upsert{registration("a2")});
  EXPECT_FALSE(redis_has("t:svc:orders"));
  EXPECT_EQ(node->ids(), (std::vector<std::string>{"a1", "a2"}));
  fill();
  // Update of an existing one.
  node->commit(store::Upsert{registration("a2", "127.0.0.9")});
  EXPECT_FALSE(redis_has("t:svc:orders"));
  EXPECT_EQ(node->lookup()->instances.at(1).registration.address.to_string(), "127.0.0.9");
  fill();
  // A load report.
  node->commit(store::Heartbeat{"orders", "a2", 7.0});
  EXPECT_FALSE(redis_has("t:svc:orders"));
  EXPECT_EQ(node->lookup()->instances.at(1).load, 7.0);
  fill();
  // Deregistration.
  node->commit(store::Deregister{"orders", "a2"});
  EXPECT_FALSE(redis_has("t:svc:orders"));
  EXPECT_EQ(node->ids(), std::vector<std::string>{"a1"});
  fill();
  // Removal by the health checker.
  const auto probed = node->store.read_service("orders").instances.at(0);
  node->commit(store::RemoveUnhealthy{"orders", "a1", probed.updated_at, probed.last_heartbeat_at,
                                      probed.renewals});
  EXPECT_FALSE(redis_has("t:svc:orders"));
  EXPECT_TRUE(node->ids().empty());
  // The fence holds the newest version.
  EXPECT_EQ(redis.run_cli({"GET", "t:fence:orders"}).substr(0, 1), "6");
  // A change that alters nothing does not invalidate. (An empty service is not
  // cached at all: the known-names set answers it.)
  node->commit(store::Upsert{registration("a1")});
  fill();
  node->commit(store::Deregister{"orders", "nobody"});
  EXPECT_TRUE(redis_has("t:svc:orders"));
}

TEST_F(ServiceCacheTest, ALookupRacingAChangeNeverAnswersWithTheOldState) {
  auto node = make_node(options(/*near_cache=*/true));
  node->commit(store::Upsert{registration("a1")});
  // The lookup reads SQLite (old state), then stalls before using the result...
  node->gate.block_next();
  auto racing = node->fetch_async();
  ASSERT_TRUE(node->gate.wait_entered());
  // ...while a change commits, invalidates and is acknowledged...
  node->commit(store::Deregister{"orders", "a1"});
  node->gate.open();
  // ...so the old read must not answer, nor reach the near cache or Redis.
  auto result = racing.get();
  ASSERT_TRUE(result.ok);
  EXPECT_TRUE(result.snapshot->instances.empty());
  EXPECT_GE(node->cache->stats().stale_retries, 1u);
  EXPECT_TRUE(node->ids().empty());
  const auto cached = redis_get("t:svc:orders");
  if (cached.size() > 2) {
    EXPECT_TRUE(store::decode_snapshot(cached.substr(0, cached.size() - 1))->instances.empty());
  }
}

// Two daemons sharing Redis and SQLite: A reads the database, B commits a change
// and invalidates, then A tries to fill Redis with what it read. The version
// fence must refuse that fill. Run without the fence, the same interleaving
// leaves the stale entry in Redis: the second test proves the first can fail.
class StaleFillTest : public ServiceCacheTest {
 protected:
  // Returns the instance ids Redis holds for the service after the interleaving.
  std::vector<std::string> run_interleaving(bool with_fence, std::uint64_t& refused) {
    auto opts = options();
    opts.unsafe_fill_without_fence = !with_fence;
    // The reader must not hear of B's change before it fills (through the
    // change feed it usually would, and the race would need a delayed poll).
    opts.known_names = false;
    auto reader = make_node(opts);
    reader->cache->pause_feed_for_test(true);
    auto writer = make_node(options());
    writer->commit(store::Upsert{registration("a1")});
    reader->gate.block_next();
    auto racing = reader->fetch_async();
    EXPECT_TRUE(reader->gate.wait_entered());           // A has read {a1}
    writer->commit(store::Deregister{"orders", "a1"});  // B removes a1, invalidates
    reader->gate.open();                                // A fills what it read
    EXPECT_TRUE(racing.get().ok);
    EXPECT_TRUE(wait_until([&] {
      const auto s = reader->cache->stats();
      return s.fills + s.fills_refused == 1;
    }));
    refused = reader->cache->stats().fills_refused;
    std::vector<std::string> ids;
    auto cached = redis_get("t:svc:orders");
    while (!cached.empty() && cached.back() == '\n') cached.pop_back();
    if (auto snapshot = store::decode_snapshot(cached)) {
      for (const auto& i : snapshot->instances) ids.push_back(i.id());
    }
    return ids;
  }
};

TEST_F(StaleFillTest, TheVersionFenceRefusesAFillOlderThanAnInvalidation) {
  std::uint64_t refused = 0;
  EXPECT_TRUE(run_interleaving(/*with_fence=*/true, refused).empty());
  EXPECT_EQ(refused, 1u);
}

TEST_F(StaleFillTest, WithoutTheFenceTheSameInterleavingServesAStaleEntry) {
  std::uint64_t refused = 0;
  EXPECT_EQ(run_interleaving(/*with_fence=*/false, refused), std::vector<std::string>{"a1"});
  EXPECT_EQ(refused, 0u);
}

TEST_F(ServiceCacheTest, ConcurrentMissesShareOneDatabaseRead) {
  auto node = make_node(options());
  node->commit(store::Upsert{registration("a1")});
  node->gate.block_next();
  std::vector<std::future<store::LookupResult>> lookups;
  lookups.push_back(node->fetch_async());
  ASSERT_TRUE(node->gate.wait_entered());
  constexpr int kConcurrent = 50;
  for (int i = 1; i < kConcurrent; ++i) lookups.push_back(node->fetch_async());
  ASSERT_TRUE(wait_until([&] { return node->cache->stats().coalesced == kConcurrent - 1; }));
  node->gate.open();
  for (auto& lookup : lookups) {
    auto result = lookup.get();
    ASSERT_TRUE(result.ok);
    EXPECT_EQ(result.snapshot->instances.size(), 1u);
  }
  EXPECT_EQ(node->cache->stats().db_reads, 1u);
}

TEST_F(ServiceCacheTest, NearCacheServesHitsFromMemoryAndDropsThemOnChange) {
  auto node = make_node(options(/*near_cache=*/true));
  node->commit(store::Upsert{registration("a1")});
  node->ids();
  ASSERT_NE(node->cache->find_cached("orders"), nullptr);
  const auto db_reads = node->cache->stats().db_reads;
  const auto near_hits = node->cache->stats().near_hits;
  EXPECT_EQ(node->ids(), std::vector<std::string>{"a1"});
  EXPECT_GT(node->cache->stats().near_hits, near_hits);
  EXPECT_EQ(node->cache->stats().db_reads, db_reads);
  node->commit(store::Upsert{registration("a2")});
  EXPECT_EQ(node->cache->find_cached("orders"), nullptr);  // gone before the ack
  EXPECT_EQ(node->ids(), (std::vector<std::string>{"a1", "a2"}));
}

TEST_F(ServiceCacheTest, NearCacheFollowsChangesMadeByAnotherDaemon) {
  auto reader = make_node(options(/*near_cache=*/true));
  auto writer = make_node(options());
  writer->commit(store::Upsert{registration("a1")});
  ASSERT_TRUE(wait_until([&] {
    reader->ids();
    return reader->cache->find_cached("orders") != nullptr;
  }));
  writer->commit(store::Deregister{"orders", "a1"});
  // The other daemon's change reaches us through the database's change feed.
  EXPECT_TRUE(wait_until([&] { return reader->cache->find_cached("orders") == nullptr; }));
  EXPECT_TRUE(reader->ids().empty());
}

TEST_F(ServiceCacheTest, WithRedisKilledLookupsAndWritesGoOnAndNothingStaleAfterRestart) {
  auto node = make_node(options(/*near_cache=*/true));
  node->commit(store::Upsert{registration("a1")});
  node->ids();
  redis.kill();
  ASSERT_TRUE(wait_until([&] { return node->cache->status() == "degraded"; }));
  // The near cache stays on: it rests on the change feed, not on Redis.
  EXPECT_NE(node->cache->find_cached("orders"), nullptr);
  // Writes succeed (SQLite is the source of truth) and misses read it.
  EXPECT_EQ(node->commit(store::Upsert{registration("a2")}).outcome, store::Outcome::created);
  const auto start = std::chrono::steady_clock::now();
  EXPECT_EQ(node->ids(), (std::vector<std::string>{"a1", "a2"}));
  EXPECT_LT(std::chrono::steady_clock::now() - start, 500ms);
  EXPECT_GE(node->cache->stats().fallbacks, 1u);
  const auto reads = node->cache->stats().db_reads;
  EXPECT_EQ(node->ids(), (std::vector<std::string>{"a1", "a2"}));  // from memory
  EXPECT_EQ(node->cache->stats().db_reads, reads);
  ASSERT_TRUE(redis.restart());
  ASSERT_TRUE(wait_until([&] { return node->cache->status() == "ok"; }));
  node->commit(store::Deregister{"orders", "a1"});
  EXPECT_EQ(node->ids(), std::vector<std::string>{"a2"});
}

TEST_F(ServiceCacheTest, WithRedisPausedLookupsAnswerWithinTheTimeout) {
  auto node = make_node(options());
  node->commit(store::Upsert{registration("a1")});
  node->ids();
  redis.pause();
  for (int i = 0; i < 20; ++i) {
    const auto start = std::chrono::steady_clock::now();
    EXPECT_EQ(node->ids(), std::vector<std::string>{"a1"});
    EXPECT_LT(std::chrono::steady_clock::now() - start, 300ms);
  }
  // A write while paused: its invalidation times out, Redis is distrusted.
  EXPECT_EQ(node->commit(store::Upsert{registration("a2")}).outcome, store::Outcome::created);
  EXPECT_EQ(node->cache->status(), "degraded");
  EXPECT_EQ(node->ids(), (std::vector<std::string>{"a1", "a2"}));
  redis.resume();
  ASSERT_TRUE(wait_until([&] { return node->cache->status() == "ok"; }));
  EXPECT_EQ(node->ids(), (std::vector<std::string>{"a1", "a2"}));
}

// The invalidation never reaches Redis (the connection was already given up on),
// yet Redis keeps the old entry: only the outbox replay can remove it.
TEST_F(ServiceCacheTest, AnInvalidationMissedWhileDisconnectedIsReplayedFromTheOutbox) {
  auto node = make_node(options());
  node->commit(store::Upsert{registration("a1")});
  node->ids();
  ASSERT_TRUE(wait_until([&] { return redis_has("t:svc:orders"); }));
  redis.pause();
  // Lookups time out until the client declares the connection dead.
  ASSERT_TRUE(wait_until(
      [&] {
        node->ids();
        return !node->cache->stats().redis_connected;
      },
      10s));
  node->commit(store::Deregister{"orders", "a1"});
  EXPECT_EQ(node->cache->stats().invalidation_failures, 0u);  // not even attempted
  EXPECT_FALSE(node->store.read_outbox().empty());
  redis.resume();
  ASSERT_TRUE(wait_until([&] { return node->cache->status() == "ok"; }, 10s));
  EXPECT_FALSE(redis_has("t:svc:orders"));
  EXPECT_TRUE(node->ids().empty());
  EXPECT_GE(node->cache->stats().outbox_replays, 1u);
}

// Clients asking for endless distinct names must not grow the cache's memory:
// the per-service generations are folded into one once there are too many, and
// that fold must still stop a read that raced a change (the dangerous moment is a
// fold right after the change, before the racing read completes).
TEST_F(ServiceCacheTest, GenerationsStayBoundedAndFoldingKeepsStaleReadsOut) {
  auto opts = options(/*near_cache=*/true);
  opts.max_tracked_generations = 4;
  auto node = make_node(opts);
  const auto touch = [&](const std::string& service) {
    auto r = registration("x");
    r.service = service;
    node->commit(store::Upsert{r});
  };
  node->commit(store::Upsert{registration("a1")});
  for (int i = 0; i < 50; ++i) touch("other-" + std::to_string(i));
  EXPECT_LE(node->cache->stats().tracked_generations, 4u);

  // Leave three entries, so that the deregistration plus one more change fold.
  for (int i = 0; i < 8 && node->cache->stats().tracked_generations != 3; ++i) {
    touch("pad-" + std::to_string(i));
  }
  ASSERT_EQ(node->cache->stats().tracked_generations, 3u);
  node->gate.block_next();
  auto racing = node->fetch_async();
  ASSERT_TRUE(node->gate.wait_entered());  // read {a1} from SQLite
  node->commit(store::Deregister{"orders", "a1"});
  touch("fold-now");  // the fifth name: everything folds into a new reset generation
  EXPECT_LE(node->cache->stats().tracked_generations, 1u);
  node->gate.open();
  auto result = racing.get();
  ASSERT_TRUE(result.ok);
  EXPECT_TRUE(result.snapshot->instances.empty());
  EXPECT_TRUE(node->ids().empty());
}

TEST_F(ServiceCacheTest, WithoutRedisTheNearCacheAndDatabaseServe) {
  store::CacheOptions opts;
  Node node(dir.file("registry.db"), opts);
  EXPECT_EQ(node.cache->status(), "disabled");
  node.commit(store::Upsert{registration("a1")});
  EXPECT_EQ(node.ids(), std::vector<std::string>{"a1"});
  EXPECT_NE(node.cache->find_cached("orders"), nullptr);
  node.commit(store::Deregister{"orders", "a1"});
  EXPECT_TRUE(node.ids().empty());
  // With nothing to invalidate remotely, outbox rows are confirmed at once (and
  // deleted with the writer's next transaction, here its last one).
  node.writer.stop();
  EXPECT_TRUE(node.store.read_outbox().empty());
}

}  // namespace
