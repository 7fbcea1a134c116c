// RegistryStore::read_registry_since, on both backends: the services changed
// after a sequence, as of one sequence read in the same transaction (zone
// transfers build their serial and their journal from it, xfr/zone_model.h),
// and the whole registry when asked from 0, from ahead of the feed, or from
// before what the feed still holds.
#include <gtest/gtest.h>

#include <vector>

#include "tests/store/contract/registry_store_contract.h"

namespace contract_test {
namespace {

class RegistryReadContract : public RegistryStoreContract {};

std::vector<std::string> names(const store::RegistryRead& read) {
  std::vector<std::string> result;
  for (const auto& service : read.services) result.push_back(service.service);
  return result;
}

TEST_P(RegistryReadContract, FromZeroEverythingWithInstancesAsOfTheNewestSequence) {
  const auto db = open();
  EXPECT_TRUE(db->read_registry_since(0).complete);
  EXPECT_TRUE(db->read_registry_since(0).services.empty());
  apply(*db, store::Upsert{make_registration("orders", "a2")});
  apply(*db, store::Upsert{make_registration("orders", "a1")});
  apply(*db, store::Upsert{make_registration("billing", "b1")});
  apply(*db, store::Upsert{make_registration("gone", "g1")});
  apply(*db, store::Deregister{"gone", "g1"});
  const auto read = db->read_registry_since(0);
  EXPECT_TRUE(read.complete);
  EXPECT_EQ(read.sequence, 5u);
  ASSERT_EQ(names(read), (std::vector<std::string>{"billing", "orders"}));
  ASSERT_EQ(read.services[1].instances.size(), 2u);
  EXPECT_EQ(read.services[1].instances[0].id(), "a1");
  EXPECT_EQ(read.services[1].version, 2u);
}

TEST_P(RegistryReadContract, AfterASequenceOnlyTheChangedServicesEmptiedOnesIncluded) {
  const auto db = open();
  apply(*db, store::Upsert{make_registration("orders", "a1")});
  apply(*db, store::Upsert{make_registration("billing", "b1")});
  const std::uint64_t seen = db->last_sequence();
  apply(*db, store::Upsert{make_registration("orders", "a2")});
  apply(*db, store::Deregister{"billing", "b1"});
  const auto read = db->read_registry_since(seen);
  EXPECT_FALSE(read.complete);
  EXPECT_EQ(read.sequence, 4u);
  ASSERT_EQ(names(read), (std::vector<std::string>{"billing", "orders"}));
  EXPECT_TRUE(read.services[0].instances.empty());  // emptied: its records go
  EXPECT_EQ(read.services[0].version, 2u);
  EXPECT_EQ(read.services[1].instances.size(), 2u);
  const auto nothing = db->read_registry_since(4);
  EXPECT_FALSE(nothing.complete);
  EXPECT_TRUE(nothing.services.empty());
  EXPECT_EQ(nothing.sequence, 4u);
}

TEST_P(RegistryReadContract, AheadOfTheFeedOrBeyondItsRetentionEverything) {
  const auto db = open({.change_retention = 100});
  for (int i = 0; i < 1100; ++i) {
    apply(*db,
          store::Upsert{make_registration("svc" + std::to_string(i % 7), "i" + std::to_string(i))});
  }
  // Pruned at 1024 down to its last 100: the feed starts at 925.
  EXPECT_TRUE(db->read_registry_since(900).complete);
  EXPECT_EQ(db->read_registry_since(900).services.size(), 7u);
  EXPECT_FALSE(db->read_registry_since(924).complete);
  EXPECT_TRUE(db->read_registry_since(5000).complete);  // a restored database
}

INSTANTIATE_TEST_SUITE_P(Backends, RegistryReadContract,
                         ::testing::Values(Backend::sqlite, Backend::postgres),
                         [](const auto& info) { return backend_name(info.param); });

}  // namespace
}  // namespace contract_test
