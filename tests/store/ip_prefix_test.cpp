#include "store/ip_prefix.h"

#include <gtest/gtest.h>

namespace {

using store::IpAddress;
using store::IpPrefix;

IpAddress ip(std::string_view text) {
  auto address = IpAddress::parse(text);
  EXPECT_TRUE(address) << text;
  return address.value_or(IpAddress{});
}

TEST(IpPrefix, ParsesCidrAndBareAddresses) {
  EXPECT_EQ(IpPrefix::parse("10.0.0.0/8")->to_string(), "10.0.0.0/8");
  EXPECT_EQ(IpPrefix::parse("fe80::/10")->to_string(), "fe80::/10");
  EXPECT_EQ(IpPrefix::parse("192.0.2.7")->to_string(), "192.0.2.7/32");
  EXPECT_EQ(IpPrefix::parse("::1")->to_string(), "::1/128");
  EXPECT_EQ(IpPrefix::parse("0.0.0.0/0")->to_string(), "0.0.0.0/0");
}

TEST(IpPrefix, RejectsMalformedAndHostBitsSet) {
  for (const char* bad : {"", "/8", "10.0.0.0/", "10.0.0.0/33", "fe80::/129", "10.0.0.1/8",
                          "10.0.0.0/08x", "host/8", "10.0.0.0/-1", "fe80::1/10"}) {
    EXPECT_FALSE(IpPrefix::parse(bad)) << bad;
  }
}

TEST(IpPrefix, ContainsRespectsTheBoundary) {
  const auto net = *IpPrefix::parse("169.254.0.0/16");
  EXPECT_TRUE(net.contains(ip("169.254.0.1")));
  EXPECT_TRUE(net.contains(ip("169.254.255.255")));
  EXPECT_FALSE(net.contains(ip("169.255.0.0")));
  EXPECT_FALSE(net.contains(ip("169.253.255.255")));
  EXPECT_FALSE(net.contains(ip("fe80::1")));
  const auto odd = *IpPrefix::parse("224.0.0.0/4");
  EXPECT_TRUE(odd.contains(ip("239.255.255.255")));
  EXPECT_FALSE(odd.contains(ip("240.0.0.0")));
  const auto v6 = *IpPrefix::parse("fe80::/10");
  EXPECT_TRUE(v6.contains(ip("febf::1")));
  EXPECT_FALSE(v6.contains(ip("fec0::1")));
}

TEST(IpPrefix, MappedIpv4MatchesIpv4Prefixes) {
  const auto loopback = *IpPrefix::parse("127.0.0.0/8");
  EXPECT_TRUE(loopback.contains(ip("::ffff:127.0.0.1")));
  EXPECT_FALSE(loopback.contains(ip("::ffff:128.0.0.1")));
  EXPECT_EQ(store::unmap_v4(ip("::ffff:10.1.2.3")), ip("10.1.2.3"));
}

TEST(IpPrefix, LoopbackIsBothFamiliesAndMappedForms) {
  EXPECT_TRUE(store::is_loopback(ip("127.0.0.1")));
  EXPECT_TRUE(store::is_loopback(ip("127.255.0.9")));
  EXPECT_TRUE(store::is_loopback(ip("::1")));
  EXPECT_TRUE(store::is_loopback(ip("::ffff:127.0.0.2")));
  EXPECT_FALSE(store::is_loopback(ip("128.0.0.1")));
  EXPECT_FALSE(store::is_loopback(ip("::2")));
}

TEST(IpPrefix, OfKeepsOnlyThePrefixBits) {
  EXPECT_EQ(IpPrefix::of(ip("198.51.100.77"), 24).to_string(), "198.51.100.0/24");
  EXPECT_EQ(IpPrefix::of(ip("2001:db8:1:2:3:4:5:6"), 56).to_string(), "2001:db8:1::/56");
  EXPECT_EQ(IpPrefix::of(ip("10.0.0.1"), 200).length, 32);
}

}  // namespace
