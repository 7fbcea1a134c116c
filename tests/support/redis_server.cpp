#include "tests/support/redis_server.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <stdexcept>

namespace test_support {

namespace {

constexpr char kRedisServer[] = "/usr/bin/redis-server";
constexpr char kRedisCli[] = "/usr/bin/redis-cli";

// Waits for `events` on fd until `deadline`; true when ready.
bool wait_fd(int fd, short events, std::chrono::steady_clock::time_point deadline) {
  const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
      deadline - std::chrono::steady_clock::now());
  if (left.count() <= 0) return false;
  pollfd descriptor{fd, events, 0};
  return ::poll(&descriptor, 1, static_cast<int>(left.count())) == 1;
}

}  // namespace

RedisServer::RedisServer() : port_(free_port()) {}

RedisServer::~RedisServer() {
  kill();
}

bool RedisServer::start() {
  process_ = std::make_unique<Process>(
      std::vector<std::string>{kRedisServer, "--port", std::to_string(port_), "--bind", "127.0.0.1",
                               "--save", "", "--appendonly", "no", "--dir", dir_.path().string(),
                               "--daemonize", "no"},
      dir_.file("redis.log"));
  return wait_until([&] { return !process_->running() || ping(); }, std::chrono::seconds(10)) &&
         process_->running();
}

bool RedisServer::restart() {
  kill();
  return start();
}

void RedisServer::kill() {
  if (process_) process_->kill_now();
}

void RedisServer::pause() {
  if (process_) process_->signal(SIGSTOP);
}

void RedisServer::resume() {
  if (process_) process_->signal(SIGCONT);
}

bool RedisServer::ping(std::chrono::milliseconds timeout) const {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) return false;
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(port_);
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bool ok = false;
  if (::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0 ||
      (errno == EINPROGRESS && wait_fd(fd, POLLOUT, deadline))) {
    int error = 0;
    socklen_t length = sizeof error;
    ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &length);
    constexpr char kPing[] = "PING\r\n";
    if (error == 0 && ::send(fd, kPing, sizeof kPing - 1, MSG_NOSIGNAL) == sizeof kPing - 1) {
      std::string answer;
      char buffer[64];
      while (answer.find("\r\n") == std::string::npos && wait_fd(fd, POLLIN, deadline)) {
        const auto n = ::recv(fd, buffer, sizeof buffer, 0);
        if (n <= 0) break;
        answer.append(buffer, static_cast<std::size_t>(n));
      }
      ok = answer.rfind("+PONG\r\n", 0) == 0;
    }
  }
  ::close(fd);
  return ok;
}

std::string RedisServer::run_cli(const std::vector<std::string>& args) const {
  std::vector<std::string> argv = {kRedisCli, "-p", std::to_string(port_)};
  argv.insert(argv.end(), args.begin(), args.end());
  std::vector<char*> pointers;
  for (auto& arg : argv) pointers.push_back(arg.data());
  pointers.push_back(nullptr);
  int pipe_fds[2];
  if (::pipe2(pipe_fds, O_CLOEXEC) != 0) throw std::runtime_error("pipe failed");
  const pid_t pid = ::fork();
  if (pid < 0) throw std::runtime_error("fork failed");
  if (pid == 0) {
    ::dup2(pipe_fds[1], STDOUT_FILENO);
    ::execv(pointers[0], pointers.data());
    ::_exit(127);
  }
  ::close(pipe_fds[1]);
  std::string output;
  char buffer[4096];
  while (true) {
    const auto n = ::read(pipe_fds[0], buffer, sizeof buffer);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    output.append(buffer, static_cast<std::size_t>(n));
  }
  ::close(pipe_fds[0]);
  int status = 0;
  ::waitpid(pid, &status, 0);
  return output;
}

std::string RedisServer::log() const {
  return read_file(dir_.file("redis.log"));
}

}  // namespace test_support
