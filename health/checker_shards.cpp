// Sharding (store/health_shards.h): which instances this checker follows and
// probes, and the reads that keep them current when ownership moves or another
// daemon sharing the database changes a service.
#include <spdlog/spdlog.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>

#include "health/checker_impl.h"
#include "store/registry_store.h"

namespace health {
namespace {

namespace asio = boost::asio;

constexpr auto kReadRetry = std::chrono::milliseconds(500);
// Services other daemons changed are reread together at most this often: a
// reread reads the whole service, and a burst of registrations elsewhere must
// not turn into one read of a large service per change. A new instance is
// probed at a random point of its interval anyway.
constexpr auto kForeignRereadDelay = std::chrono::milliseconds(500);

}  // namespace

void Checker::Impl::assign(const store::ShardSet& shards, bool lapsed, Checker::Released released) {
  if (stopping_) return;
  const store::ShardSet lost = owned_ & ~shards;
  const store::ShardSet gained = shards & ~owned_;
  owned_ = shards;
  owned_count_.store(owned_.count());
  if (!started_) {
    // start()'s read installs what we own by then; nothing is followed yet.
    if (released) released(lost);
    return;
  }
  const std::uint64_t reads_so_far = reads_.load();
  for (std::size_t shard = 0; shard < store::kHealthShards; ++shard) {
    if (gained[shard]) gained_after_[shard] = reads_so_far;
  }
  if (lost.any()) {
    drop_shards(lost, lapsed, std::move(released));
  } else if (released) {
    released(lost);
  }
  if (gained.any()) read_shards(gained);
  logger()->info("health shards: {} owned ({} gained, {} dropped{})", owned_.count(),
                 gained.count(), lost.count(), lapsed ? ", lease lapsed" : "");
}

// The next owner starts from the counts we wrote, so they are written before
// the shards are let go; after a lapse they are not: someone else may be
// counting already, and ours would overwrite theirs.
void Checker::Impl::drop_shards(const store::ShardSet& lost, bool lapsed,
                                Checker::Released released) {
  if (!lapsed) {
    flush_records([self = shared_from_this(), lost, released = std::move(released)] {
      if (!released) return;
      asio::post(self->io_, [lost, released] { released(lost); });
    });
  }
  for (std::uint32_t slot = 0; slot < slots_.size(); ++slot) {
    if (slots_[slot].live && lost[slots_[slot].shard]) forget(slot);
  }
  update_protection();
  if (lapsed && released) released(lost);
}

void Checker::Impl::read_shards(const store::ShardSet& shards) {
  post_background([self = shared_from_this(), shards] {
    ReadScope scope;
    scope.shards = shards;
    scope.number = self->begin_read();
    const std::uint64_t sequence = self->commit_sequence();
    try {
      auto instances = self->store_.read_all_instances();
      std::erase_if(instances, [&](const store::Instance& instance) {
        return !shards[store::health_shard_of(instance.service(), instance.id())];
      });
      self->stats_shard_reads_.fetch_add(1);
      asio::post(self->io_, [self, instances = std::move(instances), sequence,
                             scope = std::move(scope)]() mutable {
        self->install(std::move(instances), sequence, scope);
      });
    } catch (const std::exception& error) {
      logger()->warn("reading the instances of {} gained shards failed: {}; retrying",
                     shards.count(), error.what());
      asio::post(self->io_, [self, shards] {
        if (self->stopping_) return;
        auto timer = std::make_shared<asio::steady_timer>(self->io_, kReadRetry);
        timer->async_wait([self, shards, timer](const boost::system::error_code& ec) {
          if (!ec && !self->stopping_ && (shards & self->owned_).any()) {
            self->read_shards(shards & self->owned_);
          }
        });
      });
    }
  });
}

// Feed thread: services another daemon changed are reread together after
// kForeignRereadDelay, one background read at a time however fast they come.
void Checker::Impl::note_foreign_changes(const std::vector<store::Change>& changes) {
  bool schedule = false;
  {
    std::lock_guard lock(foreign_mutex_);
    for (const auto& change : changes) foreign_services_.insert(change.service);
    schedule = !foreign_read_scheduled_ && !foreign_services_.empty();
    if (schedule) foreign_read_scheduled_ = true;
  }
  if (!schedule) return;
  asio::post(io_, [self = shared_from_this()] {
    if (self->stopping_) return;
    self->foreign_timer_.expires_after(kForeignRereadDelay);
    self->foreign_timer_.async_wait([self](const boost::system::error_code& ec) {
      if (ec || self->stopping_) return;
      self->post_background([self] { self->reread_foreign(); });
    });
  });
}

void Checker::Impl::reread_foreign() {
  ReadScope scope;
  scope.services.emplace();
  {
    std::lock_guard lock(foreign_mutex_);
    scope.services->swap(foreign_services_);
    foreign_read_scheduled_ = false;
  }
  scope.number = begin_read();
  const std::uint64_t sequence = commit_sequence();
  std::vector<store::Instance> instances;
  try {
    for (const auto& service : *scope.services) {
      auto snapshot = store_.read_service(service);
      for (auto& instance : snapshot.instances) instances.push_back(std::move(instance));
    }
  } catch (const std::exception& error) {
    // The periodic resync catches up if the database stays away.
    logger()->warn("rereading {} services changed elsewhere failed: {}", scope.services->size(),
                   error.what());
    return;
  }
  stats_foreign_reads_.fetch_add(1);
  asio::post(io_, [self = shared_from_this(), instances = std::move(instances), sequence,
                   scope = std::move(scope)]() mutable {
    self->install(std::move(instances), sequence, scope);
  });
}

}  // namespace health
