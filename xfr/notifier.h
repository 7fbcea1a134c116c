// NOTIFY (RFC 1996) to the configured secondaries when the zone's serial
// moves: coalesced (at most one round per interval, always with the newest
// serial), and retried towards each secondary that has not answered, with the
// wait doubling up to a minute, until it answers or a newer serial replaces it.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/udp.hpp>

#include "xfr/tsig.h"

namespace xfr {

struct NotifyOptions {
  std::vector<boost::asio::ip::udp::endpoint> targets;
  std::string zone = "discovery.";  // the zone's apex, presentation form
  std::chrono::milliseconds interval{1000};
  std::chrono::milliseconds first_retry{2000};
  // When set, every NOTIFY is TSIG-signed with it (secondaries that accept
  // NOTIFY only with the key).
  std::optional<TsigKey> key;
};

struct NotifyStats {
  std::uint64_t sent = 0;  // NOTIFY messages sent, retries included
  std::uint64_t retries = 0;
  std::uint64_t answered = 0;  // responses that matched an outstanding NOTIFY
  std::uint32_t last_serial = 0;
};

class Notifier {
 public:
  Notifier(boost::asio::io_context& io, NotifyOptions options);
  ~Notifier();
  Notifier(const Notifier&) = delete;
  Notifier& operator=(const Notifier&) = delete;

  // Opens the UDP socket (IPv4 and IPv6 as the targets need); throws
  // std::runtime_error when it cannot.
  void start();
  void stop();
  // The zone's serial is now `serial` (from any thread).
  void serial_changed(std::uint32_t serial);
  NotifyStats stats() const;

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_;
};

}  // namespace xfr
