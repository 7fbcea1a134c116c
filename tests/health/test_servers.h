// Real servers for the health checker's tests: an HTTP server whose answers the
// test scripts, and many listening sockets on one thread. Plain header: the Asio
// code stays in test_servers.cpp.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace health_test {

// Raises RLIMIT_NOFILE (soft, and hard when allowed) to at least `wanted`.
void raise_fd_limit(std::size_t wanted);

// An HTTP/1.1 server on its own thread, one response per connection.
class TestHttpServer {
 public:
  enum class Mode {
    respond,  // read the request, answer, close
    silent,   // accept and never answer (the connection stays open)
  };
  explicit TestHttpServer(const std::string& address = "127.0.0.1", std::uint16_t port = 0);
  ~TestHttpServer();
  TestHttpServer(const TestHttpServer&) = delete;
  TestHttpServer& operator=(const TestHttpServer&) = delete;

  std::uint16_t port() const;
  void set_mode(Mode mode);
  void set_status(int status);  // answered once the script is used up
  // Answered first, in order. 0 reads the request and never answers (the
  // connection stays open): the probe hangs until its timeout, which holds the
  // checker between two results for as long as a test needs.
  void set_script(std::vector<int> statuses);
  void set_extra_headers(std::string headers);  // CRLF-terminated lines
  void set_body_bytes(std::size_t bytes);       // size of the body
  void set_header_bytes(std::size_t bytes);     // adds one header line this long

  std::size_t connections() const;  // accepted
  std::size_t requests() const;     // complete requests received
  std::size_t responses(int status) const;
  std::vector<std::string> peers() const;            // remote address of each connection
  std::vector<std::string> local_addresses() const;  // local address of each connection
  std::optional<std::string> last_request() const;

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_;
};

// Many listening sockets on 127.0.0.1, served by one thread: each answers
// "200 OK" to whatever it reads (so http and tcp checks both pass).
class ListenerFarm {
 public:
  explicit ListenerFarm(std::size_t count);
  ~ListenerFarm();
  ListenerFarm(const ListenerFarm&) = delete;
  ListenerFarm& operator=(const ListenerFarm&) = delete;

  std::size_t size() const;
  std::uint16_t port(std::size_t index) const;
  std::size_t accepts(std::size_t index) const;
  std::optional<std::chrono::steady_clock::time_point> first_accept(std::size_t index) const;
  void close(std::size_t index);  // stops listening: connections are refused

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_;
};

}  // namespace health_test
