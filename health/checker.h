// The health checker: probes every registered instance (HTTP, TCP or heartbeat
// TTL) and removes the ones that fail their check `failures` times in a row.
//
// Names are never resolved. Instances register IP literals only (validated at
// registration, see registry/validation.cpp), so a probe connects to the
// registered address as it is and needs no resolver (c-ares has no role here). A
// check may choose the port and, for http, the path; never the host: the checker
// cannot be made to probe anything but the instance's own address.
//
// Threading: the Checker lives on its io_context's thread. Every probe, timer and
// state change runs there; there is no thread per probe. A single background
// thread does the blocking SQLite reads (the periodic resync, and the reread of a
// service before a removal whose stamps changed) and posts the result back.
//  - start() and stop() may be called from any thread; they post their work.
//  - on_commit() is called on the writer thread after every commit; it copies what
//    it needs and posts to the Checker's executor.
//  - stats() and recent_removals() are thread-safe.
// Lifetime: the io_context, the store and the writer must outlive the Checker and
// every handler it posted (stop the writer before destroying the io_context).
// End its Writer subscription before destroying the Checker.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "store/health_shards.h"
#include "store/model.h"
#include "store/writer.h"

namespace boost::asio {
class io_context;
}

namespace health {

struct Options {
  // Used by checks that leave the field at zero (see store::HealthCheck). A ttl
  // check without an interval is judged once per ttl (each ttl is one deadline).
  std::chrono::milliseconds default_interval = store::CheckDefaults{}.interval;
  std::chrono::milliseconds default_timeout = store::CheckDefaults{}.timeout;
  std::uint32_t default_failures = store::CheckDefaults{}.failures;
  // Probes beyond this wait in a queue (never dropped); see Stats::cap_hits.
  std::size_t max_concurrent_probes = 1024;
  // Each interval is stretched or shrunk by up to this fraction, at random.
  double jitter = 0.1;
  // Check times and failure counts are written in one transaction per period.
  std::chrono::milliseconds record_flush_period{std::chrono::seconds(1)};
  // Self-preservation (as in Eureka): when more than this share of all instances
  // is failing, removals stop until the share drops again. Off when empty.
  std::optional<double> protection_threshold;
  std::size_t max_events = 1000;  // bound of the removal history
  // Bytes read of an http response at most; its status line and headers must fit.
  std::size_t max_http_response_bytes = 4096;
  // All instances are reread this often, to follow another daemon sharing the DB.
  std::chrono::milliseconds resync_period{std::chrono::seconds(60)};
  // The value of an `X-Load` header of a passing http probe (finite, >= 0). Runs
  // on the Checker's thread; may be empty.
  std::function<void(const std::string& service, const std::string& id, double load)>
      on_reported_load;
  // Sharded checks (store/health_shards.h): probe nothing until assign_shards()
  // says which shards are ours. Off: every instance is ours.
  bool sharded = false;
  // While it returns false (our membership lease may have run out), no probe
  // starts, no result counts and no removal is submitted. May be empty.
  std::function<bool()> may_probe;
};

struct RemovalEvent {
  std::string service;
  std::string id;
  std::string address;
  std::uint16_t port = 0;  // the instance's port
  std::string reason;      // of the decisive failure, e.g. "http 503"
  std::uint32_t failures = 0;
  store::TimePoint at{};  // when the decisive failure was seen
};

struct Stats {
  std::size_t instances = 0;  // tracked
  std::uint64_t probes_started = 0;
  std::uint64_t probes_passed = 0;
  std::uint64_t probes_failed = 0;  // ttl deadlines missed count here too
  std::uint64_t removals = 0;
  std::uint64_t removals_suppressed = 0;  // by protection, once per instance and episode
  std::uint64_t removals_kept = 0;        // came back `unchanged`: re-registered or alive
  bool protection_active = false;
  std::size_t failing = 0;  // instances whose last check failed
  std::size_t probes_in_flight = 0;
  std::size_t probes_queued = 0;
  std::uint64_t cap_hits = 0;  // probes that had to wait for max_concurrent_probes
  std::uint64_t record_batches = 0;
  std::uint64_t resyncs = 0;
  std::size_t shards = 0;           // owned (all of them when not sharded)
  std::uint64_t shard_reads = 0;    // reads of instances of shards we gained
  std::uint64_t foreign_reads = 0;  // rereads of services other daemons changed
  std::uint64_t lapsed_skips = 0;   // probes not started: our lease may have run out
};

class Checker final : public store::CommitSubscriber {
 public:
  using Now = std::function<store::TimePoint()>;  // must be callable from any thread
  using Random = std::function<double()>;         // uniform in [0, 1)

  // `now` stamps check records, heartbeats and events and judges ttl deadlines;
  // `random` places probes within their interval. Pacing uses Asio steady timers.
  Checker(boost::asio::io_context& io, store::RegistryStore& store, store::Writer& writer,
          Options options = {}, Now now = {}, Random random = {});
  ~Checker();  // stops
  Checker(const Checker&) = delete;
  Checker& operator=(const Checker&) = delete;

  // Reads every instance (on the calling thread; throws store::StoreError), then
  // schedules each one's first probe at a random point of its interval.
  void start();
  // Cancels every timer and probe (they complete with operation_aborted); nothing
  // is removed from then on. Pending check records are flushed.
  void stop();

  // The writer's commit listener (writer thread): follows registrations,
  // deregistrations, removals and heartbeats. An identical re-registration
  // (outcome `unchanged`) is proof of life like a heartbeat: it clears the
  // failure count and stops a removal that has not been applied yet.
  void on_commit(const store::Writer::Commit& commit) override;

  // Sharded checks: from now on only the instances of `shards` are ours. Those
  // of shards no longer in it are dropped, their pending check records written
  // first (unless `lapsed`: our lease may have run out, someone else may count
  // them now); `released` then runs on the Checker's thread, once that write
  // committed, with the dropped shards. Instances of new shards are read from
  // the database with their failure counts and last check times, so counting
  // goes on where the previous owner left it. Any thread.
  using Released = std::function<void(const store::ShardSet& dropped)>;
  void assign_shards(const store::ShardSet& shards, bool lapsed, Released released);
  // The change feed's changes made by other daemons (any thread): their
  // services are reread, so that their new instances are probed at once.
  void on_feed_changes(const std::vector<store::Change>& changes);
  // The feed had a gap: everything is reread.
  void on_feed_gap();

  Stats stats() const;
  std::vector<RemovalEvent> recent_removals() const;  // newest first

 private:
  class Impl;
  struct Background;
  std::unique_ptr<Background> background_;
  std::shared_ptr<Impl> impl_;
};

}  // namespace health
