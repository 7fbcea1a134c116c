// The shard-ownership thread (shard_ownership.h).
#include "store/cluster/shard_ownership.h"

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <mutex>
#include <optional>
#include <thread>

#include "store/cluster/membership.h"
#include "store/logging.h"

namespace store {
namespace asio = boost::asio;
namespace {

std::shared_ptr<spdlog::logger> logger() {
  return component_logger("cluster");
}

}  // namespace

struct ShardOwnership::Impl : std::enable_shared_from_this<ShardOwnership::Impl> {
  Impl(RegistryStore& store, const Membership& membership, Assign assign,
       ShardOwnershipOptions options)
      : store(store), membership(membership), assign(std::move(assign)), options(options) {}

  RegistryStore& store;
  const Membership& membership;
  const Assign assign;
  const ShardOwnershipOptions options;
  asio::io_context io;
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> work;
  asio::steady_timer timer{io};
  std::thread thread;
  bool stopping = false;

  // The membership thread's state (only touched there).
  ShardSet probing;    // what the checker was last given
  ShardSet ready;      // withdrawn from the checker, counts written: may be handed over
  bool lapsed = true;  // nothing given yet, or withdrawn after a lapse
  bool logged_failure = false;

  mutable std::mutex mutex;
  ShardOwnershipStats stats;

  void schedule() {
    timer.expires_after(options.balance_interval);
    timer.async_wait([self = shared_from_this()](const boost::system::error_code& ec) {
      if (ec || self->stopping) return;
      self->balance();
      self->schedule();
    });
  }

  void withdraw_after_lapse() {
    if (lapsed) return;
    lapsed = true;
    probing.reset();
    ready.reset();
    logger()->warn("membership lease may have run out: probing no health shards until renewed");
    assign(ShardSet{}, true, nullptr);
    std::lock_guard lock(mutex);
    ++stats.lapses;
    stats.probing = 0;
  }

  void balance() {
    if (!membership.lease_valid()) return withdraw_after_lapse();
    ShardView view;
    try {
      view = store.balance_shards(membership.id(), ready);
    } catch (const std::exception& error) {
      if (!logged_failure) logger()->warn("cannot balance the health shards: {}", error.what());
      logged_failure = true;
      std::lock_guard lock(mutex);
      ++stats.balance_failures;
      return;  // the lease runs out on its own if this goes on
    }
    logged_failure = false;
    // The view is ours only if the lease held all along: after a lapse it may
    // be stale already (another daemon may have claimed our shards).
    if (!membership.lease_valid()) return withdraw_after_lapse();
    ready &= view.requested;  // handed over, or asked for no longer
    const ShardSet wanted = view.owned & ~view.requested;
    if (wanted != probing || lapsed) {
      lapsed = false;
      probing = wanted;
      assign(wanted, false, [weak = weak_from_this()](const ShardSet& dropped) {
        if (auto self = weak.lock()) {
          asio::post(self->io, [self, dropped] { self->ready |= dropped; });
        }
      });
    }
    std::lock_guard lock(mutex);
    ++stats.balances;
    stats.owned = view.owned.count();
    stats.probing = probing.count();
    stats.requested = view.requested.count();
    stats.participants = view.participants;
  }
};

ShardOwnership::ShardOwnership(RegistryStore& store, const Membership& membership, Assign assign,
                               ShardOwnershipOptions options)
    : impl_(std::make_shared<Impl>(store, membership, std::move(assign), options)) {}

ShardOwnership::~ShardOwnership() {
  stop();
}

void ShardOwnership::start() {
  auto& impl = *impl_;
  impl.balance();
  impl.work.emplace(impl.io.get_executor());
  impl.schedule();
  impl.thread = std::thread([&impl] { impl.io.run(); });
}

void ShardOwnership::stop() {
  auto& impl = *impl_;
  if (!impl.thread.joinable()) return;
  asio::post(impl.io, [&impl] {
    impl.stopping = true;
    impl.timer.cancel();
  });
  impl.work.reset();
  impl.thread.join();
}

ShardOwnershipStats ShardOwnership::stats() const {
  std::lock_guard lock(impl_->mutex);
  return impl_->stats;
}

}  // namespace store
