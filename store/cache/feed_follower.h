// Follows the database's change feed (RegistryStore::read_changes): every
// committed change, by this daemon or any other sharing the database, reaches
// the handler in sequence order, none missed. This is what keeps the near cache
// and the known names coherent across daemons; Redis is no longer needed for it.
//
// It polls last_sequence() every poll_interval (for SQLite, one indexed read of
// a one-row table) and reads the changes after the last applied one; wake()
// polls at once (a PostgreSQL notification). It runs on a thread of its own so
// that a queue of slow cache misses cannot delay it.
//
// Freshness: current(now) says whether memory may answer. A poll that started
// at t and completed (its changes handled) extends the deadline to t + max_lag:
// every change committed before t has been handled, so until the deadline
// nothing answered from memory is older than max_lag. The deadline is checked
// per answer against the monotonic clock, so a daemon that was frozen (SIGSTOP,
// a VM pause) finds it expired the moment it runs again, and answers from the
// database until the feed is caught up.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "store/registry_store.h"

namespace store {

struct FeedOptions {
  std::chrono::milliseconds poll_interval{5};
  // How far behind the database memory may be before it stops answering.
  std::chrono::milliseconds max_lag{1000};
  std::size_t batch = 1000;  // changes read per query
};

struct FeedStats {
  bool current = false;
  std::uint64_t applied = 0;  // the newest sequence handled
  std::uint64_t polls = 0;
  std::uint64_t changes = 0;  // changes handed to the handler
  std::uint64_t skipped = 0;  // changes of our own, handled at commit
  std::uint64_t gaps = 0;     // fell behind the feed's retention: reread everything
  std::uint64_t errors = 0;   // polls the database did not answer
};

class FeedFollower {
 public:
  using Clock = std::chrono::steady_clock;
  struct Handlers {
    // Changes in sequence order (on the follower's thread), before the
    // freshness deadline moves past them.
    std::function<void(const std::vector<Change>&)> changes;
    // Changes were pruned before we read them: anything may have changed.
    std::function<void()> gap;
    // Optional: the applied sequence moved (after the deadline did).
    std::function<void()> advanced;
  };

  FeedFollower(RegistryStore& store, FeedOptions options, Handlers handlers);
  ~FeedFollower();
  FeedFollower(const FeedFollower&) = delete;
  FeedFollower& operator=(const FeedFollower&) = delete;

  // Reads the newest sequence (where following starts: the caller loads its
  // state after this) and starts polling. If the database does not answer,
  // following starts at the first poll that it does, with a gap.
  void start();
  void stop();
  // Polls now rather than at the next interval.
  void wake();
  // A change this daemon handled itself when it committed: not handed over
  // again (it would only cost a second invalidation).
  void skip(std::uint64_t sequence);

  bool current(Clock::time_point now = Clock::now()) const {
    return now.time_since_epoch().count() < fresh_until_.load(std::memory_order_acquire);
  }
  FeedStats stats() const;
  std::uint64_t applied() const;  // the newest sequence handed over (or skipped)

  // Test hook: polls stop (as if the database stopped answering) until resumed.
  void pause_for_test(bool paused);

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_;
  // Steady-clock ticks until which memory may answer (see the header comment).
  std::atomic<Clock::rep> fresh_until_{0};
};

}  // namespace store
