// Test support: temporary directories, child processes and the real discoveryd.
#pragma once

#include <chrono>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace test_support {

// A fresh directory under $TMPDIR, removed with everything in it on destruction.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::filesystem::path& path() const { return path_; }
  std::string file(const std::string& name) const { return (path_ / name).string(); }

 private:
  std::filesystem::path path_;
};

// Polls `condition` until it holds or `timeout` passes; returns the last result.
bool wait_until(const std::function<bool()>& condition,
                std::chrono::milliseconds timeout = std::chrono::seconds(10),
                std::chrono::milliseconds poll = std::chrono::milliseconds(10));

// A child process with stdout and stderr redirected to a log file.
class Process {
 public:
  Process(const std::vector<std::string>& argv, const std::string& log_path);
  ~Process();  // SIGKILLs the process if still running
  Process(const Process&) = delete;
  Process& operator=(const Process&) = delete;

  pid_t pid() const { return pid_; }
  bool running();
  void signal(int signal_number);
  // Waits for exit; returns the exit status (128+signal when killed) or -1 on timeout.
  int wait(std::chrono::milliseconds timeout = std::chrono::seconds(10));
  void kill_now();  // SIGKILL and reap

 private:
  pid_t pid_ = -1;
  int status_ = -1;
};

std::string read_file(const std::string& path);

// A free TCP+UDP port on 127.0.0.1 at the moment of the call.
std::uint16_t free_port();

// The real daemon, started on free ports with a temp database. Extra arguments
// are appended to the command line.
class Daemon {
 public:
  struct Options {
    std::string db_path;  // default: <dir>/discoveryd.db
    std::vector<std::string> extra_args;
    std::optional<std::uint16_t> redis_port;  // none: --redis none
    std::string http_host = "127.0.0.1";      // the HTTP API's listen address
  };
  Daemon(const TempDir& dir, Options options);
  explicit Daemon(const TempDir& dir) : Daemon(dir, Options{}) {}

  // Starts and waits until it serves (its ready file appears). Returns false if
  // it exited or did not become ready in time.
  bool start();
  // The HTTP port to listen on (default: a free one chosen by the daemon).
  void set_http_port(std::uint16_t port) { http_port_ = port; }
  void stop();  // SIGTERM and wait
  void kill();  // SIGKILL
  int wait_exit(std::chrono::milliseconds timeout = std::chrono::seconds(10));
  std::uint16_t http_port() const { return http_port_; }
  std::uint16_t dns_port() const { return dns_port_; }
  const std::string& db_path() const { return db_path_; }
  std::string log() const { return read_file(log_path_); }
  Process* process() { return process_.get(); }

 private:
  const TempDir& dir_;
  Options options_;
  std::string db_path_;
  std::string log_path_;
  std::string ready_path_;
  std::uint16_t http_port_ = 0;
  std::uint16_t dns_port_ = 0;
  std::unique_ptr<Process> process_;
  int starts_ = 0;
};

}  // namespace test_support
