// Membership on PostgreSQL: leases by the server's clock, shared by every
// daemon on the database, and what a batch's results observed.
#include <gtest/gtest.h>

#include <thread>

#include "store/postgres/postgres_store.h"
#include "tests/store/postgres/postgres_test_support.h"
#include "tests/support/process.h"

namespace {

using namespace std::chrono_literals;
using namespace postgres_test;
using store::Outcome;

TEST_F(PostgresStoreTest, AMemberRenewsItsLeaseAndEveryStoreSeesIt) {
  store::PostgresStore first(options());
  store::PostgresStore second(options());
  apply(first, store::Upsert{make_registration("orders", "a1")});
  EXPECT_EQ(first.renew_member({"daemon-a", "dns=127.0.0.1:53", 1, 60s}), 1u);
  EXPECT_EQ(second.renew_member({"daemon-b", "dns=127.0.0.2:53", 0, 60s}), 1u);
  const auto members = second.read_members();
  ASSERT_EQ(members.size(), 2u);
  EXPECT_EQ(members[0].id, "daemon-a");
  EXPECT_EQ(members[0].endpoints, "dns=127.0.0.1:53");
  EXPECT_EQ(members[0].applied, 1u);
  EXPECT_TRUE(members[0].live);
  EXPECT_GT(members[0].lease_until, store::Clock::now() + 30s);
  EXPECT_EQ(members[1].id, "daemon-b");
  EXPECT_EQ(members[1].applied, 0u);
  // A renewal replaces the row (its applied sequence too).
  apply(second, store::Upsert{make_registration("orders", "a2")});
  EXPECT_EQ(second.renew_member({"daemon-b", "dns=127.0.0.2:53", 2, 60s}), 2u);
  EXPECT_EQ(first.read_members().at(1).applied, 2u);
  // A clean shutdown removes the row at once.
  first.remove_member("daemon-a");
  const auto left = second.read_members();
  ASSERT_EQ(left.size(), 1u);
  EXPECT_EQ(left[0].id, "daemon-b");
}

TEST_F(PostgresStoreTest, AMemberWhoseLeaseRanOutIsNotLive) {
  store::PostgresStore db(options());
  db.renew_member({"daemon-a", "", 0, 50ms});
  EXPECT_TRUE(test_support::wait_until([&] { return !db.read_members().at(0).live; }));
  db.renew_member({"daemon-a", "", 0, 60s});
  EXPECT_TRUE(db.read_members().at(0).live);
}

TEST_F(PostgresStoreTest, MembershipFailsAsUnavailableWhileTheServerIsDownAndRecovers) {
  store::PostgresStore db(options());
  db.renew_member({"daemon-a", "", 0, 60s});
  server_->kill();
  try {
    db.renew_member({"daemon-a", "", 0, 60s});
    FAIL() << "renewed a lease with the server down";
  } catch (const store::StoreError& error) {
    EXPECT_EQ(std::string(error.what()).rfind("database unavailable: ", 0), 0u) << error.what();
  }
  EXPECT_THROW(db.read_members(), store::StoreError);
  ASSERT_TRUE(server_->restart()) << server_->log();
  EXPECT_EQ(db.renew_member({"daemon-a", "", 0, 60s}), 0u);
  EXPECT_EQ(db.read_members().size(), 1u);
}

// Every result of a committed batch reflects the newest sequence at its commit,
// also one that changed nothing, and also changes another daemon made.
TEST_F(PostgresStoreTest, EveryResultObservesTheNewestSequenceAtItsCommit) {
  store::PostgresStore first(options());
  store::PostgresStore second(options());
  apply(first, store::Upsert{make_registration("orders", "a1")});
  apply(first, store::Upsert{make_registration("orders", "a2")});
  const std::vector<store::Mutation> batch = {
      store::Upsert{make_registration("orders", "a1")},  // unchanged
      store::Upsert{make_registration("payments", "p1")},
      store::Deregister{"orders", "missing"},
  };
  const auto results = second.apply(batch, kNow);
  for (const auto& result : results) EXPECT_EQ(result.observed_sequence, 3u);
  EXPECT_EQ(apply(first, store::Heartbeat{"orders", "a1", std::nullopt}).observed_sequence, 3u);
}

}  // namespace

namespace {

// The shard rule on PostgreSQL (store/health_shards.h): two stores balance in
// turns by the server's clock; a member whose lease ran out loses its shards.
TEST_F(PostgresStoreTest, MembersShareTheHealthShardsThroughTheServer) {
  store::PostgresStore first(options());
  store::PostgresStore second(options());
  first.renew_member({"a", "", 0, 60s});
  EXPECT_EQ(first.balance_shards("a", {}).owned.count(), store::kHealthShards);
  second.renew_member({"b", "", 0, 60s});
  EXPECT_EQ(second.balance_shards("b", {}).owned.count(), 0u);
  const auto asked = first.balance_shards("a", {}).requested;
  EXPECT_EQ(asked.count(), store::kHealthShards / 2);
  EXPECT_EQ(first.balance_shards("a", asked).owned.count(), store::kHealthShards / 2);
  EXPECT_EQ(second.balance_shards("b", {}).owned.count(), store::kHealthShards / 2);
  const auto rows = first.read_shards();
  EXPECT_EQ(std::count_if(rows.begin(), rows.end(), [](const auto& r) { return r.owner == "b"; }),
            static_cast<long>(store::kHealthShards / 2));
  first.renew_member({"a", "", 0, 0ms});
  EXPECT_EQ(second.balance_shards("b", {}).owned.count(), store::kHealthShards);
}

}  // namespace
