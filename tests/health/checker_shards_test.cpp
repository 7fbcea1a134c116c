// The checker with sharded checks (store/health_shards.h): it probes only the
// instances of the shards assigned to it, lets shards go after writing their
// counts, continues a gained shard's failure counts from the database, and
// probes nothing while its lease may have run out.
#include <gtest/gtest.h>

#include <atomic>
#include <future>

#include "tests/health/checker_fixture.h"

namespace {

using namespace std::chrono_literals;
using health_test::HealthCheckerTest;
using health_test::instance;
using health_test::ListenerFarm;
using health_test::TestHttpServer;
using test_support::wait_until;

class ShardedCheckerTest : public HealthCheckerTest {
 protected:
  static health::Options sharded_options() {
    auto options = fast_options();
    options.sharded = true;
    return options;
  }
};

store::ShardSet shards_of(std::initializer_list<const char*> ids) {
  store::ShardSet shards;
  for (const char* id : ids) shards.set(store::health_shard_of("orders", id));
  return shards;
}

TEST_F(ShardedCheckerTest, ProbesOnlyTheInstancesOfItsShardsAndLetsShardsGoAfterWritingThem) {
  ASSERT_NE(store::health_shard_of("orders", "a1"), store::health_shard_of("orders", "a2"));
  ListenerFarm farm(2);
  add(instance("a1", farm.port(0)));
  add(instance("a2", farm.port(1)));
  start(sharded_options());
  std::this_thread::sleep_for(3 * health_test::kInterval);
  EXPECT_EQ(farm.accepts(0) + farm.accepts(1), 0u) << "probed before any shard was assigned";

  checker_->assign_shards(shards_of({"a1"}), false, {});
  ASSERT_TRUE(wait_until([&] { return farm.accepts(0) >= 3; }));
  EXPECT_EQ(farm.accepts(1), 0u);
  EXPECT_EQ(stats().instances, 1u);

  checker_->assign_shards(shards_of({"a1", "a2"}), false, {});
  ASSERT_TRUE(wait_until([&] { return farm.accepts(1) >= 2; }));
  EXPECT_EQ(stats().instances, 2u);
  EXPECT_EQ(stats().shards, 2u);

  std::promise<store::ShardSet> released;
  checker_->assign_shards(shards_of({"a2"}), false, [&released](const store::ShardSet& dropped) {
    released.set_value(dropped);
  });
  auto dropped = released.get_future();
  ASSERT_EQ(dropped.wait_for(5s), std::future_status::ready);
  EXPECT_EQ(dropped.get(), shards_of({"a1"}));
  const auto a1_probes = farm.accepts(0);
  EXPECT_TRUE(find("a1")->last_check_at.has_value()) << "its last check was written first";
  std::this_thread::sleep_for(3 * health_test::kInterval);
  EXPECT_LE(farm.accepts(0), a1_probes + 1) << "a dropped shard's instance is still probed";
  EXPECT_EQ(stats().instances, 1u);
}

TEST_F(ShardedCheckerTest, AGainedShardContinuesTheFailureCountTheDatabaseHolds) {
  TestHttpServer server;
  server.set_status(503);
  add(instance("a1", server.port(), store::CheckType::http));
  // Two failures counted by the shard's previous owner.
  ASSERT_NE(submit(store::RecordChecks{{{"orders", "a1", store::Clock::now(), 2, 0}}}).outcome,
            store::Outcome::failed);
  ASSERT_EQ(find("a1")->consecutive_failures, 2u);
  start(sharded_options());
  checker_->assign_shards(shards_of({"a1"}), false, {});
  ASSERT_TRUE(wait_until([&] { return !find("a1").has_value(); }));
  EXPECT_EQ(server.responses(503), 1u) << "the third failure, counted here, removes it";
  ASSERT_TRUE(wait_until([&] { return stats().removals == 1; }));
  EXPECT_EQ(checker_->recent_removals().at(0).failures, 3u);
}

TEST_F(ShardedCheckerTest, ProbesNothingWhileItsLeaseMayHaveRunOut) {
  ListenerFarm farm(1);
  add(instance("a1", farm.port(0)));
  auto lease_holds = std::make_shared<std::atomic<bool>>(false);
  auto options = fast_options();
  options.may_probe = [lease_holds] { return lease_holds->load(); };
  start(options);
  ASSERT_TRUE(wait_until([&] { return stats().lapsed_skips >= 2; }));
  EXPECT_EQ(farm.accepts(0), 0u);
  lease_holds->store(true);
  EXPECT_TRUE(wait_until([&] { return farm.accepts(0) >= 2; }));
}

}  // namespace
