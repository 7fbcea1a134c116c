// The registration address policy: which addresses the health checker may be
// pointed at. Each default range is probed at and just beyond its boundaries.
#include "registry/address_policy.h"

#include <gtest/gtest.h>
#include <ifaddrs.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cstring>
#include <string>
#include <vector>

namespace {

using registry::AddressPolicy;
using registry::ListenEndpoint;
using store::IpAddress;
using store::IpPrefix;

IpAddress ip(std::string_view text) {
  auto address = IpAddress::parse(text);
  EXPECT_TRUE(address) << text;
  return address.value_or(IpAddress{});
}

store::Registration registration(std::string_view address, std::uint16_t port = 8080) {
  store::Registration result;
  result.service = "orders";
  result.id = "a1";
  result.address = ip(address);
  result.port = port;
  return result;
}

store::Registration with_check(store::Registration base, store::CheckType type,
                               std::uint16_t check_port) {
  base.check.type = type;
  base.check.port = check_port;
  if (type == store::CheckType::http) base.check.path = "/health";
  return base;
}

std::vector<IpPrefix> prefixes(std::initializer_list<const char*> texts) {
  std::vector<IpPrefix> result;
  for (const char* text : texts) result.push_back(IpPrefix::parse(text).value());
  return result;
}

// The first address of `family` on a non-loopback interface, found independently
// of the policy's own lookup; nullopt on a machine with only loopback.
std::optional<IpAddress> non_loopback_interface_address(int family) {
  ifaddrs* list = nullptr;
  if (getifaddrs(&list) != 0) return std::nullopt;
  std::optional<IpAddress> found;
  for (const ifaddrs* entry = list; entry && !found; entry = entry->ifa_next) {
    if (!entry->ifa_addr || entry->ifa_addr->sa_family != family) continue;
    IpAddress address;
    if (family == AF_INET) {
      address.family = IpAddress::Family::v4;
      std::memcpy(address.bytes.data(), &reinterpret_cast<sockaddr_in*>(entry->ifa_addr)->sin_addr,
                  4);
      if (address.bytes[0] == 127) continue;
    } else {
      address.family = IpAddress::Family::v6;
      std::memcpy(address.bytes.data(),
                  &reinterpret_cast<sockaddr_in6*>(entry->ifa_addr)->sin6_addr, 16);
      if (address == ip("::1")) continue;
    }
    found = address;
  }
  freeifaddrs(list);
  return found;
}

class DefaultRanges : public ::testing::Test {
 protected:
  AddressPolicy policy{AddressPolicy::default_deny_ranges(), {}};

