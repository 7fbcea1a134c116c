// Internal to health/: the Checker's state, shared by the checker_*.cpp files
// that each implement one role of it (see health/README.md). Nothing outside
// health/ includes this; the interface is health/checker.h.
//
// Every member function runs on the io_context's thread unless it says
// otherwise; the atomics and the two mutexes are what stats(),
// recent_removals() and the background thread read from other threads.
#pragma once

#include <array>
#include <atomic>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/thread_pool.hpp>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <queue>
#include <set>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "health/checker.h"
#include "health/policy.h"
#include "health/probe.h"
#include "store/model.h"

namespace spdlog {
class logger;
}

namespace store {
class RegistryStore;
}

namespace health {

struct Checker::Background {
  boost::asio::thread_pool pool{1};
};

class Checker::Impl : public std::enable_shared_from_this<Checker::Impl> {
 public:
  using SteadyClock = std::chrono::steady_clock;

  // The instance's row as the database holds it: RemoveUnhealthy only deletes the
  // row if these did not move since (no re-registration, no heartbeat).
  struct Stamps {
    store::TimePoint updated_at{};
    std::optional<store::TimePoint> last_heartbeat_at;
    std::uint64_t renewals = 0;
  };

  enum class Phase : std::uint8_t { idle, queued, probing, removing };

  struct Tracked {
    bool live = false;
    Phase phase = Phase::idle;
    bool suppressed = false;       // a removal held back by protection (counted once)
    std::uint32_t generation = 0;  // moves on every reset: stale timers and results are ignored
    std::string service;
    std::string id;
    store::IpAddress address;
    std::uint16_t port = 0;
    store::HealthCheck check;
    Settings settings;
    std::optional<Stamps> stamps;  // empty when a commit changed them since the last read
    store::TimePoint tracked_since{};
    std::optional<store::TimePoint> last_heartbeat;
    FailureCount count;
    // The row's renewals (proofs of life) as last learnt from a read or a commit:
    // the count is based on them, and check records say so (see store::CheckRecord).
    std::uint64_t renewals = 0;
    std::string last_reason;
    std::uint64_t touched = 0;  // commit sequence of the last commit that changed it
    std::uint64_t seen_epoch = 0;
    std::int64_t pending_record = -1;     // index into the unflushed check records
    std::uint16_t shard = 0;              // store::health_shard_of(service, id)
    std::uint32_t recorded_failures = 0;  // the count in the last record made
  };

  // What a database read covers: install() forgets only tracked instances in
  // it, and takes an instance of a shard only if the read began after we
  // gained that shard (an older read may predate the previous owner's counts).
  struct ReadScope {
    bool initial = false;
    std::optional<store::ShardSet> shards;          // only these shards
    std::optional<std::set<std::string>> services;  // only these services
    std::uint64_t number = 0;                       // from begin_read()
  };

  struct Due {
    SteadyClock::time_point at;
    std::uint32_t slot;
    std::uint32_t generation;
    friend bool operator>(const Due& a, const Due& b) { return a.at > b.at; }
  };

  struct SlotRef {
    std::uint32_t slot;
    std::uint32_t generation;
  };

  // What a commit did to one instance, copied off the writer thread. A renewal is
  // an identical re-registration: proof of life like a heartbeat, without one.
  struct Change {
    enum class Kind : std::uint8_t { upsert, forget, heartbeat, renewal };
    Kind kind = Kind::upsert;
    std::string service;
    std::string id;
    store::IpAddress address;  // upsert only
    std::uint16_t port = 0;    // upsert only
    store::HealthCheck check;  // upsert only
    store::TimePoint at{};
    std::uint64_t renewals = 0;  // the row's after the commit (not for forget)
  };

  // checker.cpp: construction, stop, the thread-safe views.
  Impl(boost::asio::io_context& io, store::RegistryStore& store, store::Writer& writer,
       Options options, Now now, Random random, boost::asio::thread_pool* background);

  boost::asio::io_context& io() { return io_; }
  store::RegistryStore& store() { return store_; }
  store::TimePoint now() const { return now_(); }
  std::uint64_t commit_sequence() const { return commit_seq_.load(); }

  void detach_background();  // any thread
  void stop();
  Stats stats() const;                                // any thread
  std::vector<RemovalEvent> recent_removals() const;  // any thread

  // checker_tracking.cpp: the tracked set follows database reads and commits.
  void install(std::vector<store::Instance> instances, std::uint64_t sequence,
               const ReadScope& scope);
  std::uint64_t begin_read() { return reads_.fetch_add(1) + 1; }  // any thread
  void apply(const std::vector<Change>& changes);
  void resync_now();

  // checker_shards.cpp: which instances are ours, and the reads that follow
  // ownership and other daemons' changes.
  void assign(const store::ShardSet& shards, bool lapsed, Checker::Released released);
  void note_foreign_changes(const std::vector<store::Change>& changes);  // any thread

 private:
  static std::shared_ptr<spdlog::logger> logger();
  static std::string key_of(std::string_view service, std::string_view id);

  // checker_tracking.cpp
  bool valid(std::uint32_t slot, std::uint32_t generation) const;
  std::uint32_t add(std::string key, const std::string& service, const std::string& id,
                    const store::IpAddress& address, std::uint16_t port,
                    const store::HealthCheck& check, store::TimePoint now, std::uint32_t failures,
                    std::optional<std::chrono::milliseconds> first_delay = std::nullopt);
  void reset(std::uint32_t slot, const store::IpAddress& address, std::uint16_t port,
             const store::HealthCheck& check, store::TimePoint now);
  void forget(std::uint32_t slot);
  void arm_resync();
  void update_from_read(Tracked& tracked, std::uint32_t slot, const store::Instance& instance,
                        std::uint64_t sequence, store::TimePoint now);
  bool in_scope(const Tracked& tracked, const ReadScope& scope) const;
  std::chrono::milliseconds first_delay(const store::Instance& instance,
                                        const Settings& settings) const;

