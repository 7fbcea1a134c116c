// Membership and the acknowledgement rule: what makes an acknowledged write
// visible on every daemon sharing the database before the client hears of it.
//
//  - Each daemon holds a lease in the members table (RegistryStore::renew_member)
//    and reports there the newest sequence of the change feed it applied. It
//    renews every renew_interval, and reports at once whenever its feed
//    advanced while other members are live (writers are waiting for that).
//  - The rule (hold_until_applied, this daemon's Writer gate): a batch is
//    acknowledged only once every other member whose lease is live, read after
//    the commit, has applied the sequence the batch observed. A member that
//    stops reporting holds acknowledgements up to its lease, no longer.
//  - Serving: this daemon answers from memory only until the ServingDeadline,
//    which a renewal sent at t moves to t + lease - margin, and only once the
//    feed has applied the sequence the renewal returned. So when writers stop
//    waiting for us (our lease ran out by the database's clock, which started
//    after t), we stopped answering from memory earlier; and after a lapse we
//    answer from memory again only once we have every change any writer could
//    have acknowledged without us. A member whose feed falls behind its last
//    renewal gives its lease up (revoking the deadline first), so a stuck feed
//    cannot hold writers either.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "store/registry_store.h"
#include "store/serving_deadline.h"
#include "store/writer.h"

namespace store {

struct MembershipOptions {
  std::string id;         // unique per daemon process (default: host, pid, random)
  std::string endpoints;  // shown to operators
  std::chrono::milliseconds lease{2000};
  // Several renewals per lease, so one slow write does not lose it.
  std::chrono::milliseconds renew_interval{250};
  // How often held acknowledgements re-read the members while waiting.
  std::chrono::milliseconds gate_poll{1};
};

struct MembershipStats {
  bool serving = false;         // memory may answer (the deadline has not passed)
  std::size_t live_others = 0;  // other members with a live lease, at the last read
  std::size_t held = 0;         // acknowledgements waiting now
  std::uint64_t released = 0;
  std::uint64_t renewals = 0;
  std::uint64_t renewal_failures = 0;
  std::uint64_t leases_given_up = 0;  // renewals while our feed was behind
};

class Membership final : public AcknowledgementGate {
 public:
  using Applied = std::function<std::uint64_t()>;
  // `applied`: the newest sequence this daemon's memory reflects (the cache's
  // feed). `deadline`: what the cache checks per answer.
  Membership(RegistryStore& store, MembershipOptions options, Applied applied,
             ServingDeadline& deadline);
  ~Membership() override;
  Membership(const Membership&) = delete;
  Membership& operator=(const Membership&) = delete;

  // Takes the lease (one renewal now; a failure is logged and retried) and
  // starts the membership thread.
  void start();
  // Acknowledges what is still held, gives the lease up, joins the thread.
  void stop();

  void hold_until_applied(std::uint64_t sequence, std::function<void()> release) override;
  // The feed applied more: report it now if writers elsewhere may wait for it.
  void feed_advanced();

  // Our lease surely holds by the database's clock (see lease_valid in
  // membership.cpp): what may be done only by a live member (health shards).
  bool lease_valid(
      std::chrono::steady_clock::time_point now = std::chrono::steady_clock::now()) const;

  MembershipStats stats() const;
  std::vector<Member> members() const;  // as last read
  const std::string& id() const;

  // A default member id: host name, process id and a random suffix.
  static std::string default_id();

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_;
};

}  // namespace store
