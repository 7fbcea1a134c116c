// The membership thread: lease renewals, prompt reports of the applied
// sequence, and the acknowledgement gate (membership.h has the argument).
#include "store/cluster/membership.h"

#include <unistd.h>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <deque>
#include <limits>
#include <mutex>
#include <optional>
#include <random>
#include <thread>

#include "store/logging.h"

namespace store {
namespace asio = boost::asio;
namespace {

std::shared_ptr<spdlog::logger> logger() {
  return component_logger("cluster");
}

using Steady = std::chrono::steady_clock;

}  // namespace

struct Membership::Impl : std::enable_shared_from_this<Membership::Impl> {
  Impl(RegistryStore& store, MembershipOptions options, Applied applied, ServingDeadline& deadline)
      : store(store),
        options(std::move(options)),
        applied(std::move(applied)),
        deadline(deadline),
        renew_timer(io),
        gate_timer(io) {}

  RegistryStore& store;
  const MembershipOptions options;
  const Applied applied;
  ServingDeadline& deadline;
  // Until when our lease surely holds by the database's clock: a renewal sent
  // at t moves it to t + lease - margin (no feed condition: health shards).
  ServingDeadline lease_valid;

  asio::io_context io;
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> work;
  asio::steady_timer renew_timer;
  asio::steady_timer gate_timer;
  std::thread thread;
  std::atomic<bool> report_pending{false};
  bool stopping = false;  // membership thread only
  // False once stop() began: nothing may be posted then, since a handler left
  // in the io_context (which Impl owns) would keep Impl alive for ever.
  std::mutex accepting_mutex;
  bool accepting = true;

  // A renewal whose extension of the deadline waits for the feed to reach the
  // sequence it returned.
  struct Unconfirmed {
    std::uint64_t sequence;
    Steady::time_point renewed_at;
    Steady::time_point serve_until;
  };
  std::deque<Unconfirmed> unconfirmed;  // oldest first
  std::deque<std::pair<std::uint64_t, std::function<void()>>> held;
  bool gate_scheduled = false;
  bool logged_failure = false;

  mutable std::mutex mutex;  // guards stats and members_seen
  MembershipStats stats;
  std::vector<Member> members_seen;

  // Lease - margin: our own deadline ends well before others see the lease run out.
  Steady::duration serving_span() const { return options.lease - options.lease / 4; }

  void schedule_renewal() {
    renew_timer.expires_after(options.renew_interval);
    renew_timer.async_wait([self = shared_from_this()](const boost::system::error_code& ec) {
      if (ec || self->stopping) return;
      self->renew();
      self->read_members();
      self->schedule_renewal();
    });
  }

  // Extends the deadline by every renewal the feed has caught up with.
  void confirm_renewals() {
    const auto now_applied = applied();
    while (!unconfirmed.empty() && now_applied >= unconfirmed.front().sequence) {
      deadline.extend_to(unconfirmed.front().serve_until);
      unconfirmed.pop_front();
    }
  }

  // The feed has not reached a renewal's sequence for half a lease: stuck or
  // far behind. Writers must not wait for us then.
  bool behind(Steady::time_point now) const {
    return !unconfirmed.empty() && now - unconfirmed.front().renewed_at > options.lease / 2;
  }

  void renew() {
    confirm_renewals();
    const auto sent = Steady::now();
    const bool give_up = behind(sent);
    // Before the row says so: by then we must already have stopped serving.
    if (give_up) {
      deadline.revoke();
      lease_valid.revoke();
    }
    const auto report_applied = applied();
    std::uint64_t newest;
    try {
      newest = store.renew_member({options.id, options.endpoints, report_applied,
                                   give_up ? std::chrono::milliseconds(0) : options.lease});
    } catch (const std::exception& error) {
      std::lock_guard lock(mutex);
      ++stats.renewal_failures;
      if (!logged_failure) logger()->warn("cannot renew the membership lease: {}", error.what());
      logged_failure = true;
      return;  // the deadline runs out on its own if this goes on
    }
    if (logged_failure) logger()->info("membership lease renewed again");
    logged_failure = false;
    {
      std::lock_guard lock(mutex);
      ++stats.renewals;
      if (give_up) ++stats.leases_given_up;
    }
    if (!give_up) {
      unconfirmed.push_back({newest, sent, sent + serving_span()});
      lease_valid.extend_to(sent + serving_span());
    }
    confirm_renewals();
  }

  void read_members() {
    std::vector<Member> members;
    try {
      members = store.read_members();
    } catch (const std::exception& error) {
      logger()->debug("cannot read the members: {}", error.what());
      return;
    }
    std::size_t live_others = 0;
    for (const auto& member : members) {
      if (member.live && member.id != options.id) ++live_others;
    }
    std::lock_guard lock(mutex);
    stats.live_others = live_others;
    members_seen = std::move(members);
  }

