// Test support: a real redis-server on a free port, with no persistence.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "tests/support/process.h"

namespace test_support {

class RedisServer {
 public:
  RedisServer();
  ~RedisServer();  // SIGKILLs the server
  RedisServer(const RedisServer&) = delete;
  RedisServer& operator=(const RedisServer&) = delete;

  // Starts /usr/bin/redis-server on port() and waits until it answers PING.
  // Returns false if it exited or did not answer in time.
  bool start();
  bool restart();  // kill() then start() on the same port
  void kill();     // SIGKILL and reap
  void pause();    // SIGSTOP: connections stay open, nothing is answered
  void resume();   // SIGCONT
  // One PING over a fresh raw socket; true on +PONG within `timeout`.
  bool ping(std::chrono::milliseconds timeout = std::chrono::milliseconds(200)) const;
  // Runs redis-cli -p port() with `args`; returns its stdout.
  std::string run_cli(const std::vector<std::string>& args) const;

  std::uint16_t port() const { return port_; }
  std::string log() const;

 private:
  TempDir dir_;
  std::uint16_t port_;
  std::unique_ptr<Process> process_;
};

}  // namespace test_support
