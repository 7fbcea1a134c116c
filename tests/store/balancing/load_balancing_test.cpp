// The load-balancing strategies as pure functions: order and fairness.
#include <gtest/gtest.h>

#include <map>
#include <vector>

#include "store/balancing/load_balancing.h"

namespace {

using store::Instance;
using store::LbStrategy;

Instance make(std::string id, std::uint16_t weight = 1, std::optional<double> load = {}) {
  Instance instance;
  instance.registration.service = "svc";
  instance.registration.id = std::move(id);
  instance.registration.address = *store::IpAddress::parse("10.0.0.1");
  instance.registration.port = 80;
  instance.registration.weight = weight;
  instance.load = load;
  return instance;
}

std::vector<const Instance*> pointers(const std::vector<Instance>& instances) {
  std::vector<const Instance*> result;
  for (const auto& instance : instances) result.push_back(&instance);
  return result;
}

std::vector<std::string> ids(const std::vector<const Instance*>& order) {
  std::vector<std::string> result;
  for (const Instance* instance : order) result.push_back(instance->id());
  return result;
}

TEST(LoadBalancing, RoundRobinPutsEachInstanceFirstInTurn) {
  const std::vector<Instance> instances = {make("a"), make("b"), make("c")};
  for (std::uint64_t rotation = 0; rotation < 6; ++rotation) {
    auto order = pointers(instances);
    store::lb::order_round_robin(order, rotation);
    const std::vector<std::string> all = {"a", "b", "c"};
    EXPECT_EQ(order.front()->id(), all[rotation % 3]);
    EXPECT_EQ(order.size(), 3u);
  }
  auto order = pointers(instances);
  store::lb::order_round_robin(order, 4);
  EXPECT_EQ(ids(order), (std::vector<std::string>{"b", "c", "a"}));
}

TEST(LoadBalancing, WeightedFirstPositionFollowsWeights) {
  const std::vector<Instance> instances = {make("light", 1), make("heavy", 3)};
  store::lb::Random random(42);
  int heavy_first = 0;
  constexpr int kRuns = 20000;
  for (int i = 0; i < kRuns; ++i) {
    auto order = pointers(instances);
    store::lb::order_weighted(order, random);
    ASSERT_EQ(order.size(), 2u);
    if (order.front()->id() == "heavy") ++heavy_first;
  }
  // Expected 75%; the standard deviation at 20,000 runs is 0.3 points.
  EXPECT_NEAR(static_cast<double>(heavy_first) / kRuns, 0.75, 0.015);
}

TEST(LoadBalancing, LeastLoadedTreatsMissingLoadAsAverageAndRotatesTies) {
  // a=5, b=1, c unreported (counts as 3): b, c, a.
  const std::vector<Instance> instances = {make("a", 1, 5.0), make("b", 1, 1.0), make("c")};
  for (std::uint64_t rotation = 0; rotation < 3; ++rotation) {
    auto order = pointers(instances);
    store::lb::order_least_loaded(order, rotation);
    EXPECT_EQ(ids(order), (std::vector<std::string>{"b", "c", "a"}));
  }
  // Equal loads (and no loads at all) rotate like round-robin.
  const std::vector<Instance> tied = {make("x", 1, 2.0), make("y", 1, 2.0), make("z", 1, 9.0)};
  std::map<std::string, int> first;
  for (std::uint64_t rotation = 0; rotation < 10; ++rotation) {
    auto order = pointers(tied);
    store::lb::order_least_loaded(order, rotation);
    ++first[order.front()->id()];
    EXPECT_EQ(order.back()->id(), "z");
  }
  EXPECT_EQ(first["x"], 5);
  EXPECT_EQ(first["y"], 5);
  const std::vector<Instance> unreported = {make("p"), make("q")};
  auto order = pointers(unreported);
  store::lb::order_least_loaded(order, 1);
  EXPECT_EQ(ids(order), (std::vector<std::string>{"q", "p"}));
}

TEST(LoadBalancing, RandomIsAUniformPermutation) {
  const std::vector<Instance> instances = {make("a"), make("b"), make("c")};
  store::lb::Random random(7);
  std::map<std::string, int> first;
  constexpr int kRuns = 30000;
  for (int i = 0; i < kRuns; ++i) {
    auto order = pointers(instances);
    store::lb::order_random(order, random);
    auto sorted = ids(order);
    std::sort(sorted.begin(), sorted.end());
    ASSERT_EQ(sorted, (std::vector<std::string>{"a", "b", "c"}));
    ++first[order.front()->id()];
  }
  for (const auto& [id, count] : first) {
    EXPECT_NEAR(static_cast<double>(count) / kRuns, 1.0 / 3, 0.015) << id;
  }
}

TEST(LoadBalancing, BalancerRotatesEachServiceIndependently) {
  const std::vector<Instance> instances = {make("a"), make("b")};
  store::lb::Balancer balancer(1);
  std::vector<std::string> firsts;
  for (int i = 0; i < 4; ++i) {
    auto order = pointers(instances);
    balancer.order("one", LbStrategy::round_robin, order);
    firsts.push_back(order.front()->id());
    // Queries of another service in between do not disturb "one"'s rotation.
    auto other = pointers(instances);
    balancer.order("two", LbStrategy::round_robin, other);
  }
  EXPECT_EQ(firsts, (std::vector<std::string>{"a", "b", "a", "b"}));
}

TEST(LoadBalancing, StrategyNamesRoundTrip) {
  for (auto strategy : {LbStrategy::round_robin, LbStrategy::weighted, LbStrategy::least_loaded,
                        LbStrategy::random}) {
    EXPECT_EQ(store::parse_lb_strategy(store::to_string(strategy)), strategy);
  }
  EXPECT_FALSE(store::parse_lb_strategy("fastest"));
  EXPECT_FALSE(store::parse_lb_strategy(""));
}

}  // namespace