  void expect_denied(std::string_view address, std::string_view range) {
    const auto error = policy.check(registration(address));
    ASSERT_TRUE(error) << address << " should be in " << range;
    EXPECT_EQ(error->field, "address");
    EXPECT_EQ(error->message, "address " + ip(address).to_string() + " is in a denied range (" +
                                  std::string(range) + ")");
  }
  void expect_allowed(std::string_view address) {
    const auto error = policy.check(registration(address));
    EXPECT_FALSE(error) << address << ": " << error->message;
  }
};

TEST_F(DefaultRanges, ThisNetwork) {
  expect_denied("0.0.0.0", "0.0.0.0/8");
  expect_denied("0.0.0.1", "0.0.0.0/8");
  expect_denied("0.255.255.255", "0.0.0.0/8");
  expect_allowed("1.0.0.0");
}

TEST_F(DefaultRanges, Ipv4Multicast) {
  expect_denied("224.0.0.0", "224.0.0.0/4");
  expect_denied("224.0.0.1", "224.0.0.0/4");
  expect_denied("239.255.255.255", "224.0.0.0/4");
  expect_allowed("223.255.255.255");
  expect_allowed("240.0.0.1");  // reserved, but some clusters use it for pods
}

TEST_F(DefaultRanges, Broadcast) {
  expect_denied("255.255.255.255", "255.255.255.255/32");
  expect_allowed("255.255.255.254");
}

TEST_F(DefaultRanges, Ipv4LinkLocalIncludingMetadataService) {
  expect_denied("169.254.0.0", "169.254.0.0/16");
  expect_denied("169.254.169.254", "169.254.0.0/16");
  expect_denied("169.254.255.255", "169.254.0.0/16");
  expect_allowed("169.253.255.255");
  expect_allowed("169.255.0.0");
}

TEST_F(DefaultRanges, Ipv6UnspecifiedMulticastAndLinkLocal) {
  expect_denied("::", "::/128");
  expect_allowed("::2");
  expect_denied("ff00::", "ff00::/8");
  expect_denied("ff02::1", "ff00::/8");
  expect_denied("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "ff00::/8");
  expect_allowed("feff:ffff:ffff:ffff:ffff:ffff:ffff:ffff");
  expect_denied("fe80::", "fe80::/10");
  expect_denied("fe80::1", "fe80::/10");
  expect_denied("febf:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "fe80::/10");
  expect_allowed("fe7f:ffff:ffff:ffff:ffff:ffff:ffff:ffff");
  expect_allowed("fec0::");
  expect_denied("fd00:ec2::254", "fd00:ec2::254/128");
  expect_allowed("fd00:ec2::253");
  expect_allowed("fd00:ec2::255");
}

TEST_F(DefaultRanges, Ipv4MappedAddressesFallInTheIpv4Ranges) {
  expect_denied("::ffff:169.254.169.254", "169.254.0.0/16");
  expect_denied("::ffff:224.0.0.1", "224.0.0.0/4");
  expect_denied("::ffff:0.0.0.1", "0.0.0.0/8");
  expect_allowed("::ffff:10.1.2.3");
}

TEST_F(DefaultRanges, LoopbackAndOrdinaryAddressesStayAllowed) {
  expect_allowed("127.0.0.1");
  expect_allowed("127.255.255.254");
  expect_allowed("::1");
  expect_allowed("::ffff:127.0.0.1");
  expect_allowed("10.1.2.3");
  expect_allowed("192.168.1.1");
  expect_allowed("192.0.2.1");
  expect_allowed("2001:db8::1");
  expect_allowed("fd00::2");
}

TEST(AddressPolicy, CustomRangesReplaceTheDefaults) {
  const AddressPolicy policy(prefixes({"10.0.0.0/8", "2001:db8::/32"}), {});
  auto error = policy.check(registration("10.200.0.1"));
  ASSERT_TRUE(error);
  EXPECT_EQ(error->message, "address 10.200.0.1 is in a denied range (10.0.0.0/8)");
  EXPECT_EQ(error->field, "address");
  EXPECT_TRUE(policy.check(registration("2001:db8:1::5")));
  EXPECT_TRUE(policy.check(registration("::ffff:10.0.0.9")));
  EXPECT_FALSE(policy.check(registration("11.0.0.0")));
  // The defaults are gone: the operator's list is the whole list.
  EXPECT_FALSE(policy.check(registration("224.0.0.1")));
  EXPECT_FALSE(policy.check(registration("169.254.169.254")));
}

TEST(AddressPolicy, AnEmptyListDeniesNoRange) {
  const AddressPolicy policy({}, {});
  for (const char* address : {"0.0.0.1", "224.0.0.1", "255.255.255.255", "169.254.169.254",
                              "::", "ff02::1", "fe80::1", "127.0.0.1", "10.0.0.1"}) {
    const auto error = policy.check(registration(address));
    EXPECT_FALSE(error) << address << ": " << error->message;
  }
}

TEST(AddressPolicy, RefusesTheDaemonsOwnEndpoints) {
  const AddressPolicy policy(AddressPolicy::default_deny_ranges(),
                             {{ip("127.0.0.1"), 8500}, {ip("127.0.0.1"), 5353}});
  for (const std::uint16_t port : {8500, 5353}) {
    const auto error = policy.check(registration("127.0.0.1", port));
    ASSERT_TRUE(error) << port;
    EXPECT_EQ(error->field, "port");
    EXPECT_EQ(error->message,
              "127.0.0.1:" + std::to_string(port) + " is one of this daemon's own endpoints");
  }
  EXPECT_TRUE(policy.check(registration("::ffff:127.0.0.1", 8500)));
  // Another port on loopback, or the same port on another address, is someone else.
  EXPECT_FALSE(policy.check(registration("127.0.0.1", 8501)));
  EXPECT_FALSE(policy.check(registration("127.0.0.2", 8500)));
  EXPECT_FALSE(policy.check(registration("10.0.0.1", 8500)));
  EXPECT_FALSE(policy.check(registration("::1", 8500)));
}

TEST(AddressPolicy, RefusesHealthChecksAimedAtTheDaemon) {
  const AddressPolicy policy(AddressPolicy::default_deny_ranges(),
                             {{ip("127.0.0.1"), 8500}, {ip("127.0.0.1"), 5353}});
  for (const auto type : {store::CheckType::tcp, store::CheckType::http}) {
    const auto error = policy.check(with_check(registration("127.0.0.1", 9000), type, 5353));
    ASSERT_TRUE(error) << store::to_string(type);
    EXPECT_EQ(error->field, "check.port");
    EXPECT_EQ(error->message,
              "health check target 127.0.0.1:5353 is one of this daemon's own endpoints");
    EXPECT_FALSE(policy.check(with_check(registration("127.0.0.1", 9000), type, 9001)));
    EXPECT_FALSE(policy.check(with_check(registration("127.0.0.1", 9000), type, 0)));
  }
  // A check on the instance's own port (check.port 0) is caught as "port".
  const auto error =
      policy.check(with_check(registration("127.0.0.1", 8500), store::CheckType::tcp, 0));
  ASSERT_TRUE(error);
  EXPECT_EQ(error->field, "port");
}

TEST(AddressPolicy, Ipv6Endpoints) {
  const AddressPolicy policy(AddressPolicy::default_deny_ranges(), {{ip("::1"), 8500}});
  const auto error = policy.check(registration("::1", 8500));
  ASSERT_TRUE(error);
  EXPECT_EQ(error->field, "port");
  EXPECT_EQ(error->message, "[::1]:8500 is one of this daemon's own endpoints");
  const auto check_error =
      policy.check(with_check(registration("::1", 9000), store::CheckType::http, 8500));
  ASSERT_TRUE(check_error);
  EXPECT_EQ(check_error->message,
            "health check target [::1]:8500 is one of this daemon's own endpoints");
  EXPECT_FALSE(policy.check(registration("127.0.0.1", 8500)));
  EXPECT_FALSE(policy.check(registration("::1", 8501)));
  EXPECT_FALSE(policy.check(registration("2001:db8::1", 8500)));
}

TEST(AddressPolicy, Ipv4WildcardMatchesLoopbackAndInterfaceAddresses) {
  const AddressPolicy policy(AddressPolicy::default_deny_ranges(), {{ip("0.0.0.0"), 8500}});
  for (const char* address : {"127.0.0.1", "127.1.2.3", "::ffff:127.0.0.1"}) {
    const auto error = policy.check(registration(address, 8500));
    ASSERT_TRUE(error) << address;
    EXPECT_EQ(error->field, "port");
  }
  const auto check_error =
      policy.check(with_check(registration("127.0.0.1", 9000), store::CheckType::tcp, 8500));
  ASSERT_TRUE(check_error);
  EXPECT_EQ(check_error->field, "check.port");
  // 198.51.100.0/24 is documentation space: never a local address here.
  EXPECT_FALSE(policy.check(registration("198.51.100.77", 8500)));
  EXPECT_FALSE(policy.check(registration("127.0.0.1", 8501)));
  // 0.0.0.0 is an IPv4 socket: [::1]:8500 is not the daemon.
  EXPECT_FALSE(policy.check(registration("::1", 8500)));

  const auto local = non_loopback_interface_address(AF_INET);
  if (!local) GTEST_SKIP() << "no non-loopback IPv4 interface address on this machine";
  const auto error = policy.check(registration(local->to_string(), 8500));
  ASSERT_TRUE(error) << local->to_string();
  EXPECT_EQ(error->field, "port");
  EXPECT_FALSE(policy.check(registration(local->to_string(), 8501)));
}

TEST(AddressPolicy, Ipv6WildcardIsDualStack) {
  const AddressPolicy policy(AddressPolicy::default_deny_ranges(), {{ip("::"), 53}});
  for (const char* address : {"::1", "127.0.0.1", "::ffff:127.0.0.1"}) {
    EXPECT_TRUE(policy.check(registration(address, 53))) << address;
  }
  EXPECT_FALSE(policy.check(registration("2001:db8::77", 53)));
  EXPECT_FALSE(policy.check(registration("::1", 54)));

  const auto local = non_loopback_interface_address(AF_INET6);
  if (!local) GTEST_SKIP() << "no non-loopback IPv6 interface address on this machine";
  // Link-local interface addresses are refused by the ranges already; the
  // endpoint rule must also catch them when the ranges are gone.
  const AddressPolicy no_ranges({}, {{ip("::"), 53}});
  const auto error = no_ranges.check(registration(local->to_string(), 53));
  ASSERT_TRUE(error) << local->to_string();
  EXPECT_EQ(error->field, "port");
}

}  // namespace
