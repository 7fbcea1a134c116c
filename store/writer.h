// Group commit: one thread owns all registry writes and commits whatever has
// queued up since its last commit in a single transaction. With synchronous=FULL a
// commit costs about one fsync (0.4 to 0.8 ms here), so batching is what lets many
// concurrent registrations be durable without queueing behind each other's fsync.
#pragma once

#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

#include "store/sqlite_store.h"

namespace store {

class Writer {
 public:
  using Completion = std::function<void(const MutationResult&)>;
  // What one commit did. `changed_services` are the services whose version moved
  // (sorted, unique); `mutations` and `results` are the whole batch, for
  // listeners that follow individual instances (the health checker).
  struct Commit {
    const std::vector<std::string>& changed_services;
    const std::vector<Mutation>& mutations;
    const std::vector<MutationResult>& results;
  };
  // Called on the writer thread after each commit, before any completion runs.
  // This is where caches are invalidated: by the time a client sees its write
  // acknowledged, no cache holds the old state.
  using CommitListener = std::function<void(const Commit& commit)>;
  using Now = std::function<TimePoint()>;

  Writer(
      SqliteStore& store, CommitListener on_commit, Now now = [] { return Clock::now(); });
  ~Writer();  // drains the queue, then stops
  Writer(const Writer&) = delete;
  Writer& operator=(const Writer&) = delete;

  // Queues a mutation. Thread-safe. The completion runs on the writer thread once
  // the mutation is committed (or has failed); it must not block.
  void submit(Mutation mutation, Completion completion);
  // Records that the cache confirmed these invalidations: their outbox rows are
  // deleted in the next transaction (no transaction of their own: a row that
  // lingers only causes one extra, harmless invalidation after a restart).
  void confirm_invalidations(std::vector<OutboxEntry> entries);
  // Stops accepting work, finishes everything queued, joins the thread.
  void stop();

  struct Stats {
    std::uint64_t commits = 0;
    std::uint64_t mutations = 0;
    std::uint64_t largest_batch = 0;
    // Transactions the database refused as a whole (full, locked, I/O error).
    std::uint64_t failed_commits = 0;
  };
  Stats stats() const;

 private:
  struct Pending {
    Mutation mutation;
    Completion completion;
  };
  void run();
  void note_outcome(const std::vector<MutationResult>& results);

  SqliteStore& store_;
  CommitListener on_commit_;
  Now now_;
  mutable std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<Pending> queue_;
  std::vector<OutboxEntry> confirmed_;
  bool stopping_ = false;
  std::uint64_t refused_batches_ = 0;  // consecutive; writer thread only
  Stats stats_;
  std::thread thread_;
};

}  // namespace store
