// health_bench: how many instances one health-checker thread keeps checked every
// 30 s, at what CPU cost, how fast a removal commits, and memory per instance.
//
// It starts health_listeners helper processes (real listening sockets), registers
// N instances pointing at them directly in a fresh SQLite store, runs the
// Checker on its own io_context thread with the real group-commit Writer, and
// measures over a window:
//  - probes per second (Stats::probes_started),
//  - the checker thread's CPU (getrusage(RUSAGE_THREAD) on that thread) and the
//    whole process's (writer and background threads included),
//  - resident memory per instance (VmRSS after start minus before, malloc_trim'd),
//  - for a few instances on closed ports: the time from the decisive failed
//    probe (RemovalEvent::at) to the commit listener seeing the removal.
//
//   health_bench --instances 100000 --mode tcp --interval-ms 30000 --measure-s 45
#include <malloc.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <future>
#include <iostream>
#include <map>
#include <memory>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "health/checker.h"
#include "store/sqlite/sqlite_store.h"
#include "store/writer.h"

#ifndef HEALTH_LISTENERS_BINARY
#define HEALTH_LISTENERS_BINARY "health_listeners"
#endif

namespace {

using namespace std::chrono_literals;
using SteadyClock = std::chrono::steady_clock;

struct Arguments {
  std::size_t instances = 10000;
  std::string mode = "tcp";  // tcp, http or mixed
  std::chrono::milliseconds interval{30000};
  std::chrono::milliseconds timeout{2000};
  int measure_seconds = 45;
  int warmup_seconds = 5;
  std::size_t dead = 20;  // instances on closed ports, for the removal latency
  int helpers = 2;
  std::size_t max_concurrent = 1024;
};

Arguments parse(int argc, char** argv) {
  Arguments args;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string name = argv[i];
    const std::string value = argv[i + 1];
    if (name == "--instances") {
      args.instances = std::stoul(value);
    } else if (name == "--mode") {
      args.mode = value;
    } else if (name == "--interval-ms") {
      args.interval = std::chrono::milliseconds(std::stol(value));
    } else if (name == "--timeout-ms") {
      args.timeout = std::chrono::milliseconds(std::stol(value));
    } else if (name == "--measure-s") {
      args.measure_seconds = std::stoi(value);
    } else if (name == "--warmup-s") {
      args.warmup_seconds = std::stoi(value);
    } else if (name == "--dead") {
      args.dead = std::stoul(value);
    } else if (name == "--helpers") {
      args.helpers = std::stoi(value);
    } else if (name == "--max-concurrent") {
      args.max_concurrent = std::stoul(value);
    } else {
      std::cerr << "unknown argument " << name << "\n";
      std::exit(2);
    }
  }
  return args;
}

long rss_kib() {
  std::ifstream status("/proc/self/status");
  for (std::string line; std::getline(status, line);) {
    if (line.rfind("VmRSS:", 0) == 0) return std::stol(line.substr(6));
  }
  return 0;
}

double seconds_of(const timeval& tv) {
  return static_cast<double>(tv.tv_sec) + static_cast<double>(tv.tv_usec) / 1e6;
}

double cpu_of(const rusage& usage) {
  return seconds_of(usage.ru_utime) + seconds_of(usage.ru_stime);
}

std::uint16_t closed_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address);
  socklen_t length = sizeof address;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length);
  ::close(fd);
  return ntohs(address.sin_port);
}

struct Helper {
  pid_t pid = -1;
  std::string ports_file;
};

