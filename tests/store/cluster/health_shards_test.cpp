// The health-shard rule (store/health_shards.h) as a pure function, and
// RegistryStore::balance_shards on a SQLite file shared by several stores
// (PostgreSQL: tests/store/postgres/postgres_members_test.cpp).
#include "store/health_shards.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <random>

#include "store/sqlite/sqlite_store.h"
#include "tests/support/process.h"

namespace {

using namespace std::chrono_literals;
using store::kHealthShards;
using store::ShardRow;
using store::ShardSet;
using Live = std::set<std::string, std::less<>>;

// The table, as balances by several members change it.
struct Table {
  std::vector<ShardRow> rows = std::vector<ShardRow>(kHealthShards);

  store::ShardView balance(const std::string& me, const Live& live, const ShardSet& handoff = {}) {
    const auto plan = store::plan_shards(me, live, rows, handoff);
    for (const auto& [shard, row] : plan.updates) rows.at(shard) = row;
    return plan.view;
  }
  std::map<std::string, std::size_t> counts() const {
    std::map<std::string, std::size_t> owners;
    for (const auto& row : rows) ++owners[row.owner];
    return owners;
  }
};

TEST(HealthShardPlan, AMemberAloneClaimsEveryShard) {
  Table table;
  const auto view = table.balance("a", {"a"});
  EXPECT_EQ(view.owned.count(), kHealthShards);
  EXPECT_EQ(view.requested.count(), 0u);
  EXPECT_EQ(view.participants, 1u);
}

TEST(HealthShardPlan, ANewcomerAsksForItsShareAndGetsItOnlyWhenTheOwnerHandsItOver) {
  Table table;
  table.balance("a", {"a"});
  const auto asked = table.balance("b", {"a", "b"});
  EXPECT_EQ(asked.owned.count(), 0u) << "nothing is taken from a live owner";
  EXPECT_EQ(asked.participants, 2u);
  // The owner learns which shards are asked for; until it hands them over they stay its own.
  const auto owner = table.balance("a", {"a", "b"});
  EXPECT_EQ(owner.owned.count(), kHealthShards);
  EXPECT_EQ(owner.requested.count(), kHealthShards / 2);
  EXPECT_EQ(table.balance("b", {"a", "b"}).owned.count(), 0u);
  // Handed over once the owner stopped probing them.
  const auto after = table.balance("a", {"a", "b"}, owner.requested);
  EXPECT_EQ(after.owned.count(), kHealthShards / 2);
  EXPECT_EQ(after.requested.count(), 0u);
  const auto newcomer = table.balance("b", {"a", "b"});
  EXPECT_EQ(newcomer.owned.count(), kHealthShards / 2);
  EXPECT_EQ((newcomer.owned & after.owned).count(), 0u);
}

// Members joining and balancing in random order, each handing over what was
// asked of it at its next balance, end with fair shares.
TEST(HealthShardPlan, ThreeMembersInAnyOrderConvergeToFairShares) {
  std::mt19937 random(7);
  for (int trial = 0; trial < 20; ++trial) {
    Table table;
    const std::vector<std::string> members{"a", "b", "c"};
    std::map<std::string, ShardSet> asked_of;
    for (int step = 0; step < 60; ++step) {
      const auto& me = members[random() % members.size()];
      const auto view = table.balance(me, {"a", "b", "c"}, asked_of[me]);
      asked_of[me] = view.requested;
    }
    const auto counts = table.counts();
    EXPECT_EQ(counts.count(""), 0u) << "trial " << trial << ": a shard nobody probes";
    for (const auto& member : members) {
      EXPECT_GE(counts.at(member), kHealthShards / 3 - 1) << "trial " << trial << " " << member;
      EXPECT_LE(counts.at(member), kHealthShards / 3 + 2) << "trial " << trial << " " << member;
    }
  }
}

TEST(HealthShardPlan, ADeadMembersShardsAreClaimedByTheOthersUpToTheirShare) {
  Table table;
  for (std::size_t shard = 0; shard < kHealthShards; ++shard) {
    table.rows[shard].owner = std::string(1, static_cast<char>('a' + shard % 3));
  }
  table.rows[0].requested_by = "c";  // a request by the member about to die lapses too
  table.balance("a", {"a", "b"});
  table.balance("b", {"a", "b"});
  const auto counts = table.counts();
  EXPECT_EQ(counts.at("a"), kHealthShards / 2);
  EXPECT_EQ(counts.at("b"), kHealthShards / 2);
  EXPECT_EQ(counts.count("c"), 0u);
  EXPECT_TRUE(std::all_of(table.rows.begin(), table.rows.end(),
                          [](const ShardRow& row) { return row.requested_by.empty(); }));
}

TEST(HealthShardPlan, AHandOverToARequesterThatDiedKeepsTheShard) {
  Table table;
  table.balance("a", {"a"});
  table.balance("b", {"a", "b"});
  const auto asked = table.balance("a", {"a", "b"}).requested;
  // b died before the hand-over: a keeps everything, and nothing is asked any more.
  const auto view = table.balance("a", {"a"}, asked);
  EXPECT_EQ(view.owned.count(), kHealthShards);
  EXPECT_EQ(view.requested.count(), 0u);
}

TEST(HealthShardPlan, AnInstancesShardIsTheSameEverywhereAndShardsAreEvenlyUsed) {
  // Fixed by the FNV-1a definition: a daemon of another build agrees.
  // Pinned values: changing the hash would move every instance to another
  // shard while daemons of the old and the new build share the database.
  EXPECT_EQ(store::health_shard_of("orders", "a1"), 118);
  EXPECT_EQ(store::health_shard_of("orders", "a2"), 29);
  std::vector<std::size_t> hits(kHealthShards);
  constexpr std::size_t kInstances = 25'600;
  for (std::size_t i = 0; i < kInstances; ++i) {
    ++hits[store::health_shard_of("svc" + std::to_string(i % 50), "i" + std::to_string(i))];
  }
  const auto [least, most] = std::minmax_element(hits.begin(), hits.end());
  EXPECT_GT(*least, 50u);  // the mean is 100
  EXPECT_LT(*most, 160u);
}

// Two stores on one file balance in turns; a member whose lease ran out loses
// its shards to the next balance.
TEST(HealthShardStore, SqliteMembersShareTheShardsThroughTheFile) {
  test_support::TempDir dir;
  store::SqliteStore first({dir.file("registry.db")});
  store::SqliteStore second({dir.file("registry.db")});
  first.renew_member({"a", "", 0, 60s});
  EXPECT_EQ(first.balance_shards("a", {}).owned.count(), kHealthShards);
  second.renew_member({"b", "", 0, 60s});
  EXPECT_EQ(second.balance_shards("b", {}).owned.count(), 0u);
  const auto asked = first.balance_shards("a", {}).requested;
  EXPECT_EQ(asked.count(), kHealthShards / 2);
  EXPECT_EQ(first.balance_shards("a", asked).owned.count(), kHealthShards / 2);
  EXPECT_EQ(second.balance_shards("b", {}).owned.count(), kHealthShards / 2);
  const auto rows = second.read_shards();
  ASSERT_EQ(rows.size(), kHealthShards);
  EXPECT_EQ(std::count_if(rows.begin(), rows.end(), [](const auto& r) { return r.owner == "b"; }),
            static_cast<long>(kHealthShards / 2));
  // a's lease runs out: b claims the lot.
  first.renew_member({"a", "", 0, 0ms});
  EXPECT_EQ(second.balance_shards("b", {}).owned.count(), kHealthShards);
}

}  // namespace
