// The writer's in-memory plan (store/postgres/batch_plan.h), without a server:
// the decisions, versions and sequence numbers a batch commits, above all when
// several mutations of one batch touch the same instance (each must see what
// the ones before it did, as the statements would).
#include "store/postgres/batch_plan.h"

#include <gtest/gtest.h>

#include "tests/store/store_test_support.h"

namespace {

using namespace std::chrono_literals;
using store::Outcome;
using store::postgres::BatchState;
using store::postgres::plan_mutation;
using store_test::kNow;
using store_test::make_registration;

// A state as read at BEGIN: the clock at 40, the named instances absent.
BatchState fresh_state(std::initializer_list<store::postgres::InstanceKey> keys) {
  BatchState state;
  state.sequence = 40;
  for (const auto& key : keys) state.instances.emplace(key, std::nullopt);
  return state;
}

TEST(BatchPlan, MutationsOfOneInstanceInOneBatchEachSeeTheOnesBefore) {
  BatchState state = fresh_state({{"orders", "a1"}});
  const auto reg = make_registration("orders", "a1");
  const auto created = plan_mutation(store::Upsert{reg}, state, kNow);
  EXPECT_EQ(created.result.outcome, Outcome::created);
  EXPECT_EQ(created.result.service_version, 1u);
  EXPECT_EQ(created.result.sequence, 41u);
  EXPECT_EQ(created.result.renewals, 0u);
  ASSERT_EQ(created.statements.size(), 1u);
  EXPECT_EQ(created.statements[0].returns_version, 1u);

  const auto again = plan_mutation(store::Upsert{reg}, state, kNow + 1s);
  EXPECT_EQ(again.result.outcome, Outcome::unchanged);
  EXPECT_EQ(again.result.service_version, 1u);
  EXPECT_EQ(again.result.renewals, 1u);

  const auto heartbeat = plan_mutation(store::Heartbeat{"orders", "a1", 2.5}, state, kNow + 2s);
  EXPECT_EQ(heartbeat.result.outcome, Outcome::updated);  // the load changed
  EXPECT_EQ(heartbeat.result.service_version, 2u);
  EXPECT_EQ(heartbeat.result.renewals, 2u);

  const auto gone = plan_mutation(store::Deregister{"orders", "a1"}, state, kNow + 3s);
  EXPECT_EQ(gone.result.outcome, Outcome::removed);
  EXPECT_EQ(gone.result.service_version, 3u);
  EXPECT_EQ(gone.result.sequence, 43u);
  const auto twice = plan_mutation(store::Deregister{"orders", "a1"}, state, kNow + 3s);
  EXPECT_EQ(twice.result.outcome, Outcome::not_found);
  EXPECT_EQ(twice.result.service_version, 3u);
  EXPECT_TRUE(twice.statements.empty());

  ASSERT_EQ(state.changes.size(), 3u);
  EXPECT_EQ(state.changes[2].sequence, 43u);
  EXPECT_EQ(state.sequence, 43u);
}

// A removal planned after a renewal in the same batch must not remove: the
// probe it was based on predates the proof of life.
TEST(BatchPlan, ARemovalAfterAHeartbeatOfTheSameBatchKeepsTheInstance) {
  BatchState state = fresh_state({{"orders", "a1"}});
  store::Instance row;
  row.registration = make_registration("orders", "a1");
  row.updated_at = kNow;
  row.renewals = 4;
  state.instances[{"orders", "a1"}] = row;
  state.services["orders"] = {7, ""};
  const store::RemoveUnhealthy removal{"orders", "a1", kNow, std::nullopt, 4};
  plan_mutation(store::Heartbeat{"orders", "a1", std::nullopt}, state, kNow + 1s);
  const auto kept = plan_mutation(removal, state, kNow + 1s);
  EXPECT_EQ(kept.result.outcome, Outcome::unchanged);
  EXPECT_EQ(kept.result.service_version, 7u);
  EXPECT_TRUE(state.changes.empty());  // a plain heartbeat changes no answer
}

TEST(BatchPlan, AStrategyChangeOfAnIdenticalRegistrationBumpsTheVersionOnce) {
  BatchState state = fresh_state({{"orders", "a1"}});
  auto reg = make_registration("orders", "a1");
  plan_mutation(store::Upsert{reg}, state, kNow);
  reg.lb = store::LbStrategy::random;
  const auto plan = plan_mutation(store::Upsert{reg}, state, kNow);
  EXPECT_EQ(plan.result.outcome, Outcome::updated);
  EXPECT_EQ(plan.result.previous_lb, "");
  EXPECT_EQ(plan.result.service_version, 2u);
  EXPECT_EQ(state.services["orders"].lb, "random");
  const auto same = plan_mutation(store::Upsert{reg}, state, kNow);
  EXPECT_EQ(same.result.outcome, Outcome::unchanged);
  EXPECT_FALSE(same.result.previous_lb);
}

TEST(BatchPlan, AnUnreadableRowFailsItsMutationAloneAndChangesNothing) {
  BatchState state = fresh_state({{"orders", "ok"}, {"orders", "bad"}});
  state.unreadable[{"orders", "bad"}] = "corrupt address in row orders/bad";
  const auto bad = plan_mutation(store::Upsert{make_registration("orders", "bad")}, state, kNow);
  EXPECT_EQ(bad.result.outcome, Outcome::failed);
  EXPECT_EQ(bad.result.error, "corrupt address in row orders/bad");
  EXPECT_TRUE(bad.statements.empty());
  EXPECT_EQ(state.sequence, 40u);
  const auto ok = plan_mutation(store::Upsert{make_registration("orders", "ok")}, state, kNow);
  EXPECT_EQ(ok.result.outcome, Outcome::created);
  EXPECT_EQ(ok.result.sequence, 41u);
}

TEST(BatchPlan, AnInstanceTheBatchDidNotReadIsAProgrammingError) {
  BatchState state = fresh_state({});
  EXPECT_THROW(plan_mutation(store::Deregister{"orders", "a1"}, state, kNow), std::logic_error);
}

// The feed is pruned at the newest multiple of 1024 a batch passes, as pruning
// at each sequence would leave it (and as SQLite does).
TEST(BatchPlan, ChangesArePrunedAtTheMultiplesOf1024TheBatchPasses) {
  BatchState state;
  state.sequence = 2050;
  state.changes = {{2049, "orders", 1, kNow}, {2050, "orders", 2, kNow}};
  const auto statement_count = [&](std::uint64_t first) {
    return store::postgres::change_statements(state, first, kNow, 1000).size();
  };
  EXPECT_EQ(statement_count(2048), 4u);  // feed, clock, outbox, notify: 2048 was passed before
  state.sequence = 2049;
  state.changes = {{2048, "orders", 1, kNow}, {2049, "orders", 2, kNow}};
  EXPECT_EQ(statement_count(2047), 5u);  // 2048 passed: prune to 2048 - 1000 too
  state.changes.clear();
  EXPECT_TRUE(store::postgres::change_statements(state, 2049, kNow, 1000).empty());
}

}  // namespace
