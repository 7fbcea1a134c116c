// .ci/loopback-netns.sh runs the suite in a network namespace with only loopback,
// so that a test registering a non-loopback address by mistake cannot probe it.
// These tests check that the namespace is really there when the script says so
// (DISCOVERYD_LOOPBACK_NETNS=1); without it they skip, which ctest reports.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

namespace {

bool inside_namespace() {
  const char* flag = std::getenv("DISCOVERYD_LOOPBACK_NETNS");
  return flag != nullptr && std::string_view(flag) == "1";
}

// GTEST_SKIP in SetUp skips the test body: visible in ctest's summary.
class LoopbackNetns : public testing::Test {
 protected:
  void SetUp() override {
    if (!inside_namespace()) {
      GTEST_SKIP() << "not run by .ci/loopback-netns.sh (DISCOVERYD_LOOPBACK_NETNS is not 1): "
                      "nothing stops traffic to non-loopback addresses";
    }
  }
};

class Socket {
 public:
  explicit Socket(int family) : fd_(::socket(family, SOCK_STREAM | SOCK_NONBLOCK, 0)) {}
  ~Socket() {
    if (fd_ >= 0) ::close(fd_);
  }
  Socket(const Socket&) = delete;
  Socket& operator=(const Socket&) = delete;
  int fd() const { return fd_; }

 private:
  int fd_;
};

// errno of a non-blocking connect: with a route it would be EINPROGRESS (and the
// test would not wait for a timeout); without one the kernel refuses at once.
int connect_errno(const sockaddr* address, socklen_t length) {
  const Socket socket(address->sa_family);
  if (socket.fd() < 0) return errno;
  return ::connect(socket.fd(), address, length) == 0 ? 0 : errno;
}

TEST_F(LoopbackNetns, ConnectToAPrivateIpv4AddressIsUnreachableAtOnce) {
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(9);
  ASSERT_EQ(::inet_pton(AF_INET, "10.255.255.1", &address.sin_addr), 1);
  const int error = connect_errno(reinterpret_cast<const sockaddr*>(&address), sizeof address);
  EXPECT_EQ(error, ENETUNREACH) << std::strerror(error);
}

TEST_F(LoopbackNetns, ConnectToAnIpv6AddressIsUnreachableAtOnce) {
  sockaddr_in6 address{};
  address.sin6_family = AF_INET6;
  address.sin6_port = htons(9);
  ASSERT_EQ(::inet_pton(AF_INET6, "2001:db8::1", &address.sin6_addr), 1);
  const int error = connect_errno(reinterpret_cast<const sockaddr*>(&address), sizeof address);
  EXPECT_EQ(error, ENETUNREACH) << std::strerror(error);
}

TEST_F(LoopbackNetns, OnlyTheLoopbackInterfaceExists) {
  std::vector<std::string> names;
  if (struct if_nameindex* list = ::if_nameindex()) {
    for (const struct if_nameindex* entry = list; entry->if_index != 0; ++entry) {
      names.emplace_back(entry->if_name);
    }
    ::if_freenameindex(list);
  }
  EXPECT_EQ(names, std::vector<std::string>{"lo"});
}

// The script brings lo up: all of 127.0.0.0/8 must still work, since every test
// talks to its daemon and registers instances there.
TEST_F(LoopbackNetns, LoopbackAddressesAcrossTheSlashEightStillConnect) {
  const Socket listener(AF_INET);
  ASSERT_GE(listener.fd(), 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = 0;
  ASSERT_EQ(::inet_pton(AF_INET, "127.1.2.3", &address.sin_addr), 1);
  auto* generic = reinterpret_cast<sockaddr*>(&address);
  ASSERT_EQ(::bind(listener.fd(), generic, sizeof address), 0) << std::strerror(errno);
  ASSERT_EQ(::listen(listener.fd(), 1), 0);
  socklen_t length = sizeof address;
  ASSERT_EQ(::getsockname(listener.fd(), generic, &length), 0);
  const int error = connect_errno(generic, sizeof address);
  EXPECT_TRUE(error == 0 || error == EINPROGRESS) << std::strerror(error);
}

}  // namespace
