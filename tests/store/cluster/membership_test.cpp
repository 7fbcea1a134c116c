// The acknowledgement rule over one SQLite file shared by in-process "daemons":
// an acknowledgement waits until every live member applied the change, at most
// a lease for a member that stopped reporting; a member whose feed is stuck
// gives its lease up and stops answering from memory, so writers need not wait.
#include "store/cluster/membership.h"

#include <gtest/gtest.h>

#include <future>

#include "store/cache/service_cache.h"
#include "store/sqlite/sqlite_store.h"
#include "tests/support/process.h"

namespace {

using namespace std::chrono_literals;
using test_support::wait_until;

store::Registration registration(std::string id) {
  store::Registration r;
  r.service = "orders";
  r.id = std::move(id);
  r.address = *store::IpAddress::parse("127.0.0.1");
  r.port = 8080;
  return r;
}

constexpr auto kLease = 600ms;

// One daemon as main.cpp composes it: store, writer, cache, membership, gate.
struct Member {
  explicit Member(const std::string& path)
      : store({path}),
        writer(store, [this](const store::Writer::Commit& c) { cache->on_commit(c); }) {
    store::CacheOptions options;
    options.serving_deadline = &deadline;
    options.feed_advanced = [this] {
      if (membership) membership->feed_advanced();
    };
    cache = std::make_unique<store::ServiceCache>(store, writer, std::move(options));
    cache->start();
    store::MembershipOptions membership_options;
    membership_options.lease = kLease;
    membership_options.renew_interval = 50ms;
    membership = std::make_unique<store::Membership>(
        store, membership_options, [this] { return cache->feed_applied(); }, deadline);
    membership->start();
    writer.set_acknowledgement_gate(membership.get());
  }
  ~Member() {
    writer.stop();
    membership->stop();
    writer.set_acknowledgement_gate(nullptr);
    cache->stop();
  }
  std::future<store::MutationResult> submit(store::Mutation mutation) {
    auto done = std::make_shared<std::promise<store::MutationResult>>();
    auto future = done->get_future();
    writer.submit(std::move(mutation),
                  [done](const store::MutationResult& r) { done->set_value(r); });
    return future;
  }
  // What a DNS query would see.
  std::vector<std::string> ids() {
    store::ServiceSnapshotPtr snapshot = cache->find_cached("orders");
    if (!snapshot) {
      std::promise<store::LookupResult> done;
      cache->fetch("orders", [&](store::LookupResult r) { done.set_value(std::move(r)); });
      snapshot = done.get_future().get().snapshot;
    }
    std::vector<std::string> ids;
    if (snapshot) {
      for (const auto& i : snapshot->instances) ids.push_back(i.id());
    }
    return ids;
  }

  store::SqliteStore store;
  store::Writer writer;
  store::ServingDeadline deadline;
  std::unique_ptr<store::ServiceCache> cache;
  std::unique_ptr<store::Membership> membership;
};

class MembershipTest : public ::testing::Test {
 protected:
  test_support::TempDir dir;
  std::string path = dir.file("registry.db");
};

TEST_F(MembershipTest, AloneAnAcknowledgementWaitsForNobody) {
  Member a(path);
  EXPECT_TRUE(wait_until([&] { return a.membership->stats().serving; }));
  auto done = a.submit(store::Upsert{registration("a1")});
  ASSERT_EQ(done.wait_for(2s), std::future_status::ready);
  EXPECT_EQ(done.get().outcome, store::Outcome::created);
  EXPECT_EQ(a.ids(), std::vector<std::string>{"a1"});
}

// The change is in the other member's memory before the writer hears "done".
TEST_F(MembershipTest, AnAcknowledgementWaitsUntilEveryLiveMemberAppliedTheChange) {
  Member a(path), b(path);
  ASSERT_TRUE(wait_until([&] {
    return a.membership->stats().live_others == 1 && b.membership->stats().live_others == 1;
  }));
  b.ids();  // b's memory holds "nothing registered"
  b.cache->pause_feed_for_test(true);
  auto done = a.submit(store::Upsert{registration("a1")});
  EXPECT_EQ(done.wait_for(150ms), std::future_status::timeout) << "acknowledged before b applied";
  b.cache->pause_feed_for_test(false);
  ASSERT_EQ(done.wait_for(2s), std::future_status::ready);
  EXPECT_EQ(done.get().outcome, store::Outcome::created);
  EXPECT_GE(b.cache->feed_applied(), 1u);
  EXPECT_EQ(b.ids(), std::vector<std::string>{"a1"});
}

// A member that stopped reporting (crashed, frozen) holds acknowledgements up
// to its lease, no longer.
TEST_F(MembershipTest, AMemberThatStoppedReportingHoldsAcknowledgementsAtMostItsLease) {
  Member a(path);
  store::SqliteStore ghost_store({path});
  ghost_store.renew_member({"ghost", "", 0, kLease});
  const auto started = std::chrono::steady_clock::now();
  auto done = a.submit(store::Upsert{registration("a1")});
  EXPECT_EQ(done.wait_for(kLease / 3), std::future_status::timeout);
  ASSERT_EQ(done.wait_for(5s), std::future_status::ready);
  EXPECT_LT(std::chrono::steady_clock::now() - started, kLease + 1s);
  EXPECT_EQ(done.get().outcome, store::Outcome::created);
}

// A member whose feed is stuck gives its lease up before writers stop waiting
// for it, and meanwhile answers from the database, never from memory.
TEST_F(MembershipTest, AMemberWithAStuckFeedGivesItsLeaseUpAndStopsServingFromMemory) {
  Member a(path), b(path);
  ASSERT_TRUE(wait_until([&] { return a.membership->stats().live_others == 1; }));
  a.submit(store::Upsert{registration("a1")}).get();
  ASSERT_EQ(b.ids(), std::vector<std::string>{"a1"});
  ASSERT_NE(b.cache->find_cached("orders"), nullptr);
  b.cache->pause_feed_for_test(true);
  // b cannot apply it: the acknowledgement waits until b gives its lease up
  // (half a lease behind its last renewal), not for the whole lease.
  const auto started = std::chrono::steady_clock::now();
  auto done = a.submit(store::Deregister{"orders", "a1"});
  ASSERT_EQ(done.wait_for(kLease + 1s), std::future_status::ready);
  EXPECT_GE(std::chrono::steady_clock::now() - started, kLease / 2);
  EXPECT_GE(b.membership->stats().leases_given_up, 1u);
  // b stopped answering from memory before that, and answers fresh from the
  // database meanwhile.
  EXPECT_FALSE(b.membership->stats().serving);
  EXPECT_EQ(b.cache->find_cached("orders"), nullptr);
  EXPECT_TRUE(b.ids().empty());
  b.cache->pause_feed_for_test(false);
  EXPECT_TRUE(wait_until([&] { return b.membership->stats().serving; }, 5s));
  EXPECT_TRUE(b.ids().empty());
}

TEST_F(MembershipTest, AStoppedMemberLeavesAndIsNoLongerWaitedFor) {
  Member a(path);
  {
    Member b(path);
    ASSERT_TRUE(wait_until([&] { return a.membership->stats().live_others == 1; }));
  }
  EXPECT_EQ(a.store.read_members().size(), 1u);
  auto done = a.submit(store::Upsert{registration("a1")});
  ASSERT_EQ(done.wait_for(kLease / 3), std::future_status::ready);
}

}  // namespace
