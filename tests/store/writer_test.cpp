// The group-commit writer: batching, outbox confirmations, stopping, and its
// commit fan-out: every subscriber, in subscription order, before
// any completion of the batch (invalidate before acknowledge); none once its
// subscription is gone.
#include <gtest/gtest.h>

#include <future>
#include <mutex>
#include <string>
#include <vector>

#include "store/writer.h"
#include "tests/store/store_test_support.h"
#include "tests/support/process.h"

namespace {

using namespace std::chrono_literals;
using namespace store_test;
using store::Outcome;

// Records, in one shared log, what it heard and when.
struct RecordingSubscriber final : store::CommitSubscriber {
  RecordingSubscriber(std::string name, std::vector<std::string>& log, std::mutex& mutex)
      : name(std::move(name)), log(log), mutex(mutex) {}
  void on_commit(const store::CommittedBatch& commit) override {
    std::lock_guard lock(mutex);
    for (const auto& service : commit.changed_services) log.push_back(name + ":" + service);
  }
  std::string name;
  std::vector<std::string>& log;
  std::mutex& mutex;
};

store::Upsert upsert(const std::string& service) {
  return {store_test::make_registration(service, "a1")};
}

class WriterFanOutTest : public ::testing::Test {
 protected:
  // Commits one mutation and records its acknowledgement in the log.
  void commit(store::Writer& writer, const std::string& service) {
    std::promise<void> done;
    writer.submit(upsert(service), [&](const store::MutationResult&) {
      {
        std::lock_guard lock(mutex);
        log.push_back("ack:" + service);
      }
      done.set_value();
    });
    done.get_future().get();
  }

