#include "tests/support/process.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>
#include <stdexcept>
#include <thread>

namespace test_support {

TempDir::TempDir() {
  std::random_device random;
  for (int attempt = 0; attempt < 100; ++attempt) {
    auto candidate =
        std::filesystem::temp_directory_path() /
        ("discoveryd-test-" + std::to_string(::getpid()) + "-" + std::to_string(random()));
    if (std::filesystem::create_directory(candidate)) {
      path_ = candidate;
      return;
    }
  }
  throw std::runtime_error("cannot create a temp directory");
}

TempDir::~TempDir() {
  std::error_code ignored;
  std::filesystem::remove_all(path_, ignored);
}

bool wait_until(const std::function<bool()>& condition, std::chrono::milliseconds timeout,
                std::chrono::milliseconds poll) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (true) {
    if (condition()) return true;
    if (std::chrono::steady_clock::now() >= deadline) return condition();
    std::this_thread::sleep_for(poll);
  }
}

Process::Process(const std::vector<std::string>& argv, const std::string& log_path) {
  std::vector<char*> args;
  for (const auto& arg : argv) args.push_back(const_cast<char*>(arg.c_str()));
  args.push_back(nullptr);
  const int log_fd = ::open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (log_fd < 0) throw std::runtime_error("cannot open " + log_path);
  pid_ = ::fork();
  if (pid_ < 0) throw std::runtime_error("fork failed");
  if (pid_ == 0) {
    ::dup2(log_fd, STDOUT_FILENO);
    ::dup2(log_fd, STDERR_FILENO);
    const int null_fd = ::open("/dev/null", O_RDONLY);
    ::dup2(null_fd, STDIN_FILENO);
    ::setpgid(0, 0);
    ::execv(args[0], args.data());
    ::_exit(127);
  }
  ::close(log_fd);
}

Process::~Process() {
  if (running()) kill_now();
}

bool Process::running() {
  if (pid_ <= 0 || status_ != -1) return false;
  int status = 0;
  const pid_t result = ::waitpid(pid_, &status, WNOHANG);
  if (result == 0) return true;
  status_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return false;
}

void Process::signal(int signal_number) {
  if (running()) ::kill(pid_, signal_number);
}

int Process::wait(std::chrono::milliseconds timeout) {
  wait_until([this] { return !running(); }, timeout, std::chrono::milliseconds(5));
  return running() ? -1 : status_;
}

void Process::kill_now() {
  if (!running()) return;
  ::kill(pid_, SIGKILL);
  int status = 0;
  ::waitpid(pid_, &status, 0);
  status_ = 128 + SIGKILL;
}

std::string read_file(const std::string& path) {
  std::ifstream file(path);
  std::stringstream text;
  text << file.rdbuf();
  return text.str();
}

std::uint16_t free_port() {
  // Try random ports in the ephemeral-free range until TCP and UDP both bind:
  // the daemon needs the same number for DNS over UDP and TCP.
  thread_local std::mt19937 generator{std::random_device{}()};
  std::uniform_int_distribution<int> distribution(20000, 30000);
  for (int attempt = 0; attempt < 1000; ++attempt) {
    const auto port = static_cast<std::uint16_t>(distribution(generator));
    bool ok = true;
    for (int type : {SOCK_STREAM, SOCK_DGRAM}) {
      const int fd = ::socket(AF_INET, type | SOCK_CLOEXEC, 0);
      sockaddr_in address{};
      address.sin_family = AF_INET;
      address.sin_port = htons(port);
      address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      ok = ok && ::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0;
      ::close(fd);
    }
    if (ok) return port;
  }
  throw std::runtime_error("no free port");
}

Daemon::Daemon(const TempDir& dir, Options options) : dir_(dir), options_(std::move(options)) {
  db_path_ = options_.db_path.empty() ? dir_.file("discoveryd.db") : options_.db_path;
  log_path_ = dir_.file("discoveryd.log");
  ready_path_ = dir_.file("ready.json");
}

bool Daemon::start() {
  std::filesystem::remove(ready_path_);
  // Keep the ports across restarts so clients can reconnect to the same place.
  if (starts_++ == 0) dns_port_ = free_port();
  std::vector<std::string> argv = {DISCOVERYD_BINARY,
                                   "--db",
                                   db_path_,
                                   "--http-listen",
                                   options_.http_host + ":" + std::to_string(http_port_),
                                   "--dns-listen",
                                   "127.0.0.1:" + std::to_string(dns_port_),
                                   "--zones",
                                   DISCOVERYD_SOURCE_DIR "/zones",
                                   "--ready-file",
                                   ready_path_,
                                   "--log-level",
                                   "debug",
                                   "--redis",
                                   options_.redis_port
                                       ? "127.0.0.1:" + std::to_string(*options_.redis_port)
                                       : std::string("none")};
  argv.insert(argv.end(), options_.extra_args.begin(), options_.extra_args.end());
  process_ = std::make_unique<Process>(argv, log_path_);
  const bool ready =
      wait_until([&] { return std::filesystem::exists(ready_path_) || !process_->running(); },
                 std::chrono::seconds(20));
  if (!ready || !process_->running()) return false;
  const auto endpoints = nlohmann::json::parse(read_file(ready_path_));
  const auto http = endpoints.at("http").get<std::string>();
  http_port_ = static_cast<std::uint16_t>(std::stoi(http.substr(http.rfind(':') + 1)));
  const auto dns = endpoints.at("dns").get<std::string>();
  dns_port_ = static_cast<std::uint16_t>(std::stoi(dns.substr(dns.rfind(':') + 1)));
  return true;
}

void Daemon::stop() {
  if (!process_) return;
  process_->signal(SIGTERM);
  process_->wait(std::chrono::seconds(15));
}

void Daemon::kill() {
  if (process_) process_->kill_now();
}

int Daemon::wait_exit(std::chrono::milliseconds timeout) {
  return process_ ? process_->wait(timeout) : -1;
}

}  // namespace test_support
