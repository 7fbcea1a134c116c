#include "store/cache/near_cache.h"

#include <mutex>

namespace store {

NearCache::NearCache(std::size_t max_entries, std::chrono::milliseconds ttl,
                     std::chrono::milliseconds sweep_interval, Now now)
    : max_entries_(max_entries),
      ttl_(ttl),
      sweep_interval_(sweep_interval),
      now_(std::move(now)),
      last_sweep_(now_()) {}

ServiceSnapshotPtr NearCache::find(std::string_view service) const {
  std::shared_lock lock(mutex_);
  auto entry = entries_.find(service);
  if (entry == entries_.end() || entry->second.expires <= now_()) return nullptr;
  // Relaxed: the flag is a hint for the sweep, which runs under the exclusive
  // lock and so sees every store made under a shared one before it.
  if (!entry->second.read.load(std::memory_order_relaxed)) {
    entry->second.read.store(true, std::memory_order_relaxed);
  }
  return entry->second.snapshot;
}

bool NearCache::insert_if(const std::string& service, ServiceSnapshotPtr snapshot,
                          const std::function<bool()>& still_current) {
  std::unique_lock lock(mutex_);
  if (!still_current()) return false;
  const auto now = now_();
  auto existing = entries_.find(service);
  if (existing == entries_.end()) {
    if (entries_.size() >= max_entries_) sweep(now);
    if (entries_.size() >= max_entries_) {
      ++refused_;
      return false;
    }
    existing = entries_.try_emplace(service).first;
  }
  Entry& entry = existing->second;
  entry.snapshot = std::move(snapshot);
  entry.filled = now;
  entry.expires = now + ttl_;
  entry.read.store(false, std::memory_order_relaxed);
  return true;
}

void NearCache::sweep(SteadyClock::time_point now) {
  if (now - last_sweep_ < sweep_interval_) return;
  const auto previous_sweep = last_sweep_;
  last_sweep_ = now;
  for (auto it = entries_.begin(); it != entries_.end();) {
    Entry& entry = it->second;
    // Cold: filled before the previous sweep and not read since it, so the
    // entry had a whole interval to prove itself.
    const bool cold = !entry.read.load(std::memory_order_relaxed) && entry.filled < previous_sweep;
    if (entry.expires <= now || cold) {
      it = entries_.erase(it);
      ++evicted_;
    } else {
      entry.read.store(false, std::memory_order_relaxed);
      ++it;
    }
  }
}

void NearCache::erase(const std::vector<std::string>& services) {
  std::unique_lock lock(mutex_);
  for (const auto& service : services) {
    if (auto it = entries_.find(service); it != entries_.end()) entries_.erase(it);
  }
}

void NearCache::clear() {
  std::unique_lock lock(mutex_);
  entries_.clear();
}

NearCache::Stats NearCache::stats() const {
  std::shared_lock lock(mutex_);
  return {entries_.size(), evicted_, refused_};
}

}  // namespace store
