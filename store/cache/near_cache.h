// The in-process near cache: service snapshots by name, each with an expiry,
// read by every DNS and HTTP thread without I/O.
//
// Bounded, and hot entries are safe from cold ones: when the cache is full, room
// is made only by a sweep (at most one per sweep interval) that drops entries
// that expired or were not read since the previous sweep. An entry read at least
// once per interval is never evicted; a fill that finds the cache full of such
// entries is simply not kept (the lookup is still answered). So a flood of
// one-off names, which only ever produce cold entries, cannot push out the
// services that carry the traffic.
//
// Thread-safe. Coherence (when an entry may be used at all) is the owner's
// business: ServiceCache erases entries on invalidation and checks its
// generations under this cache's lock through insert_if's predicate.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "store/model.h"
#include "store/string_map.h"

namespace store {

class NearCache {
 public:
  using SteadyClock = std::chrono::steady_clock;
  using Now = std::function<SteadyClock::time_point()>;

  struct Stats {
    std::size_t entries = 0;
    std::uint64_t evicted = 0;  // cold or expired entries dropped by a sweep
    std::uint64_t refused = 0;  // fills not kept because every entry was hot
  };

  NearCache(
      std::size_t max_entries, std::chrono::milliseconds ttl,
      std::chrono::milliseconds sweep_interval = std::chrono::seconds(1),
      Now now = [] { return SteadyClock::now(); });

  // The entry's snapshot if present and not expired, else nullptr. Marks the
  // entry as read (hot) for the next sweep.
  ServiceSnapshotPtr find(std::string_view service) const;
  // Stores the snapshot unless `still_current` (called under the cache's
  // exclusive lock) says the fill is out of date, or the cache is full of hot
  // entries. Returns whether it was stored.
  bool insert_if(const std::string& service, ServiceSnapshotPtr snapshot,
                 const std::function<bool()>& still_current);
  void erase(const std::vector<std::string>& services);
  void clear();
  Stats stats() const;

 private:
  struct Entry {
    ServiceSnapshotPtr snapshot;
    SteadyClock::time_point filled;
    SteadyClock::time_point expires;
    mutable std::atomic<bool> read{false};
  };
  // Makes room if a sweep is due; the caller holds the exclusive lock.
  void sweep(SteadyClock::time_point now);

  std::size_t max_entries_;
  std::chrono::milliseconds ttl_;
  std::chrono::milliseconds sweep_interval_;
  Now now_;
  mutable std::shared_mutex mutex_;
  StringMap<Entry> entries_;
  SteadyClock::time_point last_sweep_{};
  std::uint64_t evicted_ = 0;
  std::uint64_t refused_ = 0;
};

}  // namespace store
