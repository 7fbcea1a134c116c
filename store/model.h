// The registry's data model: what a service instance is. Every other view (the
// Redis cache, DNS answers, the HTTP API) derives from these types.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

struct sockaddr;

namespace store {

using Clock = std::chrono::system_clock;
using TimePoint = Clock::time_point;
using Milliseconds = std::chrono::milliseconds;

// An IPv4 or IPv6 address kept in network byte order, ready to be copied into an
// A or AAAA record without reparsing.
struct IpAddress {
  enum class Family : std::uint8_t { v4, v6 };
  Family family = Family::v4;
  std::array<std::uint8_t, 16> bytes{};  // only the first 4 are used for IPv4

  // Accepts only IP literals (no hostnames, no scope ids); nullopt otherwise.
  static std::optional<IpAddress> parse(std::string_view text);
  // The address of an AF_INET or AF_INET6 socket address; nullopt for other
  // families.
  static std::optional<IpAddress> from_sockaddr(const sockaddr& address);
  // Canonical text form (RFC 5952 for IPv6).
  std::string to_string() const;
  bool is_v4() const { return family == Family::v4; }
  std::size_t size() const { return is_v4() ? 4 : 16; }
  friend bool operator==(const IpAddress&, const IpAddress&) = default;
};

enum class CheckType : std::uint8_t { http, tcp, ttl };
std::string_view to_string(CheckType type);
std::optional<CheckType> parse_check_type(std::string_view text);

// How DNS answers and GET /v1/resolve order a service's instances (see
// store/balancing/load_balancing.h and docs/dns.md). One strategy per service, stored on the
// service row (services.lb_strategy); unset means the daemon's default.
enum class LbStrategy : std::uint8_t { round_robin, weighted, least_loaded, random };
std::string_view to_string(LbStrategy strategy);
std::optional<LbStrategy> parse_lb_strategy(std::string_view text);
// How the health checker decides whether an instance is alive. Durations of zero
// mean "use the daemon's configured default" so that an operator can change the
// defaults for every instance that did not choose its own.
struct HealthCheck {
  CheckType type = CheckType::tcp;
  std::string path;            // http only, starts with '/'
  std::uint16_t port = 0;      // 0: the instance's port
  Milliseconds interval{0};    // 0: default
  Milliseconds timeout{0};     // 0: default
  Milliseconds ttl{0};         // ttl only: heartbeat deadline
  std::uint32_t failures = 0;  // consecutive failures before removal; 0: default
  friend bool operator==(const HealthCheck&, const HealthCheck&) = default;
};

// The daemon's defaults for checks that leave a field at zero (health.interval,
// health.timeout, health.failures): the one source that the configuration,
// registration validation and the health checker all read.
struct CheckDefaults {
  Milliseconds interval{30'000};
  Milliseconds timeout{2'000};
  std::uint32_t failures = 3;
};
// A check's failure count may not exceed this (registrations and configuration).
inline constexpr std::uint32_t kMaxCheckFailures = 100;

// What a client registers. Health data lives beside it in Instance.
struct Registration {
  std::string service;  // lower-case DNS label
  std::string id;       // lower-case DNS label, unique within the service
  IpAddress address;
  std::uint16_t port = 0;
  std::vector<std::string> tags;  // lower-case DNS labels, sorted, unique
  std::map<std::string, std::string> meta;
  std::uint16_t weight = 1;
  HealthCheck check;
  // The service's strategy as this registration asks for it (optional). It is
  // service-wide: stored on the service row, last writer wins; instances read
  // back from the store leave it unset (the snapshot carries it).
  std::optional<LbStrategy> lb;
  friend bool operator==(const Registration&, const Registration&) = default;
};

struct Instance {
  Registration registration;
  TimePoint registered_at{};
  TimePoint updated_at{};
  std::optional<TimePoint> last_check_at;
  std::optional<TimePoint> last_heartbeat_at;
  std::uint32_t consecutive_failures = 0;
  std::optional<double> load;  // last reported load, if any
  // Proofs of life so far: heartbeats and re-registrations (identical or not); 0
  // for a new row. Health writes carry the count they were based on and the store
  // refuses to let one undo a later proof of life (see RemoveUnhealthy and
  // CheckRecord in store/registry_store.h). Not shown by the API.
  std::uint64_t renewals = 0;

  const std::string& service() const { return registration.service; }
  const std::string& id() const { return registration.id; }
};

// One service's instances as of one committed version. Immutable once built,
// shared between threads by shared_ptr.
struct ServiceSnapshot {
  std::string service;
  // Increases on every committed change to the service (also across deletion and
  // re-creation), so that caches can tell an older snapshot from a newer one.
  std::uint64_t version = 0;
  std::optional<LbStrategy> lb;     // unset: the daemon's default strategy
  std::vector<Instance> instances;  // ordered by instance id
};
using ServiceSnapshotPtr = std::shared_ptr<const ServiceSnapshot>;

struct ServiceSummary {
  std::string service;
  std::uint64_t version = 0;
  std::size_t instance_count = 0;
};

}  // namespace store
