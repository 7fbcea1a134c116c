#include "store/cache/known_services.h"

namespace store {

std::uint64_t KnownServices::begin_load() {
  std::unique_lock lock(mutex_);
  loading_ = true;
  added_during_load_.clear();
  return ++load_ticket_;
}

bool KnownServices::finish_load(std::uint64_t ticket, const std::vector<std::string>& names) {
  std::unique_lock lock(mutex_);
  if (!loading_ || ticket != load_ticket_) return authoritative_;
  // A name added after the read began may be missing from it (or the read may
  // have seen the service empty just before it got instances): keep it.
  Set loaded(names.begin(), names.end());
  loaded.merge(added_during_load_);
  names_ = std::move(loaded);
  added_during_load_.clear();
  loading_ = false;
  authoritative_ = true;
  return true;
}

void KnownServices::invalidate() {
  std::unique_lock lock(mutex_);
  authoritative_ = false;
  // A load that began before the invalidation may have missed what caused it.
  ++load_ticket_;
  loading_ = false;
  added_during_load_.clear();
}

void KnownServices::add(std::string_view service) {
  std::unique_lock lock(mutex_);
  if (!names_.contains(service)) names_.emplace(service);
  if (loading_ && !added_during_load_.contains(service)) added_during_load_.emplace(service);
}

void KnownServices::add(const std::vector<std::string>& services) {
  for (const auto& service : services) add(service);
}

void KnownServices::remove_if(std::string_view service, const std::function<bool()>& still_empty) {
  std::unique_lock lock(mutex_);
  auto it = names_.find(service);
  if (it == names_.end() || !still_empty()) return;
  // A load in progress may still bring the name back if its read saw instances:
  // the safe side (a superset); the next empty read removes it again.
  names_.erase(it);
}

bool KnownServices::absent(std::string_view service) const {
  std::shared_lock lock(mutex_);
  return authoritative_ && !names_.contains(service);
}

bool KnownServices::authoritative() const {
  std::shared_lock lock(mutex_);
  return authoritative_;
}

std::size_t KnownServices::size() const {
  std::shared_lock lock(mutex_);
  return names_.size();
}

}  // namespace store