// Starts one health_listeners process and waits for its "ready" line.
Helper start_helper(const std::string& addresses, std::size_t per_address, const std::string& mode,
                    const std::string& ports_file) {
  int pipe_fds[2];
  if (::pipe(pipe_fds) != 0) throw std::runtime_error("pipe");
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::dup2(pipe_fds[1], STDOUT_FILENO);
    ::close(pipe_fds[0]);
    const std::string per = std::to_string(per_address);
    ::execl(HEALTH_LISTENERS_BINARY, HEALTH_LISTENERS_BINARY, "--addresses", addresses.c_str(),
            "--first-port", "5000", "--per-address", per.c_str(), "--mode",
            mode == "http" ? "http" : "tcp", "--ports-file", ports_file.c_str(),
            static_cast<char*>(nullptr));
    std::perror("exec health_listeners");
    std::_Exit(127);
  }
  ::close(pipe_fds[1]);
  std::string line;
  char c;
  while (::read(pipe_fds[0], &c, 1) == 1 && c != '\n') line += c;
  ::close(pipe_fds[0]);
  if (line.rfind("ready", 0) != 0) throw std::runtime_error("helper failed to start: " + line);
  return {pid, ports_file};
}

void raise_fd_limit() {
  rlimit limit{};
  ::getrlimit(RLIMIT_NOFILE, &limit);
  limit.rlim_cur = limit.rlim_max;  // the probes in flight need a few only
  ::setrlimit(RLIMIT_NOFILE, &limit);
}

struct Endpoint {
  std::string address;
  std::uint16_t port;
  bool http;
};

// Listening sockets: each helper serves one loopback address 127.0.1.<h+1>, ports
// from 5000 up (below the ephemeral range the checker's own connections use), at
// most 19,000 each (RLIMIT_NOFILE's hard limit here is 20,000 and cannot be raised
// without CAP_SYS_RESOURCE).
std::vector<Helper> start_helpers(const Arguments& args, const std::filesystem::path& dir) {
  constexpr std::size_t kPerHelper = 19000;
  const int helper_count = std::max<int>(
      args.helpers, static_cast<int>((args.instances + kPerHelper - 101) / (kPerHelper - 100)));
  const std::size_t per_address =
      std::min(kPerHelper, args.instances / static_cast<std::size_t>(helper_count) + 100);
  std::vector<Helper> helpers;
  for (int h = 0; h < helper_count; ++h) {
    const std::string addresses = "127.0.1." + std::to_string(h + 1);
    const std::string mode =
        args.mode == "mixed" ? (h % 2 ? "http" : "tcp") : args.mode;  // mixed: per helper
    helpers.push_back(start_helper(addresses, per_address, mode,
                                   (dir / ("ports-" + std::to_string(h) + ".txt")).string()));
  }
  return helpers;
}

// The sockets the helpers opened, as they listed them in their ports files.
std::vector<Endpoint> read_endpoints(const std::vector<Helper>& helpers, const std::string& mode) {
  std::vector<Endpoint> endpoints;
  for (std::size_t h = 0; h < helpers.size(); ++h) {
    std::ifstream ports(helpers[h].ports_file);
    const bool http = mode == "http" || (mode == "mixed" && h % 2 == 1);
    std::string address;
    int port;
    while (ports >> address >> port) {
      endpoints.push_back({address, static_cast<std::uint16_t>(port), http});
    }
  }
  return endpoints;
}

// Interleaves the helpers so that any prefix mixes them.
std::vector<Endpoint> interleave(const std::vector<Endpoint>& endpoints, std::size_t helpers) {
  std::vector<std::vector<Endpoint>> by_helper(helpers);
  for (const auto& endpoint : endpoints) {
    const std::size_t h = std::stoul(endpoint.address.substr(endpoint.address.rfind('.') + 1)) - 1;
    by_helper[std::min(h, helpers - 1)].push_back(endpoint);
  }
  std::vector<Endpoint> mixed;
  for (std::size_t i = 0; mixed.size() < endpoints.size(); ++i) {
    for (auto& list : by_helper) {
      if (i < list.size()) mixed.push_back(list[i]);
    }
  }
  return mixed;
}

