#include "store/writer.h"

#include <algorithm>
#include <memory>

#include "store/logging.h"

namespace store {
namespace {
// Bounds the work (and the memory of results) one transaction carries.
constexpr std::size_t kMaxBatch = 512;

std::shared_ptr<spdlog::logger> logger() {
  return component_logger("store");
}

}  // namespace

Writer::Writer(RegistryStore& store, Now now) : Writer(store, CommitListener{}, std::move(now)) {}

Writer::Writer(RegistryStore& store, CommitListener on_commit, Now now)
    : store_(store), function_subscriber_(std::move(on_commit)), now_(std::move(now)) {
  if (function_subscriber_.listener) subscribers_.push_back(&function_subscriber_);
  thread_ = std::thread([this] { run(); });
}

Writer::Subscription Writer::subscribe(CommitSubscriber& subscriber) {
  std::lock_guard lock(fanout_mutex_);
  subscribers_.push_back(&subscriber);
  return Subscription(*this, subscriber);
}

void Writer::unsubscribe(CommitSubscriber& subscriber) {
  std::lock_guard lock(fanout_mutex_);
  std::erase(subscribers_, &subscriber);
}

void Writer::publish(const CommittedBatch& commit) {
  std::lock_guard lock(fanout_mutex_);
  for (auto* subscriber : subscribers_) subscriber->on_commit(commit);
}

Writer::~Writer() {
  stop();
}

void Writer::submit(Mutation mutation, Completion completion) {
  bool accepted = false;
  {
    std::lock_guard lock(mutex_);
    if (!stopping_) {
      queue_.push_back({std::move(mutation), std::move(completion)});
      accepted = true;
    }
  }
  if (!accepted) {
    completion({Outcome::failed, 0, "shutting down", {}});
    return;
  }
  wake_.notify_one();
}

void Writer::confirm_invalidations(std::vector<OutboxEntry> entries) {
  std::lock_guard lock(mutex_);
  confirmed_.insert(confirmed_.end(), std::make_move_iterator(entries.begin()),
                    std::make_move_iterator(entries.end()));
}

void Writer::stop() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_one();
  if (thread_.joinable()) thread_.join();
}

Writer::Stats Writer::stats() const {
  std::lock_guard lock(mutex_);
  return stats_;
}

void Writer::run() {
  std::vector<Pending> batch;
  std::vector<Mutation> mutations;
  std::vector<OutboxEntry> confirmed;
  for (;;) {
    batch.clear();
    confirmed.clear();
    {
      std::unique_lock lock(mutex_);
      wake_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
      if (queue_.empty()) {
        // Stopping and drained: record the last confirmations, then leave.
        confirmed.swap(confirmed_);
        lock.unlock();
        if (!confirmed.empty()) store_.apply({}, now_(), confirmed);
        return;
      }
      while (!queue_.empty() && batch.size() < kMaxBatch) {
        batch.push_back(std::move(queue_.front()));
        queue_.pop_front();
      }
      confirmed.swap(confirmed_);
    }
    mutations.clear();
    for (auto& pending : batch) mutations.push_back(std::move(pending.mutation));
    const auto results = store_.apply(mutations, now_(), confirmed);
    if (!confirmed.empty() && std::any_of(results.begin(), results.end(), [](const auto& r) {
          return r.outcome == Outcome::failed;
        })) {
      // The transaction may have failed as a whole: keep the confirmations for the
      // next one (deleting an outbox row twice is harmless).
      std::lock_guard lock(mutex_);
      confirmed_.insert(confirmed_.end(), confirmed.begin(), confirmed.end());
    }

    note_outcome(results);

    std::vector<std::string> changed;
    for (std::size_t i = 0; i < results.size(); ++i) {
      if (results[i].changed()) changed.push_back(service_of(mutations[i]));
    }
    std::sort(changed.begin(), changed.end());
    changed.erase(std::unique(changed.begin(), changed.end()), changed.end());
    // Every subscriber before any completion: invalidate before acknowledge.
    publish(CommittedBatch{changed, mutations, results});
    {
      std::lock_guard lock(mutex_);
      ++stats_.commits;
      stats_.mutations += batch.size();
      stats_.largest_batch = std::max<std::uint64_t>(stats_.largest_batch, batch.size());
    }
    acknowledge(std::move(batch), results);
  }
}

void Writer::acknowledge(std::vector<Pending> batch, const std::vector<MutationResult>& results) {
  std::uint64_t observed = 0;
  for (const auto& result : results) observed = std::max(observed, result.observed_sequence);
  AcknowledgementGate* gate;
  {
    std::lock_guard lock(mutex_);
    gate = gate_;
  }
  if (gate == nullptr || observed == 0) {
    for (std::size_t i = 0; i < batch.size(); ++i) batch[i].completion(results[i]);
    return;
  }
  // Held until every live daemon applied what this batch observed; the writer
  // goes on with the next batch meanwhile.
  auto held = std::make_shared<std::pair<std::vector<Pending>, std::vector<MutationResult>>>(
      std::move(batch), results);
  gate->hold_until_applied(observed, [held] {
    for (std::size_t i = 0; i < held->first.size(); ++i) {
      held->first[i].completion(held->second[i]);
    }
  });
}

void Writer::set_acknowledgement_gate(AcknowledgementGate* gate) {
  std::lock_guard lock(mutex_);
  gate_ = gate;
}

void Writer::note_outcome(const std::vector<MutationResult>& results) {
  // A batch whose every mutation failed is the database refusing writes (full,
  // locked, I/O error), not one bad request: log when that starts and ends, not
  // once per request.
  const bool refused =
      !results.empty() && std::all_of(results.begin(), results.end(),
                                      [](const auto& r) { return r.outcome == Outcome::failed; });
  if (refused) {
    if (refused_batches_++ == 0) {
      logger()->error("database refuses writes: {} (answering 503 until it recovers)",
                      results.front().error);
    }
    std::lock_guard lock(mutex_);
    ++stats_.failed_commits;
  } else if (refused_batches_ > 0) {
    logger()->warn("database accepts writes again after {} refused transactions", refused_batches_);
    refused_batches_ = 0;
  }
}

}  // namespace store