  test_support::TempDir dir;
  store::SqliteStore db{{dir.file("registry.db")}};
  std::vector<std::string> log;
  std::mutex mutex;
};

TEST_F(WriterFanOutTest, EverySubscriberInOrderBeforeTheAcknowledgement) {
  store::Writer writer(db);
  RecordingSubscriber cache("cache", log, mutex), health("health", log, mutex);
  const auto first = writer.subscribe(cache);
  const auto second = writer.subscribe(health);
  commit(writer, "orders");
  EXPECT_EQ(log, (std::vector<std::string>{"cache:orders", "health:orders", "ack:orders"}));
}

TEST_F(WriterFanOutTest, AnEndedSubscriptionHearsNothingMore) {
  store::Writer writer(db);
  RecordingSubscriber cache("cache", log, mutex), health("health", log, mutex);
  const auto kept = writer.subscribe(cache);
  {
    const auto ended = writer.subscribe(health);
    commit(writer, "orders");
  }
  commit(writer, "payments");
  EXPECT_EQ(log, (std::vector<std::string>{"cache:orders", "health:orders", "ack:orders",
                                           "cache:payments", "ack:payments"}));
}

TEST_F(SqliteStoreTest, WriterClearsConfirmedOutboxEntriesWithItsNextCommit) {
  store::SqliteStore db({path});
  {
    store::Writer writer(db);
    std::promise<void> first;
    writer.submit(store::Upsert{make_registration("orders", "a1")},
                  [&](const store::MutationResult&) { first.set_value(); });
    first.get_future().wait();
    EXPECT_EQ(db.read_outbox().size(), 1u);
    writer.confirm_invalidations({{"orders", 1}});
    std::promise<void> second;
    writer.submit(store::Upsert{make_registration("payments", "p1")},
                  [&](const store::MutationResult&) { second.set_value(); });
    second.get_future().wait();
    EXPECT_EQ(db.read_outbox(), (std::vector<store::OutboxEntry>{{"payments", 1}}));
    writer.confirm_invalidations({{"payments", 1}});
  }  // stopping records the last confirmations
  EXPECT_TRUE(db.read_outbox().empty());
}

TEST_F(SqliteStoreTest, WriterGroupsConcurrentMutationsIntoFewCommits) {
  store::SqliteStore db({path});
  std::vector<std::string> notified;
  store::Writer writer(db, [&](const store::Writer::Commit& commit) {
    notified.insert(notified.end(), commit.changed_services.begin(), commit.changed_services.end());
  });
  constexpr int kWrites = 400;
  std::vector<std::promise<store::MutationResult>> promises(kWrites);
  for (int i = 0; i < kWrites; ++i) {
    writer.submit(
        store::Upsert{make_registration("svc" + std::to_string(i % 4), "i" + std::to_string(i))},
        [&, i](const store::MutationResult& result) { promises[i].set_value(result); });
  }
  for (auto& promise : promises) {
    EXPECT_EQ(promise.get_future().get().outcome, Outcome::created);
  }
  const auto stats = writer.stats();
  EXPECT_EQ(stats.mutations, static_cast<std::uint64_t>(kWrites));
  EXPECT_LT(stats.commits, static_cast<std::uint64_t>(kWrites));  // batching happened
  EXPECT_GT(stats.largest_batch, 1u);
  std::size_t total = 0;
  for (int s = 0; s < 4; ++s) total += db.read_service("svc" + std::to_string(s)).instances.size();
  EXPECT_EQ(total, static_cast<std::size_t>(kWrites));
  writer.stop();
  std::sort(notified.begin(), notified.end());
  notified.erase(std::unique(notified.begin(), notified.end()), notified.end());
  EXPECT_EQ(notified, (std::vector<std::string>{"svc0", "svc1", "svc2", "svc3"}));
}

TEST_F(SqliteStoreTest, WriterNotifiesChangedServicesBeforeCompleting) {
  store::SqliteStore db({path});
  std::promise<void> notified;
  std::atomic<bool> notified_flag{false};
  std::vector<std::string> services;
  store::Writer writer(db, [&](const store::Writer::Commit& commit) {
    services = commit.changed_services;
    notified_flag = true;
  });
  std::promise<bool> completion_saw_notification;
  writer.submit(store::Upsert{make_registration("orders", "a1")},
                [&](const store::MutationResult&) {
                  completion_saw_notification.set_value(notified_flag.load());
                });
  EXPECT_TRUE(completion_saw_notification.get_future().get());
  writer.stop();
  EXPECT_EQ(services, std::vector<std::string>{"orders"});
}

TEST_F(SqliteStoreTest, WriterReportsNoChangedServiceForUnchangedState) {
  store::SqliteStore db({path});
  int notifications = 0;
  std::size_t mutations_seen = 0;
  store::Writer writer(db, [&](const store::Writer::Commit& commit) {
    notifications += static_cast<int>(commit.changed_services.size());
    mutations_seen += commit.mutations.size();
  });
  std::promise<void> done;
  writer.submit(store::Deregister{"orders", "nope"},
                [&](const store::MutationResult&) { done.set_value(); });
  done.get_future().wait();
  writer.stop();
  EXPECT_EQ(notifications, 0);
  EXPECT_EQ(mutations_seen, 1u);
}

TEST_F(SqliteStoreTest, WriterReportsNoChangedServiceForAnIdenticalReRegistration) {
  store::SqliteStore db({path});
  apply(db, store::Upsert{make_registration("orders", "a1")});
  std::vector<std::string> changed;
  store::Writer writer(db, [&](const store::Writer::Commit& commit) {
    changed.insert(changed.end(), commit.changed_services.begin(), commit.changed_services.end());
  });
  std::promise<store::MutationResult> done;
  writer.submit(store::Upsert{make_registration("orders", "a1")},
                [&](const store::MutationResult& r) { done.set_value(r); });
  const auto result = done.get_future().get();
  writer.stop();
  EXPECT_EQ(result.outcome, Outcome::unchanged);
  EXPECT_EQ(result.service_version, 1u);
  EXPECT_EQ(result.renewals, 1u);
  EXPECT_TRUE(changed.empty());
  EXPECT_EQ(db.read_outbox(), (std::vector<store::OutboxEntry>{{"orders", 1}}));  // creation only
}

TEST_F(SqliteStoreTest, WriterAfterStopFailsInsteadOfLosingWork) {
  store::SqliteStore db({path});
  store::Writer writer(db);
  writer.stop();
  store::MutationResult result;
  writer.submit(store::Upsert{make_registration("orders", "a1")},
                [&](const store::MutationResult& r) { result = r; });
  EXPECT_EQ(result.outcome, Outcome::failed);
}

// The writer needs nothing but the RegistryStore interface: a store of another
// kind (here an in-memory one that refuses its first transaction, as a
// networked database does when the connection drops) gets the same batching,
// the same fan-out of changed services, and failures that reach every
// completion while the confirmations are kept for the next transaction.
class RefusingOnceStore final : public store::RegistryStore {
 public:
  std::vector<store::OutboxEntry> read_outbox() override { return {}; }
  store::ServiceSnapshot read_service(std::string_view) override { return {}; }
  std::vector<store::ServiceSummary> list_services() override { return {}; }
  std::vector<store::Instance> read_all_instances() override { return {}; }
  store::StoreStatus status() override { return {"memory", "", 0}; }
  std::vector<store::Change> read_changes(std::uint64_t, std::size_t) override { return {}; }
  std::uint64_t last_sequence() override { return 0; }
  store::RegistryRead read_registry_since(std::uint64_t) override { return {}; }
  std::uint64_t renew_member(const store::MemberReport&) override { return 0; }
  void remove_member(std::string_view) override {}
  std::vector<store::Member> read_members() override { return {}; }
  store::ShardView balance_shards(std::string_view, const store::ShardSet&) override { return {}; }
  std::vector<store::ShardRow> read_shards() override { return {}; }
  std::vector<std::vector<store::OutboxEntry>> confirmations_seen;