// Instances on closed ports with a 1 s interval: their removals give the latency.
// Half are in the database at start (stamps known); half are registered through
// the writer during the run (stamps unknown: one service read before removal).
store::Registration dead_registration(std::size_t k) {
  store::Registration reg;
  reg.service = "dead" + std::to_string(k);
  reg.id = "d" + std::to_string(k);
  reg.address = *store::IpAddress::parse("127.0.0.1");
  reg.port = closed_port();
  reg.check.type = store::CheckType::tcp;
  reg.check.interval = 1000ms;
  reg.check.timeout = 500ms;
  return reg;
}

// Applies one batch of registrations; any that is not created ends the run.
void apply_registrations(store::SqliteStore& store, std::vector<store::Mutation>& batch) {
  for (const auto& result : store.apply(batch, store::Clock::now())) {
    if (result.outcome != store::Outcome::created) {
      std::cerr << "registration failed: " << result.error << "\n";
      std::exit(1);
    }
  }
  batch.clear();
}

// Registrations, straight into the store: the instances on the helpers' sockets,
// then the dead instances that are there at start. Returns how many of those.
// The caller owns `batch` (see main).
std::size_t register_instances(store::SqliteStore& store, const Arguments& args,
                               const std::vector<Endpoint>& endpoints,
                               std::vector<store::Mutation>& batch) {
  const auto registering = SteadyClock::now();
  for (std::size_t i = 0; i < args.instances; ++i) {
    store::Registration reg;
    reg.service = "svc" + std::to_string(i % 1000);
    reg.id = "i" + std::to_string(i);
    reg.address = *store::IpAddress::parse(endpoints[i].address);
    reg.port = endpoints[i].port;
    reg.check.type = endpoints[i].http ? store::CheckType::http : store::CheckType::tcp;
    if (endpoints[i].http) reg.check.path = "/health";
    batch.push_back(store::Upsert{std::move(reg)});
    if (batch.size() == 5000) apply_registrations(store, batch);
  }
  const std::size_t dead_at_start = args.dead / 2;
  for (std::size_t k = 0; k < dead_at_start; ++k)
    batch.push_back(store::Upsert{dead_registration(k)});
  apply_registrations(store, batch);
  std::printf("registered %zu instances in %.1f s\n", args.instances + dead_at_start,
              std::chrono::duration<double>(SteadyClock::now() - registering).count());
  return dead_at_start;
}

// The writer's commit listener, wired as main.cpp wires it (every commit goes to
// Checker::on_commit), which also notes when each removal was committed.
class CommitLog {
 public:
  void attach(health::Checker* checker) {
    std::lock_guard lock(mutex_);
    checker_ = checker;
  }

  void on_commit(const store::Writer::Commit& commit) {
    const auto now = store::Clock::now();
    std::lock_guard lock(mutex_);
    for (std::size_t i = 0; i < commit.mutations.size(); ++i) {
      const auto* removal = std::get_if<store::RemoveUnhealthy>(&commit.mutations[i]);
      if (removal && commit.results[i].outcome == store::Outcome::removed) {
        removal_commits_[removal->service + "/" + removal->id] = now;
      }
    }
    if (checker_) checker_->on_commit(commit);
  }

  // Removal latency: decisive failed probe -> removal committed (listener ran),
  // split by whether the instance was in the database at start.
  void print_removal_latencies(const std::vector<health::RemovalEvent>& events,
                               std::size_t dead_at_start) {
    std::lock_guard lock(mutex_);
    std::vector<double> known, reread;
    for (const auto& event : events) {
      const auto found = removal_commits_.find(event.service + "/" + event.id);
      if (found == removal_commits_.end()) continue;
      const double ms = std::chrono::duration<double, std::milli>(found->second - event.at).count();
      const std::size_t k = std::stoul(event.id.substr(1));
      (k < dead_at_start ? known : reread).push_back(ms);
    }
    print_latency("loaded at start", known);
    print_latency("registered during the run: one service reread first", reread);
  }

