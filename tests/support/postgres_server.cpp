#include "tests/support/postgres_server.h"

#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <stdexcept>
#include <thread>
#include <vector>

namespace test_support {
namespace {

const std::string kBin = "/usr/lib/postgresql/15/bin/";

// The user the server runs as: `postgres` when we are root, ourselves otherwise.
struct ServerUser {
  bool switch_user = false;
  uid_t uid = 0;
  gid_t gid = 0;
};

ServerUser server_user() {
  ServerUser user;
  if (::geteuid() != 0) return user;
  const passwd* entry = ::getpwnam("postgres");
  if (!entry) throw std::runtime_error("running as root but there is no user postgres");
  user.switch_user = true;
  user.uid = entry->pw_uid;
  user.gid = entry->pw_gid;
  return user;
}

// Forks and execs argv in the child (as the server user when `as_server`),
// stdout to `out_fd` and stderr to `err_fd` (-1: /dev/null), in a process group
// of its own. Returns the child's pid.
pid_t spawn(const std::vector<std::string>& argv, bool as_server, int out_fd, int err_fd,
            const std::string& cwd) {
  const ServerUser user = as_server ? server_user() : ServerUser{};
  std::vector<char*> args;
  for (const auto& arg : argv) args.push_back(const_cast<char*>(arg.c_str()));
  args.push_back(nullptr);
  const pid_t pid = ::fork();
  if (pid < 0) throw std::runtime_error("fork failed");
  if (pid != 0) return pid;
  ::setpgid(0, 0);
  const int null_fd = ::open("/dev/null", O_RDWR);
  ::dup2(null_fd, STDIN_FILENO);
  ::dup2(out_fd >= 0 ? out_fd : null_fd, STDOUT_FILENO);
  ::dup2(err_fd >= 0 ? err_fd : null_fd, STDERR_FILENO);
  if (user.switch_user &&
      (::setgroups(0, nullptr) != 0 || ::setgid(user.gid) != 0 || ::setuid(user.uid) != 0)) {
    ::_exit(126);
  }
  if (!cwd.empty() && ::chdir(cwd.c_str()) != 0) ::_exit(125);
  ::execv(args[0], args.data());
  ::_exit(127);
}

// Runs argv to completion; returns its exit status and its stdout.
int run(const std::vector<std::string>& argv, bool as_server, const std::string& cwd,
        std::string* output, int err_fd) {
  int pipe_fds[2];
  if (::pipe2(pipe_fds, O_CLOEXEC) != 0) throw std::runtime_error("pipe failed");
  const pid_t pid = spawn(argv, as_server, pipe_fds[1], err_fd, cwd);
  ::close(pipe_fds[1]);
  char buffer[4096];
  while (true) {
    const auto n = ::read(pipe_fds[0], buffer, sizeof buffer);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    if (output) output->append(buffer, static_cast<std::size_t>(n));
  }
  ::close(pipe_fds[0]);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

// The children of `parent` (the postmaster's backends and auxiliary processes),
// from /proc. Each backend leads a process group of its own (PostgreSQL calls
// setsid() in every child), so signalling the postmaster's group misses them.
std::vector<pid_t> children_of(pid_t parent) {
  std::vector<pid_t> children;
  std::error_code ignored;
  for (const auto& entry : std::filesystem::directory_iterator("/proc", ignored)) {
    const std::string name = entry.path().filename().string();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    // /proc/<pid>/stat: "pid (comm) state ppid ..."; comm may hold spaces.
    const std::string stat = read_file(entry.path().string() + "/stat");
    const auto close = stat.rfind(')');
    if (close == std::string::npos) continue;
    int ppid = 0;
    char state = 0;
    if (std::sscanf(stat.c_str() + close + 1, " %c %d", &state, &ppid) == 2 && ppid == parent) {
      children.push_back(static_cast<pid_t>(std::stoi(name)));
    }
  }
  return children;
}

// Gone, or a zombie (its memory released, only its exit status left).
bool exited(pid_t pid) {
  const std::string stat = read_file("/proc/" + std::to_string(pid) + "/stat");
  const auto close = stat.rfind(')');
  return close == std::string::npos || stat.compare(close, 4, ") Z ") == 0;
}

}  // namespace

PostgresServer::PostgresServer()
    : data_dir_(dir_.file("data")), log_path_(dir_.file("postgres.log")), port_(free_port()) {
  const ServerUser user = server_user();
  // The server user owns the directory: the data, the socket and the log live there.
  if (user.switch_user && ::chown(dir_.path().c_str(), user.uid, user.gid) != 0) {
    throw std::runtime_error("cannot chown " + dir_.path().string() + " to postgres");
  }
  const int log_fd = ::open(log_path_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  const int status = run({kBin + "initdb", "-D", data_dir_, "-A", "trust", "-U", "discoveryd",
                          "--no-sync", "--no-instructions"},
                         true, dir_.path().string(), nullptr, log_fd);
  ::close(log_fd);
  if (status != 0)
    throw std::runtime_error("initdb failed (" + std::to_string(status) + "): " + log());
}

PostgresServer::~PostgresServer() {
  kill();
}

bool PostgresServer::start() {
  if (running()) return accepts();
  const int log_fd = ::open(log_path_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  pid_ = spawn({kBin + "postgres", "-D", data_dir_, "-p", std::to_string(port_), "-k",
                dir_.path().string(), "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off"},
               true, log_fd, log_fd, dir_.path().string());
  ::close(log_fd);
  if (!wait_until([&] { return !running() || accepts(); }, std::chrono::seconds(30),
                  std::chrono::milliseconds(20)) ||
      !running()) {
    return false;
  }
  if (!database_created_) {
    psql("CREATE DATABASE discoveryd", "postgres");
    database_created_ = true;
  }
  return true;
}

bool PostgresServer::running() {
  if (pid_ <= 0) return false;
  int status = 0;
  if (::waitpid(pid_, &status, WNOHANG) == 0) return true;
  pid_ = -1;
  return false;
}

void PostgresServer::stop() {
  if (!running()) return;
  ::kill(pid_, SIGINT);  // fast shutdown: roll back sessions, checkpoint, exit
  if (!wait_until([&] { return !running(); }, std::chrono::seconds(20))) kill();
}

void PostgresServer::kill() {
  if (pid_ <= 0) return;
  // Every process of the server, as a crash would: the postmaster is stopped
  // first so that it starts no new child meanwhile.
  ::kill(pid_, SIGSTOP);
  const std::vector<pid_t> children = children_of(pid_);
  for (const pid_t child : children) ::kill(child, SIGKILL);
  ::kill(pid_, SIGKILL);
  int status = 0;
  ::waitpid(pid_, &status, 0);
  // A restart refuses the shared memory while a killed backend is still
  // attached: wait until each one has exited (a zombie has let go of it).
  wait_until([&] { return std::all_of(children.begin(), children.end(), exited); },
             std::chrono::seconds(10), std::chrono::milliseconds(5));
  pid_ = -1;
  paused_.clear();
}

bool PostgresServer::restart() {
  kill();
  return start();
}

void PostgresServer::pause() {
  if (pid_ <= 0) return;
  ::kill(pid_, SIGSTOP);
  paused_ = children_of(pid_);
  for (const pid_t child : paused_) ::kill(child, SIGSTOP);
}

void PostgresServer::resume() {
  for (const pid_t child : paused_) ::kill(child, SIGCONT);
  paused_.clear();
  if (pid_ > 0) ::kill(pid_, SIGCONT);
}

bool PostgresServer::accepts() const {
  // As discoveryd: the default user (root) does not exist and would be logged.
  return run({kBin + "pg_isready", "-q", "-h", "127.0.0.1", "-p", std::to_string(port_), "-U",
              "discoveryd", "-d", "postgres", "-t", "1"},
             false, "", nullptr, -1) == 0;
}

std::string PostgresServer::url(const std::string& database) const {
  return "postgresql://discoveryd@127.0.0.1:" + std::to_string(port_) + "/" + database;
}

std::string PostgresServer::psql(const std::string& sql, const std::string& database) const {
  std::string output;
  const int status = run({kBin + "psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d",
                          url(database), "-c", sql},
                         false, "", &output, STDERR_FILENO);
  if (status != 0) throw std::runtime_error("psql failed (" + std::to_string(status) + "): " + sql);
  while (!output.empty() && (output.back() == '\n' || output.back() == ' ')) output.pop_back();
  return output;
}

}  // namespace test_support
