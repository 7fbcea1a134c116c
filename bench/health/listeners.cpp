// health_listeners: the benchmark's instances. Opens many listening sockets on
// loopback addresses and serves them from one epoll thread: in `http` mode each
// connection gets "200 OK" to its request, in `tcp` mode it is accepted and
// closed. Writes "address port" per bound socket to --ports-file, then a line
// "ready" to stdout, and runs until killed.
//
//   health_listeners --addresses 127.0.1.1,127.0.1.2 --first-port 5000
//                    --per-address 25000 --mode http --ports-file ports.txt
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <string.h>
#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <unordered_set>
#include <vector>

namespace {

struct Arguments {
  std::vector<std::string> addresses{"127.0.1.1"};
  int first_port = 5000;
  int per_address = 1000;
  bool http = true;
  std::string ports_file = "ports.txt";
};

Arguments parse(int argc, char** argv) {
  Arguments args;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string name = argv[i];
    const std::string value = argv[i + 1];
    if (name == "--addresses") {
      args.addresses.clear();
      std::stringstream list(value);
      for (std::string item; std::getline(list, item, ',');) args.addresses.push_back(item);
    } else if (name == "--first-port") {
      args.first_port = std::atoi(value.c_str());
    } else if (name == "--per-address") {
      args.per_address = std::atoi(value.c_str());
    } else if (name == "--mode") {
      args.http = value == "http";
    } else if (name == "--ports-file") {
      args.ports_file = value;
    } else {
      std::cerr << "unknown argument " << name << "\n";
      std::exit(2);
    }
  }
  return args;
}

// Raises the soft limit as far as the hard one allows (raising the hard limit
// needs CAP_SYS_RESOURCE, which containers often lack).
void raise_fd_limit(rlim_t wanted) {
  rlimit limit{};
  ::getrlimit(RLIMIT_NOFILE, &limit);
  rlimit raised{wanted, std::max(wanted, limit.rlim_max)};
  if (::setrlimit(RLIMIT_NOFILE, &raised) == 0) return;
  raised = {std::min(wanted, limit.rlim_max), limit.rlim_max};
  ::setrlimit(RLIMIT_NOFILE, &raised);
}

}  // namespace

int main(int argc, char** argv) {
  const Arguments args = parse(argc, argv);
  const std::size_t total = args.addresses.size() * static_cast<std::size_t>(args.per_address);
  raise_fd_limit(total * 2 + 10000);

  const int epoll = ::epoll_create1(EPOLL_CLOEXEC);
  std::unordered_set<int> listeners;
  std::ofstream ports(args.ports_file, std::ios::trunc);
  for (const std::string& address : args.addresses) {
    sockaddr_in endpoint{};
    endpoint.sin_family = AF_INET;
    if (::inet_pton(AF_INET, address.c_str(), &endpoint.sin_addr) != 1) {
      std::cerr << "bad address " << address << "\n";
      return 2;
    }
    for (int port = args.first_port; port < args.first_port + args.per_address; ++port) {
      const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
      if (fd < 0) {
        std::perror("socket");
        return 1;
      }
      endpoint.sin_port = htons(static_cast<std::uint16_t>(port));
      if (::bind(fd, reinterpret_cast<sockaddr*>(&endpoint), sizeof endpoint) != 0 ||
          ::listen(fd, 64) != 0) {
        ::close(fd);  // taken by someone else: skip it
        continue;
      }
      epoll_event event{};
      event.events = EPOLLIN;
      event.data.fd = fd;
      ::epoll_ctl(epoll, EPOLL_CTL_ADD, fd, &event);
      listeners.insert(fd);
      ports << address << " " << port << "\n";
    }
  }
  ports.close();
  std::cout << "ready " << listeners.size() << std::endl;

  static const char kResponse[] =
      "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
  std::vector<epoll_event> events(1024);
  char buffer[4096];
  for (;;) {
    const int ready = ::epoll_wait(epoll, events.data(), static_cast<int>(events.size()), -1);
    if (ready < 0) {
      if (errno == EINTR) continue;
      std::perror("epoll_wait");
      return 1;
    }
    for (int i = 0; i < ready; ++i) {
      const int fd = events[static_cast<std::size_t>(i)].data.fd;
      if (listeners.count(fd)) {
        for (;;) {
          const int connection = ::accept4(fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
          if (connection < 0) break;
          if (!args.http) {
            ::close(connection);
            continue;
          }
          epoll_event event{};
          event.events = EPOLLIN | EPOLLRDHUP;
          event.data.fd = connection;
          ::epoll_ctl(epoll, EPOLL_CTL_ADD, connection, &event);
        }
        continue;
      }
      // A connection: answer once the request head is in (one read suffices for
      // the checker's small request), then close.
      const ssize_t bytes = ::read(fd, buffer, sizeof buffer);
      if (bytes > 0 && ::memmem(buffer, static_cast<std::size_t>(bytes), "\r\n\r\n", 4)) {
        [[maybe_unused]] const ssize_t written = ::write(fd, kResponse, sizeof kResponse - 1);
      } else if (bytes < 0 && errno == EAGAIN) {
        continue;
      }
      ::close(fd);  // also removes it from the epoll set
    }
  }
}
