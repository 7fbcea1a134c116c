// Health-check shard ownership for this daemon (store/health_shards.h): every
// balance_interval, while our membership lease holds, one balance transaction
// (RegistryStore::balance_shards) claims orphaned shards, asks for a share and
// hands over what others asked of us; the checker is told which shards to
// probe. Shards asked of us are withdrawn from the checker first and handed
// over only once it has written their failure counts, so the next owner goes
// on counting where we stopped and nobody probes them twice.
//
// When our lease may have run out (Membership::lease_valid), everything is
// withdrawn at once ("lapsed"): another daemon may own our shards by now. The
// next balance after the lease holds again says what is ours.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string>

#include "store/health_shards.h"
#include "store/registry_store.h"

namespace store {

class Membership;

struct ShardOwnershipOptions {
  // As often as the lease is renewed: a dead member's shards are claimed at
  // most this long after its lease ran out.
  std::chrono::milliseconds balance_interval{250};
};

struct ShardOwnershipStats {
  std::size_t owned = 0;      // as the last balance left us (requested ones included)
  std::size_t probing = 0;    // given to the checker
  std::size_t requested = 0;  // asked of us, being handed over
  std::size_t participants = 0;
  std::uint64_t balances = 0;
  std::uint64_t balance_failures = 0;
  std::uint64_t lapses = 0;
};

class ShardOwnership {
 public:
  // The checker's side: probe `shards` only; call `released` with the shards
  // dropped once their counts are written (or at once when `lapsed`).
  using Released = std::function<void(const ShardSet& dropped)>;
  using Assign = std::function<void(const ShardSet& shards, bool lapsed, Released released)>;

  ShardOwnership(RegistryStore& store, const Membership& membership, Assign assign,
                 ShardOwnershipOptions options = {});
  ~ShardOwnership();
  ShardOwnership(const ShardOwnership&) = delete;
  ShardOwnership& operator=(const ShardOwnership&) = delete;

  // The first balance now (so the checker starts with its shards), then the
  // thread. A failed first balance is retried at the next interval.
  void start();
  void stop();
  ShardOwnershipStats stats() const;

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_;
};

}  // namespace store
