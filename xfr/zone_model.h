// The transferable zone in memory: its serial, every service's records as of
// that serial, and a journal of the differences between recent serials (the
// IXFR history). It follows the registry on a thread of its own: each refresh
// reads the services changed since the last one in one transaction
// (RegistryStore::read_registry_since), so a version's serial and contents
// always agree, then publishes the new version and the serial the DNS front
// end answers in SOA records.
//
// The serial is the zone file's serial plus the change feed's sequence (mod
// 2^32, RFC 1982): every committed change raises it, it survives restarts (the
// sequence is in the database), every daemon sharing a database computes the
// same one, and editing the zone file (raising its serial) raises it too.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include "store/registry_store.h"
#include "xfr/zone_content.h"

namespace xfr {

// One published state of the zone. Immutable: transfers keep the one they
// started with while newer ones are published.
struct ZoneVersion {
  std::uint64_t sequence = 0;
  std::uint32_t serial = 0;
  std::shared_ptr<const std::vector<Record>> static_records;
  std::map<std::string, std::shared_ptr<const std::vector<Record>>, std::less<>> services;
  std::size_t record_count = 0;  // static ones and every service's
};

// From serial `from` to serial `to`: what went and what came.
struct JournalStep {
  std::uint32_t from = 0;
  std::uint32_t to = 0;
  std::vector<Record> removed;
  std::vector<Record> added;
};

struct ZoneModelOptions {
  ZoneSettings settings;
  // Kept at most: the oldest steps go first (a client further behind gets the
  // whole zone instead).
  std::size_t journal_records = 1'000'000;
  // A refresh at least this often even without wake() (a lost wake-up).
  std::chrono::milliseconds poll_interval{1000};
  // And at most this often: under a burst of writes one refresh takes in many
  // changes instead of rereading a large service after each.
  std::chrono::milliseconds min_interval{50};
};

struct ZoneModelStats {
  std::uint64_t refreshes = 0;
  std::uint64_t full_reads = 0;
  std::uint64_t errors = 0;
  std::size_t journal_steps = 0;
  std::size_t journal_records = 0;
};

class ZoneModel {
 public:
  ZoneModel(store::RegistryStore& store, std::shared_ptr<const dns::Zone> zone,
            ZoneModelOptions options);
  ~ZoneModel();
  ZoneModel(const ZoneModel&) = delete;
  ZoneModel& operator=(const ZoneModel&) = delete;

  // Reads the whole registry (throws StoreError if the database does not
  // answer), publishes it, then follows on the model's thread.
  void start();
  void stop();
  // The feed moved: refresh now rather than at the next poll.
  void wake();
  // One refresh on the caller's thread (tests; start() and the thread use it).
  void refresh();

  std::shared_ptr<const ZoneVersion> current() const;
  // The journal's steps from `serial` to the current version (into `version`,
  // read under the same lock, so the steps end at its serial), in order; empty
  // when `serial` is current or newer; nullopt when the journal does not reach back.
  std::optional<std::vector<std::shared_ptr<const JournalStep>>> steps_since(
      std::uint32_t serial, std::shared_ptr<const ZoneVersion>* version = nullptr) const;
  std::uint32_t serial_of(std::uint64_t sequence) const {
    return static_cast<std::uint32_t>(zone_->file_serial() + sequence);
  }
  const dns::Zone& zone() const { return *zone_; }
  // Called after each published version with a new serial (NOTIFY).
  void on_serial(std::function<void(std::uint32_t)> listener);
  ZoneModelStats stats() const;

 private:
  void run();
  void publish(std::shared_ptr<const ZoneVersion> version, std::shared_ptr<const JournalStep> step,
               bool full);

  store::RegistryStore& store_;
  std::shared_ptr<const dns::Zone> zone_;
  ZoneModelOptions options_;
  mutable std::mutex mutex_;  // guards what follows, not the store reads
  std::shared_ptr<const ZoneVersion> current_;
  std::deque<std::shared_ptr<const JournalStep>> journal_;
  std::size_t journal_records_ = 0;
  std::vector<std::function<void(std::uint32_t)>> listeners_;
  ZoneModelStats stats_;
  std::condition_variable wake_;
  bool woken_ = false;
  bool stopping_ = false;
  std::mutex refresh_mutex_;  // one refresh at a time
  std::thread thread_;
};

}  // namespace xfr
