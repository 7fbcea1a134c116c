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
#include <utility>
#include <vector>

#include "store/registry_store.h"

namespace store {

// What one commit did. `changed_services` are the services whose version moved
// (sorted, unique); `mutations` and `results` are the whole batch, for
// subscribers that follow individual instances (the health checker).
struct CommittedBatch {
  const std::vector<std::string>& changed_services;
  const std::vector<Mutation>& mutations;
  const std::vector<MutationResult>& results;
};

// Hears about every committed batch, on the writer thread.
//
// The rule of the fan-out: every subscriber has returned before any completion
// of the batch runs, so a client never sees its write acknowledged while a
// subscriber still holds the state before it (invalidate before acknowledge).
// Subscribers run in the order they subscribed; the daemon subscribes the cache
// first (it invalidates the near cache and Redis), then the health checker (it
// follows instances). on_commit must not submit to the writer and wait for it.
class CommitSubscriber {
 public:
  virtual ~CommitSubscriber() = default;
  virtual void on_commit(const CommittedBatch& commit) = 0;
};

// Holds acknowledgements until every live daemon sharing the database has
// applied a sequence (store/cluster/membership.h): "fresh everywhere after every
// acknowledgement". `release` runs exactly once, on any thread, and must not block.
class AcknowledgementGate {
 public:
  virtual ~AcknowledgementGate() = default;
  virtual void hold_until_applied(std::uint64_t sequence, std::function<void()> release) = 0;
};

class Writer {
 public:
  using Completion = std::function<void(const MutationResult&)>;
  using Commit = CommittedBatch;
  using CommitListener = std::function<void(const Commit& commit)>;
  using Now = std::function<TimePoint()>;

  // Ends a subscription when destroyed, waiting for a fan-out in progress, so a
  // subscriber is never called once its subscription is gone.
  class [[nodiscard]] Subscription {
   public:
    Subscription(Writer& writer, CommitSubscriber& subscriber)
        : writer_(&writer), subscriber_(&subscriber) {}
    Subscription(Subscription&& other) noexcept
        : writer_(std::exchange(other.writer_, nullptr)), subscriber_(other.subscriber_) {}
    Subscription& operator=(Subscription&&) = delete;
    ~Subscription() {
      if (writer_) writer_->unsubscribe(*subscriber_);
    }

   private:
    Writer* writer_;
    CommitSubscriber* subscriber_;
  };

  explicit Writer(
      RegistryStore& store, Now now = [] { return Clock::now(); });
  // For tests and tools: one function subscribed for the writer's lifetime.
  Writer(
      RegistryStore& store, CommitListener on_commit, Now now = [] { return Clock::now(); });
  ~Writer();  // drains the queue, then stops
  Writer(const Writer&) = delete;
  Writer& operator=(const Writer&) = delete;

  // Adds a subscriber after those already there (see CommitSubscriber for the
  // order rule). Thread-safe; takes effect from the next batch.
  Subscription subscribe(CommitSubscriber& subscriber);

  // Queues a mutation. Thread-safe. The completion runs once the mutation is
  // committed (or has failed) and, with a gate, every live daemon applied it: on
  // the writer thread, or the gate's. It must not block.
  void submit(Mutation mutation, Completion completion);
  // Records that the cache confirmed these invalidations: their outbox rows are
  // deleted in the next transaction (no transaction of their own: a row that
  // lingers only causes one extra, harmless invalidation after a restart).
  void confirm_invalidations(std::vector<OutboxEntry> entries);
  // Stops accepting work, finishes everything queued, joins the thread.
  void stop();
  // From now on, completions of batches that observed a sequence wait for the
  // gate (nullptr: none). The gate must outlive the writer or be reset first.
  void set_acknowledgement_gate(AcknowledgementGate* gate);

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
  // Adapts a CommitListener for the convenience constructor.
  struct FunctionSubscriber final : CommitSubscriber {
    explicit FunctionSubscriber(CommitListener f) : listener(std::move(f)) {}
    void on_commit(const CommittedBatch& commit) override {
      if (listener) listener(commit);
    }
    CommitListener listener;
  };

  void run();
  void publish(const CommittedBatch& commit);
  void unsubscribe(CommitSubscriber& subscriber);
  void note_outcome(const std::vector<MutationResult>& results);
  void acknowledge(std::vector<Pending> batch, const std::vector<MutationResult>& results);

  RegistryStore& store_;
  FunctionSubscriber function_subscriber_;
  Now now_;
  // Held while the writer thread calls subscribers, so that unsubscribe waits
  // for a fan-out in progress.
  std::mutex fanout_mutex_;
  std::vector<CommitSubscriber*> subscribers_;  // guarded by fanout_mutex_
  mutable std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<Pending> queue_;
  std::vector<OutboxEntry> confirmed_;
  AcknowledgementGate* gate_ = nullptr;  // guarded by mutex_
  bool stopping_ = false;
  std::uint64_t refused_batches_ = 0;  // consecutive; writer thread only
  Stats stats_;
  std::thread thread_;
};

}  // namespace store
