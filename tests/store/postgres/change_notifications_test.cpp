// ChangeNotifications against a real server: a commit's NOTIFY arrives with
// its sequence number, and after the listening session is terminated (or the
// server restarts) it reconnects by itself, says so (on_connected), and
// later notifications arrive again.
#include "store/postgres/change_notifications.h"

#include <gtest/gtest.h>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <mutex>
#include <thread>
#include <vector>

#include "store/postgres/postgres_store.h"
#include "tests/store/postgres/postgres_test_support.h"
#include "tests/support/process.h"

namespace {

using namespace std::chrono_literals;
using namespace postgres_test;

// A listener on its own io_context thread, recording what it heard.
class Listener {
 public:
  explicit Listener(const std::string& url)
      : work_(io_.get_executor()),
        notifications_(
            io_, url,
            [this](std::uint64_t seq) {
              std::lock_guard lock(mutex_);
              sequences_.push_back(seq);
            },
            [this] { ++connects_; }) {
    notifications_.start();
    thread_ = std::thread([this] { io_.run(); });
  }
  ~Listener() {
    notifications_.stop();
    work_.reset();
    io_.stop();
    thread_.join();
  }
  std::vector<std::uint64_t> sequences() {
    std::lock_guard lock(mutex_);
    return sequences_;
  }
  bool heard(std::uint64_t seq) {
    const auto seen = sequences();
    return std::find(seen.begin(), seen.end(), seq) != seen.end();
  }
  int connects() const { return connects_; }
  bool connected() const { return notifications_.connected(); }

 private:
  boost::asio::io_context io_;
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> work_;
  std::mutex mutex_;
  std::vector<std::uint64_t> sequences_;
  std::atomic<int> connects_{0};
  store::ChangeNotifications notifications_;
  std::thread thread_;
};

TEST_F(PostgresStoreTest, ChangeNotificationsDeliverTheLastSequenceOfEachCommit) {
  store::PostgresStore db(options());
  Listener listener(url_);
  ASSERT_TRUE(test_support::wait_until([&] { return listener.connected(); }));
  EXPECT_EQ(listener.connects(), 1);
  const std::vector<store::Mutation> batch = {store::Upsert{make_registration("orders", "a1")},
                                              store::Upsert{make_registration("orders", "a2")}};
  const auto results = db.apply(batch, kNow);
  ASSERT_EQ(results[1].sequence, 2u);
  // One notification per batch, carrying its last sequence.
  ASSERT_TRUE(test_support::wait_until([&] { return listener.heard(2); }));
  // A batch that changed nothing notifies nobody; the next change does.
  apply(db, store::Upsert{make_registration("orders", "a1")});
  EXPECT_EQ(apply(db, store::Deregister{"orders", "a1"}).sequence, 3u);
  ASSERT_TRUE(test_support::wait_until([&] { return listener.heard(3); }));
  EXPECT_EQ(listener.sequences(), (std::vector<std::uint64_t>{2, 3}));
}

TEST_F(PostgresStoreTest, ChangeNotificationsReconnectAfterTheSessionIsTerminated) {
  store::PostgresStore db(options());
  Listener listener(url_);
  ASSERT_TRUE(test_support::wait_until([&] { return listener.connected(); }));
  const auto terminate = [&] {
    return sql(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
        "WHERE datname = current_database() AND query = 'LISTEN discoveryd_changes'");
  };
  ASSERT_EQ(terminate(), "1");
  // Reconnected, LISTEN active again, and it says so (the caller rereads the feed).
  ASSERT_TRUE(test_support::wait_until([&] { return listener.connects() == 2; }, 10s))
      << listener.connects();
  ASSERT_TRUE(test_support::wait_until([&] { return listener.connected(); }));
  EXPECT_EQ(apply(db, store::Upsert{make_registration("orders", "a1")}).sequence, 1u);
  EXPECT_TRUE(test_support::wait_until([&] { return listener.heard(1); }));
}

TEST_F(PostgresStoreTest, ChangeNotificationsReconnectAfterAServerRestart) {
  store::PostgresStore db(options());
  Listener listener(url_);
  ASSERT_TRUE(test_support::wait_until([&] { return listener.connected(); }));
  server_->kill();
  ASSERT_TRUE(test_support::wait_until([&] { return !listener.connected(); }));
  ASSERT_TRUE(server_->start()) << server_->log();
  ASSERT_TRUE(test_support::wait_until([&] { return listener.connects() >= 2; }, 15s));
  ASSERT_TRUE(test_support::wait_until([&] { return listener.connected(); }));
  const auto result = apply(db, store::Upsert{make_registration("orders", "a1")});
  ASSERT_EQ(result.outcome, store::Outcome::created) << result.error;
  EXPECT_TRUE(test_support::wait_until([&] { return listener.heard(result.sequence); }));
}

}  // namespace
