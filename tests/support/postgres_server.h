// Test support: a real, throwaway PostgreSQL 15 server (initdb into a temp
// directory, trust authentication, fsync off) on a free port of 127.0.0.1,
// running as the `postgres` user when the tests run as root (initdb refuses
// root). The postmaster is our child; kill() and pause() signal it and every
// one of its children, like a machine that lost power or froze.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

#include "tests/support/process.h"

namespace test_support {

class PostgresServer {
 public:
  // Runs initdb; throws std::runtime_error if it fails.
  PostgresServer();
  ~PostgresServer();  // kill()
  PostgresServer(const PostgresServer&) = delete;
  PostgresServer& operator=(const PostgresServer&) = delete;

  // Starts the server on port(), waits until it accepts connections and (the
  // first time) creates the database `discoveryd`. False if it exited or did
  // not accept connections in time (see log()).
  bool start();
  void stop();     // fast shutdown (SIGINT), waits for it
  void kill();     // SIGKILL to the postmaster and every backend, reaped
  bool restart();  // kill() then start(): same port, same data (crash recovery)
  void pause();    // SIGSTOP to every process: connections stay open, nothing answers
  void resume();   // SIGCONT
  bool running();
  // True when the server accepts connections (pg_isready).
  bool accepts() const;

  std::uint16_t port() const { return port_; }
  // "postgresql://discoveryd@127.0.0.1:PORT/<database>"
  std::string url(const std::string& database = "discoveryd") const;
  // Runs `sql` with psql on `database`; returns its output (unaligned, tuples
  // only, trailing newline removed). Throws std::runtime_error if psql fails.
  std::string psql(const std::string& sql, const std::string& database = "discoveryd") const;
  std::string log() const { return read_file(log_path_); }

 private:
  TempDir dir_;
  std::string data_dir_;
  std::string log_path_;
  std::uint16_t port_;
  pid_t pid_ = -1;
  std::vector<pid_t> paused_;  // the postmaster's children that pause() stopped
  bool database_created_ = false;
};

}  // namespace test_support
