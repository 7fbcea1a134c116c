// The writer's commit fan-out: every subscriber, in subscription order, before
// any completion of the batch (invalidate before acknowledge); none once its
// subscription is gone.
#include <gtest/gtest.h>

#include <future>
#include <mutex>
#include <string>
#include <vector>

#include "store/writer.h"
#include "tests/support/process.h"

namespace {

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
  store::Registration r;
  r.service = service;
  r.id = "a1";
  r.address = *store::IpAddress::parse("127.0.0.1");
  r.port = 8080;
  return {r};
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

}  // namespace
