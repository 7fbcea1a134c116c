// The change-feed follower: a poll loop on its own thread (feed_follower.h).
#include "store/cache/feed_follower.h"

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <mutex>
#include <optional>
#include <set>
#include <thread>

#include "store/logging.h"

namespace store {
namespace asio = boost::asio;
namespace {

std::shared_ptr<spdlog::logger> logger() {
  return component_logger("cache");
}

// Own sequences remembered at most; past it the oldest are forgotten, which
// only means a second invalidation of those changes.
constexpr std::size_t kMaxSkipped = 65'536;

}  // namespace

struct FeedFollower::Impl : std::enable_shared_from_this<FeedFollower::Impl> {
  Impl(RegistryStore& store, FeedOptions options, Handlers handlers,
       std::atomic<Clock::rep>& fresh_until)
      : store(store),
        options(options),
        handlers(std::move(handlers)),
        fresh_until(fresh_until),
        timer(io) {}

  RegistryStore& store;
  const FeedOptions options;
  const Handlers handlers;
  std::atomic<Clock::rep>& fresh_until;

  asio::io_context io;
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> work;
  asio::steady_timer timer;
  std::thread thread;
  std::atomic<bool> wake_pending{false};
  std::atomic<bool> paused{false};
  std::atomic<bool> stopping{false};

  // Follower-thread state.
  std::optional<std::uint64_t> applied;  // unset: not started (the database did not answer)
  bool logged_error = false;

  mutable std::mutex mutex;  // guards skipped and stats
  std::set<std::uint64_t> skipped;
  FeedStats stats;
  std::uint64_t reported = 0;  // the applied sequence the last `advanced` call saw

  void schedule() {
    timer.expires_after(options.poll_interval);
    timer.async_wait([self = shared_from_this()](const boost::system::error_code& ec) {
      // A completion already queued when stop() cancelled runs with success:
      // the flag, not the error code, ends the loop.
      if (ec || self->stopping) return;
      self->poll();
      self->schedule();
    });
  }

  void poll() {
    wake_pending = false;
    if (paused) return;
    const auto started = Clock::now();
    try {
      catch_up();
    } catch (const std::exception& error) {
      std::lock_guard lock(mutex);
      ++stats.errors;
      if (!logged_error) logger()->warn("cannot read the change feed: {}", error.what());
      logged_error = true;
      return;  // the deadline stays where it was and runs out if this goes on
    }
    if (logged_error) logger()->info("change feed readable again");
    logged_error = false;
    fresh_until.store((started + options.max_lag).time_since_epoch().count(),
                      std::memory_order_release);
    bool moved;
    {
      std::lock_guard lock(mutex);
      ++stats.polls;
      moved = stats.applied != reported;
      reported = stats.applied;
    }
    if (moved && handlers.advanced) handlers.advanced();
  }

  // Hands over every change up to the newest committed when this started.
  void catch_up() {
    const std::uint64_t newest = store.last_sequence();
    if (!applied) return report_gap(newest);
    while (*applied < newest) {
      const auto changes = store.read_changes(*applied, options.batch);
      if (changes.empty() || changes.front().sequence != *applied + 1) {
        return report_gap(newest);
      }
      hand_over(changes);
      applied = changes.back().sequence;
    }
    forget_skipped_up_to(*applied);
  }

  void report_gap(std::uint64_t newest) {
    if (applied) logger()->warn("change feed: changes after {} were pruned: rereading", *applied);
    handlers.gap();
    applied = newest;
    forget_skipped_up_to(newest);
    std::lock_guard lock(mutex);
    ++stats.gaps;
  }

  void hand_over(const std::vector<Change>& changes) {
    std::vector<Change> foreign;
    foreign.reserve(changes.size());
    std::size_t own = 0;
    {
      std::lock_guard lock(mutex);
      for (const auto& change : changes) {
        if (skipped.erase(change.sequence) != 0) {
          ++own;
        } else {
          foreign.push_back(change);
        }
      }
      stats.skipped += own;
      stats.changes += foreign.size();
    }
    if (!foreign.empty()) handlers.changes(foreign);
  }

  void forget_skipped_up_to(std::uint64_t sequence) {
    std::lock_guard lock(mutex);
    skipped.erase(skipped.begin(), skipped.upper_bound(sequence));
    stats.applied = sequence;
  }
};

FeedFollower::FeedFollower(RegistryStore& store, FeedOptions options, Handlers handlers)
    : impl_(std::make_shared<Impl>(store, options, std::move(handlers), fresh_until_)) {}

FeedFollower::~FeedFollower() {
  stop();
}

void FeedFollower::start() {
  auto& impl = *impl_;
  const auto started = Clock::now();
  try {
    impl.applied = impl.store.last_sequence();
    impl.forget_skipped_up_to(*impl.applied);
    fresh_until_.store((started + impl.options.max_lag).time_since_epoch().count(),
                       std::memory_order_release);
  } catch (const std::exception& error) {
    logger()->warn("cannot read the change feed at start ({}); memory answers once it can",
                   error.what());
  }
  impl.work.emplace(impl.io.get_executor());
  impl.schedule();
  impl.thread = std::thread([&impl] { impl.io.run(); });
}

void FeedFollower::stop() {
  auto& impl = *impl_;
  if (!impl.thread.joinable()) return;
  impl.stopping = true;
  asio::post(impl.io, [&impl] { impl.timer.cancel(); });
  impl.work.reset();
  impl.thread.join();
  fresh_until_.store(0, std::memory_order_release);
}

void FeedFollower::wake() {
  if (impl_->wake_pending.exchange(true)) return;
  // Weak: a wake after stop() must not leave Impl owning itself through a
  // handler in its own io_context.
  asio::post(impl_->io, [weak = std::weak_ptr<Impl>(impl_)] {
    if (auto impl = weak.lock()) impl->poll();
  });
}

void FeedFollower::skip(std::uint64_t sequence) {
  std::lock_guard lock(impl_->mutex);
  if (sequence <= impl_->stats.applied) return;  // already handed over (or skipped)
  impl_->skipped.insert(sequence);
  if (impl_->skipped.size() > kMaxSkipped) impl_->skipped.erase(impl_->skipped.begin());
}

std::uint64_t FeedFollower::applied() const {
  std::lock_guard lock(impl_->mutex);
  return impl_->stats.applied;
}

FeedStats FeedFollower::stats() const {
  std::lock_guard lock(impl_->mutex);
  FeedStats stats = impl_->stats;
  stats.current = current();
  return stats;
}

void FeedFollower::pause_for_test(bool paused) {
  impl_->paused = paused;
}

}  // namespace store
