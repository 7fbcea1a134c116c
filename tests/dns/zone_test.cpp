// Loading the zone file: the repository's example, and the errors operators see.
#include "dns/zone.h"

#include <gtest/gtest.h>

#include "test_support.h"

namespace dns {
namespace {

const std::string kHead =
    "$ORIGIN discovery.\n"
    "$TTL 300\n"
    "@ 60 IN SOA ns1 hostmaster 1 3600 600 86400 5\n"
    "@ IN NS ns1\n"
    "ns1 IN A 127.0.0.1\n";

std::string load_error(const std::string& text) {
  try {
    Zone::parse(text, "discovery.", "test.zone");
  } catch (const ZoneError& error) {
    return error.what();
  }
  return "(loaded)";
}

TEST(ZoneTest, LoadsTheExampleZoneOfTheRepository) {
  const auto zone = Zone::load(testing::source_dir() + "/zones/discovery.zone", "discovery.");
  EXPECT_EQ(zone->apex().to_text(), "discovery.");
  EXPECT_NE(zone->apex_node().find(rrtype::ns), nullptr);
  EXPECT_EQ(zone->negative_ttl(), 5u);
  EXPECT_NE(zone->find(*Name::from_text("ns1.discovery.")), nullptr);
}

TEST(ZoneTest, KeepsRRsetsInWireFormWithEmptyNonTerminalsAndAdditionalTargets) {
  const auto zone =
      Zone::parse(kHead + "a.b.c 300 IN A 192.0.2.1\nA.b.c 300 IN A 192.0.2.1\n", "DISCOVERY");
  const ZoneNode* node = zone->find(*Name::from_text("a.b.c.discovery."));
  ASSERT_NE(node, nullptr);
  ASSERT_EQ(node->rrsets.size(), 1u);
  EXPECT_EQ(node->rrsets[0].rdatas.size(), 1u) << "duplicate records collapse";
  EXPECT_EQ(node->rrsets[0].rdatas[0], (std::vector<std::uint8_t>{192, 0, 2, 1}));
  const ZoneNode* ent = zone->find(*Name::from_text("b.c.discovery."));
  ASSERT_NE(ent, nullptr);
  EXPECT_TRUE(ent->rrsets.empty());
  EXPECT_NE(zone->find(*Name::from_text("c.discovery.")), nullptr);
  EXPECT_EQ(zone->find(*Name::from_text("x.discovery.")), nullptr);
  const StaticRRset* ns = zone->apex_node().find(rrtype::ns);
  ASSERT_NE(ns, nullptr);
  ASSERT_EQ(ns->additional_nodes.size(), 1u);
  EXPECT_EQ(ns->additional_nodes[0]->name.to_text(), "ns1.discovery.");
  EXPECT_EQ(zone->negative_ttl(), 5u);
}

TEST(ZoneTest, SyntaxErrorsNameTheFileAndLine) {
  const std::string error = load_error(kHead + "www IN A not-an-address\n");
  EXPECT_NE(error.find("test.zone:6:"), std::string::npos) << error;
}

TEST(ZoneTest, RecordErrorsNameTheLineToo) {
  const std::string error = load_error(kHead + "\nwww.example.com. IN A 192.0.2.1\n");
  EXPECT_NE(error.find("test.zone:7:"), std::string::npos) << error;
  EXPECT_NE(load_error(kHead + "@ IN SOA ns1 h 2 2 3 4 5\n").find("second SOA"), std::string::npos);
}

TEST(ZoneTest, MissingTtlsDefaultToTtlDirectiveElseTheLastStatedTtl) {
  const auto with_directive =
      Zone::parse(kHead + "www 42 IN A 192.0.2.1\nftp IN A 192.0.2.2\n", "discovery.");
  EXPECT_EQ(with_directive->find(*Name::from_text("ftp.discovery."))->find(rrtype::a)->ttl, 300u);
  const auto without = Zone::parse(
      "$ORIGIN discovery.\n@ 60 IN SOA ns1 h 1 2 3 4 5\n@ 77 IN NS ns1\nns1 IN A 127.0.0.1\n",
      "discovery.");
  EXPECT_EQ(without->find(*Name::from_text("ns1.discovery."))->find(rrtype::a)->ttl, 77u);
}

TEST(ZoneTest, MissingFileIsAnError) {
  EXPECT_THROW(Zone::load("/nonexistent/discovery.zone", "discovery."), ZoneError);
}

TEST(ZoneTest, RejectsZonesThatCannotBeServed) {
  EXPECT_NE(load_error("$ORIGIN discovery.\n@ IN NS ns1\n").find("no SOA"), std::string::npos);
  EXPECT_NE(load_error("$ORIGIN discovery.\n@ 60 IN SOA ns1 h 1 2 3 4 5\n").find("no NS"),
            std::string::npos);
  EXPECT_NE(load_error(kHead + "www.example.com. IN A 192.0.2.1\n").find("outside the zone"),
            std::string::npos);
  EXPECT_NE(load_error(kHead + "sub IN NS ns.example.com.\n").find("delegations"),
            std::string::npos);
  EXPECT_NE(load_error(kHead + "* IN A 192.0.2.1\n").find("wildcard"), std::string::npos);
  EXPECT_NE(load_error(kHead + "x.service IN A 192.0.2.1\n").find("reserved"), std::string::npos);
  EXPECT_NE(load_error(kHead + "instance IN TXT \"x\"\n").find("reserved"), std::string::npos);
  EXPECT_NE(load_error(kHead + "www IN CNAME ns1\nwww IN A 192.0.2.1\n").find("CNAME"),
            std::string::npos);
  const std::string wrong_apex =
      load_error("$ORIGIN other.\n@ 60 IN SOA ns1 h 1 2 3 4 5\n@ IN NS ns1\n");
  EXPECT_NE(wrong_apex.find("test.zone"), std::string::npos) << wrong_apex;
}

}  // namespace
}  // namespace dns
