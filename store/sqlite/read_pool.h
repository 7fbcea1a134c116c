// SqliteStore's read connections, internal to store/sqlite/ (only its sources
// include it). Each read borrows a connection of its own: the health checker's
// full resync, the cache's reader and the HTTP API's reads run at the same time
// (WAL lets readers proceed side by side, and alongside the writer) instead of
// queueing behind one connection and one mutex. Connections are opened on
// demand up to a cap and then kept; a read beyond the cap waits for one.
#pragma once

#include <SQLiteCpp/Database.h>

#include <condition_variable>
#include <cstddef>
#include <functional>
#include <memory>
#include <mutex>
#include <utility>
#include <vector>

namespace store {

class ReadPool {
 public:
  using Connection = std::unique_ptr<SQLite::Database>;
  using Open = std::function<Connection()>;

  // Opens the first connection at once, so that a database that cannot be read
  // fails the store's constructor rather than its first read.
  ReadPool(std::size_t max_connections, Open open)
      : max_connections_(max_connections), open_(std::move(open)) {
    idle_.push_back(open_());
    open_count_ = 1;
  }
  ReadPool(const ReadPool&) = delete;
  ReadPool& operator=(const ReadPool&) = delete;

  // A connection for one read, returned to the pool on destruction.
  class Lease {
   public:
    Lease(ReadPool& pool, Connection connection)
        : pool_(&pool), connection_(std::move(connection)) {}
    Lease(Lease&& other) noexcept = default;
    Lease& operator=(Lease&&) = delete;
    ~Lease() {
      if (connection_) pool_->release(std::move(connection_));
    }
    SQLite::Database& operator*() const { return *connection_; }
    SQLite::Database* operator->() const { return connection_.get(); }

   private:
    ReadPool* pool_;
    Connection connection_;
  };

  // Throws what opening a connection throws (SQLite::Exception).
  Lease acquire() {
    std::unique_lock lock(mutex_);
    released_.wait(lock, [&] { return !idle_.empty() || open_count_ < max_connections_; });
    if (!idle_.empty()) {
      Connection connection = std::move(idle_.back());
      idle_.pop_back();
      return Lease(*this, std::move(connection));
    }
    ++open_count_;
    lock.unlock();
    try {
      return Lease(*this, open_());
    } catch (...) {
      lock.lock();
      --open_count_;
      released_.notify_one();
      throw;
    }
  }

 private:
  void release(Connection connection) {
    {
      std::lock_guard lock(mutex_);
      idle_.push_back(std::move(connection));
    }
    released_.notify_one();
  }

  const std::size_t max_connections_;
  const Open open_;
  std::mutex mutex_;
  std::condition_variable released_;
  std::vector<Connection> idle_;
  std::size_t open_count_ = 0;  // idle and leased
};

}  // namespace store