 protected:
  std::vector<store::MutationResult> apply_batch(
      std::span<const store::Mutation> mutations, store::TimePoint,
      std::span<const store::OutboxEntry> confirmed) override {
    confirmations_seen.emplace_back(confirmed.begin(), confirmed.end());
    std::vector<store::MutationResult> results(mutations.size());
    for (auto& result : results) {
      if (refuse_next_) {
        result.outcome = Outcome::failed;
        result.error = "database unavailable: connection lost";
      } else {
        result.outcome = Outcome::created;
        result.service_version = ++version_;
      }
    }
    refuse_next_ = false;
    return results;
  }

 private:
  bool refuse_next_ = true;
  std::uint64_t version_ = 0;
};

TEST(WriterOverAnyStore, FailuresReachCompletionsAndConfirmationsWaitForACommit) {
  RefusingOnceStore memory;
  std::vector<std::string> changed;
  store::Writer writer(memory, [&](const store::Writer::Commit& commit) {
    changed.insert(changed.end(), commit.changed_services.begin(), commit.changed_services.end());
  });
  writer.confirm_invalidations({{"orders", 1}});
  const auto submit = [&](const std::string& service) {
    std::promise<store::MutationResult> done;
    writer.submit(upsert(service), [&](const store::MutationResult& r) { done.set_value(r); });
    return done.get_future().get();
  };
  const auto refused = submit("orders");
  EXPECT_EQ(refused.outcome, Outcome::failed);
  EXPECT_EQ(refused.error, "database unavailable: connection lost");
  EXPECT_TRUE(changed.empty());
  const auto created = submit("payments");
  writer.stop();
  EXPECT_EQ(created.outcome, Outcome::created);
  EXPECT_EQ(changed, std::vector<std::string>{"payments"});
  EXPECT_EQ(writer.stats().failed_commits, 1u);
  // The refused transaction's confirmation is offered again with the next one.
  ASSERT_GE(memory.confirmations_seen.size(), 2u);
  EXPECT_EQ(memory.confirmations_seen[0], (std::vector<store::OutboxEntry>{{"orders", 1}}));
  EXPECT_EQ(memory.confirmations_seen[1], (std::vector<store::OutboxEntry>{{"orders", 1}}));
}

}  // namespace

namespace {

// A gate that holds every acknowledgement until the test releases it.
struct HoldingGate final : store::AcknowledgementGate {
  void hold_until_applied(std::uint64_t sequence, std::function<void()> release) override {
    std::lock_guard lock(mutex);
    held.emplace_back(sequence, std::move(release));
  }
  std::vector<std::uint64_t> sequences() {
    std::lock_guard lock(mutex);
    std::vector<std::uint64_t> out;
    for (const auto& [sequence, release] : held) out.push_back(sequence);
    return out;
  }
  void release_all() {
    std::vector<std::pair<std::uint64_t, std::function<void()>>> taken;
    {
      std::lock_guard lock(mutex);
      taken.swap(held);
    }
    for (auto& [sequence, release] : taken) release();
  }
  std::mutex mutex;
  std::vector<std::pair<std::uint64_t, std::function<void()>>> held;
};

// Completions wait for the gate with the newest sequence the batch observed,
// an `unchanged` one too (it reflects the state after earlier changes); the
// writer goes on committing meanwhile.
TEST_F(WriterFanOutTest, AcknowledgementsWaitForTheGateWithTheObservedSequence) {
  HoldingGate gate;
  store::Writer writer(db);
  writer.set_acknowledgement_gate(&gate);
  std::promise<store::MutationResult> first, second;
  writer.submit(upsert("orders"), [&](const store::MutationResult& r) { first.set_value(r); });
  ASSERT_TRUE(test_support::wait_until([&] { return gate.sequences().size() == 1; }));
  writer.submit(upsert("orders"), [&](const store::MutationResult& r) { second.set_value(r); });
  ASSERT_TRUE(test_support::wait_until([&] { return gate.sequences().size() == 2; }));
  EXPECT_EQ(gate.sequences(), (std::vector<std::uint64_t>{1, 1}));
  auto first_done = first.get_future();
  EXPECT_EQ(first_done.wait_for(std::chrono::milliseconds(50)), std::future_status::timeout);
  gate.release_all();
  EXPECT_EQ(first_done.get().outcome, Outcome::created);
  const auto again = second.get_future().get();
  EXPECT_EQ(again.outcome, Outcome::unchanged);
  EXPECT_EQ(again.observed_sequence, 1u);
  writer.set_acknowledgement_gate(nullptr);
  writer.stop();
}

}  // namespace
