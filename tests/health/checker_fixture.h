// The health checker's test fixture: a real SQLite store, the real
// group-commit writer and a Checker on its own io_context thread, with a short
// interval (200 ms) and a threshold of 3.
#pragma once

#include <gtest/gtest.h>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <future>
#include <mutex>
#include <thread>

#include "health/checker.h"
#include "store/sqlite/sqlite_store.h"
#include "store/writer.h"
#include "tests/health/test_servers.h"
#include "tests/support/process.h"

namespace health_test {

using test_support::wait_until;

inline constexpr auto kInterval = std::chrono::milliseconds(200);

inline store::IpAddress ip(const std::string& text) {
  return *store::IpAddress::parse(text);
}

inline store::Registration instance(const std::string& id, std::uint16_t port,
                                    store::CheckType type = store::CheckType::tcp,
                                    const std::string& address = "127.0.0.1") {
  store::Registration registration;
  registration.service = "orders";
  registration.id = id;
  registration.address = ip(address);
  registration.port = port;
  registration.check.type = type;
  if (type == store::CheckType::http) registration.check.path = "/health";
  if (type == store::CheckType::ttl) registration.check.ttl = kInterval;
  return registration;
}

class HealthCheckerTest : public ::testing::Test {
 protected:
  HealthCheckerTest() {
    store_ = std::make_unique<store::SqliteStore>(
        store::StoreOptions{dir_.file("discoveryd.db"), /*synchronous_full=*/false});
    writer_ = std::make_unique<store::Writer>(
        *store_, [this](const store::Writer::Commit& commit) { on_commit(commit); });
  }

  ~HealthCheckerTest() override { shutdown(); }

  static health::Options fast_options() {
    health::Options options;
    options.default_interval = kInterval;
    options.default_timeout = std::chrono::milliseconds(150);
    options.default_failures = 3;
    options.record_flush_period = std::chrono::milliseconds(50);
    return options;
  }

  // As main.cpp wires it: the writer's listener forwards every commit.
  void on_commit(const store::Writer::Commit& commit) {
    std::lock_guard lock(listener_mutex_);
    for (std::size_t i = 0; i < commit.mutations.size(); ++i) {
      const auto* removal = std::get_if<store::RemoveUnhealthy>(&commit.mutations[i]);
      if (removal && commit.results[i].outcome == store::Outcome::removed) {
        removed_by_listener_.push_back(removal->id);
      }
    }
    if (checker_) checker_->on_commit(commit);
  }

  void start(health::Options options) {
    {
      std::lock_guard lock(listener_mutex_);
      checker_ = std::make_unique<health::Checker>(io_, *store_, *writer_, std::move(options));
    }
    checker_->start();
    io_thread_ = std::thread([this] { io_.run(); });
  }

  void shutdown() {
    if (checker_) checker_->stop();
    guard_.reset();
    if (io_thread_.joinable()) {
      // Let stop() run, then end the loop.
      wait_until([this] { return !checker_ || checker_->stats().probes_in_flight == 0; },
                 std::chrono::seconds(5));
      io_.stop();
      io_thread_.join();
    }
    {
      std::lock_guard lock(listener_mutex_);
      checker_.reset();
    }
    if (writer_) writer_->stop();
  }

  store::MutationResult submit(store::Mutation mutation) {
    auto done = std::make_shared<std::promise<store::MutationResult>>();
    auto result = done->get_future();
    writer_->submit(std::move(mutation),
                    [done](const store::MutationResult& r) { done->set_value(r); });
    return result.get();
  }

  void add(const store::Registration& registration) {
    ASSERT_EQ(submit(store::Upsert{registration}).outcome, store::Outcome::created);
  }

  std::optional<store::Instance> find(const std::string& id) {
    for (auto& found : store_->read_service("orders").instances) {
      if (found.id() == id) return found;
    }
    return std::nullopt;
  }

  std::vector<std::string> removed_by_listener() {
    std::lock_guard lock(listener_mutex_);
    return removed_by_listener_;
  }

  health::Stats stats() { return checker_->stats(); }

  test_support::TempDir dir_;
  boost::asio::io_context io_;
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> guard_{
      io_.get_executor()};
  std::thread io_thread_;
  std::unique_ptr<store::SqliteStore> store_;
  std::unique_ptr<store::Writer> writer_;
  std::mutex listener_mutex_;
  std::vector<std::string> removed_by_listener_;
  std::unique_ptr<health::Checker> checker_;
};

}  // namespace health_test