 private:
  static void print_latency(const char* what, std::vector<double> values) {
    if (values.empty()) {
      std::printf("removal latency (%s): no removals\n", what);
      return;
    }
    std::sort(values.begin(), values.end());
    std::printf("removal latency (%s): n=%zu median %.2f ms, max %.2f ms\n", what, values.size(),
                values[values.size() / 2], values.back());
  }

  std::mutex mutex_;
  health::Checker* checker_ = nullptr;
  std::map<std::string, store::TimePoint> removal_commits_;
};

// The checker thread's CPU time, read on that thread.
double thread_cpu(boost::asio::io_context& io) {
  std::promise<double> cpu;
  boost::asio::post(io, [&] {
    rusage usage{};
    ::getrusage(RUSAGE_THREAD, &usage);
    cpu.set_value(cpu_of(usage));
  });
  return cpu.get_future().get();
}

double process_cpu() {
  rusage usage{};
  ::getrusage(RUSAGE_SELF, &usage);
  return cpu_of(usage);
}

// What the measurement window saw: the checker's stats at both ends, and the CPU
// seconds and wall seconds in between.
struct Window {
  health::Stats start;
  health::Stats end;
  double thread_cpu = 0;
  double process_cpu = 0;
  double wall = 0;
};

Window measure(boost::asio::io_context& io, const health::Checker& checker, store::Writer& writer,
               const Arguments& args, std::size_t dead_at_start) {
  const auto window_start = SteadyClock::now();
  const health::Stats stats0 = checker.stats();
  const double thread0 = thread_cpu(io);
  const double process0 = process_cpu();
  // Mid-window: register the other half of the dead instances through the writer.
  std::this_thread::sleep_for(std::chrono::seconds(args.measure_seconds) / 2);
  for (std::size_t k = dead_at_start; k < args.dead; ++k) {
    writer.submit(store::Upsert{dead_registration(k)}, [](const store::MutationResult&) {});
  }
  std::this_thread::sleep_for(std::chrono::seconds(args.measure_seconds) -
                              std::chrono::seconds(args.measure_seconds) / 2);
  const double thread1 = thread_cpu(io);
  const double process1 = process_cpu();
  const health::Stats stats1 = checker.stats();
  const double wall = std::chrono::duration<double>(SteadyClock::now() - window_start).count();
  return {stats0, stats1, thread1 - thread0, process1 - process0, wall};
}

void print_window(const Arguments& args, const Window& window) {
  const double probes =
      static_cast<double>(window.end.probes_started - window.start.probes_started);
  const double rate = probes / window.wall;
  const double thread_share = window.thread_cpu / window.wall;
  const double process_share = window.process_cpu / window.wall;
  std::printf("\nmode %s, %zu instances, interval %lld ms\n", args.mode.c_str(), args.instances,
              static_cast<long long>(args.interval.count()));
  std::printf(
      "probes: %.0f/s over %.1f s (needed for every instance each interval: %.0f/s)\n", rate,
      window.wall,
      static_cast<double>(args.instances) / std::chrono::duration<double>(args.interval).count());
  std::printf("checker thread CPU: %.1f %% of a core (%.1f us per probe)\n", 100 * thread_share,
              probes > 0 ? 1e6 * window.thread_cpu / probes : 0.0);
  std::printf("whole process CPU (checker + writer + background): %.1f %% of a core\n",
              100 * process_share);
  std::printf(
      "failed probes in window: %llu, cap hits: %llu, in flight at end: %zu, "
      "check-record batches: %llu\n",
      static_cast<unsigned long long>(window.end.probes_failed - window.start.probes_failed),
      static_cast<unsigned long long>(window.end.cap_hits), window.end.probes_in_flight,
      static_cast<unsigned long long>(window.end.record_batches));
}

