// The names of the services that may have instances, kept in memory so that a
// query for any other name (a typo, a scan, a flood of random names) is answered
// "nothing registered" at once: no Redis, no SQLite, nothing cached.
//
// The set is a superset of the services that have instances:
//  - a name is added before the change that gives it instances is acknowledged
//    (the cache's commit listener), or as soon as another daemon's change to it
//    arrives through the database's change feed;
//  - a name is removed only by remove_if, which the cache calls when a read found
//    the service empty and no change to it happened since that read began;
//  - load() replaces the set with the names read from the database, keeping
//    every name added while that read was in progress.
//
// It is authoritative (absent() can say yes) only between a completed load and
// the next invalidate(): the owner invalidates it whenever it could have missed
// an announcement (a gap in the change feed), and loads it again. Thread-safe; contains/absent take
// a shared lock.
#pragma once

#include <cstdint>
#include <functional>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <unordered_set>
#include <vector>

#include "store/string_map.h"

namespace store {

class KnownServices {
 public:
  // Starts a load: the caller reads the names from the database after this call
  // and passes them to finish_load with the returned ticket.
  std::uint64_t begin_load();
  // Installs the names read since begin_load (plus those added meanwhile). A load
  // superseded by a later begin_load or invalidate changes nothing. Returns
  // whether the set is now authoritative.
  bool finish_load(std::uint64_t ticket, const std::vector<std::string>& names);
  // Not authoritative until the next load completes.
  void invalidate();

  void add(std::string_view service);
  void add(const std::vector<std::string>& services);
  // Removes the name if `still_empty()`, evaluated under the exclusive lock,
  // says nothing changed the service since the read that found it empty.
  void remove_if(std::string_view service, const std::function<bool()>& still_empty);

  // True only when the set is authoritative and the name is not in it.
  bool absent(std::string_view service) const;
  bool authoritative() const;
  std::size_t size() const;

 private:
  using Set = StringSet;

  mutable std::shared_mutex mutex_;
  Set names_;
  Set added_during_load_;
  std::uint64_t load_ticket_ = 0;  // the load in progress, if loading_
  bool loading_ = false;
  bool authoritative_ = false;
};

}  // namespace store
