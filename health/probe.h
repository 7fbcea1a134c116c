// Network probes on Asio: a TCP connect, or an HTTP GET read up to its headers.
// Each runs under one deadline (connect, send and read together). Plain header:
// the Asio code stays in probe.cpp.
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "store/model.h"

namespace boost::asio {
class io_context;
}

namespace health {

struct ProbeTarget {
  store::IpAddress address;  // always the instance's registered address
  std::uint16_t port = 0;
  store::CheckType type = store::CheckType::tcp;  // tcp or http
  std::string path;                               // http only
};

struct ProbeResult {
  bool passed = false;
  bool aborted = false;  // cancelled by cancel_all(): neither a pass nor a failure
  std::string reason;    // why it failed, e.g. "http 503", "timeout after 2000ms"
  std::optional<double> load;
};

class Prober {
 public:
  using Callback = std::function<void(ProbeResult)>;
  Prober(boost::asio::io_context& io, std::size_t max_response_bytes, std::string user_agent);
  ~Prober();  // cancels what is in flight
  Prober(const Prober&) = delete;
  Prober& operator=(const Prober&) = delete;

  // Starts a probe; `done` runs exactly once, on the io_context's thread (never
  // inside this call).
  void probe(const ProbeTarget& target, std::chrono::milliseconds timeout, Callback done);
  // Ends every probe in flight; each reports `aborted`.
  void cancel_all();
  std::size_t in_flight() const;

 private:
  friend class ProbeOp;
  struct Impl;
  std::shared_ptr<Impl> impl_;
};

}  // namespace health
