// Shared by the cache tests: a "daemon" (store, writer, cache on one SQLite
// file), a latch to hold its reader at a chosen moment, and a fixture with a
// real redis-server.
#pragma once

#include <gtest/gtest.h>

#include <condition_variable>
#include <future>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "store/cache/service_cache.h"
#include "store/sqlite/sqlite_store.h"
#include "tests/support/process.h"
#include "tests/support/redis_server.h"

namespace cache_test {

inline store::Registration registration(std::string id, std::string address = "127.0.0.1",
                                        std::uint16_t port = 8080) {
  store::Registration r;
  r.service = "orders";
  r.id = std::move(id);
  r.address = *store::IpAddress::parse(address);
  r.port = port;
  return r;
}

// A latch the test opens to let a blocked reader continue.
class Gate {
 public:
  void block_next() {
    std::lock_guard lock(mutex_);
    armed_ = true;
    entered_ = false;
    open_ = false;
  }
  // Called from the reader thread.
  void pass() {
    std::unique_lock lock(mutex_);
    if (!armed_) return;
    armed_ = false;
    entered_ = true;
    changed_.notify_all();
    changed_.wait(lock, [&] { return open_; });
  }
  bool wait_entered() {
    std::unique_lock lock(mutex_);
    return changed_.wait_for(lock, std::chrono::seconds(10), [&] { return entered_; });
  }
  void open() {
    std::lock_guard lock(mutex_);
    open_ = true;
    changed_.notify_all();
  }

 private:
  std::mutex mutex_;
  std::condition_variable changed_;
  bool armed_ = false, entered_ = false, open_ = false;
};

// One "daemon": a store on the shared file, its writer and its cache.
struct Node {
  Node(const std::string& db_path, store::CacheOptions options)
      : store({db_path}),
        writer(store, [this](const store::Writer::Commit& c) { cache->on_commit(c); }) {
    options.after_db_read = [this](const std::string&) { gate.pass(); };
    cache = std::make_unique<store::ServiceCache>(store, writer, std::move(options));
    cache->start();
  }
  ~Node() {
    writer.stop();
    cache->stop();
  }

  store::MutationResult commit(store::Mutation mutation) {
    std::promise<store::MutationResult> done;
    writer.submit(std::move(mutation),
                  [&](const store::MutationResult& result) { done.set_value(result); });
    return done.get_future().get();
  }
  std::future<store::LookupResult> fetch_async(const std::string& service = "orders") {
    auto promise = std::make_shared<std::promise<store::LookupResult>>();
    auto future = promise->get_future();
    cache->fetch(service, [promise](store::LookupResult r) { promise->set_value(std::move(r)); });
    return future;
  }
  // What a DNS query would see: the near cache, else a fetch.
  store::ServiceSnapshotPtr lookup(const std::string& service = "orders") {
    if (auto cached = cache->find_cached(service)) return cached;
    auto future = fetch_async(service);
    if (future.wait_for(std::chrono::seconds(10)) != std::future_status::ready) return nullptr;
    auto result = future.get();
    return result.ok ? result.snapshot : nullptr;
  }
  std::vector<std::string> ids(const std::string& service = "orders") {
    std::vector<std::string> ids;
    if (auto snapshot = lookup(service)) {
      for (const auto& i : snapshot->instances) ids.push_back(i.id());
    }
    return ids;
  }

  Gate gate;
  store::SqliteStore store;
  store::Writer writer;
  std::unique_ptr<store::ServiceCache> cache;
};

class ServiceCacheTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(redis.start()) << redis.log(); }

  store::CacheOptions options(bool near_cache = false) {
    store::CacheOptions options;
    options.redis = store::redis::Options{};
    options.redis->port = redis.port();
    options.redis->command_timeout =
        std::chrono::milliseconds(20);  // generous for loaded CI machines
    options.near_cache = near_cache;
    options.prefix = "t:";
    return options;
  }
  std::unique_ptr<Node> make_node(store::CacheOptions options) {
    auto node = std::make_unique<Node>(dir.file("registry.db"), std::move(options));
    EXPECT_TRUE(test_support::wait_until([&] { return node->cache->stats().redis_trusted; }));
    return node;
  }
  std::string redis_get(const std::string& key) { return redis.run_cli({"GET", key}); }
  bool redis_has(const std::string& key) {
    return redis.run_cli({"EXISTS", key}).find('1') != std::string::npos;
  }

  test_support::TempDir dir;
  test_support::RedisServer redis;
};

}  // namespace cache_test
