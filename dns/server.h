// The DNS server: UDP and TCP listeners on one address and port that hand query
// bytes to the QueryProcessor and send its responses back. Runs on an io_context
// owned by the caller (the daemon runs it on a dedicated thread); the Asio
// machinery stays in server.cpp and tcp_listener.cpp.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "dns/options.h"
#include "dns/stats.h"
#include "dns/transfer.h"
#include "dns/zone.h"
#include "store/lookup.h"

namespace boost::asio {
class io_context;
}  // namespace boost::asio

namespace dns {

struct Endpoint {
  std::string address;
  std::uint16_t port = 0;
  std::string to_string() const;  // "127.0.0.1:8600", "[::1]:8600"
};

class Server {
 public:
  // Binds nothing yet. `lookup` must outlive the server, and fetches it has not
  // completed must not call back after the io_context is destroyed. The
  // io_context must be run by a single thread.
  Server(boost::asio::io_context& io, Options options, std::shared_ptr<const Zone> zone,
         store::ServiceLookup& lookup);
  ~Server();  // stops
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Binds UDP on options.listen_address:listen_port, then TCP on the same port
  // (with port 0, the port the kernel chose for UDP; retried if TCP finds it
  // taken), and starts serving. Throws std::system_error naming the failing step.
  void start();
  // Where AXFR and IXFR go (Options::zone_transfers); before start().
  void set_transfer_handler(std::shared_ptr<TransferHandler> handler);
  // Closes the listeners and every open TCP connection. Callable from any thread:
  // the work runs on the io_context (immediately when called from its thread).
  void stop();

  // Valid after start().
  Endpoint udp_endpoint() const;
  Endpoint tcp_endpoint() const;
  const Stats& stats() const;

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_;
};

}  // namespace dns