void print_memory(long rss_before, long rss_after, std::size_t instances) {
  std::printf(
      "resident memory: %ld KiB before the checker, %ld KiB tracking; %.0f bytes per "
      "instance\n",
      rss_before, rss_after,
      1024.0 * static_cast<double>(rss_after - rss_before) / static_cast<double>(instances));
}

std::unique_ptr<health::Checker> make_checker(boost::asio::io_context& io,
                                              store::SqliteStore& store, store::Writer& writer,
                                              const Arguments& args) {
  health::Options options;
  options.default_interval = args.interval;
  options.default_timeout = args.timeout;
  options.max_concurrent_probes = args.max_concurrent;
  return std::make_unique<health::Checker>(io, store, writer, options);
}

void stop_helpers(const std::vector<Helper>& helpers) {
  for (const auto& helper : helpers) {
    ::kill(helper.pid, SIGKILL);
    ::waitpid(helper.pid, nullptr, 0);
  }
}

}  // namespace

int main(int argc, char** argv) {
  const Arguments args = parse(argc, argv);
  raise_fd_limit();
  char dir_template[] = "/tmp/health-bench-XXXXXX";
  const std::filesystem::path dir = ::mkdtemp(dir_template);

  // 1. Listening sockets, in helper processes.
  const auto helpers_started = SteadyClock::now();
  const std::vector<Helper> helpers = start_helpers(args, dir);
  const std::vector<Endpoint> listed = read_endpoints(helpers, args.mode);
  const std::vector<Endpoint> endpoints = interleave(listed, helpers.size());
  if (endpoints.size() < args.instances) {
    std::cerr << "only " << endpoints.size() << " listening sockets\n";
    return 1;
  }
  std::printf("listeners: %zu sockets in %zu helper processes (%.1f s)\n", endpoints.size(),
              helpers.size(),
              std::chrono::duration<double>(SteadyClock::now() - helpers_started).count());

  // 2. Registrations, straight into the store.
  store::SqliteStore store({(dir / "bench.db").string(), /*synchronous_full=*/false});
  // The batch (5,000 upserts' worth of capacity) stays allocated for the whole run:
  // freeing it changes how malloc serves the checker's allocations, and with it
  // the memory-per-instance figure.
  std::vector<store::Mutation> batch;
  const std::size_t dead_at_start = register_instances(store, args, endpoints, batch);
  const std::size_t expected = args.instances + dead_at_start;

  // 3. The checker, wired as main.cpp wires it.
  CommitLog commits;
  store::Writer writer(
      store, [&commits](const store::Writer::Commit& commit) { commits.on_commit(commit); });
  boost::asio::io_context io;
  auto guard = boost::asio::make_work_guard(io);
  ::malloc_trim(0);
  const long rss_before = rss_kib();
  auto checker = make_checker(io, store, writer, args);
  commits.attach(checker.get());
  const auto started = SteadyClock::now();
  checker->start();
  std::thread io_thread([&] { io.run(); });
  while (checker->stats().instances < expected) std::this_thread::sleep_for(10ms);
  std::printf("checker tracking %zu instances %.2f s after start()\n", expected,
              std::chrono::duration<double>(SteadyClock::now() - started).count());

  // 4. Warm-up, then the measurement window.
  std::this_thread::sleep_for(std::chrono::seconds(args.warmup_seconds));
  ::malloc_trim(0);
  const long rss_after = rss_kib();
  const Window window = measure(io, *checker, writer, args, dead_at_start);

  // 5. Results.
  print_window(args, window);
  print_memory(rss_before, rss_after, expected);
  commits.print_removal_latencies(checker->recent_removals(), dead_at_start);

  checker->stop();
  std::this_thread::sleep_for(100ms);
  guard.reset();
  io.stop();
  io_thread.join();
  commits.attach(nullptr);
  checker.reset();
  writer.stop();
  stop_helpers(helpers);
  std::error_code ignored;
  std::filesystem::remove_all(dir, ignored);
  return 0;
}