  // Releases every held acknowledgement that all live others have applied.
  void check_gate() {
    gate_scheduled = false;
    if (held.empty()) return;
    std::vector<Member> members;
    try {
      members = store.read_members();
    } catch (const std::exception& error) {
      logger()->debug("cannot read the members: {}", error.what());
      return schedule_gate();
    }
    std::uint64_t bound = std::numeric_limits<std::uint64_t>::max();
    std::size_t live_others = 0;
    for (const auto& member : members) {
      if (!member.live || member.id == options.id) continue;
      ++live_others;
      bound = std::min(bound, member.applied);
    }
    std::size_t released = 0;
    while (!held.empty() && held.front().first <= bound) {
      auto release = std::move(held.front().second);
      held.pop_front();
      release();
      ++released;
    }
    {
      std::lock_guard lock(mutex);
      stats.live_others = live_others;
      stats.released += released;
      stats.held = held.size();
      members_seen = std::move(members);
    }
    if (!held.empty()) schedule_gate();
  }

  void schedule_gate() {
    if (gate_scheduled || stopping) return;
    gate_scheduled = true;
    gate_timer.expires_after(options.gate_poll);
    gate_timer.async_wait([self = shared_from_this()](const boost::system::error_code& ec) {
      if (ec || self->stopping) return;
      self->check_gate();
    });
  }

  void release_all() {
    while (!held.empty()) {
      auto release = std::move(held.front().second);
      held.pop_front();
      release();
    }
    std::lock_guard lock(mutex);
    stats.held = 0;
  }
};

Membership::Membership(RegistryStore& store, MembershipOptions options, Applied applied,
                       ServingDeadline& deadline) {
  if (options.id.empty()) options.id = default_id();
  impl_ = std::make_shared<Impl>(store, std::move(options), std::move(applied), deadline);
}

Membership::~Membership() {
  stop();
}

void Membership::start() {
  auto& impl = *impl_;
  impl.renew();
  impl.read_members();
  impl.work.emplace(impl.io.get_executor());
  impl.schedule_renewal();
  impl.thread = std::thread([&impl] { impl.io.run(); });
  logger()->info("member {} joined (lease {} ms)", impl.options.id, impl.options.lease.count());
}

void Membership::stop() {
  auto& impl = *impl_;
  if (!impl.thread.joinable()) return;
  {
    std::lock_guard lock(impl.accepting_mutex);
    impl.accepting = false;
  }
  asio::post(impl.io, [&impl] {
    impl.stopping = true;
    impl.renew_timer.cancel();
    impl.gate_timer.cancel();
    // Committed, so acknowledged: the daemon is going away, and once its row
    // is gone nobody waits for it either.
    impl.release_all();
    impl.deadline.revoke();
    impl.lease_valid.revoke();
    try {
      impl.store.remove_member(impl.options.id);
    } catch (const std::exception& error) {
      logger()->warn("cannot remove member {}: {} (its lease runs out instead)", impl.options.id,
                     error.what());
    }
  });
  impl.work.reset();
  impl.thread.join();
}

bool Membership::lease_valid(std::chrono::steady_clock::time_point now) const {
  return impl_->lease_valid.allows(now);
}

void Membership::hold_until_applied(std::uint64_t sequence, std::function<void()> release) {
  std::unique_lock lock(impl_->accepting_mutex);
  if (!impl_->accepting) {
    lock.unlock();
    return release();  // stopping: committed, so acknowledged (see stop())
  }
  // Posted under the lock, so it runs before stop()'s handler releases the rest.
  asio::post(impl_->io, [impl = impl_, sequence, release = std::move(release)]() mutable {
    if (impl->stopping) return release();
    impl->held.emplace_back(sequence, std::move(release));
    {
      std::lock_guard lock(impl->mutex);
      impl->stats.held = impl->held.size();
    }
    impl->check_gate();
  });
}

void Membership::feed_advanced() {
  std::lock_guard lock(impl_->accepting_mutex);
  if (!impl_->accepting || impl_->report_pending.exchange(true)) return;
  asio::post(impl_->io, [impl = impl_] {
    impl->report_pending = false;
    if (impl->stopping) return;
    bool others;
    {
      std::lock_guard lock(impl->mutex);
      others = impl->stats.live_others > 0;
    }
    // Alone, nobody waits for our progress: only the deadline moves.
    if (others) {
      impl->renew();
    } else {
      impl->confirm_renewals();
    }
  });
}

MembershipStats Membership::stats() const {
  std::lock_guard lock(impl_->mutex);
  MembershipStats stats = impl_->stats;
  stats.serving = impl_->deadline.allows(Steady::now());
  return stats;
}

std::vector<Member> Membership::members() const {
  std::lock_guard lock(impl_->mutex);
  return impl_->members_seen;
}

const std::string& Membership::id() const {
  return impl_->options.id;
}

std::string Membership::default_id() {
  char host[256] = {};
  if (gethostname(host, sizeof host - 1) != 0) host[0] = '\0';
  std::random_device random;
  return fmt::format("{}:{}:{:04x}", host[0] ? host : "discoveryd", getpid(), random() & 0xffff);
}

}  // namespace store
