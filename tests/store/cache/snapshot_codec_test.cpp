// The snapshot codec: what a service snapshot looks like in Redis, and that
// entries written by older daemons sharing the Redis still decode.
#include "store/cache/snapshot_codec.h"

#include <gtest/gtest.h>

#include <string>

#include "tests/store/store_test_support.h"

namespace {

using store_test::make_registration;

TEST(SnapshotCodec, CarriesTheStrategyAndTheLoad) {
  store::ServiceSnapshot snapshot;
  snapshot.service = "svc";
  snapshot.version = 3;
  store::Instance instance;
  instance.registration = make_registration("svc", "a");
  instance.load = 0.5;
  snapshot.instances = {instance};
  auto plain = store::decode_snapshot(store::encode_snapshot(snapshot));
  ASSERT_TRUE(plain);
  EXPECT_FALSE(plain->lb);
  snapshot.lb = store::LbStrategy::least_loaded;
  auto decoded = store::decode_snapshot(store::encode_snapshot(snapshot));
  ASSERT_TRUE(decoded);
  EXPECT_EQ(decoded->lb, store::LbStrategy::least_loaded);
  EXPECT_EQ(decoded->instances.at(0).load, 0.5);
}

TEST(SnapshotCodec, CarriesRenewalsAndDecodesEntriesWrittenWithout) {
  store::ServiceSnapshot snapshot;
  snapshot.service = "orders";
  snapshot.version = 3;
  store::Instance instance;
  instance.registration = make_registration("orders", "a1");
  instance.renewals = 5;
  snapshot.instances.push_back(instance);
  std::string encoded = store::encode_snapshot(snapshot);
  EXPECT_EQ(store::decode_snapshot(encoded)->instances.at(0).renewals, 5u);
  const auto key = encoded.find("\"r\":5,");
  ASSERT_NE(key, std::string::npos) << encoded;
  encoded.erase(key, 6);  // as an older daemon sharing Redis wrote it
  const auto old = store::decode_snapshot(encoded);
  ASSERT_TRUE(old) << encoded;
  EXPECT_EQ(old->instances.at(0).renewals, 0u);
  EXPECT_EQ(old->instances.at(0).registration, instance.registration);
}

}  // namespace
