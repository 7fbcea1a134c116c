// The read interface the DNS front end (and the HTTP read routes) use to find a
// service's instances. One call per query returns the whole service.
//
// Contract:
//  - A snapshot with no instances means the service has nothing registered
//    (NXDOMAIN / 404); it is not an error. Such a snapshot may be one shared
//    empty snapshot whose `service` is empty: callers name the service they
//    asked for.
//  - `ok == false` means the data could not be read right now (database failure);
//    DNS answers SERVFAIL, HTTP 503.
//  - Implementations never block the caller's thread on I/O: find_cached() answers
//    from memory or returns nullptr, fetch() completes later.
#pragma once

#include <functional>
#include <string>
#include <string_view>

#include "store/model.h"

namespace store {

struct LookupResult {
  bool ok = false;
  ServiceSnapshotPtr snapshot;  // non-null when ok
  std::string error;            // when !ok
};

class ServiceLookup {
 public:
  virtual ~ServiceLookup() = default;
  // The service's current snapshot if it is in memory and known to be current,
  // else nullptr. Cheap (a hash lookup); safe from any thread.
  virtual ServiceSnapshotPtr find_cached(std::string_view service) = 0;
  // Reads the service from the backing store and calls `done` exactly once, on an
  // unspecified thread: the caller posts back to its own executor if it needs to.
  virtual void fetch(std::string service, std::function<void(LookupResult)> done) = 0;
};

}  // namespace store