  // checker_shards.cpp
  void drop_shards(const store::ShardSet& lost, bool lapsed, Checker::Released released);
  void read_shards(const store::ShardSet& shards);
  void reread_foreign();  // background thread
  bool may_probe() const { return !options_.may_probe || options_.may_probe(); }

  // checker_scheduling.cpp: the timer heap, jitter, the concurrency cap.
  void schedule(std::uint32_t slot, std::chrono::milliseconds delay);
  void schedule_next(std::uint32_t slot);
  void arm();
  void on_wake();
  void dispatch(std::uint32_t slot);

  // checker_probing.cpp: starting probes and collecting their results.
  void start_probe(std::uint32_t slot);
  void on_probe_done(std::uint32_t slot, std::uint32_t generation, const ProbeResult& result);
  void judge_heartbeat(std::uint32_t slot);

  // checker_judging.cpp: failure counts, thresholds, protection, renewals.
  void judge(std::uint32_t slot, bool passed, const std::string& reason,
             std::optional<double> load);
  void update_protection();
  void set_failures_cleared(Tracked& tracked);
  void adopt_renewals(Tracked& tracked, std::uint64_t renewals);

  // checker_removal.cpp: RemoveUnhealthy and the removal history.
  void begin_removal(std::uint32_t slot, store::TimePoint decided_at);
  void on_reread(std::uint32_t slot, std::uint32_t generation, RemovalEvent event,
                 const store::ServiceSnapshot& snapshot, std::uint64_t sequence);
  void submit_removal(std::uint32_t slot, RemovalEvent event);
  void on_removal_result(std::uint32_t slot, std::uint32_t generation, const RemovalEvent& event,
                         const store::MutationResult& result);

  // checker_records.cpp: check times and failure counts, batched per period.
  void record(std::uint32_t slot, store::TimePoint now);
  void drop_record(Tracked& tracked);
  // `committed` runs (on the writer's thread) once the records are written,
  // or at once when there are none.
  void flush_records(std::function<void()> committed = {});
  void arm_flush();
  void arm_urgent_flush();

  // Runs `task` on the background thread (blocking SQLite reads), unless the
  // Checker is being destroyed.
  template <typename Task>
  void post_background(Task&& task) {
    std::lock_guard lock(background_mutex_);
    if (background_) boost::asio::post(*background_, std::forward<Task>(task));
  }

  boost::asio::io_context& io_;
  store::RegistryStore& store_;
  store::Writer& writer_;
  Options options_;
  Now now_;
  Random random_;
  Prober prober_;
  boost::asio::steady_timer wake_timer_;
  boost::asio::steady_timer flush_timer_;
  boost::asio::steady_timer resync_timer_;
  boost::asio::steady_timer urgent_flush_timer_;
  boost::asio::steady_timer foreign_timer_;  // delays rereads of others' changes
  bool urgent_flush_armed_ = false;
  SteadyClock::time_point armed_at_ = SteadyClock::time_point::max();
  SteadyClock::time_point last_wake_{};
  std::priority_queue<Due, std::vector<Due>, std::greater<>> due_;
  std::deque<SlotRef> waiting_;

  std::vector<Tracked> slots_;
  std::vector<std::uint32_t> free_;
  std::unordered_map<std::string, std::uint32_t> index_;
  // Instances forgotten by a commit, by commit sequence: a database read older
  // than that commit must not bring them back.
  std::unordered_map<std::string, std::uint64_t> tombstones_;
  std::uint64_t epoch_ = 0;
  store::ShardSet owned_;
  // reads_ when each shard was gained: reads that began before it don't count.
  std::array<std::uint64_t, store::kHealthShards> gained_after_{};
  std::atomic<std::uint64_t> reads_{0};
  std::mutex foreign_mutex_;  // guards the two below (feed thread, background)
  std::set<std::string> foreign_services_;
  bool foreign_read_scheduled_ = false;
  bool started_ = false;
  bool stopping_ = false;

  std::vector<store::CheckRecord> records_;
  std::vector<std::uint32_t> record_slots_;

  std::atomic<std::uint64_t> commit_seq_{0};
  std::atomic<std::size_t> tracked_{0};
  std::atomic<std::size_t> failing_{0};
  std::atomic<std::size_t> in_flight_{0};
  std::atomic<std::size_t> queued_{0};
  std::atomic<bool> protection_active_{false};
  std::atomic<std::uint64_t> stats_started_{0};
  std::atomic<std::uint64_t> stats_passed_{0};
  std::atomic<std::uint64_t> stats_failed_{0};
  std::atomic<std::uint64_t> stats_removals_{0};
  std::atomic<std::uint64_t> stats_suppressed_{0};
  std::atomic<std::uint64_t> stats_kept_{0};
  std::atomic<std::uint64_t> stats_cap_hits_{0};
  std::atomic<std::uint64_t> stats_record_batches_{0};
  std::atomic<std::uint64_t> stats_resyncs_{0};
  std::atomic<std::size_t> owned_count_{0};
  std::atomic<std::uint64_t> stats_shard_reads_{0};
  std::atomic<std::uint64_t> stats_foreign_reads_{0};
  std::atomic<std::uint64_t> stats_lapsed_skips_{0};

  mutable std::mutex events_mutex_;
  std::deque<RemovalEvent> events_;

  std::mutex background_mutex_;
  boost::asio::thread_pool* background_;
};

}  // namespace health
